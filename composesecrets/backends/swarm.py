"""The Swarm backend: a stack as Docker Swarm services, with secrets as Swarm secrets.

Swarm secrets cannot change, so each secret version a service mounts becomes its own Swarm
secret ``<stack>_<key>_<suffix>``: the suffix is derived from the store name, the version and
the reference's uid/gid/mode (never from the value), so a new version gets a new name and the
service is updated to it with a rolling update; Swarm secrets no service uses any more are
removed afterwards. A distinct Swarm secret per (uid, gid, mode) is needed because Swarm keys
the mounted file by secret ID: one secret mounted twice would get the last settings twice.

An existing Swarm secret is only reused after the engine confirmed that it holds the same
data (``docker stack deploy``'s own check: a secret update that carries data is accepted only
when the data is unchanged, compared in constant time). Values go to the engine only; they are
never logged nor part of a message.

Objects carry ``com.docker.stack.namespace`` (so ``docker stack ps/services`` show the stack)
and ``io.composesecrets.stack``; services also a configuration hash: a redeploy with the same
hash leaves the service alone. Every Docker SDK error is translated into
:mod:`composesecrets.errors` here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composesecrets.backends import (
    ContainerInfo,
    DeployRequest,
    DeployResult,
    Progress,
    RemoveResult,
    ServiceSecrets,
)
from composesecrets.backends.engine import (
    LazyClient,
    _docker,
    _parallel,
    _reason,
    deploy_failed,
    translated,
)
from composesecrets.backends.swarmspec import (
    NAMESPACE_LABEL,
    SwarmNetwork,
    SwarmService,
    stack_specs,
)
from composesecrets.errors import (
    BackendError,
    ComposeSecretsError,
    ConflictError,
    InternalError,
)

LABEL_STACK = "io.composesecrets.stack"
LABEL_SERVICE = "io.composesecrets.service"
LABEL_HASH = "io.composesecrets.config-hash"
LABEL_BACKEND = "io.composesecrets.backend"
LABEL_SECRET = "io.composesecrets.secret"
LABEL_VERSION = "io.composesecrets.version"
LABEL_IMAGE = "com.docker.stack.image"
NAME_LIMIT = 64  # swarmkit's limit on object names
SUFFIX_LEN = 10
LABEL_DIGEST = "io.composesecrets.digest"

_ACTIVE = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running")
_FAILED = ("failed", "rejected")


def swarm_secret_name(
    stack: str, key: str, store_name: str, version: int, uid: int, gid: int, mode: int,
    digest: str = "",
) -> str:  # fmt: skip
    """``<stack>_<key>_<10 hex>``, at most 64 characters. The suffix comes from the store name,
    version, uid/gid/mode and the store's keyed digest of the content (an HMAC under the
    store's key, so a recreated store secret with other content gets another name); it
    never involves the value itself."""
    material = [store_name, version, uid, gid, mode] + ([digest] if digest else [])
    digest = hashlib.sha256(json.dumps(material).encode()).hexdigest()[:SUFFIX_LEN]
    prefix = f"{stack}_{key}"[: NAME_LIMIT - SUFFIX_LEN - 1].rstrip("-_.")
    return f"{prefix}_{digest}"


@dataclass(frozen=True)
class _Wanted:
    """One Swarm secret the request needs."""

    key: str
    store_name: str
    version: int
    uid: int
    gid: int
    mode: int
    digest: str
    value: bytes = field(repr=False, compare=False)

    def name(self, stack: str) -> str:
        return swarm_secret_name(
            stack,
            self.key,
            self.store_name,
            self.version,
            self.uid,
            self.gid,
            self.mode,
            self.digest,
        )


@dataclass
class _Run:
    """What this deploy changed, so that a failure can be undone."""

    created_secrets: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    created_networks: list[tuple[str, str]] = field(default_factory=list)
    created_services: list[tuple[str, str]] = field(default_factory=list)
    updated_services: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # old spec
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Change:
    key: str
    service_id: str
    config_hash: str
    replicas: int | None  # None: global


class SwarmBackend(LazyClient):
    """Stacks as services on a Docker Swarm (the engine must be a swarm manager)."""

    name = "swarm"
    converge_timeout = 120.0  # seconds for the tasks of a deploy to run
    remove_timeout = 120.0  # seconds for the tasks of removed services to go
    poll_interval = 0.2

    # ------------------------------------------------------------------ queries
    def _stack_services(self, stack: str) -> list[dict[str, Any]]:
        with translated(f"listing services of stack {stack}"):
            found: list[dict[str, Any]] = self.client.api.services(
                filters={"label": f"{LABEL_STACK}={stack}"}
            )
        return found

    def _tasks(self, service_ids: Iterable[str], **filters: Any) -> list[dict[str, Any]]:
        ids = sorted(set(service_ids))
        if not ids:
            return []
        with translated("listing tasks"):
            found: list[dict[str, Any]] = self.client.api.tasks(filters={"service": ids, **filters})
        return found

    def containers(self, stack: str) -> list[ContainerInfo]:
        services = {s["ID"]: s for s in self._stack_services(stack)}
        out = []
        for task in self._tasks(services, **{"desired-state": "running"}):
            service = services.get(task.get("ServiceID", ""))
            if service is None:
                continue
            spec = service.get("Spec") or {}
            labels = spec.get("Labels") or {}
            container = ((task.get("Spec") or {}).get("ContainerSpec")) or {}
            image = labels.get(LABEL_IMAGE) or str(container.get("Image", "")).split("@")[0]
            status = task.get("Status") or {}
            slot = task.get("Slot") or task.get("NodeID", "")
            out.append(
                ContainerInfo(
                    name=f"{spec.get('Name', '')}.{slot}.{task['ID']}",
                    service=labels.get(LABEL_SERVICE, ""),
                    image=image,
                    state=str(status.get("State", "")),
                    secrets=tuple(
                        sorted(
                            ref["File"]["Name"]
                            for ref in container.get("Secrets") or []
                            if ref.get("File")
                        )
                    ),
                    id=str((status.get("ContainerStatus") or {}).get("ContainerID", "")),
                )
            )
        return sorted(out, key=lambda i: i.name)

    def stacks(self) -> list[str]:
        with translated("listing stacks"):
            found = self.client.api.services(filters={"label": LABEL_STACK})
        names = {((s.get("Spec") or {}).get("Labels") or {}).get(LABEL_STACK) for s in found}
        return sorted(n for n in names if n)

    # ------------------------------------------------------------------ preflight
    def check_manager(self) -> None:
        """Refuse unless the engine is an active swarm manager."""
        with translated("asking the Docker Engine about its swarm"):
            info = self.client.info()
        swarm = info.get("Swarm") or {}
        state = swarm.get("LocalNodeState") or "inactive"
        if state == "active" and swarm.get("ControlAvailable"):
            return
        if state == "active":
            problem = "this Docker Engine is a swarm worker, not a manager"
            hint = (
                "run composesecrets against a manager (DOCKER_HOST=... of a node that "
                "`docker node ls` works on), or promote this node: docker node promote NODE"
            )
        else:
            problem = f"this Docker Engine is not an active swarm manager (swarm state: {state})"
            hint = (
                "make it a single-node swarm with `docker swarm init`, point DOCKER_HOST at a "
                "swarm manager, or deploy with --backend engine"
            )
        raise BackendError(f"cannot use the swarm backend: {problem}", hint=hint)

    def translate(
        self, request: DeployRequest
    ) -> tuple[dict[str, SwarmService], dict[str, SwarmNetwork]]:
        """The request's compose stack as Swarm specs (raises InvalidComposeError)."""
        if request.model is None:
            raise InternalError("the swarm backend needs the normalised stack (request.model)")
        return stack_specs(request.model, request.stack)

    def warnings(self, request: DeployRequest) -> list[str]:
        """What the swarm backend does not apply, one message per key."""
        services, networks = self.translate(request)
        return [w for s in services.values() for w in s.warnings] + [
            w for n in networks.values() for w in n.warnings
        ]

    def preflight(self, request: DeployRequest) -> None:
        self.check_manager()
        services, networks = self.translate(request)
        api = self.client.api
        docker = _docker()
        with translated("checking names on the swarm"):
            for spec in services.values():
                for found in api.services(filters={"name": spec.name}):
                    found_spec = found.get("Spec") or {}
                    owner = (found_spec.get("Labels") or {}).get(LABEL_STACK)
                    if found_spec.get("Name") == spec.name and owner != request.stack:
                        where = f'stack "{owner}"' if owner else "no composesecrets stack"
                        raise ConflictError(
                            f"a service named {spec.name} already exists and belongs to {where}",
                            hint="remove it, or deploy under another stack name",
                        )
            for net in networks.values():
                same = [n for n in api.networks(names=[net.name]) if n.get("Name") == net.name]
                if net.external:
                    if not same:
                        raise BackendError(
                            f"external network {net.name} does not exist",
                            hint="create it first: docker network create --driver overlay "
                            f"--attachable {net.name}",
                        )
                    continue
                for found in same:
                    if not _ours(found.get("Labels"), request.stack):
                        raise ConflictError(
                            f"a network named {net.name} already exists outside this stack",
                            hint="remove it, or deploy under another stack name",
                        )
            for image in sorted({s.image for s in services.values()}):
                try:
                    self.client.images.get(image)
                except docker.errors.ImageNotFound:
                    # Not fatal: other nodes may have it; Swarm reports it per task.
                    continue

    # ------------------------------------------------------------------ deploy
    def deploy(self, request: DeployRequest, progress: Progress) -> DeployResult:
        services, networks = self.translate(request)
        existing = {
            (s.get("Spec") or {}).get("Name"): s for s in self._stack_services(request.stack)
        }
        run = _Run()
        outcomes: dict[str, list[str]] = {"created": [], "recreated": [], "unchanged": []}
        try:
            networks_created = self._networks(request.stack, networks, run, progress)
            refs = self._secrets(request, run, progress)
            jobs = [
                functools.partial(
                    self._converge_service, request.stack, spec, refs.get(key, []),
                    existing.get(spec.name), run, progress,
                )
                for key, spec in sorted(services.items())
            ]  # fmt: skip
            changes = []
            for outcome, change in _parallel(jobs):
                outcomes[outcome].append(change.key)
                if outcome != "unchanged":
                    changes.append(change)
            self._wait_running(changes, progress)
        except ComposeSecretsError as exc:
            self._undo(run, progress)
            raise deploy_failed(request.stack, exc) from None
        wanted = {spec.name for spec in services.values()}
        removed = self._remove_services(
            [s for name, s in existing.items() if name not in wanted], progress
        )
        self._prune_networks(request.stack, {n.name for n in networks.values()}, progress)
        self._prune_secrets(request.stack, progress)
        return DeployResult(
            request.stack,
            tuple(sorted(outcomes["created"])),
            tuple(sorted(outcomes["recreated"])),
            tuple(sorted(outcomes["unchanged"])),
            tuple(removed),
            tuple(networks_created),
        )

    def _networks(
        self, stack: str, networks: Mapping[str, SwarmNetwork], run: _Run, progress: Progress
    ) -> list[str]:
        api = self.client.api
        made = []
        for net in networks.values():
            if net.external:
                continue
            with translated(f"network {net.name}"):
                if any(n.get("Name") == net.name for n in api.networks(names=[net.name])):
                    continue
                progress(net.name, "creating network")
                created = api.create_network(
                    net.name,
                    driver=net.driver,
                    options=dict(net.options) or None,
                    internal=net.internal,
                    attachable=net.attachable,
                    labels={**net.labels, **_network_labels(stack)},
                    check_duplicate=True,
                )
            run.created_networks.append((str(created.get("Id", "")), net.name))
            made.append(net.name)
        return made

    def _secrets(
        self, request: DeployRequest, run: _Run, progress: Progress
    ) -> dict[str, list[dict[str, Any]]]:
        """Create (or confirm) the Swarm secrets; per service, its secret references."""
        wanted: dict[str, list[tuple[_Wanted, str]]] = {}  # service -> (secret, target)
        unique: dict[_Wanted, None] = {}
        for service, secrets in request.secrets.items():
            pairs = _pairs(secrets)
            wanted[service] = pairs
            for item, _target in pairs:
                unique.setdefault(item, None)
        with translated(f"listing secrets of stack {request.stack}"):
            found = self.client.api.secrets(filters={"label": f"{LABEL_STACK}={request.stack}"})
        existing: dict[str, dict[str, Any]] = {
            str((s.get("Spec") or {}).get("Name")): s for s in found
        }
        jobs = [
            functools.partial(self._secret, request.stack, item, existing, run, progress)
            for item in unique
        ]
        resolved = dict(zip(unique, _parallel(jobs), strict=True))
        out: dict[str, list[dict[str, Any]]] = {}
        for service, pairs in wanted.items():
            refs = []
            for item, target in pairs:
                secret_id, name = resolved[item]
                refs.append(
                    {
                        "File": {
                            "Name": target,
                            "UID": str(item.uid),
                            "GID": str(item.gid),
                            "Mode": item.mode,
                        },
                        "SecretID": secret_id,
                        "SecretName": name,
                    }
                )
            out[service] = sorted(refs, key=lambda r: (r["File"]["Name"], r["SecretName"]))
        return out

    def _secret(
        self,
        stack: str,
        item: _Wanted,
        existing: Mapping[str, dict[str, Any]],
        run: _Run,
        progress: Progress,
    ) -> tuple[str, str]:
        """(id, name) of a Swarm secret holding ``item``'s value, created if needed.

        An existing one is reused only when its digest label matches: the name and the label
        come from the store's keyed digest, so the value is never sent twice to compare."""
        name = item.name(stack)
        found = existing.get(name)
        if found is not None:
            labels = (found.get("Spec") or {}).get("Labels") or {}
            if labels.get(LABEL_DIGEST) == item.digest:
                return str(found["ID"]), name
            raise BackendError(
                f"secret {item.store_name} version {item.version}: the Swarm secret {name} "
                "holds other data",
                hint=f"remove the stack's Swarm secrets (composesecrets stack rm {stack}) and "
                "deploy again",
            )
        progress(name, "creating swarm secret")
        labels = {
            NAMESPACE_LABEL: stack,
            LABEL_STACK: stack,
            LABEL_SECRET: item.store_name,
            LABEL_VERSION: str(item.version),
            LABEL_DIGEST: item.digest,
        }
        with translated(f"creating Swarm secret {name} (secret {item.store_name})"):
            created = self.client.secrets.create(name=name, data=item.value, labels=labels)
        secret_id = str(created.id)
        with run.lock:
            run.created_secrets.append((secret_id, name))
        return secret_id, name

    def _converge_service(
        self,
        stack: str,
        spec: SwarmService,
        refs: list[dict[str, Any]],
        current: dict[str, Any] | None,
        run: _Run,
        progress: Progress,
    ) -> tuple[str, _Change]:
        """Create or update one service: ('created'|'recreated'|'unchanged', change)."""
        config_hash = _config_hash(spec, refs)
        service_labels = {
            **spec.labels,
            NAMESPACE_LABEL: stack,
            LABEL_IMAGE: spec.image,
            LABEL_STACK: stack,
            LABEL_SERVICE: spec.key,
            LABEL_HASH: config_hash,
            LABEL_BACKEND: self.name,
        }
        task_template = json.loads(json.dumps(spec.task_template))
        container = task_template["ContainerSpec"]
        container["Labels"] = {
            **(container.get("Labels") or {}),
            NAMESPACE_LABEL: stack,
            LABEL_SERVICE: spec.key,
            LABEL_HASH: config_hash,
            LABEL_BACKEND: self.name,
        }
        if refs:
            container["Secrets"] = refs
        kwargs: dict[str, Any] = {
            "task_template": task_template,
            "name": spec.name,
            "labels": service_labels,
            "mode": spec.mode,
            "update_config": spec.update_config,
            "rollback_config": spec.rollback_config,
            "endpoint_spec": spec.endpoint_spec,
        }
        api = self.client.api
        if current is None:
            progress(spec.name, "creating service")
            with translated(f'service "{spec.key}": creating {spec.name}'):
                created = api.create_service(**kwargs)
            service_id = str(created["ID"])
            with run.lock:
                run.created_services.append((service_id, spec.name))
            return "created", _Change(spec.key, service_id, config_hash, spec.replicas)
        service_id = str(current["ID"])
        old = current.get("Spec") or {}
        if (old.get("Labels") or {}).get(LABEL_HASH) == config_hash:
            return "unchanged", _Change(spec.key, service_id, config_hash, spec.replicas)
        progress(spec.name, "updating service")
        with translated(f'service "{spec.key}": updating {spec.name}'):
            api.update_service(service_id, current["Version"]["Index"], **kwargs)
        with run.lock:
            run.updated_services.append((service_id, old))
        return "recreated", _Change(spec.key, service_id, config_hash, spec.replicas)

    def _wait_running(self, changes: list[_Change], progress: Progress) -> None:
        """Wait until the tasks of the changed services run the new configuration."""
        if not changes:
            return
        by_id = {c.service_id: c for c in changes}
        deadline = time.monotonic() + self.converge_timeout
        waiting: dict[str, str] = {}
        while True:
            tasks = self._tasks(by_id)
            services = {s["ID"]: s for s in self._services_by_id(by_id)}
            waiting = {}
            for change in by_id.values():
                mine = [t for t in tasks if t.get("ServiceID") == change.service_id]
                state = _converged(change, mine, services.get(change.service_id))
                if state is not None:
                    waiting[change.key] = state
            if not waiting:
                return
            if time.monotonic() > deadline:
                detail = "; ".join(f'service "{k}": {v}' for k, v in sorted(waiting.items()))
                raise BackendError(
                    f"tasks not running after {self.converge_timeout:.0f}s: {detail}",
                    hint="see docker service ps --no-trunc <service>",
                )
            time.sleep(self.poll_interval)

    def _services_by_id(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        with translated("inspecting services"):
            found: list[dict[str, Any]] = self.client.api.services(filters={"id": sorted(ids)})
        return found

    # ------------------------------------------------------------------ undo / prune
    def _undo(self, run: _Run, progress: Progress) -> None:
        """Best effort: restore updated services, remove what this run created."""
        api = self.client.api
        docker = _docker()
        quiet = (docker.errors.DockerException, ComposeSecretsError, OSError)
        restored = []
        for service_id, old in reversed(run.updated_services):
            progress(str(old.get("Name")), "restoring previous service (undo)")
            try:
                version = api.inspect_service(service_id)["Version"]["Index"]
                api.update_service(service_id, version, **_spec_kwargs(old))
                restored.append(service_id)
            except quiet:
                continue
        gone = []
        for service_id, name in reversed(run.created_services):
            progress(name, "removing service (undo)")
            try:
                api.remove_service(service_id)
                gone.append(service_id)
            except quiet:
                continue
        for secret_id, name in run.created_secrets:
            progress(name, "removing swarm secret (undo)")
            try:
                api.remove_secret(secret_id)
            except quiet:
                continue
        with contextlib.suppress(ComposeSecretsError):
            self._wait_gone(gone)
        for network_id, name in run.created_networks:
            progress(name, "removing network (undo)")
            try:
                self._remove_network(network_id, name)
            except quiet:
                continue

    def _remove_services(self, services: list[dict[str, Any]], progress: Progress) -> list[str]:
        docker = _docker()
        names = []
        for service in services:
            name = str((service.get("Spec") or {}).get("Name", service["ID"]))
            progress(name, "removing service")
            with (
                translated(f"removing service {name}"),
                contextlib.suppress(docker.errors.NotFound),
            ):
                self.client.api.remove_service(service["ID"])
            names.append(name)
        self._stop_local_tasks(services)
        self._wait_gone([s["ID"] for s in services])
        return names

    def _stop_local_tasks(self, services: list[dict[str, Any]]) -> None:
        """Stop and remove this node's containers of removed services at once.

        Swarm would do the same, but only after its dispatcher reached the node's agent
        (seconds on a busy node); the grace period of each service is kept. Containers on
        other nodes are left to Swarm. Best effort: the agent may be removing them too.
        """
        grace = {
            s["ID"]: int(
                (((s.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get(
                    "StopGracePeriod", 10 * 10**9
                )
                // 10**9
            )
            for s in services
        }
        if not grace:
            return
        api = self.client.api
        docker = _docker()
        with translated("listing task containers"):
            found = [
                (c["Id"], grace[label])
                for c in api.containers(all=True, filters={"label": "com.docker.swarm.service.id"})
                if (label := (c.get("Labels") or {}).get("com.docker.swarm.service.id")) in grace
            ]

        def retire(container_id: str, timeout: int) -> None:
            with contextlib.suppress(docker.errors.APIError):
                api.stop(container_id, timeout=timeout)
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(container_id, force=True)

        _parallel([functools.partial(retire, cid, timeout) for cid, timeout in found])

    def _wait_gone(self, service_ids: list[str]) -> None:
        """Wait until no task or container of the services is left (on this node)."""
        if not service_ids:
            return
        ids = set(service_ids)
        deadline = time.monotonic() + self.remove_timeout
        while True:
            # not filtered by service: the engine refuses filters naming removed services
            with translated("listing tasks"):
                everything = self.client.api.tasks()
            tasks = [
                t
                for t in everything
                if t.get("ServiceID") in ids and (t.get("Status") or {}).get("State") in _ACTIVE
            ]
            with translated("listing task containers"):
                containers = [
                    c
                    for c in self.client.api.containers(
                        all=True, filters={"label": "com.docker.swarm.service.id"}
                    )
                    if (c.get("Labels") or {}).get("com.docker.swarm.service.id") in ids
                ]
            if not tasks and not containers:
                return
            if time.monotonic() > deadline:
                raise BackendError(
                    f"{len(tasks)} task(s) and {len(containers)} container(s) of removed "
                    f"services still there after {self.remove_timeout:.0f}s",
                    hint="run the command again once `docker service ps` shows them gone",
                )
            time.sleep(self.poll_interval)

    def _remove_network(self, network_id: str, name: str) -> None:
        """Remove a network, retrying while the engine still detaches task endpoints."""
        docker = _docker()
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self.client.api.remove_network(network_id)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if time.monotonic() > deadline or "active endpoints" not in _reason(exc):
                    raise BackendError(f"removing network {name}: {_reason(exc)}") from None
            time.sleep(self.poll_interval)

    def _prune_networks(self, stack: str, keep: set[str], progress: Progress) -> list[str]:
        with translated(f"listing networks of stack {stack}"):
            nets = self.client.api.networks(
                filters={"label": [f"{k}={v}" for k, v in _network_labels(stack).items()]}
            )
        removed = []
        for net in nets:
            if net.get("Name") in keep:
                continue
            progress(str(net.get("Name")), "removing network")
            with translated(f"removing network {net.get('Name')}"):
                self._remove_network(str(net["Id"]), str(net.get("Name")))
            removed.append(str(net.get("Name")))
        return removed

    def _prune_secrets(self, stack: str, progress: Progress, everything: bool = False) -> None:
        """Remove the stack's Swarm secrets that no service of the swarm references."""
        api = self.client.api
        docker = _docker()
        with translated(f"listing Swarm secrets of stack {stack}"):
            secrets = api.secrets(filters={"label": f"{LABEL_STACK}={stack}"})
            used: set[str] = set()
            if not everything:
                for service in api.services():
                    container = ((service.get("Spec") or {}).get("TaskTemplate") or {}).get(
                        "ContainerSpec"
                    ) or {}
                    used |= {r.get("SecretID") for r in container.get("Secrets") or []}
        for secret in secrets:
            if secret["ID"] in used:
                continue
            name = str((secret.get("Spec") or {}).get("Name", secret["ID"]))
            progress(name, "removing swarm secret")
            with (
                translated(f"removing Swarm secret {name}"),
                contextlib.suppress(docker.errors.NotFound),
            ):
                api.remove_secret(secret["ID"])

    # ------------------------------------------------------------------ remove
    def remove(self, stack: str, progress: Progress) -> RemoveResult:
        self.check_manager()
        services = self._stack_services(stack)
        names = self._remove_services(services, progress)
        networks = self._prune_networks(stack, set(), progress)
        self._prune_secrets(stack, progress, everything=True)
        return RemoveResult(stack, tuple(names), tuple(networks))


def _network_labels(stack: str) -> dict[str, str]:
    """Labels that mark a network of a swarm stack. Not ``io.composesecrets.stack``: the
    engine backend owns what carries that label (task containers do not carry it either)."""
    return {NAMESPACE_LABEL: stack, LABEL_BACKEND: SwarmBackend.name}


def _ours(labels: Mapping[str, str] | None, stack: str) -> bool:
    return all((labels or {}).get(k) == v for k, v in _network_labels(stack).items())


def _pairs(secrets: ServiceSecrets) -> list[tuple[_Wanted, str]]:
    if not len(secrets.files) == len(secrets.versions) == len(secrets.digests):
        raise InternalError("secret files, versions and digests do not pair up")
    return [
        (_Wanted(f.source, store, version, f.uid, f.gid, f.mode, digest, f.value), f.target)
        for f, (store, version), digest in zip(
            secrets.files, secrets.versions, secrets.digests, strict=True
        )
    ]


def _config_hash(spec: SwarmService, refs: list[dict[str, Any]]) -> str:
    material = {
        "spec": spec.fingerprint(),
        "secrets": [[r["SecretName"], r["File"]] for r in refs],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _spec_kwargs(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A service's stored Spec as ``update_service`` keyword arguments (restores it whole)."""
    return {
        "task_template": spec.get("TaskTemplate") or {},
        "name": spec.get("Name"),
        "labels": spec.get("Labels") or {},
        "mode": spec.get("Mode"),
        "update_config": spec.get("UpdateConfig"),
        "rollback_config": spec.get("RollbackConfig"),
        "endpoint_spec": spec.get("EndpointSpec"),
    }


def _converged(
    change: _Change, tasks: list[dict[str, Any]], service: Mapping[str, Any] | None
) -> str | None:
    """None when the service runs its new configuration, else what it is waiting for.

    Raises BackendError when a task of the new configuration failed or was rejected, or
    when Swarm paused or rolled back the update.
    """
    update = (service or {}).get("UpdateStatus") or {}
    if update.get("State") in ("paused", "rollback_started", "rollback_completed"):
        raise BackendError(
            f'service "{change.key}": update {update.get("State")}: '
            f"{update.get('Message') or 'see docker service ps'}"
        )
    new = [
        t
        for t in tasks
        if (((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}).get(LABEL_HASH)
        == change.config_hash
    ]
    for task in new:
        status = task.get("Status") or {}
        if status.get("State") in _FAILED:
            reason = status.get("Err") or status.get("Message") or status.get("State")
            raise BackendError(f'service "{change.key}": task {task["ID"][:12]} failed: {reason}')
    running = [
        t
        for t in new
        if t.get("DesiredState") == "running"
        and (t.get("Status") or {}).get("State") in ("running", "complete")
    ]
    others = [t for t in tasks if t.get("DesiredState") == "running" and t not in running]
    if change.replicas is not None:
        if len(running) >= change.replicas and not others:
            return None
        return f"{len(running)}/{change.replicas} running"
    if running and not others:
        return None
    return f"{len(running)} running, {len(others)} not yet"
