"""Translate a normalised stack into what the Docker Engine needs: one :class:`EngineService`
per service (keyword arguments for ``client.containers.create``), and the stack's networks and
volumes. Pure: no Docker calls, nothing written.

``docker compose`` is the model for what each compose key does on a plain engine. A key the
engine backend does not apply (Swarm-only ``deploy`` settings, ``build``, ...) is
never dropped silently: it becomes a warning naming the key and the service. ``x-`` keys are
ignored, and ``secrets`` is left to the caller (the engine backend mounts them itself).

The keyword arguments are plain data (dicts, lists, strings, numbers): ports as
``{"80/tcp": [{"HostIp": "", "HostPort": "8000"}]}``, short-syntax binds as
``volumes={host_path: {"bind": target, "mode": "rw"}}`` (the engine creates a missing host
directory, as ``docker compose`` does), every other mount as an Engine-API ``Mounts`` entry
in ``mounts``. ``stop_grace_period`` is not a ``containers.create`` argument in the SDK; it is
:attr:`EngineService.stop_timeout` (seconds), for ``container.stop(timeout=...)``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from composesecrets import model
from composesecrets.backends.engine.networks import EngineNetwork, EngineVolume, default_network
from composesecrets.backends.engine.networks import networks as make_networks
from composesecrets.backends.engine.networks import volumes as make_volumes
from composesecrets.backends.translation import (
    DEFAULT_NETWORK,
    ServiceTranslator,
    network_name,
)
from composesecrets.backends.values import (
    PROPAGATION,
    fingerprint,
    parse_bytes,
    short_port,
    str_map,
    string_list,
    sysctl_map,
    text,
    ulimit_list,
)
from composesecrets.docker_rules import DEFAULT_RESTART_CONDITION

__all__ = [
    "APPLIED_KEYS",
    "NOT_APPLIED",
    "EngineNetwork",
    "EngineService",
    "EngineVolume",
    "fingerprint",
    "parse_bytes",
    "stack_specs",
]


@dataclass(frozen=True)
class EngineService:
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
) -> tuple[dict[str, EngineService], dict[str, EngineNetwork], dict[str, EngineVolume]]:
    """Services, networks and volumes of ``stack`` deployed as ``stack_name``.

    ``environ`` (default: the process environment) supplies the values of ``environment``
    entries given without one (``- KEY`` or ``KEY:``); unset ones are left out, as in compose.
    Networks and volumes are keyed by their compose key. Raises :class:`InvalidComposeError`
    for references the engine cannot satisfy (an undefined network, volume or service, no
    image) and :class:`InputError` for an ``env_file`` that cannot be read.
    """
    environ = os.environ if environ is None else environ
    top = model.plain(dict(stack.config))
    networks = make_networks(top.get("networks"), stack_name)
    volumes = make_volumes(top.get("volumes"), stack_name)
    services: dict[str, EngineService] = {}
    for name, service in stack.services.items():
        translator = _Service(
            name, model.plain(dict(service.config)), stack, stack_name, networks, volumes, environ
        )
        services[name] = translator.spec()
    if (
        any(
            net == network_name(networks, DEFAULT_NETWORK, stack_name)
            for spec in services.values()
            for net in spec.networks
        )
        and DEFAULT_NETWORK not in networks
    ):
        networks[DEFAULT_NETWORK] = default_network(stack_name)
    return services, networks, volumes


# --------------------------------------------------------------------------- services

# Service keys the engine backend applies ("secrets" by the backend itself).
APPLIED_KEYS: frozenset[str] = frozenset(
    ("image", "command", "entrypoint", "environment", "env_file", "ports", "networks",
     "volumes", "depends_on", "deploy", "restart", "labels", "healthcheck", "tmpfs",
     "stop_grace_period", "logging", "ulimits", "sysctls", "extra_hosts", "shm_size", "user",
     "working_dir", "hostname", "domainname", "stop_signal", "read_only", "init", "privileged",
     "tty", "stdin_open", "cap_add", "cap_drop", "security_opt", "devices", "dns", "dns_search",
     "ipc", "pid", "oom_score_adj", "cgroup_parent", "cgroupns_mode", "userns_mode", "secrets",
     "configs")
)  # fmt: skip

# Keys a service may carry that the engine backend does not apply, with the reason.
NOT_APPLIED: dict[str, str] = {
    "build": "images are not built; the service must name an existing image",
    "container_name": "containers are named <stack>_<service>_<n>",
    "expose": "container ports are reachable on the stack's networks without it",
    "credential_spec": "Windows-only",
    "isolation": "Windows-only",
    "links": "use the service name on a shared network instead",
    "external_links": "use a shared external network instead",
    "network_mode": "containers join the stack's networks",
    "mac_address": "replicas would share one address",
}

_SWARM_ONLY = "(Swarm only)"

# deploy.restart_policy.condition -> the engine's restart policy name
_CONDITIONS = {"none": "no", "on-failure": "on-failure", "any": "always"}


class _Service(ServiceTranslator[EngineNetwork, EngineVolume]):
    """Translates one service; collects kwargs and warnings in compose-key order."""

    backend = "engine"
    default_reason = _SWARM_ONLY
    not_applied = NOT_APPLIED

    def _start(self) -> None:
        self.kwargs: dict[str, Any] = {}
        self.labels: dict[str, str] = {}
        self.networks: dict[str, tuple[str, ...]] = {}
        self.depends_on: tuple[str, ...] = ()
        self.replicas = 1
        self.stop_timeout: int | None = None
        self.restart_set_by: str | None = None
        self.binds: dict[str, dict[str, str]] = {}  # short-syntax binds, by host path

    def spec(self) -> EngineService:
        self.apply(self._handlers(), ("secrets", "image", "environment"))
        self._environment()
        if self.restart_set_by is None:
            # a compose 3.x file is a stack: Swarm's default restart_policy condition "any"
            self.kwargs["restart_policy"] = {"Name": _CONDITIONS[DEFAULT_RESTART_CONDITION]}
        if "networks" not in self.config:
            self._networks(None)
        image = self.image()
        kwargs = dict(self.kwargs)
        payload = {
            "image": image,
            "create_kwargs": kwargs,
            "networks": self.networks,
            "labels": self.labels,
            "stop_timeout": self.stop_timeout,
        }
        return EngineService(
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
            return self.direct(self.kwargs, kwarg, convert)

        return {
            "command": direct("command", functools.partial(self._split_command, "command")),
            "entrypoint": direct(
                "entrypoint", functools.partial(self._split_command, "entrypoint")
            ),
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
            "user": direct("user", text),
            "working_dir": direct("working_dir", text),
            "hostname": direct("hostname", text),
            "domainname": direct("domainname", text),
            "stop_signal": direct("stop_signal", text),
            "read_only": direct("read_only", bool),
            "init": direct("init", bool),
            "privileged": direct("privileged", bool),
            "tty": direct("tty", bool),
            "stdin_open": direct("stdin_open", bool),
            "cap_add": direct("cap_add", string_list),
            "cap_drop": direct("cap_drop", string_list),
            "security_opt": direct("security_opt", string_list),
            "devices": direct("devices", string_list),
            "dns": direct("dns", string_list),
            "dns_search": direct("dns_search", string_list),
            "ipc": direct("ipc_mode", text),
            "pid": direct("pid_mode", text),
            "oom_score_adj": direct("oom_score_adj", int),
            "cgroup_parent": direct("cgroup_parent", text),
            "cgroupns_mode": direct("cgroupns", text),
            "userns_mode": direct("userns_mode", text),
        }

    # ------------------------------------------------------------------ keys

    def _environment(self) -> None:
        env = self._environment_map()
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
            target = self._port_target(item)
            protocol = str(item.get("protocol") or "tcp").lower()
            published = item.get("published")
            host = "" if published is None else text(published)
            return [(f"{target}/{protocol}", "", host)]
        return short_port(text(item))

    def _networks(self, value: Any) -> None:
        extras = ("ipv4_address", "ipv6_address", "driver_opts")
        for name, aliases in self._attachments(value, extras):
            self.networks[name] = tuple(aliases)

    def _volumes(self, value: Any) -> None:
        mounts = self._mounts(value)
        if self.binds:
            self.kwargs["volumes"] = self.binds
        if mounts:
            self.kwargs["mounts"] = mounts

    def _short_bind(
        self, source: str, target: str, read_only: bool, options: list[str]
    ) -> dict[str, Any] | None:
        host = self._host_path(source)
        if host in self.binds:
            # a second bind of the same host path: the binds map is keyed by it
            return super()._short_bind(source, target, read_only, options)
        bind_mode = [o for o in options if o not in ("delegated", "cached", "consistent", "nocopy")]
        self.binds[host] = {"bind": target, "mode": ",".join(bind_mode) or "rw"}
        return None

    def _short_named(
        self, source: str, target: str, read_only: bool, options: list[str], where: str
    ) -> dict[str, Any]:
        mount = super()._short_named(source, target, read_only, options, where)
        for option in options:
            if option in ("z", "Z") or option in PROPAGATION:
                self.warn(f"{where} option {option!r}", "it applies to bind mounts only")
        return mount

    def _propagation(self, value: Any) -> str | None:
        # the engine backend passes on only a propagation it knows
        return value if value and value in PROPAGATION else None

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

    def _restart(self, value: Any) -> None:
        if value is None:
            return
        name, count = self._restart_parts(value)
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
        condition = self._restart_condition(body)
        name = _CONDITIONS[condition]
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
        check = self._healthcheck_spec(value, "30s or 1m30s")
        if check is not None:
            self.kwargs["healthcheck"] = check

    def _tmpfs(self, value: Any) -> None:
        out: dict[str, str] = {}
        for item in string_list(value):
            path, _, options = item.partition(":")
            out[path] = options
        if out:
            self.kwargs["tmpfs"] = out

    def _stop_grace_period(self, value: Any) -> None:
        if value is None:
            return
        nanoseconds = self._duration(value, "stop_grace_period", "10s")
        self.stop_timeout = int(nanoseconds / 1_000_000_000)

    def _logging(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        self.kwargs["log_config"] = {
            "Type": text(value.get("driver") or ""),
            "Config": str_map(value.get("options")),
        }

    def _ulimits(self, value: Any) -> None:
        limits = ulimit_list(value)
        if limits:
            self.kwargs["ulimits"] = limits

    def _sysctls(self, value: Any) -> None:
        sysctls = sysctl_map(value)
        if sysctls:
            self.kwargs["sysctls"] = sysctls

    def _extra_hosts(self, value: Any) -> None:
        if isinstance(value, Mapping):
            hosts = [f"{k}:{text(v)}" for k, v in value.items()]
        else:
            hosts = string_list(value)
        if hosts:
            self.kwargs["extra_hosts"] = hosts

    def _shm_size(self, value: Any) -> None:
        if value is not None:
            self.kwargs["shm_size"] = self._bytes(value, "shm_size")
