"""The ``composesecrets`` command line: thin typer commands over the library API.

This is the only module that imports typer. Commands call the library, print its result
objects, and exit with the code each :mod:`composesecrets.errors` class carries.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from composesecrets import __version__
from composesecrets.errors import (
    ComposeSecretsError,
    InputError,
    IntegrityError,
    InternalError,
    InvalidComposeError,
    NotFoundError,
    ParseError,
    StoreLockedError,
    UsageError,
)

if TYPE_CHECKING:
    from composesecrets.compose import diagnostics as diag
    from composesecrets.compose.project import Project

app = typer.Typer(
    name="composesecrets",
    help="Swarm-grade secrets for plain Docker, from an ordinary compose file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class ValidateFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"


class ConfigFormat(str, Enum):
    yaml = "yaml"
    json = "json"


ComposeFiles = Annotated[
    list[str] | None,
    typer.Option(
        "-c",
        "--compose-file",
        help="Compose file (repeat to merge overrides; - for standard input). "
        "Default: compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml here.",
        show_default=False,
    ),
]
EnvFile = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help="Variables for interpolation (default: .env beside the first compose file).",
        show_default=False,
    ),
]
StackName = Annotated[
    str | None,
    typer.Option(
        "--stack", help="Stack name: secret names are checked as <STACK>_<key>.", show_default=False
    ),
]
Compat = Annotated[
    bool,
    typer.Option(
        "--compat", help="Give exactly Docker's verdict (docker stack config); no strict checks."
    ),
]


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
            help="Store directory (default: $COMPOSESECRETS_HOME, else "
            "~/.local/share/composesecrets).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate compose files, keep their secrets encrypted, deploy stacks with them."""
    ctx.obj = {"store": store}


def _load(
    files: list[str] | None,
    *,
    compat: bool,
    env_file: Path | None,
    stack: str | None,
) -> Project:
    # imported here so that the secret and store commands do not pay for the compose loader
    from composesecrets.compose.project import load_project

    return load_project(files or [], compat=compat, env_file=env_file, stack_name=stack)


@app.command()
def validate(
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files to validate one by one (e.g. from a pre-commit hook); -c merges instead.",
            show_default=False,
        ),
    ] = None,
    compose_file: ComposeFiles = None,
    compat: Compat = False,
    fmt: Annotated[
        ValidateFormat, typer.Option("--format", help="Output: text, json or github annotations.")
    ] = ValidateFormat.text,
    env_file: EnvFile = None,
    stack: StackName = None,
    strict_warnings: Annotated[
        bool, typer.Option("--strict-warnings", help="Fail (exit 1) on warnings too.")
    ] = False,
) -> None:
    """Validate compose files: exit 0 valid, 1 invalid, 2 unreadable input or bad usage."""
    if files and compose_file:
        raise UsageError("give files either with -c (merged) or as arguments (one by one)")
    groups = [[f] for f in files] if files else [compose_file or []]
    from composesecrets.compose import diagnostics as diag

    found: list[diag.Diagnostic] = []
    names: list[str] = []
    code = 0
    for group in groups:
        try:
            project = _load(group, compat=compat, env_file=env_file, stack=stack)
        except InputError as exc:
            if fmt is ValidateFormat.text and len(groups) == 1:
                raise
            # unreadable input is reported in the requested format too (CI parses it)
            if isinstance(exc, ParseError):
                where = (exc.file, exc.line, exc.column, exc.detail, "yaml")
            else:
                where = (" ".join(group) or ".", 0, 0, exc.message, "input")
            found.append(
                diag.Diagnostic(where[0], where[1], where[2], "", "error", where[3], where[4])
            )
            names.append(where[0])
            code = max(code, exc.exit_code)
            continue
        found += project.diagnostics
        names += project.files
        if project.errors or (strict_warnings and project.warnings):
            code = max(code, 1)
    _print_diagnostics(found, fmt)
    if fmt is ValidateFormat.text:
        errors = sum(d.severity == "error" for d in found)
        warnings = len(found) - errors
        verdict = "invalid" if code else "valid"
        counts = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        typer.echo(f"{', '.join(names)}: {verdict} ({counts})", err=True)
    raise typer.Exit(code)


