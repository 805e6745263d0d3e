"""The read-only listings of ``stack ls``, ``stack ps`` and ``stack services``, for both
backends, from the Engine API's JSON through a one-method transport (:mod:`.engine_reader`).

Light on purpose: neither the docker SDK nor the deploy machinery is imported (start-up
time); in-place secret directories are read only for containers that have one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from composesecrets.docker_rules import (
    LABEL_DIR,
    LABEL_IMAGE,
    LABEL_ROTATE,
    LABEL_SERVICE,
    LABEL_STACK,
    LABEL_TARGETS,
    LABEL_VERSIONS,
    ROTATE_IN_PLACE,
)
from composesecrets.errors import BackendError, EngineApiError

if TYPE_CHECKING:  # `stack ls` needs neither (start-up time)
    from composesecrets.backends import ContainerInfo
    from composesecrets.backends.engine_reader import Transport

__all__ = [
    "ServiceDetails",
    "engine_containers",
    "engine_stacks",
    "stack_entries",
    "swarm_containers",
    "swarm_details",
    "swarm_services",
    "swarm_stacks",
    "versions_of",
]

NOT_A_MANAGER = 503  # the answer of /services, /tasks, /nodes on an engine outside a swarm


class ServiceDetails(NamedTuple):  # not a dataclass: start-up (see inventory)
    """What ``stack services`` shows of a service besides its containers (Docker's names)."""

    id: str = ""
    mode: str = "replicated"
    ports: tuple[str, ...] = ()


def _asking(what: str, exc: EngineApiError) -> EngineApiError:
    return EngineApiError(f"{what}: {exc.message}", status=exc.status, hint=exc.hint)


def _labelled(api: Transport, path: str, label: str, what: str, **query: Any) -> list[Any]:
    filters = {"label": [label], **query.pop("filters", {})}
    try:
        found = api.get(path, {**query, "filters": filters})
    except EngineApiError as exc:
        raise _asking(what, exc) from None
    return list(found or [])


# --------------------------------------------------------------------------- stack ls


def engine_stacks(api: Transport) -> dict[str, int]:
    """Stack name -> number of services, for the engine backend's labelled containers and
    networks (a stack whose containers are gone still has its networks)."""
    found = _labelled(api, "/containers/json", LABEL_STACK, "listing stacks", all="1")
    nets = _labelled(api, "/networks", LABEL_STACK, "listing stacks")
    services: dict[str, set[str]] = {}
    for item in found:
        labels = item.get("Labels") or {}
        if labels.get(LABEL_STACK):
            services.setdefault(labels[LABEL_STACK], set()).add(labels.get(LABEL_SERVICE, ""))
    for item in nets:
        stack = (item.get("Labels") or {}).get(LABEL_STACK)
        if stack:
            services.setdefault(stack, set())
    return {stack: len(names) for stack, names in services.items()}


def swarm_stacks(api: Transport) -> dict[str, int]:
    """Stack name -> number of services on the swarm; none when the engine is not a swarm
    manager (or refuses the call: its engine stacks are still listed)."""
    try:
        found = api.get("/services", {"filters": {"label": [LABEL_STACK]}})
    except EngineApiError:
        return {}
    counts: dict[str, int] = {}
    for service in found or []:
        stack = ((service.get("Spec") or {}).get("Labels") or {}).get(LABEL_STACK)
        if stack:
            counts[stack] = counts.get(stack, 0) + 1
    return counts


# --------------------------------------------------------------------------- stack ps


def versions_of(labels: Mapping[str, str], directory: Path | None) -> tuple[str, ...]:
    """The store versions (``name@version``) a container holds: what its in-place directory
    has published, else what it was created with."""
    if directory is not None and labels.get(LABEL_ROTATE) == ROTATE_IN_PLACE:
        from composesecrets.backends.engine import atomic

        live = atomic.live_versions(directory)
        if live is not None:
            return tuple(live)
    return tuple(json.loads(labels.get(LABEL_VERSIONS, "[]")))


def _in_place(labels: Mapping[str, str]) -> bool:
    return labels.get(LABEL_ROTATE) == ROTATE_IN_PLACE and bool(labels.get(LABEL_DIR))


def _secret_dir(labels: Mapping[str, str], root: Path | None) -> Path | None:
    if root is None or not _in_place(labels):
        return None
    from composesecrets.backends.engine import tmpfs

    return tmpfs.container_directory(root, labels)


def _runtime_root(inspected: Sequence[Mapping[str, Any]]) -> Path | None:
    """Where secret directories are, when a container has an in-place one."""
    if not any(_in_place((c.get("Config") or {}).get("Labels") or {}) for c in inspected):
        return None
    from composesecrets.backends.engine import tmpfs

    return tmpfs.runtime_root()


def format_ports(ports: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The ``Ports`` of the container list as docker ps prints them:
    ``0.0.0.0:8080->80/tcp``, ``[::]:8080->80/tcp``, ``443/tcp`` (exposed only)."""
    out: dict[str, None] = {}
    for port in sorted(ports, key=lambda p: (p.get("PrivatePort") or 0, p.get("IP") or "")):
        private = f"{port.get('PrivatePort')}/{port.get('Type') or 'tcp'}"
        public = port.get("PublicPort")
        ip = str(port.get("IP") or "")
        host = f"[{ip}]" if ":" in ip else ip
        out[f"{host}:{public}->{private}" if public else private] = None
    return tuple(out)


def format_swarm_ports(ports: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Published ports of a service or task as docker stack services/ps print them."""
    out: dict[str, None] = {}
    for port in ports:
        target = f"{port.get('TargetPort')}/{port.get('Protocol') or 'tcp'}"
        published = port.get("PublishedPort")
        out[f"*:{published}->{target}" if published else target] = None
    return tuple(out)


def _desired_state(state: Mapping[str, Any], policy: str) -> str:
    """Docker's DesiredState for a plain container: running while it runs (or restarts) and
    when its restart policy brings it back; shutdown otherwise."""
    if state.get("Running") or state.get("Restarting") or state.get("Paused"):
        return "running"
    return "running" if policy == "always" else "shutdown"


def _error(state: Mapping[str, Any]) -> str:
    """Why a container is not running: the engine's error, else its non-zero exit code."""
    error = str(state.get("Error") or "")
    code = state.get("ExitCode") or 0
    if not error and code and state.get("Status") in ("exited", "dead"):
        error = f"non-zero exit ({code})"
    return error


def stack_entries(api: Transport, stack: str) -> list[dict[str, Any]]:
    """The engine's listing entries of the stack's containers, running or not (one call)."""
    what = f"listing containers of stack {stack}"
    return _labelled(api, "/containers/json", f"{LABEL_STACK}={stack}", what, all="1")


def engine_containers(api: Transport, stack: str) -> list[ContainerInfo]:
    """The engine backend's containers of ``stack``: one list call, then each container's
    inspect (image as created, restart policy, state error) and the engine's host name."""
    what = f"listing containers of stack {stack}"
    listed = stack_entries(api, stack)
    if not listed:
        return []
    try:
        node = str(api.get("/info").get("Name") or "")
        inspected = [api.get(f"/containers/{item['Id']}/json") for item in listed]
    except EngineApiError as exc:  # e.g. a container removed meanwhile
        raise _asking(what, exc) from None
    from composesecrets.backends import ContainerInfo

    root = _runtime_root(inspected)
    out = []
    for item, found in zip(listed, inspected, strict=True):
        labels = (found.get("Config") or {}).get("Labels") or {}
        state = found.get("State") or {}
        policy = ((found.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or ""
        out.append(
            ContainerInfo(
                name=str(found.get("Name") or "").lstrip("/"),
                service=labels.get(LABEL_SERVICE, ""),
                image=(found.get("Config") or {}).get("Image", ""),
                state=str(state.get("Status") or ""),
                secrets=tuple(json.loads(labels.get(LABEL_TARGETS, "[]"))),
                id=str(found.get("Id") or item["Id"]),
                versions=versions_of(labels, _secret_dir(labels, root)),
                node=node,
                desired_state=_desired_state(state, policy),
                error=_error(state),
                ports=format_ports(item.get("Ports") or []),
            )
        )
    return sorted(out, key=lambda i: i.name)


def swarm_services(api: Transport, stack: str) -> list[dict[str, Any]]:
    """The swarm services of ``stack`` (an error when the engine is not a swarm manager)."""
    return _labelled(api, "/services", f"{LABEL_STACK}={stack}", f"listing services of "
                     f"stack {stack}")  # fmt: skip


def _hostnames(api: Transport, tasks: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Node ID -> host name (the IDs themselves when the nodes cannot be listed)."""
    if not tasks:
        return {}
    try:
        nodes = api.get("/nodes") or []
    except BackendError:
        return {}
    return {n["ID"]: str((n.get("Description") or {}).get("Hostname") or n["ID"]) for n in nodes}


def swarm_containers(
    api: Transport, stack: str, services: Sequence[Mapping[str, Any]] | None = None
) -> list[ContainerInfo]:
    """The tasks of ``stack`` that should run, one line each as docker stack ps shows them."""
    by_id = {s["ID"]: s for s in (swarm_services(api, stack) if services is None else services)}
    if not by_id:
        return []
    query = {"filters": {"service": sorted(by_id), "desired-state": ["running"]}}
    try:
        tasks = list(api.get("/tasks", query) or [])
    except EngineApiError as exc:
        raise _asking("listing tasks", exc) from None
    from composesecrets.backends import ContainerInfo

    hosts = _hostnames(api, tasks)
    out = []
    for task in tasks:
        service = by_id.get(task.get("ServiceID", ""))
        if service is None:
            continue
        spec = service.get("Spec") or {}
        labels = spec.get("Labels") or {}
        container = ((task.get("Spec") or {}).get("ContainerSpec")) or {}
        image = labels.get(LABEL_IMAGE) or str(container.get("Image", "")).split("@")[0]
        status = task.get("Status") or {}
        slot = task.get("Slot") or task.get("NodeID", "")
        node = str(task.get("NodeID") or "")
        out.append(
            ContainerInfo(
                name=f"{spec.get('Name', '')}.{slot}.{task['ID']}",
                service=labels.get(LABEL_SERVICE, ""),
                image=image,
                state=str(status.get("State", "")),
                secrets=tuple(
                    sorted(
                        ref["File"]["Name"]
                        for ref in container.get("Secrets") or []
                        if ref.get("File")
                    )
                ),
                id=str((status.get("ContainerStatus") or {}).get("ContainerID", "")),
                node=hosts.get(node, node),
                desired_state=str(task.get("DesiredState") or ""),
                error=str(status.get("Err") or ""),
                ports=format_swarm_ports((status.get("PortStatus") or {}).get("Ports") or []),
            )
        )
    return sorted(out, key=lambda i: i.name)


def swarm_details(services: Sequence[Mapping[str, Any]]) -> dict[str, ServiceDetails]:
    """Compose service name -> its swarm service's ID, mode and published ports."""
    out = {}
    for service in services:
        spec = service.get("Spec") or {}
        key = (spec.get("Labels") or {}).get(LABEL_SERVICE, "")
        mode = "global" if "Global" in (spec.get("Mode") or {}) else "replicated"
        ports = ((service.get("Endpoint") or {}).get("Ports")) or []
        out[key] = ServiceDetails(str(service.get("ID", ""))[:12], mode, format_swarm_ports(ports))
    return out
