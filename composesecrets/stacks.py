"""Stack operations: the library API behind ``composesecrets stack ...``.

``deploy`` loads and validates the compose files strictly, plans (and tells every warning,
refusing keys the backend does not apply that change what runs), resolves every secret and
config against the encrypted store (:mod:`.stackfiles`: ``file:`` ones are imported as
``<STACK>_<key>``, a changed file becomes a new version; ``external`` ones must exist), asks
the backend to refuse what cannot work, and only then changes the store and the engine.
``dry_run`` stops before any change and reports what ``deploy`` would do. The deployment
(services and secret versions in use) is recorded in the store so that ``secret rm`` refuses
secrets in use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composesecrets.docker_rules import LABEL_STACK
from composesecrets.errors import (
    ComposeSecretsError,
    ConflictError,
    DeployFailedError,
    InvalidComposeError,
    NotFoundError,
    UnappliedKeysError,
)

if TYPE_CHECKING:  # imported where used
    from composesecrets import model, stackfiles
    from composesecrets.backends import (
        Backend,
        DeployResult,
        Plan,
        Progress,
        RemoveResult,
    )
    from composesecrets.backends.engine.restore import RestoreResult
    from composesecrets.store import Store


@dataclass(frozen=True)
class StackDeployment:
    """The outcome of ``deploy``."""

    stack: str
    backend: str
    result: DeployResult
    warnings: tuple[str, ...] = ()
    imported: tuple[str, ...] = ()  # store secrets created or given a new version


def _ignore(_warning: str) -> None:
    """Warnings are in the outcome too; callers that print them early pass ``warn``."""


@dataclass
class DeployOptions:
    files: Sequence[str] = ()
    env_file: str | Path | None = None
    backend: str | None = None  # None: the backend the stack runs on, else engine
    delivery: str = "tmpfs"
    store_dir: Path | None = None
    store_opener: Callable[[], Store] | None = None
    allow_unapplied: bool = False  # deploy even when a key that changes what runs is unapplied
    warn: Callable[[str], None] = _ignore  # told each warning before anything changes


def _open_store(options: DeployOptions, *, create: bool = True) -> Store:
    """The store (``create=False``: a missing store is :class:`NotFoundError`; callers that
    pass ``store_opener`` decide themselves)."""
    if options.store_opener is not None:
        return options.store_opener()
    from composesecrets.store import Store

    return Store.open(options.store_dir, create=create)


def deploy(stack: str, options: DeployOptions, progress: Progress) -> StackDeployment:
    """Validate, resolve secrets and configs, then converge the backend to the compose files.

    Raises :class:`InvalidComposeError` carrying the diagnostics when the files are invalid,
    and whatever the backend's plan refuses, before the store or the engine change. The
    warnings (validation warnings, keys the backend does not apply) go to ``options.warn``
    before anything changes; a key that changes what runs refuses the deploy
    (:class:`UnappliedKeysError`) unless ``options.allow_unapplied``. Without
    ``options.backend`` the stack's recorded backend is used (engine for a new stack); another
    one is refused (:class:`ConflictError`) with the steps to move the stack. A ``file:``
    whose file is missing uses the store's ``<STACK>_<key>`` (and says so)."""
    from composesecrets import stackfiles

    loaded, plan, backend, warnings = _prepare(stack, options, options.backend or "engine")
    with _open_store(options) as store, stack_lock(store, stack):
        chosen = _deploy_backend(store, stack, options.backend)
        if chosen != backend.name:
            loaded, plan, backend, warnings = _prepare(stack, options, chosen)
        definitions = stackfiles.used(loaded)
        stackfiles.check_external(store, definitions)
        stored = _stored_instead_of_missing_files(store, definitions)
        backend.preflight(plan)
        for name, (path, version) in sorted(stored.items()):
            note = f"note: {path} not found: using {name} version {version} from the store"
            options.warn(note)
            warnings.append(note)
        values: dict[str, tuple[bytes, int]] = {}
        to_import = [d for d in definitions if d.name not in stored]
        imported = stackfiles.import_files(store, to_import, stack, progress, values)
        secrets, usages = stackfiles.service_files(store, loaded, values)
        read = " ".join(f"{name}@{version}" for name, (_, version) in sorted(values.items()))
        store.note("read", stack, f"deploy with {backend.name}: {read}")
        try:
            result = backend.deploy(plan.with_secrets(secrets), progress)
        except DeployFailedError:
            _forget_imports(store, [(name, values[name][1]) for name in imported])
            raise
        store.record_usage(stack, backend.name, usages)
    return StackDeployment(stack, backend.name, result, tuple(warnings), tuple(imported))


def _prepare(
    stack: str, options: DeployOptions, backend_name: str
) -> tuple[model.Stack, Plan, Backend, list[str]]:
    """Load and validate strictly, plan, tell the warnings, refuse unapplied keys."""
    from composesecrets import stackfiles
    from composesecrets.backends import DeployRequest, get_backend
    from composesecrets.backends.unapplied import blocking
    from composesecrets.compose.project import load_project, read_env_files

    project = load_project(
        options.files,
        env_file=options.env_file,
        stack_name=stack,
        compat=False,
        backend="swarm" if backend_name == "swarm" else "engine",
        backend_checks=False,  # the plan below reports unapplied keys itself, first
    )
    # a missing secret file is fine when the store already holds <STACK>_<key> (checked later)
    errors = [d for d in project.errors if d.rule not in MISSING_FILE_RULES]
    if errors or project.stack is None:
        raise InvalidComposeError(
            f"the compose file is invalid ({len(project.errors)} error(s)); nothing was deployed",
            diagnostics=project.diagnostics,
        )
    loaded = read_env_files(project.stack)
    stackfiles.check_names(loaded)
    backend = get_backend(backend_name)
    plan = backend.plan(DeployRequest(stack, loaded, options.delivery))
    warnings = [d.text() for d in project.warnings]
    warnings += [f"warning: {w}" for w in plan.warnings]
    for warning in warnings:
        options.warn(warning)
    refused = blocking(plan.warnings)
    if refused and not options.allow_unapplied:
        keys = ", ".join(dict.fromkeys(w.subject for w in refused))
        raise UnappliedKeysError(
            f"the {backend.name} backend does not apply {keys}, which changes what runs; "
            "nothing was deployed",
            hint="remove or change those keys, or deploy anyway with --allow-unapplied",
        )
    return loaded, plan, backend, warnings


