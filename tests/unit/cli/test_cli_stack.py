"""`stack rm`, `stack restore` and `stack deploy --backend` at the command line, in-process,
with the real engine backend on the in-memory Docker client."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import serve
from unit.cli_helpers import Run, run_main

from composesecrets.backends import BACKENDS
from composesecrets.backends.engine import teardown, tmpfs
from composesecrets.backends.engine.backend import EngineBackend
from composesecrets.cli import stack_cmds

COMPOSE = """\
version: "3.8"
services:
  web:
    image: busybox:test
    restart: unless-stopped
    secrets:
      - source: pw
        uid: "33"
        mode: 0400
secrets:
  pw:
    file: ./pw.txt
"""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeDocker:
    engine = FakeDocker()
    monkeypatch.setitem(BACKENDS, "engine", lambda: EngineBackend(engine))
    serve(monkeypatch, engine=engine)
    root = tmp_path / "secret-root"
    root.mkdir()
    monkeypatch.setattr(tmpfs, "runtime_root", lambda: root)
    monkeypatch.setattr(teardown, "sleep", lambda _seconds: None)
    monkeypatch.setenv("COMPOSESECRETS_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("COMPOSESECRETS_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "pw.txt").write_bytes(b"CANARY-pw")
    return engine


def run(*args: str) -> Run:
    result = run_main(list(args))
    assert "Traceback" not in result.output
    return result


def test_rm_of_an_unknown_stack_says_nothing_found(fake: FakeDocker) -> None:
    assert run("stack", "deploy", "-q", "-c", "compose.yaml", "shop").code == 0
    result = run("stack", "rm", "nope")
    assert result.code == 0
    assert "Nothing found in stack: nope" in result.stderr
    assert "removed" not in result.stdout


def test_rm_reports_a_network_left_behind_and_exits_8(fake: FakeDocker) -> None:
    assert run("stack", "deploy", "-q", "-c", "compose.yaml", "shop").code == 0
    fake.fail("network.remove", "shop_default", "network shop_default has active endpoints",
              times=1000)  # fmt: skip
    result = run("stack", "rm", "shop")
    assert result.code == 8, result.output
    assert "shop_default was left behind: network shop_default has active endpoints" in (
        result.stderr
    )
    assert "docker network rm" in result.stderr
    assert "stack shop removed (everything else)" in result.stdout
    assert run("secret", "ls", "-q").stdout.strip() == ""


def test_restore_needs_names_or_all(fake: FakeDocker) -> None:
    assert run("stack", "restore").code == 2


def test_restore_after_a_reboot(fake: FakeDocker, tmp_path: Path) -> None:
    assert run("stack", "deploy", "-q", "-c", "compose.yaml", "shop").code == 0
    fake.daemon_restart(lose=[str(tmp_path / "secret-root" / "shop")])
    (tmp_path / "pw.txt").unlink()
    result = run("stack", "restore", "--all")
    assert result.code == 0, result.output
    assert "stack shop restored: 1 started, 0 running, 1 secret files" in result.stdout
    web = fake.find_container("shop_web_1")
    assert web is not None and web.status == "running"


def test_install_systemd_fills_in_the_unit(
    fake: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = tmp_path / "composesecrets-restore.service"
    monkeypatch.setattr(stack_cmds, "SYSTEMD_UNIT", unit)
    monkeypatch.setattr("shutil.which", lambda name: None if name == "systemctl" else
                        f"/usr/local/bin/{name}")  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("--install-systemd needs root")
    result = run("stack", "restore", "--install-systemd")
    assert result.code == 0, result.output
    text = unit.read_text()
    assert "ExecStart=/usr/local/bin/composesecrets stack restore --all" in text
    assert f"Environment=COMPOSESECRETS_HOME={tmp_path / 'store'}" in text
    assert "After=docker.service" in text and "@" not in text.split("[Unit]")[1]
