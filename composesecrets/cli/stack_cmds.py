"""``stack``: deploy, remove and list stacks with their secrets."""

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from composesecrets.cli.app import (
    FormatOption,
    Quiet,
    group,
    open_store,
    print_json,
    store_dir,
    table,
)
from composesecrets.cli.completion import complete_stack
from composesecrets.cli.options import ComposeFiles, EnvFile
from composesecrets.cli.templates import parse_format, render
from composesecrets.errors import InvalidComposeError

stack_app = group(
    "stack", "Deploy and tear down stacks with their secrets (Docker's `docker stack` shape)."
)


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
    if store.initialised:
        store.unlock()
    return store


@stack_app.command("deploy")
def stack_deploy(
    ctx: typer.Context,
    stack: StackArg,
    compose_file: ComposeFiles = None,
    backend: Annotated[
        BackendName | None,
        typer.Option(
            "--backend",
            metavar="[engine|swarm]",
            help="engine (one Docker Engine) or swarm. Default: the backend the stack runs "
            "on, engine for a new stack.",
            show_default=False,
        ),
    ] = None,
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
        backend=backend.value if backend is not None else None,
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
    from composesecrets.cli.progress import Progress

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
    from composesecrets.cli.progress import Progress
    from composesecrets.errors import BackendError

    progress = Progress(quiet)
    results = []
    try:
        for name in names:
            results.append(
                stacks.remove(
                    name,
                    keep_secrets=keep_secrets,
                    store_opener=lambda: open_store(ctx, create=False),
                    progress=progress,
                )
            )
    except BaseException:
        progress.close(ok=False)
        raise
    progress.close(ok=all(not r.leftovers for r in results))
    left: list[str] = []
    for result in results:
        if not result.found:
            typer.echo(f"Nothing found in stack: {result.stack}", err=True)  # as Docker says
            continue
        for what, why in result.leftovers:
            left.append(what)
            typer.echo(f"error: stack {result.stack}: {what} was left behind: {why}", err=True)
        if not quiet:
            rest = " (everything else)" if result.leftovers else ""
            typer.echo(f"stack {result.stack} removed{rest}")
    if left:
        raise BackendError(
            f"{len(left)} network(s) could not be removed: {', '.join(left)}",
            hint="see what still uses it: docker network inspect NAME; a stale endpoint of a "
            "removed container goes with docker network disconnect -f NAME CONTAINER (or a "
            "dockerd restart); then docker network rm NAME",
        )


SYSTEMD_UNIT = Path("/etc/systemd/system/composesecrets-restore.service")


@stack_app.command("restore")
def stack_restore(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Stacks to restore.", show_default=False)
    ] = None,
    every: Annotated[
        bool,
        typer.Option("--all", help="Every engine stack deployed with secrets from this store."),
    ] = False,
    install_systemd: Annotated[
        bool,
        typer.Option(
            "--install-systemd",
            help=f"Install and enable {SYSTEMD_UNIT.name}: `stack restore --all` at boot, "
            "after docker.service (needs root and a key-file store).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """After a reboot: re-create the secret files of engine stacks from the store (the
    version each container was deployed with) and start the containers whose restart policy
    says they should run. Needs no compose file and no secret file; safe to run any time."""
    from composesecrets import stacks
    from composesecrets.errors import BackendError, UsageError

    if install_systemd:
        _install_systemd(ctx)
        return
    if not names and not every:
        raise UsageError("name the stacks to restore, or give --all")
    from composesecrets.cli.progress import Progress

    progress = Progress(quiet)
    try:
        results = stacks.restore(
            names or [],
            everything=every,
            store_opener=lambda: _unlocked(open_store(ctx, create=False)),
            progress=progress,
        )
    except BaseException:
        progress.close(ok=False)
        raise
    progress.close()
    problems = [p for r in results for p in r.problems]
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if not quiet:
        for r in results:
            parts = [f"{len(r.started)} started", f"{len(r.running)} running"]
            if r.stopped:
                parts.append(f"{len(r.stopped)} left stopped")
            typer.echo(f"stack {r.stack} restored: {', '.join(parts)}, {r.files} secret files")
    if problems:
        raise BackendError(f"{len(problems)} container(s) could not be restored")


def _key_file(store: Path) -> Path:
    """The key file that unlocks ``store`` (one per store; a legacy shared one otherwise)."""
    from composesecrets.errors import ComposeSecretsError
    from composesecrets.store import Store
    from composesecrets.store.paths import default_key_file

    try:
        with Store.open(store, create=False) as opened:
            own = default_key_file(store_id=opened.store_id)
    except ComposeSecretsError:
        return default_key_file()
    return own if own.exists() else default_key_file()


def _install_systemd(ctx: typer.Context) -> None:
    import os
    import shutil
    import subprocess

    from composesecrets.errors import UsageError
    from composesecrets.store.paths import default_store_dir

    if os.geteuid() != 0:
        raise UsageError("--install-systemd needs root (it writes to /etc/systemd/system)")
    package = Path(__file__).resolve().parent.parent  # installed wheel, then checkout
    candidates = [package / "contrib", package.parent / "contrib" / "systemd"]
    template = next(d / SYSTEMD_UNIT.name for d in candidates if (d / SYSTEMD_UNIT.name).exists())
    exe = shutil.which("composesecrets") or str(Path(sys.argv[0]).resolve())
    store = store_dir(ctx) or default_store_dir()
    text = (
        template.read_text()
        .replace("@EXE@", str(Path(exe).resolve()))
        .replace("@STORE@", str(Path(store).resolve()))
        .replace("@KEY_FILE@", str(_key_file(Path(store)).resolve()))
    )
    SYSTEMD_UNIT.write_text(text)
    SYSTEMD_UNIT.chmod(0o644)
    typer.echo(f"wrote {SYSTEMD_UNIT}")
    if shutil.which("systemctl") is None:
        typer.echo("systemctl not found: enable the unit with your init system", err=True)
        return
    for args in (["daemon-reload"], ["enable", SYSTEMD_UNIT.name]):
        done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            typer.echo(f"systemctl {' '.join(args)}: {done.stderr.strip()}", err=True)
            return
    typer.echo(f"enabled {SYSTEMD_UNIT.name}: `stack restore --all` runs after docker.service")


def _config() -> Callable[..., Any]:
    from composesecrets.cli.compose_cmds import config

    return config


stack_app.command_from(
    "config",
    _config,
    help="Print the normalised configuration of compose files (as docker stack config).",
)


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
        from composesecrets import inventory

        found = inventory.stacks(lambda: open_store(ctx, create=False))
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
        from composesecrets import inventory

        found = inventory.containers(stack, lambda: open_store(ctx, create=False))
        documents = [c.to_json() for c in found]
        return [
            {
                "ID": c.id[:12],
                "Name": c.name,
                "Service": c.service,
                "Image": c.image,
                "Node": c.node,
                "DesiredState": c.desired_state,
                "CurrentState": c.state,
                "Error": c.error,
                "Ports": list(c.ports),
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
        "Node": "NODE",
        "DesiredState": "DESIRED STATE",
        "CurrentState": "STATE",
        "Error": "ERROR",
        "Ports": "PORTS",
        "Secrets": "SECRETS",
        "Versions": "VERSIONS",
    }
    columns = ["Name", "Image", "CurrentState", "Secrets", "Versions"]
    _listing(fmt, quiet, "stack ps", headers, rows, "ID", columns)


@stack_app.command("services")
def stack_services(
    ctx: typer.Context, stack: StackArg, quiet: Quiet = False, fmt: FormatOption = "table"
) -> None:
    """One line per service: name, mode, replicas running/wanted, image, published ports
    (-q: names)."""

    def rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from composesecrets import inventory

        found = inventory.services(stack, lambda: open_store(ctx, create=False))
        documents = [s.to_json() for s in found]
        return [
            {
                "ID": s.id,
                "Name": s.name,
                "Mode": s.mode,
                "Replicas": f"{s.running}/{s.replicas}",
                "Image": s.image,
                "Ports": list(s.ports),
            }
            for s in found
        ], documents

    headers = {
        "ID": "ID",
        "Name": "NAME",
        "Mode": "MODE",
        "Replicas": "REPLICAS",
        "Image": "IMAGE",
        "Ports": "PORTS",
    }
    columns = ["Name", "Mode", "Replicas", "Image", "Ports"]
    _listing(fmt, quiet, "stack services", headers, rows, "Name", columns)
