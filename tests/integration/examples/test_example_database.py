"""The guide's database examples end to end on a real MariaDB server (issue 6).

The server image composesecrets-test/mariadb is built from Debian's mariadb-server by
scripts/build-server-images.sh (its entrypoint initialises the data directory from
MYSQL_ROOT_PASSWORD_FILE, MYSQL_PASSWORD_FILE, MYSQL_USER and MYSQL_DATABASE, like the
official image). Stacks are deployed with the engine backend under unique names, from the
example files themselves (examples/rotation/*.yml, examples/wordpress/), with a store in
the test's temporary directory unlocked by a random COMPOSESECRETS_KEY.

Passwords are canaries, and never on a command line: they reach the tool on standard
input, and the containers' programs through their secret files. Clients inside containers
get their password through an option file on a pipe (bash process substitution), so that
it is in no process's argv either.

One database deployment (examples/rotation/1-deploy.yml) is shared by the module: the
database and leak tests look at it first, then the rotation test, which must run last
among them, rotates it. Every session ends with `stack rm`, then checks that no container,
network or tmpfs directory of the stack is left, removes the stack's volume, and looks
for the canaries in Docker's data root, the store and the tmpfs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from integration.helpers import (
    CLI_TIMEOUT,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    TMPFS_ROOT,
    checked_cleanup,
    docker,
    docker_ok,
    docker_root,
    files_containing,
    labelled,
    ours,
    remove_leftovers,
    store_env,
    write_private,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from contextlib import AbstractContextManager

REPO = Path(__file__).resolve().parents[3]
ROTATION = REPO / "examples" / "rotation"
WORDPRESS = REPO / "examples" / "wordpress"
BUILD_SERVER_IMAGES = REPO / "scripts" / "build-server-images.sh"
READY_TIMEOUT = 120.0
CLIENT_UID = 1000  # examples/rotation: the client runs as 1000:1000

# Inside a container (bash): connect as {user} to the server given by {where}, with the
# password printed by the command {source}; SQL on standard input unless {extra} has -e. The
# password reaches the client in an option file on a pipe, never in its argv.
_CONNECT = (
    'pw="$({source})"; '
    'exec mariadb --defaults-extra-file=<(printf "[client]\\npassword=\\"%s\\"\\n" "$pw") '
    "{where} -u {user} --batch --skip-column-names {extra}"
)


def connect_script(source: str, user: str, where: str = "-h db", extra: str = "") -> str:
    """A bash script connecting as ``user``; ``source`` is a shell command printing the
    password (``cat /run/secrets/x``; ``head -n1`` reads it from standard input)."""
    return _CONNECT.format(source=source, user=user, where=where, extra=extra)


def bash_in(
    container: str, script: str, stdin: str | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a bash script inside the container (stdin piped when given)."""
    args = ["exec"]
    if stdin is not None:
        args.append("-i")
    if user is not None:
        args += ["-u", user]
    return docker(*args, container, "bash", "-c", script, stdin=stdin)


def password() -> str:
    """A canary shaped like the guide's `openssl rand -base64 20` (with / + =)."""
    return f"CANARY+{uuid.uuid4().hex[:8]}/{base64.b64encode(os.urandom(12)).decode()}="


