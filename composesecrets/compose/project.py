"""Load compose files into a validated, normalised stack: the library API behind
``composesecrets validate`` and ``composesecrets config``.

Pipeline per file: read (UTF-8) -> YAML with positions -> version -> interpolation ->
JSON schema -> Docker's own loader checks. Then the files are merged, the normalised
:class:`~composesecrets.model.Stack` is built, and (unless ``compat``) the strict checks run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import posixpath
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from composesecrets import docker_rules, model
from composesecrets.compose import checks, envfiles, loaderchecks, merge, schema, yamlload
from composesecrets.compose.checks import Backend, SecretFiles
from composesecrets.compose.diagnostics import Diagnostic, Severity, make, sort_key
from composesecrets.compose.rules import Selection, apply
from composesecrets.compose.yamlload import LocDict
from composesecrets.errors import InputError, UsageError

if TYPE_CHECKING:
    from composesecrets.compose.interpolate import Finding

DISCOVERY_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# compose merges the first of these found beside the base file over it
OVERRIDE_NAMES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)
STDIN_NAME = "<stdin>"
STACK_NAME_MAX = 63

# Rules that only the strict mode reports (compat mode gives exactly Docker's verdict).
_STRICT_ONLY_INTERPOLATION = frozenset(("interpolation-bare-dollar",))


@dataclass
class Project:
    """The outcome of loading: the stack (when it could be built) and every finding."""

    files: list[str]
    working_dir: Path
    stack: model.Stack | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


def discover(directory: Path) -> Path:
    """Find the compose file in ``directory`` the way Docker does."""
    for name in DISCOVERY_NAMES:
        candidate = directory / name
        if candidate.exists():
            return candidate
    raise InputError(
        f"no compose file in {directory} (looked for {', '.join(DISCOVERY_NAMES)})",
        hint="pass one with -c FILE, or -c - to read standard input",
    )


def with_overrides(files: Sequence[str], cwd: Path) -> tuple[list[list[str]], list[str]]:
    """Group files to validate one by one with their compose overrides, as compose merges
    them: a base file (``compose.yaml``, ``docker-compose.yml``, ...) goes together with the
    first override file beside it (``compose.override.yaml``, ...). An override file is
    judged with its base, never alone. Returns (groups, override files without a base)."""
    groups: list[list[str]] = []
    orphans: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for spec in files:
        path = Path(spec)
        group = [spec]
        if path.name in OVERRIDE_NAMES or path.name in DISCOVERY_NAMES:
            folder = path.parent
            base = next((n for n in DISCOVERY_NAMES if (cwd / folder / n).is_file()), None)
            override = next((n for n in OVERRIDE_NAMES if (cwd / folder / n).is_file()), None)
            if path.name in OVERRIDE_NAMES:
                if base is None:
                    orphans.append(spec)
                    continue
                group = [str(folder / base), str(folder / path.name)]
            elif path.name == base and override is not None:
                group = [spec, str(folder / override)]
        key = tuple(str((cwd / g).resolve()) for g in group)
        if key not in seen:
            seen.add(key)
            groups.append(group)
    return groups, orphans


def check_stack_name(name: str) -> str:
    if not docker_rules.is_stack_name(name) or len(name) > STACK_NAME_MAX:
        raise UsageError(
            f'invalid stack name "{name}": use letters, digits, "_", "." and "-", starting '
            "with a letter or digit, at most 63 characters"
        )
    return name


def _read(spec: str, cwd: Path, stdin: BinaryIO | None) -> tuple[str, bytes]:
    """(display name, bytes) of one ``-c`` argument."""
    if spec == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return STDIN_NAME, stream.read()
    path = cwd / spec
    try:
        if path.is_dir():
            raise InputError(f"{spec} is a directory, not a compose file")
        return spec, path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"compose file {spec} does not exist") from None
    except PermissionError:
        raise InputError(f"cannot read compose file {spec}: permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot read compose file {spec}: {exc.strerror}") from None


@dataclass
class _File:
    name: str
    text: str
    config: LocDict
    version: str


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Loading allocates hundreds of thousands of small objects and no cycles worth
    collecting; the cyclic GC would rescan them all again and again (3x the load time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_project(
    files: Sequence[str] = (),
    *,
    compat: bool = False,
    env_file: str | Path | None = None,
    stack_name: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: BinaryIO | None = None,
    secret_files: SecretFiles = "require",
    backend: Backend | None = None,
    selection: Selection | None = None,
    backend_checks: bool = True,
) -> Project:
    """Load, interpolate, validate and normalise compose files.

    Raises :class:`InputError` (exit 2) for input that cannot be read or parsed as YAML;
    every other problem is a diagnostic in the returned :class:`Project`.

    ``compat`` gives Docker's verdict only (and, like ``docker stack config``, reads no
    ``.env``). ``secret_files`` says what an absent secret ``file:`` is: ``"require"`` (the
    default, what ``stack deploy`` needs) an error ``file-missing``; ``"unless-ignored"``
    a warning ``file-not-checked`` when git ignores the path; ``"optional"`` always that
    warning. ``backend`` (None: not known) tunes the backend-specific warnings and, with
    ``backend_checks``, adds what that backend would refuse or not apply (``stack deploy``
    turns that off: its plan reports those itself, before anything changes).
    ``selection`` drops the strict rules it does not report, and so do inline
    ``# composesecrets: ignore[rule]`` comments when a selection is given.
    """
    with _no_gc():
        project = _load_project(
            files, compat, env_file, stack_name, environ, cwd, stdin,
            checks.Options(
                secret_files=secret_files, backend=backend, backend_checks=backend_checks
            ),
        )  # fmt: skip
    if selection is not None:
        project.diagnostics = apply(project.diagnostics, selection, project.texts)
    return project


def _load_project(
    files: Sequence[str],
    compat: bool,
    env_file: str | Path | None,
    stack_name: str | None,
    environ: Mapping[str, str] | None,
    cwd: Path | None,
    stdin: BinaryIO | None,
    options: checks.Options,
) -> Project:
    cwd = cwd or Path.cwd()
    if stack_name is not None:
        check_stack_name(stack_name)
    specs = list(files) or [str(discover(cwd))]
    if specs.count("-") > 1:
        raise UsageError("standard input (-c -) can be given only once")
    first = specs[0]
    working_dir = cwd if first == "-" else (cwd / first).resolve().parent
    environ = os.environ if environ is None else environ
    dotenv = _dotenv(env_file, working_dir, cwd, compat)
    lookup = envfiles.make_lookup(environ, dotenv)

    project = Project(files=[], working_dir=working_dir, stack=None)
    loaded: list[_File] = []
    texts = project.texts
    for spec in specs:
        display, data = _read(spec, cwd, stdin)
        project.files.append(display)
        text = yamlload.decode(data, display)
        texts[display] = text
        root = yamlload.load(text, display, first_document_only=compat)
        file = _prepare(project, display, text, root, lookup, compat)
        if file is not None:
            loaded.append(file)
    if not loaded or len(loaded) != len(specs):
        return _finish(project)
    versions = {f.version for f in loaded}
    if len(versions) > 1:
        project.diagnostics.append(
            make(
                loaded[1].config,
                ("version",),
                "error",
                "version-mismatch",
                f"version mismatched between two composefiles: {loaded[0].version} and "
                f"{loaded[1].version}; give every file the same version",
                file=loaded[1].name,
            )
        )
        return _finish(project)
    if project.errors:
        return _finish(project)
    merged = merge.merge_files([f.config for f in loaded])
    env_problems = loaderchecks.check_env_files(merged, working_dir)
    project.diagnostics.extend(env_problems)
    stack = model.build(merged, loaded[0].version, working_dir, stack_name)
    project.stack = stack
    if not compat:
        ctx = checks.CheckContext(stack, merged, texts, options)
        project.diagnostics.extend(checks.run(ctx))
        if options.backend is not None and options.backend_checks and not project.errors:
            project.diagnostics.extend(_backend_checks(merged, stack, options.backend))
    return _finish(project)


def _backend_checks(root: LocDict, stack: model.Stack, backend: str) -> list[Diagnostic]:
    """``validate --backend``: what ``stack deploy`` would refuse or not apply on it (the
    backend's own translation, without Docker: one source of truth)."""
    from composesecrets.backends.unapplied import unapplied_keys
    from composesecrets.errors import InvalidComposeError

    try:
        found = unapplied_keys(stack, backend)
    except InvalidComposeError as exc:
        return [make(root, (), "error", "backend-refuses", f"{backend} backend: {exc.message}")]
    out = []
    for item in found:
        severity: Severity = "error" if item.changes_run else "warning"
        text = str(item)
        if item.changes_run:
            text += "; stack deploy refuses it unless --allow-unapplied"
        out.append(make(root, item.path, severity, "unapplied-key", text, key=True))
    return out


def _finish(project: Project) -> Project:
    project.diagnostics.sort(key=sort_key)
    return project


def read_env_files(stack: model.Stack) -> model.Stack:
    """``stack`` with each service's ``env_file`` files read (in order, later files win), as a
    deploy needs them. Raises :class:`InputError` for a file that is missing or not regular."""
    services = {}
    for name, service in stack.services.items():
        env: dict[str, str] = {}
        raw = service.config.get("env_file")
        for item in raw if isinstance(raw, list) else [] if raw is None else [raw]:
            path = Path(posixpath.join(str(stack.working_dir), os.path.expanduser(str(item))))
            if not path.is_file():
                raise InputError(
                    f'service "{name}": env_file {item} ({path}) does not exist or is '
                    "not a regular file"
                )
            env.update(envfiles.read_env_file(path))
        services[name] = dataclasses.replace(service, env_from_files=env)
    return dataclasses.replace(stack, services=services)


def _dotenv(
    env_file: str | Path | None, working_dir: Path, cwd: Path, compat: bool
) -> dict[str, str]:
    if env_file is not None:
        path = Path(env_file)
        path = path if path.is_absolute() else cwd / path
        if not path.is_file():
            raise InputError(f"env file {env_file} does not exist or is not a regular file")
        return envfiles.read_env_file(path)
    if compat:
        return {}  # docker stack config / deploy read no .env
    default = working_dir / ".env"
    return envfiles.read_env_file(default) if default.is_file() else {}


def _prepare(
    project: Project,
    name: str,
    text: str,
    root: Any,
    lookup: Any,
    compat: bool,
) -> _File | None:
    """Version, interpolation, schema and Docker's loader checks for one file."""
    diags = project.diagnostics
    if not isinstance(root, LocDict):
        what = "empty" if root is None else f"a {_kind(root)}"
        loc = getattr(root, "loc", None)
        diags.append(
            Diagnostic(
                file=name,
                line=loc.line if loc else 1,
                column=loc.column if loc else 1,
                path="",
                severity="error",
                message="the top level of a compose file must be a mapping (services:, "
                f"secrets:, ...), but it is {what}",
                rule="yaml-root",
            )
        )
        return None
    raw_version = root.get("version")
    if "version" in root and not isinstance(raw_version, str):
        hint = f'; quote it: version: "{raw_version}"' if isinstance(raw_version, float) else ""
        diags.append(
            make(
                root, ("version",), "error", "version", f"version must be a string{hint}", file=name
            )
        )
        return None
    version = (
        schema.LATEST_VERSION if raw_version is None else schema.normalise_version(raw_version)
    )
    if version is None:
        supported = ", ".join(schema.SUPPORTED_VERSIONS)
        diags.append(
            make(
                root,
                ("version",),
                "error",
                "version",
                f"unsupported Compose file version: {raw_version} (supported: 3, {supported}; "
                "leave version out for the latest)",
                file=name,
            )
        )
        return None
    bad = False
    for finding in _interpolate(root, text, lookup):
        severity: Severity
        if finding.kind == "unset-variable":
            severity = "warning"
        elif finding.kind in _STRICT_ONLY_INTERPOLATION:
            if compat:
                continue
            severity = "error"
        else:
            severity = "error"
            bad = True
        diags.append(
            make(
                root,
                finding.path,
                severity,
                finding.kind,
                finding.message,
                file=name,
                loc=finding.loc,
            )
        )
    if bad:
        return None
    schema_errors = schema.validate(root, version, name)
    if schema_errors:
        diags.extend(schema_errors)
        return None
    diags.extend(loaderchecks.check_file(root, version, name))
    return _File(name, text, root, version)


def _interpolate(root: LocDict, text: str, lookup: Any) -> list[Finding]:
    """Interpolate ``root`` in place; its findings. A file whose text has no ``$`` (nor a
    backslash, with which a quoted YAML string can spell one) has nothing to interpolate,
    and the machinery is then not even imported (start-up)."""
    if "$" not in text and "\\" not in text:
        return []
    from composesecrets.compose import interpolate

    return interpolate.interpolate(root, lookup).findings


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return "number" if isinstance(value, (int, float)) else type(value).__name__
