"""Stack operations: the library API behind ``composesecrets stack ...``.

``deploy`` loads and validates the compose files strictly, resolves every secret against
the encrypted store (``file:`` secrets are imported as ``<STACK>_<key>``, a changed file
becomes a new version; ``external`` ones must exist), asks the backend to refuse what
cannot work, and only then changes the store and the engine. The deployment (services and
secret versions in use) is recorded in the store so that ``secret rm`` refuses secrets in use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hmac
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composesecrets import model
from composesecrets.backends import (
    ContainerInfo,
    DeployRequest,
    DeployResult,
    Progress,
    RemoveResult,
    SecretFile,
    ServiceSecrets,
    get_backend,
)
from composesecrets.backends.engine.restore import RestoreResult
from composesecrets.compose.diagnostics import Diagnostic
from composesecrets.docker_rules import LABEL_STACK
from composesecrets.errors import (
    ComposeSecretsError,
    ConflictError,
    DeployFailedError,
    InvalidComposeError,
    NotFoundError,
)
from composesecrets.store import Store, Usage

if TYPE_CHECKING:
    from composesecrets.backends.engine.restore import RestoreResult


@dataclass(frozen=True)
class StackDeployment:
    """The outcome of ``deploy``."""

    stack: str
    backend: str
    result: DeployResult
    warnings: tuple[str, ...] = ()
    imported: tuple[str, ...] = ()  # store secrets created or given a new version


@dataclass(frozen=True)
class StackSummary:
    name: str
    services: int
    backend: str

    def to_json(self) -> dict[str, Any]:
        """As ``stack ls --format json`` prints it."""
        return {"Name": self.name, "Services": self.services, "Backend": self.backend}


@dataclass(frozen=True)
class ServiceSummary:
    name: str
    image: str
    replicas: int
    running: int

    def to_json(self) -> dict[str, Any]:
        """As ``stack services --format json`` prints it."""
        return {"Name": self.name, "Image": self.image, "Replicas": self.replicas,
                "Running": self.running}  # fmt: skip


@dataclass
class DeployOptions:
    files: Sequence[str] = ()
    env_file: str | Path | None = None
    backend: str | None = None  # None: the stack's recorded backend, else engine
    delivery: str = "tmpfs"
    store_dir: Path | None = None
    store_opener: Callable[[], Store] | None = None


def _open_store(options: DeployOptions) -> Store:
    if options.store_opener is not None:
        return options.store_opener()
    return Store.open(options.store_dir)


def deploy(stack: str, options: DeployOptions, progress: Progress) -> StackDeployment:
    """Validate, resolve secrets, then converge the backend to the compose files.

    Raises :class:`InvalidComposeError` carrying the diagnostics when the files are invalid,
    and whatever the backend's plan refuses, before the store or the engine change."""
    from composesecrets.compose.project import load_project, read_env_files

    project = load_project(options.files, env_file=options.env_file, stack_name=stack, compat=False)
    # a missing secret file is fine when the store already holds <STACK>_<key> (checked below)
    blocking = [d for d in project.errors if d.rule not in MISSING_FILE_RULES]
    if blocking or project.stack is None:
        raise InvalidComposeError(
            f"the compose file is invalid ({len(project.errors)} error(s)); nothing was deployed",
            diagnostics=project.diagnostics,
        )
    loaded = read_env_files(project.stack)
    used = {ref.source for svc in loaded.services.values() for ref in svc.secrets}
    with _open_store(options) as store, stack_lock(store, stack):
        backend = get_backend(_deploy_backend(store, stack, options.backend))
        plan = backend.plan(DeployRequest(stack, loaded, options.delivery))
        _check_external(store, loaded, used)
        stored = _stored_instead_of_missing_files(store, loaded, project.diagnostics)
        backend.preflight(plan)
        warnings = [d.text() for d in project.warnings]
        warnings += [
            f"note: {path} not found: using {name} version {version} from the store"
            for name, (path, version) in sorted(stored.items())
        ]
        warnings += [f"warning: {w}" for w in plan.warnings]
        values: dict[str, tuple[bytes, int]] = {}
        imported = _import_file_secrets(store, loaded, stack, used, progress, values, stored)
        secrets, usages = _secret_files(store, loaded, values)
        read = " ".join(f"{name}@{version}" for name, (_, version) in sorted(values.items()))
        store.note("read", stack, f"deploy with {backend.name}: {read}")
        try:
            result = backend.deploy(plan.with_secrets(secrets), progress)
        except DeployFailedError:
            _forget_imports(store, [(name, values[name][1]) for name in imported])
            raise
        store.record_usage(stack, backend.name, usages)
    return StackDeployment(stack, backend.name, result, tuple(warnings), tuple(imported))


