"""An in-memory Docker Engine behind the docker SDK client surface the backends use.

``FakeDocker()`` is passed where a backend takes its client (``EngineBackend(FakeDocker())``,
``SwarmBackend(FakeDocker(swarm=True))``), so that the real backend code runs in unit tests:
containers (create/start/stop/kill/rename/remove/reload/put_archive), networks, volumes, images,
and the low-level ``client.api`` calls of the Swarm backend (services, tasks, secrets,
configs, networks, containers, info). Errors are the SDK's own classes (``docker.errors.NotFound``,
``APIError`` with the engine's explanation, ``ImageNotFound``).

Tasks converge at once: creating or updating a service gives it running tasks with the new
ContainerSpec; the old ones are shut down. Failures are injected with :meth:`FakeDocker.fail`
(an API error on the next matching call) and :attr:`FakeDocker.exit_codes` (a container of
that image exits right after it starts). :attr:`FakeDocker.calls` records every mutating call
as ``(operation, object name)``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import os
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import requests

__all__ = ["FakeDocker"]

_ids = itertools.count(1)


def new_id() -> str:
    return f"{next(_ids):064x}"


def api_error(message: str, status: int = 500) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    cls = docker.errors.NotFound if status == 404 else docker.errors.APIError
    return cls(message, response=response, explanation=message)


def _label_match(labels: Mapping[str, str] | None, wanted: Any) -> bool:
    """Docker's ``label`` filter: ``key`` or ``key=value``, one or a list (all must match)."""
    labels = labels or {}
    for item in wanted if isinstance(wanted, list) else [wanted]:
        key, sep, value = str(item).partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


@dataclass
class Failure:
    operation: str
    name: str | None
    message: str
    times: int


