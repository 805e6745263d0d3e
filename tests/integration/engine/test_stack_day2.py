"""Day two on one engine (issue 10): `stack restore` after a reboot, redeploys without the
plaintext files, and `stack rm` that always finishes.

The restore test stops dockerd and unmounts the tool's tmpfs (what a reboot does); developers
sharing one engine run integration tests under one lock
(``flock /tmp/composesecrets-engine.lock ...``). It puts the machine back whatever
happens: dockerd started again with scripts/ensure-engine.sh (the swarm active again), the
tmpfs mounted again at /run/composesecrets, the secret directories of other stacks copied
back (through /dev/shm, memory only) and their running containers started again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from integration.helpers import (
    TMPFS_ROOT,
    docker,
    docker_ok,
    engine_leftovers,
    read_in,
    stat_in,
    wait_running,
)
from test_stack_engine import Stacks, stack_session  # type: ignore[import-not-found]  # same directory, as pytest imports it

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[3]
ENSURE_ENGINE = REPO_ROOT / "scripts" / "ensure-engine.sh"
# a process that ends on SIGTERM: a daemon shutdown does not wait out a grace period
SLEEPER = '["sh", "-c", "trap \\"exit 0\\" TERM; sleep 3600 & wait"]'

STACK_A = f"""\
version: "3.8"
services:
  app:
    image: {{image}}
    command: {SLEEPER}
    stop_grace_period: 1s
    deploy:
      replicas: 2
    secrets:
      - source: pw
        target: app/pw
        uid: "1000"
        gid: "1001"
        mode: 0440
  idle:
    image: {{image}}
    command: {SLEEPER}
    stop_grace_period: 1s
    restart: unless-stopped
    secrets: [pw]
secrets:
  pw:
    file: ./pw.txt
"""

STACK_B = f"""\
version: "3.8"
services:
  db:
    image: {{image}}
    command: {SLEEPER}
    stop_grace_period: 1s
    restart: always
    secrets:
      - source: key
        target: /etc/db/key
        uid: "33"
        gid: "33"
        mode: 0400
      - key
  worker:
    image: {{image}}
    command: {SLEEPER}
    stop_grace_period: 1s
    deploy:
      restart_policy:
        condition: any
    secrets: [key]
secrets:
  key:
    file: ./key.txt
