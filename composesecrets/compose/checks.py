"""Strict checks: what Docker only finds at deploy time, or never, plus advisory warnings.

Each finding has its own rule name (the ``rule`` field of a diagnostic), documented in
README.md. These run on the merged, interpolated, schema-valid configuration.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from composesecrets import docker_rules
from composesecrets.compose.diagnostics import Diagnostic, Severity, make
from composesecrets.compose.yamlload import LazyPattern, Loc, LocDict, substituted
from composesecrets.model import Stack

NAME_MAX = docker_rules.NAME_MAX
MAX_SECRET_BYTES = docker_rules.SECRET_VALUE_MAX
# What an absent secret file is: an error; a warning when git ignores it; always a warning.
SecretFiles = Literal["require", "unless-ignored", "optional"]
Backend = Literal["engine", "swarm"]
LONG_SYNTAX_KEYS = ("source", "target", "uid", "gid", "mode")
# compiled on first use: most files need few of them (start-up)
_NUMERIC_ID: Any = LazyPattern(r"^[0-9]+$")
_TOKEN: Any = LazyPattern(r"[^\s,\]}#]+")
# Three octal digits without a leading 0: Docker reads them as a decimal number.
_DECIMAL_LOOKING: Any = LazyPattern(r"^[1-7][0-7]{2}$")
# Decimal spellings of common modes that people write on purpose (256 = 0o400, ...).
_DELIBERATE_DECIMALS = frozenset(
    int(m, 8) for m in ("400", "440", "444", "600", "640", "644", "660", "664", "666", "700",
                        "750", "755", "777")
)  # fmt: skip
_CREDENTIAL: Any = LazyPattern(
    r"(?:^|_)(?:PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|API_?KEY|KEY|KEY_BASE|SALT)$",
    re.IGNORECASE,
)


def name_problem(name: str) -> str | None:
    """Why ``name`` breaks Docker's secret-name rule, or None when it is fine."""
    if len(name) > NAME_MAX:
        return f"is {len(name)} characters long; Docker allows at most {NAME_MAX}"
    if not docker_rules.SECRET_NAME_RE.fullmatch(name):
        return (
            "may use only letters, digits, '-', '_' and '.', and must start and end "
            "with a letter or digit"
        )
    return None


@dataclass(frozen=True)
class Options:
    """How strict a run is about things outside the compose file."""

    secret_files: SecretFiles = "require"
    backend: Backend | None = None  # None: not known (validate without --backend)
    # validate --backend asks the backend's translation what it would refuse or not apply;
    # stack deploy leaves that to the plan itself (it warns first and knows --allow-unapplied)
    backend_checks: bool = True


@dataclass
class CheckContext:
    """What the checks need besides the stack: raw text (for how a number was written)."""

    stack: Stack
    root: LocDict
    texts: Mapping[str, str]
    options: Options = field(default_factory=Options)
    out: list[Diagnostic] = field(default_factory=list)
    missing: list[tuple[tuple[str | int, ...], str]] = field(default_factory=list)
    _lines: dict[str, list[str]] = field(default_factory=dict)

    def token(self, loc: Loc | None) -> str | None:
        """The plain-scalar text written at ``loc`` (up to a space, comma, bracket or comment)."""
        if loc is None or loc.file not in self.texts:
            return None
        lines = self._lines.get(loc.file)
        if lines is None:
            lines = self._lines[loc.file] = self.texts[loc.file].splitlines()
        if not 0 < loc.line <= len(lines):
            return None
        match = _TOKEN.match(lines[loc.line - 1], loc.column - 1)
        return match.group(0) if match else None

    def add(
        self,
        path: Sequence[str | int],
        severity: Severity,
        rule: str,
        message: str,
        *,
        key: bool = False,
    ) -> None:
        self.out.append(make(self.root, path, severity, rule, message, key=key))


def run(ctx: CheckContext) -> list[Diagnostic]:
    from composesecrets.compose import rotation

    _service_checks(ctx)
    rotation.check(ctx)
    _dependencies(ctx)
    _definition_checks(ctx)
    _missing_files(ctx)
    return ctx.out


