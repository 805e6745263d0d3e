"""The engine backend: a stack as plain containers on one Docker Engine.

Secrets reach containers only through memory: per container, a 0700 directory on a tmpfs
with one file per reference (uid/gid/mode applied), bind-mounted read-only at the target.
Containers carry labels that let a later run find them, compare their configuration hash
and clean up. Every Docker SDK error is translated into :mod:`composesecrets.errors` here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import secrets as token_source
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from composesecrets.backends import (
    ContainerInfo,
    DeployRequest,
    DeployResult,
    Progress,
    RemoveResult,
    ServiceSecrets,
)
from composesecrets.backends import delivery as tmpfs
from composesecrets.backends.containerspec import NetworkSpec, ServiceSpec, VolumeSpec
from composesecrets.errors import (
    BackendError,
    ComposeSecretsError,
    ConflictError,
    DeployFailedError,
    UsageError,
)

LABEL_STACK = "io.composesecrets.stack"
LABEL_SERVICE = "io.composesecrets.service"
LABEL_HASH = "io.composesecrets.config-hash"
LABEL_DIR = "io.composesecrets.secret-dir"
LABEL_TARGETS = "io.composesecrets.secrets"
LABEL_REPLICAS = "io.composesecrets.replicas"
LABEL_BACKEND = "io.composesecrets.backend"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_STOP = "io.composesecrets.stop-timeout"
STOP_WORKERS = 64
WORKERS = 16  # engine calls are I/O bound; stops wait out grace periods in parallel

T = TypeVar("T")


def _docker() -> Any:
    import docker

    return docker


def is_local_daemon(environ: Mapping[str, str] | None = None) -> bool:
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn Docker SDK / transport errors into BackendError with the engine's reason."""
    docker = _docker()
    try:
        yield
    except ComposeSecretsError:
        raise
    except docker.errors.NotFound as exc:
        raise BackendError(f"{what}: {_reason(exc)}") from None
    except docker.errors.APIError as exc:
        raise BackendError(f"{what}: {_reason(exc)}") from None
    except docker.errors.DockerException as exc:
        raise BackendError(
            f"{what}: cannot talk to the Docker Engine ({exc})",
            hint="is dockerd running? check `docker info` (developers: `make engine`)",
        ) from None
    except OSError as exc:
        raise BackendError(f"{what}: {exc}") from None


def _reason(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc).strip()


