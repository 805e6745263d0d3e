"""The translation base both backends share (:mod:`.engine.translate`, :mod:`.swarm.translate`).

Here are only the parts that mean the same for both backends: the engine names of declared
networks and volumes, and :class:`ServiceTranslator`, the base of both per-service
translators: it takes ``environment`` (with the ``env_file`` values the compose loader
read), splits ``command``/``entrypoint``, builds a healthcheck, the network attachments and the
mounts of ``volumes``, and words the warnings and errors with the backend's name. Where the
backends differ, the subclass decides. Pure: no Docker calls, no file reads, nothing written.
Value readers live in :mod:`.values`.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from composesecrets import model
from composesecrets.backends.unapplied import Unapplied
from composesecrets.backends.values import (
    PROPAGATION,
    VOLUME_OPTIONS,
    is_path,
    key_values,
    parse_bytes,
    split_volume,
    text,
)
from composesecrets.compose.formats import parse_go_duration
from composesecrets.errors import InvalidComposeError

__all__ = [
    "DEFAULT_NETWORK",
    "ServiceTranslator",
    "StackNetwork",
    "declared",
    "engine_name",
    "network_name",
]

DEFAULT_NETWORK = "default"


# --------------------------------------------------------------------------- networks/volumes


@dataclass(frozen=True)
class StackNetwork:
    """A network the stack uses, as a backend creates or finds it; each backend has its own
    subclass (``EngineNetwork``, ``SwarmNetwork``)."""

    name: str  # the engine's: "<stack>_<key>", or the ``name:`` / external name as given
    key: str  # the key under top-level ``networks:`` ("default" for the implicit one)
    driver: str
    labels: dict[str, str]
    internal: bool
    attachable: bool
    external: bool
    options: dict[str, str]
    warnings: tuple[str, ...] = ()


class Named(Protocol):
    """A declared network or volume: what a service needs of it is its engine name."""

    @property
    def name(self) -> str: ...


def _external(body: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(external?, the external name if one was given in ``external: {name: ...}``)."""
    raw = body.get("external")
    if isinstance(raw, Mapping):
        name = raw.get("name")
        return True, name if isinstance(name, str) and name else None
    return bool(raw), None


def engine_name(key: str, body: Mapping[str, Any], stack_name: str) -> tuple[str, bool]:
    """(the engine's name, external?) of the network or volume declared as ``key``."""
    external, external_name = _external(body)
    name = body.get("name")
    if isinstance(name, str) and name:
        return name, external
    if external:
        return external_name or key, True
    return f"{stack_name}_{key}", False


def declared(raw: Any, stack_name: str) -> Iterator[tuple[str, Mapping[str, Any], str, bool]]:
    """(key, body, engine name, external?) of each entry of a top-level ``networks:`` or
    ``volumes:`` mapping (an entry without a body has an empty one)."""
    if not isinstance(raw, Mapping):
        return
    for key, value in raw.items():
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        name, external = engine_name(key, body, stack_name)
        yield key, body, name, external


def network_name(networks: Mapping[str, Named], key: str, stack_name: str) -> str:
    """The engine name of network ``key``: as declared, else ``<stack>_<key>``."""
    spec = networks.get(key)
    return spec.name if spec is not None else f"{stack_name}_{key}"


# --------------------------------------------------------------------------- services

NetworkT = TypeVar("NetworkT", bound=Named)
VolumeT = TypeVar("VolumeT", bound=Named)