"""


@pytest.fixture
def stacks(docker_client: Any, test_image: str, tmp_path: Path) -> Iterator[Stacks]:
    with stack_session(tmp_path) as session:
        yield session


# ------------------------------------------------------------------ the machine


def engine_up() -> bool:
    return docker("info", timeout=20).returncode == 0


def dockerd_pid() -> int | None:
    try:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None


def dockerd_args(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")[1:]


def stop_dockerd(pid: int, timeout: float = 90) -> None:
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"dockerd (pid {pid}) did not stop in {timeout}s"
        time.sleep(0.1)


# the daemon keeps the HOME it had, not the test's private one (read at collection, before
# the autouse fixture changes it)
DAEMON_HOME = os.environ.get("HOME") or "/root"


def start_dockerd(args: list[str]) -> None:
    """scripts/ensure-engine.sh, as the machine was set up (same dockerd arguments)."""
    env = {**os.environ, "COMPOSESECRETS_SKIP_TEST_IMAGES": "1", "HOME": DAEMON_HOME,
           "COMPOSESECRETS_DOCKERD_ARGS": " ".join(args)}  # fmt: skip
    done = subprocess.run([str(ENSURE_ENGINE)], env=env, capture_output=True, text=True,
                          timeout=180, check=False)  # fmt: skip
    assert done.returncode == 0, f"ensure-engine.sh failed:\n{done.stderr[-2000:]}"


def mount_tmpfs() -> None:
    TMPFS_ROOT.mkdir(mode=0o700, exist_ok=True)
    if not os.path.ismount(TMPFS_ROOT):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,nodev,nosuid,noexec,size=64m",
                        "composesecrets", str(TMPFS_ROOT)], check=True)  # fmt: skip


@contextmanager
def reboot(ours: list[str]) -> Iterator[None]:
    """dockerd stopped, the tmpfs unmounted, dockerd started again; at the end (whatever
    happened) the machine as it was: see the module doc. ``ours``: stacks of the test."""
    pid = dockerd_pid()
    assert pid is not None, "dockerd is not running (or /var/run/docker.pid is stale)"
    args = dockerd_args(pid)
    running = [c for c in docker_ok("ps", "-q", "--no-trunc").split()]
    backup = Path(tempfile.mkdtemp(prefix="cs-tmpfs-", dir="/dev/shm"))
    others = [p for p in TMPFS_ROOT.iterdir() if p.name not in ours] if TMPFS_ROOT.is_dir() else []
    try:
        for path in others:
            subprocess.run(["cp", "-a", str(path), str(backup)], check=True)
        stop_dockerd(pid)
        subprocess.run(["umount", str(TMPFS_ROOT)], check=True)
        start_dockerd(args)
        yield
    finally:
        if not engine_up():
            start_dockerd(args)
        mount_tmpfs()
        for path in backup.iterdir():
            if not (TMPFS_ROOT / path.name).exists():
                subprocess.run(["cp", "-a", str(path), str(TMPFS_ROOT)], check=False)
        shutil.rmtree(backup, ignore_errors=True)
        now = set(docker_ok("ps", "-q", "--no-trunc").split())
        others_stopped = [c for c in running if c not in now]
        if others_stopped:
            docker("start", *others_stopped)


# ------------------------------------------------------------------ 1. stack restore


def secret_view(client: Any, stack: str, targets: dict[str, list[str]]) -> dict[str, Any]:
    """container -> {target: (uid, gid, mode, content)} as the container sees them."""
    out: dict[str, Any] = {}
    for name, paths in targets.items():
        container = client.containers.get(f"{stack}_{name}")
        out[name] = {p: (*stat_in(container, p), read_in(container, p)) for p in paths}
    return out


def test_restore_after_a_reboot(docker_client: Any, stacks: Stacks, test_image: str) -> None:
    tool = stacks.tool
    tool.secret_file("pw.txt", stacks.canary())
    tool.secret_file("key.txt", stacks.canary())
    a, b = stacks.new_name(), stacks.new_name()
    for name, text in ((a, STACK_A), (b, STACK_B)):
        compose = tool.workdir / f"{name}.yml"
        compose.write_text(text.replace("{image}", test_image))
        tool.ok("stack", "deploy", "-c", str(compose), name)
    targets_a = {"app_1": ["/run/secrets/app/pw"], "app_2": ["/run/secrets/app/pw"],
                 "idle_1": ["/run/secrets/pw"]}  # fmt: skip
    targets_b = {"db_1": ["/etc/db/key", "/run/secrets/key"], "worker_1": ["/run/secrets/key"]}
    wait_running(docker_client, a, [f"{a}_{n}" for n in targets_a])
    wait_running(docker_client, b, [f"{b}_{n}" for n in targets_b])
    before = (secret_view(docker_client, a, targets_a), secret_view(docker_client, b, targets_b))
    assert before[0]["app_1"]["/run/secrets/app/pw"][:3] == (1000, 1001, 0o440)
    assert before[1]["db_1"]["/etc/db/key"][:3] == (33, 33, 0o400)
    docker_ok("stop", f"{a}_idle_1")  # the user stops it before the reboot
    # the plaintext files are gone too (the security model recommends it)
    for path in tool.workdir.glob("*.txt"):
        path.unlink()

    with reboot([a, b]):
        down = {n: docker_client.containers.get(f"{a}_{n}").status for n in targets_a}
        assert all(state != "running" for state in down.values()), down
        restored = tool.run("stack", "restore", "--all")
        assert restored.returncode == 0, restored.describe()
        want_a = [f"{a}_app_1", f"{a}_app_2"]
        want_b = [f"{b}_db_1", f"{b}_worker_1"]
        wait_running(docker_client, a, want_a, timeout=10)
        wait_running(docker_client, b, want_b, timeout=10)
        assert docker_client.containers.get(f"{a}_idle_1").status == "exited"
        del targets_a["idle_1"]
        after = (secret_view(docker_client, a, targets_a), secret_view(docker_client, b, targets_b))
        del before[0]["idle_1"]
        assert after == before
        again = tool.run("stack", "restore", "--all")
        assert again.returncode == 0, again.describe()
        assert "0 started" in again.stdout
        # the stopped one can be started by hand: its files are back
        docker_ok("start", f"{a}_idle_1")
        wait_running(docker_client, a, [f"{a}_idle_1"], timeout=10)


# ------------------------------------------------------------------ 2. without the files


def test_redeploy_without_the_plaintext_file(docker_client: Any, stacks: Stacks,
                                              test_image: str) -> None:  # fmt: skip
    tool = stacks.tool
    tool.secret_file("key.txt", stacks.canary())
    name = stacks.new_name()
    compose = tool.workdir / "b.yml"
    compose.write_text(STACK_B.replace("{image}", test_image))
    tool.ok("stack", "deploy", "-c", str(compose), name)
    (tool.workdir / "key.txt").unlink()
    again = tool.ok("stack", "deploy", "-c", str(compose), name)
    assert f"using {name}_key version 1 from the store" in again.stderr
    assert "2 unchanged" in again.stdout
    tool.ok("stack", "rm", name)
    refused = tool.run("stack", "deploy", "-c", str(compose), name)
    assert refused.returncode == 1 and "key.txt" in refused.stderr, refused.describe()


# ------------------------------------------------------------------ 4. stack rm


def wide_stack(stacks: Stacks, image: str, count: int = 30) -> Path:
    """A compose file of ``count`` services sharing one secret, key.txt (written)."""
    tool = stacks.tool
    tool.secret_file("key.txt", stacks.canary())
    services = "".join(
        f"  s{i}:\n    image: {image}\n    command: {SLEEPER}\n"
        f"    stop_grace_period: 1s\n    secrets: [key]\n"
        for i in range(count)
    )
    compose: Path = tool.workdir / "wide.yml"
    compose.write_text(f'version: "3.8"\nservices:\n{services}secrets:\n  key:\n'
                       "    file: ./key.txt\n")  # fmt: skip
    return compose


def test_rm_of_a_30_service_stack_ten_times(docker_client: Any, stacks: Stacks,
                                            test_image: str) -> None:  # fmt: skip
    tool = stacks.tool
    compose = wide_stack(stacks, test_image)
    name = stacks.new_name()
    failures = []
    for round_ in range(10):
        tool.ok("stack", "deploy", "-q", "-c", str(compose), name)
        removed = tool.run("stack", "rm", "-q", name)
        left = engine_leftovers(name)
        if removed.returncode != 0 or left:
            failures.append(f"round {round_}: {removed.describe()} left: {left}")
    assert failures == []


def test_rm_after_a_redeploy_that_replaced_30_containers(
    docker_client: Any, stacks: Stacks, test_image: str
) -> None:
    """A new secret version replaces every container; each replacement is renamed while it
    runs. Docker's rename rewrote the network's endpoint count while other containers
    joined and left it: the network then had "active endpoints" and no container, and
    `stack rm` exited 8 on it (before, 2 of 2 rounds at this size)."""
    tool = stacks.tool
    compose = wide_stack(stacks, test_image)
    failures = []
    for round_ in range(2):
        name = stacks.new_name()
        tool.ok("stack", "deploy", "-q", "-c", str(compose), name)
        tool.secret_file("key.txt", stacks.canary())
        redeployed = tool.ok("stack", "deploy", "-c", str(compose), name)
        assert "30 recreated" in redeployed.stdout, redeployed.describe()
        removed = tool.run("stack", "rm", "-q", name)
        left = engine_leftovers(name)
        if removed.returncode != 0 or left:
            failures.append(f"round {round_}: {removed.describe()} left: {left}")
    assert failures == []


GRACE = """\
version: "3.8"
services:
  deaf:
    image: {image}
    command: ["sleep", "3600"]
    stop_grace_period: 2s
    secrets: [key]
  graceful:
    image: {image}
    command: ["sh", "-c", "trap 'sleep 1; exit 7' TERM; while :; do sleep 0.2; done"]
    stop_grace_period: 10s
    secrets: [key]