@dataclass(frozen=True)
class DryRun:
    """What ``deploy`` would do (``stack deploy --dry-run``); nothing was changed."""

    stack: str
    backend: str
    result: DeployResult
    files: tuple[stackfiles.Planned, ...]
    warnings: tuple[str, ...] = ()


def dry_run(stack: str, options: DeployOptions) -> DryRun:
    """Load, validate, plan and resolve secrets and configs without importing them, and
    compare with what runs: the store and the engine stay unchanged."""
    from composesecrets import stackfiles

    loaded, plan, backend, warnings = _prepare(stack, options, options.backend or "engine")
    definitions = stackfiles.used(loaded)
    try:
        store: Store | None = _open_store(options, create=False)
    except NotFoundError:
        store = None  # no store yet: every file would be imported as version 1
    with contextlib.ExitStack() as cleanup:
        if store is not None:
            cleanup.enter_context(store)
        stackfiles.check_external(store, definitions)
        secrets, planned = stackfiles.preview(store, loaded, definitions)
    result = backend.diff(plan.with_secrets(secrets))
    return DryRun(stack, backend.name, result, tuple(planned), tuple(warnings))


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
    record in the store); None when none has (a non-manager engine has no swarm stacks)."""
    from composesecrets.backends import engine_reader, listing
    from composesecrets.errors import BackendError

    api = engine_reader.connect()
    for name, found in (("engine", listing.engine_stacks), ("swarm", listing.swarm_stacks)):
        try:
            if stack in found(api):
                return name
        except BackendError:
            continue  # unreachable, or remote: what comes next says so (or refuses it)
    return None


# compose check rules that report a ``file:`` source that does not exist
MISSING_FILE_RULES = frozenset(("file-missing",))


def _stored_instead_of_missing_files(
    store: Store, definitions: Sequence[model.SecretDef]
) -> dict[str, tuple[Path, int]]:
    """Store name -> (missing file, current version) for each ``file:`` definition whose file
    is gone but whose ``<STACK>_<key>`` the store holds; an error when neither exists."""
    out: dict[str, tuple[Path, int]] = {}
    unresolved = []
    for definition in definitions:
        if definition.external or definition.file is None or Path(definition.file).exists():
            continue
        try:
            version = store.inspect(definition.name).info.version
        except NotFoundError:
            unresolved.append(str(definition.file))
            continue
        out[definition.name] = (Path(definition.file), version)
    if unresolved:
        raise InvalidComposeError(
            f"file(s) {', '.join(sorted(unresolved))} do not exist and are not in the store; "
            "nothing was deployed",
            hint="create the file, or import the value: composesecrets secret create NAME FILE",
        )
    return out


@contextlib.contextmanager
def stack_lock(store: Store, stack: str) -> Iterator[None]:
    """One deploy or removal of a stack at a time (an flock on a file in the store dir)."""
    directory = store.directory / "locks"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(directory / f"{stack}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise
        yield  # a read-only store: nothing can change it concurrently, deploy reads only
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
    from composesecrets.backends import get_backend
    from composesecrets.store import Store

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
    # the light Engine API transport (no docker SDK, no deploy code): a restore runs at boot,
    # where every part of a second counts
    from composesecrets.backends import engine_reader, listing
    from composesecrets.backends.engine import restore as restoring
    from composesecrets.backends.engine.restore import FileRecord
    from composesecrets.store import Store

    api = engine_reader.connect()
    opener = store_opener or (lambda: Store.open(store_dir, create=False))
    results = []
    with opener() as store:
        records = store.usages()
        targets = list(names)
        if everything:
            # stacks deployed with secrets from this store (Docker restarts the others itself)
            recorded = {r.stack for r in records if r.backend == "engine"}
            targets += sorted(recorded - set(targets))
        for stack in targets:
            mine = [r for r in records if r.stack == stack]
            if mine and mine[0].backend != "engine":
                progress(stack, f"skipped: runs on {mine[0].backend} (keeps its own secrets)")
                continue
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
                containers = restoring.stack_containers(api, stack)
                # (a stack of networks only is on the engine too: nothing to restore)
                if not containers and stack not in listing.engine_stacks(api):
                    if everything and stack not in names:
                        progress(stack, "skipped: recorded in the store, not on the engine")
                        continue
                    raise NotFoundError(f"nothing of stack {stack} is on the engine")
                results.append(
                    restoring.restore_stack(stack, containers, fetch, version, progress)
                )
    return results


def describe(result: Any) -> str:
    """One line summing up a deploy result."""
    parts = []
    for label in ("created", "recreated", "rotated", "started", "unchanged", "removed"):
        items = getattr(result, label, ())
        if items:
            parts.append(f"{len(items)} {label}")
    return ", ".join(parts) or "nothing to do"
