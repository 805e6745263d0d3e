"""``composesecrets doctor`` against the running engine (issue 14)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_doctor_sees_the_engine_swarm_and_a_fresh_store(
    docker_client: Any, swarm: dict[str, Any], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSESECRETS_")}
    env.pop("DOCKER_HOST", None)
    env.update(
        COMPOSESECRETS_HOME=str(tmp_path / "store"),
        COMPOSESECRETS_KEY=base64.b64encode(os.urandom(32)).decode(),
    )
    cli = [sys.executable, "-m", "composesecrets"]
    made = subprocess.run(
        [*cli, "secret", "create", "doctor_probe", "-"], input=b"x", env=env, capture_output=True
    )
    assert made.returncode == 0, made.stderr
    result = subprocess.run(
        [*cli, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    checks = {c["Check"]: c for c in json.loads(result.stdout)}
    version = docker_client.version()["Version"]
    assert checks["engine"]["Status"] == "ok"
    assert f"Docker Engine {version}" in checks["engine"]["Text"]
    assert checks["swarm"]["Status"] == "ok"  # the test engine is a swarm manager
    assert checks["store"]["Status"] == "ok"
    assert "1 secret, unlocked with env" in checks["store"]["Text"]
    # as root: /run/composesecrets is a tmpfs, or not mounted yet (deploy mounts it)
    assert checks["tmpfs"]["Status"] == "ok", checks["tmpfs"]
    assert result.returncode == 0, result.stdout
