"""`composesecrets stack deploy/ls/ps/services/rm` on the local Docker Engine (issue 4).

Every test deploys stacks with a unique name from the compose files in
tests/integration/data/stack-*.yml, copied to a temporary directory next to freshly written
secret files (mode 0600) whose values are canaries (`CANARY-<uuid>`). The store lives in the
test's temporary directory (COMPOSESECRETS_HOME) and is unlocked by a random
COMPOSESECRETS_KEY. Whatever a test does, the `stacks` fixtures end with `stack rm` and then
check that nothing labelled with the stack is left on the engine, that no secret directory
of its containers is left on the tmpfs, and that no canary sits in Docker's data root, the
store or the tmpfs; leftovers are then removed by hand so that one failure does not leak
into the next run.

Services run `sleep 3600` with `stop_grace_period: 1s` on the local busybox test image.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from integration.helpers import (
    EXIT_CONFLICT,
    EXIT_ENGINE,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_ROLLED_BACK,
    MODES_TARGETS,
    STACK_LABEL,
    TMPFS_ROOT,
    Tool,
    canary,
    checked_cleanup,
    docker,
    docker_ok,
    docker_root,
    engine_leftovers,
    exec_ok,
    exists_in,
    files_containing,
    free_port,
    labelled,
    read_in,
    remove_leftovers,
    stack_containers,
    stat_in,
    tmpfs_leftovers,
    wait_running,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from contextlib import AbstractContextManager


@dataclass
class Stacks:
    """Stacks deployed by one test (or module), removed and checked at the end."""

    tool: Tool
    names: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)

    def new_name(self) -> str:
        name = f"cst{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return name

    def canary(self) -> str:
        value = canary()
        self.canaries.append(value)
        return value

    def cleanup(self) -> list[str]:
        """`stack rm` every stack; return what is left (and then remove it by hand)."""
        problems: list[str] = []
        for name in self.names:
            result = self.tool.run("stack", "rm", name)
            # Exit 5 (not found) is tolerated here for stacks whose deploy failed; the rm
            # tests hold `stack rm` to exit 0 on a stack it removed already.
            if result.returncode not in (0, EXIT_NOT_FOUND):
                problems.append(f"stack rm {name} failed:\n{result.describe()}")
        for name in self.names:
            problems += remove_leftovers(name)
        root = docker_root()
        leaked = files_containing(
            self.canaries,
            [root / "containers", root / "volumes", self.tool.home, TMPFS_ROOT],
            self.tool.workdir.parent,
        )
        if leaked:
            problems.append(f"files hold a canary secret after `stack rm`: {leaked}")
        return problems


def stack_session(base: Path) -> AbstractContextManager[Stacks]:
    """Stacks with their own store; removed and checked at the end (see module doc)."""
    return checked_cleanup(Stacks(Tool.create(base)))


@pytest.fixture
def stacks(docker_client: Any, test_image: str, tmp_path: Path) -> Iterator[Stacks]:
    with stack_session(tmp_path) as session:
        yield session


# ------------------------------------------------------------------ engine helpers


def container_ids(client: Any, stack: str) -> dict[str, str]:
    return {name: c.id for name, c in stack_containers(client, stack).items()}


def container_mounts(container: Any) -> dict[str, list[str]]:
    """/proc/mounts inside the container: mount point -> [fstype, options]."""
    mounts: dict[str, list[str]] = {}
    for line in exec_ok(container, "cat", "/proc/mounts").splitlines():
        fields = line.split()
        if len(fields) >= 4:
            mounts[fields[1]] = [fields[2], fields[3]]
    return mounts


def secret_sources(container: Any, targets: Iterable[str]) -> dict[str, Path]:
    """target -> host path bind-mounted there (from the container's inspect data)."""
    container.reload()
    by_target = {m.get("Destination"): m.get("Source") for m in container.attrs["Mounts"]}
    return {t: Path(by_target[t]) for t in targets if by_target.get(t)}


def secret_dirs(client: Any, stack: str) -> set[Path]:
    """Host directories holding the files bind-mounted into the stack's containers."""
    dirs: set[Path] = set()
    for container in stack_containers(client, stack).values():
        for mount in container.attrs.get("Mounts", []):
            source = mount.get("Source", "")
            if mount.get("Type") == "bind" and source.startswith(f"{TMPFS_ROOT}/"):
                dirs.add(Path(source).parent)
    return dirs


def host_fstype(path: Path) -> str:
    """Filesystem type of the host mount holding ``path`` (longest mount point prefix)."""
    best, fstype = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        point = fields[1]
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return fstype


# ------------------------------------------------------------------ uid/gid/mode, no leak


@dataclass
class ModesStack:
    stacks: Stacks
    name: str
    values: dict[str, str]  # secret file name -> canary
    container: Any

    @property
    def tool(self) -> Tool:
        return self.stacks.tool


@pytest.fixture(scope="module")
def modes_stack(
    docker_client: Any, test_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModesStack]:
    with stack_session(tmp_path_factory.mktemp("modes")) as stacks:
        tool = stacks.tool
        compose = tool.compose("stack-modes.yml")
        values: dict[str, str] = {}
        for filename in sorted({entry[3] for entry in MODES_TARGETS.values()}):
            values[filename] = stacks.canary()
            tool.secret_file(filename, values[filename])
        name = stacks.new_name()
        result = tool.deploy(name, compose)
        assert result.returncode == 0, result.describe()
        container_name = f"{name}_web_1"
        wait_running(docker_client, name, [container_name])
        container = docker_client.containers.get(container_name)
        yield ModesStack(stacks=stacks, name=name, values=values, container=container)


def test_deploy_labels_and_names(docker_client: Any, modes_stack: ModesStack) -> None:
    found = stack_containers(docker_client, modes_stack.name)
    assert sorted(found) == [f"{modes_stack.name}_web_1"]
    labels = found[f"{modes_stack.name}_web_1"].labels
    expected = {
        STACK_LABEL: modes_stack.name,
        "io.composesecrets.service": "web",
        "com.docker.compose.project": modes_stack.name,
        "com.docker.compose.service": "web",
        "com.docker.compose.container-number": "1",
    }
    assert {k: labels.get(k) for k in expected} == expected
    assert labels.get("io.composesecrets.config-hash")
    nets = docker_ok(
        "network", "ls", "--filter", labelled(modes_stack.name), "--format", "{{.Name}}"
    ).split()
    assert nets == [f"{modes_stack.name}_default"]


def test_targets_have_uid_gid_mode_and_content(modes_stack: ModesStack) -> None:
    container = modes_stack.container
    observed = {t: stat_in(container, t) for t in MODES_TARGETS}
    expected = {t: (uid, gid, mode) for t, (uid, gid, mode, _f) in MODES_TARGETS.items()}
    assert {t: (u, g, oct(m)) for t, (u, g, m) in observed.items()} == {
        t: (u, g, oct(m)) for t, (u, g, m) in expected.items()
    }
    for target, (_uid, _gid, _mode, filename) in MODES_TARGETS.items():
        assert read_in(container, target) == modes_stack.values[filename], target


def test_targets_are_read_only_tmpfs(modes_stack: ModesStack) -> None:
    container = modes_stack.container
    mounts = container_mounts(container)
    for target in MODES_TARGETS:
        assert target in mounts, f"{target} is not a mount point: {sorted(mounts)}"
        fstype, options = mounts[target]
        assert fstype == "tmpfs", f"{target} is on {fstype}, not tmpfs"
        assert "ro" in options.split(","), f"{target} mounted {options}"
        code, _ = container.exec_run(["sh", "-c", f"echo overwritten > {target}"])
        assert code != 0, f"{target} is writable"
        assert read_in(container, target) == modes_stack.values[MODES_TARGETS[target][3]]
    # On the host: one file per reference, in a 0700 directory per container on a tmpfs.
    sources = secret_sources(container, MODES_TARGETS)
    assert set(sources) == set(MODES_TARGETS), f"bind mounts found: {sources}"
    assert len(set(sources.values())) == len(MODES_TARGETS), "two targets share one file"
    dirs = {path.parent for path in sources.values()}
    assert len(dirs) == 1, f"secret files of one container in several directories: {dirs}"
    directory = dirs.pop()
    assert oct(directory.stat().st_mode & 0o777) == oct(0o700)
    assert host_fstype(directory) == "tmpfs"
    if os.geteuid() == 0:
        assert TMPFS_ROOT in directory.parents


def test_stack_ps_lists_container_with_targets(modes_stack: ModesStack) -> None:
    out = modes_stack.tool.ok("stack", "ps", modes_stack.name, "--format", "json").stdout
    rows = json.loads(out)
    assert [row["Name"] for row in rows] == [f"{modes_stack.name}_web_1"]
    row = rows[0]
    assert row["Service"] == "web"
    assert row["Image"] == "composesecrets-test/busybox:latest"
    assert str(row["State"]).lower() == "running"
    assert sorted(row["Secrets"]) == sorted(MODES_TARGETS)
    # Docker's fields: the engine's host name, what it keeps running, no error
    node = docker_ok("info", "--format", "{{.Name}}").strip()
    assert (row["Node"], row["DesiredState"], row["Error"]) == (node, "running", "")
    assert row["ID"] and isinstance(row["Ports"], list)
    table = modes_stack.tool.ok("stack", "ps", modes_stack.name).stdout
    assert f"{modes_stack.name}_web_1" in table


def test_stack_ls_and_services(modes_stack: ModesStack) -> None:
    tool = modes_stack.tool
    stacks = json.loads(tool.ok("stack", "ls", "--format", "json").stdout)
    mine = [s for s in stacks if s["Name"] == modes_stack.name]
    assert len(mine) == 1, stacks
    assert str(mine[0]["Services"]) == "1"
    assert mine[0]["Backend"] == "engine"
    services = json.loads(tool.ok("stack", "services", modes_stack.name, "--format", "json").stdout)
    assert len(services) == 1, services
    assert services[0]["Name"] in {"web", f"{modes_stack.name}_web"}
    assert services[0]["Image"] == "composesecrets-test/busybox:latest"
    assert str(services[0]["Running"]) == "1"
    assert services[0]["Mode"] == "replicated"


def test_no_plaintext_in_inspect_commit_environ(
    docker_client: Any, modes_stack: ModesStack, tmp_path: Path
) -> None:
    container = modes_stack.container
    values = list(modes_stack.values.values())

    inspected = docker_ok("inspect", container.id)
    assert not [v for v in values if v in inspected], "docker inspect shows a secret value"

    image = f"composesecrets-test/commit-{uuid.uuid4().hex[:10]}:leak"
    docker_ok("commit", container.id, image)
    try:
        tar = tmp_path / "committed.tar"
        docker_ok("save", "-o", str(tar), image)
        data = tar.read_bytes()
        assert data, "docker save wrote nothing"
        assert not [v for v in values if v.encode() in data], "the committed image holds a secret"
    finally:
        docker("rmi", "-f", image)

    container.reload()
    pid = int(container.attrs["State"]["Pid"])
    assert pid > 0
    for what in ("environ", "cmdline"):
        raw = Path(f"/proc/{pid}/{what}").read_bytes()
        assert not [v for v in values if v.encode() in raw], f"/proc/{pid}/{what} holds a secret"

    # Nowhere on disk while deployed: the container's directory in Docker's data root, its
    # writable layer, and the store.
    root = docker_root()
    upper = container.attrs.get("GraphDriver", {}).get("Data", {}).get("UpperDir")
    roots = [root / "containers" / container.id, modes_stack.tool.home]
    if upper:
        roots.append(Path(upper))
    leaked = files_containing(values, roots, tmp_path)
    assert leaked == [], f"files hold a canary secret while deployed: {leaked}"


def test_rm_leaves_no_plaintext(
    docker_client: Any, modes_stack: ModesStack, tmp_path: Path
) -> None:
    """Runs last among the modes_stack tests: removes the stack and looks everywhere."""
    name = modes_stack.name
    container = modes_stack.container
    sources = secret_sources(container, MODES_TARGETS)
    assert sources
    modes_stack.tool.ok("stack", "rm", name)
    assert engine_leftovers(name) == []
    gone = [
        str(p) for p in {*sources.values(), *(s.parent for s in sources.values())} if p.exists()
    ]
    assert gone == [], f"secret files or directories left on the tmpfs: {gone}"
    assert tmpfs_leftovers(name) == []
    root = docker_root()
    leaked = files_containing(
        modes_stack.values.values(),
        [root / "containers", root / "volumes", modes_stack.tool.home, TMPFS_ROOT],
        tmp_path,
    )
    assert leaked == [], f"files hold a canary secret after stack rm: {leaked}"
    # The stack's own (file) secrets left the store with it.
    left = [n for n in modes_stack.tool.secret_names() if n.startswith(f"{name}_")]
    assert left == []


# ------------------------------------------------------------------ redeploy


def test_redeploy_unchanged_changed_secret_and_replicas(docker_client: Any, stacks: Stacks) -> None:
    tool = stacks.tool
    compose = tool.compose("stack-redeploy.yml")
    old = stacks.canary()
    tool.secret_file("token.txt", old)
    name = stacks.new_name()
    web1, other1 = f"{name}_web_1", f"{name}_other_1"

    tool.ok("stack", "deploy", "-c", str(compose), name)
    wait_running(docker_client, name, [web1, other1])
    first = container_ids(docker_client, name)
    assert sorted(first) == [other1, web1]
    assert read_in(docker_client.containers.get(web1), "/run/secrets/token") == old

    # Unchanged file: nothing recreated.
    tool.ok("stack", "deploy", "-c", str(compose), name)
    assert container_ids(docker_client, name) == first

    # New secret content: web recreated with the new value at the same target; other kept.
    new = stacks.canary()
    tool.secret_file("token.txt", new)
    tool.ok("stack", "deploy", "-c", str(compose), name)
    wait_running(docker_client, name, [web1, other1])
    second = container_ids(docker_client, name)
    assert sorted(second) == [other1, web1]
    assert second[other1] == first[other1], "a service without the secret was recreated"
    assert second[web1] != first[web1], "the service using the changed secret was not recreated"
    web = docker_client.containers.get(web1)
    assert read_in(web, "/run/secrets/token") == new
    assert stat_in(web, "/run/secrets/token") == (1000, 0, 0o400)
    assert files_containing([old], [TMPFS_ROOT], tool.workdir.parent) == []

    # replicas: 2 -> <stack>_web_1 and <stack>_web_2, both with the secret.
    replicas = tool.compose("stack-redeploy-replicas.yml", "compose-replicas.yaml")
    tool.ok("stack", "deploy", "-c", str(replicas), name)
    web2 = f"{name}_web_2"
    wait_running(docker_client, name, [web1, web2, other1])
    third = container_ids(docker_client, name)
    assert sorted(third) == [other1, web1, web2]
    assert third[other1] == first[other1]
    for cname in (web1, web2):
        container = docker_client.containers.get(cname)
        assert container.labels.get("com.docker.compose.container-number") == cname[-1]
        assert read_in(container, "/run/secrets/token") == new
        assert stat_in(container, "/run/secrets/token") == (1000, 0, 0o400)
    srcs = [
        secret_sources(docker_client.containers.get(c), ["/run/secrets/token"])
        for c in (web1, web2)
    ]
    assert srcs[0] and srcs[1] and srcs[0] != srcs[1], f"replicas share secret files: {srcs}"
    inspected = docker_ok("inspect", *third.values())
    assert old not in inspected and new not in inspected, "docker inspect shows a secret value"
    assert files_containing([old], [TMPFS_ROOT, tool.home], tool.workdir.parent) == []


# ------------------------------------------------------------------ the guide's examples


def test_guide_simple_example(docker_client: Any, stacks: Stacks, tmp_path: Path) -> None:
    tool = stacks.tool
    value = f"This is a secret {stacks.canary()}"
    tool.ok("secret", "create", "my_secret_data", "-", stdin=value)
    name = stacks.new_name()
    compose = tool.compose("stack-simple.yml")
    tool.ok("stack", "deploy", "-c", str(compose), name)
    cname = f"{name}_redis_1"
    wait_running(docker_client, name, [cname])
    container = docker_client.containers.get(cname)
    assert read_in(container, "/run/secrets/my_secret_data") == value
    assert stat_in(container, "/run/secrets/my_secret_data") == (0, 0, 0o444)

    # Step 5: a committed container does not carry the secret.
    image = f"composesecrets-test/commit-{uuid.uuid4().hex[:10]}:guide"
    docker_ok("commit", container.id, image)
    try:
        proc = docker(
            "run", "--rm", "--network", "none", image, "cat", "/run/secrets/my_secret_data"
        )
        assert value not in proc.stdout
    finally:
        docker("rmi", "-f", image)

    # Step 6: removal refused while the stack uses it, naming the stack.
    refused = tool.run("secret", "rm", "my_secret_data")
    assert refused.returncode == EXIT_CONFLICT, refused.describe()
    assert name in refused.output, refused.describe()
    assert "my_secret_data" in tool.secret_names()
    assert read_in(container, "/run/secrets/my_secret_data") == value

    # Then allowed once the stack is gone; the external secret survives stack rm. `sleep` as
    # PID 1 never receives SIGTERM: the stop waits out stop_grace_period, and says why.
    removed = tool.ok("stack", "rm", name)
    assert (
        f"waiting up to 1s for {name}_redis_1 to stop (stop_grace_period; the process ignores"
        " SIGTERM)" in removed.stderr
    ), removed.describe()
    assert engine_leftovers(name) == []
    assert "my_secret_data" in tool.secret_names()
    tool.ok("secret", "rm", "my_secret_data")
    assert "my_secret_data" not in tool.secret_names()


def test_guide_rotation(docker_client: Any, stacks: Stacks) -> None:
    tool = stacks.tool
    v1, v2 = stacks.canary(), stacks.canary()
    tool.ok("secret", "create", "mysql_password", "-", stdin=v1)
    name = stacks.new_name()
    cname = f"{name}_mysql_1"
    target, old_target = "/run/secrets/mysql_password", "/run/secrets/old_mysql_password"

    tool.ok("stack", "deploy", "-c", str(tool.compose("stack-rotate-1.yml", "r1.yaml")), name)
    wait_running(docker_client, name, [cname])
    assert read_in(docker_client.containers.get(cname), target) == v1

    # Step 1-2: create v2, give the service both (old one moved to old_mysql_password).
    tool.ok("secret", "create", "mysql_password_v2", "-", stdin=v2)
    tool.ok("stack", "deploy", "-c", str(tool.compose("stack-rotate-2.yml", "r2.yaml")), name)
    wait_running(docker_client, name, [cname])
    container = docker_client.containers.get(cname)
    assert read_in(container, target) == v2
    assert read_in(container, old_target) == v1
    refused = tool.run("secret", "rm", "mysql_password")
    assert refused.returncode == EXIT_CONFLICT, refused.describe()

    # Step 4-6: only v2, same target, mode 0400; v1 gone from the tmpfs; v1 removable.
    tool.ok("stack", "deploy", "-c", str(tool.compose("stack-rotate-3.yml", "r3.yaml")), name)
    wait_running(docker_client, name, [cname])
    container = docker_client.containers.get(cname)
    assert read_in(container, target) == v2
    assert stat_in(container, target) == (0, 0, 0o400)
    assert not exists_in(container, old_target)
    assert files_containing([v1], [TMPFS_ROOT], tool.workdir.parent) == []
    tool.ok("secret", "rm", "mysql_password")
    assert "mysql_password" not in tool.secret_names()
    assert read_in(container, target) == v2


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("data_file", "codes", "needles"),
    [
        pytest.param("stack-undefined-secret.yml", {EXIT_INVALID}, ["nope"], id="undefined"),
        pytest.param(
            "stack-missing-external.yml", {EXIT_NOT_FOUND}, ["never_created"], id="external"
        ),
        pytest.param(
            "stack-unknown-image.yml",
            {EXIT_ENGINE, EXIT_ROLLED_BACK},
            ["ghost", "nonexistent/image:nope"],
            id="image",
        ),
    ],
)
def test_bad_input_changes_nothing(
    stacks: Stacks, data_file: str, codes: set[int], needles: list[str]
) -> None:
    tool = stacks.tool
    tool.secret_file("token.txt", stacks.canary())
    name = stacks.new_name()
    result = tool.deploy(name, tool.compose(data_file))
    assert result.returncode in codes, result.describe()
    for needle in needles:
        assert needle in result.output, f"{needle!r} not in the message\n{result.describe()}"
    assert "Traceback" not in result.output, result.describe()
    assert engine_leftovers(name) == []
    assert tmpfs_leftovers(name) == []
    if data_file == "stack-undefined-secret.yml":
        # Validation fails before anything changes, in the store too.
        assert tool.secret_names() == []


