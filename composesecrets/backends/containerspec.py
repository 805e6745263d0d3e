"""Translate a normalised stack into what the Docker Engine needs: one :class:`ServiceSpec`
per service (keyword arguments for ``client.containers.create``), and the stack's networks and
volumes. Pure: no Docker calls, nothing written.

``docker compose`` is the model for what each compose key does on a plain engine. A key the
engine backend does not apply (Swarm-only ``deploy`` settings, ``build``, ``configs``, ...) is
never dropped silently: it becomes a warning naming the key and the service. ``x-`` keys are
ignored, and ``secrets`` is left to the caller (the engine backend mounts them itself).

The keyword arguments are plain data (dicts, lists, strings, numbers): ports as
``{"80/tcp": [{"HostIp": "", "HostPort": "8000"}]}``, short-syntax binds as
``volumes={host_path: {"bind": target, "mode": "rw"}}`` (the engine creates a missing host
directory, as ``docker compose`` does), every other mount as an Engine-API ``Mounts`` entry
in ``mounts``. ``stop_grace_period`` is not a ``containers.create`` argument in the SDK; it is
:attr:`ServiceSpec.stop_timeout` (seconds), for ``container.stop(timeout=...)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composesecrets import model
from composesecrets.compose import interpolate
from composesecrets.compose.formats import parse_go_duration
from composesecrets.errors import InputError, InvalidComposeError

__all__ = [
    "APPLIED_KEYS",
    "NOT_APPLIED",
    "NetworkSpec",
    "ServiceSpec",
    "VolumeSpec",
    "fingerprint",
    "parse_bytes",
    "stack_specs",
]

DEFAULT_NETWORK = "default"


@dataclass(frozen=True)
class NetworkSpec:
    """A network the stack uses. ``name`` is the engine's name for it."""

    name: str  # "<stack>_<key>", or the ``name:`` / external name as given
    key: str  # the key under top-level ``networks:`` ("default" for the implicit one)
    driver: str
    labels: dict[str, str]
    internal: bool
    attachable: bool
    external: bool
    options: dict[str, str]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class VolumeSpec:
    """A named volume the stack declares. ``name`` is the engine's name for it."""

    name: str  # "<stack>_<key>", or the ``name:`` / external name as given
    key: str
    driver: str
    driver_opts: dict[str, str]
    labels: dict[str, str]
    external: bool
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    """How to create the containers of one service (secrets, name, labels and networking
    are added by the caller)."""

    name: str
    image: str
    replicas: int
    depends_on: tuple[str, ...]
    create_kwargs: dict[str, Any]
    networks: dict[str, tuple[str, ...]]  # engine network name -> aliases
    labels: dict[str, str]
    warnings: tuple[str, ...]
    fingerprint: str
    stop_timeout: int | None = None  # seconds, from stop_grace_period


def stack_specs(
    stack: model.Stack,
    stack_name: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, ServiceSpec], dict[str, NetworkSpec], dict[str, VolumeSpec]]:
    """Services, networks and volumes of ``stack`` deployed as ``stack_name``.

    ``environ`` (default: the process environment) supplies the values of ``environment``
    entries given without one (``- KEY`` or ``KEY:``); unset ones are left out, as in compose.
    Networks and volumes are keyed by their compose key. Raises :class:`InvalidComposeError`
    for references the engine cannot satisfy (an undefined network, volume or service, no
    image) and :class:`InputError` for an ``env_file`` that cannot be read.
    """
    environ = os.environ if environ is None else environ
    top = model.plain(dict(stack.config))
    networks = _networks(top.get("networks"), stack_name)
    volumes = _volumes(top.get("volumes"), stack_name)
    services: dict[str, ServiceSpec] = {}
    for name, service in stack.services.items():
        translator = _Service(
            name, model.plain(dict(service.config)), stack, stack_name, networks, volumes, environ
        )
        services[name] = translator.spec()
    if (
        any(
            net == _network_name(networks, DEFAULT_NETWORK, stack_name)
            for spec in services.values()
            for net in spec.networks
        )
        and DEFAULT_NETWORK not in networks
    ):
        networks[DEFAULT_NETWORK] = _default_network(stack_name)
    return services, networks, volumes


