"""The engine backend: a stack as plain containers on one Docker Engine.

Secrets and configs reach containers only through memory: per container, a 0700 directory
on a tmpfs with one file per reference (uid/gid/mode applied), bind-mounted read-only at the
target.
Containers carry labels that let a later run find them, compare their configuration hash
and clean up. Every Docker SDK error is translated into :mod:`composesecrets.errors` here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets as token_source
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composesecrets.backends import (
    DeployRequest,
    DeployResult,
    Plan,
    Progress,
    RemoveResult,
)
from composesecrets.backends.docker_api import (
    LazyClient,
    deploy_failed,
    docker,
    is_running,
    list_containers,
    parallel,
    translated,
)
from composesecrets.backends.engine import inplace, preflight, teardown, tmpfs
from composesecrets.backends.engine import restore as restoring
from composesecrets.backends.engine.endpoints import EndpointGuard
from composesecrets.backends.engine.plan import EnginePlan, Replica, diff, make_plan
from composesecrets.backends.stopping import stop_container
from composesecrets.docker_rules import (
    LABEL_BACKEND,
    LABEL_COMPOSE_NETWORK,
    LABEL_COMPOSE_PROJECT,
    LABEL_COMPOSE_SERVICE,
    LABEL_COMPOSE_VOLUME,
    LABEL_CONTAINER_NUMBER,
    LABEL_DIR,
    LABEL_FILES,
    LABEL_HASH,
    LABEL_REPLICAS,
    LABEL_SERVICE,
    LABEL_STACK,
    LABEL_STOP,
    LABEL_TARGETS,
    LABEL_VERSIONS,
)
from composesecrets.errors import (
    BackendError,
    ComposeSecretsError,
    InternalError,
)
from composesecrets.model import SECRET

__all__ = ["EngineBackend", "EnginePlan"]


@dataclass
class _Run:
    """What this deploy changed, so that a failure can be undone."""

    created_containers: list[Any] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    created_networks: list[Any] = field(default_factory=list)
    stopped: list[Any] = field(default_factory=list)  # old containers stopped for a replacement
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoints: EndpointGuard = field(default_factory=EndpointGuard)  # renames go alone


LOG_LINES = 20  # of a container that failed a deploy, shown in the error


def _last_lines(container: Any, count: int) -> str:
    """The container's last ``count`` log lines (empty when the engine cannot tell)."""
    try:
        raw = container.logs(tail=count, stdout=True, stderr=True)
    except docker().errors.DockerException:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return "\n".join(f"  | {line}" for line in text.rstrip("\n").splitlines()[-count:])


