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

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composesecrets import model
from composesecrets.backends.swarm.keys import NOT_APPLIED
from composesecrets.backends.swarm.networks import SwarmNetwork, SwarmVolume
from composesecrets.backends.swarm.networks import networks as make_networks
from composesecrets.backends.swarm.networks import volumes as make_volumes
from composesecrets.backends.translation import (
    DEFAULT_NETWORK,
    ServiceTranslator,
)
from composesecrets.backends.values import (
    fingerprint,
    short_port,
    str_map,
    string_list,
    sysctl_map,
    text,
    ulimit_list,
)
from composesecrets.docker_rules import LABEL_NAMESPACE

__all__ = [
    "SwarmNetwork",
    "SwarmService",
    "stack_specs",
]


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
    networks = make_networks(top.get("networks"), stack_name)
    volumes = make_volumes(top.get("volumes"), stack_name)
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


# restart: -> deploy.restart_policy.condition
_RESTART_TO_CONDITION = {
    "no": "none",
    "always": "any",
    "unless-stopped": "any",
    "on-failure": "on-failure",
}


class _Service(ServiceTranslator[SwarmNetwork, SwarmVolume]):
    """Translates one service; warnings in compose-key order."""

    backend = "swarm"
    not_applied = NOT_APPLIED

    def _start(self) -> None:
        self.container: dict[str, Any] = {}
        self.task: dict[str, Any] = {}
        self.mode: dict[str, Any] = {"Replicated": {"Replicas": 1}}
        self.labels: dict[str, str] = {}
        self.update_config: dict[str, Any] | None = None
        self.rollback_config: dict[str, Any] | None = None
        self.endpoint: dict[str, Any] = {}
        self.mounts: list[dict[str, Any]] = []

    def spec(self) -> SwarmService:
        image = self.image()
        self.container["Image"] = image
        self.apply(self._handlers(), ("secrets", "image", "environment", "env_file"))
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
            return self.direct(self.container, field, convert)

        return {
            "command": direct("Args", functools.partial(self._split_command, "command")),
            "entrypoint": direct("Command", functools.partial(self._split_command, "entrypoint")),
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
            "sysctls": direct("Sysctls", sysctl_map),
            "ulimits": self._ulimits,
            "cap_add": direct("CapabilityAdd", string_list),
            "cap_drop": direct("CapabilityDrop", string_list),
            "user": direct("User", text),
            "working_dir": direct("Dir", text),
            "hostname": direct("Hostname", text),
            "stop_signal": direct("StopSignal", text),
            "read_only": direct("ReadOnly", bool),
            "init": direct("Init", bool),
            "tty": direct("TTY", bool),
            "stdin_open": direct("OpenStdin", bool),
        }

    # ------------------------------------------------------------------ container

    def _environment(self) -> None:
        env = self._environment_map()
        if env:
            self.container["Env"] = sorted(f"{k}={v}" for k, v in env.items())

    def _stop_grace_period(self, value: Any) -> None:
        if value is not None:
            self.container["StopGracePeriod"] = self._duration(value, "stop_grace_period")

    def _healthcheck(self, value: Any) -> None:
        check = self._healthcheck_spec(value, "10s or 1m30s")
        if check is not None:
            self.container["Healthcheck"] = check

    def _logging(self, value: Any) -> None:
        if isinstance(value, Mapping):
            self.task["LogDriver"] = {
                "Name": text(value.get("driver") or "json-file"),
                "Options": str_map(value.get("options")),
            }

    def _extra_hosts(self, value: Any) -> None:
        if isinstance(value, Mapping):
            pairs = [(str(k), text(v)) for k, v in value.items()]
        else:
            pairs = []
            for item in string_list(value):
                host, _, address = item.partition(":")
                pairs.append((host, address))
        if pairs:
            # Swarm's format is "IP host" (like /etc/hosts), compose's "host:IP"
            self.container["Hosts"] = [f"{address} {host}" for host, address in pairs]

    def _dns(self, field: str) -> Callable[[Any], None]:
        def handle(value: Any) -> None:
            items = string_list(value)
            if items:
                self.container.setdefault("DNSConfig", {})[field] = items

        return handle

    def _ulimits(self, value: Any) -> None:
        limits = ulimit_list(value)
        if limits:
            self.container["Ulimits"] = limits

    # ------------------------------------------------------------------ ports and networks

    def _ports(self, value: Any) -> None:
        ports: list[dict[str, Any]] = []
        for item in value or []:
            if isinstance(item, Mapping):
                target = self._port_target(item)
                port: dict[str, Any] = {
                    "Protocol": str(item.get("protocol") or "tcp").lower(),
                    "TargetPort": target,
                    "PublishMode": str(item.get("mode") or "ingress"),
                }
                if item.get("published") is not None:
                    port["PublishedPort"] = int(text(item["published"]))
                ports.append(port)
                continue
            for container, host_ip, host_port in short_port(text(item)):
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
        extras = ("ipv4_address", "ipv6_address", "driver_opts", "priority")
        self.task["Networks"] = [
            {"Target": name, "Aliases": aliases}
            for name, aliases in self._attachments(value, extras)
        ]

    # ------------------------------------------------------------------ mounts

    def _volumes(self, value: Any) -> None:
        self.mounts.extend(self._mounts(value))

    def _named_mount(
        self, key: str, target: str, read_only: bool, nocopy: bool, where: str
    ) -> dict[str, Any]:
        volume = self._volume(key, where)
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
            options["Labels"] = {**volume.labels, LABEL_NAMESPACE: self.stack_name}
            if volume.driver or volume.driver_opts:
                options["DriverConfig"] = {
                    "Name": volume.driver or "local",
                    "Options": volume.driver_opts,
                }
        if options:
            mount["VolumeOptions"] = options
        return mount

    def _tmpfs(self, value: Any) -> None:
        for item in string_list(value):
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
            "endpoint_mode": lambda v: self.endpoint.update(Mode=text(v)) if v else None,
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
                placement["Constraints"] = string_list(body)
            elif key == "preferences":
                placement["Preferences"] = [
                    {"Spread": {"SpreadDescriptor": text(p.get("spread"))}}
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
                                "Kind": text(spec["discrete_resource_spec"].get("kind")),
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
        policy: dict[str, Any] = {"Condition": self._restart_condition(body)}
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
        name, count = self._restart_parts(value)
        policy: dict[str, Any] = {"Condition": _RESTART_TO_CONDITION[name]}
        if count:
            policy["MaxAttempts"] = int(count)
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
                    config["FailureAction"] = text(body)
                elif name == "max_failure_ratio":
                    config["MaxFailureRatio"] = float(body)
                elif name == "order":
                    config["Order"] = text(body)
                else:
                    self.warn(where)
            if key == "update_config":
                self.update_config = config
            else:
                self.rollback_config = config

        return handle
