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
    app,
    group,
    notice,
    open_store,
    print_json,
    prompt,
    table,
)
from composesecrets.errors import IntegrityError

store_app = group("Inspect, verify and re-key the encrypted store.")
app.add_typer(store_app, name="store")


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
        summary = (
            f"{bad_versions} of {report.checked} version{'s' * (report.checked != 1)} failed"
        )
        if bad_rows:
            summary += f"; the metadata of {bad_rows} secret{'s' * (bad_rows != 1)} failed"
        typer.echo(summary, err=True)
        raise typer.Exit(IntegrityError.exit_code)
    typer.echo(f"ok: {report.checked} version{'s' * (report.checked != 1)} verified")


def _report_key_change(change: Any) -> None:
    count = change.versions_rewrapped
    typer.echo(f"unlock method: {change.method}; {count} data key{'s' * (count != 1)} re-wrapped")
    if change.key_file:
        typer.echo(f"key file: {change.key_file}")
    if change.old_key_file:
        typer.echo(
            f"the old key file {change.old_key_file} is no longer used by this store; "
            "delete it once no other store uses it",
            err=True,
        )
    if change.generated_key:
        # The only copy of a new environment key: shown once, as `docker swarm unlock-key
        # --rotate` does, so that the user can put it in their CI settings.
        typer.echo(
            "new COMPOSESECRETS_KEY below: store it now (e.g. in your CI secret settings); "
            "it is not shown again",
            err=True,
        )
        typer.echo(change.generated_key)


@store_app.command("rotate-key")
def store_rotate_key(ctx: typer.Context) -> None:
    """Make a new root key and re-wrap every data key in one transaction."""
    with open_store(ctx, create=False) as store:
        change = store.rotate_key()
    _report_key_change(change)


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
    """Switch between a key file, an environment key and a passphrase; data stays as it is.

    The new passphrase comes from COMPOSESECRETS_NEW_PASSPHRASE or a prompt on a terminal.
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
