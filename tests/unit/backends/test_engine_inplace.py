"""In-place rotation on the engine backend (issue 11), against the in-memory Docker client:
a labelled service gets a directory mount and symlinked targets, a new secret version is
written into its running containers (no recreation) and its reload signal is sent; a
service without the label is recreated as before."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from unit.backends.conftest import Load, quiet, secrets_for
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import FakeEngineApi, serve

from composesecrets.backends import DeployRequest, listing
from composesecrets.backends.engine import atomic
from composesecrets.backends.engine.backend import EngineBackend
from composesecrets.docker_rules import LABEL_VERSIONS, ROTATE_MOUNT
from composesecrets.errors import InvalidComposeError

IMAGE = "busybox:test"
IN_PLACE = {"io.composesecrets.rotate": "in-place"}


def doc(web_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": "3.8",
        "services": {
            "db": {"image": IMAGE, "secrets": ["pw"]},
            "web": {
                "image": IMAGE,
                "deploy": {"replicas": 2},
                "labels": web_labels if web_labels is not None else dict(IN_PLACE),
                "secrets": [
                    {"source": "pw", "target": "app/pw", "uid": "33", "mode": 0o400},
                    {"source": "pw", "target": "/etc/app/pw"},
                ],
            },
        },
        "secrets": {"pw": {"file": "./pw.txt"}},
    }


def deploy(backend: EngineBackend, request: DeployRequest, value: bytes, version: int) -> Any:
    plan = backend.plan(request)
    backend.preflight(plan)
    values = {"pw": (value, version)}
    return backend.deploy(plan.with_secrets(secrets_for(request, values)), quiet)


def ids(fake: FakeDocker) -> dict[str, str]:
    return {c.name: c.id for c in fake.containers_by_id.values()}


def secret_dir(container: Any) -> Path:
    (mount,) = container.kwargs["mounts"]
    return Path(mount["Source"])


def test_in_place_container_mounts_a_directory_and_links_its_targets(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    deploy(EngineBackend(fake), load(doc()), b"CANARY-v1", 1)
    web = fake.find_container("st_web_1")
    assert web is not None
    (mount,) = web.kwargs["mounts"]
    assert (mount["Target"], mount["Type"], mount["ReadOnly"]) == (ROTATE_MOUNT, "bind", True)
    directory = Path(mount["Source"])
    assert directory.is_relative_to(secret_root)
    assert (directory / atomic.DATA / "00-pw").read_bytes() == b"CANARY-v1"
    # the symlinks were put before the container started, and hold no value
    (archive,) = web.archives
    assert b"CANARY" not in archive
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
    assert links == {
        "run/secrets/app/pw": f"{ROTATE_MOUNT}/..data/00-pw",
        "etc/app/pw": f"{ROTATE_MOUNT}/..data/01-pw",
    }
    order = [op for op, name in fake.calls if name == "st_web_1"]
    assert order.index("container.put_archive") < order.index("container.start")
    assert json.loads(web.labels[LABEL_VERSIONS]) == ["st_pw@1", "st_pw@1"]
    # a service without the label keeps one file bind mount per target
    db = fake.find_container("st_db_1")
    assert db is not None
    assert [m["Target"] for m in db.kwargs["mounts"]] == ["/run/secrets/pw"]
    assert db.archives == []


def test_new_version_is_written_in_place_and_the_signal_sent_after(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    request = load(doc({**IN_PLACE, "io.composesecrets.reload-signal": "SIGHUP"}))
    deploy(backend, request, b"CANARY-v1", 1)
    before = ids(fake)
    fake.calls.clear()
    result = deploy(backend, request, b"CANARY-v2", 2)
    assert sorted(result.rotated) == ["st_web_1", "st_web_2"]
    assert result.recreated == ("st_db_1",)  # no label: recreated as before
    after = ids(fake)
    assert after["st_web_1"] == before["st_web_1"] and after["st_web_2"] == before["st_web_2"]
    assert after["st_db_1"] != before["st_db_1"]
    for name in ("st_web_1", "st_web_2"):
        container = fake.find_container(name)
        assert container is not None
        directory = secret_dir(container)
        assert (directory / atomic.DATA / "01-pw").read_bytes() == b"CANARY-v2"
        assert atomic.live_versions(directory) == ["st_pw@2", "st_pw@2"]
    assert sorted(fake.signals) == [("st_web_1", "SIGHUP"), ("st_web_2", "SIGHUP")]
    web_ops = [op for op, name in fake.calls if name == "st_web_1"]
    assert web_ops == ["container.kill"]  # no stop, create, start or remove

    # the same version again: nothing is written, no signal
    fake.signals.clear()
    again = deploy(backend, request, b"CANARY-v2", 2)
    assert sorted(again.unchanged) == ["st_db_1", "st_web_1", "st_web_2"]
    assert again.rotated == () and fake.signals == []


def test_no_signal_without_the_label(fake: FakeDocker, load: Load, secret_root: Path) -> None:
    backend = EngineBackend(fake)
    request = load(doc())
    deploy(backend, request, b"CANARY-v1", 1)
    result = deploy(backend, request, b"CANARY-v2", 2)
    assert sorted(result.rotated) == ["st_web_1", "st_web_2"]
    assert fake.signals == []


def test_changed_targets_still_recreate_an_in_place_service(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()), b"CANARY-v1", 1)
    changed = doc()
    changed["services"]["web"]["secrets"][1] = {"source": "pw", "target": "/etc/app/other"}
    result = deploy(backend, load(changed), b"CANARY-v1", 1)
    assert sorted(result.recreated) == ["st_web_1", "st_web_2"]


def test_stopped_in_place_container_gets_its_files_back_and_starts(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    """After a reboot emptied the tmpfs: the directory is published again before start."""
    backend = EngineBackend(fake)
    request = load(doc())
    deploy(backend, request, b"CANARY-v1", 1)
    web = fake.find_container("st_web_1")
    assert web is not None
    web.status = "exited"
    directory = secret_dir(web)
    import shutil

    shutil.rmtree(directory)
    deploy(backend, request, b"CANARY-v1", 1)
    assert web.status == "running"
    assert (directory / atomic.DATA / "00-pw").read_bytes() == b"CANARY-v1"


def test_containers_report_the_live_versions(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    request = load(doc())
    deploy(backend, request, b"CANARY-v1", 1)
    deploy(backend, request, b"CANARY-v2", 2)
    found = {c.name: c for c in listing.engine_containers(FakeEngineApi(fake), "st")}
    assert found["st_web_1"].versions == ("st_pw@2", "st_pw@2")
    assert found["st_db_1"].versions == ("st_pw@2",)
    assert found["st_web_1"].to_json()["SecretVersions"] == ["st_pw@2", "st_pw@2"]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"io.composesecrets.rotate": "inplace"}, "is not known"),
        ({**IN_PLACE, "io.composesecrets.reload-signal": "SIGNOPE"}, "is not a signal"),
    ],
)
def test_wrong_rotation_labels_are_refused_by_the_plan(
    load: Load, labels: dict[str, str], message: str
) -> None:
    """Behind the compose check (rule rotate-label), the plan refuses them too."""
    import dataclasses

    request = load(doc())
    web = request.model.services["web"]
    services = {
        **request.model.services,
        "web": dataclasses.replace(web, config={**web.config, "labels": labels}),
    }
    request = dataclasses.replace(
        request, model=dataclasses.replace(request.model, services=services)
    )
    with pytest.raises(InvalidComposeError, match=message):
        EngineBackend(FakeDocker()).plan(request)


def test_copy_delivery_warns_and_recreates(fake: FakeDocker, load: Load) -> None:
    backend = EngineBackend(fake)
    request = load(doc(), delivery="copy")
    plan = backend.plan(request)
    assert any("needs --secret-delivery tmpfs" in w for w in plan.warnings)
    deploy(backend, request, b"CANARY-v1", 1)
    result = deploy(backend, request, b"CANARY-v2", 2)
    assert sorted(result.recreated) == ["st_db_1", "st_web_1", "st_web_2"]


def test_swarm_plan_warns_that_it_cannot_rotate_in_place(load: Load) -> None:
    from composesecrets.backends.swarm.backend import SwarmBackend

    plan = SwarmBackend(FakeDocker(swarm=True)).plan(load(doc()))
    (warning,) = [w for w in plan.warnings if "io.composesecrets.rotate" in w]
    assert 'service "web"' in warning and "rolls the service's tasks" in warning
    plain = SwarmBackend(FakeDocker(swarm=True)).plan(load(doc({})))
    assert not [w for w in plain.warnings if "io.composesecrets.rotate" in w]


def test_stack_ps_shows_each_containers_secret_versions(
    fake: FakeDocker, load: Load, secret_root: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from unit.cli_helpers import run_main

    from composesecrets import backends

    backend = EngineBackend(fake)
    request = load(doc())
    deploy(backend, request, b"CANARY-v1", 1)
    deploy(backend, request, b"CANARY-v2", 2)
    monkeypatch.setitem(backends.BACKENDS, "engine", lambda: backend)
    serve(monkeypatch, engine=fake)
    monkeypatch.setenv("COMPOSESECRETS_HOME", str(tmp_path / "no-store"))
    shown = run_main(["stack", "ps", "st"])
    assert shown.code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["NAME", "IMAGE", "STATE", "SECRETS", "VERSIONS"]
    web = next(line for line in lines if line.startswith("st_web_1"))
    assert web.rstrip().endswith("st_pw@2")
    as_json = run_main(["stack", "ps", "st", "--format", "json"])
    rows = {row["Name"]: row for row in json.loads(as_json.stdout)}
    assert rows["st_web_2"]["SecretVersions"] == ["st_pw@2", "st_pw@2"]
    assert "CANARY" not in shown.output + as_json.output


def test_a_rotation_reads_the_containers_in_a_constant_number_of_calls(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    """The SDK's default list inspects every container (one call each): 50 containers made
    a rotation spend most of its time listing them twice (preflight, deploy). The third
    listing checks that the recreated db container runs (one call, whatever the count)."""
    backend = EngineBackend(fake)
    many = doc()
    many["services"]["web"]["deploy"]["replicas"] = 20
    request = load(many)
    deploy(backend, request, b"CANARY-v1", 1)
    fake.lists = fake.gets = 0
    result = deploy(backend, request, b"CANARY-v2", 2)
    assert len(result.rotated) == 20
    assert (fake.lists, fake.gets) == (3, 0)


def test_dry_run_diff_reports_the_rotation_and_changes_nothing(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    request = load(doc())
    deploy(backend, request, b"CANARY-v1", 1)
    plan = backend.plan(request)
    pending = plan.with_secrets(secrets_for(request, {"pw": (b"CANARY-v2", 2)}))
    fake.calls.clear()
    result = backend.diff(pending)
    assert sorted(result.rotated) == ["st_web_1", "st_web_2"]
    assert result.recreated == ("st_db_1",)
    assert fake.calls == []
    web = fake.find_container("st_web_1")
    assert web is not None
    assert atomic.live_versions(secret_dir(web)) == ["st_pw@1", "st_pw@1"]
    same = backend.diff(plan.with_secrets(secrets_for(request, {"pw": (b"CANARY-v1", 1)})))
    assert same.rotated == () and len(same.unchanged) == 3
