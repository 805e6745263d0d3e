"""The Swarm backend: a stack as Docker Swarm services, with secrets as Swarm secrets
(:mod:`.swarm_secrets`: one immutable Swarm secret per secret version and file mode, reused
after a digest check, pruned when no service uses it any more).

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
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    parallel,
    translated,
)
from composesecrets.backends.swarm import tasks
from composesecrets.backends.swarm.images import pinned_images, single_node
from composesecrets.backends.swarm.plan import SwarmPlan, make_plan
from composesecrets.backends.swarm.swarm_secrets import (
    ensure_secrets,
    planned_refs,
    prune_secrets,
    ref_key,
    remove_object,
)
from composesecrets.backends.swarm.tasks import Change
from composesecrets.backends.swarm.translate import SwarmNetwork, SwarmService
from composesecrets.docker_rules import (
    LABEL_BACKEND,
    LABEL_HASH,
    LABEL_IMAGE,
    LABEL_NAMESPACE,
    LABEL_SERVICE,
    LABEL_STACK,
)
from composesecrets.errors import (
    BackendError,
    ComposeSecretsError,
    ConflictError,
    InternalError,
)

__all__ = ["SwarmBackend", "SwarmPlan"]


@dataclass
class _Run:
    """What this deploy changed, so that a failure can be undone."""

    created_secrets: list[tuple[str, str]] = field(default_factory=list)  # (id, "kind:name")
    created_networks: list[tuple[str, str]] = field(default_factory=list)
    created_services: list[tuple[str, str]] = field(default_factory=list)
    updated_services: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # old spec
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_secret(self, secret_id: str, name: str) -> None:
        with self.lock:
            self.created_secrets.append((secret_id, name))


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

    def plan(self, request: DeployRequest) -> SwarmPlan:
        return make_plan(request)

    @staticmethod
    def _own(plan: Plan) -> SwarmPlan:
        if not isinstance(plan, SwarmPlan):
            raise InternalError(f"the swarm backend was given a {type(plan).__name__}")
        return plan

    def preflight(self, plan: Plan) -> None:
        plan = self._own(plan)
        request, services, networks = plan.request, plan.services, plan.networks
        self.check_manager()
        api = self.client.api
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

    def _images(self, services: Mapping[str, SwarmService]) -> dict[str, str]:
        """Each image name -> the reference the service specs name (:mod:`.images`)."""
        with translated("asking the Docker Engine about its swarm"):
            single = single_node(self.client.info())
        return pinned_images(self.client.api, {s.image for s in services.values()}, single=single)

    # ------------------------------------------------------------------ deploy
    def diff(self, plan: Plan) -> DeployResult:
        plan = self._own(plan)
        request = plan.request
        existing = {
            (s.get("Spec") or {}).get("Name"): s for s in self._stack_services(request.stack)
        }
        refs = planned_refs(request)
        images = self._images(plan.services)
        out: dict[str, list[str]] = {"created": [], "recreated": [], "unchanged": []}
        for key, spec in sorted(plan.services.items()):
            current = existing.get(spec.name)
            found = ((current or {}).get("Spec") or {}).get("Labels") or {}
            state = "created" if current is None else "unchanged"
            if current is not None and found.get(LABEL_HASH) != _config_hash(
                spec, refs.get(key, []), images[spec.image]
            ):
                state = "recreated"
            out[state].append(key)
        wanted = {spec.name for spec in plan.services.values()}
        with translated("listing networks"):
            present = {n.get("Name") for n in self.client.api.networks()}
        return DeployResult(
            request.stack,
            tuple(out["created"]),
            tuple(out["recreated"]),
            tuple(out["unchanged"]),
            tuple(sorted(str(n) for n in existing if n not in wanted)),
            tuple(
                n.name for n in plan.networks.values() if not n.external and n.name not in present
            ),
        )

    def deploy(self, plan: Plan, progress: Progress) -> DeployResult:
        plan = self._own(plan)
        request, services, networks = plan.request, plan.services, plan.networks
        existing = {
            (s.get("Spec") or {}).get("Name"): s for s in self._stack_services(request.stack)
        }
        run = _Run()
        outcomes: dict[str, list[str]] = {"created": [], "recreated": [], "unchanged": []}
        try:
            networks_created = self._networks(request.stack, networks, run, progress)
            refs = ensure_secrets(self.client, request, run.record_secret, progress)
            images = self._images(services)
            jobs = [
                functools.partial(
                    self._converge_service, request.stack, spec, images[spec.image],
                    refs.get(key, []), existing.get(spec.name), run, progress,
                )
                for key, spec in sorted(services.items())
            ]  # fmt: skip
            changes = []
            for outcome, change in parallel(jobs):
                outcomes[outcome].append(change.key)
                if outcome != "unchanged":
                    changes.append(change)
            tasks.wait_running(self.client, changes, self.converge_timeout, self.poll_interval)
        except ComposeSecretsError as exc:
            self._undo(run, progress)
            raise deploy_failed(request.stack, exc) from None
        wanted = {spec.name for spec in services.values()}
        removed = self._remove_services(
            [s for name, s in existing.items() if name not in wanted], progress
        )
        self._prune_networks(request.stack, {n.name for n in networks.values()}, progress)
        prune_secrets(self.client, request.stack, progress)
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

    def _converge_service(
        self,
        stack: str,
        spec: SwarmService,
        image: str,
        refs: list[dict[str, Any]],
        current: dict[str, Any] | None,
        run: _Run,
        progress: Progress,
    ) -> tuple[str, Change]:
        """Create or update one service: ('created'|'recreated'|'unchanged', change);
        ``image`` is the reference its spec names (:mod:`.images`)."""
        config_hash = _config_hash(spec, refs, image)
        service_labels = {
            **spec.labels,
            LABEL_NAMESPACE: stack,
            LABEL_IMAGE: spec.image,
            LABEL_STACK: stack,
            LABEL_SERVICE: spec.key,
            LABEL_HASH: config_hash,
            LABEL_BACKEND: self.name,
        }
        task_template = json.loads(json.dumps(spec.task_template))
        container = task_template["ContainerSpec"]
        container["Image"] = image
        container["Labels"] = {
            **(container.get("Labels") or {}),
            LABEL_NAMESPACE: stack,
            LABEL_SERVICE: spec.key,
            LABEL_HASH: config_hash,
            LABEL_BACKEND: self.name,
        }
        secret_refs = [r for r in refs if "ConfigID" not in r]
        config_refs = [r for r in refs if "ConfigID" in r]
        if secret_refs:
            container["Secrets"] = secret_refs
        if config_refs:
            container["Configs"] = config_refs
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
        condition = (task_template.get("RestartPolicy") or {}).get("Condition") or "any"
        restarts = condition != "none"
        if current is None:
            progress(spec.name, "creating service")
            with translated(f'service "{spec.key}": creating {spec.name}'):
                created = api.create_service(**kwargs)
            service_id = str(created["ID"])
            with run.lock:
                run.created_services.append((service_id, spec.name))
            return "created", Change(
                spec.key, service_id, config_hash, spec.replicas, False, restarts
            )
        service_id = str(current["ID"])
        old = current.get("Spec") or {}
        if (old.get("Labels") or {}).get(LABEL_HASH) == config_hash:
            return "unchanged", Change(
                spec.key, service_id, config_hash, spec.replicas, restarts=restarts
            )
        progress(spec.name, "updating service")
        with translated(f'service "{spec.key}": updating {spec.name}'):
            api.update_service(service_id, current["Version"]["Index"], **kwargs)
        with run.lock:
            run.updated_services.append((service_id, old))
        return "recreated", Change(
            spec.key, service_id, config_hash, spec.replicas, True, restarts
        )

    # ------------------------------------------------------------------ undo / prune
    def _undo(self, run: _Run, progress: Progress) -> None:
        """Best effort: restore updated services, remove what this run created."""
        api = self.client.api
        quiet = (docker().errors.DockerException, ComposeSecretsError, OSError)
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
        for secret_id, recorded in run.created_secrets:
            kind, _, name = recorded.partition(":")
            progress(name, f"removing swarm {kind} (undo)")
            try:
                remove_object(api, kind, secret_id)
            except quiet:
                continue
        with contextlib.suppress(ComposeSecretsError):
            tasks.wait_gone(self.client, gone, self.remove_timeout, self.poll_interval)
        for network_id, name in run.created_networks:
            progress(name, "removing network (undo)")
            try:
                tasks.remove_network(self.client, network_id, name, self.poll_interval)
            except quiet:
                continue

    def _remove_services(self, services: list[dict[str, Any]], progress: Progress) -> list[str]:
        sdk = docker()

        def remove(service: Mapping[str, Any]) -> str:
            name = str((service.get("Spec") or {}).get("Name", service["ID"]))
            progress(name, "removing service")
            with (
                translated(f"removing service {name}"),
                contextlib.suppress(sdk.errors.NotFound),
            ):
                self.client.api.remove_service(service["ID"])
            return name

        names = parallel([functools.partial(remove, s) for s in services])
        tasks.stop_local_tasks(self.client, services)
        tasks.wait_gone(
            self.client, [s["ID"] for s in services], self.remove_timeout, self.poll_interval
        )
        return names

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
                tasks.remove_network(
                    self.client, str(net["Id"]), str(net.get("Name")), self.poll_interval
                )
            removed.append(str(net.get("Name")))
        return removed

    # ------------------------------------------------------------------ remove
    def remove(self, stack: str, progress: Progress) -> RemoveResult:
        self.check_manager()
        services = self._stack_services(stack)
        names = self._remove_services(services, progress)
        networks = self._prune_networks(stack, set(), progress)
        prune_secrets(self.client, stack, progress, everything=True)
        return RemoveResult(stack, tuple(names), tuple(networks))


def _network_labels(stack: str) -> dict[str, str]:
    """Labels that mark a network of a swarm stack. Not ``io.composesecrets.stack``: the
    engine backend owns what carries that label (task containers do not carry it either)."""
    return {LABEL_NAMESPACE: stack, LABEL_BACKEND: SwarmBackend.name}


def _ours(labels: Mapping[str, str] | None, stack: str) -> bool:
    return all((labels or {}).get(k) == v for k, v in _network_labels(stack).items())


def _config_hash(spec: SwarmService, refs: list[dict[str, Any]], image: str) -> str:
    secrets = [r for r in refs if "ConfigID" not in r]
    configs = [r for r in refs if "ConfigID" in r]
    material: dict[str, Any] = {
        "spec": spec.fingerprint(),
        "secrets": [[r["SecretName"], r["File"]] for r in secrets],
    }
    if configs:  # (a stack without configs keeps the hash it had before configs existed)
        material["configs"] = [[ref_key(r)[2], r["File"]] for r in configs]
    if image != spec.image:  # pinned by ID: a rebuilt image changes the hash
        material["image"] = image
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
