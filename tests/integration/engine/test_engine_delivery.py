"""Engine backend edge cases: copy delivery, remote engines, recovery after a restart, TTY
progress. Each test uses its own stack name, store and canary values, and removes the stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration.helpers import TMPFS_ROOT, canary, random_key, stat_in, write_private

COMPOSE = """\
version: "3.8"
services:
  app:
    image: {image}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    environment:
      APP_PASSWORD: not-a-secret  # a plaintext-credential warning on every deploy
    secrets:
      - source: token
        target: token.txt
        uid: "1000"
        gid: "1000"
        mode: 0400
      - source: token
        target: /etc/app/token
        mode: 0440
secrets:
  token:
    file: ./token.txt
"""


class Tool:
    def __init__(self, work: Path, image: str) -> None:
        self.work = work
        self.stack = f"csd{uuid.uuid4().hex[:10]}"
        self.value = canary()
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(work),
            "COMPOSESECRETS_HOME": str(work / "store"),
            "COMPOSESECRETS_KEY": random_key(),
        }
        (work / "compose.yaml").write_text(COMPOSE.format(image=image))
        write_private(work / "token.txt", self.value)

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "composesecrets", *args],
            cwd=self.work,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert self.value not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result

    def deploy(
        self, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run("stack", "deploy", "-c", "compose.yaml", *extra, self.stack, env=env)


@pytest.fixture
def tool(tmp_path: Path, docker_client: Any, test_image: str) -> Iterator[Tool]:
    made = Tool(tmp_path, test_image)
    yield made
    made.run("stack", "rm", made.stack)
    leftovers = docker_client.containers.list(
        all=True, filters={"label": f"io.composesecrets.stack={made.stack}"}
    )
    assert leftovers == []
    assert not (TMPFS_ROOT / made.stack).exists()


def test_copy_delivery_writes_files_with_owner_and_mode(tool: Tool, docker_client: Any) -> None:
    result = tool.deploy("--secret-delivery", "copy")
    assert result.returncode == 0, result.stderr
    assert "writable layer" in result.stderr  # the plaintext warning
    container = docker_client.containers.get(f"{tool.stack}_app_1")
    assert stat_in(container, "/run/secrets/token.txt") == (1000, 1000, 0o400)
    assert stat_in(container, "/etc/app/token") == (0, 0, 0o440)
    _code, out = container.exec_run(["cat", "/etc/app/token"])
    assert out.decode() == tool.value
    assert not (TMPFS_ROOT / tool.stack).exists()  # nothing on the host's tmpfs


def test_remote_engine_is_refused_with_a_pointer_to_swarm(tool: Tool, docker_client: Any) -> None:
    result = tool.deploy(env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert result.returncode == 2, result.stderr
    assert "not local" in result.stderr and "Swarm" in result.stderr
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"io.composesecrets.stack={tool.stack}"}
        )
        == []
    )
    assert not (tool.work / "store").exists() or "token" not in tool.run("secret", "ls").stdout


def test_redeploy_after_restart_brings_the_stack_back(tool: Tool, docker_client: Any) -> None:
    """A host restart empties the tmpfs and stops the containers; deploy restores both."""
    assert tool.deploy().returncode == 0
    container = docker_client.containers.get(f"{tool.stack}_app_1")
    first_id = container.id
    container.stop(timeout=1)
    for directory in (TMPFS_ROOT / tool.stack).iterdir():
        for item in directory.iterdir():
            item.unlink()
        directory.rmdir()
    result = tool.deploy()
    assert result.returncode == 0, result.stderr
    container = docker_client.containers.get(f"{tool.stack}_app_1")
    assert container.id == first_id and container.status == "running"
    assert stat_in(container, "/run/secrets/token.txt") == (1000, 1000, 0o400)
    _code, out = container.exec_run(["cat", "/run/secrets/token.txt"])
    assert out.decode() == tool.value


def test_progress_on_a_terminal_is_live_and_quiet_is_silent(tool: Tool) -> None:
    script = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m composesecrets stack deploy -c compose.yaml "
         f"{tool.stack}", "/dev/null"],
        cwd=tool.work,
        env={**tool.env, "TERM": "xterm"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert script.returncode == 0, script.stdout
    assert f"{tool.stack}_app_1" in script.stdout
    assert tool.value not in script.stdout
    quiet = tool.deploy("--quiet")
    assert quiet.returncode == 0 and quiet.stdout == ""
    # warnings about the file still show; progress lines do not
    assert tool.stack not in quiet.stderr and "warning:" in quiet.stderr