secrets:
  key:
    file: ./key.txt
"""


def test_rm_gives_a_process_that_receives_its_signal_its_grace_period(
    docker_client: Any, stacks: Stacks, test_image: str
) -> None:
    """`sleep` as PID 1 cannot receive SIGTERM: it is killed (137), its notice says why. The
    shell traps SIGTERM: it gets its grace period and exits by itself (7)."""
    tool = stacks.tool
    tool.secret_file("key.txt", stacks.canary())
    compose = tool.workdir / "grace.yml"
    compose.write_text(GRACE.replace("{image}", test_image))
    name = stacks.new_name()
    tool.ok("stack", "deploy", "-c", str(compose), name)
    wait_running(docker_client, name, [f"{name}_deaf_1", f"{name}_graceful_1"])
    since = int(time.time()) - 1
    removed = tool.ok("stack", "rm", name)
    events = docker_client.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"event": "die", "label": f"io.composesecrets.stack={name}"},
        decode=True,
    )
    exits = {e["Actor"]["Attributes"]["name"]: e["Actor"]["Attributes"]["exitCode"]
             for e in events}  # fmt: skip
    assert exits == {f"{name}_deaf_1": "137", f"{name}_graceful_1": "7"}, removed.describe()
    assert (
        f"waiting up to 2s for {name}_deaf_1 to stop (stop_grace_period; the process ignores"
        " SIGTERM)" in removed.stderr
    ), removed.describe()
    assert (
        f"waiting up to 10s for {name}_graceful_1 to stop (stop_grace_period)\n" in removed.stderr
    ), removed.describe()
    assert engine_leftovers(name) == []
