"""Translate a normalised stack into Docker Swarm service specs. Pure: no Docker calls.

``docker stack deploy`` (docker/cli ``cli/compose/convert``) is the model: ``entrypoint``
becomes the ContainerSpec ``Command`` and ``command`` its ``Args``; services are named
``<stack>_<service>``; networks ``<stack>_<key>`` (overlay, attachable); named volumes
``<stack>_<key>`` with the stack label on the volume options; each network attachment
carries the service name as an alias.

The pieces are plain Engine-API data (the JSON the ``/services/create`` endpoint takes), so
the low-level SDK calls ``create_service``/``update_service`` accept them as they are and
their canonical JSON can be hashed. Secrets are left to the backend (it adds
``ContainerSpec.Secrets``). A key the Swarm backend does not apply is never dropped silently:
it becomes a warning naming the key and the service. ``x-`` keys are ignored.
"""

from __future__ import annotations

import os
import posixpath
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composesecrets import model
from composesecrets.backends.containerspec import (
    _PROPAGATION,
    _VOLUME_OPTIONS,
    DEFAULT_NETWORK,
    _engine_name,
    _is_path,
    _key_values,
    _short_port,
    _split_volume,
    _str_map,
    _string_list,
    _text,
    fingerprint,
    parse_bytes,
)
from composesecrets.compose import interpolate
from composesecrets.compose.formats import parse_go_duration
from composesecrets.errors import InputError, InvalidComposeError

__all__ = [
    "NAMESPACE_LABEL",
    "SwarmNetwork",
    "SwarmService",
    "stack_specs",
]

NAMESPACE_LABEL = "com.docker.stack.namespace"


@dataclass(frozen=True)
class SwarmNetwork:
    """A network the stack uses; ``name`` is its name on the swarm."""

    name: str
    key: str
    driver: str
    labels: dict[str, str]
    internal: bool
    attachable: bool
    external: bool
    options: dict[str, str]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SwarmService:
    """One service as Engine-API ServiceSpec pieces (secrets and our labels added later)."""

    key: str  # the compose service name
    name: str  # "<stack>_<key>"
    image: str
    task_template: dict[str, Any]  # ContainerSpec (no Secrets), Networks, Resources, ...
    mode: dict[str, Any]  # {"Replicated": {"Replicas": n}} or {"Global": {}}
    labels: dict[str, str]  # deploy.labels (service labels)
    update_config: dict[str, Any] | None = None
    rollback_config: dict[str, Any] | None = None
    endpoint_spec: dict[str, Any] | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def replicas(self) -> int | None:
        """The replica count; None in global mode."""
        replicated = self.mode.get("Replicated")
        return None if replicated is None else int(replicated.get("Replicas", 1))

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "image": self.image,
                "task_template": self.task_template,
                "mode": self.mode,
                "labels": self.labels,
                "update_config": self.update_config,
                "rollback_config": self.rollback_config,
                "endpoint_spec": self.endpoint_spec,
            }
        )


def stack_specs(
    stack: model.Stack, stack_name: str, *, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, SwarmService], dict[str, SwarmNetwork]]:
    """Services (keyed by compose name) and networks (keyed by compose key) of ``stack``.

    Raises :class:`InvalidComposeError` for what Swarm cannot run (no image, an undefined
    network or volume, a bad duration or size) and :class:`InputError` for an unreadable
    ``env_file``. ``environ`` (default: the process environment) fills ``environment``
    entries given without a value; unset ones are left out.
    """
    environ = os.environ if environ is None else environ
    top = model.plain(dict(stack.config))
    networks = _networks(top.get("networks"), stack_name)
    volumes = _volumes(top.get("volumes"), stack_name)
    services: dict[str, SwarmService] = {}
    for name, service in stack.services.items():
        body = model.plain(dict(service.config))
        services[name] = _Service(name, body, stack, stack_name, networks, volumes, environ).spec()
    default = f"{stack_name}_{DEFAULT_NETWORK}"
    uses_default = any(
        attachment["Target"] == default
        for spec in services.values()
        for attachment in spec.task_template.get("Networks", [])
    )
    if uses_default and DEFAULT_NETWORK not in networks:
        networks[DEFAULT_NETWORK] = SwarmNetwork(
            default, DEFAULT_NETWORK, "overlay", {}, False, True, False, {}
        )
    return services, networks