class FakeContainer:
    def __init__(self, engine: FakeDocker, name: str, image: str, labels: dict[str, str],
                 kwargs: dict[str, Any]) -> None:  # fmt: skip
        self.engine = engine
        self.id = new_id()
        self.name = name
        self.image = image
        self.labels = dict(labels)
        self.kwargs = kwargs
        self.status = "created"
        self.exit_code = 0
        self.error = ""  # State.Error: why the last start failed
        self.manually_stopped = False  # Docker's HasBeenManuallyStopped (not in the API)
        self.networks: dict[str, list[str]] = {}
        self.archives: list[bytes] = []  # put_archive payloads (copy delivery)
        self.pid = 0  # State.Pid: its process on the host (tests point stopping.PROC at it)
        # stopped, its endpoints not yet released: Docker answers a stop once the state says
        # stopped and releases the network after that, under the container's lock, so
        # the next call that takes the lock (inspect, remove, start) waits until it is done
        self.pending_release = False

    @property
    def attrs(self) -> dict[str, Any]:
        policy = self.kwargs.get("restart_policy") or {"Name": "no"}
        return {
            "Config": {"Image": self.image, "Labels": dict(self.labels)},
            "State": {"Status": self.status, "Running": self.status == "running",
                      "ExitCode": self.exit_code, "Error": self.error, "Pid": self.pid},
            "HostConfig": {"RestartPolicy": {"MaximumRetryCount": 0, **policy}},
            "NetworkSettings": {"Networks": {name: {} for name in self.networks}},
        }  # fmt: skip

    def logs(self, tail: int | str = "all", **kwargs: Any) -> bytes:
        self._check("container.logs")
        lines = self.engine.log_lines.get(self.image, [])
        shown = lines if tail == "all" else lines[-int(tail):] if int(tail) else []
        return "".join(f"{line}\n" for line in shown).encode()

    def _check(self, operation: str) -> None:
        self.engine._call(operation, self.name)
        if self.engine.containers_by_id.get(self.id) is not self:
            raise api_error(f"No such container: {self.name}", 404)

    def settle(self) -> None:
        """Dockerd's clean-up after the exit is done (what waiting for the lock means)."""
        if self.pending_release:
            self.pending_release = False
            self.engine.endpoints_changed(self)

    def start(self) -> None:
        self._check("container.start")
        self.settle()
        time.sleep(self.engine.slow_starts.get(self.image, 0.0))
        self.manually_stopped = False
        self._run()
        if self.status == "running":
            self.engine.endpoints_changed(self)  # its endpoints are made at start

    def _run(self) -> None:
        """Start the process: fails like the engine when a bind-mount source is gone."""
        for mount in self.kwargs.get("mounts") or []:
            if mount.get("Type") == "bind" and not os.path.exists(mount["Source"]):
                self.status, self.exit_code = "exited", 127
                self.error = (f'error mounting "{mount["Source"]}" to rootfs at '
                              f'"{mount["Target"]}": no such file or directory')  # fmt: skip
                raise api_error(self.error)
        self.error = ""
        code = self.engine.exit_codes.get(self.image)
        if code is None:
            self.status = "running"
        else:
            self.status, self.exit_code = "exited", code

    def stop(self, timeout: int = 10) -> None:
        self._check("container.stop")
        self.engine.stop_timeouts[self.name] = timeout
        if self.status == "running" and self.image in self.engine.slow_stops:
            time.sleep(self.engine.slow_stops[self.image])  # waits out its grace period
        if self.status == "running":
            self.status, self.exit_code = "exited", 143
            self.manually_stopped = True
            self.pending_release = True  # released after the answer: see pending_release

    def remove(self, force: bool = False, v: bool = False) -> None:
        self._check("container.remove")
        if self.status == "running" and not force:
            raise api_error(f"cannot remove running container {self.name}", 409)
        self.settle()
        if self.status == "running":
            self.engine.endpoints_changed(self)
        del self.engine.containers_by_id[self.id]
        for net in self.engine.networks_by_id.values():
            net.endpoints.discard(self.id)

    def rename(self, name: str) -> None:
        self._check("container.rename")
        if self.engine.find_container(name) is not None:
            raise api_error(f'Conflict. The container name "/{name}" is already in use', 409)
        if self.status == "running":
            # Docker 20.10 rewrites each network's endpoint count from a copy read when the
            # rename began: a change of another endpoint meanwhile is lost (one too many)
            nets = [n for n in self.engine.networks_by_id.values() if n.name in self.networks]
            before = [net.changes for net in nets]
            time.sleep(self.engine.rename_window)
            releasing = [c for c in list(self.engine.containers_by_id.values())
                         if c.pending_release]  # fmt: skip
            for net, seen in zip(nets, before, strict=True):
                racing = any(net.name in c.networks for c in releasing)
                net.phantoms += net.changes != seen or racing
        self.name = name

    def reload(self) -> None:
        self._check("container.reload")
        self.settle()

    def put_archive(self, path: str, data: bytes) -> bool:
        self._check("container.put_archive")
        self.archives.append(bytes(data))
        return True

    def kill(self, signal: str | int | None = None) -> None:
        self._check("container.kill")
        if self.status != "running":
            raise api_error(f"Cannot kill container: {self.name}: is not running", 409)
        self.engine.signals.append((self.name, signal))


class FakeNetwork:
    def __init__(self, engine: FakeDocker, name: str, driver: str, labels: dict[str, str],
                 options: dict[str, Any]) -> None:  # fmt: skip
        self.engine = engine
        self.id = new_id()
        self.name = name
        self.driver = driver
        self.labels = dict(labels)
        self.options = options
        self.endpoints: set[str] = set()  # container ids
        # endpoints the daemon still holds for removed containers (by container name): not
        # listed in "Containers", yet removal answers "has active endpoints"
        self.stale: set[str] = set()
        self.changes = 0  # endpoints made or released (containers started, stopped...)
        self.phantoms = 0  # endpoints counted that no container holds (a lost update)

    @property
    def attrs(self) -> dict[str, Any]:
        containers = {cid: {"Name": self.engine.containers_by_id[cid].name}
                      for cid in self.endpoints if cid in self.engine.containers_by_id}
        return {"Id": self.id, "Name": self.name, "Driver": self.driver,
                "Labels": dict(self.labels), "Containers": containers}  # fmt: skip

    def reload(self) -> None:
        if self.id not in self.engine.networks_by_id:
            raise api_error(f"network {self.name} not found", 404)

    def disconnect(self, container: Any, force: bool = False) -> None:
        self.engine.disconnect(self, container, force)

    def connect(self, container: FakeContainer, aliases: list[str] | None = None) -> None:
        self.engine._call("network.connect", self.name)
        self.endpoints.add(container.id)
        container.networks[self.name] = list(aliases or [])
        if container.status == "running":
            self.changes += 1

    def remove(self) -> None:
        self.engine.remove_network(self.id)