# --------------------------------------------------------------------------- networks/volumes


def _default_network(stack_name: str) -> NetworkSpec:
    return NetworkSpec(
        name=f"{stack_name}_{DEFAULT_NETWORK}",
        key=DEFAULT_NETWORK,
        driver="bridge",
        labels={},
        internal=False,
        attachable=False,
        external=False,
        options={},
    )


def _network_name(networks: Mapping[str, NetworkSpec], key: str, stack_name: str) -> str:
    spec = networks.get(key)
    return spec.name if spec is not None else f"{stack_name}_{key}"


def _external(body: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(external?, the external name if one was given in ``external: {name: ...}``)."""
    raw = body.get("external")
    if isinstance(raw, Mapping):
        name = raw.get("name")
        return True, name if isinstance(name, str) and name else None
    return bool(raw), None


def _engine_name(key: str, body: Mapping[str, Any], stack_name: str) -> tuple[str, bool]:
    external, external_name = _external(body)
    name = body.get("name")
    if isinstance(name, str) and name:
        return name, external
    if external:
        return external_name or key, True
    return f"{stack_name}_{key}", False


def _str_map(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): _text(v) for k, v in raw.items() if v is not None}


def _networks(raw: Any, stack_name: str) -> dict[str, NetworkSpec]:
    out: dict[str, NetworkSpec] = {}
    if not isinstance(raw, Mapping):
        return out
    for key, value in raw.items():
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        name, external = _engine_name(key, body, stack_name)
        warnings: list[str] = []
        driver = body.get("driver") or "bridge"
        if driver == "overlay":
            warnings.append(
                f'network "{key}": driver "overlay" needs Swarm; the engine backend creates a '
                '"bridge" network instead'
            )
            driver = "bridge"
        if "ipam" in body:
            warnings.append(f'network "{key}": ipam is not applied by the engine backend')
        out[key] = NetworkSpec(
            name=name,
            key=key,
            driver=str(driver),
            labels=model.labels_dict(body.get("labels")),
            internal=bool(body.get("internal")),
            attachable=bool(body.get("attachable")),
            external=external,
            options=_str_map(body.get("driver_opts")),
            warnings=tuple(warnings),
        )
    return out


def _volumes(raw: Any, stack_name: str) -> dict[str, VolumeSpec]:
    out: dict[str, VolumeSpec] = {}
    if not isinstance(raw, Mapping):
        return out
    for key, value in raw.items():
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        name, external = _engine_name(key, body, stack_name)
        warnings: list[str] = []
        if "x-cluster-spec" in body:
            warnings.append(
                f'volume "{key}": x-cluster-spec is not applied by the engine backend '
                "(Swarm cluster volumes only)"
            )
        out[key] = VolumeSpec(
            name=name,
            key=key,
            driver=str(body.get("driver") or "local"),
            driver_opts=_str_map(body.get("driver_opts")),
            labels=model.labels_dict(body.get("labels")),
            external=external,
            warnings=tuple(warnings),
        )
    return out


# --------------------------------------------------------------------------- value helpers


def _text(value: Any) -> str:
    """A scalar as compose writes it into the container: booleans lower case, 2.0 as 2."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _string_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [_text(v) for v in raw]
    return [_text(raw)]


def _key_values(raw: Any, sep: str = "=") -> dict[str, str | None]:
    """A list of ``k<sep>v`` (``k`` alone -> None) or a mapping -> dict."""
    out: dict[str, str | None] = {}
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            out[str(key)] = None if value is None else _text(value)
    elif isinstance(raw, list):
        for item in raw:
            key, found, value = _text(item).partition(sep)
            out[key] = value if found else None
    return out


_BYTES_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", re.IGNORECASE)
_BYTES_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: Any) -> int:
    """A size as compose reads it (go-units ``RAMInBytes``): ``64m``, ``1.5GB``, ``512``,
    binary multiples, case-insensitive. Raises :class:`ValueError` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"not a size: {value!r}")
        return int(value)
    match = _BYTES_RE.match(str(value).strip())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    number, unit = match.group(1), (match.group(2) or "").lower()
    return int(float(number) * _BYTES_UNITS[unit])


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def fingerprint(payload: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``payload`` (sorted keys, tuples as lists)."""
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- services

