"""``stack``: deploy, remove and list stacks with their secrets."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from composesecrets.cli.app import (
    FormatOption,
    Quiet,
    app,
    group,
    open_store,
    print_json,
    table,
)
from composesecrets.cli.completion import complete_stack
from composesecrets.cli.compose_cmds import config
from composesecrets.cli.options import ComposeFiles, EnvFile
from composesecrets.cli.progress import Progress
from composesecrets.cli.templates import parse_format, render
from composesecrets.errors import InvalidComposeError

stack_app = group("Deploy and tear down stacks with their secrets (Docker's `docker stack` shape).")
app.add_typer(stack_app, name="stack")


class DeliveryMode(str, Enum):
    tmpfs = "tmpfs"
    copy = "copy"


class BackendName(str, Enum):
    engine = "engine"
    swarm = "swarm"


StackArg = Annotated[
    str,
    typer.Argument(
        metavar="STACK", help="Stack name.", show_default=False, autocompletion=complete_stack
    ),
]
NoProgress = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


def _unlocked(store: Any) -> Any:
    """The store unlocked now: a passphrase prompt comes before any progress is drawn."""
    if store.status().initialised:
        store.unlock()
    return store


@stack_app.command("deploy")
def stack_deploy(
    ctx: typer.Context,
    stack: StackArg,
    compose_file: ComposeFiles = None,
    backend: Annotated[
        BackendName,
        typer.Option(
            "--backend",
            metavar="[engine|swarm]",
            help="engine (one Docker Engine, the default) or swarm.",
            show_default=False,
        ),
    ] = BackendName.engine,
    env_file: EnvFile = None,
    delivery: Annotated[
        DeliveryMode,
        typer.Option(
            "--secret-delivery",
            metavar="[tmpfs|copy]",
            help="tmpfs (default: memory-backed files bind-mounted read-only) or copy "
            "(written into each container before it starts; for remote engines).",
            show_default=False,
        ),
    ] = DeliveryMode.tmpfs,
    quiet: NoProgress = False,
    allow_unapplied: Annotated[
        bool,
        typer.Option(
            "--allow-unapplied",
            help="Deploy even when the backend does not apply a compose key that changes what "
            "runs (build, devices on Swarm, ...); the warnings name each one.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Change nothing: print what would be created, recreated, rotated in place, "
            "left unchanged and removed, and the secret and config versions each service "
            "would get.",
        ),
    ] = False,
) -> None:
    """Validate, import the secrets and configs into the store, and run the stack."""
    from composesecrets import stacks
    from composesecrets.compose.diagnostics import render_text
    from composesecrets.compose.project import check_stack_name

    check_stack_name(stack)
    if delivery is DeliveryMode.copy and not dry_run:
        typer.echo(
            "warning: --secret-delivery copy puts plaintext secret files into each container's "
            "writable layer on the engine's host (until the container is removed)",
            err=True,
        )
    options = stacks.DeployOptions(
        files=compose_file or [],
        env_file=env_file,
        backend=backend.value,
        delivery=delivery.value,
        store_opener=lambda: _unlocked(open_store(ctx, create=not dry_run)),
        allow_unapplied=allow_unapplied,
        warn=lambda text: typer.echo(text, err=True),  # before anything changes
    )
    if dry_run:
        try:
            preview = stacks.dry_run(stack, options)
        except InvalidComposeError as exc:
            if exc.diagnostics:
                typer.echo(render_text(exc.diagnostics), err=True)
            raise
        _print_dry_run(preview)
        return
    progress = Progress(quiet)
    try:
        outcome = stacks.deploy(stack, options, progress)
    except InvalidComposeError as exc:
        progress.close(ok=False)
        if exc.diagnostics:
            typer.echo(render_text(exc.diagnostics), err=True)
        raise
    except BaseException:
        progress.close(ok=False)
        raise
    progress.close()
    if not quiet:
        summary = stacks.describe(outcome.result)
        typer.echo(f"stack {stack} deployed on {outcome.backend}: {summary}")


def _print_dry_run(preview: Any) -> None:
    """``--dry-run``: one line per object and what would happen to it, then the files."""
    from composesecrets import stacks

    result = preview.result
    for label in ("created", "recreated", "rotated", "unchanged", "removed"):
        for name in getattr(result, label):
            typer.echo(f"{label:<10} {name}")
    for name in result.networks_created:
        typer.echo(f"{'created':<10} network {name}")
    for item in preview.files:
        typer.echo(f"{'files':<10} {item.service}: {item.text()}")
    summary = stacks.describe(result)
    typer.echo(f"dry run: stack {preview.stack} on {preview.backend} would be: {summary}; "
               "nothing was changed")  # fmt: skip


@stack_app.command("rm")
def stack_rm(
    ctx: typer.Context,
    names: Annotated[
        list[str],
        typer.Argument(
            metavar="STACK...",
            help="Stacks to remove.",
            show_default=False,
            autocompletion=complete_stack,
        ),
    ],
    keep_secrets: Annotated[
        bool, typer.Option("--keep-secrets", help="Keep the stack's own secrets in the store.")
    ] = False,
    quiet: NoProgress = False,
) -> None:
    """Remove stacks: containers, networks, secret files and (by default) their own secrets."""
    from composesecrets import stacks

    progress = Progress(quiet)
    try:
        for name in names:
            stacks.remove(
                name,
                keep_secrets=keep_secrets,
                store_opener=lambda: open_store(ctx, create=False),
                progress=progress,
            )
    except BaseException:
        progress.close(ok=False)
        raise
    progress.close()
    if not quiet:
        for name in names:
            typer.echo(f"stack {name} removed")


stack_app.command(
    "config",
    help="Print the normalised configuration of compose files (as docker stack config).",
)(config)


Rows = Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def _listing(
    fmt: str,
    quiet: bool,
    command: str,
    headers: dict[str, str],
    rows: Rows,
    key: str,
    columns: list[str],
) -> None:
    """Print the template rows as -q (the ``key`` field), a template or the default table
    (``columns``), or the JSON document; ``rows()`` gives (template rows, json rows)."""
    output = parse_format(fmt, list(headers), command=command)
    found, documents = rows()
    if quiet:
        for row in found:
            typer.echo(row[key] or row["Name"])
    elif output.kind == "json":
        print_json(documents)
    elif output.is_template:
        if found or output.kind == "table-template":
            typer.echo(render(output, found, headers))
    else:
        typer.echo(
            table([[_cell(r[n]) for n in columns] for r in found], [headers[n] for n in columns])
        )


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "-"
    return str(value)


@stack_app.command("ls")
def stack_ls(ctx: typer.Context, quiet: Quiet = False, fmt: FormatOption = "table") -> None:
    """List stacks on the engine (and on the swarm, when the engine is a swarm manager)."""

    def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from composesecrets import stacks

        found = stacks.stacks(lambda: open_store(ctx, create=False))
        out = [{"Name": s.name, "Services": s.services, "Backend": s.backend} for s in found]
        return out, [s.to_json() for s in found]

    headers = {"Name": "NAME", "Services": "SERVICES", "Backend": "BACKEND"}
    _listing(fmt, quiet, "stack ls", headers, rows, "Name", list(headers))


@stack_app.command("ps")
def stack_ps(
    ctx: typer.Context, stack: StackArg, quiet: Quiet = False, fmt: FormatOption = "table"
) -> None:
    """One line per container: name, image, state, the secrets mounted and the store
    versions it holds (for in-place rotation: the live ones) (-q: IDs)."""

    def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from composesecrets import stacks

        found = stacks.containers(stack, lambda: open_store(ctx, create=False))
        documents = [c.to_json() for c in found]
        return [
            {
                "ID": c.id[:12],
                "Name": c.name,
                "Service": c.service,
                "Image": c.image,
                "CurrentState": c.state,
                "Secrets": list(c.secrets),
                "Versions": list(dict.fromkeys(c.versions)),
            }
            for c in found
        ], documents

    headers = {
        "ID": "ID",
        "Name": "NAME",
        "Service": "SERVICE",
        "Image": "IMAGE",
        "CurrentState": "STATE",
        "Secrets": "SECRETS",
        "Versions": "VERSIONS",
    }
    columns = ["Name", "Image", "CurrentState", "Secrets", "Versions"]
    _listing(fmt, quiet, "stack ps", headers, rows, "ID", columns)


@stack_app.command("services")
def stack_services(
    ctx: typer.Context, stack: StackArg, quiet: Quiet = False, fmt: FormatOption = "table"
) -> None:
    """One line per service: name, replicas running/wanted, image (-q: names)."""

    def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from composesecrets import stacks

        found = stacks.services(stack, lambda: open_store(ctx, create=False))
        documents = [s.to_json() for s in found]
        return [
            {"Name": s.name, "Replicas": f"{s.running}/{s.replicas}", "Image": s.image}
            for s in found
        ], documents

    headers = {"Name": "NAME", "Replicas": "REPLICAS", "Image": "IMAGE"}
    _listing(fmt, quiet, "stack services", headers, rows, "Name", list(headers))
