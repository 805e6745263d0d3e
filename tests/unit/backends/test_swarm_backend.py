"""The real Swarm backend against the in-memory Docker client: convergence, Swarm secrets
per version (created, reused, pruned), rollback at each failure point, and the manager check."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from unit.backends.conftest import Load, quiet, secrets_for
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import FakeEngineApi

from composesecrets.backends import DeployRequest, listing
from composesecrets.backends.swarm.backend import SwarmBackend
from composesecrets.backends.swarm.swarm_secrets import swarm_secret_name
from composesecrets.docker_rules import LABEL_HASH, LABEL_IMAGE, LABEL_NAMESPACE, LABEL_STACK
from composesecrets.errors import BackendError, ConflictError, DeployFailedError

IMAGE = "busybox:test"


def doc(**extra: Any) -> dict[str, Any]:
    return {
        "version": "3.8",
        "services": {
            "db": {"image": IMAGE, "secrets": ["pw"]},
            "web": {
                "image": IMAGE,
                "deploy": {"replicas": 2},
                "secrets": [{"source": "pw", "target": "app_pw", "uid": "33", "mode": 0o400}],
                **extra,
            },
        },
        "secrets": {"pw": {"file": "./pw.txt"}},
    }


VALUES = {"pw": (b"CANARY-v1", 1)}


def backend_for(fake: FakeDocker) -> SwarmBackend:
    backend = SwarmBackend(fake)
    backend.poll_interval = 0.0
    backend.converge_timeout = 0.5
    backend.remove_timeout = 0.5
    return backend


def deploy(backend: SwarmBackend, request: DeployRequest, values: Any = None) -> Any:
    plan = backend.plan(request)
    backend.preflight(plan)
    return backend.deploy(plan.with_secrets(secrets_for(request, values or VALUES)), quiet)


def service_hashes(fake: FakeDocker) -> dict[str, str]:
    return {s["Spec"]["Name"]: s["Spec"]["Labels"][LABEL_HASH] for s in fake.service_store.values()}


def test_first_deploy_creates_network_secrets_and_services(
    swarm_fake: FakeDocker, load: Load
) -> None:
    result = deploy(backend_for(swarm_fake), load(doc()))
    assert result.created == ("db", "web") and result.networks_created == ("st_default",)
    assert swarm_fake.service_names() == ["st_db", "st_web"]
    # one Swarm secret per (version, uid, gid, mode): db and web mount pw differently
    assert len(swarm_fake.secret_names()) == 2
    assert set(swarm_fake.secret_data.values()) == {b"CANARY-v1"}
    web = next(s for s in swarm_fake.service_store.values() if s["Spec"]["Name"] == "st_web")
    (ref,) = web["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert ref["File"] == {"Name": "/run/secrets/app_pw", "UID": "33", "GID": "0", "Mode": 0o400}
    assert ref["SecretName"] == swarm_secret_name("st", "pw", "st_pw", 1, 33, 0, 0o400,
                                                  "digest-st_pw-1")  # fmt: skip
    assert web["Spec"]["Labels"][LABEL_NAMESPACE] == "st"
    running = [t for t in swarm_fake.tasks if t["ServiceID"] == web["ID"]]
    assert len(running) == 2


def test_redeploy_unchanged_leaves_services_alone(swarm_fake: FakeDocker, load: Load) -> None:
    backend = backend_for(swarm_fake)
    deploy(backend, load(doc()))
    swarm_fake.calls.clear()
    result = deploy(backend, load(doc()))
    assert result.unchanged == ("db", "web") and result.created == result.recreated == ()
    assert [op for op, _ in swarm_fake.calls] == []


def spec_images(fake: FakeDocker) -> dict[str, str]:
    return {
        s["Spec"]["Name"]: s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        for s in fake.service_store.values()
    }


def test_a_local_image_is_named_by_its_id_on_a_single_node_swarm(
    swarm_fake: FakeDocker, load: Load
) -> None:
    """No registry knows it: a tag would make every task try a pull that cannot succeed."""
    deploy(backend_for(swarm_fake), load(doc()))
    pinned = swarm_fake.image_id(IMAGE)
    assert spec_images(swarm_fake) == {"st_db": pinned, "st_web": pinned}
    web = next(s for s in swarm_fake.service_store.values() if s["Spec"]["Name"] == "st_web")
    assert web["Spec"]["Labels"][LABEL_IMAGE] == IMAGE  # what listings show


def test_a_rebuilt_image_rolls_the_services(swarm_fake: FakeDocker, load: Load) -> None:
    backend = backend_for(swarm_fake)
    deploy(backend, load(doc()))
    assert deploy(backend, load(doc())).unchanged == ("db", "web")
    swarm_fake.builds[IMAGE] = 1  # docker build -t busybox:test . again
    assert deploy(backend, load(doc())).recreated == ("db", "web")
    assert set(spec_images(swarm_fake).values()) == {swarm_fake.image_id(IMAGE)}


@pytest.mark.parametrize(
    "setup",
    ["registry image", "multi-node swarm", "not on this node", "digest reference"],
)
def test_other_images_keep_their_reference(swarm_fake: FakeDocker, load: Load, setup: str) -> None:
    image = IMAGE
    if setup == "registry image":  # its tasks pull the tag's newest, as Docker's do
        swarm_fake.repo_digests[IMAGE] = [f"busybox@sha256:{'1' * 64}"]
    elif setup == "multi-node swarm":  # other nodes may hold their own build of the tag
        swarm_fake.swarm_nodes = 3
    elif setup == "not on this node":
        image = "example.org/app:1"  # the swarm pulls it (and reports per task)
    else:
        image = f"{IMAGE}@sha256:{'2' * 64}"
    services = doc()["services"]
    for service in services.values():
        service["image"] = image
    deploy(backend_for(swarm_fake), load({**doc(), "services": services}))
    assert set(spec_images(swarm_fake).values()) == {image}


def test_new_version_updates_services_and_prunes_the_old_secrets(
    swarm_fake: FakeDocker, load: Load
) -> None:
    backend = backend_for(swarm_fake)
    request = load(doc())
    deploy(backend, request)
    old = set(swarm_fake.secret_names())
    result = deploy(backend, request, {"pw": (b"CANARY-v2", 2)})
    assert result.recreated == ("db", "web")
    new = set(swarm_fake.secret_names())
    assert len(new) == 2 and not (new & old)  # stale Swarm secrets pruned
    assert set(swarm_fake.secret_data.values()) == {b"CANARY-v2"}


def test_a_secret_another_stack_uses_is_not_pruned(swarm_fake: FakeDocker, load: Load) -> None:
    backend = backend_for(swarm_fake)
    deploy(backend, load(doc()))
    # a foreign service (not of this stack) mounts one of the stack's Swarm secrets
    secret_id = next(iter(swarm_fake.secret_store))
    template = {"ContainerSpec": {"Image": IMAGE, "Secrets": [{"SecretID": secret_id}]}}
    swarm_fake.api.create_service(template, "foreign")
    deploy(backend, load(doc()), {"pw": (b"CANARY-v2", 2)})
    assert secret_id in swarm_fake.secret_store


def test_removed_service_is_removed(swarm_fake: FakeDocker, load: Load) -> None:
    backend = backend_for(swarm_fake)
    deploy(backend, load(doc()))
    smaller = doc()
    del smaller["services"]["db"]
    result = deploy(backend, load(smaller))
    assert result.removed == ("st_db",)
    assert swarm_fake.service_names() == ["st_web"]
    assert len(swarm_fake.secret_names()) == 1  # db's secret went with it


@pytest.mark.parametrize(
    ("operation", "name"),
    [("network.create", "st_default"), ("service.create", "st_web")],
)
def test_first_deploy_failure_is_undone(
    swarm_fake: FakeDocker, load: Load, operation: str, name: str
) -> None:
    swarm_fake.fail(operation, name, "boom")
    with pytest.raises(DeployFailedError, match=r"boom.*undone"):
        deploy(backend_for(swarm_fake), load(doc()))
    assert swarm_fake.service_names() == []
    assert swarm_fake.secret_names() == []
    assert swarm_fake.network_names() == []


def test_secret_create_failure_is_undone(swarm_fake: FakeDocker, load: Load) -> None:
    swarm_fake.fail("secret.create", None, "boom")
    with pytest.raises(DeployFailedError, match="boom"):
        deploy(backend_for(swarm_fake), load(doc()))
    assert swarm_fake.secret_names() == [] and swarm_fake.service_names() == []


def test_failed_update_restores_the_previous_specs(swarm_fake: FakeDocker, load: Load) -> None:
    backend = backend_for(swarm_fake)
    deploy(backend, load(doc()))
    before = service_hashes(swarm_fake)
    old_secrets = set(swarm_fake.secret_names())
    swarm_fake.fail("service.update", "st_web", "boom")
    with pytest.raises(DeployFailedError, match="boom"):
        deploy(backend, load(doc()), {"pw": (b"CANARY-v2", 2)})
    assert service_hashes(swarm_fake) == before
    assert set(swarm_fake.secret_names()) == old_secrets  # the new version's secrets undone


def test_tasks_that_fail_fail_the_deploy_and_it_is_undone(
    swarm_fake: FakeDocker, load: Load
) -> None:
    swarm_fake.exit_codes[IMAGE] = 1
    with pytest.raises(DeployFailedError, match="non-zero exit"):
        deploy(backend_for(swarm_fake), load(doc()))
    assert swarm_fake.service_names() == []


def test_existing_secret_with_other_data_is_refused(swarm_fake: FakeDocker, load: Load) -> None:
    request = load(doc())
    name = swarm_secret_name("st", "pw", "st_pw", 1, 0, 0, 0o444, "digest-st_pw-1")
    swarm_fake.secrets.create(name, b"other", {LABEL_STACK: "st"})
    with pytest.raises(DeployFailedError, match="holds other data"):
        deploy(backend_for(swarm_fake), request)


def test_not_a_manager_is_refused_before_anything(fake: FakeDocker, load: Load) -> None:
    backend = backend_for(fake)
    with pytest.raises(BackendError, match="not an active swarm manager"):
        backend.preflight(backend.plan(load(doc())))
    assert fake.calls == []


def test_foreign_service_name_is_a_conflict(swarm_fake: FakeDocker, load: Load) -> None:
    swarm_fake.api.create_service({"ContainerSpec": {"Image": IMAGE}}, "st_db")
    backend = backend_for(swarm_fake)
    with pytest.raises(ConflictError, match="st_db already exists"):
        backend.preflight(backend.plan(load(doc())))


def test_depends_on_an_undefined_service_is_ignored_like_swarm_does(
    swarm_fake: FakeDocker, load: Load
) -> None:
    """Swarm ignores depends_on; the engine translator's check must not run for it."""
    body = doc(depends_on=["nope"])
    backend = backend_for(swarm_fake)
    # strict validation for the swarm backend only warns about it (undefined-dependency)
    plan = backend.plan(load(body, backend="swarm"))
    assert any("depends_on is not applied by the swarm backend" in w for w in plan.warnings)
    deploy(backend, load(body, backend="swarm"))
    assert swarm_fake.service_names() == ["st_db", "st_web"]


