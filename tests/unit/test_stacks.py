"""Stack deploy/remove logic: a real store and the real engine backend on the in-memory
Docker client (tests/unit/backends/fake_docker.py)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from unit.backends.fake_docker import FakeContainer, FakeDocker
from unit.backends.fake_engine_api import FakeEngineApi, serve

from composesecrets import stacks
from composesecrets.backends import BACKENDS, engine_reader
from composesecrets.backends.engine import tmpfs
from composesecrets.backends.engine.backend import EngineBackend
from composesecrets.errors import (
    BackendError,
    ComposeSecretsError,
    ConflictError,
    DeployFailedError,
    InvalidComposeError,
    NotFoundError,
)
from composesecrets.store import EnvKeyUnlock, Store

KEY = base64.b64encode(os.urandom(32)).decode()

COMPOSE = """\
version: "3.8"
services:
  web:
    image: busybox:test
    command: ["sleep", "3600"]
    secrets:
      - db_password
      - source: db_password
        target: copy.txt
        uid: "1000"
        gid: "1001"
        mode: 0400
      - source: api_key
        target: /etc/app/key.pem
  worker:
    image: busybox:test
    depends_on: [web]
    deploy:
      replicas: 2
    secrets:
      - db_password
secrets:
  db_password:
    file: ./db_password.txt
  api_key:
    external: true
