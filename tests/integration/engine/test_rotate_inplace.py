"""In-place rotation on a real engine (issue 11): a busybox reader looping inside the
container during 100 rotations sees only complete old or new values, as a non-root user
with the reference's uid and mode, and the container is never recreated.

Each rotation is a real ``stacks.deploy`` (the library behind ``stack deploy``) after the
secret's file changed; the reader is a bounded shell loop run with ``docker exec`` that
prints the md5 of every read and stops at the last value.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from integration.helpers import docker_cli, docker_ok, remove_leftovers, store_env, write_private

from composesecrets import inventory, stacks

if TYPE_CHECKING:
    from collections.abc import Iterator

ROTATIONS = 100
SIZE = 64 * 1024  # several pages and several write() calls: a torn read would show
MAX_READS = 100_000

COMPOSE = """\
version: "3.8"
services:
  reader:
    image: {image}
    command: ["sleep", "3600"]
    user: "1000"
    stop_grace_period: 1s
    labels:
      io.composesecrets.rotate: in-place
    secrets:
      - source: token
        target: token
        uid: "1000"
        gid: "1000"
        mode: 0400
secrets:
  token:
    file: ./token.txt
"""

# Reads until it sees the last value ($1 is its md5) or MAX_READS reads: one line per read.
READER = (
    f'i=0; while [ "$i" -lt {MAX_READS} ]; do '
    'h=$(md5sum /run/secrets/token 2>&1) || h="ERR $h"; echo "$h"; '
    'case "$h" in "$1"*) break;; esac; i=$((i+1)); done'
)


def value(i: int) -> bytes:
    fill = bytes([ord("a") + i % 26])
    return f"BEGIN-{i:04d}-".encode() + fill * SIZE + f"-END-{i:04d}\n".encode()


def quiet(subject: str, what: str) -> None:
    """Progress callback that drops everything."""


@pytest.fixture
def stack(docker_client: Any) -> Iterator[str]:
    name = f"rot{uuid.uuid4().hex[:10]}"
    yield name
    remove_leftovers(name)  # after a failure; the test checks its own `stack rm`


def test_reader_sees_only_complete_values_during_100_rotations(
    stack: str, test_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, val in store_env(tmp_path / "store").items():
        monkeypatch.setenv(key, val)
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    compose = work / "compose.yaml"
    compose.write_text(COMPOSE.format(image=test_image))
    token = work / "token.txt"
    write_private(token, value(0).decode())
    options = stacks.DeployOptions(files=[str(compose)], store_dir=tmp_path / "store")
    first = stacks.deploy(stack, options, quiet)
    assert first.result.created == (f"{stack}_reader_1",)
    container = f"{stack}_reader_1"
    container_id = docker_ok("inspect", "-f", "{{.Id}}", container).strip()

    # what the reader opens: its own uid and mode; nothing can be listed or read by others
    target = docker_ok("exec", container, "stat", "-L", "-c", "%u %g %a", "/run/secrets/token")
    assert target.split() == ["1000", "1000", "400"]
    assert docker("exec", "-u", "2000", container, "cat", "/run/secrets/token").returncode != 0
    assert docker("exec", "-u", "1000", container, "ls", "/run/composesecrets").returncode != 0
    mounts = docker_ok("inspect", "-f", "{{range .Mounts}}{{.Destination}} {{.RW}};{{end}}",
                       container)  # fmt: skip
    assert mounts.strip() == "/run/composesecrets false;"

    digests = {hashlib.md5(value(i)).hexdigest() for i in range(ROTATIONS + 1)}
    last = hashlib.md5(value(ROTATIONS)).hexdigest()
    reader = subprocess.Popen(
        [docker_cli(), "exec", "-u", "1000", container, "sh", "-c", READER, "sh", last],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        rotated = 0
        for i in range(1, ROTATIONS + 1):
            token.unlink()
            write_private(token, value(i).decode())
            outcome = stacks.deploy(stack, options, quiet)
            assert outcome.result.recreated == () and outcome.result.created == ()
            rotated += len(outcome.result.rotated)
        out, err = reader.communicate(timeout=240)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()
    assert rotated == ROTATIONS
    lines = out.splitlines()
    assert err == "" and reader.returncode == 0
    bad = [line for line in lines if line.split()[0] not in digests]
    assert bad == [], f"{len(bad)} of {len(lines)} reads were not a complete value: {bad[:3]}"
    assert lines[-1].startswith(last), f"the reader stopped before the last value ({len(lines)})"
    seen = {line.split()[0] for line in lines}
    assert len(seen) > 2, f"the reader saw {len(seen)} values in {len(lines)} reads"
    assert docker_ok("inspect", "-f", "{{.Id}}", container).strip() == container_id
    shown = {c.name: c for c in inventory.containers(stack)}
    assert shown[container].versions == (f"{stack}_token@{ROTATIONS + 1}",)

    stacks.remove(stack, store_dir=tmp_path / "store", progress=quiet)
    assert remove_leftovers(stack) == []


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker_cli(), *args], capture_output=True, text=True, check=False, timeout=60
    )
