"""An in-memory backend with the engine backend's observable behaviour, for unit tests.

It keeps "containers" as records (name, service, config hash, secret files) and applies
the same convergence rules: unchanged hash keeps a container, a changed one replaces it,
containers of services no longer in the request are removed. Failures can be injected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar

from composesecrets.backends import (
    ContainerInfo,
    DeployRequest,
    DeployResult,
    Progress,
    RemoveResult,
    ServiceSecrets,
)
from composesecrets.backends.delivery import SecretFile
from composesecrets.errors import BackendError, DeployFailedError


@dataclass
class FakeContainer:
    name: str
    service: str
    image: str
    config_hash: str
    files: tuple[SecretFile, ...]
    serial: int
    state: str = "running"


@dataclass
class FakeBackend:
    name: str = "fake"
    containers_by_stack: dict[str, dict[str, FakeContainer]] = field(default_factory=dict)
    images: set[str] | None = None  # None: every image exists
    fail_service: str | None = None  # deploying this service fails (after others started)
    serial: int = 0

    _shared: ClassVar[FakeBackend | None] = None

    @classmethod
    def shared(cls) -> FakeBackend:
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    @classmethod
    def reset(cls) -> FakeBackend:
        cls._shared = cls()
        return cls._shared

    def _hash(self, request: DeployRequest, service: str) -> str:
        secrets = request.secrets.get(service, ServiceSecrets((), ()))
        material = json.dumps(
            [
                request.services[service].fingerprint,
                list(secrets.versions),
                [[f.target, f.uid, f.gid, f.mode] for f in secrets.files],
            ]
        )
        return hashlib.sha256(material.encode()).hexdigest()

    def warnings(self, request: DeployRequest) -> list[str]:
        return [w for spec in request.services.values() for w in spec.warnings]

    def preflight(self, request: DeployRequest) -> None:
        for name, spec in request.services.items():
            if self.images is not None and spec.image not in self.images:
                raise BackendError(f'service "{name}": image {spec.image} not found')

    def deploy(self, request: DeployRequest, progress: Progress) -> DeployResult:
        before = dict(self.containers_by_stack.get(request.stack, {}))
        after: dict[str, FakeContainer] = {}
        created: list[str] = []
        recreated: list[str] = []
        unchanged: list[str] = []
        for service, spec in request.services.items():
            if service == self.fail_service:
                raise DeployFailedError(f'service "{service}": injected failure')
            config_hash = self._hash(request, service)
            files = request.secrets.get(service, ServiceSecrets((), ())).files
            for number in range(1, spec.replicas + 1):
                name = f"{request.stack}_{service}_{number}"
                old = before.get(name)
                if old is not None and old.config_hash == config_hash:
                    after[name] = old
                    unchanged.append(name)
                    continue
                self.serial += 1
                progress(name, "creating" if old is None else "replacing")
                after[name] = FakeContainer(
                    name, service, spec.image, config_hash, files, self.serial
                )
                (created if old is None else recreated).append(name)
        removed = [n for n in before if n not in after]
        self.containers_by_stack[request.stack] = after
        return DeployResult(
            request.stack, tuple(created), tuple(recreated), tuple(unchanged), tuple(removed)
        )

    def remove(self, stack: str, progress: Progress) -> RemoveResult:
        gone = self.containers_by_stack.pop(stack, {})
        return RemoveResult(stack, tuple(sorted(gone)))

    def containers(self, stack: str) -> list[ContainerInfo]:
        return [
            ContainerInfo(
                c.name, c.service, c.image, c.state, tuple(f.target for f in c.files), str(c.serial)
            )
            for c in sorted(self.containers_by_stack.get(stack, {}).values(), key=lambda c: c.name)
        ]

    def stacks(self) -> list[str]:
        return sorted(s for s, cs in self.containers_by_stack.items() if cs)