"""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeDocker:
    engine = FakeDocker()
    monkeypatch.setitem(BACKENDS, "engine", lambda: EngineBackend(engine))
    serve(monkeypatch, engine=engine)
    root = tmp_path / "secret-root"
    root.mkdir()
    monkeypatch.setattr(tmpfs, "runtime_root", lambda: root)
    return engine


def container(fake: FakeDocker, name: str) -> FakeContainer:
    found = fake.find_container(name)
    assert found is not None, fake.container_names()
    return found


def delivered(fake: FakeDocker, name: str) -> list[tuple[str, int, int, int, bytes]]:
    """(target, uid, gid, mode, content) of each secret file mounted into a container."""
    out = []
    for mount in container(fake, name).kwargs.get("mounts") or []:
        info = os.stat(mount["Source"])
        content = Path(mount["Source"]).read_bytes()
        out.append((mount["Target"], info.st_uid, info.st_gid, info.st_mode & 0o777, content))
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "db_password.txt").write_bytes(b"CANARY-db-v1")
    return tmp_path


def opener(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store", unlock=EnvKeyUnlock(key=KEY))


def options(project: Path) -> stacks.DeployOptions:
    return stacks.DeployOptions(
        files=[str(project / "compose.yaml")],
        backend="engine",
        store_opener=lambda: opener(project),
    )


def progress(subject: str, what: str) -> None:
    pass


def with_external(project: Path) -> None:
    with opener(project) as store:
        store.create("api_key", b"CANARY-api")


def test_deploy_imports_file_secrets_and_delivers_each_reference(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    outcome = stacks.deploy("shop", options(project), progress)
    assert sorted(outcome.result.created) == ["shop_web_1", "shop_worker_1", "shop_worker_2"]
    assert outcome.imported == ("shop_db_password",)
    assert delivered(fake, "shop_web_1") == [
        ("/run/secrets/db_password", 0, 0, 0o444, b"CANARY-db-v1"),
        ("/run/secrets/copy.txt", 1000, 1001, 0o400, b"CANARY-db-v1"),
        ("/etc/app/key.pem", 0, 0, 0o444, b"CANARY-api"),
    ]
    with opener(project) as store:
        assert store.get("shop_db_password") == b"CANARY-db-v1"
        assert store.inspect("shop_db_password").info.labels["io.composesecrets.stack"] == "shop"
        users = {(u.secret_name, u.service) for u in store.usages(stack="shop")}
        assert users == {
            ("shop_db_password", "web"),
            ("shop_db_password", "worker"),
            ("api_key", "web"),
        }
        with pytest.raises(ConflictError, match="shop"):
            store.remove("api_key")


def test_redeploy_unchanged_keeps_everything(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    again = stacks.deploy("shop", options(project), progress)
    assert again.result.created == () and again.result.recreated == ()
    assert len(again.result.unchanged) == 3
    assert again.imported == ()


def test_changed_secret_file_is_a_new_version_and_recreates_its_users(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    (project / "db_password.txt").write_bytes(b"CANARY-db-v2")
    again = stacks.deploy("shop", options(project), progress)
    assert sorted(again.result.recreated) == ["shop_web_1", "shop_worker_1", "shop_worker_2"]
    with opener(project) as store:
        assert store.inspect("shop_db_password").info.version == 2
        assert {u.version for u in store.usages(secret="shop_db_password")} == {2}
    assert [f[-1] for f in delivered(fake, "shop_worker_2")] == [b"CANARY-db-v2"]


def test_redeploy_without_the_plaintext_file_uses_the_stored_version(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    (project / "db_password.txt").unlink()  # what the security model recommends
    again = stacks.deploy("shop", options(project), progress)
    assert len(again.result.unchanged) == 3 and again.imported == ()
    notes = [w for w in again.warnings if "db_password.txt" in w]
    assert len(notes) == 1 and "shop_db_password version 1 from the store" in notes[0]
    assert [f[-1] for f in delivered(fake, "shop_worker_1")] == [b"CANARY-db-v1"]


def test_missing_file_not_in_the_store_is_an_error(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    (project / "db_password.txt").unlink()
    with pytest.raises(ComposeSecretsError, match=r"db_password\.txt") as caught:
        stacks.deploy("shop", options(project), progress)
    assert "not in the store" in caught.value.message
    assert fake.container_names() == []


def test_missing_external_secret_changes_nothing(project: Path, fake: FakeDocker) -> None:
    with pytest.raises(NotFoundError, match="api_key"):
        stacks.deploy("shop", options(project), progress)
    assert fake.container_names() == []
    with opener(project) as store:
        assert store.list_secrets() == []


def test_invalid_compose_changes_nothing(project: Path, fake: FakeDocker) -> None:
    invalid = COMPOSE.replace("      - db_password\nsecrets:", "      - nope\nsecrets:")
    assert invalid != COMPOSE
    (project / "compose.yaml").write_text(invalid)
    with pytest.raises(InvalidComposeError) as caught:
        stacks.deploy("shop", options(project), progress)
    assert any(d.rule == "undefined-secret" for d in caught.value.diagnostics)
    assert fake.container_names() == []
    assert not (project / "store").exists()


def test_unknown_image_is_refused_before_the_store_changes(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    fake.image_names = {"other:1"}
    with pytest.raises(BackendError, match="busybox:test"):
        stacks.deploy("shop", options(project), progress)
    with opener(project) as store:
        assert [i.name for i in store.list_secrets()] == ["api_key"]


def test_failed_deploy_records_no_usage(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    fake.fail("container.start", "shop_worker_2", "boom")
    with pytest.raises(DeployFailedError, match="boom"):
        stacks.deploy("shop", options(project), progress)
    assert fake.container_names() == []
    with opener(project) as store:
        assert store.usages(stack="shop") == []


def test_stack_rm_removes_own_secrets_but_not_external_ones(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    stacks.remove("shop", store_opener=lambda: opener(project), progress=progress)
    assert fake.container_names() == []
    with opener(project) as store:
        assert [i.name for i in store.list_secrets()] == ["api_key"]
        assert store.usages(stack="shop") == []
        store.remove("api_key")  # no longer in use
    # idempotent
    stacks.remove("shop", store_opener=lambda: opener(project), progress=progress)


def test_stack_rm_keep_secrets(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    stacks.remove(
        "shop", keep_secrets=True, store_opener=lambda: opener(project), progress=progress
    )
    with opener(project) as store:
        assert sorted(i.name for i in store.list_secrets()) == ["api_key", "shop_db_password"]


def test_removed_service_is_removed_on_redeploy(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    text = COMPOSE.split("  worker:")[0] + "secrets:" + COMPOSE.split("\nsecrets:")[1]
    (project / "compose.yaml").write_text(text)
    again = stacks.deploy("shop", options(project), progress)
    assert sorted(again.result.removed) == ["shop_worker_1", "shop_worker_2"]
    assert fake.container_names() == ["shop_web_1"]


def test_deploys_of_one_stack_wait_for_each_other(project: Path, fake: FakeDocker) -> None:
    import threading

    with_external(project)
    finished = threading.Event()

    def deploy() -> None:
        stacks.deploy("shop", options(project), progress)
        finished.set()

    with opener(project) as store, stacks.stack_lock(store, "shop"):
        worker = threading.Thread(target=deploy)
        worker.start()
        assert not finished.wait(0.5), "deploy ran while another held the stack's lock"
    worker.join(timeout=30)
    assert finished.is_set()
    assert len(fake.container_names()) == 3


def test_each_deploy_audits_its_reads_without_values(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    with opener(project) as store:
        reads = store.audit(action="read")
    assert [(e.target, e.detail) for e in reads] == [
        ("shop", "deploy with engine: api_key@1 shop_db_password@1")
    ]
    with opener(project) as store:
        assert all("CANARY" not in e.detail + e.target for e in store.audit())


def test_swarm_deploy_ignores_depends_on_an_undefined_service(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Swarm ignores depends_on, and ``validate --backend swarm`` only warns about it: the
    engine translation (which refuses an undefined service there) must not run for a swarm
    deploy, and the deploy goes on with the warning (issue 13, point 1)."""
    from composesecrets.backends.swarm.backend import SwarmBackend

    swarm = FakeDocker(swarm=True)
    monkeypatch.setitem(BACKENDS, "swarm", lambda: SwarmBackend(swarm))
    serve(monkeypatch, swarm=swarm)
    with_external(project)
    text = COMPOSE.replace("depends_on: [web]", "depends_on: [nope]")
    (project / "compose.yaml").write_text(text)
    opts = options(project)
    opts.backend = "swarm"
    outcome = stacks.deploy("shop", opts, progress)
    assert outcome.result.created == ("web", "worker")
    assert swarm.service_names() == ["shop_web", "shop_worker"]
    assert any("depends_on is not applied by the swarm backend" in w for w in outcome.warnings)
    assert any("nope" in w for w in outcome.warnings)  # undefined-dependency, as a warning