def _print_diagnostics(found: list[diag.Diagnostic], fmt: ValidateFormat) -> None:
    from composesecrets.compose import diagnostics as diag

    if fmt is ValidateFormat.json:
        typer.echo(diag.render_json(found))
    elif found:
        render = diag.render_github if fmt is ValidateFormat.github else diag.render_text
        typer.echo(render(found))


@app.command()
def config(
    compose_file: ComposeFiles = None,
    fmt: Annotated[
        ConfigFormat, typer.Option("--format", help="Output: yaml or json.")
    ] = ConfigFormat.yaml,
    compat: Compat = False,
    env_file: EnvFile = None,
    stack: StackName = None,
) -> None:
    """Print the normalised configuration, secrets in long form with Docker's defaults."""
    project = _load(compose_file, compat=compat, env_file=env_file, stack=stack)
    if project.diagnostics:
        from composesecrets.compose.diagnostics import render_text

        typer.echo(render_text(project.diagnostics), err=True)
    if project.errors or project.stack is None:
        typer.echo("composesecrets: not printing an invalid configuration", err=True)
        raise typer.Exit(1)
    data = project.stack.to_config()
    if fmt is ConfigFormat.json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(_yaml(data), nl=False)


def _yaml(data: Any) -> str:
    """YAML with secret modes written in octal (0440), as Docker's docs write them."""
    import yaml

    class OctalMode(int):
        pass

    class Dumper(yaml.SafeDumper):
        pass

    def octal(dumper: yaml.SafeDumper, value: OctalMode) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:int", f"0{int(value):o}")

    Dumper.add_representer(OctalMode, octal)
    for service in (data.get("services") or {}).values():
        for ref in service.get("secrets") or [] if isinstance(service, dict) else []:
            ref["mode"] = OctalMode(ref["mode"])
    return yaml.dump(
        data, Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


# --------------------------------------------------------------------------- secrets / store
secret_app = typer.Typer(
    help="Manage secrets in the encrypted store (Docker's `docker secret` shape).",
    no_args_is_help=True,
)
store_app = typer.Typer(
    help="Inspect, verify and re-key the encrypted store.", no_args_is_help=True
)
app.add_typer(secret_app, name="secret")
app.add_typer(store_app, name="store")


class ListFormat(str, Enum):
    table = "table"
    json = "json"


def _store_dir(ctx: typer.Context) -> Path | None:
    obj = ctx.find_root().obj or {}
    found: Path | None = obj.get("store")
    return found


def _prompt(new: bool) -> str:
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


def _notice(message: str) -> None:
    typer.echo(message, err=True)


def _open_store(ctx: typer.Context, *, create: bool = True) -> Any:
    from composesecrets.store import AutoUnlock, Store

    return Store.open(
        _store_dir(ctx), unlock=AutoUnlock(prompt=_prompt, notice=_notice), create=create
    )


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _ago(moment: datetime) -> str:
    seconds = int((datetime.now(timezone.utc) - moment).total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' * (n != 1)} ago"
    return "Less than a minute ago"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


SecretName = Annotated[str, typer.Argument(help="Secret name or ID.", show_default=False)]
ValueSource = Annotated[
    str,
    typer.Argument(
        metavar="FILE|-",
        help="File holding the value, or - for standard input (never the command line).",
        show_default=False,
    ),
]
SecretNames = Annotated[list[str], typer.Argument(help="Names or IDs.", show_default=False)]
TableOrJson = Annotated[ListFormat, typer.Option("--format", help="table or json.")]


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
    with _open_store(ctx) as store:
        info = store.create(name, value, labels)
    typer.echo(info.id)


@secret_app.command("rotate")
def secret_rotate(ctx: typer.Context, name: SecretName, source: ValueSource) -> None:
    """Add a new version of a secret from a file or standard input; prints ID and version."""
    from composesecrets.store import read_value

    value = read_value(source)
    with _open_store(ctx, create=False) as store:
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
        store = _open_store(ctx, create=False)
    except NotFoundError:
        found: list[Any] = []  # no store yet: nothing to list
    else:
        with store:
            found = store.list(filters or [])
    if quiet:
        for info in found:
            typer.echo(info.id)
    elif fmt is ListFormat.json:
        _print_json([info.to_docker() for info in found])
    else:
        rows = [
            [i.id, i.name, str(i.version), _ago(i.created_at), _ago(i.updated_at)] for i in found
        ]
        typer.echo(_table(rows, ["ID", "NAME", "VERSION", "CREATED", "UPDATED"]))


@secret_app.command("inspect")
def secret_inspect(ctx: typer.Context, names: SecretNames) -> None:
    """Show secrets as JSON in Docker's shape, with versions, sizes and digests; never values."""
    with _open_store(ctx, create=False) as store:
        details = [store.inspect(name).to_docker() for name in names]
    _print_json(details)


@secret_app.command("rm")
def secret_rm(ctx: typer.Context, names: SecretNames) -> None:
    """Remove secrets (refused while a deployed stack uses them)."""
    failure: ComposeSecretsError | None = None
    with _open_store(ctx, create=False) as store:
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


@store_app.command("status")
def store_status(ctx: typer.Context, fmt: TableOrJson = ListFormat.table) -> None:
    """Where the store is, how it is unlocked, and what it holds (no key needed)."""
    with _open_store(ctx, create=False) as store:
        status = store.status().to_json()
    if fmt is ListFormat.json:
        _print_json(status)
        return
    for key, value in status.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        typer.echo(f"{key + ':':<16} {'-' if shown in (None, '') else shown}")


@store_app.command("verify")
def store_verify(ctx: typer.Context) -> None:
    """Open every stored version; list any that fails authentication (exit 4)."""
    with _open_store(ctx, create=False) as store:
        report = store.verify()
    for failure in report.failures:
        typer.echo(
            f"FAILED {failure.name} version {failure.version} ({failure.secret_id}): "
            f"{failure.reason}"
        )
    if not report.ok:
        typer.echo(f"{len(report.failures)} of {report.checked} versions failed", err=True)
        raise typer.Exit(IntegrityError.exit_code)
    typer.echo(f"ok: {report.checked} versions verified")


def _report_key_change(change: Any) -> None:
    typer.echo(f"unlock method: {change.method}; {change.versions_rewrapped} data keys re-wrapped")
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
    with _open_store(ctx, create=False) as store:
        change = store.rotate_key()
    _report_key_change(change)


class UnlockMethod(str, Enum):
    keyfile = "keyfile"
    env = "env"
    passphrase = "passphrase"


@store_app.command("change-unlock")
def store_change_unlock(
    ctx: typer.Context,
    to: Annotated[UnlockMethod, typer.Argument(help="keyfile, env or passphrase.")],
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Key file path (keyfile method).")
    ] = None,
) -> None:
    """Switch between a key file, an environment key and a passphrase; data stays as it is.

    The new passphrase comes from COMPOSESECRETS_NEW_PASSPHRASE or a prompt on a terminal.
    """
    from composesecrets.store import EnvKeyUnlock, KeyFileUnlock, PassphraseUnlock, Unlock

    new: Unlock
    if to is UnlockMethod.keyfile:
        new = KeyFileUnlock(path=key_file, notice=_notice)
    elif to is UnlockMethod.env:
        new = EnvKeyUnlock()
    else:
        given = os.environ.get("COMPOSESECRETS_NEW_PASSPHRASE")
        new = PassphraseUnlock(given if given else _prompt)
    with _open_store(ctx, create=False) as store:
        change = store.change_unlock(new)
    _report_key_change(change)


@store_app.command("audit")
def store_audit(
    ctx: typer.Context,
    fmt: TableOrJson = ListFormat.table,
    limit: Annotated[int | None, typer.Option("--limit", help="Newest N entries.")] = None,
) -> None:
    """Print the append-only audit log: who did what, when (never a value)."""
    with _open_store(ctx, create=False) as store:
        entries = store.audit(limit=limit)
    if fmt is ListFormat.json:
        _print_json([e.to_json() for e in entries])
        return
    rows = [[str(e.seq), e.to_json()["At"], e.who, e.action, e.target, e.detail] for e in entries]
    typer.echo(_table(rows, ["SEQ", "AT", "WHO", "ACTION", "TARGET", "DETAIL"]))


# --------------------------------------------------------------------------- stacks
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
        str, typer.Option("--backend", help="engine (default: one Docker Engine) or swarm.")
    ] = "engine",
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
        store_opener=lambda: _open_store(ctx),
    )
    progress = _Progress(quiet)
    try:
        outcome = stacks.deploy(stack, options, progress)
    except InvalidComposeError:
        progress.close()
        typer.echo(render_text(options.diagnostics), err=True)
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

    progress = _Progress(quiet)
    try:
        for name in names:
            stacks.remove(
                name,
                keep_secrets=keep_secrets,
                store_opener=lambda: _open_store(ctx, create=False),
                progress=progress,
            )
    finally:
        progress.close()
    if not quiet:
        for name in names:
            typer.echo(f"stack {name} removed")