# Service keys the engine backend applies ("secrets" by the backend itself).
APPLIED_KEYS: frozenset[str] = frozenset(
    ("image", "command", "entrypoint", "environment", "env_file", "ports", "networks",
     "volumes", "depends_on", "deploy", "restart", "labels", "healthcheck", "tmpfs",
     "stop_grace_period", "logging", "ulimits", "sysctls", "extra_hosts", "shm_size", "user",
     "working_dir", "hostname", "domainname", "stop_signal", "read_only", "init", "privileged",
     "tty", "stdin_open", "cap_add", "cap_drop", "security_opt", "devices", "dns", "dns_search",
     "ipc", "pid", "oom_score_adj", "cgroup_parent", "cgroupns_mode", "userns_mode", "secrets")
)  # fmt: skip

# Keys a service may carry that the engine backend does not apply, with the reason.
NOT_APPLIED: dict[str, str] = {
    "build": "images are not built; the service must name an existing image",
    "container_name": "containers are named <stack>_<service>_<n>",
    "expose": "container ports are reachable on the stack's networks without it",
    "configs": "Swarm configs are not supported by the engine backend",
    "credential_spec": "Windows-only",
    "isolation": "Windows-only",
    "links": "use the service name on a shared network instead",
    "external_links": "use a shared external network instead",
    "network_mode": "containers join the stack's networks",
    "mac_address": "replicas would share one address",
}

_SWARM_ONLY = "(Swarm only)"

_RESTART_NAMES = frozenset(("no", "always", "unless-stopped", "on-failure"))
_CONDITIONS = {"none": "no", "on-failure": "on-failure", "any": "always"}
_VOLUME_OPTIONS = frozenset(
    ("ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private",
     "rprivate", "delegated", "cached", "consistent")
)  # fmt: skip
_PROPAGATION = frozenset(("shared", "rshared", "slave", "rslave", "private", "rprivate"))