def test_remove_takes_services_networks_and_secrets(swarm_fake: FakeDocker, load: Load) -> None:
    backend = backend_for(swarm_fake)
    deploy(backend, load(doc()))
    api = FakeEngineApi(swarm_fake)
    assert listing.swarm_stacks(api) == {"st": 2}
    assert {c.service for c in listing.swarm_containers(api, "st")} == {"db", "web"}
    result = backend.remove("st", quiet)
    assert sorted(result.containers) == ["st_db", "st_web"]
    assert swarm_fake.service_names() == swarm_fake.secret_names() == []
    assert swarm_fake.network_names() == []


def test_waiting_polls_the_services_still_converging_then_every_change_once() -> None:
    """Each round asks about the services not yet running (whole task specs are big) and
    lists services (an update's status) only for updated ones; when none is left, a last
    round asks about every change (all must run in the same round)."""
    from composesecrets.backends.swarm import tasks as waiting

    rounds: list[list[str]] = []
    service_calls: list[list[str]] = []

    def task(service_id: str, state: str) -> dict[str, Any]:
        spec = {"ContainerSpec": {"Labels": {LABEL_HASH: f"h-{service_id}"}}}
        return {"ID": f"t-{service_id}", "ServiceID": service_id, "Spec": spec,
                "DesiredState": "running", "Status": {"State": state}}  # fmt: skip

    def tasks(filters: dict[str, Any]) -> list[dict[str, Any]]:
        rounds.append(list(filters["service"]))
        late = "running" if len(rounds) > 1 else "starting"
        states = {"a": "running", "b": late, "c": late}
        return [task(i, states[i]) for i in filters["service"]]

    def services(filters: dict[str, Any]) -> list[dict[str, Any]]:
        service_calls.append(list(filters["id"]))
        return [{"ID": i} for i in filters["id"]]

    client = SimpleNamespace(api=SimpleNamespace(tasks=tasks, services=services))
    changes = [
        waiting.Change("a", "a", "h-a", 1, update=False),
        waiting.Change("b", "b", "h-b", 1, update=False),
        waiting.Change("c", "c", "h-c", 1, update=True),
    ]
    waiting.wait_running(client, changes, timeout=5, poll=0)
    assert rounds == [["a", "b", "c"], ["b", "c"], ["a", "b", "c"]]
    assert service_calls == [["c"], ["c"], ["c"]]


