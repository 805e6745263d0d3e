"""Tests that prove the Docker test bed, and compare Docker's secret mounts with ours.

The last test is the point of the test bed: deploy tests/integration/data/secrets-stack.yml
on the local swarm, look at the files Docker actually mounted (owner, group, mode, path)
and check that `composesecrets config --format json` predicts exactly that.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DATA = Path(__file__).resolve().parents[1] / "data"
STACK_FILE = DATA / "secrets-stack.yml"
SERVICE = "app"
NAMESPACE_LABEL = "com.docker.stack.namespace"
DEPLOY_TIMEOUT = 90.0
REMOVE_TIMEOUT = 60.0

# What Docker does with secrets-stack.yml: target -> (uid, gid, mode, source file).
# Docker behaviour, not our code: a relative target lands under /run/secrets/, defaults
# are uid 0, gid 0, mode 0444, and an absolute target is used as is.
EXPECTED_MOUNTS: dict[str, tuple[str, str, int, str]] = {
    "/run/secrets/db_password": ("0", "0", 0o444, "db_password.txt"),
    "/run/secrets/api.key": ("1000", "1000", 0o440, "api_key.txt"),
    "/etc/app/key.pem": ("0", "0", 0o400, "tls_key.pem"),
}


@dataclass(frozen=True)
class DeployedStack:
    name: str
    compose_file: Path
    container: Any  # docker.models.containers.Container


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    )
    return proc.stdout


def wait_until_gone(list_left: Callable[[], list[str]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while left := list_left():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still present after {timeout:.0f}s: {left}")
        time.sleep(0.5)


def stack_filter(name: str) -> dict[str, str]:
    return {"label": f"{NAMESPACE_LABEL}={name}"}


def running_container(client: Any, stack: str) -> Any:
    """Wait for the stack's single task to run and return its container."""
    deadline = time.monotonic() + DEPLOY_TIMEOUT
    last = "no task yet"
    while time.monotonic() < deadline:
        for service in client.services.list(filters=stack_filter(stack)):
            for task in service.tasks():
                status = task.get("Status", {})
                state = status.get("State")
                last = f"task state {state!r} {status.get('Err', '')}".strip()
                if state in {"failed", "rejected", "orphaned"}:
                    raise AssertionError(f"task of {service.name} did not start: {last}")
                container_id = status.get("ContainerStatus", {}).get("ContainerID")
                if state == "running" and container_id:
                    return client.containers.get(container_id)
        time.sleep(0.5)
    raise AssertionError(f"stack {stack} not running after {DEPLOY_TIMEOUT:.0f}s ({last})")


def stack_leftovers(client: Any, stack: str) -> list[str]:
    flt = stack_filter(stack)
    found = [f"service {s.name}" for s in client.services.list(filters=flt)]
    found += [f"secret {s.name}" for s in client.secrets.list(filters=flt)]
    found += [f"network {n.name}" for n in client.networks.list(filters=flt)]
    found += [f"container {c.name}" for c in client.containers.list(all=True, filters=flt)]
    return found


def observe(container: Any, target: str) -> tuple[str, str, int, str]:
    """(uid, gid, mode, sha256) of a file inside the container, as the engine mounted it."""
    code, out = container.exec_run(["stat", "-c", "%u %g %a %n", target])
    text = out.decode().strip()
    assert code == 0, f"stat {target} failed in the container: {text}"
    uid, gid, mode, name = text.split(" ", 3)
    assert name == target
    code, out = container.exec_run(["sha256sum", target])
    assert code == 0, f"sha256sum {target} failed in the container"
    return uid, gid, int(mode, 8), out.decode().split()[0]