def refused(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode != 0 and "Access denied" in proc.stderr


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def mariadb_image(docker_client: Any) -> str:
    """Tag of the local MariaDB server image (built by scripts/build-server-images.sh)."""
    if not BUILD_SERVER_IMAGES.exists():
        pytest.fail(f"{BUILD_SERVER_IMAGES} is missing", pytrace=False)
    proc = subprocess.run(
        [str(BUILD_SERVER_IMAGES), "mariadb"],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        problem = f"the mariadb image could not be built (exit {proc.returncode}): " + " | ".join(
            proc.stderr.strip().splitlines()[-3:]
        )
        if os.environ.get("COMPOSESECRETS_REQUIRE_ENGINE") == "1":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return lines[-1]


@dataclass
class Session:
    """A store of its own, the stacks deployed with it, and the canaries they used."""

    base: Path
    image: str
    env: dict[str, str] = field(default_factory=dict)
    stacks: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = {**store_env(self.base / "store"), "DB_IMAGE": self.image}
        (self.base / "work").mkdir(mode=0o700, parents=True)

    @property
    def store(self) -> Path:
        return self.base / "store"

    def run(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ours(), *args],
            cwd=self.base / "work",
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=CLI_TIMEOUT,
        )

    def ok(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        proc = self.run(*args, stdin=stdin, env=env)
        assert proc.returncode == 0, (
            f"composesecrets {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
        return proc.stdout

    def new_stack(self) -> str:
        name = f"csdb{uuid.uuid4().hex[:10]}"
        self.stacks.append(name)
        return name

    def secret(self, name: str, value: str) -> None:
        """`secret create NAME -` with the value on standard input."""
        self.canaries.append(value.strip())
        self.ok("secret", "create", name, "-", stdin=value)

    def secret_names(self) -> list[str]:
        return sorted(
            e["Spec"]["Name"] for e in json.loads(self.ok("secret", "ls", "--format", "json"))
        )

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for stack in self.stacks:
            proc = self.run("stack", "rm", stack)
            if proc.returncode not in (0, EXIT_NOT_FOUND):
                problems.append(f"stack rm {stack}: exit {proc.returncode}: {proc.stderr}")
        for stack in self.stacks:
            problems += remove_leftovers(stack)
            # Named volumes outlive `stack rm` (as with docker stack rm): remove them here.
            volumes = docker_ok("volume", "ls", "-q", "--filter", labelled(stack)).split()
            if volumes:
                removed = docker("volume", "rm", *volumes)
                if removed.returncode != 0:
                    problems.append(f"volumes of {stack} not removable: {removed.stderr}")
        root = docker_root()
        leaked = files_containing(
            self.canaries,
            [root / "containers", root / "volumes", self.store, TMPFS_ROOT],
            self.base,
        )
        if leaked:
            problems.append(f"files hold a password after the stacks were removed: {leaked}")
        return problems


def session(base: Path, image: str) -> AbstractContextManager[Session]:
    return checked_cleanup(Session(base=base, image=image))


def wait_until(what: str, probe: Callable[[], bool], containers: Sequence[str]) -> None:
    """Poll ``probe()`` (True when ready) for READY_TIMEOUT; fail early if a container died."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not probe():
        states = {
            c: docker("inspect", "-f", "{{.State.Status}}", c).stdout.strip() for c in containers
        }
        dead = {c: s for c, s in states.items() if s != "running"}
        if dead or time.monotonic() > deadline:
            logs = {c: docker("logs", "--tail", "5", c).stderr.strip() for c in containers}
            raise AssertionError(f"{what}: not ready (states {states}); last logs: {logs}")
        time.sleep(0.5)


@dataclass
class Db:
    """The stack of examples/rotation/1-deploy.yml, deployed once for the module."""

    session: Session
    stack: str
    root_password: str
    user_password: str  # as created, with the trailing newline of `openssl rand -base64`

    @property
    def db(self) -> str:
        return f"{self.stack}_db_1"

    @property
    def client(self) -> str:
        return f"{self.stack}_client_1"

    def client_sql(self, sql: str) -> subprocess.CompletedProcess[str]:
        """SQL as the client would run it: user wordpress, password from its secret file."""
        script = connect_script("cat /run/secrets/wp_db_password", "wordpress", extra="wordpress")
        return bash_in(self.client, script, stdin=sql)

    def client_with(self, password_value: str) -> subprocess.CompletedProcess[str]:
        """`SELECT 1` from the client as wordpress with a given password (via stdin)."""
        script = connect_script("head -n1", "wordpress", extra="-e 'SELECT 1'")
        return bash_in(self.client, script, stdin=password_value + "\n")

    def deploy(self, compose: str) -> None:
        self.session.ok(
            "stack", "deploy", "--backend", "engine", "-c", str(ROTATION / compose), self.stack
        )
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_until(
            f"{self.stack}: the client connecting to the database",
            lambda: self.client_sql("SELECT 1").returncode == 0,
            [self.db, self.client],
        )


@pytest.fixture(scope="module")
def db(
    docker_client: Any, mariadb_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Db]:
    with session(tmp_path_factory.mktemp("db"), mariadb_image) as current:
        deployed = Db(current, current.new_stack(), password(), password() + "\n")
        current.secret("mysql_root_password", deployed.root_password)
        current.secret("mysql_password", deployed.user_password)
        started = time.monotonic()
        deployed.deploy("1-deploy.yml")
        print(f"database ready {time.monotonic() - started:.1f}s after deploy started")
        yield deployed


# ------------------------------------------------------------------ database


def test_server_initialised_from_secret_files(db: Db) -> None:
    logs = docker("logs", db.db)
    assert "initialising the data directory" in logs.stderr, logs.stderr[-2000:]
    # root: with the password from its secret file, and only with it (locally, TCP).
    root_from_file = connect_script(
        "cat /run/secrets/mysql_root_password", "root", where="-h 127.0.0.1",
        extra="-e 'SELECT CURRENT_USER()'",
    )  # fmt: skip
    proc = bash_in(db.db, root_from_file)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "root@%"
    wrong_root = connect_script("head -n1", "root", where="-h 127.0.0.1", extra="-e 'SELECT 1'")
    assert refused(bash_in(db.db, wrong_root, stdin="not-the-password\n"))
    root_socket = connect_script(
        "cat /run/secrets/mysql_root_password", "root", where="--protocol=socket",
        extra="-e 'SELECT CURRENT_USER()'",
    )  # fmt: skip
    proc = bash_in(db.db, root_socket)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "root@localhost"
    # The user wordpress owns the database wordpress, and nothing else.
    proc = db.client_sql("SHOW DATABASES")
    assert proc.returncode == 0, proc.stderr
    assert "wordpress" in proc.stdout.split()
    assert "mysql" not in proc.stdout.split()
    assert db.client_sql("CREATE DATABASE other").returncode != 0


def test_client_password_file_and_connection(db: Db) -> None:
    target = "/run/secrets/wp_db_password"
    proc = docker("exec", db.client, "sh", "-c", f'id -u; stat -c "%u %g %a" {target}')
    assert proc.returncode == 0, proc.stderr
    uid, stat = proc.stdout.strip().splitlines()
    assert uid == str(CLIENT_UID)
    assert stat == f"{CLIENT_UID} {CLIENT_UID} 400"
    assert docker_ok("exec", db.client, "cat", target) == db.user_password
    # Another user of the container cannot read it.
    assert docker("exec", "-u", "1001", db.client, "cat", target).returncode != 0

    proc = db.client_sql("SELECT CURRENT_USER()")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "wordpress@%"
    # The password is what makes it work: a wrong one is refused.
    assert refused(db.client_with("not-the-password"))
    assert db.client_with(db.user_password.strip()).returncode == 0


def test_passwords_not_in_inspect_processes_or_logs(db: Db, tmp_path: Path) -> None:
    values = [db.root_password, db.user_password.strip()]
    # The server keeps only hashes in its data directory (the stack's volume).
    volume = Path(
        docker_ok("volume", "inspect", "-f", "{{.Mountpoint}}", f"{db.stack}_mydata").strip()
    )
    assert (volume / "mysql").is_dir(), f"no data directory in {volume}"
    assert files_containing(values, [volume], tmp_path) == [], "a password in the data directory"
    for container in (db.db, db.client):
        inspected = docker_ok("inspect", container)
        assert "/run/secrets/" in inspected  # the mounts, and the *_FILE variables
        assert [v for v in values if v in inspected] == [], f"docker inspect {container}"
        logs = docker("logs", container)
        assert [v for v in values if v in logs.stdout + logs.stderr] == [], f"logs of {container}"
        # What `ps` would show, without relying on ps: every process's argv and environment.
        script = 'for p in /proc/[0-9]*; do cat "$p/cmdline" "$p/environ" 2>/dev/null; echo; done'
        proc = bash_in(container, script, user="0")
        assert proc.returncode == 0, proc.stderr
        expected = "mariadbd" if container == db.db else "sleep"
        assert expected in proc.stdout, f"no {expected} process seen in {container}"
        assert [v for v in values if v in proc.stdout] == [], f"a process of {container}"


# ------------------------------------------------------------------ rotation


def test_rotation_keeps_data_and_retires_the_old_password(db: Db, tmp_path: Path) -> None:
    """The guide's rotation on the shared stack (runs after the tests above)."""
    tool = db.session
    old, new = db.user_password, password() + "\n"
    proc = db.client_sql(
        "CREATE TABLE posts (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200));"
        "INSERT INTO posts (title) VALUES ('written before the rotation');"
    )
    assert proc.returncode == 0, proc.stderr

    # 1-2: the new secret, and the database gets both.
    tool.secret("mysql_password_v2", new)
    db.deploy("2-both-secrets.yml")
    assert docker_ok("exec", db.db, "cat", "/run/secrets/old_mysql_password") == old
    assert docker_ok("exec", db.db, "cat", "/run/secrets/mysql_password") == new
    in_use = tool.run("secret", "rm", "mysql_password")
    assert in_use.returncode == EXIT_CONFLICT, in_use.stderr

    # 3: change it inside the database, from the two files.
    proc = docker(
        "exec", "-i", db.db, "bash", "-s",
        stdin=(ROTATION / "change-password.sh").read_text(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed" in proc.stdout
    assert [v for v in (old.strip(), new.strip()) if v in proc.stdout + proc.stderr] == []
    assert refused(db.client_sql("SELECT 1")), "the client still connects with the old password"

    # 4: the client reads the new secret at the same target, same owner, mode 0400.
    db.deploy("3-client-v2.yml")
    target = "/run/secrets/wp_db_password"
    assert docker_ok("exec", db.client, "cat", target) == new
    stat = docker_ok("exec", db.client, "stat", "-c", "%u %g %a", target).strip()
    assert stat == f"{CLIENT_UID} {CLIENT_UID} 400"

    # 5: the data survived.
    proc = db.client_sql("SELECT title FROM posts")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["written before the rotation"]

    # 6: revoke and remove the old secret.
    db.deploy("4-revoke.yml")
    code = docker("exec", db.db, "test", "-e", "/run/secrets/old_mysql_password").returncode
    assert code != 0, "the database still has the old secret"
    tool.ok("secret", "rm", "mysql_password")
    assert "mysql_password" not in tool.secret_names()
    assert "mysql_password_v2" in tool.secret_names()

    # Only the new password connects.
    assert refused(db.client_with(old.strip()))
    assert db.client_with(new.strip()).returncode == 0
    assert db.client_sql("SELECT COUNT(*) FROM posts").stdout.strip() == "1"

    # The old value is in no file on the tmpfs (where the new one is, which shows that the
    # search sees the deployed files).
    assert files_containing([old.strip()], [TMPFS_ROOT], tmp_path) == []
    assert files_containing([new.strip()], [TMPFS_ROOT], tmp_path) != []


def test_rotate_script_end_to_end(docker_client: Any, mariadb_image: str, tmp_path: Path) -> None:
    """examples/rotation/rotate.sh on a store of its own; it tears down what it made."""
    with session(tmp_path / "script", mariadb_image) as current:
        stack = current.new_stack()
        proc = subprocess.run(
            [str(ROTATION / "rotate.sh")],
            env={**current.env, "STACK": stack},
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "rotate: success:" in proc.stdout
        assert "written before the rotation" in proc.stdout
        assert current.secret_names() == []
        assert docker_ok("volume", "ls", "-q", "--filter", labelled(stack)).split() == []


# ------------------------------------------------------------------ the WordPress example


@pytest.fixture
def wordpress_copy(tmp_path: Path) -> Path:
    """examples/wordpress/compose.yaml and its override, beside fresh secret files.

    (The example's own db_password.txt and db_root_password.txt are made by `make
    example-secrets` and are not in the repository.)
    """
    work = tmp_path / "wordpress"
    work.mkdir()
    for name in ("compose.yaml", "db-only.override.yml"):
        shutil.copyfile(WORDPRESS / name, work / name)
    return work


def test_wordpress_example_validates_with_images_overridden(
    wordpress_copy: Path, tmp_path: Path
) -> None:
    write_private(wordpress_copy / "db_password.txt", password())
    write_private(wordpress_copy / "db_root_password.txt", password())
    tool = Session(base=tmp_path / "tool", image="local/db:1")
    env = {"WORDPRESS_IMAGE": "local/wordpress:2"}
    compose = str(wordpress_copy / "compose.yaml")
    tool.ok("validate", "-c", compose, env=env)
    config = json.loads(tool.ok("config", "-c", compose, "--format", "json", env=env))
    services = config["services"]
    assert services["db"]["image"] == "local/db:1"
    assert services["wordpress"]["image"] == "local/wordpress:2"
    assert services["db"]["secrets"] == [
        {"source": s, "target": f"/run/secrets/{s}", "uid": "0", "gid": "0", "mode": 0o444}
        for s in ("db_root_password", "db_password")
    ]
    assert [s["target"] for s in services["wordpress"]["secrets"]] == ["/run/secrets/db_password"]
    assert config["secrets"]["db_password"]["file"] == str(wordpress_copy / "db_password.txt")
    # Without the variables, the guide's images.
    plain = {k: v for k, v in tool.env.items() if k != "DB_IMAGE"}
    proc = subprocess.run(
        [*ours(), "config", "-c", compose, "--format", "json"],
        env=plain, capture_output=True, text=True, check=False, timeout=CLI_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    images = {n: s["image"] for n, s in json.loads(proc.stdout)["services"].items()}
    assert images == {"db": "mysql:latest", "wordpress": "wordpress:latest"}


def test_wordpress_example_database_part_deploys(
    docker_client: Any, mariadb_image: str, wordpress_copy: Path, tmp_path: Path
) -> None:
    with session(tmp_path / "wp", mariadb_image) as current:
        user_password, root_password = password(), password()
        current.canaries += [user_password, root_password]
        write_private(wordpress_copy / "db_password.txt", user_password)
        write_private(wordpress_copy / "db_root_password.txt", root_password)
        stack = current.new_stack()
        current.ok(
            "stack", "deploy", "--backend", "engine",
            "-c", str(wordpress_copy / "compose.yaml"),
            "-c", str(wordpress_copy / "db-only.override.yml"),
            stack,
            env={"WORDPRESS_IMAGE": mariadb_image},  # checked although it runs 0 replicas
        )  # fmt: skip
        db = f"{stack}_db_1"
        label = labelled(stack)
        assert docker_ok("ps", "-a", "--filter", label, "--format", "{{.Names}}").split() == [db]
        as_user = connect_script(
            "cat /run/secrets/db_password", "wordpress", where="-h 127.0.0.1",
            extra="-e 'SHOW DATABASES' wordpress",
        )  # fmt: skip
        wait_until(f"{stack}: database", lambda: bash_in(db, as_user).returncode == 0, [db])
        assert "wordpress" in bash_in(db, as_user).stdout.split()
        as_root = connect_script(
            "cat /run/secrets/db_root_password", "root", where="-h 127.0.0.1",
            extra="-e 'SELECT CURRENT_USER()'",
        )  # fmt: skip
        proc = bash_in(db, as_root)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "root@%"
        inspected = docker_ok("inspect", db) + docker_ok("logs", db)
        assert [v for v in (user_password, root_password) if v in inspected] == []