def test_a_service_that_ran_and_then_failed_fails_the_wait() -> None:
    """A task that runs at first and fails while another service still converges fails the
    deploy (dropping converged services from the polls without a last round over every
    change lost this: the swarm integration test of a failing service caught it)."""
    from composesecrets.backends.swarm import tasks as waiting

    rounds = 0

    def tasks(filters: dict[str, Any]) -> list[dict[str, Any]]:
        nonlocal rounds
        rounds += 1
        states = {"bad": "running" if rounds == 1 else "failed",
                  "slow": "starting" if rounds == 1 else "running"}  # fmt: skip
        spec = {"ContainerSpec": {"Labels": {LABEL_HASH: "h"}}}
        return [{"ID": f"t-{i}", "ServiceID": i, "Spec": spec, "DesiredState": "running",
                 "Status": {"State": states[i], "Err": "exit 3"}}
                for i in filters["service"]]  # fmt: skip

    client = SimpleNamespace(api=SimpleNamespace(tasks=tasks, services=lambda filters: []))
    changes = [waiting.Change("bad", "bad", "h", 1, update=False),
               waiting.Change("slow", "slow", "h", 1, update=False)]  # fmt: skip
    with pytest.raises(BackendError, match='service "bad": task t-bad failed: exit 3'):
        waiting.wait_running(client, changes, timeout=5, poll=0)
    assert rounds == 3  # all; the one still converging; all again (bad failed by then)


