"""``secret``: create, rotate, list, inspect and remove secrets in the encrypted store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from composesecrets.cli.app import (
    ListFormat,
    TableOrJson,
    ago,
    app,
    open_store,
    print_json,
    table,
)
from composesecrets.errors import ComposeSecretsError, NotFoundError

secret_app = typer.Typer(
    help="Manage secrets in the encrypted store (Docker's `docker secret` shape).",
    no_args_is_help=True,
)
app.add_typer(secret_app, name="secret")

SecretName = Annotated[
    str, typer.Argument(help="Secret name (exact; never an ID).", show_default=False)
]
ValueSource = Annotated[
    str,
    typer.Argument(
        metavar="FILE|-",
        help="File holding the value, or - for standard input (never the command line).",
        show_default=False,
    ),
]
SecretNames = Annotated[
    list[str], typer.Argument(help="Secret names (exact; never IDs).", show_default=False)
]
SecretRefs = Annotated[
    list[str], typer.Argument(help="Names, IDs or unique ID prefixes.", show_default=False)
]


@secret_app.command("create")
def secret_create(
    ctx: typer.Context,
    name: SecretName,
    source: ValueSource,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="Label K=V (repeatable).")
    ] = None,
) -> None:
    """Create a secret from a file or standard input; prints its ID."""
    from composesecrets.store import check_name, parse_label, read_value

    check_name(name)
    labels = dict(parse_label(item) for item in label or [])
    value = read_value(source)
    with open_store(ctx) as store:
        info = store.create(name, value, labels)
    typer.echo(info.id)


@secret_app.command("rotate")
def secret_rotate(ctx: typer.Context, name: SecretName, source: ValueSource) -> None:
    """Add a new version of a secret from a file or standard input; prints ID and version."""
    from composesecrets.store import read_value

    value = read_value(source)
    with open_store(ctx, create=False) as store:
        info = store.rotate(name, value)
    typer.echo(f"{info.id} version {info.version}")


@secret_app.command("ls")
def secret_ls(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print IDs.")] = False,
    fmt: TableOrJson = ListFormat.table,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", "-f", help="name=PREFIX, id=PREFIX, label=K or label=K=V."),
    ] = None,
) -> None:
    """List secrets: ID, NAME, VERSION, CREATED, UPDATED (values are never shown)."""
    try:
        store = open_store(ctx, create=False)
    except NotFoundError:
        found: list[Any] = []  # no store yet: nothing to list
    else:
        with store:
            found = store.list_secrets(filters or [])
    if quiet:
        for info in found:
            typer.echo(info.id)
    elif fmt is ListFormat.json:
        print_json([info.to_docker() for info in found])
    else:
        rows = [[i.id, i.name, str(i.version), ago(i.created_at), ago(i.updated_at)] for i in found]
        typer.echo(table(rows, ["ID", "NAME", "VERSION", "CREATED", "UPDATED"]))


@secret_app.command("inspect")
def secret_inspect(ctx: typer.Context, names: SecretRefs) -> None:
    """Show secrets as JSON in Docker's shape, with versions, sizes and digests; never values."""
    with open_store(ctx, create=False) as store:
        details = [store.inspect(name, allow_id=True).to_docker() for name in names]
    print_json(details)


@secret_app.command("rm")
def secret_rm(ctx: typer.Context, names: SecretNames) -> None:
    """Remove secrets (refused while a deployed stack uses them)."""
    failure: ComposeSecretsError | None = None
    with open_store(ctx, create=False) as store:
        for name in names:
            try:
                store.remove(name)
            except ComposeSecretsError as exc:
                typer.echo(f"composesecrets: error: {exc.message}", err=True)
                failure = failure or exc
            else:
                typer.echo(name)
    if failure is not None:
        raise typer.Exit(failure.exit_code)