def test_name_clash_with_another_container(docker_client: Any, stacks: Stacks) -> None:
    tool = stacks.tool
    tool.secret_file("token.txt", stacks.canary())
    name = stacks.new_name()
    clash = f"{name}_web_1"
    squatter = docker_ok(
        "run",
        "-d",
        "--name",
        clash,
        "--network",
        "none",
        "--label",
        "cstest=clash",
        "composesecrets-test/busybox:latest",
        "sleep",
        "3600",
    ).strip()
    try:
        result = tool.deploy(name, tool.compose("stack-small.yml"))
        assert result.returncode == EXIT_CONFLICT, result.describe()
        assert clash in result.output, result.describe()
        assert "Traceback" not in result.output, result.describe()
        assert engine_leftovers(name) == []
        assert tmpfs_leftovers(name) == []
        kept = docker_client.containers.get(clash)
        assert kept.id == squatter and kept.status == "running", "the other container was touched"
    finally:
        docker("rm", "-f", squatter)


# ------------------------------------------------------------------ rm


def test_stack_rm_twice(docker_client: Any, stacks: Stacks) -> None:
    tool = stacks.tool
    tool.secret_file("token.txt", stacks.canary())
    name = stacks.new_name()
    tool.ok("stack", "deploy", "-c", str(tool.compose("stack-small.yml")), name)
    wait_running(docker_client, name, [f"{name}_web_1"])
    tool.ok("stack", "rm", name)
    assert engine_leftovers(name) == []
    assert tmpfs_leftovers(name) == []
    again = tool.run("stack", "rm", name)
    assert again.returncode == 0, again.describe()
    assert f"Nothing found in stack: {name}" in again.stderr  # as Docker says
    assert engine_leftovers(name) == []