def _dependencies(ctx: CheckContext) -> None:
    """depends_on naming an undefined service: docker compose and the engine backend refuse
    it (an error); Swarm ignores depends_on, so for ``--backend swarm`` it is a warning."""
    services = ctx.stack.config.get("services") or {}
    swarm = ctx.options.backend == "swarm"
    for name, body in services.items():
        deps = body.get("depends_on") if isinstance(body, Mapping) else None
        for index, dep in enumerate(deps if isinstance(deps, list) else []):
            if isinstance(dep, str) and dep not in services:
                defined = ", ".join(sorted(services))
                why = (
                    "Swarm ignores depends_on, docker compose and the engine backend refuse it"
                    if swarm
                    else "docker compose and the engine backend refuse it (Swarm ignores "
                    "depends_on)"
                )
                ctx.add(
                    ("services", name, "depends_on", index),
                    "warning" if swarm else "error",
                    "undefined-dependency",
                    f'service "{name}" depends on undefined service "{dep}" (defined: '
                    f"{defined}); {why}",
                )


def _missing_files(ctx: CheckContext) -> None:
    """Absent secret files: an error, or a warning where the mode allows it."""
    mode = ctx.options.secret_files
    ignored = git_ignored([f for _, f in ctx.missing]) if mode == "unless-ignored" else set()
    for path, filename in ctx.missing:
        if mode == "optional" or filename in ignored:
            why = "git ignores it" if filename in ignored else "--no-files"
            ctx.add(
                path,
                "warning",
                "file-not-checked",
                f"secret file {filename} does not exist and was not checked ({why}); "
                "deploy needs it (--require-files makes this an error)",
            )
        else:
            ctx.add(path, "error", "file-missing", f"secret file {filename} does not exist")


