"""Findings about compose files and the three ways of printing them (text, json, github)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from composesecrets.compose.yamlload import Loc, LocDict, LocList

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One finding: where it is, what is wrong, how to fix it, and the rule that found it."""

    file: str
    line: int
    column: int
    path: str
    severity: Severity
    message: str
    rule: str

    def text(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}:{self.column}"
        subject = f"{self.path}: " if self.path else ""
        return f"{where}: {self.severity}: {subject}{self.message}"


def format_path(path: Sequence[str | int]) -> str:
    """``("services", "db", "secrets", 1, "mode")`` -> ``services.db.secrets[1].mode``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def locate(root: object, path: Sequence[str | int], *, key: bool = False) -> Loc | None:
    """The position of the value at ``path`` (or of its key when ``key``), as deep as it exists."""
    node = root
    found: Loc | None = getattr(root, "loc", None)
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, LocDict) and isinstance(part, str) and part in node:
            loc = node.keylocs.get(part) if (key and last) else node.vallocs.get(part)
            found = loc or found
            node = node[part]
        elif isinstance(node, LocList) and isinstance(part, int) and 0 <= part < len(node):
            found = node.locs[part]
            node = node[part]
        else:
            break
    return found


def make(
    root: object,
    path: Sequence[str | int],
    severity: Severity,
    rule: str,
    message: str,
    *,
    file: str = "",
    key: bool = False,
    loc: Loc | None = None,
) -> Diagnostic:
    where = loc or locate(root, path, key=key)
    return Diagnostic(
        file=where.file if where else file,
        line=where.line if where else 0,
        column=where.column if where else 0,
        path=format_path(path),
        severity=severity,
        message=message,
        rule=rule,
    )


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.file, d.line, d.column, d.rule)


def render_text(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(d.text() for d in diagnostics)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([asdict(d) for d in diagnostics], indent=2)


def _gh_escape(value: str, *, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def render_github(diagnostics: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands: ``::error file=F,line=L,col=C,title=RULE::MESSAGE``."""
    lines = []
    for d in diagnostics:
        props = [f"file={_gh_escape(d.file, prop=True)}"]
        if d.line:
            props += [f"line={d.line}", f"col={d.column}"]
        props.append(f"title={_gh_escape(d.rule, prop=True)}")
        subject = f"{d.path}: " if d.path else ""
        lines.append(f"::{d.severity} {','.join(props)}::{_gh_escape(subject + d.message)}")
    return "\n".join(lines)
