"""``validate`` and ``config``: read compose files, report diagnostics, print the model."""

# No ``from __future__ import annotations`` here: typer reads the annotations of the command
# being run twice on every start, and string annotations were compiled and evaluated each time
# (~3 ms for ``validate``); evaluated once when the module runs, they cost a fraction of that.

import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from composesecrets.cli.app import app
from composesecrets.cli.options import Compat, ComposeFiles, EnvFile, StackName
from composesecrets.errors import InputError, ParseError, UsageError

if TYPE_CHECKING:
    from composesecrets.compose import diagnostics as diag
    from composesecrets.compose.project import Project


class ValidateFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class ConfigFormat(str, Enum):
    yaml = "yaml"
    json = "json"


class TargetBackend(str, Enum):
    engine = "engine"
    swarm = "swarm"


def _load(
    files: list[str] | None,
    *,
    compat: bool,
    env_file: Path | None,
    stack: str | None,
    **options: Any,
) -> "Project":
    # imported here so that the secret and store commands do not pay for the compose loader
    from composesecrets.compose.project import load_project

    return load_project(files or [], compat=compat, env_file=env_file, stack_name=stack, **options)


def _rules_option(flag: str, what: str) -> Any:
    return typer.Option(
        flag,
        metavar="RULE[,RULE]",
        help=f"{what} these strict rules (comma-separated or repeated; README lists them).",
        show_default=False,
    )


Select = Annotated[list[str] | None, _rules_option("--select", "Report only")]
Ignore = Annotated[list[str] | None, _rules_option("--ignore", "Do not report")]


@app.command()
def validate(
    files: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[FILE]...",
            help="Files to validate one by one, each with its compose override beside it "
            "(e.g. from a pre-commit hook); -c merges instead.",
            show_default=False,
        ),
    ] = None,
    compose_file: ComposeFiles = None,
    compat: Compat = False,
    fmt: Annotated[
        ValidateFormat,
        typer.Option(
            "--format",
            metavar="[text|json|github|sarif]",
            help="Output: text, json, github annotations or sarif.",
        ),
    ] = ValidateFormat.text,
    env_file: EnvFile = None,
    stack: StackName = None,
    strict_warnings: Annotated[
        bool, typer.Option("--strict-warnings", help="Fail (exit 1) on warnings too.")
    ] = False,
    backend: Annotated[
        TargetBackend | None,
        typer.Option(
            "--backend",
            help="The backend the stack will be deployed with (default: not known); "
            "backend-specific warnings follow it.",
            show_default=False,
        ),
    ] = None,
    require_files: Annotated[
        bool,
        typer.Option(
            "--require-files",
            help="An absent secret file is always an error (as for stack deploy), even when "
            "git ignores it.",
        ),
    ] = False,
    no_files: Annotated[
        bool,
        typer.Option("--no-files", help="An absent secret file is a warning (file-not-checked)."),
    ] = False,
    select: Select = None,
    ignore: Ignore = None,
) -> None:
    """Validate compose files: exit 0 valid, 1 invalid, 2 unreadable input or bad usage."""
    if files and compose_file:
        raise UsageError("give files either with -c (merged) or as arguments (one by one)")
    if require_files and no_files:
        raise UsageError("--require-files and --no-files exclude each other")
    from composesecrets.compose import diagnostics as diag
    from composesecrets.compose.project import with_overrides
    from composesecrets.compose.rules import selection_for

    cwd = Path.cwd()
    orphans: list[str] = []
    if files:
        groups, orphans = with_overrides(files, cwd)
    else:
        groups = [compose_file or []]
    first = next((g[0] for g in groups if g and g[0] != "-"), None)
    start = (cwd / first).resolve().parent if first else cwd
    selection = selection_for(start, select=select, ignore=ignore)
    secret_files = "require" if require_files else "optional" if no_files else "unless-ignored"
    found: list[diag.Diagnostic] = []
    names: list[str] = []
    code = 0
    for group in groups:
        try:
            project = _load(
                group,
                compat=compat,
                env_file=env_file,
                stack=stack,
                secret_files=secret_files,
                backend=backend.value if backend else None,
                selection=selection,
            )
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
        names.append(" + ".join(project.files))
        if project.errors or (strict_warnings and project.warnings):
            code = max(code, 1)
    _print_diagnostics(found, fmt, cwd)
    if fmt is ValidateFormat.text:
        for orphan in orphans:
            typer.echo(f"{orphan}: not validated alone (an override file without its base)",
                       err=True)  # fmt: skip
        if names:
            errors = sum(d.severity == "error" for d in found)
            counts = f"{_count(errors, 'error')}, {_count(len(found) - errors, 'warning')}"
            verdict = "invalid" if code else "valid"
            typer.echo(f"{', '.join(names)}: {verdict} ({counts})", err=True)
    raise typer.Exit(code)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _print_diagnostics(found: "list[diag.Diagnostic]", fmt: ValidateFormat, cwd: Path) -> None:
    from composesecrets.compose import diagnostics as diag

    if fmt in (ValidateFormat.github, ValidateFormat.sarif):
        from composesecrets.compose import reports

        found = reports.relative_to_root(found, cwd, reports.repo_root(cwd))
        if fmt is ValidateFormat.sarif:
            typer.echo(reports.render_sarif(found))
            return
    if fmt is ValidateFormat.json:
        typer.echo(diag.render_json(found))
    elif found:
        render = diag.render_github if fmt is ValidateFormat.github else diag.render_text
        typer.echo(render(found))


@app.command()
def config(
    compose_file: ComposeFiles = None,
    fmt: Annotated[
        ConfigFormat, typer.Option("--format", metavar="[yaml|json]", help="Output: yaml or json.")
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


def _complete_version(incomplete: str) -> list[str]:
    from composesecrets.compose.schema import SUPPORTED_VERSIONS

    return [v for v in SUPPORTED_VERSIONS if v.startswith(incomplete)]


@app.command()
def schema(
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            metavar="3.x",
            help="Compose file format version (default: the latest 3.x, used for files "
            "without a version).",
            show_default=False,
            autocompletion=_complete_version,
        ),
    ] = None,
    path: Annotated[
        bool, typer.Option("--path", help="Print the schema file's path instead of its content.")
    ] = False,
) -> None:
    """Print the JSON schema that validates compose files (for an editor's YAML server)."""
    from composesecrets.compose.schema import SUPPORTED_VERSIONS, normalise_version, schema_path

    chosen = normalise_version(version or "")
    if chosen is None:
        raise UsageError(
            f"no compose schema for version {version!r}",
            hint=f"versions: {', '.join(SUPPORTED_VERSIONS)}",
        )
    file = schema_path(chosen)
    if path:
        typer.echo(str(file))
    else:
        typer.echo(file.read_text(encoding="utf-8"), nl=False)
