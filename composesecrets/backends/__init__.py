"""Backends run a resolved stack on an engine. Each one implements :class:`Backend`.

A backend receives a :class:`DeployRequest`: the stack's container specs
(:mod:`composesecrets.backends.containerspec`) and, per service, the secret files to deliver
(values in memory only). Docker SDK errors are translated into
:mod:`composesecrets.errors` classes inside the backends and never escape them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from composesecrets.backends.containerspec import NetworkSpec, ServiceSpec, VolumeSpec
    from composesecrets.backends.delivery import SecretFile
    from composesecrets.model import Stack

Progress = Callable[[str, str], None]  # (service or object, what happens)


@dataclass(frozen=True)
class ServiceSecrets:
    """The secret files of one service and the store versions they come from."""

    files: tuple[SecretFile, ...]
    versions: tuple[tuple[str, int], ...]  # (store name, version) in reference order
    # the store's keyed digest (HMAC under a key derived from the root key) of each version,
    # in reference order: identifies content without revealing it
    digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployRequest:
    stack: str
    services: Mapping[str, ServiceSpec]
    networks: Mapping[str, NetworkSpec]
    volumes: Mapping[str, VolumeSpec]
    secrets: Mapping[str, ServiceSecrets]
    delivery: str = "tmpfs"  # or "copy": written into the container before it starts
    model: Stack | None = None  # the normalised compose stack, for backends that translate it


@dataclass(frozen=True)
class DeployResult:
    stack: str
    created: tuple[str, ...] = ()
    recreated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    networks_created: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    service: str
    image: str
    state: str
    secrets: tuple[str, ...] = field(default=())
    id: str = ""


@dataclass(frozen=True)
class RemoveResult:
    stack: str
    containers: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()


class Backend(Protocol):
    """What a backend does: apply a request, and find, list and remove stacks."""

    name: str

    def warnings(self, request: DeployRequest) -> list[str]:
        """One message per compose key this backend does not apply, naming key and service."""

    def preflight(self, request: DeployRequest) -> None:
        """Refuse (before anything changes) what cannot work: missing images, name clashes."""

    def deploy(self, request: DeployRequest, progress: Progress) -> DeployResult:
        """Converge the engine to the request; on failure undo this run and raise.

        Callers run :meth:`preflight` first (``stacks.deploy`` does, before the store changes),
        so it is not repeated here."""

    def remove(self, stack: str, progress: Progress) -> RemoveResult:
        """Remove everything of the stack (idempotent)."""

    def containers(self, stack: str) -> list[ContainerInfo]:
        """The stack's containers as the engine has them."""

    def stacks(self) -> list[str]:
        """Names of the stacks this backend finds on the engine."""


def _engine() -> Backend:
    from composesecrets.backends.engine import EngineBackend

    return EngineBackend()


def _swarm() -> Backend:
    from composesecrets.backends.swarm import SwarmBackend

    return SwarmBackend()


# name -> factory (unit tests add the in-memory "fake" backend here)
BACKENDS: dict[str, Callable[[], Backend]] = {"engine": _engine, "swarm": _swarm}


def get_backend(name: str) -> Backend:
    factory = BACKENDS.get(name)
    if factory is None:
        from composesecrets.errors import UsageError

        names = ", ".join(BACKENDS)
        raise UsageError(f'unknown backend "{name}" (available: {names})')
    return factory()
