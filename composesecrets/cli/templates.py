"""``--format``: ``table``, ``json``, or the subset of Docker's Go templates users pass.

Accepted, as the docker CLI reads them:

* ``table`` and ``json`` (our own table, and the JSON document of the command);
* a template: literal text with ``{{.Field}}`` and ``{{.Field.Sub}}`` actions, ``{{json .}}``
  and ``{{json .Field}}``; ``\\t`` and ``\\n`` written literally become a tab and a newline;
* ``table TEMPLATE``: the template as a table with a header row, columns split at tabs.

Anything else (``{{range}}``, pipes, functions other than ``json``, unknown field names) is a
:class:`~composesecrets.errors.UsageError` that lists the fields, not a silent empty output.
There is no Go template engine for Python; this module keeps to that strict subset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from composesecrets.errors import UsageError

# strings: re compiles (and caches) them when a template is first given (start-up)
_ACTION = r"\{\{-?\s*(.*?)\s*-?\}\}"
_FIELD = r"\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$"

# (kind, text): "text" literal, "field" a dotted path ("" is the whole row), "json" a path
_Part = tuple[str, str]


class OutputFormat(NamedTuple):  # not a dataclass: no dataclasses import at start-up
    """A parsed ``--format`` value: ``kind`` is table, json, template or table-template."""

    kind: str
    parts: tuple[_Part, ...] = ()

    @property
    def is_template(self) -> bool:
        return self.kind in ("template", "table-template")


def parse_format(value: str | None, fields: Sequence[str], *, command: str) -> OutputFormat:
    """Check ``value`` against the ``fields`` the command's rows have (the top-level ones)."""
    text = (value or "table").strip()
    if text in ("table", "json"):
        return OutputFormat(text)
    kind = "template"
    if text.startswith("table ") or text.startswith("table\t"):
        kind, text = "table-template", text[len("table") :].strip()
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    parts: list[_Part] = []
    position = 0
    for match in re.finditer(_ACTION, text):
        if match.start() > position:
            parts.append(("text", text[position : match.start()]))
        parts.append(_action(match.group(1), fields, command=command))
        position = match.end()
    rest = text[position:]
    if "{{" in rest or "}}" in rest:
        raise _usage(f"unbalanced braces in --format {value!r}", fields, command)
    if rest:
        parts.append(("text", rest))
    if not any(kind != "text" for kind, _ in parts):
        raise _usage(f"--format {value!r} is neither table, json nor a template", fields, command)
    return OutputFormat(kind, tuple(parts))


def _action(body: str, fields: Sequence[str], *, command: str) -> _Part:
    words = body.split()
    if len(words) == 2 and words[0] == "json" and re.match(_FIELD, words[1]):
        kind, path = "json", words[1]
    elif len(words) == 1 and re.match(_FIELD, words[0]):
        kind, path = "field", words[0]
    else:
        raise _usage(
            f"unsupported template action {{{{{body}}}}} (supported: {{{{.Field}}}}, "
            "{{.Field.Sub}}, {{json .}}, {{json .Field}})",
            fields,
            command,
        )
    path = path[1:]
    if path and path.split(".")[0] not in fields:
        raise _usage(f'"{path.split(".")[0]}" is not a field of {command}', fields, command)
    return kind, path


def _usage(message: str, fields: Sequence[str], command: str) -> UsageError:
    names = ", ".join(f".{f}" for f in fields)
    return UsageError(
        message,
        hint=f"fields of {command}: {names}; or --format table, --format json, "
        "--format '{{json .}}', --format 'table {{.Name}}\\t{{.ID}}'",
    )


def _lookup(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    walked: list[str] = []
    for name in path.split(".") if path else []:
        if not isinstance(value, Mapping) or name not in value:
            known = ", ".join(f".{k}" for k in value) if isinstance(value, Mapping) else "none"
            where = "." + ".".join(walked) if walked else "the row"
            raise UsageError(f'no field "{name}" in {where} (fields: {known})')
        walked.append(name)
        value = value[name]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


def render_row(fmt: OutputFormat, row: Mapping[str, Any]) -> str:
    out = []
    for kind, text in fmt.parts:
        if kind == "text":
            out.append(text)
        elif kind == "json":
            out.append(json.dumps(_lookup(row, text), separators=(",", ":"), sort_keys=True))
        else:
            out.append(_text(_lookup(row, text)))
    return "".join(out)


def _header(fmt: OutputFormat, headers: Mapping[str, str]) -> str:
    out = []
    for kind, text in fmt.parts:
        if kind == "text":
            out.append(text)
        elif text:
            top = text.split(".")[0]
            out.append(headers.get(top, top.upper()) if kind == "field" else "")
    return "".join(out)


def render(fmt: OutputFormat, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, str]) -> str:
    """The template applied to each row (one line each); ``table`` aligns tab-split cells."""
    lines = [render_row(fmt, row) for row in rows]
    if fmt.kind != "table-template":
        return "\n".join(lines)
    grid = [_header(fmt, headers).split("\t")] + [line.split("\t") for line in lines]
    columns = max(len(r) for r in grid)
    grid = [r + [""] * (columns - len(r)) for r in grid]
    widths = [max(len(r[i]) for r in grid) for i in range(columns)]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in grid
    )