BUSY = (
    "starting container failed: unable to remount dir as readonly: mount tmpfs:/var/lib/docker/"
    "containers/abc/mounts/secrets, flags: 0x21, data: uid=0,gid=0: device or resource busy"
)


def task_in(state: str, err: str = "", desired: str = "running", n: int = 0) -> dict[str, Any]:
    spec = {"ContainerSpec": {"Labels": {LABEL_HASH: "h"}}}
    return {"ID": f"task{n:08d}", "ServiceID": "s", "Spec": spec, "DesiredState": desired,
            "Status": {"State": state, "Err": err}}  # fmt: skip


def test_a_failed_start_is_left_to_swarms_restart() -> None:
    """The engine's passing fault (moby#48783) on one task does not fail the deploy: Swarm
    starts another task, and the deploy goes on once that one runs."""
    from composesecrets.backends.swarm import tasks as waiting

    change = waiting.Change("web", "s", "h", 1, update=False)
    failed = task_in("failed", BUSY, desired="shutdown", n=1)
    assert waiting.converged(change, [failed], None) == "0/1 running"
    assert waiting.converged(change, [failed, task_in("running", n=2)], None) is None


@pytest.mark.parametrize(
    ("tasks", "restarts", "message"),
    [
        ([task_in("failed", BUSY, "shutdown", n) for n in range(3)], True, "(3 attempts)"),
        ([task_in("failed", BUSY, "shutdown")], False, "device or resource busy"),
        (
            [
                task_in("failed", BUSY, "shutdown", 1),
                task_in("failed", "task: non-zero exit (3)", n=2),
            ],
            True,
            "non-zero exit (3)",
        ),
        ([task_in("rejected", "No such image: nope:1")], True, "No such image"),
    ],
)
def test_failures_that_fail_the_deploy(
    tasks: list[dict[str, Any]], restarts: bool, message: str
) -> None:
    """Repeated start failures, a service Swarm does not restart (restart_policy: none), a
    process that exited with an error, or a rejected task: the deploy fails at once."""
    from composesecrets.backends.swarm import tasks as waiting

    change = waiting.Change("web", "s", "h", 1, update=False, restarts=restarts)
    with pytest.raises(BackendError, match=re.escape(message)):
        waiting.converged(change, tasks, None)
