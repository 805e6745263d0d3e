"""``composesecrets doctor``: is this machine ready? One line per check, ok or what to do.

Checks, in order: the Docker Engine (reachable, its version), the swarm state (for the swarm
backend), the tmpfs root the engine backend writes secret files to (usable, memory-backed),
the store (found, unlocked without prompting), the key file's permissions, and which backend
each deployed stack uses (from the store's records). Nothing is changed: no tmpfs is mounted,
no store is created, no passphrase is asked for. The command exits 1 when a check fails.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from composesecrets.cli.app import app, store_dir

OK, NOTE, FAIL = "ok", "note", "FAIL"


@dataclass(frozen=True)
class Check:
    status: str  # ok, note (works, worth knowing), FAIL (must be fixed)
    name: str
    text: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"Status": self.status, "Check": self.name, "Text": self.text, "Fix": self.fix}


def engine_checks(connect: Callable[[], Any] | None = None) -> Iterator[Check]:
    """The engine line and the swarm line (``connect`` gives a docker client, for tests)."""
    from composesecrets.backends.docker_api import LazyClient, engine_address
    from composesecrets.errors import ComposeSecretsError

    host = engine_address()
    try:
        client = LazyClient().client if connect is None else connect()
        version = client.version()
        info = client.info()
    except ImportError:
        yield Check(
            FAIL,
            "engine",
            "the Docker SDK for Python is not installed",
            "reinstall composesecrets (pipx reinstall composesecrets)",
        )
        yield Check(NOTE, "swarm", "not checked (no engine)")
        return
    except ComposeSecretsError as exc:  # unreachable: the backends' words and hint
        yield Check(FAIL, "engine", exc.message, exc.hint or "")
        yield Check(NOTE, "swarm", "not checked (no engine)")
        return
    except Exception as exc:  # e.g. a fake or an engine answering version() with an error
        yield Check(FAIL, "engine", f"the Docker Engine at {host} failed: {exc}")
        yield Check(NOTE, "swarm", "not checked (no engine)")
        return
    yield Check(
        OK,
        "engine",
        f"Docker Engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"
        f" at {host}",
    )
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    if state == "active" and swarm.get("ControlAvailable"):
        yield Check(OK, "swarm", "active, this node is a manager: --backend swarm works")
    elif state == "active":
        yield Check(
            NOTE, "swarm", "active, but this node is a worker", "deploy from a manager node"
        )
    else:
        yield Check(
            NOTE,
            "swarm",
            f"{state}: the engine backend works; --backend swarm needs a swarm",
            "docker swarm init (only if you want --backend swarm)",
        )


def tmpfs_check(is_memory_backed: Callable[[Path], bool] | None = None) -> Check:
    """Where the engine backend would put secret files, checked without mounting anything."""
    from composesecrets.backends.engine import tmpfs as delivery

    memory = is_memory_backed or delivery.is_memory_backed
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return Check(
            NOTE,
            "tmpfs",
            f"the engine is remote ({host}): files on this machine cannot be bind-mounted there",
            "deploy with --secret-delivery copy",
        )
    if os.geteuid() == 0:
        root = delivery.ROOT_DIR
        if os.path.ismount(root) and memory(root):
            return Check(OK, "tmpfs", f"{root} is memory-backed (tmpfs)")
        if os.path.ismount(root):
            return Check(
                FAIL, "tmpfs", f"{root} is mounted but not memory-backed", f"umount {root}"
            )
        return Check(OK, "tmpfs", f"{root} is not mounted yet; deploy mounts a tmpfs there")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    parent = Path(runtime) if runtime and memory(Path(runtime)) else Path("/dev/shm")
    if not memory(parent):
        return Check(
            FAIL,
            "tmpfs",
            f"{parent} is not memory-backed; secret files would have nowhere safe to go",
            "run as root, or set XDG_RUNTIME_DIR to a tmpfs directory",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check(FAIL, "tmpfs", f"{parent} is not writable by this user", "run as root")
    return Check(OK, "tmpfs", f"{parent} is memory-backed and writable")


def store_checks(directory: Path | None) -> Iterator[Check]:
    """The store line, the key file line and one line on the deployed stacks."""
    from composesecrets.errors import ComposeSecretsError, NotFoundError
    from composesecrets.store import AutoUnlock, Store

    try:
        store = Store.open(directory, unlock=AutoUnlock(prompt=None, notice=None), create=False)
    except NotFoundError as exc:
        yield Check(
            NOTE,
            "store",
            f"{exc.message} yet",
            "the first `secret create` or `stack deploy` creates it",
        )
        return
    except ComposeSecretsError as exc:
        yield Check(FAIL, "store", exc.message, exc.hint or "")
        return
    with store:
        status = store.status()
        method = status.unlock_method or "not initialised"
        where = f"{status.directory}: {status.secrets} secret{'s' * (status.secrets != 1)}"
        if status.unlock_method == "passphrase" and not os.environ.get("COMPOSESECRETS_PASSPHRASE"):
            yield Check(
                NOTE,
                "store",
                f"{where}, passphrase-protected (doctor does not prompt)",
                "commands ask on a terminal, or set COMPOSESECRETS_PASSPHRASE",
            )
        elif status.initialised:
            try:
                store.unlock()
            except ComposeSecretsError as exc:  # locked, or a key file others can read
                yield Check(FAIL, "store", f"{where}, cannot unlock: {exc.message}", exc.hint or "")
            else:
                yield Check(OK, "store", f"{where}, unlocked with {method}")
        else:
            yield Check(OK, "store", f"{where}, no key yet (made by the first secret)")
        if status.key_file is not None:
            yield _key_file_check(status.key_file)
        records = store.usages()
    backends: dict[str, set[str]] = {}
    for record in records:
        backends.setdefault(record.stack, set()).add(record.backend)
    if backends:
        text = "; ".join(f"{s}: {', '.join(sorted(b))}" for s, b in sorted(backends.items()))
        yield Check(OK, "stacks", text)
    else:
        yield Check(NOTE, "stacks", "no deployed stack recorded in the store")


def _key_file_check(path: Path) -> Check:
    try:
        st = path.stat()
    except FileNotFoundError:
        return Check(
            FAIL,
            "key file",
            f"{path} is missing: the store cannot be unlocked",
            "restore the key file from your backup",
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return Check(
            FAIL, "key file", f"{path} has mode {mode:04o}: others can read it", f"chmod 600 {path}"
        )
    if st.st_uid != os.geteuid():
        return Check(
            FAIL, "key file", f"{path} belongs to uid {st.st_uid}, not to you", f"chown {path}"
        )
    return Check(OK, "key file", f"{path}: mode {mode:04o}, yours")


def run_checks(directory: Path | None) -> list[Check]:
    return [*engine_checks(), tmpfs_check(), *store_checks(directory)]


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check engine, swarm, tmpfs root, store and key file; say what to do (exit 1 if not ok)."""
    checks = run_checks(store_dir(ctx))
    if as_json:
        import json

        typer.echo(json.dumps([c.to_json() for c in checks], indent=2))
    else:
        for check in checks:
            typer.echo(f"{check.status:<5} {check.name:<9} {check.text}")
            if check.fix and check.status != OK:
                typer.echo(f"{'':<15} -> {check.fix}")
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)
