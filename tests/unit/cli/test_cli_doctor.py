"""``composesecrets doctor`` and ``composesecrets schema`` without a daemon (issue 14)."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from unit.cli_helpers import run_main
from unit.store_worker import FAST_KDF

from composesecrets.cli import doctor
from composesecrets.store import EnvKeyUnlock, KeyFileUnlock, PassphraseUnlock, Store, Usage

KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("COMPOSESECRETS_KEY", "COMPOSESECRETS_PASSPHRASE", "COMPOSESECRETS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMPOSESECRETS_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    return tmp_path


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_unreachable_engine_fails_with_what_to_do(clean: Path) -> None:
    result = run_main(["doctor"])
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "FAIL  engine    cannot reach the Docker Engine at unix:///nonexistent.sock: no such socket"
    )
    assert "start the Docker Engine" in lines[1] and "DOCKER_HOST" in lines[1]
    assert "note  swarm     not checked (no engine)" in lines
    assert any(line.startswith("note  store") and "no secret store at" in line for line in lines)
    assert "Traceback" not in result.output


def test_docker_sdk_absent(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker raises ImportError
    engine = by_name(list(doctor.engine_checks()))["engine"]
    assert engine.status == doctor.FAIL
    assert "SDK for Python is not installed" in engine.text


class FakeClient:
    def __init__(self, swarm: dict[str, Any]) -> None:
        self.swarm = swarm

    def version(self) -> dict[str, str]:
        return {"Version": "27.1.0", "ApiVersion": "1.46"}

    def info(self) -> dict[str, Any]:
        return {"Swarm": self.swarm}


def test_reachable_engine_and_swarm_states(clean: Path) -> None:
    manager = by_name(
        list(
            doctor.engine_checks(
                lambda: FakeClient({"LocalNodeState": "active", "ControlAvailable": True})
            )
        )
    )
    assert manager["engine"].status == doctor.OK
    assert "Docker Engine 27.1.0 (API 1.46)" in manager["engine"].text
    assert manager["swarm"].status == doctor.OK
    alone = by_name(list(doctor.engine_checks(lambda: FakeClient({"LocalNodeState": "inactive"}))))
    assert alone["swarm"].status == doctor.NOTE  # the engine backend works without a swarm
    assert "docker swarm init" in alone["swarm"].fix


def test_tmpfs_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.9:2376")
    remote = doctor.tmpfs_check(lambda p: True)
    assert remote.status == doctor.NOTE and "--secret-delivery copy" in remote.fix
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    on_disk = doctor.tmpfs_check(lambda p: False)
    assert on_disk.status == doctor.FAIL and "not memory-backed" in on_disk.text
    in_memory = doctor.tmpfs_check(lambda p: p == tmp_path)
    assert in_memory.status == doctor.OK and str(tmp_path) in in_memory.text


def test_store_key_file_and_stacks(clean: Path) -> None:
    key_file = clean / "key"
    with Store.open(clean / "store", unlock=KeyFileUnlock(path=key_file)) as store:
        store.create("shop_pw", b"x")
        store.record_usage("shop", "engine", [Usage("shop_pw", "web", 1)])
    checks = by_name(list(doctor.store_checks(None)))
    assert checks["store"].status == doctor.OK
    assert "1 secret, unlocked with keyfile" in checks["store"].text
    assert checks["key file"].status == doctor.OK
    assert checks["stacks"].text == "shop: engine"
    os.chmod(key_file, 0o644)
    loose = by_name(list(doctor.store_checks(None)))["key file"]
    assert loose.status == doctor.FAIL and loose.fix == f"chmod 600 {key_file}"
    key_file.unlink()
    gone = by_name(list(doctor.store_checks(None)))
    assert gone["key file"].status == doctor.FAIL
    assert gone["store"].status == doctor.FAIL  # cannot unlock without it


def test_store_with_a_missing_environment_key_fails(clean: Path) -> None:
    with Store.open(clean / "store", unlock=EnvKeyUnlock(key=KEY), environ={}) as store:
        store.create("a", b"x")
    checks = by_name(list(doctor.store_checks(None)))
    assert checks["store"].status == doctor.FAIL
    assert "COMPOSESECRETS_KEY" in checks["store"].fix


def test_passphrase_store_is_not_prompted_for(clean: Path) -> None:
    with Store.open(
        clean / "store", unlock=PassphraseUnlock("correct horse battery", kdf=FAST_KDF)
    ) as store:
        store.create("a", b"x")
    result = run_main(["doctor", "--json"], stdin="")
    checks = {c["Check"]: c for c in json.loads(result.stdout)}
    assert checks["store"]["Status"] == "note"
    assert "doctor does not prompt" in checks["store"]["Text"]
    assert "passphrase" not in result.stderr.lower()


# ---------------------------------------------------------------- schema


def test_schema_prints_the_schema_in_use() -> None:
    latest = run_main(["schema"])
    assert latest.code == 0
    document = json.loads(latest.stdout)
    assert document["$id"].endswith("compose_v3.13.json")
    old = json.loads(run_main(["schema", "--version", "3.2"]).stdout)
    assert old["$id"].endswith("compose_v3.2.json")
    path = run_main(["schema", "--version", "3.8", "--path"]).stdout.strip()
    assert Path(path).name == "compose_v3.8.json"
    assert json.loads(Path(path).read_text())["$id"].endswith("compose_v3.8.json")
    bad = run_main(["schema", "--version", "4.0"])
    assert bad.code == 2
    assert "3.0, 3.1" in bad.stderr
