"""``configs:`` end to end through ``stacks.deploy`` with a real store: the engine backend
(tmpfs files, uid/gid/mode, read-only) and the Swarm backend (Swarm configs with the stack
namespace label, rotated by version) on the in-memory Docker client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import serve
from unit.test_stacks import container, opener, options, progress

from composesecrets import inventory, model, stacks
from composesecrets.backends import BACKENDS
from composesecrets.backends.engine import tmpfs
from composesecrets.backends.engine.backend import EngineBackend
from composesecrets.backends.swarm.backend import SwarmBackend
from composesecrets.docker_rules import LABEL_KIND, LABEL_NAMESPACE
from composesecrets.errors import InvalidComposeError, NotFoundError

COMPOSE = """\
version: "3.8"
services:
  web:
    image: busybox:test
    configs:
      - site
      - source: site
        target: /etc/nginx/conf.d/site.conf
        uid: "101"
        gid: "102"
        mode: 0440
      - source: app
        target: app.ini
    secrets:
      - pw
configs:
  site:
    file: ./site.conf
  app:
    external: true
secrets:
  pw:
    file: ./pw.txt
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "site.conf").write_bytes(b"server { listen 80; }\n")
    (tmp_path / "pw.txt").write_bytes(b"CANARY-pw")
    with opener(tmp_path) as store:
        store.create("app", b"[app]\nmode=prod\n")
    return tmp_path


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
        backend.remove_timeout = 0.5
        return backend

    monkeypatch.setitem(BACKENDS, "swarm", make)
    serve(monkeypatch, swarm=fake)
    return fake


def test_model_defaults_like_docker(project: Path) -> None:
    from composesecrets.compose.project import load_project

    loaded = load_project(["compose.yaml"], environ={}, cwd=project, stack_name="shop").stack
    assert loaded is not None
    refs = loaded.services["web"].configs
    assert [(r.source, r.target, r.uid, r.gid, r.mode) for r in refs] == [
        ("site", "/site", "0", "0", 0o444),  # default target /<key>, not under /run/secrets
        ("site", "/etc/nginx/conf.d/site.conf", "101", "102", 0o440),
        ("app", "/app.ini", "0", "0", 0o444),  # a relative target is taken from /
    ]
    assert loaded.configs["site"].name == "shop_site"
    assert loaded.configs["app"].external and loaded.configs["app"].name == "app"
    assert loaded.to_config()["services"]["web"]["configs"][0]["target"] == "/site"


def test_engine_delivers_configs_as_read_only_memory_files(
    project: Path, engine: FakeDocker
) -> None:
    outcome = stacks.deploy("shop", options(project), progress)
    assert outcome.result.created == ("shop_web_1",)
    assert not any("configs" in w for w in outcome.warnings)
    mounts = container(engine, "shop_web_1").kwargs["mounts"]
    files = {}
    for mount in mounts:
        assert mount["ReadOnly"] is True and mount["Type"] == "bind"
        path = Path(mount["Source"])
        assert tmpfs.stack_directory(tmpfs.runtime_root(), "shop") in path.parents
        info = os.stat(path)
        files[mount["Target"]] = (info.st_uid, info.st_gid, info.st_mode & 0o777,
                                  path.read_bytes())  # fmt: skip
    assert files == {
        "/run/secrets/pw": (0, 0, 0o444, b"CANARY-pw"),
        "/site": (0, 0, 0o444, b"server { listen 80; }\n"),
        "/etc/nginx/conf.d/site.conf": (101, 102, 0o440, b"server { listen 80; }\n"),
        "/app.ini": (0, 0, 0o444, b"[app]\nmode=prod\n"),
    }
    # the stack's ps shows secrets only
    assert inventory.containers("shop")[0].secrets == ("/run/secrets/pw",)
    with opener(project) as store:
        site = store.inspect("shop_site").info
        assert site.labels[LABEL_KIND] == model.CONFIG
        assert site.labels["io.composesecrets.stack"] == "shop"
        assert "shop_site" in {u.secret_name for u in store.usages(stack="shop")}