class _Service:
    """Translates one service; collects kwargs and warnings in compose-key order."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        stack: model.Stack,
        stack_name: str,
        networks: Mapping[str, NetworkSpec],
        volumes: Mapping[str, VolumeSpec],
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
        self.kwargs: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.labels: dict[str, str] = {}
        self.networks: dict[str, tuple[str, ...]] = {}
        self.depends_on: tuple[str, ...] = ()
        self.replicas = 1
        self.stop_timeout: int | None = None
        self.restart_set_by: str | None = None

    # ------------------------------------------------------------------ plumbing

    def warn(self, key: str, reason: str = _SWARM_ONLY) -> None:
        sep = " " if reason.startswith("(") else ": "
        self.warnings.append(
            f'service "{self.name}": {key} is not applied by the engine backend{sep}{reason}'
        )

    def invalid(self, message: str) -> InvalidComposeError:
        return InvalidComposeError(f'service "{self.name}": {message}')

    def spec(self) -> ServiceSpec:
        handlers = self._handlers()
        for key, value in self.config.items():
            if key.startswith("x-") or key in ("secrets", "image", "environment"):
                continue
            if key in NOT_APPLIED:
                self.warn(key, NOT_APPLIED[key])
                continue
            handler = handlers.get(key)
            if handler is None:
                self.warn(key, "unsupported key")
                continue
            handler(value)
        self._environment()
        if "networks" not in self.config:
            self._networks(None)
        image = self.config.get("image")
        if not isinstance(image, str) or not image:
            raise self.invalid(
                "no image: the engine backend does not build images; set image: to an "
                "existing image"
            )
        kwargs = dict(self.kwargs)
        payload = {
            "image": image,
            "create_kwargs": kwargs,
            "networks": self.networks,
            "labels": self.labels,
            "stop_timeout": self.stop_timeout,
        }
        return ServiceSpec(
            name=self.name,
            image=image,
            replicas=self.replicas,
            depends_on=self.depends_on,
            create_kwargs=kwargs,
            networks=dict(self.networks),
            labels=dict(self.labels),
            warnings=tuple(self.warnings),
            fingerprint=fingerprint(payload),
            stop_timeout=self.stop_timeout,
        )

    def _handlers(self) -> dict[str, Callable[[Any], None]]:
        def direct(kwarg: str, convert: Callable[[Any], Any]) -> Callable[[Any], None]:
            def handle(value: Any) -> None:
                if value is not None:
                    self.kwargs[kwarg] = convert(value)

            return handle

        return {
            "command": self._command("command"),
            "entrypoint": self._command("entrypoint"),
            "env_file": lambda _value: None,  # read together with environment
            "ports": self._ports,
            "networks": self._networks,
            "volumes": self._volumes,
            "depends_on": self._depends_on,
            "deploy": self._deploy,
            "restart": self._restart,
            "labels": self._labels,
            "healthcheck": self._healthcheck,
            "tmpfs": self._tmpfs,
            "stop_grace_period": self._stop_grace_period,
            "logging": self._logging,
            "ulimits": self._ulimits,
            "sysctls": self._sysctls,
            "extra_hosts": self._extra_hosts,
            "shm_size": self._shm_size,
            "user": direct("user", _text),
            "working_dir": direct("working_dir", _text),
            "hostname": direct("hostname", _text),
            "domainname": direct("domainname", _text),
            "stop_signal": direct("stop_signal", _text),
            "read_only": direct("read_only", bool),
            "init": direct("init", bool),
            "privileged": direct("privileged", bool),
            "tty": direct("tty", bool),
            "stdin_open": direct("stdin_open", bool),
            "cap_add": direct("cap_add", _string_list),
            "cap_drop": direct("cap_drop", _string_list),
            "security_opt": direct("security_opt", _string_list),
            "devices": direct("devices", _string_list),
            "dns": direct("dns", _string_list),
            "dns_search": direct("dns_search", _string_list),
            "ipc": direct("ipc_mode", _text),
            "pid": direct("pid_mode", _text),
            "oom_score_adj": direct("oom_score_adj", int),
            "cgroup_parent": direct("cgroup_parent", _text),
            "cgroupns_mode": direct("cgroupns", _text),
            "userns_mode": direct("userns_mode", _text),
        }

    # ------------------------------------------------------------------ keys

    def _command(self, kwarg: str) -> Callable[[Any], None]:
        def handle(value: Any) -> None:
            if value is None:
                return
            if isinstance(value, list):
                self.kwargs[kwarg] = [_text(v) for v in value]
            else:
                try:
                    self.kwargs[kwarg] = shlex.split(_text(value))
                except ValueError as exc:
                    raise self.invalid(f"{kwarg}: cannot split {value!r}: {exc}") from None

        return handle

    def _environment(self) -> None:
        env: dict[str, str] = {}
        for item in _string_list(self.config.get("env_file")):
            path = Path(posixpath.join(str(self.working_dir), os.path.expanduser(item)))
            if not path.is_file():
                raise InputError(
                    f'service "{self.name}": env_file {item} ({path}) does not exist or is '
                    "not a regular file"
                )
            env.update(interpolate.read_env_file(path))
        for key, value in _key_values(self.config.get("environment")).items():
            if value is not None:
                env[key] = value
            elif key in self.environ:
                env[key] = self.environ[key]
            else:
                env.pop(key, None)
        if env:
            self.kwargs["environment"] = env

    def _ports(self, value: Any) -> None:
        bindings: dict[str, list[dict[str, str]]] = {}
        for item in value or []:
            for container, host_ip, host_port in self._port_entries(item):
                bindings.setdefault(container, []).append(
                    {"HostIp": host_ip, "HostPort": host_port}
                )
        if bindings:
            self.kwargs["ports"] = bindings

    def _port_entries(self, item: Any) -> list[tuple[str, str, str]]:
        if isinstance(item, Mapping):
            target = item.get("target")
            if target is None:
                raise self.invalid(f"ports: {item!r} has no target")
            protocol = str(item.get("protocol") or "tcp").lower()
            published = item.get("published")
            host = "" if published is None else _text(published)
            return [(f"{int(target)}/{protocol}", "", host)]
        return _short_port(_text(item))

    def _networks(self, value: Any) -> None:
        entries: dict[str, Any]
        if value is None:
            entries = {DEFAULT_NETWORK: None}
        elif isinstance(value, list):
            entries = {str(v): None for v in value}
        else:
            entries = dict(value)
        for key, body in entries.items():
            if key not in self.stack_networks and key != DEFAULT_NETWORK:
                raise self.invalid(
                    f'network "{key}" is not defined under the top-level networks: key'
                )
            aliases = [self.name]
            if isinstance(body, Mapping):
                for alias in body.get("aliases") or []:
                    if alias not in aliases:
                        aliases.append(str(alias))
                for extra in ("ipv4_address", "ipv6_address", "driver_opts"):
                    if extra in body:
                        self.warn(f"networks.{key}.{extra}", "unsupported key")
            name = _network_name(self.stack_networks, key, self.stack_name)
            self.networks[name] = tuple(aliases)

    def _volumes(self, value: Any) -> None:
        binds: dict[str, dict[str, str]] = {}
        mounts: list[dict[str, Any]] = []
        for index, item in enumerate(value or []):
            where = f"volumes[{index}]"
            if isinstance(item, Mapping):
                mounts.append(self._long_volume(item, where))
                continue
            source, target, mode = _split_volume(_text(item))
            self._check_target(target, where)
            options = [o for o in mode.split(",") if o] if mode else []
            unknown = [o for o in options if o not in _VOLUME_OPTIONS]
            if unknown:
                raise self.invalid(f"{where}: unknown volume option {unknown[0]!r} in {item!r}")
            read_only = "ro" in options
            if not source:
                mounts.append({"Type": "volume", "Target": target, "ReadOnly": read_only})
            elif _is_path(source):
                host = self._host_path(source)
                if host in binds:
                    # a second bind of the same host path: the binds map is keyed by it
                    mounts.append(self._bind_mount(host, target, read_only, options))
                else:
                    bind_mode = [
                        o
                        for o in options
                        if o not in ("delegated", "cached", "consistent", "nocopy")
                    ]
                    binds[host] = {"bind": target, "mode": ",".join(bind_mode) or "rw"}
            else:
                mount: dict[str, Any] = {
                    "Type": "volume",
                    "Source": self._volume_name(source, where),
                    "Target": target,
                    "ReadOnly": read_only,
                }
                if "nocopy" in options:
                    mount["VolumeOptions"] = {"NoCopy": True}
                for option in options:
                    if option in ("z", "Z") or option in _PROPAGATION:
                        self.warn(f"{where} option {option!r}", "it applies to bind mounts only")
                mounts.append(mount)
        if binds:
            self.kwargs["volumes"] = binds
        if mounts:
            self.kwargs["mounts"] = mounts

    def _bind_mount(
        self, host: str, target: str, read_only: bool, options: list[str]
    ) -> dict[str, Any]:
        mount: dict[str, Any] = {
            "Type": "bind",
            "Source": host,
            "Target": target,
            "ReadOnly": read_only,
        }
        propagation = [o for o in options if o in _PROPAGATION]
        if propagation:
            mount["BindOptions"] = {"Propagation": propagation[-1]}
        return mount

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
                self._host_path(source), target, read_only, [propagation] if propagation else []
            )
        if kind == "volume":
            mount: dict[str, Any] = {"Type": "volume", "Target": target, "ReadOnly": read_only}
            if isinstance(source, str) and source:
                mount["Source"] = self._volume_name(source, where)
            if (item.get("volume") or {}).get("nocopy"):
                mount["VolumeOptions"] = {"NoCopy": True}
            return mount
        if kind == "tmpfs":
            mount = {"Type": "tmpfs", "Target": target, "ReadOnly": read_only}
            size = (item.get("tmpfs") or {}).get("size")
            if size is not None:
                mount["TmpfsOptions"] = {"SizeBytes": parse_bytes(size)}
            return mount
        raise self.invalid(f'{where}: volume type "{kind}" is not supported by the engine backend')

    def _check_target(self, target: str, where: str) -> None:
        if not target.startswith("/"):
            raise self.invalid(f'{where}: the target "{target}" must be an absolute path')

    def _host_path(self, source: str) -> str:
        expanded = os.path.expanduser(source)
        return posixpath.normpath(posixpath.join(str(self.working_dir), expanded))

    def _volume_name(self, key: str, where: str) -> str:
        spec = self.volumes.get(key)
        if spec is None:
            raise self.invalid(
                f'{where}: volume "{key}" is not defined under the top-level volumes: key'
            )
        return spec.name

    def _depends_on(self, value: Any) -> None:
        names = list(value) if isinstance(value, (list, Mapping)) else []
        for dep in names:
            if dep not in self.stack.services:
                raise self.invalid(f'depends_on: service "{dep}" is not defined')
            if dep == self.name:
                raise self.invalid("depends_on: a service cannot depend on itself")
        self.depends_on = tuple(str(d) for d in names)

    def _deploy(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        for key, body in value.items():
            if key == "replicas":
                if body is not None:
                    self.replicas = int(body)
                    if self.replicas < 0:
                        raise self.invalid("deploy.replicas must not be negative")
            elif key == "mode":
                if body == "global":
                    self.warn("deploy.mode global", "(Swarm only; one container is run)")
            elif key == "restart_policy":
                self._restart_policy(body)
            elif key == "resources":
                self._resources(body)
            else:
                self.warn(f"deploy.{key}")

    def _resources(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        for part, body in value.items():
            if not isinstance(body, Mapping):
                continue
            for key, item in body.items():
                if item is None:
                    continue
                where = f"deploy.resources.{part}.{key}"
                if part == "limits" and key == "memory":
                    self.kwargs["mem_limit"] = self._bytes(item, where)
                elif part == "limits" and key == "cpus":
                    self.kwargs["nano_cpus"] = self._nano_cpus(item, where)
                elif part == "limits" and key == "pids":
                    self.kwargs["pids_limit"] = int(item)
                elif part == "reservations" and key == "memory":
                    self.kwargs["mem_reservation"] = self._bytes(item, where)
                else:
                    self.warn(where)

    def _bytes(self, value: Any, where: str) -> int:
        try:
            return parse_bytes(value)
        except ValueError:
            raise self.invalid(f"{where}: {value!r} is not a size such as 512m or 1g") from None

    def _nano_cpus(self, value: Any, where: str) -> int:
        try:
            cpus = float(value)
        except ValueError:
            raise self.invalid(f"{where}: {value!r} is not a number of CPUs") from None
        if cpus < 0:
            raise self.invalid(f"{where}: {value!r} is not a number of CPUs")
        return round(cpus * 1e9)

    def _restart(self, value: Any) -> None:
        if value is None:
            return
        text = _text(value)
        name, _, count = text.partition(":")
        if name not in _RESTART_NAMES or (count and (name != "on-failure" or not count.isdigit())):
            raise self.invalid(
                f'restart: "{text}" is not one of "no", "always", "on-failure[:N]", '
                '"unless-stopped"'
            )
        if self.restart_set_by == "deploy.restart_policy":
            self.warn("restart", "deploy.restart_policy takes precedence")
            return
        policy: dict[str, Any] = {"Name": name}
        if count:
            policy["MaximumRetryCount"] = int(count)
        self.kwargs["restart_policy"] = policy
        self.restart_set_by = "restart"

    def _restart_policy(self, value: Any) -> None:
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        condition = body.get("condition") or "any"
        name = _CONDITIONS.get(str(condition))
        if name is None:
            raise self.invalid(
                f'deploy.restart_policy.condition: "{condition}" is not one of "none", '
                '"on-failure", "any"'
            )
        policy: dict[str, Any] = {"Name": name}
        attempts = body.get("max_attempts")
        if attempts is not None:
            if name == "on-failure":
                policy["MaximumRetryCount"] = int(attempts)
            else:
                self.warn(
                    "deploy.restart_policy.max_attempts",
                    f'the engine counts retries only for condition "on-failure", not "{condition}"',
                )
        for key in ("delay", "window"):
            if key in body:
                self.warn(f"deploy.restart_policy.{key}")
        if self.restart_set_by == "restart":
            self.warn("restart", "deploy.restart_policy takes precedence")
        self.kwargs["restart_policy"] = policy
        self.restart_set_by = "deploy.restart_policy"

    def _labels(self, value: Any) -> None:
        self.labels = model.labels_dict(value)

    def _healthcheck(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        if value.get("disable"):
            self.kwargs["healthcheck"] = {"Test": ["NONE"]}
            return
        check: dict[str, Any] = {}
        test = value.get("test")
        if isinstance(test, str):
            check["Test"] = ["CMD-SHELL", test]
        elif isinstance(test, list):
            check["Test"] = [_text(t) for t in test]
        for key, field in (
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start_period", "StartPeriod"),
        ):
            raw = value.get(key)
            if raw is not None:
                try:
                    check[field] = parse_go_duration(_text(raw))
                except ValueError:
                    raise self.invalid(
                        f"healthcheck.{key}: {raw!r} is not a duration such as 30s or 1m30s"
                    ) from None
        if value.get("retries") is not None:
            check["Retries"] = int(value["retries"])
        if "start_interval" in value:
            self.warn("healthcheck.start_interval", "it needs Docker Engine API 1.44")
        if check:
            self.kwargs["healthcheck"] = check

    def _tmpfs(self, value: Any) -> None:
        out: dict[str, str] = {}
        for item in _string_list(value):
            path, _, options = item.partition(":")
            out[path] = options
        if out:
            self.kwargs["tmpfs"] = out

    def _stop_grace_period(self, value: Any) -> None:
        if value is None:
            return
        try:
            nanoseconds = parse_go_duration(_text(value))
        except ValueError:
            raise self.invalid(
                f"stop_grace_period: {value!r} is not a duration such as 10s"
            ) from None
        self.stop_timeout = int(nanoseconds / 1_000_000_000)

    def _logging(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        self.kwargs["log_config"] = {
            "Type": _text(value.get("driver") or ""),
            "Config": _str_map(value.get("options")),
        }

    def _ulimits(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        limits: list[dict[str, Any]] = []
        for name, body in value.items():
            if isinstance(body, Mapping):
                soft, hard = int(body["soft"]), int(body["hard"])
            else:
                soft = hard = int(body)
            limits.append({"Name": str(name), "Soft": soft, "Hard": hard})
        if limits:
            self.kwargs["ulimits"] = limits

    def _sysctls(self, value: Any) -> None:
        sysctls = {k: v or "" for k, v in _key_values(value).items()}
        if sysctls:
            self.kwargs["sysctls"] = sysctls

    def _extra_hosts(self, value: Any) -> None:
        if isinstance(value, Mapping):
            hosts = [f"{k}:{_text(v)}" for k, v in value.items()]
        else:
            hosts = _string_list(value)
        if hosts:
            self.kwargs["extra_hosts"] = hosts

    def _shm_size(self, value: Any) -> None:
        if value is not None:
            self.kwargs["shm_size"] = self._bytes(value, "shm_size")


def _is_path(source: str) -> bool:
    """Compose's rule: a source that starts like a path is a bind mount, else a volume name."""
    return source.startswith((".", "/", "~"))


