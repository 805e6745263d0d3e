"""Helpers shared by the integration tests (imported as ``helpers``: pytest puts this
directory on sys.path for the test files in it, which have no package).

The docker CLI and the composesecrets CLI as subprocesses, canary values and private
secret files, a search for canaries in files, what a container shows of its files, and
what a stack leaves on the engine and the tool's tmpfs after `stack rm`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

DATA = Path(__file__).resolve().parent / "data"
STACK_LABEL = "io.composesecrets.stack"
TMPFS_ROOT = Path("/run/composesecrets")  # the tool's own tmpfs when it runs as root
CLI_TIMEOUT = 180.0

# Exit codes from composesecrets/errors.py.
EXIT_INVALID = 1
EXIT_NOT_FOUND = 5
EXIT_CONFLICT = 6
EXIT_ENGINE = 8
EXIT_ROLLED_BACK = 9

# data/stack-modes.yml: target -> (uid, gid, mode, secret file). Relative targets land
# under /run/secrets/; the defaults are uid 0, gid 0, mode 0444.
MODES_TARGETS: dict[str, tuple[int, int, int, str]] = {
    "/run/secrets/short_s": (0, 0, 0o444, "short.txt"),
    "/run/secrets/api.key": (1000, 1000, 0o440, "long.txt"),
    "/etc/app/key.pem": (0, 0, 0o400, "key.pem"),
    "/run/secrets/twice_a": (1000, 0, 0o400, "twice.txt"),
    "/opt/twice_b": (65534, 1000, 0o444, "twice.txt"),
}

# ------------------------------------------------------------------ commands


def ours() -> list[str]:
    """The composesecrets command of this venv (its console script when installed)."""
    script = Path(sys.executable).with_name("composesecrets")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "composesecrets"]


def docker_cli() -> str:
    found = shutil.which("docker")
    assert found, "the docker CLI is needed"
    return found


def docker(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker_cli(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def docker_ok(*args: str, stdin: str | None = None, timeout: float = 120) -> str:
    proc = docker(*args, stdin=stdin, timeout=timeout)
    assert proc.returncode == 0, (
        f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
    )
    return proc.stdout


def random_key() -> str:
    """A COMPOSESECRETS_KEY: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode()


def store_env(home: Path) -> dict[str, str]:
    """This process's environment without COMPOSESECRETS_*, then a store at ``home``
    unlocked by a random key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSESECRETS_")}
    env.update(COMPOSESECRETS_HOME=str(home), COMPOSESECRETS_KEY=random_key())
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ secret values


def canary() -> str:
    return f"CANARY-{uuid.uuid4()}"


def write_private(path: Path, value: str) -> None:
    """Write a secret file 0600 (no trailing newline: the mounted file must equal the value)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    os.chmod(path, 0o600)


def files_containing(values: Iterable[str], roots: Iterable[Path], pattern_dir: Path) -> list[str]:
    """Files under ``roots`` that contain any of ``values`` (grep -r -l -F).

    The values go to grep through a pattern file in ``pattern_dir`` (never on its command
    line); the pattern file must not be under a root.
    """
    existing = [str(root) for root in roots if root.exists()]
    patterns = [v for v in values if v]
    if not existing or not patterns:
        return []
    pattern_file = pattern_dir / f"patterns-{uuid.uuid4().hex}"
    write_private(pattern_file, "\n".join(patterns) + "\n")
    try:
        proc = subprocess.run(
            [
                "grep",
                "-r",
                "-l",
                "-s",
                "-F",
                "--devices=skip",
                "-f",
                str(pattern_file),
                "--",
                *existing,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        pattern_file.unlink()
    assert proc.returncode in (0, 1, 2), f"grep failed: {proc.stderr}"
    return proc.stdout.split()


def docker_root() -> Path:
    return Path(docker_ok("info", "-f", "{{.DockerRootDir}}").strip())


# ------------------------------------------------------------------ the composesecrets CLI


@dataclass
class Result:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.cmd)}\nexit {self.returncode}\n"
            f"stdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}"
        )


@dataclass
class Tool:
    """The composesecrets CLI with its own store, run in a working directory."""

    home: Path
    workdir: Path
    env: dict[str, str]

    @classmethod
    def create(cls, base: Path) -> Tool:
        home = base / "store"
        workdir = base / "work"
        workdir.mkdir(mode=0o700)
        return cls(home=home, workdir=workdir, env=store_env(home))

    def run(
        self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None
    ) -> Result:
        cmd = [*ours(), *args]
        env = {**self.env, **(extra_env or {})}
        proc = subprocess.run(
            cmd,
            cwd=self.workdir,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=CLI_TIMEOUT,
        )
        return Result(cmd, proc.returncode, proc.stdout, proc.stderr)

    def ok(
        self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None
    ) -> Result:
        result = self.run(*args, stdin=stdin, extra_env=extra_env)
        assert result.returncode == 0, result.describe()
        return result

    def compose(self, data_file: str, name: str = "compose.yaml") -> Path:
        """Copy tests/integration/data/<data_file> into the working directory."""
        target = self.workdir / name
        shutil.copyfile(DATA / data_file, target)
        return target

    def secret_file(self, name: str, value: str) -> Path:
        path = self.workdir / name
        write_private(path, value)
        return path

    def deploy(self, stack: str, *files: Path, extra_env: dict[str, str] | None = None) -> Result:
        args = ["stack", "deploy"]
        for path in files:
            args += ["-c", str(path)]
        return self.run(*args, stack, extra_env=extra_env)

    def secret_names(self) -> list[str]:
        out = self.ok("secret", "ls", "--format", "json").stdout
        return sorted(entry["Spec"]["Name"] for entry in json.loads(out))


