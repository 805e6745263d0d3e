"""The strict rules by name, and which of them a run reports (``--select``/``--ignore``,
``[tool.composesecrets]`` in ``pyproject.toml`` or ``.composesecrets.toml``, inline
``# composesecrets: ignore[rule]`` comments).

Only the strict rules can be selected or ignored: Docker's own verdict (schema, YAML,
interpolation format, loader checks) is never hidden, since Docker refuses such a file anyway.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composesecrets.compose.diagnostics import Diagnostic
from composesecrets.errors import UsageError

# rule -> one-line summary (README's table says more). Every rule here is a strict rule.
STRICT_RULES: Mapping[str, str] = {
    "undefined-secret": "a service uses a secret that has no top-level definition",
    "undefined-dependency": "depends_on names a service that is not defined",
    "unknown-key": "an unknown key in the long syntax (Docker silently drops it)",
    "missing-source": "a long-syntax entry without source:",
    "file-and-external": "file: together with external: true",
    "empty-definition": "a secret with neither file: nor external:",
    "file-missing": "a secret's file: does not exist",
    "file-not-checked": "a secret's file: is absent but git-ignored (or --no-files)",
    "file-unreadable": "a secret's file: cannot be read",
    "file-not-regular": "a secret's file: is a directory, FIFO, device or socket",
    "file-size": "a secret's file: is empty or larger than 511,999 bytes",
    "secret-name": "the final secret name breaks Docker's name rule",
    "target-empty": "an empty target",
    "target-dotdot": 'a target with ".." (escapes /run/secrets)',
    "target-duplicate": "two secrets on one target in a service",
    "uid-not-numeric": "a uid that is not a number",
    "gid-not-numeric": "a gid that is not a number",
    "mode-range": "a mode outside 0 to 0o7777",
    "mode-not-integer": "a mode with a fraction",
    "mode-decimal": "mode: 440 without the leading 0 (read as decimal)",
    "mode-interpolated": "mode: ${MODE} (Docker parses the text as decimal)",
    "interpolation-bare-dollar": 'a "$" that starts no variable',
    "unused-secret": "a defined secret no service uses",
    "plaintext-credential": "a literal credential in environment:",
    "same-source-settings": "one secret mounted twice with different uid/gid/mode",
    "unset-variable": "an unset variable without default became an empty string",
    "unapplied-key": "a key the --backend does not apply (an error when it changes what runs)",
    "backend-refuses": "the --backend cannot run the file (e.g. no image: it builds none)",
}

CONFIG_FILE = ".composesecrets.toml"
_INLINE = re.compile(r"#\s*composesecrets:\s*ignore\[([^\]]*)\]")


def _unknown(names: Iterable[str], where: str) -> None:
    bad = sorted(n for n in names if n not in STRICT_RULES)
    if bad:
        raise UsageError(
            f"unknown rule{'s' * (len(bad) != 1)} {', '.join(bad)} in {where}; "
            f"valid rules: {', '.join(sorted(STRICT_RULES))}"
        )


def parse_list(values: Sequence[str] | None, where: str) -> frozenset[str] | None:
    """``["a,b", "c"]`` -> {a, b, c} (None when not given); unknown names are a usage error."""
    if values is None:
        return None
    names = frozenset(n.strip() for v in values for n in v.split(",") if n.strip())
    _unknown(names, where)
    return names


@dataclass(frozen=True)
class Selection:
    """Which strict rules a run reports: ``select`` (None: all) minus ``ignore``."""

    select: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    source: str | None = None  # the config file the settings came from, if any

    def reports(self, rule: str) -> bool:
        if rule not in STRICT_RULES:
            return True  # Docker's own verdict is never hidden
        if self.select is not None and rule not in self.select:
            return False
        return rule not in self.ignore


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def find_config(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``.composesecrets.toml`` or ``pyproject.toml`` with a
    ``[tool.composesecrets]`` table, from ``start`` upwards (stops at a git root)."""
    for directory in (start, *start.parents):
        own = directory / CONFIG_FILE
        if own.is_file():
            data = _load_toml(own)
            table = data.get("tool", {}).get("composesecrets", data)
            return own, table if isinstance(table, dict) else {}
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _load_toml(pyproject).get("tool", {}).get("composesecrets")
            if isinstance(table, dict):
                return pyproject, table
        if (directory / ".git").exists():
            return None
    return None


def selection_for(
    start: Path,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
) -> Selection:
    """The rules to report: the config file found from ``start`` upwards, then the command
    line (``--select`` replaces the file's select, ``--ignore`` adds to its ignore)."""
    cli_select = parse_list(select, "--select")
    cli_ignore = parse_list(ignore, "--ignore") or frozenset()
    found = find_config(start)
    file_select: frozenset[str] | None = None
    file_ignore: frozenset[str] = frozenset()
    source = None
    if found is not None:
        path, table = found
        source = str(path)
        for key in table:
            if key not in ("select", "ignore"):
                raise UsageError(f"{path}: unknown setting {key!r} (known: select, ignore)")
        for key in ("select", "ignore"):
            value = table.get(key)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise UsageError(f"{path}: {key} must be a list of rule names")
        file_select = parse_list(table.get("select"), str(path))
        file_ignore = parse_list(table.get("ignore"), str(path)) or frozenset()
    return Selection(
        select=cli_select if cli_select is not None else file_select,
        ignore=file_ignore | cli_ignore,
        source=source,
    )


def inline_ignores(text: str, filename: str) -> dict[int, frozenset[str]]:
    """Line number -> rules ignored there by ``# composesecrets: ignore[rule,...]``."""
    out: dict[int, frozenset[str]] = {}
    if "composesecrets:" not in text:
        return out
    for number, line in enumerate(text.splitlines(), start=1):
        match = _INLINE.search(line)
        if match:
            out[number] = parse_list([match.group(1)], f"{filename}:{number}") or frozenset()
    return out


def apply(
    diagnostics: Iterable[Diagnostic], selection: Selection, texts: Mapping[str, str]
) -> list[Diagnostic]:
    """The diagnostics ``selection`` and the files' inline comments let through."""
    inline = {name: inline_ignores(text, name) for name, text in texts.items()}
    out = []
    for d in diagnostics:
        if not selection.reports(d.rule):
            continue
        if d.rule in STRICT_RULES and d.rule in inline.get(d.file, {}).get(d.line, ()):
            continue
        out.append(d)
    return out
