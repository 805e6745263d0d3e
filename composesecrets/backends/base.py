"""The backend interface and its data types (re-exported by :mod:`composesecrets.backends`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from composesecrets.model import SecretFile

if TYPE_CHECKING:
    from composesecrets.model import Stack

__all__ = [
    "BACKENDS",
    "Backend",
    "ContainerInfo",
    "DeployRequest",
    "DeployResult",
    "Plan",
    "Progress",
    "RemoveResult",
    "SecretFile",
    "ServiceSecrets",
    "get_backend",
]

Progress = Callable[[str, str], None]  # (service or object, what happens)
PlanT = TypeVar("PlanT", bound="Plan")


@dataclass(frozen=True)
class ServiceSecrets:
    """The secret files of one service and the store versions they come from."""

    files: tuple[SecretFile, ...]
    versions: tuple[tuple[str, int], ...]  # (store name, version) in reference order
    # the store's keyed digest (HMAC under a key derived from the root key) of each version,
    # in reference order: identifies content without revealing it
    digests: tuple[str, ...] = ()


NO_SECRETS = ServiceSecrets((), ())


@dataclass(frozen=True)
class DeployRequest:
    """What to deploy, for any backend: the stack name, the normalised compose model, the
    secret delivery and, per compose service, the resolved secret files (empty until the
    caller resolved them, after the preflight)."""

    stack: str
    model: Stack
    delivery: str = "tmpfs"  # or "copy": written into the container before it starts
    secrets: Mapping[str, ServiceSecrets] = field(default_factory=dict)

    def secrets_of(self, service: str) -> ServiceSecrets:
        return self.secrets.get(service, NO_SECRETS)


@dataclass(frozen=True)
class Plan:
    """A backend's translation of one request; each backend subclasses it with its specs."""

    request: DeployRequest
    warnings: tuple[str, ...] = ()

    def with_secrets(self: PlanT, secrets: Mapping[str, ServiceSecrets]) -> PlanT:
        """The same plan (not translated again) for the request with ``secrets``."""
        return dataclasses.replace(
            self, request=dataclasses.replace(self.request, secrets=dict(secrets))
        )


@dataclass(frozen=True)
class DeployResult:
    stack: str
    created: tuple[str, ...] = ()
    recreated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    networks_created: tuple[str, ...] = ()
    rotated: tuple[str, ...] = ()  # new secret versions written into running containers
    started: tuple[str, ...] = ()  # same configuration, was not running: started again


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    service: str
    image: str
    state: str
    secrets: tuple[str, ...] = field(default=())
    id: str = ""
    versions: tuple[str, ...] = ()  # store versions it holds, as name@version
    # as docker stack ps names them: the node (engine host name), running or shutdown, why
    # it failed, and its published ports as docker ps prints them (0.0.0.0:8080->80/tcp)
    node: str = ""
    desired_state: str = ""
    error: str = ""
    ports: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As ``stack ps --format json`` prints it."""
        return {
            "ID": self.id,
            "Name": self.name,
            "Service": self.service,
            "Image": self.image,
            "Node": self.node,
            "DesiredState": self.desired_state,
            "State": self.state,
            "Error": self.error,
            "Ports": list(self.ports),
            "Secrets": list(self.secrets),
            "SecretVersions": list(self.versions),
        }


@dataclass(frozen=True)
class RemoveResult:
    stack: str
    containers: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    # what could not be removed: (object, the engine's reason); everything else was
    leftovers: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()  # store secrets removed with the stack (set by stacks)

    @property
    def found(self) -> bool:
        """False when there was nothing of the stack (``Nothing found in stack``)."""
        return bool(self.containers or self.networks or self.leftovers or self.secrets)


class Backend(Protocol):
    """What a backend does: plan, check and apply a deploy; find, list and remove stacks."""

    name: str

    def plan(self, request: DeployRequest) -> Plan:
        """Translate the request once (pure); its ``warnings`` name each unapplied key."""

    def preflight(self, plan: Plan) -> None:
        """Refuse (before anything changes) what cannot work: missing images, name clashes."""

    def deploy(self, plan: Plan, progress: Progress) -> DeployResult:
        """Converge the engine to the plan (with its request's secrets); on failure undo this
        run and raise :class:`DeployFailedError`. Callers run :meth:`preflight` first."""

    def diff(self, plan: Plan) -> DeployResult:
        """What :meth:`deploy` would create, recreate, leave unchanged and remove (read-only:
        ``stack deploy --dry-run``); secrets of versions not stored yet may lack digests."""

    def remove(self, stack: str, progress: Progress) -> RemoveResult:
        """Remove everything of the stack (idempotent)."""


def _engine() -> Backend:
    from composesecrets.backends.engine.backend import EngineBackend

    return EngineBackend()


def _swarm() -> Backend:
    from composesecrets.backends.swarm.backend import SwarmBackend

    return SwarmBackend()


# name -> factory (unit tests may register backends made with a fake Docker client)
BACKENDS: dict[str, Callable[[], Backend]] = {"engine": _engine, "swarm": _swarm}


def get_backend(name: str) -> Backend:
    factory = BACKENDS.get(name)
    if factory is None:
        from composesecrets.errors import UsageError

        names = ", ".join(BACKENDS)
        raise UsageError(f'unknown backend "{name}" (available: {names})')
    return factory()
