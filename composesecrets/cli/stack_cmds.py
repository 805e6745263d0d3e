"""``stack``: deploy, remove and list stacks with their secrets."""

from __future__ import annotations

import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from composesecrets.cli.app import (
    ListFormat,
    TableOrJson,
    app,
    open_store,
    print_json,
    store_dir,
    table,
)
from composesecrets.cli.options import ComposeFiles, EnvFile
from composesecrets.errors import InvalidComposeError

stack_app = typer.Typer(
    help="Deploy and tear down stacks with their secrets (Docker's `docker stack` shape).",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")


class DeliveryMode(str, Enum):
    tmpfs = "tmpfs"
    copy = "copy"


class _Progress:
    """One live line per object on a terminal; plain lines otherwise; nothing with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.lock = threading.Lock()
        self.states: dict[str, str] = {}
        self.live: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=8, transient=False)
            self.live.start()

    def __call__(self, subject: str, what: str) -> None:
        if self.quiet:
            return
        with self.lock:
            if self.live is None:
                typer.echo(f"{what} {subject}", err=True)
                return
            self.states[subject] = what
            text = "\n".join(f"{name:<40} {state}" for name, state in self.states.items())
            self.live.update(text)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


StackArg = Annotated[str, typer.Argument(help="Stack name.", show_default=False)]


@stack_app.command("deploy")
def stack_deploy(
    ctx: typer.Context,
    stack: StackArg,
    compose_file: ComposeFiles = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
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
            help="tmpfs (default: memory-backed files bind-mounted read-only) or copy "
            "(written into each container before it starts; for remote engines).",
        ),
    ] = DeliveryMode.tmpfs,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Validate, import the secrets into the store, and run the stack on the engine."""
    from composesecrets import stacks
    from composesecrets.compose.diagnostics import render_text
    from composesecrets.compose.project import check_stack_name

    check_stack_name(stack)
    if delivery is DeliveryMode.copy:
        typer.echo(
            "warning: --secret-delivery copy puts plaintext secret files into each container's "
            "writable layer on the engine's host (until the container is removed)",
            err=True,
        )
    options = stacks.DeployOptions(
        files=compose_file or [],
        env_file=env_file,
        backend=backend,
        delivery=delivery.value,
        store_opener=lambda: open_store(ctx),
    )
    progress = _Progress(quiet)
    try:
        outcome = stacks.deploy(stack, options, progress)
    except InvalidComposeError as exc:
        progress.close()
        if exc.diagnostics:
            typer.echo(render_text(exc.diagnostics), err=True)
        raise
    finally:
        progress.close()
    for warning in outcome.warnings:
        typer.echo(warning, err=True)
    if not quiet:
        summary = stacks.describe(outcome.result)
        typer.echo(f"stack {stack} deployed on {outcome.backend}: {summary}")


@stack_app.command("rm")
def stack_rm(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="Stacks to remove.", show_default=False)],
    keep_secrets: Annotated[
        bool, typer.Option("--keep-secrets", help="Keep the stack's own secrets in the store.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Remove stacks: containers, networks, secret files and (by default) their own secrets."""
    from composesecrets import stacks
    from composesecrets.errors import BackendError

    progress = _Progress(quiet)
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
    finally:
        progress.close()
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
    progress = _Progress(quiet)
    try:
        results = stacks.restore(
            names or [],
            everything=every,
            store_opener=lambda: open_store(ctx, create=False),
            progress=progress,
        )
    finally:
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


def _install_systemd(ctx: typer.Context) -> None:
    import os
    import shutil
    import subprocess

    from composesecrets.errors import UsageError
    from composesecrets.store.paths import default_key_file, default_store_dir

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
        .replace("@KEY_FILE@", str(default_key_file().resolve()))
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


@stack_app.command("ls")
def stack_ls(ctx: typer.Context, fmt: TableOrJson = ListFormat.table) -> None:
    """List stacks on the engine (and on the swarm, when the engine is a swarm manager)."""
    from composesecrets import stacks

    found = stacks.stacks(lambda: open_store(ctx, create=False))
    if fmt is ListFormat.json:
        print_json([s.to_json() for s in found])
        return
    rows = [[s.name, str(s.services), s.backend] for s in found]
    typer.echo(table(rows, ["NAME", "SERVICES", "BACKEND"]))


@stack_app.command("ps")
def stack_ps(ctx: typer.Context, stack: StackArg, fmt: TableOrJson = ListFormat.table) -> None:
    """One line per container: name, image, state and the secrets mounted."""
    from composesecrets import stacks

    found = stacks.containers(stack, lambda: open_store(ctx, create=False))
    if fmt is ListFormat.json:
        print_json([c.to_json() for c in found])
        return
    rows = [[c.name, c.image, c.state, ", ".join(c.secrets) or "-"] for c in found]
    typer.echo(table(rows, ["NAME", "IMAGE", "STATE", "SECRETS"]))


@stack_app.command("services")
def stack_services(
    ctx: typer.Context, stack: StackArg, fmt: TableOrJson = ListFormat.table
) -> None:
    """One line per service: name, replicas running/wanted, image."""
    from composesecrets import stacks

    found = stacks.services(stack, lambda: open_store(ctx, create=False))
    if fmt is ListFormat.json:
        print_json([s.to_json() for s in found])
        return
    rows = [[s.name, f"{s.running}/{s.replicas}", s.image] for s in found]
    typer.echo(table(rows, ["NAME", "REPLICAS", "IMAGE"]))
