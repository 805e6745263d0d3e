"""What runs: the read-only listings behind ``stack ls``, ``stack ps`` and ``stack services``.

Read straight from the Engine API (:mod:`composesecrets.backends.engine_reader`; on a local
engine neither the docker SDK nor the backends nor the store are imported): the engine's
stacks, then the swarm's when the engine is a manager; a stack's containers (swarm: its tasks
that should run) and services from the backend the store recorded for it (default engine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from composesecrets.backends import engine_reader as reader
from composesecrets.errors import NotFoundError

if TYPE_CHECKING:
    from composesecrets.backends import ContainerInfo
    from composesecrets.store import Store

__all__ = ["ServiceSummary", "StackSummary", "containers", "services", "stacks"]


# NamedTuples, not dataclasses: a listing's start-up has no use for the dataclasses import
# and a frozen dataclass costs about 1 ms to build (issue 14's start-up goal)


class StackSummary(NamedTuple):
    name: str
    services: int
    backend: str

    def to_json(self) -> dict[str, Any]:
        """As ``stack ls --format json`` prints it."""
        return {"Name": self.name, "Services": self.services, "Backend": self.backend}


class ServiceSummary(NamedTuple):
    name: str
    image: str
    replicas: int
    running: int
    id: str = ""  # the swarm service's (the engine backend has no service objects)
    mode: str = "replicated"  # or global
    ports: tuple[str, ...] = ()  # published ports, as docker stack services prints them

    def to_json(self) -> dict[str, Any]:
        """As ``stack services --format json`` prints it."""
        return {"ID": self.id, "Name": self.name, "Mode": self.mode, "Image": self.image,
                "Replicas": self.replicas, "Running": self.running,
                "Ports": list(self.ports)}  # fmt: skip



def _recorded_backend(stack: str, store_opener: Callable[[], Store] | None) -> str:
    """The backend a stack was deployed with, as the store recorded it (default engine)."""
    if store_opener is None:
        return "engine"
    try:
        with store_opener() as store:
            records = store.usages(stack=stack)
    except NotFoundError:
        return "engine"
    return records[0].backend if records else "engine"


def stacks(store_opener: Callable[[], Store] | None = None) -> list[StackSummary]:
    """Stacks found on the engine and, when it is a swarm manager, on the swarm (read-only
    listing: neither the docker SDK nor the backends are imported on a local engine)."""
    from composesecrets.backends import listing

    api = reader.connect()
    found = {name: StackSummary(name, count, "engine")
             for name, count in listing.engine_stacks(api).items()}  # fmt: skip
    for name, count in listing.swarm_stacks(api).items():
        found.setdefault(name, StackSummary(name, count, "swarm"))
    return [found[name] for name in sorted(found)]


def _listed(
    stack: str, store_opener: Callable[[], Store] | None
) -> tuple[str, list[ContainerInfo], list[dict[str, Any]]]:
    """(backend, the stack's containers or tasks, its swarm services) from the listing."""
    from composesecrets.backends import listing

    name = _recorded_backend(stack, store_opener)
    api = reader.connect()
    if name == "swarm":
        services = listing.swarm_services(api, stack)
        found = listing.swarm_containers(api, stack, services)
    else:
        services, found = [], listing.engine_containers(api, stack)
    if not found:
        raise NotFoundError(f"nothing of stack {stack} runs on the {name} backend")
    return name, found, services


def containers(stack: str, store_opener: Callable[[], Store] | None = None) -> list[ContainerInfo]:
    """The stack's containers (swarm: its tasks that should run), as ``stack ps`` shows them."""
    return _listed(stack, store_opener)[1]


def services(stack: str, store_opener: Callable[[], Store] | None = None) -> list[ServiceSummary]:
    """One summary per service, as ``stack services`` shows them."""
    from composesecrets.backends import listing

    _, found, raw = _listed(stack, store_opener)
    details = listing.swarm_details(raw)
    grouped: dict[str, list[ContainerInfo]] = {}
    for info in found:
        grouped.setdefault(info.service, []).append(info)
    out = []
    for name, items in sorted(grouped.items()):
        detail = details.get(name) or listing.ServiceDetails(
            ports=tuple(dict.fromkeys(p for i in items for p in i.ports))
        )
        out.append(
            ServiceSummary(
                name=f"{stack}_{name}",
                image=items[0].image,
                replicas=len(items),
                running=sum(i.state == "running" for i in items),
                id=detail.id,
                mode=detail.mode,
                ports=detail.ports,
            )
        )
    return out