@pytest.fixture(scope="module")
def deployed_stack(
    docker_client: Any, swarm: dict[str, Any], test_image: str, tmp_path_factory: Any
) -> Iterator[DeployedStack]:
    docker_cli = shutil.which("docker")
    assert docker_cli, "the docker CLI is needed for `docker stack deploy`"
    workdir: Path = tmp_path_factory.mktemp("secrets-stack")
    compose_file = workdir / STACK_FILE.name
    shutil.copyfile(STACK_FILE, compose_file)
    for _uid, _gid, _mode, filename in EXPECTED_MOUNTS.values():
        (workdir / filename).write_text(secrets.token_urlsafe(24) + "\n")

    name = f"cstb{uuid.uuid4().hex[:10]}"
    try:
        deploy = [docker_cli, "stack", "deploy", "--resolve-image", "never"]
        run([*deploy, "-c", str(compose_file), name], cwd=workdir)
        container = running_container(docker_client, name)
        yield DeployedStack(name=name, compose_file=compose_file, container=container)
    finally:
        subprocess.run(
            [docker_cli, "stack", "rm", name], capture_output=True, check=False, timeout=60
        )
        wait_until_gone(
            lambda: stack_leftovers(docker_client, name), REMOVE_TIMEOUT, f"stack {name}"
        )


def test_test_image_runs(docker_client: Any, test_image: str) -> None:
    out = docker_client.containers.run(
        test_image, ["sh", "-c", "id -u; cat /etc/passwd"], remove=True, network_mode="none"
    ).decode()
    first, *passwd = out.splitlines()
    assert first == "0"
    users = {line.split(":")[0]: line.split(":")[2:4] for line in passwd}
    assert users["root"] == ["0", "0"]
    assert users["app"] == ["1000", "1000"]
    assert users["nobody"] == ["65534", "65534"]

    as_app = docker_client.containers.run(
        test_image, ["id"], user="app", remove=True, network_mode="none"
    ).decode()
    assert as_app.strip() == "uid=1000(app) gid=1000(app) groups=1000(app)"


def test_swarm_is_active_manager(docker_client: Any, swarm: dict[str, Any]) -> None:
    assert swarm["LocalNodeState"] == "active"
    assert swarm["ControlAvailable"] is True
    node = docker_client.nodes.get(swarm["NodeID"])
    assert node.attrs["Spec"]["Role"] == "manager"
    assert node.attrs["Status"]["State"] == "ready"


def test_docker_mounts_secrets_as_documented(deployed_stack: DeployedStack) -> None:
    workdir = deployed_stack.compose_file.parent
    for target, (uid, gid, mode, filename) in EXPECTED_MOUNTS.items():
        digest = hashlib.sha256((workdir / filename).read_bytes()).hexdigest()
        assert observe(deployed_stack.container, target) == (uid, gid, mode, digest), target
        # Secret mounts are read-only, whoever writes.
        code, _ = deployed_stack.container.exec_run(["sh", "-c", f": > {target}"])
        assert code != 0, f"{target} is writable"


def test_docker_mounts_match_composesecrets_config(deployed_stack: DeployedStack) -> None:
    compose_file = deployed_stack.compose_file
    cli = [sys.executable, "-m", "composesecrets"]
    out = run(
        [*cli, "config", "--format", "json", "-c", str(compose_file)], cwd=compose_file.parent
    )
    config = json.loads(out)
    refs = config["services"][SERVICE]["secrets"]
    predicted = {ref["target"]: (ref["uid"], ref["gid"], ref["mode"]) for ref in refs}
    assert len(predicted) == len(refs), "duplicate targets in the normalised config"
    assert set(predicted) == set(EXPECTED_MOUNTS)

    for ref in refs:
        definition = config["secrets"][ref["source"]]
        filename = EXPECTED_MOUNTS[ref["target"]][3]
        assert Path(definition["file"]) == compose_file.parent / filename

    for target, prediction in predicted.items():
        uid, gid, mode, _digest = observe(deployed_stack.container, target)
        assert (uid, gid, mode) == prediction, (
            f"{target}: Docker mounted uid={uid} gid={gid} mode={mode:o}, "
            f"composesecrets config says uid={prediction[0]} gid={prediction[1]} "
            f"mode={prediction[2]:o}"
        )
