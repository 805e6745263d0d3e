"""The ``composesecrets`` command line: thin typer commands over the library API.

This is the only module that imports typer. Commands call the library, print its result
objects, and exit with the code each :mod:`composesecrets.errors` class carries.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from composesecrets import __version__
from composesecrets.compose import diagnostics as diag
from composesecrets.compose.project import Project, load_project
from composesecrets.errors import ComposeSecretsError, InternalError, ParseError, UsageError

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
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Validate compose files, keep their secrets encrypted, deploy stacks with them."""


def _load(
    files: list[str] | None,
    *,
    compat: bool,
    env_file: Path | None,
    stack: str | None,
) -> Project:
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
    found: list[diag.Diagnostic] = []
    names: list[str] = []
    code = 0
    for group in groups:
        try:
            project = _load(group, compat=compat, env_file=env_file, stack=stack)
        except ParseError as exc:
            if fmt is ValidateFormat.text and len(groups) == 1:
                raise
            found.append(
                diag.Diagnostic(exc.file, exc.line, exc.column, "", "error", exc.detail, "yaml")
            )
            names.append(exc.file)
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
        typer.echo(diag.render_text(project.diagnostics), err=True)
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