def _networks(raw: Any, stack_name: str) -> dict[str, SwarmNetwork]:
    out: dict[str, SwarmNetwork] = {}
    for key, value in (raw or {}).items() if isinstance(raw, Mapping) else ():
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        name, external = _engine_name(key, body, stack_name)
        warnings = []
        driver = str(body.get("driver") or "overlay")
        if "ipam" in body:
            warnings.append(f'network "{key}": ipam is not applied by the swarm backend')
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
            options=_str_map(body.get("driver_opts")),
            warnings=tuple(warnings),
        )
    return out


@dataclass(frozen=True)
class _Volume:
    name: str
    external: bool
    driver: str | None
    driver_opts: dict[str, str]
    labels: dict[str, str]


def _volumes(raw: Any, stack_name: str) -> dict[str, _Volume]:
    out: dict[str, _Volume] = {}
    for key, value in (raw or {}).items() if isinstance(raw, Mapping) else ():
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        name, external = _engine_name(key, body, stack_name)
        driver = body.get("driver")
        out[key] = _Volume(
            name,
            external,
            str(driver) if driver else None,
            _str_map(body.get("driver_opts")),
            model.labels_dict(body.get("labels")),
        )
    return out


# Keys a service may carry that the Swarm backend does not apply, with the reason.
NOT_APPLIED: dict[str, str] = {
    "build": "images are not built; the service must name an existing image",
    "container_name": "task containers are named by Swarm",
    "depends_on": "Swarm starts services without ordering",
    "links": "use the service name on a shared network instead",
    "external_links": "use a shared external network instead",
    "network_mode": "tasks join the stack's networks",
    "configs": "Swarm configs are not supported yet",
    "privileged": "Swarm services cannot be privileged",
    "devices": "Swarm services cannot map devices",
    "cgroup_parent": "not a Swarm service setting",
    "cgroupns_mode": "not a Swarm service setting",
    "userns_mode": "not a Swarm service setting",
    "ipc": "not a Swarm service setting",
    "pid": "not a Swarm service setting",
    "security_opt": "not a Swarm service setting",
    "shm_size": "not a Swarm service setting",
    "mac_address": "replicas would share one address",
    "expose": "container ports are reachable on the stack's networks without it",
}

_CONDITIONS = frozenset(("none", "on-failure", "any"))
_RESTART_TO_CONDITION = {"no": "none", "always": "any", "unless-stopped": "any"}