class _Containers:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def list(self, all: bool = False, filters: Mapping[str, Any] | None = None,
             sparse: bool = False, ignore_removed: bool = False) -> list[Any]:  # fmt: skip
        self.engine.lists += 1
        found = [c for c in self.engine.containers_by_id.values() if all or c.status == "running"]
        if filters and "label" in filters:
            found = [c for c in found if _label_match(c.labels, filters["label"])]
        if not sparse:  # the SDK then inspects each container: one call per container
            self.engine.gets += len(found)
        return found

    def get(self, name: str) -> FakeContainer:
        self.engine.gets += 1
        found = self.engine.find_container(name)
        if found is None:
            raise api_error(f"No such container: {name}", 404)
        return found

    def create(self, image: str, name: str, labels: dict[str, str] | None = None,
               network: str | None = None, networking_config: Any = None,
               **kwargs: Any) -> FakeContainer:  # fmt: skip
        self.engine._call("container.create", name)
        if image not in self.engine.image_names:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        if self.engine.find_container(name) is not None:
            raise api_error(f'Conflict. The container name "/{name}" is already in use', 409)
        container = FakeContainer(self.engine, name, image, labels or {}, kwargs)
        self.engine.containers_by_id[container.id] = container
        if network is not None:  # attached as part of the create call
            aliases = ((networking_config or {}).get(network) or {}).get("Aliases") or []
            net = self.engine.network_named(network)
            net.endpoints.add(container.id)
            container.networks[net.name] = list(aliases)
        return container


class _Networks:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def list(self, names: Iterable[str] | None = None,
             filters: Mapping[str, Any] | None = None) -> list[FakeNetwork]:  # fmt: skip
        found = list(self.engine.networks_by_id.values())
        if names is not None:
            # like the engine: a name filter matches substrings
            found = [n for n in found if any(x in n.name for x in names)]
        if filters and "label" in filters:
            found = [n for n in found if _label_match(n.labels, filters["label"])]
        return found

    def get(self, name: str) -> FakeNetwork:
        return self.engine.network_named(name)

    def create(self, name: str, driver: str = "bridge", labels: dict[str, str] | None = None,
               **kwargs: Any) -> FakeNetwork:  # fmt: skip
        return self.engine.create_network(name, driver, labels or {}, kwargs)


class _Volumes:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.engine.volume_store:
            raise api_error(f"get {name}: no such volume", 404)
        return self.engine.volume_store[name]

    def create(self, name: str, **kwargs: Any) -> dict[str, Any]:
        self.engine._call("volume.create", name)
        self.engine.volume_store[name] = {"Name": name, **kwargs}
        return self.engine.volume_store[name]


class _Images:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def get(self, image: str) -> str:
        if image not in self.engine.image_names:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return image

    def pull(self, image: str) -> str:
        self.engine._call("image.pull", image)
        if image not in self.engine.pullable:
            raise api_error(f"pull access denied for {image}, repository does not exist", 404)
        self.engine.image_names.add(image)
        return image


@dataclass
class _Created:
    id: str


class _Secrets:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def create(self, name: str, data: bytes, labels: dict[str, str] | None = None) -> _Created:
        self.engine._call("secret.create", name)
        if any(s["Spec"]["Name"] == name for s in self.engine.secret_store.values()):
            raise api_error(f"rpc error: code = AlreadyExists desc = secret {name} already exists",
                            409)  # fmt: skip
        secret_id = new_id()[-25:]
        self.engine.secret_store[secret_id] = {
            "ID": secret_id,
            "Spec": {"Name": name, "Labels": dict(labels or {})},
        }
        self.engine.secret_data[secret_id] = bytes(data)
        return _Created(secret_id)


