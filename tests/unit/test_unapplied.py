"""Every compose key a backend does not apply is known before anything changes: ``stack
deploy`` tells the warnings first and refuses a key that changes what runs unless
``allow_unapplied``; ``validate --backend`` reports the same list (one source of truth)."""

from __future__ import annotations

from pathlib import Path

import pytest
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import serve
from unit.cli_helpers import run_main
from unit.test_stacks import opener, options

from composesecrets import stacks
from composesecrets.backends import BACKENDS
from composesecrets.backends.engine import tmpfs
from composesecrets.backends.engine.backend import EngineBackend
from composesecrets.backends.swarm.backend import SwarmBackend
from composesecrets.backends.unapplied import is_harmless, unapplied_keys
from composesecrets.compose.project import load_project
from composesecrets.errors import UnappliedKeysError

BASE = """\
version: "3.8"
services:
  web:
    image: busybox:test
{extra}    secrets: [pw]
secrets:
  pw:
    file: ./pw.txt
"""


def write(project: Path, extra: str) -> None:
    (project / "compose.yaml").write_text(BASE.format(extra=extra))
    (project / "pw.txt").write_bytes(b"CANARY-pw")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeDocker:
    fake = FakeDocker()
    monkeypatch.setitem(BACKENDS, "engine", lambda: EngineBackend(fake))
    serve(monkeypatch, engine=fake)
    root = tmp_path / "secret-root"
    root.mkdir()
    monkeypatch.setattr(tmpfs, "runtime_root", lambda: root)
    return fake


@pytest.fixture
def swarm(monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    fake = FakeDocker(swarm=True)

    def make() -> SwarmBackend:
        backend = SwarmBackend(fake)
        backend.poll_interval = 0.0
        backend.converge_timeout = 0.5
        return backend

    monkeypatch.setitem(BACKENDS, "swarm", make)
    serve(monkeypatch, swarm=fake)
    return fake


def events_of(project: Path, backend: str = "engine", allow: bool = False) -> list[str]:
    """Deploy, recording warnings and progress in the order they come."""
    events: list[str] = []
    opts = options(project)
    opts.backend = backend
    opts.allow_unapplied = allow
    opts.warn = lambda text: events.append(f"warn {text}")
    stacks.deploy("shop", opts, lambda subject, what: events.append(f"progress {what}"))
    return events


def test_build_is_refused_before_anything_changes(tmp_path: Path, engine: FakeDocker) -> None:
    write(tmp_path, "    build: .\n")
    events: list[str] = []
    opts = options(tmp_path)
    opts.warn = events.append
    with pytest.raises(UnappliedKeysError, match='service "web": build') as caught:
        stacks.deploy("shop", opts, lambda s, w: events.append(w))
    assert caught.value.exit_code == 1 and "--allow-unapplied" in (caught.value.hint or "")
    assert events == [
        'warning: service "web": build is not applied by the engine backend: images are not '
        "built; the service must name an existing image"
    ]
    assert engine.container_names() == []
    assert not (tmp_path / "store").exists() or not opener(tmp_path).list_secrets()


def test_allow_unapplied_deploys_and_warnings_come_first(
    tmp_path: Path, engine: FakeDocker
) -> None:
    write(tmp_path, "    build: .\n")
    events = events_of(tmp_path, allow=True)
    assert events[0].startswith('warn warning: service "web": build is not applied')
    assert any(e.startswith("progress") for e in events)
    assert engine.container_names() == ["shop_web_1"]


def test_harmless_key_warns_but_deploys(tmp_path: Path, engine: FakeDocker) -> None:
    write(tmp_path, "    container_name: web\n    expose: ['80']\n")
    events = events_of(tmp_path)
    warned = [e for e in events if e.startswith("warn")]
    assert len(warned) == 2 and "container_name" in warned[0] and "expose" in warned[1]
    assert events.index(warned[-1]) < min(i for i, e in enumerate(events) if "progress" in e)
    assert engine.container_names() == ["shop_web_1"]


def test_swarm_refuses_devices_and_privileged(tmp_path: Path, swarm: FakeDocker) -> None:
    write(tmp_path, "    devices: ['/dev/fuse:/dev/fuse']\n    privileged: true\n")
    with pytest.raises(UnappliedKeysError, match=r"devices.*privileged"):
        events_of(tmp_path, backend="swarm")
    assert swarm.service_names() == []


@pytest.mark.parametrize(
    ("backend", "key", "harmless"),
    [
        ("engine", "container_name", True),
        ("engine", "deploy.placement", True),
        ("engine", "deploy.resources.reservations.cpus", True),
        ("engine", "volumes[0].consistency", True),
        ("engine", "build", False),
        ("engine", "links", False),
        ("engine", "networks.default.ipv4_address", False),
        ("engine", "deploy.resources.limits.devices", False),
        ("swarm", "depends_on", True),
        ("swarm", "devices", False),
        ("swarm", "cgroup_parent", False),
        ("swarm", "ports '127.0.0.1:80:80' host IP", False),
    ],
)
def test_which_keys_change_what_runs(backend: str, key: str, harmless: bool) -> None:
    assert is_harmless(backend, key) is harmless


def validate(project: Path, *args: str) -> tuple[int, str]:
    result = run_main(["validate", "-c", str(project / "compose.yaml"), *args])
    assert "Traceback" not in result.output
    return result.code, result.output


def test_validate_backend_reports_the_same_list_as_the_plan(tmp_path: Path) -> None:
    write(tmp_path, "    build: .\n    container_name: web\n    devices: ['/dev/fuse']\n")
    code, text = validate(tmp_path, "--backend", "swarm")
    assert code == 1
    stack = load_project([str(tmp_path / "compose.yaml")], cwd=tmp_path).stack
    assert stack is not None
    listed = unapplied_keys(stack, "swarm")
    assert [w.key for w in listed] == ["build", "container_name", "devices"]
    for item in listed:
        assert str(item) in text
    lines = [line for line in text.splitlines() if "is not applied" in line]
    assert len(lines) == 3
    assert "compose.yaml:5:5: error" in lines[0]  # FILE:LINE:COL of build
    assert "warning" in lines[1]  # container_name: harmless
    code, text = validate(tmp_path, "--backend", "engine")
    assert code == 1 and "devices" not in text  # the engine maps devices
    code, text = validate(tmp_path)
    assert code == 0 and "is not applied" not in text  # backend not known: nothing to say


def test_validate_backend_ignores_the_rule_on_request(tmp_path: Path) -> None:
    write(tmp_path, "    build: .\n")
    assert validate(tmp_path, "--backend", "engine")[0] == 1
    assert validate(tmp_path, "--backend", "engine", "--ignore", "unapplied-key")[0] == 0


def test_validate_backend_reports_what_the_backend_refuses(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text('version: "3.8"\nservices:\n  web:\n    build: .\n')
    code, text = validate(tmp_path, "--backend", "engine")
    assert code == 1 and "engine backend: " in text and "does not build images" in text
