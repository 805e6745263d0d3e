"""The Swarm backend's networks (overlay, attachable) and named volumes of a stack: what
:mod:`.translate` attaches services to. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from composesecrets import model
from composesecrets.backends.translation import StackNetwork, declared
from composesecrets.backends.unapplied import Unapplied
from composesecrets.backends.values import str_map

__all__ = ["SwarmNetwork", "SwarmVolume", "networks", "volumes"]


@dataclass(frozen=True)
class SwarmNetwork(StackNetwork):
    """A network the stack uses; ``name`` is its name on the swarm."""


def networks(raw: Any, stack_name: str) -> dict[str, SwarmNetwork]:
    out: dict[str, SwarmNetwork] = {}
    for key, body, name, external in declared(raw, stack_name):
        warnings = []
        driver = str(body.get("driver") or "overlay")
        if "ipam" in body:
            warnings.append(
                Unapplied(
                    f'network "{key}": ipam is not applied by the swarm backend',
                    backend="swarm",
                    key="networks.ipam",
                    path=("networks", key, "ipam"),
                )
            )
        out[key] = SwarmNetwork(
            name=name,
            key=key,
            driver=driver,
            labels=model.labels_dict(body.get("labels")),
            internal=bool(body.get("internal")),
            # like docker stack: attachable only when asked; we always make ours attachable
            # so that `docker run --network` can reach the stack for debugging
            attachable=True if driver == "overlay" else bool(body.get("attachable")),
            external=external,
            options=str_map(body.get("driver_opts")),
            warnings=tuple(warnings),
        )
    return out


@dataclass(frozen=True)
class SwarmVolume:
    name: str
    external: bool
    driver: str | None
    driver_opts: dict[str, str]
    labels: dict[str, str]


def volumes(raw: Any, stack_name: str) -> dict[str, SwarmVolume]:
    out: dict[str, SwarmVolume] = {}
    for key, body, name, external in declared(raw, stack_name):
        driver = body.get("driver")
        out[key] = SwarmVolume(
            name,
            external,
            str(driver) if driver else None,
            str_map(body.get("driver_opts")),
            model.labels_dict(body.get("labels")),
        )
    return out