class _Service:
    """Translates one service; warnings in compose-key order."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        stack: model.Stack,
        stack_name: str,
        networks: Mapping[str, SwarmNetwork],
        volumes: Mapping[str, _Volume],
        environ: Mapping[str, str],
    ) -> None:
        self.name = name
        self.config = config
        self.stack = stack
        self.stack_name = stack_name
        self.stack_networks = networks
        self.volumes = volumes
        self.environ = environ
        self.container: dict[str, Any] = {}
        self.task: dict[str, Any] = {}
        self.mode: dict[str, Any] = {"Replicated": {"Replicas": 1}}
        self.labels: dict[str, str] = {}
        self.update_config: dict[str, Any] | None = None
        self.rollback_config: dict[str, Any] | None = None
        self.endpoint: dict[str, Any] = {}
        self.mounts: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def warn(self, key: str, reason: str = "unsupported key") -> None:
        self.warnings.append(
            f'service "{self.name}": {key} is not applied by the swarm backend: {reason}'
        )

    def invalid(self, message: str) -> InvalidComposeError:
        return InvalidComposeError(f'service "{self.name}": {message}')

    def spec(self) -> SwarmService:
        image = self.config.get("image")
        if not isinstance(image, str) or not image:
            raise self.invalid(
                "no image: the swarm backend does not build images; set image: to an existing image"
            )
        self.container["Image"] = image
        handlers = self._handlers()
        for key, value in self.config.items():
            if key.startswith("x-") or key in ("secrets", "image", "environment", "env_file"):
                continue
            if key in NOT_APPLIED:
                self.warn(key, NOT_APPLIED[key])
                continue
            handler = handlers.get(key)
            if handler is None:
                self.warn(key)
                continue
            handler(value)
        if "restart" in self.config and "RestartPolicy" not in self.task:
            self._restart(self.config["restart"])
        self._environment()
        if "networks" not in self.config:
            self._networks(None)
        if self.mounts:
            self.container["Mounts"] = self.mounts
        task = {"ContainerSpec": self.container, **self.task}
        return SwarmService(
            key=self.name,
            name=f"{self.stack_name}_{self.name}",
            image=image,
            task_template=task,
            mode=self.mode,
            labels=self.labels,
            update_config=self.update_config,
            rollback_config=self.rollback_config,
            endpoint_spec=self.endpoint or None,
            warnings=tuple(self.warnings),
        )

    def _handlers(self) -> dict[str, Callable[[Any], None]]:
        def direct(field: str, convert: Callable[[Any], Any]) -> Callable[[Any], None]:
            def handle(value: Any) -> None:
                if value is not None:
                    self.container[field] = convert(value)

            return handle

        return {
            "command": self._command("Args"),
            "entrypoint": self._command("Command"),
            "ports": self._ports,
            "networks": self._networks,
            "volumes": self._volumes,
            "tmpfs": self._tmpfs,
            "deploy": self._deploy,
            "restart": lambda _value: None,  # after deploy: restart_policy takes precedence
            "healthcheck": self._healthcheck,
            "stop_grace_period": self._stop_grace_period,
            "labels": direct("Labels", model.labels_dict),
            "logging": self._logging,
            "extra_hosts": self._extra_hosts,
            "dns": self._dns("Nameservers"),
            "dns_search": self._dns("Search"),
            "sysctls": direct("Sysctls", lambda v: {k: w or "" for k, w in _key_values(v).items()}),
            "ulimits": self._ulimits,
            "cap_add": direct("CapabilityAdd", _string_list),
            "cap_drop": direct("CapabilityDrop", _string_list),
            "user": direct("User", _text),
            "working_dir": direct("Dir", _text),
            "hostname": direct("Hostname", _text),
            "stop_signal": direct("StopSignal", _text),
            "read_only": direct("ReadOnly", bool),
            "init": direct("Init", bool),
            "tty": direct("TTY", bool),
            "stdin_open": direct("OpenStdin", bool),
        }

    # ------------------------------------------------------------------ container

    def _command(self, field: str) -> Callable[[Any], None]:
        def handle(value: Any) -> None:
            if value is None:
                return
            if isinstance(value, list):
                self.container[field] = [_text(v) for v in value]
                return
            try:
                self.container[field] = shlex.split(_text(value))
            except ValueError as exc:
                key = "entrypoint" if field == "Command" else "command"
                raise self.invalid(f"{key}: cannot split {value!r}: {exc}") from None

        return handle

    def _environment(self) -> None:
        env: dict[str, str] = {}
        working_dir = str(self.stack.working_dir)
        for item in _string_list(self.config.get("env_file")):
            path = Path(posixpath.join(working_dir, os.path.expanduser(item)))
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
            self.container["Env"] = sorted(f"{k}={v}" for k, v in env.items())

    def _duration(self, value: Any, where: str) -> int:
        try:
            return int(parse_go_duration(_text(value)))
        except ValueError:
            raise self.invalid(
                f"{where}: {value!r} is not a duration such as 10s or 1m30s"
            ) from None

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

    def _stop_grace_period(self, value: Any) -> None:
        if value is not None:
            self.container["StopGracePeriod"] = self._duration(value, "stop_grace_period")

    def _healthcheck(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        if value.get("disable"):
            self.container["Healthcheck"] = {"Test": ["NONE"]}
            return
        check: dict[str, Any] = {}
        test = value.get("test")
        if isinstance(test, str):
            check["Test"] = ["CMD-SHELL", test]
        elif isinstance(test, list):
            check["Test"] = [_text(t) for t in test]
        for key, api in (("interval", "Interval"), ("timeout", "Timeout"),
                         ("start_period", "StartPeriod")):  # fmt: skip
            if value.get(key) is not None:
                check[api] = self._duration(value[key], f"healthcheck.{key}")
        if value.get("retries") is not None:
            check["Retries"] = int(value["retries"])
        if "start_interval" in value:
            self.warn("healthcheck.start_interval", "it needs Docker Engine API 1.44")
        if check:
            self.container["Healthcheck"] = check

    def _logging(self, value: Any) -> None:
        if isinstance(value, Mapping):
            self.task["LogDriver"] = {
                "Name": _text(value.get("driver") or "json-file"),
                "Options": _str_map(value.get("options")),
            }

    def _extra_hosts(self, value: Any) -> None:
        if isinstance(value, Mapping):
            pairs = [(str(k), _text(v)) for k, v in value.items()]
        else:
            pairs = []
            for item in _string_list(value):
                host, _, address = item.partition(":")
                pairs.append((host, address))
        if pairs:
            # Swarm's format is "IP host" (like /etc/hosts), compose's "host:IP"
            self.container["Hosts"] = [f"{address} {host}" for host, address in pairs]

    def _dns(self, field: str) -> Callable[[Any], None]:
        def handle(value: Any) -> None:
            items = _string_list(value)
            if items:
                self.container.setdefault("DNSConfig", {})[field] = items

        return handle

    def _ulimits(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        limits = []
        for name, body in value.items():
            if isinstance(body, Mapping):
                soft, hard = int(body["soft"]), int(body["hard"])
            else:
                soft = hard = int(body)
            limits.append({"Name": str(name), "Soft": soft, "Hard": hard})
        if limits:
            self.container["Ulimits"] = limits

    # ------------------------------------------------------------------ ports and networks

    def _ports(self, value: Any) -> None:
        ports: list[dict[str, Any]] = []
        for item in value or []:
            if isinstance(item, Mapping):
                target = item.get("target")
                if target is None:
                    raise self.invalid(f"ports: {item!r} has no target")
                port: dict[str, Any] = {
                    "Protocol": str(item.get("protocol") or "tcp").lower(),
                    "TargetPort": int(target),
                    "PublishMode": str(item.get("mode") or "ingress"),
                }
                if item.get("published") is not None:
                    port["PublishedPort"] = int(_text(item["published"]))
                ports.append(port)
                continue
            for container, host_ip, host_port in _short_port(_text(item)):
                number, _, protocol = container.partition("/")
                if host_ip:
                    self.warn(f"ports {item!r} host IP", "Swarm publishes on every address")
                if "-" in host_port:
                    raise self.invalid(
                        f"ports: {item!r}: a range of published ports for one container port "
                        "is not supported by Swarm"
                    )
                entry: dict[str, Any] = {
                    "Protocol": protocol,
                    "TargetPort": int(number),
                    "PublishMode": "ingress",
                }
                if host_port:
                    entry["PublishedPort"] = int(host_port)
                ports.append(entry)
        if ports:
            self.endpoint["Ports"] = ports

    def _networks(self, value: Any) -> None:
        entries: dict[str, Any]
        if value is None:
            entries = {DEFAULT_NETWORK: None}
        elif isinstance(value, list):
            entries = {str(v): None for v in value}
        else:
            entries = dict(value)
        attachments = []
        for key, body in entries.items():
            spec = self.stack_networks.get(key)
            if spec is None and key != DEFAULT_NETWORK:
                raise self.invalid(
                    f'network "{key}" is not defined under the top-level networks: key'
                )
            aliases = [self.name]
            if isinstance(body, Mapping):
                for alias in body.get("aliases") or []:
                    if str(alias) not in aliases:
                        aliases.append(str(alias))
                for extra in ("ipv4_address", "ipv6_address", "driver_opts", "priority"):
                    if extra in body:
                        self.warn(f"networks.{key}.{extra}")
            name = spec.name if spec is not None else f"{self.stack_name}_{key}"
            attachments.append({"Target": name, "Aliases": aliases})
        self.task["Networks"] = attachments

    # ------------------------------------------------------------------ mounts

    def _volumes(self, value: Any) -> None:
        for index, item in enumerate(value or []):
            where = f"volumes[{index}]"
            if isinstance(item, Mapping):
                self.mounts.append(self._long_volume(item, where))
                continue
            source, target, mode = _split_volume(_text(item))
            self._check_target(target, where)
            options = [o for o in mode.split(",") if o] if mode else []
            unknown = [o for o in options if o not in _VOLUME_OPTIONS]
            if unknown:
                raise self.invalid(f"{where}: unknown volume option {unknown[0]!r} in {item!r}")
            read_only = "ro" in options
            if not source:
                self.mounts.append({"Type": "volume", "Target": target, "ReadOnly": read_only})
            elif _is_path(source):
                propagation = [o for o in options if o in _PROPAGATION]
                self.mounts.append(
                    self._bind(source, target, read_only, propagation[-1] if propagation else None)
                )
            else:
                self.mounts.append(
                    self._named(source, target, read_only, "nocopy" in options, where)
                )

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
            return self._bind(source, target, read_only, propagation)
        if kind == "volume":
            nocopy = bool((item.get("volume") or {}).get("nocopy"))
            if isinstance(source, str) and source:
                return self._named(source, target, read_only, nocopy, where)
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
        raise self.invalid(f'{where}: volume type "{kind}" is not supported by the swarm backend')

    def _check_target(self, target: str, where: str) -> None:
        if not target.startswith("/"):
            raise self.invalid(f'{where}: the target "{target}" must be an absolute path')

    def _bind(
        self, source: str, target: str, read_only: bool, propagation: str | None
    ) -> dict[str, Any]:
        host = posixpath.normpath(
            posixpath.join(str(self.stack.working_dir), os.path.expanduser(source))
        )
        mount: dict[str, Any] = {
            "Type": "bind",
            "Source": host,
            "Target": target,
            "ReadOnly": read_only,
        }
        if propagation:
            mount["BindOptions"] = {"Propagation": propagation}
        return mount

    def _named(
        self, key: str, target: str, read_only: bool, nocopy: bool, where: str
    ) -> dict[str, Any]:
        volume = self.volumes.get(key)
        if volume is None:
            raise self.invalid(
                f'{where}: volume "{key}" is not defined under the top-level volumes: key'
            )
        mount: dict[str, Any] = {
            "Type": "volume",
            "Source": volume.name,
            "Target": target,
            "ReadOnly": read_only,
        }
        options: dict[str, Any] = {}
        if nocopy:
            options["NoCopy"] = True
        if not volume.external:
            options["Labels"] = {**volume.labels, NAMESPACE_LABEL: self.stack_name}
            if volume.driver or volume.driver_opts:
                options["DriverConfig"] = {
                    "Name": volume.driver or "local",
                    "Options": volume.driver_opts,
                }
        if options:
            mount["VolumeOptions"] = options
        return mount

    def _tmpfs(self, value: Any) -> None:
        for item in _string_list(value):
            path, _, options = item.partition(":")
            self._check_target(path, "tmpfs")
            mount: dict[str, Any] = {"Type": "tmpfs", "Target": path}
            for option in (o for o in options.split(",") if o):
                name, _, arg = option.partition("=")
                if name == "size":
                    mount.setdefault("TmpfsOptions", {})["SizeBytes"] = self._bytes(
                        arg, "tmpfs size"
                    )
                elif name == "mode":
                    mount.setdefault("TmpfsOptions", {})["Mode"] = int(arg, 8)
                else:
                    self.warn(f"tmpfs option {option!r}")
            self.mounts.append(mount)

    # ------------------------------------------------------------------ deploy

    def _deploy(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        handlers: dict[str, Callable[[Any], None]] = {
            "mode": self._mode,
            "replicas": self._replicas,
            "placement": self._placement,
            "resources": self._resources,
            "restart_policy": self._restart_policy,
            "update_config": self._update("update_config"),
            "rollback_config": self._update("rollback_config"),
            "labels": lambda v: self.labels.update(model.labels_dict(v)),
            "endpoint_mode": lambda v: self.endpoint.update(Mode=_text(v)) if v else None,
        }
        for key, body in value.items():
            handler = handlers.get(key)
            if handler is None:
                self.warn(f"deploy.{key}")
            else:
                handler(body)
        if "Global" in self.mode and value.get("replicas") is not None:
            raise self.invalid("deploy.replicas cannot be used with deploy.mode global")

    def _mode(self, value: Any) -> None:
        if value in (None, "replicated"):
            return
        if value == "global":
            self.mode = {"Global": {}}
            return
        raise self.invalid(f'deploy.mode: "{value}" is not "replicated" or "global"')

    def _replicas(self, value: Any) -> None:
        if value is None:
            return
        replicas = int(value)
        if replicas < 0:
            raise self.invalid("deploy.replicas must not be negative")
        if "Replicated" in self.mode:
            self.mode = {"Replicated": {"Replicas": replicas}}

    def _placement(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        placement: dict[str, Any] = {}
        for key, body in value.items():
            if key == "constraints":
                placement["Constraints"] = _string_list(body)
            elif key == "preferences":
                placement["Preferences"] = [
                    {"Spread": {"SpreadDescriptor": _text(p.get("spread"))}}
                    for p in body or []
                    if isinstance(p, Mapping) and p.get("spread")
                ]
            elif key == "max_replicas_per_node":
                placement["MaxReplicas"] = int(body)
            else:
                self.warn(f"deploy.placement.{key}")
        if placement:
            self.task["Placement"] = placement

    def _resources(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        resources: dict[str, Any] = {}
        for part, body in value.items():
            if part not in ("limits", "reservations") or not isinstance(body, Mapping):
                self.warn(f"deploy.resources.{part}")
                continue
            out: dict[str, Any] = {}
            for key, item in body.items():
                where = f"deploy.resources.{part}.{key}"
                if item is None:
                    continue
                if key == "cpus":
                    out["NanoCPUs"] = self._nano_cpus(item, where)
                elif key == "memory":
                    out["MemoryBytes"] = self._bytes(item, where)
                elif key == "pids" and part == "limits":
                    out["Pids"] = int(item)
                elif key == "generic_resources" and part == "reservations":
                    out["GenericResources"] = [
                        {
                            "DiscreteResourceSpec": {
                                "Kind": _text(spec["discrete_resource_spec"].get("kind")),
                                "Value": int(spec["discrete_resource_spec"].get("value") or 0),
                            }
                        }
                        for spec in item or []
                        if isinstance(spec, Mapping)
                        and isinstance(spec.get("discrete_resource_spec"), Mapping)
                    ]
                else:
                    self.warn(where)
            if out:
                resources["Limits" if part == "limits" else "Reservations"] = out
        if resources:
            self.task["Resources"] = resources

    def _restart_policy(self, value: Any) -> None:
        body: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        condition = str(body.get("condition") or "any")
        if condition not in _CONDITIONS:
            raise self.invalid(
                f'deploy.restart_policy.condition: "{condition}" is not one of "none", '
                '"on-failure", "any"'
            )
        policy: dict[str, Any] = {"Condition": condition}
        for key, api in (("delay", "Delay"), ("window", "Window")):
            if body.get(key) is not None:
                policy[api] = self._duration(body[key], f"deploy.restart_policy.{key}")
        if body.get("max_attempts") is not None:
            policy["MaxAttempts"] = int(body["max_attempts"])
        self.task["RestartPolicy"] = policy
        if "restart" in self.config:
            self.warn("restart", "deploy.restart_policy takes precedence")

    def _restart(self, value: Any) -> None:
        if value is None:
            return
        text = _text(value)
        name, _, count = text.partition(":")
        if name == "on-failure" and (not count or count.isdigit()):
            policy: dict[str, Any] = {"Condition": "on-failure"}
            if count:
                policy["MaxAttempts"] = int(count)
        elif name in _RESTART_TO_CONDITION and not count:
            policy = {"Condition": _RESTART_TO_CONDITION[name]}
        else:
            raise self.invalid(
                f'restart: "{text}" is not one of "no", "always", "on-failure[:N]", '
                '"unless-stopped"'
            )
        self.task["RestartPolicy"] = policy

    def _update(self, key: str) -> Callable[[Any], None]:
        def handle(value: Any) -> None:
            if not isinstance(value, Mapping):
                return
            config: dict[str, Any] = {"Parallelism": 1}
            for name, body in value.items():
                where = f"deploy.{key}.{name}"
                if body is None:
                    continue
                if name == "parallelism":
                    config["Parallelism"] = int(body)
                elif name in ("delay", "monitor"):
                    config[name.capitalize()] = self._duration(body, where)
                elif name == "failure_action":
                    config["FailureAction"] = _text(body)
                elif name == "max_failure_ratio":
                    config["MaxFailureRatio"] = float(body)
                elif name == "order":
                    config["Order"] = _text(body)
                else:
                    self.warn(where)
            if key == "update_config":
                self.update_config = config
            else:
                self.rollback_config = config

        return handle