def git_ignored(filenames: Sequence[str]) -> set[str]:
    """The absolute ``filenames`` git ignores (``git check-ignore``), grouped by directory;
    empty outside a git work tree or without git."""
    by_dir: dict[str, list[str]] = {}
    for filename in filenames:
        folder = Path(filename).parent
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent
        by_dir.setdefault(str(folder), []).append(filename)
    out: set[str] = set()
    for where, names in by_dir.items():
        try:
            proc = subprocess.run(
                ["git", "-C", where, "check-ignore", "--", *names],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            out.update(line for line in proc.stdout.splitlines() if line in names)
    return out


def _service_checks(ctx: CheckContext) -> None:
    stack = ctx.stack
    used: set[str] = set()
    services = stack.config.get("services") or {}
    for name, body in services.items():
        items = body.get("secrets") if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            continue
        targets: dict[str, int] = {}
        by_source: dict[str, tuple[int, tuple[str, str, int]]] = {}
        service = stack.services[name]
        refs = {ref.index: ref for ref in service.secrets}
        for index, item in enumerate(items):
            path: tuple[str | int, ...] = ("services", name, "secrets", index)
            if isinstance(item, Mapping):
                _long_syntax(ctx, path, item)
            ref = refs.get(index)
            if ref is None:
                continue
            used.add(ref.source)
            if ref.source and ref.source not in stack.secrets:
                defined = ", ".join(sorted(stack.secrets)) or "none"
                ctx.add(
                    path if isinstance(item, str) else (*path, "source"),
                    "error",
                    "undefined-secret",
                    f'service "{name}" uses secret "{ref.source}", which is not defined under '
                    f"the top-level secrets: (defined: {defined}); Docker only notices at "
                    "deploy time, after creating networks and other secrets",
                )
            if ref.target in targets:
                ctx.add(
                    (*path, "target") if isinstance(item, Mapping) else path,
                    "error",
                    "target-duplicate",
                    f"target {ref.target} is already used by secrets[{targets[ref.target]}] "
                    f'of service "{name}"; give each secret its own target',
                )
            else:
                targets[ref.target] = index
            settings = (ref.uid, ref.gid, ref.mode)
            earlier = by_source.get(ref.source)
            if earlier is not None and earlier[1] != settings:
                _same_source(ctx, path, ref.source, earlier[0])
            by_source.setdefault(ref.source, (index, settings))
    for key in stack.secrets:
        if key not in used:
            ctx.add(
                ("secrets", key),
                "warning",
                "unused-secret",
                f'secret "{key}" is defined but no service uses it; remove it or add it to a '
                "service's secrets:",
                key=True,
            )
    _credentials(ctx, services)


def _same_source(ctx: CheckContext, path: tuple[str | int, ...], source: str, first: int) -> None:
    backend = ctx.options.backend
    if backend == "engine":
        return  # the engine backend mounts each target with its own settings
    again = f'secret "{source}" is mounted again with other uid/gid/mode than secrets[{first}]'
    if backend == "swarm":
        message = f"{again}; Docker Swarm applies the last uid/gid/mode to both targets"
    else:
        message = (
            f"{again}; on Docker Swarm (--backend swarm, docker stack deploy) the last "
            "uid/gid/mode applies to both targets, the engine backend keeps them apart "
            "(validate --backend engine does not warn)"
        )
    ctx.add(path, "warning", "same-source-settings", message)


def _long_syntax(ctx: CheckContext, path: tuple[str | int, ...], item: Mapping[str, Any]) -> None:
    for key in item:
        if key in LONG_SYNTAX_KEYS or key.startswith("x-"):
            continue
        close = difflib.get_close_matches(key, LONG_SYNTAX_KEYS, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        ctx.add(
            (*path, key),
            "error",
            "unknown-key",
            f'unknown key "{key}" in the long syntax (Docker silently drops it); allowed: '
            f"{', '.join(LONG_SYNTAX_KEYS)}{hint}",
            key=True,
        )
    if "source" not in item:
        ctx.add(path, "error", "missing-source", "the long syntax needs a source: key")
    if "target" in item:
        _target(ctx, (*path, "target"), item["target"])
    for which in ("uid", "gid"):
        value = item.get(which)
        if isinstance(value, str) and value and not _NUMERIC_ID.match(value):
            ctx.add(
                (*path, which),
                "error",
                f"{which}-not-numeric",
                f'{which} "{value}" is not a number; the engine needs a numeric {which} '
                f'(names fail when the container starts), e.g. {which}: "1000"',
            )
    if "mode" in item:
        _mode(ctx, (*path, "mode"), item["mode"])


def _target(ctx: CheckContext, path: tuple[str | int, ...], target: Any) -> None:
    if not isinstance(target, str):
        return
    if not target.strip():
        ctx.add(path, "error", "target-empty", "target is empty; leave it out or name a file")
        return
    if ".." in PurePosixPath(target).parts:
        from composesecrets.model import absolute_target

        ctx.add(
            path,
            "error",
            "target-dotdot",
            f'target "{target}" contains ".." and would land at {absolute_target(target)}, '
            "outside /run/secrets; use a plain name or an absolute path",
        )


def _mode(ctx: CheckContext, path: tuple[str | int, ...], mode: Any) -> None:
    if not isinstance(mode, (int, float)) or isinstance(mode, bool):
        return
    if substituted(ctx.root, path):
        ctx.add(
            path,
            "error",
            "mode-interpolated",
            f"mode comes from a variable and Docker reads it as a decimal number "
            f"(it became {int(mode)} = 0o{int(mode):o}, not 0{int(mode)}); write the octal "
            "mode literally in the file, e.g. mode: 0440",
        )
        return
    if isinstance(mode, float) and not mode.is_integer():
        ctx.add(path, "error", "mode-not-integer", f"mode {mode} is not a whole number")
        return
    value = int(mode)
    if not 0 <= value <= 0o7777:
        ctx.add(
            path,
            "error",
            "mode-range",
            f"mode {value} is outside 0 to 0o7777 (4095); write an octal permission, e.g. 0440",
        )
        return
    token = ctx.token(_loc(ctx, path))
    if token and _DECIMAL_LOOKING.match(token) and value not in _DELIBERATE_DECIMALS:
        ctx.add(
            path,
            "error",
            "mode-decimal",
            f"mode {token} looks like an octal permission but is read as decimal {value} "
            f"(= 0o{value:o}); write 0{token}",
        )


def _loc(ctx: CheckContext, path: Sequence[str | int]) -> Loc | None:
    from composesecrets.compose.diagnostics import locate

    return locate(ctx.root, path)


def _definition_checks(ctx: CheckContext) -> None:
    stack = ctx.stack
    raw_defs = stack.config.get("secrets") or {}
    for key, definition in stack.secrets.items():
        body = raw_defs.get(key)
        body = body if isinstance(body, Mapping) else {}
        path: tuple[str | int, ...] = ("secrets", key)
        problem = name_problem(definition.name)
        if problem:
            ctx.add(
                path,
                "error",
                "secret-name",
                f'secret name "{definition.name}" {problem}',
                key=True,
            )
        has_file = "file" in body
        external = body.get("external")
        if has_file and external:
            ctx.add(
                (*path, "file"),
                "error",
                "file-and-external",
                "file and external: true together: Docker silently ignores the file; keep one",
                key=True,
            )
            continue
        if definition.external:
            continue
        if not has_file and not body.get("driver"):
            ctx.add(
                path,
                "error",
                "empty-definition",
                f'secret "{key}" has neither file: nor external: true (Docker would try to '
                "read the compose file's directory as the secret)",
                key=True,
            )
            continue
        if has_file and definition.file is not None:
            _file(ctx, (*path, "file"), str(definition.file))


def _file(ctx: CheckContext, path: tuple[str | int, ...], filename: str) -> None:
    """Check a secret's source file without ever opening a device or FIFO."""
    try:
        info = os.stat(filename)
    except FileNotFoundError:
        ctx.missing.append((path, filename))
        return
    except OSError as exc:
        ctx.add(path, "error", "file-unreadable", f"cannot stat {filename}: {exc.strerror}")
        return
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a directory" if stat.S_ISDIR(info.st_mode)
            else "a FIFO" if stat.S_ISFIFO(info.st_mode)
            else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket" if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )  # fmt: skip
        ctx.add(
            path,
            "error",
            "file-not-regular",
            f"secret file {filename} is {kind}; a secret must come from a regular file",
        )
        return
    try:
        fd = os.open(filename, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        ctx.add(path, "error", "file-unreadable", f"cannot read {filename}: {exc.strerror}")
        return
    os.close(fd)
    if not 0 < info.st_size <= MAX_SECRET_BYTES:
        ctx.add(
            path,
            "error",
            "file-size",
            f"secret file {filename} has {info.st_size} bytes; a secret must hold 1 to "
            f"{MAX_SECRET_BYTES:,} bytes",
        )


def _mounted(value: Any, targets: set[str]) -> bool:
    """A path to a mounted secret, not a credential: under /run/secrets/ or a target."""
    if not isinstance(value, str):
        return False
    return value in targets or (
        value.startswith(docker_rules.SECRETS_DIR + "/")
        and ".." not in PurePosixPath(value).parts
        and len(value) > len(docker_rules.SECRETS_DIR) + 1
    )


def _credentials(ctx: CheckContext, services: Mapping[str, Any]) -> None:
    for name, body in services.items():
        service = ctx.stack.services.get(name)
        targets = {ref.target for ref in service.secrets} if service else set()
        env = body.get("environment") if isinstance(body, Mapping) else None
        pairs: list[tuple[str, Any, tuple[str | int, ...]]] = []
        if isinstance(env, Mapping):
            pairs = [(k, v, ("services", name, "environment", k)) for k, v in env.items()]
        elif isinstance(env, list):
            for i, item in enumerate(env):
                if isinstance(item, str) and "=" in item:
                    k, _, v = item.partition("=")
                    pairs.append((k, v, ("services", name, "environment", i)))
        for var, value, path in pairs:
            if var.upper().endswith("_FILE") or not _CREDENTIAL.search(var):
                continue
            if value in (None, "") or not isinstance(value, (str, int, float)):
                continue
            if substituted(ctx.root, path) or _mounted(value, targets):
                continue
            ctx.add(
                path,
                "warning",
                "plaintext-credential",
                f"{var} is given as plain text in environment:: the value is visible in "
                "`docker inspect` and in the environment of every process in the container; "
                f"put it in a secret and set {var}_FILE: /run/secrets/<secret> instead",
            )
