"""Shared fixtures of the backend unit tests: a compose stack loaded through the real loader,
the fake Docker client, and a tmpfs root under tmp_path for the engine's secret files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from unit.backends.fake_docker import FakeDocker

from composesecrets.backends import DeployRequest, SecretFile, ServiceSecrets
from composesecrets.backends.engine import tmpfs
from composesecrets.compose.project import load_project, read_env_files

IMAGE = "busybox:test"

Load = Callable[..., DeployRequest]


@pytest.fixture
def secret_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "secret-root"
    root.mkdir(mode=0o700)
    monkeypatch.setattr(tmpfs, "runtime_root", lambda: root)
    return root


@pytest.fixture
def fake() -> FakeDocker:
    return FakeDocker()


@pytest.fixture
def swarm_fake() -> FakeDocker:
    return FakeDocker(swarm=True)


def secrets_for(
    request: DeployRequest, values: dict[str, tuple[bytes, int]]
) -> dict[str, ServiceSecrets]:
    """Each service's secret files from ``values``: compose key -> (value, version)."""
    out = {}
    for name, service in request.model.services.items():
        files, versions, digests = [], [], []
        for ref in service.secrets:
            value, version = values[ref.source]
            store_name = request.model.secrets[ref.source].name
            files.append(
                SecretFile(ref.source, ref.target, int(ref.uid), int(ref.gid), ref.mode, value)
            )
            versions.append((store_name, version))
            digests.append(f"digest-{store_name}-{version}")
        out[name] = ServiceSecrets(tuple(files), tuple(versions), tuple(digests))
    return out


@pytest.fixture
def load(tmp_path: Path) -> Load:
    def load(
        doc: dict[str, Any],
        stack: str = "st",
        delivery: str = "tmpfs",
        backend: Literal["engine", "swarm"] | None = None,
    ) -> DeployRequest:
        directory = tmp_path / "project"
        directory.mkdir(exist_ok=True)
        (directory / "compose.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        (directory / "pw.txt").write_bytes(b"CANARY-file")
        project = load_project(
            ["compose.yml"], environ={}, cwd=directory, stack_name=stack, backend=backend
        )
        # the loader refuses an undefined dependency too; tolerated so that the backends'
        # own handling stays tested
        errors = [d for d in project.errors if d.rule != "undefined-dependency"]
        assert project.stack is not None and not errors, errors
        return DeployRequest(stack, read_env_files(project.stack), delivery)

    return load


def quiet(subject: str, what: str) -> None:
    """A progress callback that drops everything."""
