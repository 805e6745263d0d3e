"""``store accept-restore`` and ``store audit --verify``: the store's rollback protection."""

from __future__ import annotations

import typer

from composesecrets.cli.app import open_store
from composesecrets.cli.store_cmds import store_app
from composesecrets.errors import IntegrityError


@store_app.command("accept-restore")
def store_accept_restore(ctx: typer.Context) -> None:
    """Accept the store as it is now after restoring a backup ON PURPOSE.

    Opening an older copy of a store (or an emptied one) is refused, because it is what a
    rollback attack or a lost write looks like. After you restored a backup deliberately, this
    records its state as the newest one. Its contents must still authenticate under the key.
    After deleting a store on purpose, it accepts a new, empty one in its place.
    """
    with open_store(ctx, accept_restore=True) as store:
        counter = store.accept_restore()
        report = store.verify()
    typer.echo(
        f"accepted store {store.store_id} at state {counter} as its newest state;"
        f" {report.checked} versions verified"
    )
    if not report.ok:
        for failure in report.failures:
            typer.echo(f"FAILED {failure.describe()}")
        raise typer.Exit(IntegrityError.exit_code)


def verify_audit(ctx: typer.Context) -> None:
    """Walk the audit chain; print each entry that was edited or follows a removed one."""
    with open_store(ctx, create=False) as store:
        failures = store.verify_audit()
        count = len(store.audit())
    for line in failures:
        typer.echo(f"FAILED {line}")
    if failures:
        typer.echo(f"{len(failures)} of {count} audit entries failed", err=True)
        raise typer.Exit(IntegrityError.exit_code)
    typer.echo(f"ok: {count} audit entries verified")