class _Configs:
    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def create(self, name: str, data: bytes, labels: dict[str, str] | None = None) -> _Created:
        self.engine._call("config.create", name)
        if any(c["Spec"]["Name"] == name for c in self.engine.config_store.values()):
            raise api_error(f"rpc error: code = AlreadyExists desc = config {name} already exists",
                            409)  # fmt: skip
        config_id = new_id()[-25:]
        self.engine.config_store[config_id] = {
            "ID": config_id,
            "Spec": {"Name": name, "Labels": dict(labels or {})},
        }
        self.engine.config_data[config_id] = bytes(data)
        return _Created(config_id)


class _Api:
    """The low-level ``APIClient`` calls of the Swarm backend (and one of the engine's)."""

    def __init__(self, engine: FakeDocker) -> None:
        self.engine = engine

    def create_endpoint_config(self, aliases: list[str] | None = None) -> dict[str, Any]:
        return {"Aliases": list(aliases or [])}

    def inspect_image(self, image: str) -> dict[str, Any]:
        if image not in self.engine.image_names:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return {
            "Id": self.engine.image_id(image),
            "RepoTags": [image],
            "RepoDigests": list(self.engine.repo_digests.get(image, [])),
        }

    # services and tasks
    def services(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        found = list(self.engine.service_store.values())
        if "label" in filters:
            found = [s for s in found if _label_match(s["Spec"].get("Labels"), filters["label"])]
        if "name" in filters:
            found = [s for s in found if filters["name"] in s["Spec"]["Name"]]
        if "id" in filters:
            ids = filters["id"] if isinstance(filters["id"], list) else [filters["id"]]
            found = [s for s in found if s["ID"] in ids]
        return copy.deepcopy(found)

    def inspect_service(self, service_id: str) -> dict[str, Any]:
        if service_id not in self.engine.service_store:
            raise api_error(f"service {service_id} not found", 404)
        return copy.deepcopy(self.engine.service_store[service_id])

    def create_service(self, task_template: dict[str, Any], name: str, **kwargs: Any
                       ) -> dict[str, Any]:  # fmt: skip
        self.engine._call("service.create", name)
        if any(s["Spec"]["Name"] == name for s in self.engine.service_store.values()):
            raise api_error(f"rpc error: code = AlreadyExists desc = name conflicts: {name}", 409)
        service_id = new_id()[-25:]
        service = {"ID": service_id, "Version": {"Index": 1}}
        service["Spec"] = self.engine.service_spec(task_template, name, kwargs)
        self.engine.service_store[service_id] = service
        self.engine.schedule(service)
        return {"ID": service_id}

    def update_service(self, service_id: str, version: int, task_template: dict[str, Any],
                       name: str, **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        self.engine._call("service.update", name)
        service = self.engine.service_store.get(service_id)
        if service is None:
            raise api_error(f"service {service_id} not found", 404)
        if service["Version"]["Index"] != version:
            raise api_error("rpc error: update out of sequence", 500)
        service["Version"]["Index"] += 1
        service["Spec"] = self.engine.service_spec(task_template, name, kwargs)
        self.engine.schedule(service)
        return {}

    def remove_service(self, service_id: str) -> bool:
        name = (self.engine.service_store.get(service_id) or {}).get("Spec", {}).get("Name")
        self.engine._call("service.remove", name)
        if self.engine.service_store.pop(service_id, None) is None:
            raise api_error(f"service {service_id} not found", 404)
        self.engine.tasks = [t for t in self.engine.tasks if t["ServiceID"] != service_id]
        for net in self.engine.networks_by_id.values():
            net.endpoints.discard(service_id)
        return True

    def tasks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        found = self.engine.tasks
        if "service" in filters:
            found = [t for t in found if t["ServiceID"] in filters["service"]]
        if "desired-state" in filters:
            found = [t for t in found if t["DesiredState"] == filters["desired-state"]]
        return copy.deepcopy(found)

    # secrets
    def secrets(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        found = list(self.engine.secret_store.values())
        if filters and "label" in filters:
            found = [s for s in found if _label_match(s["Spec"]["Labels"], filters["label"])]
        return copy.deepcopy(found)

    def remove_secret(self, secret_id: str) -> bool:
        secret = self.engine.secret_store.get(secret_id)
        self.engine._call("secret.remove", secret["Spec"]["Name"] if secret else None)
        if secret is None:
            raise api_error(f"secret {secret_id} not found", 404)
        if any(
            r.get("SecretID") == secret_id
            for s in self.engine.service_store.values()
            for r in s["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
        ):
            raise api_error(f"rpc error: secret '{secret['Spec']['Name']}' is in use", 400)
        del self.engine.secret_store[secret_id]
        self.engine.secret_data.pop(secret_id, None)
        return True

    # configs
    def configs(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        found = list(self.engine.config_store.values())
        if filters and "label" in filters:
            found = [c for c in found if _label_match(c["Spec"]["Labels"], filters["label"])]
        return copy.deepcopy(found)

    def remove_config(self, config_id: str) -> bool:
        config = self.engine.config_store.get(config_id)
        self.engine._call("config.remove", config["Spec"]["Name"] if config else None)
        if config is None:
            raise api_error(f"config {config_id} not found", 404)
        if any(
            r.get("ConfigID") == config_id
            for s in self.engine.service_store.values()
            for r in s["Spec"]["TaskTemplate"]["ContainerSpec"].get("Configs") or []
        ):
            raise api_error(f"rpc error: config '{config['Spec']['Name']}' is in use", 400)
        del self.engine.config_store[config_id]
        self.engine.config_data.pop(config_id, None)
        return True

    # networks
    def networks(self, names: Iterable[str] | None = None,
                 filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
        return [n.attrs for n in _Networks(self.engine).list(names=names, filters=filters)]

    def create_network(
        self, name: str, driver: str = "bridge", labels: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:  # fmt: skip
        return {"Id": self.engine.create_network(name, driver, labels or {}, kwargs).id}

    def remove_network(self, network_id: str) -> None:
        self.engine.remove_network(network_id)

    def disconnect_container_from_network(self, container: str, net_id: str,
                                          force: bool = False) -> None:  # fmt: skip
        self.engine.disconnect(self.engine.network_named(net_id), container, force)

    # containers as the list endpoint gives them (swarm tasks have none on this fake node)
    def containers(self, all: bool = False, filters: Mapping[str, Any] | None = None
                   ) -> list[dict[str, Any]]:  # fmt: skip
        found = _Containers(self.engine).list(all, filters)
        return [{"Id": c.id, "Names": [f"/{c.name}"], "Labels": dict(c.labels),
                 "State": c.status} for c in found]  # fmt: skip

    def stop(self, container_id: str, timeout: int | None = 10) -> None:
        found = self.engine.containers_by_id.get(container_id)
        if found is None:
            raise api_error(f"No such container: {container_id}", 404)
        found.stop(10 if timeout is None else timeout)

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        found = self.engine.containers_by_id.get(container_id)
        if found is None:
            raise api_error(f"No such container: {container_id}", 404)
        found.settle()
        return {"Id": found.id, **found.attrs}

    def remove_container(self, container_id: str, force: bool = False) -> None:
        raise api_error(f"No such container: {container_id}", 404)


@dataclass
class FakeDocker:
    """The fake engine and its client in one object (what ``docker.from_env()`` returns)."""

    swarm: bool = False  # an active single-node swarm manager
    image_names: set[str] = field(default_factory=lambda: {"busybox:test"})
    pullable: set[str] = field(default_factory=set)
    repo_digests: dict[str, list[str]] = field(default_factory=dict)  # image -> RepoDigests
    builds: dict[str, int] = field(default_factory=dict)  # image -> rebuilds (a new ID each)
    swarm_nodes: int = 1
    exit_codes: dict[str, int] = field(default_factory=dict)  # image -> exit code after start
    slow_stops: dict[str, float] = field(default_factory=dict)  # image -> seconds a stop takes
    slow_starts: dict[str, float] = field(default_factory=dict)  # image -> seconds a start takes
    rename_window: float = 0.0  # seconds a running container's rename takes (see rename)
    log_lines: dict[str, list[str]] = field(default_factory=dict)  # image -> its output
    containers_by_id: dict[str, FakeContainer] = field(default_factory=dict)
    networks_by_id: dict[str, FakeNetwork] = field(default_factory=dict)
    volume_store: dict[str, dict[str, Any]] = field(default_factory=dict)
    service_store: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    secret_store: dict[str, dict[str, Any]] = field(default_factory=dict)
    secret_data: dict[str, bytes] = field(default_factory=dict)
    config_store: dict[str, dict[str, Any]] = field(default_factory=dict)
    config_data: dict[str, bytes] = field(default_factory=dict)
    stop_timeouts: dict[str, int] = field(default_factory=dict)
    signals: list[tuple[str, str | int | None]] = field(default_factory=list)  # kill calls
    lists: int = 0  # containers.list calls
    gets: int = 0  # containers.get calls
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.containers = _Containers(self)
        self.networks = _Networks(self)
        self.volumes = _Volumes(self)
        self.images = _Images(self)
        self.secrets = _Secrets(self)
        self.configs = _Configs(self)
        self.api = _Api(self)

    # ------------------------------------------------------------------ test controls
    def fail(self, operation: str, name: str | None = None, message: str = "injected failure",
             times: int = 1) -> None:  # fmt: skip
        """The next ``times`` calls of ``operation`` (on ``name``, or any) raise APIError."""
        self.failures.append(Failure(operation, name, message, times))

    def _call(self, operation: str, name: str | None) -> None:
        with self.lock:
            self.calls.append((operation, name))
            for failure in self.failures:
                if failure.operation == operation and failure.name in (None, name):
                    failure.times -= 1
                    if failure.times <= 0:
                        self.failures.remove(failure)
                    raise api_error(failure.message)

    def ping(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        if not self.swarm:
            return {"Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False}}
        swarm = {"LocalNodeState": "active", "ControlAvailable": True, "Nodes": self.swarm_nodes}
        return {"Swarm": swarm}

    def image_id(self, name: str) -> str:
        """The ID of the image ``name`` (it changes when :attr:`builds` counts a rebuild)."""
        return "sha256:" + hashlib.sha256(f"{name}#{self.builds.get(name, 0)}".encode()).hexdigest()

    def image_named(self, reference: str) -> str:
        """The image name a reference means (a name, ``name@digest`` or an image ID)."""
        by_id = {self.image_id(name): name for name in self.image_names}
        return by_id.get(reference, reference.split("@")[0])

    # ------------------------------------------------------------------ shared state
    def find_container(self, name: str) -> FakeContainer | None:
        return next((c for c in self.containers_by_id.values() if c.name == name), None)

    def network_named(self, name: str) -> FakeNetwork:
        for net in self.networks_by_id.values():
            if name in (net.name, net.id):
                return net
        raise api_error(f"network {name} not found", 404)

    def create_network(self, name: str, driver: str, labels: dict[str, str],
                       options: dict[str, Any]) -> FakeNetwork:  # fmt: skip
        self._call("network.create", name)
        if any(n.name == name for n in self.networks_by_id.values()):
            raise api_error(f"network with name {name} already exists", 409)
        net = FakeNetwork(self, name, driver, labels, options)
        self.networks_by_id[net.id] = net
        return net

    def remove_network(self, network_id: str) -> None:
        net = self.networks_by_id.get(network_id) or next(
            (n for n in self.networks_by_id.values() if n.name == network_id), None
        )
        self._call("network.remove", net.name if net else network_id)
        if net is None:
            raise api_error(f"network {network_id} not found", 404)
        if net.endpoints or net.stale or net.phantoms:
            raise api_error(f"error while removing network: network {net.name} id {net.id} "
                            "has active endpoints", 403)  # fmt: skip
        del self.networks_by_id[net.id]

    def disconnect(self, net: FakeNetwork, container: Any, force: bool) -> None:
        """``network disconnect [-f]``: a stale endpoint (container gone) needs force."""
        name = container if isinstance(container, str) else container.name
        self._call("network.disconnect", f"{net.name}/{name}")
        live = self.find_container(name) or self.containers_by_id.get(name)
        if live is not None and live.id in net.endpoints:
            net.endpoints.discard(live.id)
            live.networks.pop(net.name, None)
            net.changes += live.status == "running"
        elif name in net.stale and force:
            net.stale.discard(name)
        else:
            raise api_error(f"container {name} is not connected to network {net.name}", 404)

    def endpoints_changed(self, container: FakeContainer) -> None:
        """``container`` made or released its endpoints (on each of its networks)."""
        with self.lock:
            for net in self.networks_by_id.values():
                net.changes += net.name in container.networks

    def leave_stale_endpoint(self, network: str, container: str) -> None:
        """The daemon keeps an endpoint of ``container`` on ``network`` after its removal
        (seen on Docker 20.10 after concurrent container removals)."""
        self.network_named(network).stale.add(container)

    def daemon_restart(self, lose: Iterable[str] = ()) -> None:
        """dockerd stops (running containers exit; ``lose``: paths removed meanwhile, e.g. the
        tmpfs) and starts again, restarting containers by Docker's rules: always; unless-stopped
        unless manually stopped; on-failure after a non-zero exit."""
        running = [c for c in self.containers_by_id.values() if c.status == "running"]
        for c in running:
            c.status, c.exit_code = "exited", 255
        for path in lose:
            shutil.rmtree(path, ignore_errors=True)
        for c in self.containers_by_id.values():
            policy = (c.kwargs.get("restart_policy") or {}).get("Name", "no")
            if (policy == "always"
                    or (policy == "unless-stopped" and not c.manually_stopped)
                    or (policy == "on-failure" and c.exit_code != 0)):  # fmt: skip
                with contextlib.suppress(docker.errors.APIError):
                    c._run()  # a failure: Docker logs it; the container keeps State.Error

    def service_spec(self, task_template: dict[str, Any], name: str,
                     kwargs: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
        return copy.deepcopy({
            "Name": name,
            "Labels": kwargs.get("labels") or {},
            "TaskTemplate": task_template,
            "Mode": kwargs.get("mode") or {"Replicated": {"Replicas": 1}},
            "UpdateConfig": kwargs.get("update_config"),
            "RollbackConfig": kwargs.get("rollback_config"),
            "EndpointSpec": kwargs.get("endpoint_spec"),
        })  # fmt: skip

    def schedule(self, service: dict[str, Any]) -> None:
        """Tasks converge at once: old ones shut down, new ones run (or fail: exit_codes)."""
        spec = service["Spec"]
        for task in self.tasks:
            if task["ServiceID"] == service["ID"]:
                task["DesiredState"] = "shutdown"
                task["Status"]["State"] = "shutdown"
        replicated = spec["Mode"].get("Replicated")
        count = int(replicated.get("Replicas", 1)) if replicated is not None else 1
        container = spec["TaskTemplate"]["ContainerSpec"]
        code = self.exit_codes.get(self.image_named(str(container.get("Image", ""))))
        for slot in range(1, count + 1):
            state = "running" if code is None else "failed"
            self.tasks.append({
                "ID": new_id()[-25:],
                "ServiceID": service["ID"],
                "Slot": slot,
                "DesiredState": "running",
                "Spec": {"ContainerSpec": copy.deepcopy(container)},
                "Status": {"State": state, "Err": "" if code is None else
                           f"task: non-zero exit ({code})",
                           "ContainerStatus": {"ContainerID": new_id()}},
            })  # fmt: skip
        for attachment in spec["TaskTemplate"].get("Networks") or []:
            for net in self.networks_by_id.values():
                if attachment.get("Target") in (net.name, net.id):
                    net.endpoints.add(service["ID"])

    # ------------------------------------------------------------------ views for asserts
    def container_names(self) -> list[str]:
        return sorted(c.name for c in self.containers_by_id.values())

    def network_names(self) -> list[str]:
        return sorted(n.name for n in self.networks_by_id.values())

    def service_names(self) -> list[str]:
        return sorted(s["Spec"]["Name"] for s in self.service_store.values())

    def secret_names(self) -> list[str]:
        return sorted(s["Spec"]["Name"] for s in self.secret_store.values())

    def config_names(self) -> list[str]:
        return sorted(c["Spec"]["Name"] for c in self.config_store.values())