class EngineBackend(LazyClient):
    """Stacks as labelled containers on a single Docker Engine."""

    name = "engine"

    # ------------------------------------------------------------------ queries
    def _stack_containers(self, stack: str, *, sparse: bool = False) -> list[Any]:
        """The stack's containers; ``sparse``: from one listing call (name, labels, image and
        status only) instead of one inspect per container."""
        with translated(f"listing containers of stack {stack}"):
            if sparse:
                return list_containers(self.client, {"label": f"{LABEL_STACK}={stack}"})
            found: list[Any] = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_STACK}={stack}"}
            )
        return found

    # ------------------------------------------------------------------ deploy
    def plan(self, request: DeployRequest) -> EnginePlan:
        return make_plan(request)

    @staticmethod
    def _own(plan: Plan) -> EnginePlan:
        if not isinstance(plan, EnginePlan):
            raise InternalError(f"the engine backend was given a {type(plan).__name__}")
        return plan

    def preflight(self, plan: Plan) -> None:
        preflight.check(lambda: self.client, self._own(plan))

    def diff(self, plan: Plan) -> DeployResult:
        plan = self._own(plan)
        found = self._stack_containers(plan.request.stack)
        hashes = {c.name: (c.labels or {}).get(LABEL_HASH, "") for c in found}
        in_place = [c for c in found if inplace.in_place_service(c.labels or {})]
        root = tmpfs.runtime_root() if in_place else None
        live = {c.name: inplace.versions_of(c, self._dir_of(c, root)) for c in in_place}
        with translated("listing networks"):
            present = {
                net.name
                for net in plan.networks.values()
                if any(n.name == net.name for n in self.client.networks.list(names=[net.name]))
            }
        return diff(plan, hashes, present, live)

    def deploy(self, plan: Plan, progress: Progress) -> DeployResult:
        plan = self._own(plan)
        request = plan.request
        run = _Run()
        root = tmpfs.runtime_root() if request.delivery == "tmpfs" else None
        existing = {c.name: c for c in self._stack_containers(request.stack, sparse=True)}
        for name in [n for n in existing if n.endswith("-next")]:
            # a replacement left behind by an interrupted run: never started as the real one
            progress(name, "removing leftover")
            self._retire(existing.pop(name), root)
        desired = plan.replicas()
        try:
            networks_created = self._networks(plan, run, progress)
            self._volumes(plan, progress)
            created: list[str] = []
            recreated: list[str] = []
            unchanged: list[str] = []
            rotated: list[str] = []
            started: list[str] = []
            outcomes = {"created": created, "recreated": recreated, "unchanged": unchanged,
                        "rotated": rotated, "started": started}  # fmt: skip
            for level in plan.levels:
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
                for done in parallel(jobs):
                    for name, outcome in done:
                        outcomes[outcome].append(name)
            self._check_running(run)
        except ComposeSecretsError as exc:
            self._undo(run, progress)
            raise deploy_failed(request.stack, exc) from None
        removed = self._remove_extra(desired, existing, root, progress)
        self._remove_unused_networks(plan, progress)
        return DeployResult(
            request.stack,
            tuple(created),
            tuple(recreated),
            tuple(unchanged),
            tuple(removed),
            tuple(networks_created),
            rotated=tuple(rotated),
            started=tuple(started),
        )

    def _networks(self, plan: EnginePlan, run: _Run, progress: Progress) -> list[str]:
        request = plan.request
        made = []
        client = self.client
        for net in plan.networks.values():
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
                        LABEL_COMPOSE_PROJECT: request.stack,
                        LABEL_COMPOSE_NETWORK: net.key,
                    },
                    check_duplicate=True,
                )
            run.created_networks.append(created)
            made.append(net.name)
        return made

    def _volumes(self, plan: EnginePlan, progress: Progress) -> None:
        request = plan.request
        client = self.client
        sdk = docker()
        for vol in plan.volumes.values():
            if vol.external:
                continue
            with translated(f"volume {vol.name}"):
                try:
                    client.volumes.get(vol.name)
                    continue
                except sdk.errors.NotFound:
                    pass
                progress(vol.name, "creating volume")
                client.volumes.create(
                    vol.name,
                    driver=vol.driver or "local",
                    driver_opts=dict(vol.driver_opts) or None,
                    labels={
                        **vol.labels,
                        LABEL_STACK: request.stack,
                        LABEL_COMPOSE_PROJECT: request.stack,
                        LABEL_COMPOSE_VOLUME: vol.key,
                    },
                )

    def _converge(
        self,
        request: DeployRequest,
        want: Replica,
        current: Any,
        root: Path | None,
        run: _Run,
        progress: Progress,
    ) -> str:
        """Bring one replica to the wanted state: 'created', 'recreated', 'started' (same
        configuration, was not running), 'rotated' (new secret versions written in place) or
        'unchanged'."""
        if current is not None and (current.labels or {}).get(LABEL_HASH) == want.config_hash:
            directory = self._dir_of(current, root)
            if current.status != "running":
                # e.g. after a daemon or host restart: secret files may be gone with the tmpfs
                progress(want.name, "starting")
                if directory is not None:
                    inplace.write_files(directory, want)
                self._start(want, current, run)
                return "started"
            if (
                want.in_place
                and directory is not None
                and inplace.rotate(current, want, directory, progress)
            ):
                return "rotated"
            return "unchanged"
        if current is None:
            progress(want.name, "creating")
            container = self._create(request, want, want.name, root, run)
            self._start(want, container, run)
            return "created"
        progress(want.name, "replacing")
        if want.publishes_ports:
            # the host port is taken by the old container: stop it first, restart it on failure
            self._stop_replaced(current, want, run, progress)
            with run.lock:
                run.stopped.append(current)
            new = self._create(request, want, f"{want.name}-next", root, run)
            self._start(want, new, run)
        else:
            new = self._create(request, want, f"{want.name}-next", root, run)
            self._start(want, new, run)
            self._stop_replaced(current, want, run, progress)
        with run.endpoints.changing():
            self._retire(current, root)
        # renamed while it runs: never while another container joins or leaves its networks
        with translated(f"renaming {want.name}-next"), run.endpoints.renaming():
            new.rename(want.name)
        return "recreated"

    def _stop_replaced(self, current: Any, want: Replica, run: _Run, progress: Progress) -> None:
        """Stop the container a replacement takes over from, until its endpoints are gone.

        Docker answers a stop as soon as the container's state says stopped, and releases
        its network endpoints after that while it holds the container's lock; an inspect
        waits for that lock. Both happen inside one endpoint change (see endpoints.py)."""
        api = self.client.api
        with translated(f"stopping {want.name}"), run.endpoints.changing():
            stop_container(api, current.id, want.name, want.stop_timeout, progress)
            api.inspect_container(current.id)

    @staticmethod
    def _dir_of(container: Any, root: Path | None) -> Path | None:
        return tmpfs.container_directory(root, container.labels or {})

    def _create(
        self, request: DeployRequest, want: Replica, name: str, root: Path | None, run: _Run
    ) -> Any:
        spec = want.service
        token = token_source.token_hex(8)
        kwargs = dict(spec.create_kwargs)
        mounts = list(kwargs.pop("mounts", []) or [])
        directory: Path | None = None
        if root is not None and want.secrets.files:
            directory = tmpfs.stack_directory(root, request.stack) / token
            with run.lock:
                run.created_dirs.append(directory)
            if want.in_place:  # one directory mount; targets are symlinks into it
                inplace.write_files(directory, want)
                mounts.append(inplace.mount(directory))
            else:
                placed = tmpfs.write_container_files(directory, want.secrets.files)
                mounts += [
                    docker().types.Mount(
                        target=target, source=str(path), type="bind", read_only=True
                    )
                    for target, path in placed.items()
                ]
        networks = list(spec.networks.items())
        labels = {
            **spec.labels,
            LABEL_COMPOSE_PROJECT: request.stack,
            LABEL_COMPOSE_SERVICE: spec.name,
            LABEL_CONTAINER_NUMBER: str(want.number),
            LABEL_STACK: request.stack,
            LABEL_SERVICE: spec.name,
            LABEL_HASH: want.config_hash,
            LABEL_DIR: token,
            LABEL_TARGETS: json.dumps([f.target for f in want.secrets.files if f.kind == SECRET]),
            LABEL_VERSIONS: json.dumps(want.versions),
            LABEL_FILES: restoring.files_label(want.secrets.files, want.secrets.versions),
            LABEL_REPLICAS: str(spec.replicas),
            LABEL_BACKEND: self.name,
            LABEL_STOP: str(want.stop_timeout),
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
        if directory is not None and want.in_place:
            inplace.install_links(container, want)
        if root is None and want.secrets.files:
            # --secret-delivery copy: extracted by the engine before the container starts
            with translated(f"copying secrets into {container.name}"):
                container.put_archive("/", tmpfs.secret_archive(want.secrets.files))
        return container

    def _start(self, want: Replica, container: Any, run: _Run) -> None:
        with (
            translated(f'service "{want.service.name}": starting {container.name}'),
            run.endpoints.changing(),
        ):
            container.start()

    def _check_running(self, run: _Run) -> None:
        """Fail when a started container exited with an error (one listing; an inspect of
        only those not running)."""
        if not run.created_containers:
            return
        stack = (run.created_containers[0].labels or {}).get(LABEL_STACK, "")
        with translated("checking the started containers"):
            found = list_containers(self.client, {"label": f"{LABEL_STACK}={stack}"})
        running = {c.id for c in found if is_running(c.attrs)}
        for container in [c for c in run.created_containers if c.id not in running]:
            with translated(f"checking {container.name}"):
                container.reload()
            state = container.attrs.get("State") or {}
            if state.get("Status") in ("exited", "dead") and state.get("ExitCode", 0) != 0:
                service = (container.labels or {}).get(LABEL_SERVICE, "?")
                # the rollback removes the container: keep its last words in the error
                tail = _last_lines(container, LOG_LINES)
                shown = f"; its last {LOG_LINES} log lines:\n{tail}" if tail else ""
                raise BackendError(
                    f'service "{service}": container {container.name} exited with code '
                    f"{state.get('ExitCode')} right after starting"
                    + (f" ({state['Error']})" if state.get("Error") else "")
                    + (shown or " (it wrote no log lines)")
                )

    def _retire(self, container: Any, root: Path | None) -> None:
        directory = self._dir_of(container, root)
        with translated(f"removing {container.name}"):
            container.remove(force=True, v=True)  # anonymous volumes go too; named ones stay
        if directory is not None:
            tmpfs.remove_directory(directory)

    def _undo(self, run: _Run, progress: Progress) -> None:
        quiet = contextlib.suppress(docker().errors.DockerException)
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
        desired: Sequence[Replica],
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

    def _remove_unused_networks(self, plan: EnginePlan, progress: Progress) -> None:
        request = plan.request
        wanted = {n.name for n in plan.networks.values()}
        with translated("listing networks"):
            nets = self.client.networks.list(filters={"label": f"{LABEL_STACK}={request.stack}"})
        for net in nets:
            if net.name not in wanted:
                progress(net.name, "removing network")
                with translated(f"removing network {net.name}"):
                    net.remove()

    # ------------------------------------------------------------------ remove
    def remove(self, stack: str, progress: Progress) -> RemoveResult:
        return teardown.remove_stack(
            self.client,
            stack,
            lambda: self._stack_containers(stack, sparse=True),
            self._retire,
            progress,
        )
