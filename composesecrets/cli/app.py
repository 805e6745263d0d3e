"""The root typer app, its global options, and the helpers every command group shares."""

# No ``from __future__ import annotations`` here: typer reads the annotations of the command
# being run twice on every start, and string annotations were compiled and evaluated each time
# (~3 ms for ``validate``); evaluated once when the module runs, they cost a fraction of that.

import sys
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from composesecrets import __version__
from composesecrets.cli.grammar import DockerGroup, DockerTyper
from composesecrets.errors import StoreLockedError

app = DockerTyper(
    name="composesecrets",
    cls=DockerGroup,
    help="Swarm-grade secrets for plain Docker, from an ordinary compose file.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def group(name: str, help_text: str) -> DockerTyper:
    """A command group (``secret``, ``stack``, ``store``) with Docker's grammar, added to the
    root app under ``name``."""
    found = DockerTyper(
        group_name=name,
        cls=DockerGroup,
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    app.add_typer(found, name=name)
    return found


class ListFormat(str, Enum):
    table = "table"
    json = "json"


TableOrJson = Annotated[
    ListFormat, typer.Option("--format", metavar="[table|json]", help="Output: table or json.")
]


def _complete_format(incomplete: str) -> list[str]:
    return [f for f in ("table", "json", "{{json .}}") if f.startswith(incomplete)]


FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        metavar="[table|json|TEMPLATE]",
        help="Output: table, json, or a Go template as docker's --format takes "
        "('{{.Name}}', 'table {{.ID}}\\t{{.Name}}', '{{json .}}').",
        autocompletion=_complete_format,
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only print names or IDs.")]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"composesecrets {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            metavar="DIR",
            help="Store directory (default: $COMPOSESECRETS_HOME, else "
            "~/.local/share/composesecrets).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Log each Docker API call and its outcome to stderr (never a secret value); "
            "also COMPOSESECRETS_DEBUG=1.",
        ),
    ] = False,
) -> None:
    """Validate compose files, keep their secrets encrypted, deploy stacks with them."""
    if debug:
        from composesecrets.backends.docker_api import enable_debug

        enable_debug()
    ctx.obj = {"store": store}


def store_dir(ctx: typer.Context) -> Path | None:
    obj = ctx.find_root().obj or {}
    found: Path | None = obj.get("store")
    return found


def prompt(new: bool) -> str:
    """Ask for the store passphrase on a terminal (twice when setting a new one)."""
    if not sys.stdin.isatty():
        raise StoreLockedError(
            "the store is protected by a passphrase and there is no terminal to ask for it",
            hint="set COMPOSESECRETS_PASSPHRASE in the environment of the command",
        )
    text: str = typer.prompt(
        "New store passphrase" if new else "Store passphrase",
        hide_input=True,
        confirmation_prompt=new,
        err=True,
    )
    return text


def read_secret_value(source: str) -> bytes:
    """A secret value from FILE or ``-``. Typed at a terminal (``-`` with stdin a TTY), it is
    asked for twice without echo and stored without the line end, as ``pass insert`` does;
    piped input is kept byte for byte."""
    from composesecrets.store import read_value
    from composesecrets.store.validation import check_value

    if source != "-" or not sys.stdin.isatty():
        return read_value(source)
    text: str = typer.prompt(
        "Secret value (not shown)", hide_input=True, confirmation_prompt=True, err=True
    )
    value = text.encode("utf-8")
    check_value(value, name=None)
    return value


def notice(message: str) -> None:
    typer.echo(message, err=True)


def open_store(ctx: typer.Context, *, create: bool = True, accept_restore: bool = False) -> Any:
    from composesecrets.store import AutoUnlock, Store

    return Store.open(
        store_dir(ctx),
        unlock=AutoUnlock(prompt=prompt, notice=notice),
        create=create,
        accept_restore=accept_restore,
        notice=notice,
    )


def print_json(data: Any) -> None:
    import json  # not for --version and the commands that print no JSON (start-up)

    typer.echo(json.dumps(data, indent=2))


def ago(moment: datetime) -> str:
    seconds = int((datetime.now(timezone.utc) - moment).total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' * (n != 1)} ago"
    return "Less than a minute ago"


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