@stack_app.command("ls")
def stack_ls(ctx: typer.Context, fmt: TableOrJson = ListFormat.table) -> None:
    """List stacks on the engine (and on the swarm, when the engine is a swarm manager)."""
    from composesecrets import stacks

    found = stacks.stacks(lambda: _open_store(ctx, create=False))
    if fmt is ListFormat.json:
        _print_json([{"Name": s.name, "Services": s.services, "Backend": s.backend} for s in found])
        return
    rows = [[s.name, str(s.services), s.backend] for s in found]
    typer.echo(_table(rows, ["NAME", "SERVICES", "BACKEND"]))


@stack_app.command("ps")
def stack_ps(ctx: typer.Context, stack: StackArg, fmt: TableOrJson = ListFormat.table) -> None:
    """One line per container: name, image, state and the secrets mounted."""
    from composesecrets import stacks

    found = stacks.containers(stack, lambda: _open_store(ctx, create=False))
    if fmt is ListFormat.json:
        _print_json(
            [
                {
                    "Name": c.name,
                    "Service": c.service,
                    "Image": c.image,
                    "State": c.state,
                    "Secrets": list(c.secrets),
                }
                for c in found
            ]
        )
        return
    rows = [[c.name, c.image, c.state, ", ".join(c.secrets) or "-"] for c in found]
    typer.echo(_table(rows, ["NAME", "IMAGE", "STATE", "SECRETS"]))


