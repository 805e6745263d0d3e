"""The guide's simple example (examples/simple) on both backends: the secret's files with
their owners and modes, `secret rm` refused while the stack uses it, allowed afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from integration.helpers import canary, random_key

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "simple" / "compose.yaml"


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "composesecrets", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert "Traceback" not in result.stderr
    return result


def task_container(docker_client: Any, stack: str, backend: str) -> Any:
    if backend == "engine":
        return docker_client.containers.get(f"{stack}_app_1")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = docker_client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={stack}_app", "status": "running"}
        )
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no running task of {stack}_app")


@pytest.mark.parametrize("backend", ["engine", "swarm"])
def test_simple_example(
    backend: str, tmp_path: Path, docker_client: Any, test_image: str, swarm: Any
) -> None:
    value = canary()
    stack = f"cssimple{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "COMPOSESECRETS_HOME": str(tmp_path / "store"),
        "COMPOSESECRETS_KEY": random_key(),
        "IMAGE": test_image,
    }
    created = run(env, "secret", "create", "my_secret_data", "-", stdin=value)
    assert created.returncode == 0, created.stderr
    try:
        deployed = run(env, "stack", "deploy", "--backend", backend, "-c", str(EXAMPLE), stack)
        assert deployed.returncode == 0, deployed.stderr
        container = task_container(docker_client, stack, backend)
        code, out = container.exec_run(
            ["sh", "-c", "stat -c '%u %g %a' /run/secrets/my_secret_data "
             "/run/secrets/app/secret.txt; cat /run/secrets/app/secret.txt"],
            user="1000",
        )  # fmt: skip
        assert code == 0, out
        assert out.decode().splitlines() == ["0 0 444", "1000 1000 400", value]
        refused = run(env, "secret", "rm", "my_secret_data")
        assert refused.returncode == 6
        assert stack in refused.stderr
        listed = json.loads(run(env, "stack", "ps", "--format", "json", stack).stdout)
        assert listed and all("/run/secrets/app/secret.txt" in c["Secrets"] for c in listed)
    finally:
        removed = run(env, "stack", "rm", stack)
    assert removed.returncode == 0, removed.stderr
    assert run(env, "secret", "rm", "my_secret_data").returncode == 0
    assert value not in created.stdout + deployed.stdout + deployed.stderr + removed.stderr
