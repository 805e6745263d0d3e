"""The engine backend's networks and volumes of a stack (bridge networks, local volumes):
what :mod:`.translate` attaches services to. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from composesecrets import model
from composesecrets.backends.translation import DEFAULT_NETWORK, StackNetwork, declared
from composesecrets.backends.unapplied import Unapplied
from composesecrets.backends.values import str_map

__all__ = ["EngineNetwork", "EngineVolume", "default_network", "networks", "volumes"]


@dataclass(frozen=True)
class EngineNetwork(StackNetwork):
    """A network the stack uses. ``name`` is the engine's name for it."""


@dataclass(frozen=True)
class EngineVolume:
    """A named volume the stack declares. ``name`` is the engine's name for it."""

    name: str  # "<stack>_<key>", or the ``name:`` / external name as given
    key: str
    driver: str
    driver_opts: dict[str, str]
    labels: dict[str, str]
    external: bool
    warnings: tuple[str, ...] = ()


def default_network(stack_name: str) -> EngineNetwork:
    return EngineNetwork(
        name=f"{stack_name}_{DEFAULT_NETWORK}",
        key=DEFAULT_NETWORK,
        driver="bridge",
        labels={},
        internal=False,
        attachable=False,
        external=False,
        options={},
    )


def networks(raw: Any, stack_name: str) -> dict[str, EngineNetwork]:
    out: dict[str, EngineNetwork] = {}
    for key, body, name, external in declared(raw, stack_name):
        warnings: list[str] = []
        driver = body.get("driver") or "bridge"
        if driver == "overlay":
            warnings.append(
                Unapplied(
                    f'network "{key}": driver "overlay" needs Swarm; the engine backend creates '
                    'a "bridge" network instead',
                    backend="engine",
                    key="networks.driver",
                    path=("networks", key, "driver"),
                )
            )
            driver = "bridge"
        if "ipam" in body:
            warnings.append(
                Unapplied(
                    f'network "{key}": ipam is not applied by the engine backend',
                    backend="engine",
                    key="networks.ipam",
                    path=("networks", key, "ipam"),
                )
            )
        out[key] = EngineNetwork(
            name=name,
            key=key,
            driver=str(driver),
            labels=model.labels_dict(body.get("labels")),
            internal=bool(body.get("internal")),
            attachable=bool(body.get("attachable")),
            external=external,
            options=str_map(body.get("driver_opts")),
            warnings=tuple(warnings),
        )
    return out


def volumes(raw: Any, stack_name: str) -> dict[str, EngineVolume]:
    out: dict[str, EngineVolume] = {}
    for key, body, name, external in declared(raw, stack_name):
        warnings: list[str] = []
        if "x-cluster-spec" in body:
            warnings.append(
                Unapplied(
                    f'volume "{key}": x-cluster-spec is not applied by the engine backend '
                    "(Swarm cluster volumes only)",
                    backend="engine",
                    key="volumes.x-cluster-spec",
                    path=("volumes", key, "x-cluster-spec"),
                )
            )
        out[key] = EngineVolume(
            name=name,
            key=key,
            driver=str(body.get("driver") or "local"),
            driver_opts=str_map(body.get("driver_opts")),
            labels=model.labels_dict(body.get("labels")),
            external=external,
            warnings=tuple(warnings),
        )
    return out