@stack_app.command("services")
def stack_services(
    ctx: typer.Context, stack: StackArg, fmt: TableOrJson = ListFormat.table
) -> None:
    """One line per service: name, replicas running/wanted, image."""
    from composesecrets import stacks

    found = stacks.services(stack, lambda: _open_store(ctx, create=False))
    if fmt is ListFormat.json:
        _print_json(
            [
                {"Name": s.name, "Image": s.image, "Replicas": s.replicas, "Running": s.running}
                for s in found
            ]
        )
        return
    rows = [[s.name, f"{s.running}/{s.replicas}", s.image] for s in found]
    typer.echo(_table(rows, ["NAME", "REPLICAS", "IMAGE"]))


def _fail(exc: ComposeSecretsError) -> NoReturn:
    typer.echo(f"composesecrets: error: {exc.message}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def main() -> None:
    """Console-script entry point: no traceback reaches a user for bad input."""
    try:
        app()
    except ComposeSecretsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo("composesecrets: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, details only on request
        if os.environ.get("COMPOSESECRETS_DEBUG"):
            traceback.print_exc()
        _fail(
            InternalError(
                f"internal error ({type(exc).__name__}); this is a bug in composesecrets",
                hint="set COMPOSESECRETS_DEBUG=1 for the traceback and report it",
            )
        )
