"""The engine backend's plan: the request translated once (:mod:`.translate`), the start
order of its services, and per replica the wanted container with its configuration hash.
Pure: no Docker calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from composesecrets.backends import DeployRequest, DeployResult, Plan, ServiceSecrets
from composesecrets.backends.engine.translate import (
    EngineNetwork,
    EngineService,
    EngineVolume,
    stack_specs,
)
from composesecrets.docker_rules import (
    LABEL_RELOAD_SIGNAL,
    LABEL_ROTATE,
    ROTATE_IN_PLACE,
    is_signal_name,
)
from composesecrets.errors import InvalidComposeError

__all__ = ["EnginePlan", "Replica", "diff", "in_place_service", "levels", "make_plan"]


@dataclass(frozen=True)
class Replica:
    """One container the plan wants: ``<stack>_<service>_<number>``."""

    name: str
    service: EngineService
    number: int
    config_hash: str
    secrets: ServiceSecrets
    in_place: bool = False  # io.composesecrets.rotate: in-place (and tmpfs delivery)

    @property
    def reload_signal(self) -> str | None:
        """The signal sent after an in-place rotation (io.composesecrets.reload-signal)."""
        return self.service.labels.get(LABEL_RELOAD_SIGNAL) or None

    @property
    def versions(self) -> list[str]:
        """The store versions it should hold, as ``name@version``."""
        return [f"{name}@{version}" for name, version in self.secrets.versions]

    @property
    def publishes_ports(self) -> bool:
        """True when it binds host ports (a replacement must wait for the old one to stop)."""
        ports = self.service.create_kwargs.get("ports") or {}
        if isinstance(ports, Mapping):
            return any(v is not None for v in ports.values())
        return bool(ports)

    @property
    def stop_timeout(self) -> int:
        """Seconds ``stop`` waits before SIGKILL (``stop_grace_period``, default 10)."""
        timeout = self.service.stop_timeout
        return timeout if timeout is not None else 10


@dataclass(frozen=True, kw_only=True)
class EnginePlan(Plan):
    services: Mapping[str, EngineService]
    networks: Mapping[str, EngineNetwork]
    volumes: Mapping[str, EngineVolume]
    levels: tuple[frozenset[str], ...]  # services by start order (depends_on)

    def replicas(self) -> list[Replica]:
        """The wanted containers; the hash covers the spec, secret targets/owners/modes and
        versions, and the delivery (a new secret version recreates the container)."""
        request = self.request
        out = []
        for name, spec in self.services.items():
            secrets = request.secrets_of(name)
            in_place = in_place_service(spec.labels) and request.delivery == "tmpfs"
            material = json.dumps(
                {
                    "spec": spec.fingerprint,
                    "secrets": [[f.target, f.uid, f.gid, f.mode] for f in secrets.files],
                    # in-place: a new version is written into the running containers
                    "versions": "in-place" if in_place else list(secrets.versions),
                    "delivery": request.delivery,
                },
                sort_keys=True,
            )
            config_hash = hashlib.sha256(material.encode()).hexdigest()
            for number in range(1, spec.replicas + 1):
                out.append(
                    Replica(
                        f"{request.stack}_{name}_{number}",
                        spec,
                        number,
                        config_hash,
                        secrets,
                        in_place,
                    )
                )
        return out


def in_place_service(labels: Mapping[str, str]) -> bool:
    return labels.get(LABEL_ROTATE) == ROTATE_IN_PLACE


def _rotation_labels(services: Mapping[str, EngineService], delivery: str) -> list[str]:
    """Refuses wrong rotation labels; warns when copy delivery cannot rotate in place."""
    warnings = []
    for name, spec in services.items():
        mode = spec.labels.get(LABEL_ROTATE)
        if mode is not None and mode != ROTATE_IN_PLACE:
            raise InvalidComposeError(
                f'service "{name}": label {LABEL_ROTATE}: "{mode}" is not known '
                f'(the one value is "{ROTATE_IN_PLACE}")'
            )
        signal = spec.labels.get(LABEL_RELOAD_SIGNAL)
        if signal is not None and not is_signal_name(signal):
            raise InvalidComposeError(
                f'service "{name}": label {LABEL_RELOAD_SIGNAL}: "{signal}" is not a signal '
                "(e.g. SIGHUP, SIGUSR1)"
            )
        if mode is not None and delivery != "tmpfs":
            warnings.append(
                f'service "{name}": {LABEL_ROTATE}: {mode} needs --secret-delivery tmpfs; '
                "with copy delivery a new secret version recreates its containers"
            )
    return warnings


def make_plan(request: DeployRequest) -> EnginePlan:
    services, networks, volumes = stack_specs(request.model, request.stack)
    warnings = [w for spec in services.values() for w in spec.warnings]
    warnings += [w for net in networks.values() for w in net.warnings]
    warnings += [w for vol in volumes.values() for w in vol.warnings]
    warnings += _rotation_labels(services, request.delivery)
    return EnginePlan(
        request=request,
        warnings=tuple(warnings),
        services=services,
        networks=networks,
        volumes=volumes,
        levels=levels(services),
    )


def levels(services: Mapping[str, EngineService]) -> tuple[frozenset[str], ...]:
    """Services grouped so that each group depends only on earlier groups."""
    remaining = {name: set(spec.depends_on) & set(services) for name, spec in services.items()}
    out: list[frozenset[str]] = []
    done: set[str] = set()
    while remaining:
        ready = frozenset(name for name, deps in remaining.items() if deps <= done)
        if not ready:
            cycle = ", ".join(sorted(remaining))
            raise InvalidComposeError(f"depends_on forms a cycle between services: {cycle}")
        out.append(ready)
        done |= ready
        for name in ready:
            del remaining[name]
    return tuple(out)


def diff(
    plan: EnginePlan,
    hashes: Mapping[str, str],
    networks: set[str],
    live: Mapping[str, Sequence[str]] | None = None,
) -> DeployResult:
    """What a deploy of ``plan`` would do to a stack whose containers have the configuration
    ``hashes`` (by container name), hold the secret versions ``live`` (``name@version``, for
    in-place rotation) and whose engine has the ``networks`` (names)."""
    existing = {name: h for name, h in hashes.items() if not name.endswith("-next")}
    out: dict[str, list[str]] = {"created": [], "recreated": [], "unchanged": [], "rotated": []}
    desired = plan.replicas()
    for want in desired:
        current = existing.get(want.name)
        state = "created" if current is None else "unchanged"
        if current is not None and current != want.config_hash:
            state = "recreated"
        elif (
            state == "unchanged"
            and want.in_place
            and live is not None
            and list(live.get(want.name, ())) != want.versions
        ):
            state = "rotated"
        out[state].append(want.name)
    keep = {d.name for d in desired}
    return DeployResult(
        plan.request.stack,
        tuple(out["created"]),
        tuple(out["recreated"]),
        tuple(out["unchanged"]),
        tuple(sorted(n for n in existing if n not in keep)),
        tuple(n.name for n in plan.networks.values() if not n.external and n.name not in networks),
        rotated=tuple(out["rotated"]),
    )
