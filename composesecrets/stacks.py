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
import errno
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composesecrets import model, stackfiles
from composesecrets.backends import (
    Backend,
    ContainerInfo,
    DeployRequest,
    DeployResult,
    Plan,
    Progress,
    RemoveResult,
    get_backend,
)
from composesecrets.backends.unapplied import blocking
from composesecrets.docker_rules import LABEL_STACK
from composesecrets.errors import InvalidComposeError, NotFoundError, UnappliedKeysError

if TYPE_CHECKING:  # imported where a store is opened: `stack ls` needs none (start-up)
    from composesecrets.store import Store


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


def _ignore(_warning: str) -> None:
    """Warnings are in the outcome too; callers that print them early pass ``warn``."""


@dataclass
class DeployOptions:
    files: Sequence[str] = ()
    env_file: str | Path | None = None
    backend: str = "engine"
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
    (:class:`UnappliedKeysError`) unless ``options.allow_unapplied``."""
    loaded, plan, backend, warnings = _prepare(stack, options)
    definitions = stackfiles.used(loaded)
    with _open_store(options) as store, stack_lock(store, stack):
        stackfiles.check_external(store, definitions)
        backend.preflight(plan)
        values: dict[str, tuple[bytes, int]] = {}
        imported = stackfiles.import_files(store, definitions, stack, progress, values)
        secrets, usages = stackfiles.service_files(store, loaded, values)
        read = " ".join(f"{name}@{version}" for name, (_, version) in sorted(values.items()))
        store.note("read", stack, f"deploy with {options.backend}: {read}")
        result = backend.deploy(plan.with_secrets(secrets), progress)
        store.record_usage(stack, backend.name, usages)
    return StackDeployment(stack, backend.name, result, tuple(warnings), tuple(imported))


def _prepare(stack: str, options: DeployOptions) -> tuple[model.Stack, Plan, Backend, list[str]]:
    """Load and validate strictly, plan, tell the warnings, refuse unapplied keys."""
    from composesecrets.compose.project import load_project, read_env_files

    project = load_project(
        options.files,
        env_file=options.env_file,
        stack_name=stack,
        compat=False,
        backend="swarm" if options.backend == "swarm" else "engine",
        backend_checks=False,  # the plan below reports unapplied keys itself, first
    )
    if project.errors or project.stack is None:
        raise InvalidComposeError(
            f"the compose file is invalid ({len(project.errors)} error(s)); nothing was deployed",
            diagnostics=project.diagnostics,
        )
    loaded = read_env_files(project.stack)
    stackfiles.check_names(loaded)
    backend = get_backend(options.backend)
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
    loaded, plan, backend, warnings = _prepare(stack, options)
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
        backend = get_backend(backend_name or (records[0].backend if records else "engine"))
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
    return result


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
    for label in ("created", "recreated", "rotated", "unchanged", "removed"):
        items = getattr(result, label, ())
        if items:
            parts.append(f"{len(items)} {label}")
    return ", ".join(parts) or "nothing to do"
