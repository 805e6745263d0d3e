"""Tearing an engine stack down so that it always finishes.

Containers are disconnected from their networks one at a time (Docker 20.10 loses count of
a network's endpoints when many are deleted at once), then stopped (each with its own grace
period, all at once; a stop that waits says so: :mod:`..stopping`) and removed; the removal
calls return when the engine has removed them, and a second listing catches any
that a concurrent run left. Networks go last: an engine may still answer "has active
endpoints" for a moment after concurrent removals (Docker 20.10 keeps stale endpoints of
removed containers), so the removal is retried with a growing wait, and stale endpoints are
disconnected with force (by container name, as ``docker network disconnect -f`` does). A
network that still cannot go is reported with the engine's reason instead of failing the
rest: the caller finishes everything else (secret files, store secrets, records).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from time import sleep
from typing import Any

from composesecrets.backends import Progress, RemoveResult
from composesecrets.backends.docker_api import STOP_WORKERS, docker, parallel, reason, translated
from composesecrets.backends.engine import tmpfs
from composesecrets.backends.stopping import stop_container
from composesecrets.docker_rules import LABEL_STACK, LABEL_STOP

__all__ = ["BACKOFF", "remove_stack"]

# waits (seconds) between network removal attempts: about 6 s in all
BACKOFF = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


def remove_stack(
    client: Any,
    stack: str,
    listing: Callable[[], list[Any]],
    retire: Callable[[Any, Path | None], None],
    progress: Progress,
) -> RemoveResult:
    """Remove the stack's containers, networks and secret directory; see the module doc."""
    root = tmpfs.runtime_root()
    endpoint_lock = threading.Lock()

    def stop_and_retire(container: Any) -> str:
        progress(container.name, "removing")
        timeout = int((container.labels or {}).get(LABEL_STOP) or 10)
        with endpoint_lock:  # one endpoint deletion at a time: see _leave_networks
            _leave_networks(client, container)
        with translated(f"stopping {container.name}"):
            if container.status == "running":
                stop_container(client.api, container.id, container.name, timeout, progress)
        retire(container, root)
        return str(container.name)

    names: list[str] = []
    for _ in range(2):  # the second listing catches containers a concurrent run created
        found = listing()
        if not found:
            break
        # stops mostly wait out grace periods: let them all wait at once
        names += parallel([functools.partial(stop_and_retire, c) for c in found], STOP_WORKERS)
    with translated(f"listing networks of stack {stack}"):
        nets = client.networks.list(filters={"label": f"{LABEL_STACK}={stack}"})
    jobs = [functools.partial(_remove_network, client, net, names, progress) for net in nets]
    outcomes = parallel(jobs)
    tmpfs.remove_directory(tmpfs.stack_directory(root, stack))
    removed = tuple(net.name for net, why in zip(nets, outcomes, strict=True) if why is None)
    leftovers = tuple((net.name, why) for net, why in zip(nets, outcomes, strict=True) if why)
    return RemoveResult(stack, tuple(names), removed, leftovers)


def _leave_networks(client: Any, container: Any) -> None:
    """Disconnect a container from its networks before it stops.

    Docker 20.10 deletes a container's endpoints when it stops; many stops at once on one
    network race in its endpoint count and can leave the network with a phantom endpoint
    ("has active endpoints" with no container, curable only by restarting dockerd: measured
    1 time in 8 on a 50-container stack, see shared/docker-secrets-behaviour.md section 9;
    and, with all stops at once and no disconnection first, 1 in 50 removals of freshly
    deployed 30-container stacks, after 25 raw rounds of 50 had shown none).
    The caller serialises these disconnections, so that the stops that follow (in parallel,
    each waiting out its grace period) have no endpoint left to delete."""
    sdk = docker()
    settings = container.attrs.get("NetworkSettings") or {}
    for name in settings.get("Networks") or {}:
        if name in ("host", "none", "bridge"):
            continue  # no user-defined endpoint to race on (bridge is Docker's own)
        with contextlib.suppress(sdk.errors.APIError):
            client.api.disconnect_container_from_network(container.id, name)


def _remove_network(
    client: Any, net: Any, container_names: Sequence[str], progress: Progress
) -> str | None:
    """Remove one network, retrying with backoff; None when it is gone, else the engine's
    reason for keeping it."""
    sdk = docker()
    progress(net.name, "removing network")
    why = ""
    disconnected = False
    for wait in (0.0, *BACKOFF):
        if wait:
            sleep(wait)
        try:
            net.remove()
            return None
        except sdk.errors.NotFound:
            return None  # gone already
        except sdk.errors.APIError as exc:
            why = reason(exc)
        except sdk.errors.DockerException as exc:
            with translated(f"removing network {net.name}"):
                raise exc from None
        if "active endpoints" not in why:
            return why  # not something waiting cures
        if not disconnected:
            _disconnect_all(client, net, container_names)
            disconnected = True
    return why


def _disconnect_all(client: Any, net: Any, container_names: Sequence[str]) -> None:
    """Disconnect with force what the network still lists, and the stale endpoints of the
    stack's removed containers (the engine finds those by container name)."""
    sdk = docker()
    with contextlib.suppress(sdk.errors.APIError):
        net.reload()
    listed = [str(c.get("Name") or cid) for cid, c in (net.attrs.get("Containers") or {}).items()]
    for name in dict.fromkeys([*listed, *container_names]):
        with contextlib.suppress(sdk.errors.APIError):
            client.api.disconnect_container_from_network(name, net.id, force=True)