class LazyClient:
    """A backend's Docker SDK client: the one it was given, else one made from the
    environment on first use (and pinged, so that an unreachable engine fails at once)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            with translated("connecting to the Docker Engine"):
                self._client = _docker().from_env(timeout=120, max_pool_size=STOP_WORKERS)
                self._client.ping()
        return self._client


def deploy_failed(stack: str, exc: ComposeSecretsError) -> DeployFailedError:
    """The error of a deploy of ``stack`` that failed with ``exc`` and was undone."""
    return DeployFailedError(
        f"deploy of stack {stack} failed: {exc.message}; the changes of this run were undone",
        hint=exc.hint,
    )


@dataclass
class _Desired:
    name: str
    service: ServiceSpec
    number: int
    config_hash: str
    secrets: ServiceSecrets


@dataclass
class _Run:
    """What this deploy changed, so that a failure can be undone."""

    created_containers: list[Any] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    created_networks: list[Any] = field(default_factory=list)
    stopped: list[Any] = field(default_factory=list)  # old containers stopped for a replacement
    lock: threading.Lock = field(default_factory=threading.Lock)


class EngineBackend(LazyClient):
    """Stacks as labelled containers on a single Docker Engine."""

    name = "engine"

    # ------------------------------------------------------------------ queries
    def _stack_containers(self, stack: str) -> list[Any]:
        with translated(f"listing containers of stack {stack}"):
            found: list[Any] = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_STACK}={stack}"}
            )
        return found

    def containers(self, stack: str) -> list[ContainerInfo]:
        out = []
        for c in self._stack_containers(stack):
            labels = c.labels or {}
            out.append(
                ContainerInfo(
                    name=c.name,
                    service=labels.get(LABEL_SERVICE, ""),
                    image=(c.attrs.get("Config") or {}).get("Image", ""),
                    state=c.status,
                    secrets=tuple(json.loads(labels.get(LABEL_TARGETS, "[]"))),
                    id=c.id,
                )
            )
        return sorted(out, key=lambda i: i.name)

    def stacks(self) -> list[str]:
        with translated("listing stacks"):
            found = self.client.containers.list(all=True, filters={"label": LABEL_STACK})
            nets = self.client.networks.list(filters={"label": LABEL_STACK})
        names = {c.labels.get(LABEL_STACK) for c in found} | {
            n.attrs.get("Labels", {}).get(LABEL_STACK) for n in nets
        }
        return sorted(n for n in names if n)

    # ------------------------------------------------------------------ deploy
    def _desired(self, request: DeployRequest) -> list[_Desired]:
        out = []
        for name, spec in request.services.items():
            secrets = request.secrets.get(name, ServiceSecrets((), ()))
            material = json.dumps(
                {
                    "spec": spec.fingerprint,
                    "secrets": [[f.target, f.uid, f.gid, f.mode] for f in secrets.files],
                    "versions": list(secrets.versions),
                    "delivery": request.delivery,
                },
                sort_keys=True,
            )
            config_hash = hashlib.sha256(material.encode()).hexdigest()
            for number in range(1, spec.replicas + 1):
                out.append(
                    _Desired(f"{request.stack}_{name}_{number}", spec, number, config_hash, secrets)
                )
        return out

    def warnings(self, request: DeployRequest) -> list[str]:
        notes = [w for spec in request.services.values() for w in spec.warnings]
        notes += [w for net in request.networks.values() for w in net.warnings]
        return notes + [w for vol in request.volumes.values() for w in vol.warnings]

    def preflight(self, request: DeployRequest) -> None:
        if request.delivery == "tmpfs" and not is_local_daemon():
            raise UsageError(
                "the Docker Engine is not local (DOCKER_HOST points elsewhere), so secret files "
                "on this machine's tmpfs cannot be mounted into its containers",
                hint="use the Swarm backend for remote engines, or --secret-delivery copy "
                "(plaintext then sits in each container's writable layer on that host)",
            )
        client = self.client
        images = {spec.image: name for name, spec in request.services.items() if spec.replicas}
        docker = _docker()
        for image, service in images.items():
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                self._pull(image, service)
            except docker.errors.APIError as exc:
                raise BackendError(f'service "{service}": image {image}: {_reason(exc)}') from None
        with translated("checking names on the engine"):
            for want in self._desired(request):
                try:
                    other = client.containers.get(want.name)
                except docker.errors.NotFound:
                    continue
                owner = (other.labels or {}).get(LABEL_STACK)
                if owner != request.stack:
                    where = f'stack "{owner}"' if owner else "no composesecrets stack"
                    raise ConflictError(
                        f"a container named {want.name} already exists and belongs to {where}",
                        hint="remove or rename it, or deploy under another stack name",
                    )
            for net in request.networks.values():
                if net.external:
                    try:
                        client.networks.get(net.name)
                    except docker.errors.NotFound:
                        raise BackendError(
                            f"external network {net.name} does not exist",
                            hint=f"create it first: docker network create {net.name}",
                        ) from None
                    continue
                for found in client.networks.list(names=[net.name]):
                    owner = (found.attrs.get("Labels") or {}).get(LABEL_STACK)
                    if found.name == net.name and owner != request.stack:
                        raise ConflictError(
                            f"a network named {net.name} already exists outside this stack",
                            hint="remove it, or deploy under another stack name",
                        )

    def _pull(self, image: str, service: str) -> None:
        docker = _docker()
        try:
            self.client.images.pull(image)
        except docker.errors.DockerException as exc:
            raise BackendError(
                f'service "{service}": image {image} is not on this engine and cannot be '
                f"pulled: {_reason(exc)}",
                hint="build or load the image first (docker build / docker load / docker import)",
            ) from None

    def deploy(self, request: DeployRequest, progress: Progress) -> DeployResult:
        run = _Run()
        root = tmpfs.runtime_root() if request.delivery == "tmpfs" else None
        existing = {c.name: c for c in self._stack_containers(request.stack)}
        for name in [n for n in existing if n.endswith("-next")]:
            # a replacement left behind by an interrupted run: never started as the real one
            progress(name, "removing leftover")
            self._retire(existing.pop(name), root)
        desired = self._desired(request)
        try:
            networks_created = self._networks(request, run, progress)
            self._volumes(request, progress)
            created: list[str] = []
            recreated: list[str] = []
            unchanged: list[str] = []
            outcomes = {"created": created, "recreated": recreated, "unchanged": unchanged}
            for level in _levels(request.services):
                # services of a level in parallel; the replicas of one service one at a time,
                # so that a replacement is running before the next old replica stops
                def replicas(service: str) -> list[tuple[str, str]]:
                    return [
                        (
                            d.name,
                            self._converge(request, d, existing.get(d.name), root, run, progress),
                        )
                        for d in desired
                        if d.service.name == service
                    ]

                jobs = [functools.partial(replicas, name) for name in sorted(level)]
                for done in _parallel(jobs):
                    for name, outcome in done:
                        outcomes[outcome].append(name)
            self._check_running(request, run)
        except ComposeSecretsError as exc:
            self._undo(run, progress)
            raise deploy_failed(request.stack, exc) from None
        removed = self._remove_extra(desired, existing, root, progress)
        self._remove_unused_networks(request, progress)
        return DeployResult(
            request.stack,
            tuple(created),
            tuple(recreated),
            tuple(unchanged),
            tuple(removed),
            tuple(networks_created),
        )

    def _networks(self, request: DeployRequest, run: _Run, progress: Progress) -> list[str]:
        made = []
        client = self.client
        for net in request.networks.values():
            if net.external:
                continue
            with translated(f"network {net.name}"):
                if any(n.name == net.name for n in client.networks.list(names=[net.name])):
                    continue
                progress(net.name, "creating network")
                created = client.networks.create(
                    net.name,
                    driver=net.driver,
                    options=dict(net.options) or None,
                    internal=net.internal,
                    attachable=net.attachable,
                    labels={
                        **net.labels,
                        LABEL_STACK: request.stack,
                        "com.docker.compose.project": request.stack,
                        "com.docker.compose.network": net.key,
                    },
                    check_duplicate=True,
                )
            run.created_networks.append(created)
            made.append(net.name)
        return made

    def _volumes(self, request: DeployRequest, progress: Progress) -> None:
        client = self.client
        docker = _docker()
        for vol in request.volumes.values():
            if vol.external:
                continue
            with translated(f"volume {vol.name}"):
                try:
                    client.volumes.get(vol.name)
                    continue
                except docker.errors.NotFound:
                    pass
                progress(vol.name, "creating volume")
                client.volumes.create(
                    vol.name,
                    driver=vol.driver or "local",
                    driver_opts=dict(vol.driver_opts) or None,
                    labels={
                        **vol.labels,
                        LABEL_STACK: request.stack,
                        "com.docker.compose.project": request.stack,
                        "com.docker.compose.volume": vol.key,
                    },
                )

    def _converge(
        self,
        request: DeployRequest,
        want: _Desired,
        current: Any,
        root: Path | None,
        run: _Run,
        progress: Progress,
    ) -> str:
        """Bring one replica to the wanted state: 'created', 'recreated' or 'unchanged'."""
        if current is not None and (current.labels or {}).get(LABEL_HASH) == want.config_hash:
            if current.status != "running":
                # e.g. after a daemon or host restart: secret files may be gone with the tmpfs
                progress(want.name, "starting")
                directory = self._dir_of(current, root)
                if directory is not None:
                    tmpfs.write_container_files(directory, want.secrets.files)
                with translated(f'service "{want.service.name}": starting {want.name}'):
                    current.start()
            return "unchanged"
        if current is None:
            progress(want.name, "creating")
            container = self._create(request, want, want.name, root, run)
            self._start(want, container)
            return "created"
        progress(want.name, "replacing")
        if _publishes_ports(want.service):
            # the host port is taken by the old container: stop it first, restart it on failure
            with translated(f"stopping {want.name}"):
                current.stop(timeout=_stop_timeout(want.service))
            with run.lock:
                run.stopped.append(current)
            new = self._create(request, want, f"{want.name}-next", root, run)
            self._start(want, new)
        else:
            new = self._create(request, want, f"{want.name}-next", root, run)
            self._start(want, new)
            with translated(f"stopping {want.name}"):
                current.stop(timeout=_stop_timeout(want.service))
        self._retire(current, root)
        with translated(f"renaming {want.name}-next"):
            new.rename(want.name)
        return "recreated"

    def _dir_of(self, container: Any, root: Path | None) -> Path | None:
        labels: dict[str, str] = container.labels or {}
        token, stack = labels.get(LABEL_DIR), labels.get(LABEL_STACK, "")
        if root is None or not token:
            return None
        return tmpfs.stack_directory(root, stack) / token

    def _create(
        self, request: DeployRequest, want: _Desired, name: str, root: Path | None, run: _Run
    ) -> Any:
        docker = _docker()
        spec = want.service
        token = token_source.token_hex(8)
        kwargs = dict(spec.create_kwargs)
        mounts = list(kwargs.pop("mounts", []) or [])
        directory: Path | None = None
        if root is not None and want.secrets.files:
            directory = tmpfs.stack_directory(root, request.stack) / token
            placed = tmpfs.write_container_files(directory, want.secrets.files)
            with run.lock:
                run.created_dirs.append(directory)
            mounts += [
                docker.types.Mount(target=target, source=str(path), type="bind", read_only=True)
                for target, path in placed.items()
            ]
        networks = list(spec.networks.items())
        labels = {
            **spec.labels,
            "com.docker.compose.project": request.stack,
            "com.docker.compose.service": spec.name,
            LABEL_NUMBER: str(want.number),
            LABEL_STACK: request.stack,
            LABEL_SERVICE: spec.name,
            LABEL_HASH: want.config_hash,
            LABEL_DIR: token,
            LABEL_TARGETS: json.dumps([f.target for f in want.secrets.files]),
            LABEL_REPLICAS: str(spec.replicas),
            LABEL_BACKEND: self.name,
            LABEL_STOP: str(_stop_timeout(spec)),
        }
        extra: dict[str, Any] = {}
        if networks:
            first, aliases = networks[0]
            extra["network"] = first
            extra["networking_config"] = {
                first: self.client.api.create_endpoint_config(aliases=list(aliases))
            }
        with translated(f'service "{spec.name}": creating container {name}'):
            container = self.client.containers.create(
                spec.image,
                name=name,
                labels=labels,
                mounts=mounts or None,
                **extra,
                **kwargs,
            )
        with run.lock:
            run.created_containers.append(container)
        with translated(f'service "{spec.name}": connecting {name} to its networks'):
            for net_name, aliases in networks[1:]:
                self.client.networks.get(net_name).connect(container, aliases=list(aliases))
        if root is None and want.secrets.files:
            self._copy_in(container, want.secrets.files)
        return container

    def _copy_in(self, container: Any, files: Sequence[tmpfs.SecretFile]) -> None:
        """--secret-delivery copy: a tar made in memory, extracted by the engine before start."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for item in files:
                info = tarfile.TarInfo(item.target.lstrip("/"))
                info.size = len(item.value)
                info.uid, info.gid, info.mode = item.uid, item.gid, item.mode
                tar.addfile(info, io.BytesIO(item.value))
        with translated(f"copying secrets into {container.name}"):
            container.put_archive("/", buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()

    def _start(self, want: _Desired, container: Any) -> None:
        with translated(f'service "{want.service.name}": starting {container.name}'):
            container.start()

    def _check_running(self, request: DeployRequest, run: _Run) -> None:
        for container in run.created_containers:
            with translated(f"checking {container.name}"):
                container.reload()
            state = container.attrs.get("State") or {}
            if state.get("Status") in ("exited", "dead") and state.get("ExitCode", 0) != 0:
                service = (container.labels or {}).get(LABEL_SERVICE, "?")
                raise BackendError(
                    f'service "{service}": container {container.name} exited with code '
                    f"{state.get('ExitCode')} right after starting "
                    f"({state.get('Error') or 'see docker logs ' + container.name})"
                )

    def _retire(self, container: Any, root: Path | None) -> None:
        directory = self._dir_of(container, root)
        with translated(f"removing {container.name}"):
            container.remove(force=True, v=True)  # anonymous volumes go too; named ones stay
        if directory is not None:
            tmpfs.remove_directory(directory)

    def _undo(self, run: _Run, progress: Progress) -> None:
        quiet = contextlib.suppress(_docker().errors.DockerException)
        for container in reversed(run.created_containers):
            progress(container.name, "removing (undo)")
            with quiet:
                container.remove(force=True)
        for directory in run.created_dirs:
            tmpfs.remove_directory(directory)
            with contextlib.suppress(OSError):
                directory.parent.rmdir()  # the stack's directory, when nothing else is in it
        for container in run.stopped:
            with quiet:
                container.start()
        for network in run.created_networks:
            with quiet:
                network.remove()

    def _remove_extra(
        self,
        desired: Sequence[_Desired],
        existing: Mapping[str, Any],
        root: Path | None,
        progress: Progress,
    ) -> list[str]:
        keep = {d.name for d in desired}
        gone = []
        for name, container in existing.items():
            if name in keep:
                continue
            progress(name, "removing")
            self._retire(container, root)
            gone.append(name)
        return gone

    def _remove_unused_networks(self, request: DeployRequest, progress: Progress) -> None:
        wanted = {n.name for n in request.networks.values()}
        with translated("listing networks"):
            nets = self.client.networks.list(filters={"label": f"{LABEL_STACK}={request.stack}"})
        for net in nets:
            if net.name not in wanted:
                progress(net.name, "removing network")
                with translated(f"removing network {net.name}"):
                    net.remove()

    # ------------------------------------------------------------------ remove
    def remove(self, stack: str, progress: Progress) -> RemoveResult:
        containers = self._stack_containers(stack)
        root = tmpfs.runtime_root()

        def retire(container: Any) -> str:
            progress(container.name, "removing")
            timeout = int((container.labels or {}).get(LABEL_STOP) or 10)
            with translated(f"stopping {container.name}"):
                if container.status == "running":
                    container.stop(timeout=timeout)
            self._retire(container, root)
            return str(container.name)

        # stops mostly wait out grace periods: let them all wait at once
        names = _parallel([functools.partial(retire, c) for c in containers], STOP_WORKERS)
        with translated(f"removing networks of stack {stack}"):
            nets = self.client.networks.list(filters={"label": f"{LABEL_STACK}={stack}"})
            removed_nets = []
            for net in nets:
                progress(net.name, "removing network")
                net.remove()
                removed_nets.append(net.name)
        tmpfs.remove_directory(tmpfs.stack_directory(root, stack))
        return RemoveResult(stack, tuple(names), tuple(removed_nets))


def _publishes_ports(spec: ServiceSpec) -> bool:
    ports = spec.create_kwargs.get("ports") or {}
    return any(v is not None for v in ports.values()) if isinstance(ports, Mapping) else bool(ports)


def _stop_timeout(spec: ServiceSpec) -> int:
    return spec.stop_timeout if spec.stop_timeout is not None else 10


def _levels(services: Mapping[str, ServiceSpec]) -> list[set[str]]:
    """Services grouped so that each group depends only on earlier groups."""
    remaining = {name: set(spec.depends_on) & set(services) for name, spec in services.items()}
    levels: list[set[str]] = []
    done: set[str] = set()
    while remaining:
        ready = {name for name, deps in remaining.items() if deps <= done}
        if not ready:
            cycle = ", ".join(sorted(remaining))
            raise UsageError(f"depends_on forms a cycle between services: {cycle}")
        levels.append(ready)
        done |= ready
        for name in ready:
            del remaining[name]
    return levels


def _parallel(jobs: Sequence[Callable[[], T]], workers: int = WORKERS) -> list[T]:
    """Run jobs on a thread pool; re-raise the first error after all have finished."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = [pool.submit(job) for job in jobs]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


__all__ = ["EngineBackend", "NetworkSpec", "VolumeSpec", "is_local_daemon"]
