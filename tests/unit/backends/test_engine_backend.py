"""The real engine backend against the in-memory Docker client: convergence (created,
recreated, unchanged, removed), rollback at each failure point, the network answers."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from unit.backends.conftest import Load, quiet, secrets_for
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import FakeEngineApi

from composesecrets.backends import DeployRequest, listing, stopping
from composesecrets.backends.engine.backend import EngineBackend
from composesecrets.docker_rules import LABEL_HASH, LABEL_STACK
from composesecrets.errors import (
    BackendError,
    ConflictError,
    DeployFailedError,
    InvalidComposeError,
    UsageError,
)
from composesecrets.stacks import describe

IMAGE = "busybox:test"


def doc(**extra: Any) -> dict[str, Any]:
    return {
        "version": "3.8",
        "services": {
            "db": {"image": IMAGE, "secrets": ["pw"]},
            "web": {
                "image": IMAGE,
                "depends_on": ["db"],
                "deploy": {"replicas": 2},
                "secrets": [{"source": "pw", "target": "app/pw", "uid": "33", "mode": 0o400}],
                **extra,
            },
        },
        "secrets": {"pw": {"file": "./pw.txt"}},
    }


VALUES = {"pw": (b"CANARY-v1", 1)}


def deploy(backend: EngineBackend, request: DeployRequest, values: Any = None) -> Any:
    plan = backend.plan(request)
    backend.preflight(plan)
    return backend.deploy(plan.with_secrets(secrets_for(request, values or VALUES)), quiet)


def hashes(fake: FakeDocker) -> dict[str, str]:
    return {c.name: c.labels[LABEL_HASH] for c in fake.containers_by_id.values()}


def test_first_deploy_creates_networks_containers_and_secret_files(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    result = deploy(backend, load(doc()))
    assert sorted(result.created) == ["st_db_1", "st_web_1", "st_web_2"]
    assert result.networks_created == ("st_default",)
    assert fake.container_names() == ["st_db_1", "st_web_1", "st_web_2"]
    assert all(c.status == "running" for c in fake.containers_by_id.values())
    # depends_on: db is created before any web replica
    creates = [name for op, name in fake.calls if op == "container.create"]
    assert creates[0] == "st_db_1"
    web = fake.find_container("st_web_1")
    assert web is not None
    (mount,) = web.kwargs["mounts"]
    assert mount["Target"] == "/run/secrets/app/pw" and mount["ReadOnly"] is True
    path = Path(mount["Source"])
    assert path.is_relative_to(secret_root)
    assert path.read_bytes() == b"CANARY-v1"
    info = path.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (33, 0o400)


def test_redeploy_unchanged_touches_nothing(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    before = hashes(fake)
    fake.calls.clear()
    result = deploy(backend, load(doc()))
    assert sorted(result.unchanged) == ["st_db_1", "st_web_1", "st_web_2"]
    assert result.created == result.recreated == result.removed == ()
    assert hashes(fake) == before
    assert [op for op, _ in fake.calls] == []


def test_new_secret_version_recreates_only_its_users(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    request = load(doc())
    deploy(backend, request)
    result = deploy(backend, request, {"pw": (b"CANARY-v2", 2)})
    assert sorted(result.recreated) == ["st_db_1", "st_web_1", "st_web_2"]
    assert fake.container_names() == ["st_db_1", "st_web_1", "st_web_2"]  # -next renamed
    web = fake.find_container("st_web_2")
    assert web is not None
    assert Path(web.kwargs["mounts"][0]["Source"]).read_bytes() == b"CANARY-v2"
    # the old containers' secret directories are gone with them
    assert len(list((secret_root / "st").iterdir())) == 3


def replace_a_and_b(backend: EngineBackend, load: Load, b: dict[str, Any]) -> None:
    """Deploy services "a" (the fake's instant image) and ``b``, then a new secret version
    that replaces both; the stack's network must keep a true endpoint count."""
    services = {"a": {"image": IMAGE, "secrets": ["pw"]}, "b": b}
    request = load({"version": "3.8", "services": services, "secrets": doc()["secrets"]})
    deploy(backend, request)
    result = deploy(backend, request, {"pw": (b"CANARY-v2", 2)})
    assert sorted(result.recreated) == ["st_a_1", "st_b_1"]
    assert backend.client.network_named("st_default").phantoms == 0


def test_a_replacement_takes_its_name_while_no_other_endpoint_changes(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    """Docker 20.10's rename of a running container rewrites its networks' endpoint count
    from a copy read when the rename began: a container that starts or stops on the same
    network meanwhile is lost from the count, and the network can never be removed. Here
    "b"'s old container stops (0.1 s) during "a"'s rename (0.2 s) unless renames wait."""
    fake.image_names.add("slow:test")
    fake.slow_stops["slow:test"] = 0.1
    fake.rename_window = 0.2
    backend = EngineBackend(fake)
    replace_a_and_b(backend, load, {"image": "slow:test", "secrets": ["pw"]})
    assert not backend.remove("st", quiet).leftovers
    assert fake.network_names() == []


def test_a_replacement_takes_its_name_only_once_stopped_containers_let_go(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    """Docker answers a stop before it releases the container's endpoints (under the
    container's lock), and a rename meanwhile loses that release. "b" publishes a port, so
    its old container stops first and is removed only after its replacement started (0.3 s),
    while "a"'s rename is due."""
    fake.image_names.add("slowstart:test")
    fake.slow_starts["slowstart:test"] = 0.3
    slow = {"image": "slowstart:test", "ports": ["8080:80"], "secrets": ["pw"]}
    replace_a_and_b(EngineBackend(fake), load, slow)


def test_changed_service_is_recreated_and_others_unchanged(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    result = deploy(backend, load(doc(environment={"MODE": "2"})))
    assert sorted(result.recreated) == ["st_web_1", "st_web_2"]
    assert result.unchanged == ("st_db_1",)


def test_removed_replicas_and_services_are_removed(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    smaller = doc()
    del smaller["services"]["db"]
    smaller["services"]["web"].pop("depends_on")
    smaller["services"]["web"]["deploy"]["replicas"] = 1
    result = deploy(backend, load(smaller))
    assert sorted(result.removed) == ["st_db_1", "st_web_2"]
    assert fake.container_names() == ["st_web_1"]


def test_a_stopped_container_with_the_same_hash_is_started_again(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    db = fake.find_container("st_db_1")
    assert db is not None
    db.status = "exited"  # e.g. `docker kill`: the run starts it again and says so
    result = deploy(backend, load(doc()))
    assert result.started == ("st_db_1",)
    assert "st_db_1" not in result.unchanged
    assert sorted(result.unchanged) == ["st_web_1", "st_web_2"]
    assert db.status == "running"
    assert describe(result) == "1 started, 2 unchanged"


@pytest.mark.parametrize(
    ("operation", "name"),
    [
        ("network.create", "st_default"),
        ("container.create", "st_db_1"),
        ("container.create", "st_web_2"),
        ("container.start", "st_web_1"),
        ("network.connect", "st_back"),
    ],
)
def test_first_deploy_failure_is_undone(
    fake: FakeDocker, load: Load, secret_root: Path, operation: str, name: str
) -> None:
    fake.fail(operation, name, "boom")
    backend = EngineBackend(fake)
    body = doc(networks=["default", "back"])
    body["networks"] = {"back": {}}
    with pytest.raises(DeployFailedError, match=r"boom.*undone"):
        deploy(backend, load(body))
    assert fake.container_names() == []
    assert fake.network_names() == []
    assert list(secret_root.rglob("*")) == [] or not any(
        p.is_file() for p in secret_root.rglob("*")
    )


def test_container_that_exits_at_once_fails_the_deploy(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    fake.exit_codes[IMAGE] = 3
    with pytest.raises(DeployFailedError, match="exited with code 3"):
        deploy(EngineBackend(fake), load(doc()))
    assert fake.container_names() == []


@pytest.mark.parametrize(
    ("operation", "name"),
    [
        ("container.create", "st_web_2-next"),
        ("container.start", "st_web_1-next"),
        ("container.stop", "st_web_1"),
    ],
)
def test_failed_replacement_keeps_the_old_containers(
    fake: FakeDocker, load: Load, secret_root: Path, operation: str, name: str
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    before = hashes(fake)
    fake.fail(operation, name, "boom")
    with pytest.raises(DeployFailedError, match="boom"):
        deploy(backend, load(doc(environment={"MODE": "2"})))
    # replacements made before the failure are undone; what still stands is the old set
    assert not any(n.endswith("-next") for n in fake.container_names())
    for container in fake.containers_by_id.values():
        if container.name in before:
            assert container.labels[LABEL_HASH] in set(before.values())


def test_published_port_replacement_restarts_the_old_container_on_failure(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    ports = doc(ports=["8080:80"])
    ports["services"]["web"]["deploy"]["replicas"] = 1
    deploy(backend, load(ports))
    fake.fail("container.start", "st_web_1-next", "port is already allocated")
    changed = doc(ports=["8080:80"], environment={"A": "1"})
    changed["services"]["web"]["deploy"]["replicas"] = 1
    with pytest.raises(DeployFailedError, match="port is already allocated"):
        deploy(backend, load(changed))
    web = fake.find_container("st_web_1")
    assert web is not None and web.status == "running"
    assert fake.container_names() == ["st_db_1", "st_web_1"]


def test_name_clash_with_a_foreign_container_is_refused(fake: FakeDocker, load: Load) -> None:
    fake.containers.create(IMAGE, name="st_db_1", labels={LABEL_STACK: "other"})
    backend = EngineBackend(fake)
    with pytest.raises(ConflictError, match='belongs to stack "other"'):
        backend.preflight(backend.plan(load(doc())))


def test_missing_image_that_cannot_be_pulled_is_refused(fake: FakeDocker, load: Load) -> None:
    fake.image_names.clear()
    backend = EngineBackend(fake)
    with pytest.raises(BackendError, match="busybox:test is not on this engine"):
        backend.preflight(backend.plan(load(doc())))
    assert fake.container_names() == []


def test_missing_external_network_is_refused(fake: FakeDocker, load: Load) -> None:
    body = doc(networks=["outside"])
    body["networks"] = {"outside": {"external": True}}
    body["services"]["db"]["networks"] = ["outside"]
    backend = EngineBackend(fake)
    with pytest.raises(BackendError, match="external network outside does not exist"):
        backend.preflight(backend.plan(load(body)))


def test_network_no_longer_used_is_removed_and_active_endpoints_fail(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    body = doc(networks=["front"])
    body["networks"] = {"front": {}}
    deploy(backend, load(body))
    assert fake.network_names() == ["st_default", "st_front"]
    # a foreign container still attached: the engine answers "has active endpoints" and
    # (today, no retry) the redeploy reports it
    foreign = fake.containers.create(IMAGE, name="debug")
    fake.network_named("st_front").connect(foreign)
    with pytest.raises(BackendError, match=r"st_front.*has active endpoints"):
        deploy(backend, load(doc()))
    foreign.remove(force=True)
    deploy(backend, load(doc()))
    assert fake.network_names() == ["st_default"]


def test_remove_stops_with_the_grace_period_and_removes_everything(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc(stop_grace_period="3s")))
    result = backend.remove("st", quiet)
    assert sorted(result.containers) == ["st_db_1", "st_web_1", "st_web_2"]
    assert result.networks == ("st_default",)
    assert fake.container_names() == [] and fake.network_names() == []
    assert fake.stop_timeouts["st_web_1"] == 3 and fake.stop_timeouts["st_db_1"] == 10
    assert not (secret_root / "st").exists()
    assert backend.remove("st", quiet).containers == ()  # idempotent


def test_stops_that_wait_out_their_grace_period_say_so(
    fake: FakeDocker, load: Load, secret_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stopping, "NOTICE_AFTER", 0.01)
    backend = EngineBackend(fake)
    deploy(backend, load(doc(stop_grace_period="3s")))
    fake.slow_stops["busybox:test"] = 0.2
    said: list[tuple[str, str]] = []
    changed = load(doc(stop_grace_period="3s", environment={"A": "1"}))  # web is replaced
    plan = backend.plan(changed)
    backend.deploy(plan.with_secrets(secrets_for(changed, VALUES)), lambda *a: said.append(a))
    backend.remove("st", lambda *a: said.append(a))
    waits = sorted(what for _, what in said if what.startswith("waiting"))
    assert waits == [
        "waiting up to 10s for st_db_1 to stop (stop_grace_period)",
        *["waiting up to 3s for st_web_1 to stop (stop_grace_period)"] * 2,
        *["waiting up to 3s for st_web_2 to stop (stop_grace_period)"] * 2,
    ]


def test_remove_takes_each_container_off_its_networks_before_its_stop(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    """Docker 20.10 keeps a phantom endpoint after many stops at once on one network: the
    teardown disconnects each container (one at a time) before stopping it."""
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    ids = {c.id: c.name for c in fake.containers_by_id.values()}
    fake.calls.clear()
    backend.remove("st", quiet)
    for container_id, name in ids.items():
        mine = [op for op, subject in fake.calls
                if subject in (name, f"st_default/{container_id}")]  # fmt: skip
        assert mine[:2] == ["network.disconnect", "container.stop"], (name, mine)


def test_copy_delivery_puts_an_archive_before_start(fake: FakeDocker, load: Load) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc(), delivery="copy"))
    web = fake.find_container("st_web_1")
    assert web is not None and len(web.archives) == 1
    assert b"CANARY-v1" in web.archives[0]
    assert "mounts" not in web.kwargs or not web.kwargs["mounts"]


def test_containers_and_stacks_queries(fake: FakeDocker, load: Load, secret_root: Path) -> None:
    """What the listings (stack ls/ps) read of a deployed stack."""
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    api = FakeEngineApi(fake)
    assert listing.engine_stacks(api) == {"st": 2}
    found = listing.engine_containers(api, "st")
    assert [(c.name, c.service, c.state) for c in found] == [
        ("st_db_1", "db", "running"),
        ("st_web_1", "web", "running"),
        ("st_web_2", "web", "running"),
    ]
    assert found[1].secrets == ("/run/secrets/app/pw",)
    assert found[1].to_json()["Secrets"] == ["/run/secrets/app/pw"]


def test_depends_on_cycle_is_refused_by_the_plan(load: Load) -> None:
    body = doc()
    body["services"]["db"]["depends_on"] = ["web"]
    with pytest.raises(InvalidComposeError, match="cycle"):
        EngineBackend(FakeDocker()).plan(load(body))


# --------------------------------------------------------------------------- stack rm


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Network-removal retries without waiting; the waits asked for are collected."""
    from composesecrets.backends.engine import teardown

    waits: list[float] = []
    monkeypatch.setattr(teardown, "sleep", waits.append)
    return waits


def test_remove_force_disconnects_a_stale_endpoint(
    fake: FakeDocker, load: Load, secret_root: Path, no_backoff: list[float]
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    # Docker 20.10 after concurrent removals: the network lists no container, yet the daemon
    # answers "has active endpoints" until the stale endpoint is disconnected with force
    fake.leave_stale_endpoint("st_default", "st_web_2")
    result = backend.remove("st", quiet)
    assert result.networks == ("st_default",) and result.leftovers == ()
    assert fake.network_names() == []
    assert ("network.disconnect", "st_default/st_web_2") in fake.calls


def test_remove_finishes_and_reports_a_network_that_cannot_go(
    fake: FakeDocker, load: Load, secret_root: Path, no_backoff: list[float]
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    reason = "error while removing network: network st_default id 1 has active endpoints"
    fake.fail("network.remove", "st_default", reason, times=1000)
    result = backend.remove("st", quiet)
    assert fake.container_names() == [] and not (secret_root / "st").exists()
    assert result.networks == ()
    [(name, why)] = result.leftovers
    assert name == "st_default" and "has active endpoints" in why
    assert len(no_backoff) >= 3 and no_backoff == sorted(no_backoff)  # backoff grows
    assert sum(no_backoff) < 15


def test_remove_retries_a_network_until_it_goes(
    fake: FakeDocker, load: Load, secret_root: Path, no_backoff: list[float]
) -> None:
    backend = EngineBackend(fake)
    deploy(backend, load(doc()))
    fake.fail("network.remove", "st_default", "network st_default has active endpoints", times=2)
    result = backend.remove("st", quiet)
    assert result.networks == ("st_default",) and result.leftovers == ()
    assert fake.network_names() == []


def test_remove_of_nothing_finds_nothing(fake: FakeDocker, secret_root: Path) -> None:
    result = EngineBackend(fake).remove("nope", quiet)
    assert result.containers == () and result.networks == () and not result.found


def test_failed_container_error_carries_its_last_20_log_lines(
    fake: FakeDocker, load: Load, secret_root: Path
) -> None:
    fake.exit_codes[IMAGE] = 3
    fake.log_lines[IMAGE] = [f"out {i:02d}" for i in range(30)]
    with pytest.raises(DeployFailedError) as caught:
        deploy(EngineBackend(fake), load(doc()))
    message = caught.value.message
    assert "exited with code 3" in message
    assert "out 10" in message and "out 29" in message and "out 09" not in message
    assert fake.container_names() == []  # rolled back, the evidence kept in the message


def test_remote_engine_is_refused_before_connecting_to_it(
    load: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tmpfs delivery needs a local engine: said before any connection (an unreachable remote
    engine must not turn the pointer to Swarm into a connection error)."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # nothing listens there
    backend = EngineBackend()  # connects on first use of its client
    with pytest.raises(UsageError, match="not local"):
        backend.preflight(backend.plan(load(doc())))