class ServiceTranslator(Generic[NetworkT, VolumeT]):
    """The base of the per-service translators: the state and the compose readings both
    backends share. A subclass names its backend, the keys it does not apply and the reason
    of a plain :meth:`warn`, and supplies how a bind and a named volume become mounts."""

    backend: ClassVar[str]  # "engine" / "swarm", as the messages name it
    default_reason: ClassVar[str] = "unsupported key"
    not_applied: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        stack: model.Stack,
        stack_name: str,
        networks: Mapping[str, NetworkT],
        volumes: Mapping[str, VolumeT],
        environ: Mapping[str, str],
    ) -> None:
        self.name = name
        self.config = config
        self.stack = stack
        self.stack_name = stack_name
        self.stack_networks = networks
        self.volumes = volumes
        self.environ = environ
        self.working_dir = stack.working_dir
        self.warnings: list[str] = []
        self._start()

    def _start(self) -> None:
        """Set up the subclass's own state (called at the end of ``__init__``)."""

    # ------------------------------------------------------------------ plumbing

    def warn(self, key: str, reason: str | None = None) -> None:
        """Record that ``key`` is not applied (a reason in parentheses follows without ":")."""
        reason = self.default_reason if reason is None else reason
        sep = " " if reason.startswith("(") else ": "
        self.warnings.append(
            Unapplied(
                f'service "{self.name}": {key} is not applied by the {self.backend} backend'
                f"{sep}{reason}",
                backend=self.backend,
                key=key,
                service=self.name,
            )
        )

    def invalid(self, message: str) -> InvalidComposeError:
        return InvalidComposeError(f'service "{self.name}": {message}')

    def image(self) -> str:
        image = self.config.get("image")
        if not isinstance(image, str) or not image:
            raise self.invalid(
                f"no image: the {self.backend} backend does not build images; set image: to an "
                "existing image"
            )
        return image

    def apply(self, handlers: Mapping[str, Callable[[Any], None]], skip: Collection[str]) -> None:
        """Run the handler of each key in compose-key order; ``x-`` keys, ``skip`` and the
        files the backend delivers itself (``secrets``, ``configs``) are left out, a key the
        backend does not apply or does not know becomes a warning."""
        self._check_configs()
        for key, value in self.config.items():
            if key.startswith("x-") or key in skip or key in ("secrets", "configs"):
                continue
            if key in self.not_applied:
                self.warn(key, self.not_applied[key])
                continue
            handler = handlers.get(key)
            if handler is None:
                self.warn(key, "unsupported key")
                continue
            handler(value)

    def _handlers(self) -> Mapping[str, Callable[[Any], None]]:
        """The subclass's key handlers (compose key -> handler)."""
        raise NotImplementedError

    # keys every translation reads itself, outside the handlers
    OWN_KEYS: ClassVar[frozenset[str]] = frozenset(
        ("image", "environment", "env_file", "secrets", "configs")
    )

    def handled_keys(self) -> frozenset[str]:
        """The service keys this backend applies (``README``'s supported keys table)."""
        return frozenset(self._handlers()) | self.OWN_KEYS

    def _check_configs(self) -> None:
        """``configs`` are delivered by the backend like secrets; each must be defined."""
        service = self.stack.services.get(self.name)
        for ref in service.configs if service is not None else ():
            if ref.source not in self.stack.configs:
                defined = ", ".join(sorted(self.stack.configs)) or "none"
                raise self.invalid(
                    f'configs[{ref.index}]: config "{ref.source}" is not defined under the '
                    f"top-level configs: key (defined: {defined})"
                )

    @staticmethod
    def direct(
        target: dict[str, Any], field: str, convert: Callable[[Any], Any]
    ) -> Callable[[Any], None]:
        """A handler that sets ``target[field]`` to the converted value (None: nothing)."""

        def handle(value: Any) -> None:
            if value is not None:
                target[field] = convert(value)

        return handle

    # ------------------------------------------------------------------ values

    def _duration(self, value: Any, where: str, example: str = "10s or 1m30s") -> int:
        """A Go duration in nanoseconds."""
        try:
            return int(parse_go_duration(text(value)))
        except ValueError:
            raise self.invalid(f"{where}: {value!r} is not a duration such as {example}") from None

    def _bytes(self, value: Any, where: str) -> int:
        try:
            return parse_bytes(value)
        except ValueError:
            raise self.invalid(f"{where}: {value!r} is not a size such as 512m or 1g") from None

    def _nano_cpus(self, value: Any, where: str) -> int:
        try:
            cpus = float(value)
        except ValueError:
            cpus = -1.0
        if cpus < 0:
            raise self.invalid(f"{where}: {value!r} is not a number of CPUs")
        return round(cpus * 1e9)

    # ------------------------------------------------------------------ keys

    def _split_command(self, key: str, value: Any) -> list[str]:
        """``command``/``entrypoint``: a list as given, a string split like a shell does."""
        if isinstance(value, list):
            return [text(v) for v in value]
        try:
            return shlex.split(text(value))
        except ValueError as exc:
            raise self.invalid(f"{key}: cannot split {value!r}: {exc}") from None

    def _environment_map(self) -> dict[str, str]:
        """The ``env_file`` values (read by the compose loader, files in order), then
        ``environment`` on top; an entry without a value takes it from ``environ`` or, unset
        there, is left out."""
        service = self.stack.services.get(self.name)
        env: dict[str, str] = dict(service.env_from_files) if service is not None else {}
        for key, value in key_values(self.config.get("environment")).items():
            if value is not None:
                env[key] = value
            elif key in self.environ:
                env[key] = self.environ[key]
            else:
                env.pop(key, None)
        return env

    def _healthcheck_spec(self, value: Any, example: str) -> dict[str, Any] | None:
        """The Engine-API ``Healthcheck`` of ``healthcheck:``; None when it sets nothing."""
        if not isinstance(value, Mapping):
            return None
        if value.get("disable"):
            return {"Test": ["NONE"]}
        check: dict[str, Any] = {}
        test = value.get("test")
        if isinstance(test, str):
            check["Test"] = ["CMD-SHELL", test]
        elif isinstance(test, list):
            check["Test"] = [text(t) for t in test]
        for key, api in (("interval", "Interval"), ("timeout", "Timeout"),
                         ("start_period", "StartPeriod")):  # fmt: skip
            if value.get(key) is not None:
                check[api] = self._duration(value[key], f"healthcheck.{key}", example)
        if value.get("retries") is not None:
            check["Retries"] = int(value["retries"])
        if "start_interval" in value:
            self.warn("healthcheck.start_interval", "it needs Docker Engine API 1.44")
        return check or None

    def _restart_parts(self, value: Any) -> tuple[str, str]:
        """(name, retry count or "") of a valid ``restart:`` value."""
        spec = text(value)
        name, _, count = spec.partition(":")
        valid = (name == "on-failure" and (not count or count.isdigit())) or (
            name in ("no", "always", "unless-stopped") and not count
        )
        if not valid:
            raise self.invalid(
                f'restart: "{spec}" is not one of "no", "always", "on-failure[:N]", '
                '"unless-stopped"'
            )
        return name, count

    def _restart_condition(self, body: Mapping[str, Any]) -> str:
        """``deploy.restart_policy.condition`` (default "any"), checked."""
        condition = str(body.get("condition") or "any")
        if condition not in ("none", "on-failure", "any"):
            raise self.invalid(
                f'deploy.restart_policy.condition: "{condition}" is not one of "none", '
                '"on-failure", "any"'
            )
        return condition

    def _port_target(self, item: Mapping[str, Any]) -> int:
        target = item.get("target")
        if target is None:
            raise self.invalid(f"ports: {item!r} has no target")
        return int(target)

    # ------------------------------------------------------------------ networks

    def _attachments(self, value: Any, extras: tuple[str, ...]) -> list[tuple[str, list[str]]]:
        """(engine network name, aliases) of each network the service joins (none given: the
        default network); the service name is always the first alias. Keys in ``extras`` of an
        attachment are warned about."""
        entries: dict[str, Any]
        if value is None:
            entries = {DEFAULT_NETWORK: None}
        elif isinstance(value, list):
            entries = {str(v): None for v in value}
        else:
            entries = dict(value)
        out: list[tuple[str, list[str]]] = []
        for key, body in entries.items():
            if key not in self.stack_networks and key != DEFAULT_NETWORK:
                raise self.invalid(
                    f'network "{key}" is not defined under the top-level networks: key'
                )
            aliases = [self.name]
            if isinstance(body, Mapping):
                for alias in body.get("aliases") or []:
                    if str(alias) not in aliases:
                        aliases.append(str(alias))
                for extra in extras:
                    if extra in body:
                        self.warn(f"networks.{key}.{extra}", "unsupported key")
            out.append((network_name(self.stack_networks, key, self.stack_name), aliases))
        return out

    # ------------------------------------------------------------------ mounts

    def _mounts(self, value: Any) -> list[dict[str, Any]]:
        """The mounts of ``volumes:`` in order. A short-syntax bind goes through
        :meth:`_short_bind` (None: the subclass keeps it elsewhere), a named volume through
        :meth:`_short_named`."""
        mounts: list[dict[str, Any]] = []
        for index, item in enumerate(value or []):
            where = f"volumes[{index}]"
            if isinstance(item, Mapping):
                mounts.append(self._long_volume(item, where))
                continue
            source, target, mode = split_volume(text(item))
            self._check_target(target, where)
            options = [o for o in mode.split(",") if o] if mode else []
            unknown = [o for o in options if o not in VOLUME_OPTIONS]
            if unknown:
                raise self.invalid(f"{where}: unknown volume option {unknown[0]!r} in {item!r}")
            read_only = "ro" in options
            mount: dict[str, Any] | None
            if not source:
                mount = {"Type": "volume", "Target": target, "ReadOnly": read_only}
            elif is_path(source):
                mount = self._short_bind(source, target, read_only, options)
            else:
                mount = self._short_named(source, target, read_only, options, where)
            if mount is not None:
                mounts.append(mount)
        return mounts

    def _short_bind(
        self, source: str, target: str, read_only: bool, options: list[str]
    ) -> dict[str, Any] | None:
        propagation = [o for o in options if o in PROPAGATION]
        return self._bind_mount(
            self._host_path(source), target, read_only, propagation[-1] if propagation else None
        )

    def _short_named(
        self, source: str, target: str, read_only: bool, options: list[str], where: str
    ) -> dict[str, Any]:
        return self._named_mount(source, target, read_only, "nocopy" in options, where)

    def _long_volume(self, item: Mapping[str, Any], where: str) -> dict[str, Any]:
        kind = item.get("type")
        target = item.get("target")
        if not isinstance(target, str) or not target:
            raise self.invalid(f"{where}: a volume needs a target")
        self._check_target(target, where)
        read_only = bool(item.get("read_only"))
        source = item.get("source")
        if "consistency" in item:
            self.warn(f"{where}.consistency", "Docker Desktop only")
        if kind == "bind":
            if not isinstance(source, str) or not source:
                raise self.invalid(f"{where}: a bind mount needs a source")
            propagation = (item.get("bind") or {}).get("propagation")
            return self._bind_mount(
                self._host_path(source), target, read_only, self._propagation(propagation)
            )
        if kind == "volume":
            nocopy = bool((item.get("volume") or {}).get("nocopy"))
            if isinstance(source, str) and source:
                return self._named_mount(source, target, read_only, nocopy, where)
            mount: dict[str, Any] = {"Type": "volume", "Target": target, "ReadOnly": read_only}
            if nocopy:
                mount["VolumeOptions"] = {"NoCopy": True}
            return mount
        if kind == "tmpfs":
            mount = {"Type": "tmpfs", "Target": target, "ReadOnly": read_only}
            size = (item.get("tmpfs") or {}).get("size")
            if size is not None:
                mount["TmpfsOptions"] = {"SizeBytes": self._bytes(size, f"{where}.tmpfs.size")}
            return mount
        raise self.invalid(
            f'{where}: volume type "{kind}" is not supported by the {self.backend} backend'
        )

    def _propagation(self, value: Any) -> str | None:
        """The bind propagation of a long-syntax bind as the backend passes it on."""
        return value or None

    def _bind_mount(
        self, host: str, target: str, read_only: bool, propagation: str | None
    ) -> dict[str, Any]:
        mount: dict[str, Any] = {
            "Type": "bind",
            "Source": host,
            "Target": target,
            "ReadOnly": read_only,
        }
        if propagation:
            mount["BindOptions"] = {"Propagation": propagation}
        return mount

    def _named_mount(
        self, key: str, target: str, read_only: bool, nocopy: bool, where: str
    ) -> dict[str, Any]:
        mount: dict[str, Any] = {
            "Type": "volume",
            "Source": self._volume(key, where).name,
            "Target": target,
            "ReadOnly": read_only,
        }
        if nocopy:
            mount["VolumeOptions"] = {"NoCopy": True}
        return mount

    def _volume(self, key: str, where: str) -> VolumeT:
        volume = self.volumes.get(key)
        if volume is None:
            raise self.invalid(
                f'{where}: volume "{key}" is not defined under the top-level volumes: key'
            )
        return volume

    def _check_target(self, target: str, where: str) -> None:
        if not target.startswith("/"):
            raise self.invalid(f'{where}: the target "{target}" must be an absolute path')

    def _host_path(self, source: str) -> str:
        expanded = os.path.expanduser(source)
        return posixpath.normpath(posixpath.join(str(self.working_dir), expanded))
