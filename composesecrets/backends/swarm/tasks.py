"""Waiting on Swarm: until the tasks of changed services run their new configuration, until
removed services have no task or container left, and a network removal that waits while the
engine detaches task endpoints. Polls with the low-level API (``client.api``).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from composesecrets.backends.docker_api import docker, parallel, reason, translated
from composesecrets.docker_rules import LABEL_HASH
from composesecrets.errors import BackendError

__all__ = ["Change", "converged", "remove_network", "stop_local_tasks", "wait_gone",
           "wait_running"]  # fmt: skip

ACTIVE = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running")
FAILED = ("failed", "rejected")
SERVICE_ID_LABEL = "com.docker.swarm.service.id"
# The engine failed to start the container before its process ran; some of these are the
# engine's own passing faults (moby#48783: "unable to remount dir as readonly ... device or
# resource busy" for a task's secrets directory), which Swarm's restart of the task cures.
START_FAILURE = "starting container failed"
START_ATTEMPTS = 3  # failed starts of one service's new configuration before the deploy fails


@dataclass(frozen=True)
class Change:
    """A service this deploy created or updated, and the configuration it must run."""

    key: str
    service_id: str
    config_hash: str
    replicas: int | None  # None: global
    update: bool = True  # an existing service updated (False: created by this deploy)
    restarts: bool = True  # Swarm replaces its failed tasks (restart_policy: any, on-failure)


def tasks_of(client: Any, service_ids: Iterable[str], **filters: Any) -> list[dict[str, Any]]:
    ids = sorted(set(service_ids))
    if not ids:
        return []
    with translated("listing tasks"):
        found: list[dict[str, Any]] = client.api.tasks(filters={"service": ids, **filters})
    return found


def wait_running(client: Any, changes: list[Change], timeout: float, poll: float) -> None:
    """Wait until the tasks of the changed services run the new configuration.

    A round asks only about the services still converging (the answers are whole task and
    service specs: asking about all 50 of a stack each round loads the engine being waited
    on). When none is left, one last round asks about every change: it returns only when all
    run the new configuration in the same round, so that a task that ran at first and failed
    since still fails the deploy. Services are listed only for updates (a created service
    has no update status to watch)."""
    if not changes:
        return
    by_id = {c.service_id: c for c in changes}
    pending = dict(by_id)
    deadline = time.monotonic() + timeout
    while True:
        final = not pending
        asked = by_id if final else pending
        tasks = tasks_of(client, asked)
        updates = sorted(i for i, c in asked.items() if c.update)
        services: dict[str, Any] = {}
        if updates:
            with translated("inspecting services"):
                services = {s["ID"]: s for s in client.api.services(filters={"id": updates})}
        waiting: dict[str, str] = {}
        for change in list(asked.values()):
            mine = [t for t in tasks if t.get("ServiceID") == change.service_id]
            state = converged(change, mine, services.get(change.service_id))
            if state is None:
                pending.pop(change.service_id, None)
            else:
                waiting[change.key] = state
                pending[change.service_id] = change
        if not waiting:
            if final:
                return
            continue  # the last round, at once
        if time.monotonic() > deadline:
            detail = "; ".join(f'service "{k}": {v}' for k, v in sorted(waiting.items()))
            raise BackendError(
                f"tasks not running after {timeout:.0f}s: {detail}",
                hint="see docker service ps --no-trunc <service>",
            )
        time.sleep(poll)


def converged(
    change: Change, tasks: list[dict[str, Any]], service: Mapping[str, Any] | None
) -> str | None:
    """None when the service runs its new configuration, else what it is waiting for.

    Raises BackendError when a task of the new configuration failed or was rejected, or
    when Swarm paused or rolled back the update. A task the engine failed to start (before
    its process ran) is left to Swarm's restart, up to :data:`START_ATTEMPTS` of them: a
    process that exits with an error fails the deploy at once.
    """
    update = (service or {}).get("UpdateStatus") or {}
    if update.get("State") in ("paused", "rollback_started", "rollback_completed"):
        raise BackendError(
            f'service "{change.key}": update {update.get("State")}: '
            f"{update.get('Message') or 'see docker service ps'}"
        )
    new = [
        t
        for t in tasks
        if (((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}).get(LABEL_HASH)
        == change.config_hash
    ]
    failed = [t for t in new if (t.get("Status") or {}).get("State") in FAILED]
    starts = [t for t in failed if str((t.get("Status") or {}).get("Err")).startswith(
        START_FAILURE)]  # fmt: skip
    retried = change.restarts and len(starts) == len(failed) and len(starts) < START_ATTEMPTS
    if failed and not retried:
        status = failed[-1].get("Status") or {}
        why = status.get("Err") or status.get("Message") or status.get("State")
        tries = f" ({len(starts)} attempts)" if len(starts) > 1 else ""
        raise BackendError(
            f'service "{change.key}": task {failed[-1]["ID"][:12]} failed: {why}{tries}'
        )
    running = [
        t
        for t in new
        if t.get("DesiredState") == "running"
        and (t.get("Status") or {}).get("State") in ("running", "complete")
    ]
    others = [t for t in tasks if t.get("DesiredState") == "running" and t not in running]
    if change.replicas is not None:
        if len(running) >= change.replicas and not others:
            return None
        return f"{len(running)}/{change.replicas} running"
    if running and not others:
        return None
    return f"{len(running)} running, {len(others)} not yet"


def stop_local_tasks(client: Any, services: list[dict[str, Any]]) -> None:
    """Stop and remove this node's containers of removed services at once.

    Swarm would do the same, but only after its dispatcher reached the node's agent
    (seconds on a busy node); the grace period of each service is kept. Containers on
    other nodes are left to Swarm. Best effort: the agent may be removing them too.
    """
    grace = {
        s["ID"]: int(
            (((s.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get(
                "StopGracePeriod", 10 * 10**9
            )
            // 10**9
        )
        for s in services
    }
    if not grace:
        return
    api = client.api
    sdk = docker()
    with translated("listing task containers"):
        found = [
            (c["Id"], grace[label])
            for c in api.containers(all=True, filters={"label": SERVICE_ID_LABEL})
            if (label := (c.get("Labels") or {}).get(SERVICE_ID_LABEL)) in grace
        ]

    def retire(container_id: str, timeout: int) -> None:
        with contextlib.suppress(sdk.errors.APIError):
            api.stop(container_id, timeout=timeout)
        with contextlib.suppress(sdk.errors.APIError):
            api.remove_container(container_id, force=True)

    parallel([functools.partial(retire, cid, timeout) for cid, timeout in found])


def wait_gone(client: Any, service_ids: list[str], timeout: float, poll: float) -> None:
    """Wait until no task or container of the services is left (on this node)."""
    if not service_ids:
        return
    ids = set(service_ids)
    deadline = time.monotonic() + timeout
    while True:
        # not filtered by service: the engine refuses filters naming removed services
        with translated("listing tasks"):
            everything = client.api.tasks()
        tasks = [
            t
            for t in everything
            if t.get("ServiceID") in ids and (t.get("Status") or {}).get("State") in ACTIVE
        ]
        with translated("listing task containers"):
            containers = [
                c
                for c in client.api.containers(all=True, filters={"label": SERVICE_ID_LABEL})
                if (c.get("Labels") or {}).get(SERVICE_ID_LABEL) in ids
            ]
        if not tasks and not containers:
            return
        if time.monotonic() > deadline:
            raise BackendError(
                f"{len(tasks)} task(s) and {len(containers)} container(s) of removed "
                f"services still there after {timeout:.0f}s",
                hint="run the command again once `docker service ps` shows them gone",
            )
        time.sleep(poll)


def remove_network(client: Any, network_id: str, name: str, poll: float,
                   timeout: float = 30.0) -> None:  # fmt: skip
    """Remove a network, retrying while the engine still detaches task endpoints."""
    sdk = docker()
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.api.remove_network(network_id)
            return
        except sdk.errors.NotFound:
            return
        except sdk.errors.APIError as exc:
            if time.monotonic() > deadline or "active endpoints" not in reason(exc):
                raise BackendError(f"removing network {name}: {reason(exc)}") from None
        time.sleep(poll)
