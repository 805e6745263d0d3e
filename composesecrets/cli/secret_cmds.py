"""``secret``: create, rotate, list, inspect and remove secrets in the encrypted store."""

# No ``from __future__ import annotations`` here: typer reads the annotations of the command
# being run twice on every start, and string annotations were compiled and evaluated each time
# (~3 ms for ``validate``); evaluated once when the module runs, they cost a fraction of that.

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from composesecrets.cli.app import (
    FormatOption,
    ago,
    group,
    notice,
    open_store,
    print_json,
    read_secret_value,
    store_dir,
    table,
)
from composesecrets.cli.completion import complete_secret
from composesecrets.cli.templates import parse_format, render
from composesecrets.errors import ComposeSecretsError, NotFoundError, UsageError

secret_app = group(
    "secret", "Manage secrets in the encrypted store (Docker's `docker secret` shape)."
)

NewName = Annotated[
    str, typer.Argument(metavar="NAME", help="Name of the new secret.", show_default=False)
]
SecretName = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="Secret name (exact; never an ID).",
        show_default=False,
        autocompletion=complete_secret,
    ),
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
    list[str],
    typer.Argument(
        metavar="NAME...",
        help="Secret names (exact; never IDs).",
        show_default=False,
        autocompletion=complete_secret,
    ),
]
SecretRefs = Annotated[
    list[str],
    typer.Argument(
        metavar="SECRET...",
        help="Names, IDs or unique ID prefixes.",
        show_default=False,
        autocompletion=complete_secret,
    ),
]

LS_FIELDS = {
    "ID": "ID",
    "Name": "NAME",
    "Version": "VERSION",
    "CreatedAt": "CREATED",
    "UpdatedAt": "UPDATED",
    "Labels": "LABELS",
}
INSPECT_FIELDS = ("ID", "Version", "CreatedAt", "UpdatedAt", "Spec", "Versions", "UsedBy")


@secret_app.command("create")
def secret_create(
    ctx: typer.Context,
    name: NewName,
    source: ValueSource,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", metavar="K=V", help="Label K=V (repeatable)."),
    ] = None,
) -> None:
    """Create a secret from a file or standard input; prints its ID."""
    from composesecrets.store import check_name, parse_label

    check_name(name)
    labels = dict(parse_label(item) for item in label or [])
    value = read_secret_value(source)
    with open_store(ctx) as store:
        info = store.create(name, value, labels)
    typer.echo(info.id)


@secret_app.command("rotate")
def secret_rotate(ctx: typer.Context, name: SecretName, source: ValueSource) -> None:
    """Add a new version of a secret from a file or standard input; prints ID and version."""
    value = read_secret_value(source)
    with open_store(ctx, create=False) as store:
        info = store.rotate(name, value)
    typer.echo(f"{info.id} version {info.version}")


@secret_app.command("ls")
def secret_ls(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print IDs.")] = False,
    fmt: FormatOption = "table",
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", "-f", metavar="FILTER", help="name=PREFIX, id=PREFIX, label=K or label=K=V."
        ),
    ] = None,
) -> None:
    """List secrets: ID, NAME, VERSION, CREATED, UPDATED (values are never shown)."""
    output = parse_format(fmt, list(LS_FIELDS), command="secret ls")
    try:
        store = open_store(ctx, create=False)
    except NotFoundError as exc:
        found: list[Any] = []  # no store yet: nothing to list
        if store_dir(ctx) is not None or os.environ.get("COMPOSESECRETS_HOME"):
            # a path the user gave: a typo there must not look like an empty store
            notice(f"composesecrets: note: {exc.message}")
    else:
        with store:
            found = store.list_secrets(filters or [])
    if quiet:
        for info in found:
            typer.echo(info.id)
    elif output.kind == "json":
        print_json([info.to_docker() for info in found])
    elif output.is_template:
        rows = [
            {
                "ID": i.id,
                "Name": i.name,
                "Version": i.version,
                "CreatedAt": ago(i.created_at),
                "UpdatedAt": ago(i.updated_at),
                "Labels": ",".join(f"{k}={v}" for k, v in sorted(i.labels.items())),
            }
            for i in found
        ]
        if rows or output.kind == "table-template":
            typer.echo(render(output, rows, LS_FIELDS))
    else:
        rows_ = [
            [i.id, i.name, str(i.version), ago(i.created_at), ago(i.updated_at)] for i in found
        ]
        typer.echo(table(rows_, ["ID", "NAME", "VERSION", "CREATED", "UPDATED"]))


@secret_app.command("inspect")
def secret_inspect(
    ctx: typer.Context,
    names: SecretRefs,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="[json|TEMPLATE]",
            help="json (default) or a Go template as docker's ('{{.ID}}', '{{.Spec.Name}}', "
            "'{{json .Spec.Labels}}').",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show secrets as JSON in Docker's shape, with versions, sizes and digests; never values."""
    output = parse_format(fmt or "json", INSPECT_FIELDS, command="secret inspect")
    if output.kind == "table":
        raise UsageError("secret inspect prints json or a template, not a table")
    with open_store(ctx, create=False) as store:
        details = [store.inspect(name, allow_id=True).to_docker() for name in names]
    if output.is_template:
        typer.echo(render(output, details, {}))
    else:
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


@secret_app.command("import")
def secret_import(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            metavar="DIR|FILE.env",
            help="A directory (each file is a secret named after it) or a .env file"
            " (NAME=VALUE lines).",
            show_default=False,
        ),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="Label K=V for every imported secret (repeatable)."),
    ] = None,
) -> None:
    """Create many secrets in one transaction: all of them, or (on any error) none.

    Prints the ID and name of each secret created; never a value.
    """
    from composesecrets.store import parse_label, read_import

    labels = dict(parse_label(item) for item in label or [])
    items = read_import(source)
    with open_store(ctx) as store:
        created = store.import_many((name, value, labels) for name, value in items)
    for info in created:
        typer.echo(f"{info.id}   {info.name}")
    typer.echo(f"imported {len(created)} secret{'s' * (len(created) != 1)}", err=True)


@secret_app.command("reveal")
def secret_reveal(
    ctx: typer.Context,
    name: SecretName,
    version: Annotated[
        int | None, typer.Option("--version", help="A retained version (default: current).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Print the value even when stdout is a terminal.")
    ] = False,
) -> None:
    """Write a secret's value to standard output, byte for byte, for debugging.

    Refused when standard output is a terminal (the value would stay on screen and in the
    scrollback) unless --force; recorded in the audit log as a read.
    """
    if sys.stdout.isatty() and not force:
        raise UsageError(
            "refusing to print a secret value to a terminal",
            hint="pipe or redirect the output (… | xxd, > file), or add --force",
        )
    with open_store(ctx, create=False) as store:
        value = store.get(name, version, reason="reveal")
    out = sys.stdout.buffer
    out.write(value)
    out.flush()


@secret_app.command("diff")
def secret_diff(
    ctx: typer.Context,
    name: SecretName,
    source: ValueSource,
) -> None:
    """Say whether a local file (or - for stdin) equals the stored current version.

    Compared by keyed digest; no value is printed. Exit 0 when equal, 1 when different.
    """
    from composesecrets.store import read_value

    value = read_value(source)
    with open_store(ctx, create=False) as store:
        equal, version = store.matches(name, value)
    where = "standard input" if source == "-" else source
    if equal:
        typer.echo(f"same: {where} equals {name} version {version}")
        return
    typer.echo(f"different: {where} differs from {name} version {version}")
    raise typer.Exit(1)