def _victim(project: Path) -> tuple[str, str]:
    """An unrelated secret, and a valid name that is a unique prefix of its ID."""
    with opener(project) as store:
        victim = store.create("victim", b"CANARY-victim")
    return victim.id, victim.id[:6]


def test_missing_external_secret_never_resolves_to_an_id_prefix(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    _, prefix = _victim(project)
    compose = COMPOSE + f"  {prefix}:\n    external: true\n"
    compose = compose.replace("      - db_password\nsecrets:", f"      - {prefix}\nsecrets:")
    (project / "compose.yaml").write_text(compose)
    with pytest.raises(NotFoundError, match=prefix):
        stacks.deploy("shop", options(project), progress)
    assert fake.container_names() == []
    with opener(project) as store:
        assert store.usages() == []


def test_file_secret_named_like_an_id_prefix_never_rotates_that_secret(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    victim_id, prefix = _victim(project)
    compose = COMPOSE.replace(
        "    file: ./db_password.txt\n", f"    file: ./db_password.txt\n    name: {prefix}\n"
    )
    (project / "compose.yaml").write_text(compose)
    outcome = stacks.deploy("shop", options(project), progress)
    assert outcome.imported == (prefix,)
    with opener(project) as store:
        assert store.get("victim") == b"CANARY-victim"
        assert store.inspect("victim").info.version == 1
        mine = store.inspect(prefix).info
        assert mine.id != victim_id and store.get(prefix) == b"CANARY-db-v1"
    assert [f[-1] for f in delivered(fake, "shop_worker_1")] == [b"CANARY-db-v1"]


# --------------------------------------------------------------------------- day two (issue 10)


def test_rm_of_a_stack_that_does_not_exist_finds_nothing(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    result = stacks.remove("nope", store_opener=lambda: opener(project), progress=progress)
    assert not result.found


def test_rm_with_a_network_that_cannot_go_finishes_everything_else(
    project: Path, fake: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from composesecrets.backends.engine import teardown

    monkeypatch.setattr(teardown, "sleep", lambda _seconds: None)
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    fake.fail("network.remove", "shop_default", "network shop_default has active endpoints",
              times=1000)  # fmt: skip
    result = stacks.remove("shop", store_opener=lambda: opener(project), progress=progress)
    assert [name for name, _ in result.leftovers] == ["shop_default"]
    assert "has active endpoints" in result.leftovers[0][1]
    assert result.secrets == ("shop_db_password",)
    assert fake.container_names() == []
    with opener(project) as store:
        assert store.usages(stack="shop") == []
        assert [i.name for i in store.list_secrets()] == ["api_key"]


def test_rolled_back_deploy_puts_the_previous_version_back(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    (project / "db_password.txt").write_bytes(b"CANARY-db-v2")
    fake.fail("container.start", "shop_worker_2-next", "boom")
    with pytest.raises(DeployFailedError, match="boom"):
        stacks.deploy("shop", options(project), progress)
    with opener(project) as store:
        details = store.inspect("shop_db_password")
        assert details.info.version == 1
        assert [v.version for v in details.versions] == [1]
        assert store.get("shop_db_password") == b"CANARY-db-v1"
    # the next deploy imports the file again
    again = stacks.deploy("shop", options(project), progress)
    assert again.imported == ("shop_db_password",)


def test_rolled_back_first_deploy_removes_the_secret_it_imported(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    fake.fail("container.start", "shop_web_1", "boom")
    with pytest.raises(DeployFailedError):
        stacks.deploy("shop", options(project), progress)
    with opener(project) as store:
        assert [i.name for i in store.list_secrets()] == ["api_key"]


@pytest.fixture
def swarm(monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    from composesecrets.backends.swarm.backend import SwarmBackend

    engine = FakeDocker(swarm=True)
    monkeypatch.setitem(BACKENDS, "swarm", lambda: SwarmBackend(engine))
    serve(monkeypatch, swarm=engine)
    return engine


def test_redeploy_without_backend_uses_the_recorded_one(
    project: Path, fake: FakeDocker, swarm: FakeDocker
) -> None:
    with_external(project)
    opts = options(project)
    opts.backend = "swarm"
    stacks.deploy("shop", opts, progress)
    opts.backend = None
    again = stacks.deploy("shop", opts, progress)
    assert again.backend == "swarm" and fake.container_names() == []
    opts.backend = "engine"
    with pytest.raises(ConflictError, match="swarm backend") as caught:
        stacks.deploy("shop", opts, progress)
    assert "stack rm --keep-secrets shop" in (caught.value.hint or "")
    assert fake.container_names() == []


def test_first_deploy_without_backend_uses_the_engine(project: Path, fake: FakeDocker) -> None:
    with_external(project)
    opts = options(project)
    opts.backend = None
    assert stacks.deploy("shop", opts, progress).backend == "engine"


def test_an_unreachable_engine_does_not_decide_the_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding which backend runs a stack asks the engine; an engine that cannot be asked
    (none there, or a remote one that the engine backend then refuses with its own reason)
    means "no backend found", not an error of its own."""

    monkeypatch.setattr(
        engine_reader, "connect", lambda environ=None: engine_reader.UnixTransport("/nonexistent")
    )
    assert stacks._found_on("shop") is None


# --------------------------------------------------------------------------- stack restore


def restore_all(project: Path) -> list[Any]:
    return stacks.restore([], everything=True, store_opener=lambda: opener(project),
                          progress=progress)  # fmt: skip


def test_restore_after_a_reboot_recreates_files_and_starts_what_docker_would(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    compose = COMPOSE.replace("    depends_on: [web]\n", "    depends_on: [web]\n"
                              "    restart: unless-stopped\n")  # fmt: skip
    (project / "compose.yaml").write_text(compose)
    stacks.deploy("shop", options(project), progress)
    before = {name: delivered(fake, name) for name in fake.container_names()}
    container(fake, "shop_worker_2").stop()  # the user stops it before the reboot
    # a reboot: dockerd stops, the tmpfs is gone, dockerd starts and cannot start them
    root = tmpfs.runtime_root()
    fake.daemon_restart(lose=[str(root / "shop")])
    assert container(fake, "shop_web_1").status == "exited"
    assert "no such file" in container(fake, "shop_worker_1").error
    # no compose file, no secret file
    (project / "compose.yaml").unlink()
    (project / "db_password.txt").unlink()
    api = engine_reader.connect()
    assert isinstance(api, FakeEngineApi)
    api.paths.clear()
    [result] = restore_all(project)
    # at boot every call counts: one listing, an inspect and a start per stopped container
    stopped = ("shop_web_1", "shop_worker_1", "shop_worker_2")
    assert sorted(api.paths) == sorted(
        ["/containers/json"]
        + [f"/containers/{container(fake, n).id}/json" for n in stopped]
        + [f"POST /containers/{container(fake, n).id}/start" for n in stopped[:2]]
    )
    assert result.started == ("shop_web_1", "shop_worker_1")
    assert result.stopped == ("shop_worker_2",) and result.problems == ()
    assert result.files == 5
    assert container(fake, "shop_worker_2").status == "exited"
    assert {name: delivered(fake, name) for name in fake.container_names()} == before
    # idempotent: nothing lost, nothing to do
    [again] = restore_all(project)
    assert again.started == () and again.files == 0
    assert again.running == ("shop_web_1", "shop_worker_1")


def test_restore_uses_the_deployed_version_not_the_newest(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    with opener(project) as store:
        store.rotate("shop_db_password", b"CANARY-db-not-deployed")
    fake.daemon_restart(lose=[str(tmpfs.runtime_root() / "shop")])
    [result] = restore_all(project)
    assert len(result.started) == 3
    assert {f[-1] for f in delivered(fake, "shop_worker_1")} == {b"CANARY-db-v1"}


def test_restore_of_a_stack_not_on_the_engine_is_an_error(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    with pytest.raises(NotFoundError, match="nope"):
        stacks.restore(["nope"], store_opener=lambda: opener(project), progress=progress)


def test_dry_run_without_the_plaintext_file_keeps_the_stored_version(
    project: Path, fake: FakeDocker
) -> None:
    with_external(project)
    stacks.deploy("shop", options(project), progress)
    (project / "db_password.txt").unlink()
    preview = stacks.dry_run("shop", options(project))
    assert len(preview.result.unchanged) == 3
    assert all(not item.new for item in preview.files)


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_deploy_reads_from_a_read_only_store(project: Path, fake: FakeDocker) -> None:
    """Issue 9 item 10: a store on a read-only file system still serves a deploy's reads (the
    audit and usage records it cannot write are reported, not fatal)."""
    import subprocess

    with_external(project)
    stacks.deploy("shop", options(project), progress)  # imports the file secret
    view = project / "ro-store"
    view.mkdir(mode=0o700)
    subprocess.run(["mount", "--bind", str(project / "store"), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        read_only = stacks.DeployOptions(
            files=[str(project / "compose.yaml")],
            backend="engine",
            store_opener=lambda: Store.open(view, unlock=EnvKeyUnlock(key=KEY), create=False),
        )
        for name in list(fake.container_names()):
            fake.find_container(name).remove(force=True)  # type: ignore[union-attr]
        outcome = stacks.deploy("shop", read_only, progress)
        assert "shop_web_1" in outcome.result.created
        assert ("/etc/app/key.pem", 0, 0, 0o444, b"CANARY-api") in delivered(fake, "shop_web_1")
    finally:
        subprocess.run(["umount", str(view)], check=False)


def test_restore_republishes_an_in_place_container_with_its_rotated_version(
    project: Path, fake: FakeDocker
) -> None:
    """An in-place service's secrets live in a versioned directory behind ``..data``: after a
    reboot, restore publishes the version the container had last (rotated in place), not the
    plain files of other services and not the version it was created with."""
    from composesecrets.backends.engine import atomic

    with_external(project)
    compose = COMPOSE.replace(
        "    command: [\"sleep\", \"3600\"]\n",
        "    command: [\"sleep\", \"3600\"]\n"
        "    labels:\n      io.composesecrets.rotate: in-place\n",
    )
    (project / "compose.yaml").write_text(compose)
    stacks.deploy("shop", options(project), progress)
    (project / "db_password.txt").write_bytes(b"CANARY-db-v2")
    again = stacks.deploy("shop", options(project), progress)
    assert again.result.rotated == ("shop_web_1",)  # the worker has no label: recreated
    web = container(fake, "shop_web_1")
    directory = tmpfs.stack_directory(tmpfs.runtime_root(), "shop") / web.labels[
        "io.composesecrets.secret-dir"
    ]
    live = atomic.live_versions(directory)
    assert live is not None and "shop_db_password@2" in live
    fake.daemon_restart(lose=[str(tmpfs.runtime_root() / "shop")])
    assert atomic.live_versions(directory) is None
    [result] = restore_all(project)
    assert "shop_web_1" in result.started and result.problems == ()
    assert atomic.live_versions(directory) == live
    assert b"CANARY-db-v2" in {
        p.read_bytes() for p in (directory / atomic.DATA).iterdir() if not p.name.startswith("..")
    }