# ------------------------------------------------------------------ leftovers and cleanup


def labelled(stack: str) -> str:
    return f"label={STACK_LABEL}={stack}"


def engine_leftovers(stack: str) -> list[str]:
    """Containers and networks labelled with the stack, as the docker CLI lists them."""
    containers = docker_ok("ps", "-a", "--filter", labelled(stack), "--format", "{{.Names}}")
    networks = docker_ok("network", "ls", "--filter", labelled(stack), "--format", "{{.Name}}")
    return [f"container {n}" for n in containers.split()] + [
        f"network {n}" for n in networks.split()
    ]


def tmpfs_leftovers(stack: str) -> list[str]:
    """Secret directories of the stack on the tool's tmpfs, and everything below them.

    The contract names them /run/composesecrets/<container-name>/; the engine backend keeps
    them as /run/composesecrets/<stack>/<token>/. Every entry whose name starts with the
    stack's name is looked for (both layouts); tests also check the exact directories they
    saw bind-mounted.
    """
    if not TMPFS_ROOT.is_dir():
        return []
    found = [*TMPFS_ROOT.glob(f"{stack}*")]
    # Everything below them too, so that a failure shows whether files were left.
    found += [p for top in list(found) if top.is_dir() for p in top.rglob("*")]
    return sorted(str(p) for p in found)


def force_remove(stack: str) -> None:
    """Remove by hand the containers, networks and tmpfs directories of the stack."""
    ids = docker_ok("ps", "-a", "-q", "--filter", labelled(stack)).split()
    if ids:
        docker("rm", "-f", *ids)
    nets = docker_ok("network", "ls", "-q", "--filter", labelled(stack)).split()
    if nets:
        docker("network", "rm", *nets)
    for left in tmpfs_leftovers(stack):
        subprocess.run(["umount", "-l", left], capture_output=True, check=False)
        shutil.rmtree(left, ignore_errors=True)


def remove_leftovers(stack: str) -> list[str]:
    """After `stack rm`: what is left of the stack on the engine and the tmpfs, as a
    problem (empty when nothing is); then remove it by hand."""
    left = engine_leftovers(stack) + tmpfs_leftovers(stack)
    force_remove(stack)
    return [f"stack {stack} left behind after `stack rm`: {left}"] if left else []


class CleansUp(Protocol):
    def cleanup(self) -> list[str]:
        """Remove what was deployed; return the problems found (empty when all is well)."""
        ...


S = TypeVar("S", bound=CleansUp)


@contextmanager
def checked_cleanup(current: S) -> Iterator[S]:
    """Yield ``current``; at the end run its cleanup, and fail the test on any problem.

    After an exception the cleanup still runs, but the original failure is reported.
    """
    try:
        yield current
    except BaseException:
        current.cleanup()
        raise
    problems = current.cleanup()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ------------------------------------------------------------------ inside containers


def exec_ok(container: Any, *cmd: str) -> str:
    code, out = container.exec_run(list(cmd))
    text: str = out.decode(errors="replace")
    assert code == 0, f"{' '.join(cmd)} in {container.name} exited {code}: {text.strip()}"
    return text


def stat_in(container: Any, path: str) -> tuple[int, int, int]:
    """(uid, gid, mode) of ``path`` in the container."""
    uid, gid, mode = exec_ok(container, "stat", "-c", "%u %g %a", path).split()
    return int(uid), int(gid), int(mode, 8)


def read_in(container: Any, path: str) -> str:
    return exec_ok(container, "cat", path)


def exists_in(container: Any, path: str) -> bool:
    code, _ = container.exec_run(["test", "-e", path])
    return bool(code == 0)


def stack_containers(client: Any, stack: str) -> dict[str, Any]:
    """name -> container of every container labelled with the stack."""
    found = client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={stack}"})
    return {c.name: c for c in found}


def wait_running(client: Any, stack: str, names: Iterable[str], timeout: float = 30) -> None:
    wanted = set(names)
    deadline = time.monotonic() + timeout
    while True:
        found = stack_containers(client, stack)
        states = {n: found[n].status if n in found else "missing" for n in wanted}
        if all(s == "running" for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"containers of {stack} not running: {states}")
        time.sleep(0.3)