def _split_volume(spec: str) -> tuple[str, str, str]:
    """(source, target, mode) of a short-syntax volume; a lone path is an anonymous volume."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return parts[0], parts[1], ""
    return parts[0], parts[1], ":".join(parts[2:])


def _short_port(spec: str) -> list[tuple[str, str, str]]:
    """``[ip:][host[-end]:]container[-end][/proto]`` -> (container/proto, host ip, host port).

    The spec is already valid (the schema's ``ports`` format). Equal-sized ranges pair up
    port by port; a host range for one container port is left to the engine to pick from.
    """
    parts = spec.split(":")
    if len(parts) == 1:
        ip, host, container = "", "", parts[0]
    elif len(parts) == 2:
        ip, host, container = "", parts[0], parts[1]
    else:
        ip, host, container = ":".join(parts[:-2]), parts[-2], parts[-1]
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    port, _, proto = container.partition("/")
    proto = (proto.split("/")[0] or "tcp").lower()
    c_start, c_end = _port_range(port)
    if not host:
        return [(f"{p}/{proto}", ip, "") for p in range(c_start, c_end + 1)]
    h_start, h_end = _port_range(host)
    if c_start == c_end:
        host_port = str(h_start) if h_start == h_end else f"{h_start}-{h_end}"
        return [(f"{c_start}/{proto}", ip, host_port)]
    return [(f"{c_start + i}/{proto}", ip, str(h_start + i)) for i in range(c_end - c_start + 1)]


def _port_range(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    end = end.split("-")[0]
    return int(start), int(end) if end else int(start)