def _forget_imports(store: Store, imported: Sequence[tuple[str, int]]) -> None:
    """After a rolled-back deploy: remove the secrets it created, and the versions it added
    (the version before is current again), so that the store matches what runs."""
    for name, version in imported:
        with contextlib.suppress(ComposeSecretsError):
            if version == 1:
                store.remove(name)
            else:
                store.drop_version(name, version)


def _deploy_backend(store: Store, stack: str, wanted: str | None) -> str:
    """The backend to deploy ``stack`` with: the one it runs on (recorded in the store, else
    found on the engine), ``wanted`` for a new stack (default engine). Deploying a running
    stack with another backend would run it twice: refused with the migration steps."""
    records = store.usages(stack=stack)
    current = records[0].backend if records else _found_on(stack)
    if current is None or wanted in (None, current):
        return wanted or current or "engine"
    raise ConflictError(
        f"stack {stack} runs on the {current} backend; deploying it with --backend {wanted} "
        "would run it twice",
        hint=f"to move it: composesecrets stack rm --keep-secrets {stack}, then "
        f"composesecrets stack deploy --backend {wanted} -c FILE {stack} (or drop --backend "
        f"to redeploy it on {current})",
    )


def _found_on(stack: str) -> str | None:
    """The backend whose engine has objects of ``stack`` (a stack without secrets has no
    record in the store); None when none has."""
    from composesecrets.backends import BACKENDS
    from composesecrets.errors import BackendError

    for name in BACKENDS:
        try:
            if get_backend(name).containers(stack):
                return name
        except BackendError:
            continue  # e.g. the swarm backend on an engine that is not a swarm manager
    return None