def test_stack_rm_after_containers_removed_by_hand(docker_client: Any, stacks: Stacks) -> None:
    tool = stacks.tool
    tool.secret_file("token.txt", stacks.canary())
    name = stacks.new_name()
    tool.ok("stack", "deploy", "-c", str(tool.compose("stack-redeploy.yml")), name)
    wait_running(docker_client, name, [f"{name}_web_1", f"{name}_other_1"])
    dirs = secret_dirs(docker_client, name)
    assert len(dirs) == 1, f"secret directories of the stack while deployed: {dirs}"
    docker_ok("rm", "-f", *container_ids(docker_client, name).values())
    result = tool.run("stack", "rm", name)
    assert result.returncode == 0, result.describe()
    assert engine_leftovers(name) == []
    assert tmpfs_leftovers(name) == []
    assert [str(d) for d in dirs if d.exists()] == []


# ------------------------------------------------------------------ failure and rollback


def test_port_clash_rolls_back(docker_client: Any, stacks: Stacks) -> None:
    tool = stacks.tool
    value = stacks.canary()
    tool.secret_file("token.txt", value)
    port = free_port()
    env = {"CS_TEST_PORT": str(port)}
    holder = docker_ok(
        "run",
        "-d",
        "--label",
        "cstest=port-holder",
        "-p",
        f"{port}:80",
        "composesecrets-test/busybox:latest",
        "sleep",
        "3600",
    ).strip()
    try:
        clashing = tool.compose("stack-port.yml")

        # A fresh stack: the deploy fails, naming the service and the engine's reason,
        # and nothing of it remains.
        fresh = stacks.new_name()
        result = tool.deploy(fresh, clashing, extra_env=env)
        assert result.returncode == EXIT_ROLLED_BACK, result.describe()
        assert "web" in result.output, result.describe()
        assert "already allocated" in result.output, result.describe()
        assert engine_leftovers(fresh) == []
        assert tmpfs_leftovers(fresh) == []

        # An update of a running stack: the previous deployment keeps running untouched.
        name = stacks.new_name()
        tool.ok(
            "stack", "deploy", "-c", str(tool.compose("stack-port-base.yml", "base.yaml")), name
        )
        good = f"{name}_good_1"
        wait_running(docker_client, name, [good])
        before = container_ids(docker_client, name)
        dirs_before = secret_dirs(docker_client, name)
        assert dirs_before
        result = tool.deploy(name, clashing, extra_env=env)
        assert result.returncode == EXIT_ROLLED_BACK, result.describe()
        assert "web" in result.output, result.describe()
        assert container_ids(docker_client, name) == before
        assert docker_client.containers.get(good).status == "running"
        assert read_in(docker_client.containers.get(good), "/run/secrets/token") == value
        assert secret_dirs(docker_client, name) == dirs_before
        if TMPFS_ROOT.is_dir():
            # Only the running container's directory holds files (no file of `web`).
            files = [p for p in TMPFS_ROOT.rglob("*") if p.is_file()]
            mine = [p for p in files if str(p).startswith(f"{TMPFS_ROOT}/{name}")]
            assert all(any(d in p.parents for d in dirs_before) for p in mine), mine
    finally:
        docker("rm", "-f", holder)
