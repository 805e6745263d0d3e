"""``store``: status, verify, re-key, change the unlock method, read the audit log."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from composesecrets.cli.app import (
    ListFormat,
    TableOrJson,
    group,
    notice,
    open_store,
    print_json,
    prompt,
    table,
)
from composesecrets.errors import IntegrityError

store_app = group("store", "Inspect, verify and re-key the encrypted store.")


@store_app.command("status")
def store_status(ctx: typer.Context, fmt: TableOrJson = ListFormat.table) -> None:
    """Where the store is, how it is unlocked, and what it holds (no key needed)."""
    with open_store(ctx, create=False) as store:
        status = store.status().to_json()
    if fmt is ListFormat.json:
        print_json(status)
        return
    for key, value in status.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{key + ':':<16} {'-' if shown in (None, '') else shown}")


@store_app.command("verify")
def store_verify(ctx: typer.Context) -> None:
    """Open every stored version; list any that fails authentication (exit 4)."""
    with open_store(ctx, create=False) as store:
        report = store.verify()
    for failure in report.failures:
        typer.echo(f"FAILED {failure.describe()}")
    if not report.ok:
        bad_versions = sum(1 for f in report.failures if f.kind == "version")
        bad_rows = len(report.failures) - bad_versions
        summary = f"{bad_versions} of {report.checked} version{'s' * (report.checked != 1)} failed"
        if bad_rows:
            summary += f"; the metadata of {bad_rows} secret{'s' * (bad_rows != 1)} failed"
        typer.echo(summary, err=True)
        raise typer.Exit(IntegrityError.exit_code)
    typer.echo(f"ok: {report.checked} version{'s' * (report.checked != 1)} verified")


def _report_key_change(change: Any) -> None:
    count = change.versions_rewrapped
    typer.echo(
        f"unlock method: {change.method}; {count} data key{'s' * (count != 1)} re-wrapped"
        f" (key generation {change.generation})"
    )
    if change.key_file:
        typer.echo(f"key file: {change.key_file}")
    if change.kept_key_file:
        typer.echo(
            f"the previous key is kept in {change.kept_key_file}: backups of this store (and"
            " other stores that shared the key file) open with it; delete it when none needs it",
            err=True,
        )
    if change.old_key_file:
        typer.echo(
            f"the old key file {change.old_key_file} no longer opens this store's new data;"
            " keep it while backups or other stores need it",
            err=True,
        )


@store_app.command("rotate-key")
def store_rotate_key(ctx: typer.Context) -> None:
    """Make a new root key and re-wrap every data key in one transaction.

    A key file gets a fresh key (the previous one is kept as <key>.gen<N>-<hash>). An
    environment-key store needs the new key first: COMPOSESECRETS_NEW_KEY (see `store new-key`).
    """
    with open_store(ctx, create=False) as store:
        change = store.rotate_key()
    _report_key_change(change)


@store_app.command("new-key")
def store_new_key() -> None:
    """Print a fresh random key for COMPOSESECRETS_NEW_KEY / COMPOSESECRETS_KEY (no store is
    touched: save it first, then rotate to it)."""
    from composesecrets.store import keys

    typer.echo(keys.encode_key(os.urandom(32)))


class UnlockMethod(str, Enum):
    keyfile = "keyfile"
    env = "env"
    passphrase = "passphrase"


@store_app.command("change-unlock")
def store_change_unlock(
    ctx: typer.Context,
    to: Annotated[
        UnlockMethod, typer.Argument(metavar="METHOD", help="keyfile, env or passphrase.")
    ],
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", metavar="FILE", help="Key file path (keyfile method)."),
    ] = None,
) -> None:
    """Switch between a key file, an environment key and a passphrase, under a new root key.

    The new passphrase (12 characters or more) comes from COMPOSESECRETS_NEW_PASSPHRASE or a
    prompt on a terminal; a new environment key from COMPOSESECRETS_NEW_KEY (see `store
    new-key`) or COMPOSESECRETS_KEY.
    """
    from composesecrets.store import EnvKeyUnlock, KeyFileUnlock, PassphraseUnlock, Unlock

    new: Unlock
    if to is UnlockMethod.keyfile:
        new = KeyFileUnlock(path=key_file, notice=notice)
    elif to is UnlockMethod.env:
        new = EnvKeyUnlock()
    else:
        given = os.environ.get("COMPOSESECRETS_NEW_PASSPHRASE")
        new = PassphraseUnlock(given if given else prompt)
    with open_store(ctx, create=False) as store:
        change = store.change_unlock(new)
    _report_key_change(change)


@store_app.command("audit")
def store_audit(
    ctx: typer.Context,
    fmt: TableOrJson = ListFormat.table,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", help="Newest N entries.")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Check the audit chain instead (exit 4 if broken)."),
    ] = False,
) -> None:
    """Print the append-only audit log: who did what, when (never a value)."""
    if verify:
        from composesecrets.cli.restore_cmds import verify_audit

        verify_audit(ctx)
        return
    with open_store(ctx, create=False) as store:
        entries = store.audit(limit=limit)
    if fmt is ListFormat.json:
        print_json([e.to_json() for e in entries])
        return
    rows = [[str(e.seq), e.to_json()["At"], e.who, e.action, e.target, e.detail] for e in entries]
    typer.echo(table(rows, ["SEQ", "AT", "WHO", "ACTION", "TARGET", "DETAIL"]))


# `store accept-restore` lives in its own module; registered whenever `store` is loaded.
from composesecrets.cli import restore_cmds as _restore_cmds  # noqa: E402,F401