@contextlib.contextmanager
def stack_lock(store: Store, stack: str) -> Iterator[None]:
    """One deploy or removal of a stack at a time (an flock on a file in the store dir)."""
    directory = store.directory / "locks"
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(directory / f"{stack}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _check_external(store: Store, stack: model.Stack, used: set[str]) -> None:
    missing = []
    for key, definition in stack.secrets.items():
        if definition.external and key in used:
            try:
                store.inspect(definition.name)
            except NotFoundError:
                missing.append(definition.name)
    if missing:
        names = ", ".join(sorted(missing))
        raise NotFoundError(
            f"external secret(s) not in the store: {names}; nothing was deployed",
            hint="create them first: composesecrets secret create NAME FILE",
        )


# compose check rules that report a ``file:`` secret source that does not exist
MISSING_FILE_RULES = frozenset(("file-missing",))


def _stored_instead_of_missing_files(
    store: Store, stack: model.Stack, diagnostics: Sequence[Diagnostic]
) -> dict[str, tuple[Path, int]]:
    """Store name -> (missing file, current version) for each ``file:`` secret whose file is
    gone but whose ``<STACK>_<key>`` the store holds; an error when neither exists."""
    out: dict[str, tuple[Path, int]] = {}
    unresolved = []
    for definition in stack.secrets.values():
        if definition.external or definition.file is None or definition.file.exists():
            continue
        try:
            out[definition.name] = (definition.file, store.inspect(definition.name).info.version)
        except NotFoundError:
            unresolved.append(definition)
    if unresolved:
        missing = {str(d.file) for d in unresolved}
        shown = [d for d in diagnostics if d.rule in MISSING_FILE_RULES and
                 any(m in d.message for m in missing)]  # fmt: skip
        files = ", ".join(sorted(missing))
        raise InvalidComposeError(
            f"secret file(s) {files} do not exist and the secret is not in the store; "
            "nothing was deployed",
            diagnostics=shown,
            hint="create the file, or import the value: composesecrets secret create NAME FILE",
        )
    return out


def _import_file_secrets(
    store: Store,
    stack: model.Stack,
    stack_name: str,
    used: set[str],
    progress: Progress,
    values: dict[str, tuple[bytes, int]],
    stored: Mapping[str, tuple[Path, int]],
) -> list[str]:
    """Import each used ``file:`` secret; a changed content becomes a new version.

    ``values`` collects store name -> (value, version) for the secrets handled here; the
    secrets in ``stored`` (file missing, in the store) keep the store's current version.
    """
    from composesecrets.store import read_value

    changed = []
    for key, definition in stack.secrets.items():
        if definition.external or definition.file is None or key not in used:
            continue
        if definition.name in stored:
            continue  # _secret_files reads the store's current version
        value = read_value(definition.file)
        labels = {**definition.labels, LABEL_STACK: stack_name}
        try:
            version = store.inspect(definition.name).info.version
        except NotFoundError:
            progress(definition.name, "importing secret")
            values[definition.name] = (value, store.create(definition.name, value, labels).version)
            changed.append(definition.name)
            continue
        current = store.get(definition.name, version, audit=False)
        if hmac.compare_digest(current, value):
            values[definition.name] = (current, version)
        else:
            progress(definition.name, "new secret version")
            values[definition.name] = (value, store.rotate(definition.name, value).version)
            changed.append(definition.name)
    return changed


def _secret_files(
    store: Store, stack: model.Stack, values: dict[str, tuple[bytes, int]]
) -> tuple[dict[str, ServiceSecrets], list[Usage]]:
    """Each service's secret files (values read once per secret) and the usage records."""
    out: dict[str, ServiceSecrets] = {}
    usages: list[Usage] = []
    digests: dict[str, str] = {}
    for name, service in stack.services.items():
        files, versions, marks = [], [], []
        for ref in service.secrets:
            store_name = stack.secrets[ref.source].name
            if store_name not in values or store_name not in digests:
                details = store.inspect(store_name)
                version = values[store_name][1] if store_name in values else details.info.version
                if store_name not in values:
                    values[store_name] = (store.get(store_name, version, audit=False), version)
                digests[store_name] = next(
                    v.digest for v in details.versions if v.version == version
                )
            value, version = values[store_name]
            files.append(
                SecretFile(ref.source, ref.target, int(ref.uid), int(ref.gid), ref.mode, value)
            )
            versions.append((store_name, version))
            marks.append(digests[store_name])
            usages.append(Usage(store_name, name, version))
        out[name] = ServiceSecrets(tuple(files), tuple(versions), tuple(marks))
    return out, usages


def remove(
    stack: str,
    *,
    keep_secrets: bool = False,
    store_opener: Callable[[], Store] | None = None,
    store_dir: Path | None = None,
    backend_name: str | None = None,
    progress: Progress,
) -> RemoveResult:
    """Remove the stack from the engine, then (unless ``keep_secrets``) its own store secrets."""
    opener = store_opener or (lambda: Store.open(store_dir, create=False))
    try:
        store: Store | None = opener()
    except NotFoundError:
        store = None  # no store yet: only the engine side can exist
    with contextlib.ExitStack() as cleanup:
        if store is not None:
            cleanup.enter_context(store)
            cleanup.enter_context(stack_lock(store, stack))
        records = store.usages(stack=stack) if store is not None else []
        recorded = records[0].backend if records else None
        backend = get_backend(backend_name or recorded or _found_on(stack) or "engine")
        result = backend.remove(stack, progress)
        if store is not None:
            store.clear_usage(stack)
            if not keep_secrets:
                in_use = {u.secret_name for u in store.usages()}
                own = [
                    info.name
                    for info in store.list_secrets([f"label={LABEL_STACK}={stack}"])
                    if info.name not in in_use  # still used by another stack: keep
                ]
                for name in own:
                    progress(name, "removing secret")
                store.remove_many(own)
                result = dataclasses.replace(result, secrets=tuple(own))
    return result


def restore(
    names: Sequence[str],
    *,
    everything: bool = False,
    store_opener: Callable[[], Store] | None = None,
    store_dir: Path | None = None,
    progress: Progress,
) -> list[RestoreResult]:
    """Re-create the secret files of engine stacks from the store (the version each container
    was deployed with) and start the containers Docker would have restarted. Needs no
    compose file and no secret file; idempotent. ``everything``: every engine stack this
    store recorded (stacks without secrets need nothing: Docker restarts them itself)."""
    from composesecrets.backends.engine.backend import EngineBackend
    from composesecrets.backends.engine.restore import FileRecord

    backend = get_backend("engine")
    if not isinstance(backend, EngineBackend):
        raise ConflictError("stack restore needs the engine backend")
    opener = store_opener or (lambda: Store.open(store_dir, create=False))
    results = []
    with opener() as store:
        records = store.usages()
        on_engine = set(backend.stacks())
        targets = list(names)
        if everything:
            # stacks deployed with secrets from this store (Docker restarts the others itself)
            recorded = {r.stack for r in records if r.backend == backend.name}
            targets += sorted(recorded - set(targets))
        for stack in targets:
            mine = [r for r in records if r.stack == stack]
            if mine and mine[0].backend != backend.name:
                progress(stack, f"skipped: runs on {mine[0].backend} (keeps its own secrets)")
                continue
            if stack not in on_engine:
                if everything and stack not in names:
                    progress(stack, "skipped: recorded in the store, not on the engine")
                    continue
                raise NotFoundError(f"nothing of stack {stack} is on the engine")
            versions = {(r.service, r.secret_name): r.version for r in mine}

            def version(service: str, record: FileRecord, versions: Any = versions) -> int:
                # the store's record of the deploy, else what the container was created with
                found: int = versions.get((service, record.name), record.version)
                return found

            def fetch(
                wanted: set[tuple[str, int]], stack: str = stack
            ) -> dict[tuple[str, int], bytes]:
                values = {}
                for n, v in sorted(wanted):
                    with contextlib.suppress(NotFoundError):  # its containers report it
                        values[(n, v)] = store.get(n, v, audit=False)
                if values:
                    read = " ".join(f"{n}@{v}" for n, v in sorted(values))
                    store.note("read", stack, f"restore: {read}")
                return values

            with stack_lock(store, stack):
                results.append(backend.restore(stack, fetch, version, progress))
    return results


def _recorded_backend(stack: str, store_opener: Callable[[], Store] | None) -> str:
    """The backend a stack was deployed with, as the store recorded it (default engine)."""
    if store_opener is None:
        return "engine"
    try:
        with store_opener() as store:
            records = store.usages(stack=stack)
    except NotFoundError:
        return "engine"
    return records[0].backend if records else "engine"


def stacks(store_opener: Callable[[], Store] | None = None) -> list[StackSummary]:
    """Stacks found on every backend that answers (a non-swarm engine has no swarm stacks)."""
    from composesecrets.backends import BACKENDS
    from composesecrets.errors import BackendError

    found: dict[str, StackSummary] = {}
    for name in BACKENDS:
        backend = get_backend(name)
        try:
            names = backend.stacks()
        except BackendError:
            if name == "engine":
                raise
            continue  # e.g. the swarm backend on an engine that is not a manager
        for stack in names:
            if stack in found:
                continue
            services = {c.service for c in backend.containers(stack)}
            found[stack] = StackSummary(stack, len(services), backend.name)
    return [found[name] for name in sorted(found)]


def containers(stack: str, store_opener: Callable[[], Store] | None = None) -> list[ContainerInfo]:
    backend = get_backend(_recorded_backend(stack, store_opener))
    found = backend.containers(stack)
    if not found:
        raise NotFoundError(f"nothing of stack {stack} runs on the {backend.name} backend")
    return found


def services(stack: str, store_opener: Callable[[], Store] | None = None) -> list[ServiceSummary]:
    grouped: dict[str, list[ContainerInfo]] = {}
    for info in containers(stack, store_opener):
        grouped.setdefault(info.service, []).append(info)
    return [
        ServiceSummary(
            name=f"{stack}_{name}",
            image=items[0].image,
            replicas=len(items),
            running=sum(i.state == "running" for i in items),
        )
        for name, items in sorted(grouped.items())
    ]


def describe(result: Any) -> str:
    """One line summing up a deploy result."""
    parts = []
    for label in ("created", "recreated", "started", "unchanged", "removed"):
        items = getattr(result, label, ())
        if items:
            parts.append(f"{len(items)} {label}")
    return ", ".join(parts) or "nothing to do"