def test_engine_changed_config_is_a_new_version_and_recreates(
    project: Path, engine: FakeDocker
) -> None:
    stacks.deploy("shop", options(project), progress)
    again = stacks.deploy("shop", options(project), progress)
    assert again.result.unchanged == ("shop_web_1",)
    (project / "site.conf").write_bytes(b"server { listen 8080; }\n")
    changed = stacks.deploy("shop", options(project), progress)
    assert changed.result.recreated == ("shop_web_1",)
    assert changed.imported == ("shop_site",)
    with opener(project) as store:
        assert store.inspect("shop_site").info.version == 2
    sources = {m["Target"]: m["Source"] for m in container(engine, "shop_web_1").kwargs["mounts"]}
    assert Path(sources["/site"]).read_bytes() == b"server { listen 8080; }\n"


def test_missing_external_config_refuses_before_anything_changes(
    project: Path, engine: FakeDocker
) -> None:
    with opener(project) as store:
        store.remove("app")
    with pytest.raises(NotFoundError, match="config app"):
        stacks.deploy("shop", options(project), progress)
    assert engine.container_names() == []


def test_undefined_config_is_refused(project: Path, engine: FakeDocker) -> None:
    text = COMPOSE.replace("      - site\n", "      - nope\n", 1)
    (project / "compose.yaml").write_text(text)
    with pytest.raises(InvalidComposeError, match='config "nope" is not defined'):
        stacks.deploy("shop", options(project), progress)
    assert engine.container_names() == []


def test_secret_and_config_with_one_store_name_are_refused(
    project: Path, engine: FakeDocker
) -> None:
    text = COMPOSE.replace("secrets:\n  pw:\n", "secrets:\n  site:\n    file: ./pw.txt\n  pw:\n")
    (project / "compose.yaml").write_text(text)
    with pytest.raises(InvalidComposeError, match="would both be stored as shop_site"):
        stacks.deploy("shop", options(project), progress)


def test_swarm_configs_are_swarm_configs_rotated_by_version(
    project: Path, swarm: FakeDocker
) -> None:
    opts = options(project)
    opts.backend = "swarm"
    first = stacks.deploy("shop", opts, progress)
    assert first.result.created == ("web",)
    service = next(iter(swarm.service_store.values()))
    container_spec = service["Spec"]["TaskTemplate"]["ContainerSpec"]
    refs = {r["File"]["Name"]: r for r in container_spec["Configs"]}
    assert set(refs) == {"/site", "/etc/nginx/conf.d/site.conf", "/app.ini"}
    site = "/etc/nginx/conf.d/site.conf"
    assert refs[site]["File"] == {"Name": site, "UID": "101", "GID": "102", "Mode": 0o440}
    assert [r["File"]["Name"] for r in container_spec["Secrets"]] == ["/run/secrets/pw"]
    names = swarm.config_names()
    assert len(names) == 3 and all(n.startswith(("shop_site_", "shop_app_")) for n in names)
    for config_id, config in swarm.config_store.items():
        assert config["Spec"]["Labels"][LABEL_NAMESPACE] == "shop"
        assert config["Spec"]["Labels"][LABEL_KIND] == "config"
        assert swarm.config_data[config_id] in (b"server { listen 80; }\n", b"[app]\nmode=prod\n")
    assert stacks.deploy("shop", opts, progress).result.unchanged == ("web",)
    (project / "site.conf").write_bytes(b"server { listen 8080; }\n")
    rotated = stacks.deploy("shop", opts, progress)
    assert rotated.result.recreated == ("web",)
    new_names = swarm.config_names()
    assert len(new_names) == 3 and new_names != names  # old versions pruned, new ones made
    assert b"server { listen 8080; }\n" in swarm.config_data.values()
    assert b"server { listen 80; }\n" not in swarm.config_data.values()
    stacks.remove("shop", store_opener=lambda: opener(project), backend_name="swarm",
                  progress=progress)  # fmt: skip
    assert swarm.config_names() == [] and swarm.secret_names() == []
