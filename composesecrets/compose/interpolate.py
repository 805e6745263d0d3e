"""Variable interpolation exactly as ``docker stack`` does it, plus the stricter findings.

Forms: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
``${VAR?message}`` and ``$$``. Nested defaults are not supported (as in docker/cli). Only
values are interpolated, never keys; ``version`` is read before interpolation. A value that
changed is cast for the few paths Docker casts (``mode`` to int with decimal ``Atoi``,
``external`` to bool, ...).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from composesecrets.compose.envfiles import make_lookup as make_lookup
from composesecrets.compose.envfiles import read_env_file as read_env_file
from composesecrets.compose.yamlload import Loc, LocDict, LocList

_SUBST = r"[_a-z][_a-z0-9]*(?::?[-?][^}]*)?"


@functools.cache
def _pattern() -> re.Pattern[str]:
    """The reference pattern, compiled on first use: most files have no ``$`` (start-up)."""
    return re.compile(
        rf"\$(?:(?P<escaped>\$)|(?P<named>{_SUBST})|\{{(?P<braced>{_SUBST})\}}|(?P<invalid>))",
        re.IGNORECASE,
    )


# Patterns used only on some paths stay strings: re compiles (and caches) them on first use
# (start-up; _GO_FLOAT alone takes about 2 ms to compile).
_ATOI = r"^[+-]?[0-9]+$"
_GO_FLOAT = r"(?i)^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)$"


def _partition(text: str, sep: str) -> tuple[str, str]:
    head, found, tail = text.partition(sep)
    return (head, tail) if found else (text, "")


@dataclass
class Substitution:
    """The outcome of substituting one string."""

    value: str
    error: str | None = None  # Docker's verdict (None: Docker accepts the string)
    bare_dollar: bool = False  # a '$' that starts no valid reference (even if Docker let it pass)
    unset: list[str] = field(default_factory=list)  # variables used while unset, no default
    substituted: bool = False  # at least one variable reference was replaced


def substitute(template: str, lookup: Callable[[str], str | None]) -> Substitution:
    """Substitute like docker/cli's ``template.Substitute``, quirks included.

    As in Docker, the error status is that of the *last* reference processed, so a bare
    ``$`` followed by a valid ``${VAR}`` passes there; ``bare_dollar`` records it anyway.
    """
    result = Substitution(value=template)
    error: str | None = None

    def lookup_pair(name: str) -> tuple[str, bool]:
        value = lookup(name)
        return ("", False) if value is None else (value, True)

    def replace(match: re.Match[str]) -> str:
        nonlocal error
        if match.group("escaped"):
            return "$"
        text = match.group("named") or match.group("braced")
        if not text:
            error = template
            result.bare_dollar = True
            return ""
        result.substituted = True
        error = None
        if ":-" in text:
            name, default = _partition(text, ":-")
            value, found = lookup_pair(name)
            return value if found and value != "" else default
        if "-" in text:
            name, default = _partition(text, "-")
            value, found = lookup_pair(name)
            return value if found else default
        for sep, non_empty in ((":?", True), ("?", False)):
            if sep in text:
                name, message = _partition(text, sep)
                value, found = lookup_pair(name)
                if not found or (non_empty and value == ""):
                    error = f"required variable {name} is missing a value: {message}"
                    return ""
                return value
        value, found = lookup_pair(text)
        if not found:
            result.unset.append(text)
        return value

    result.value = _pattern().sub(replace, template)
    result.error = error
    return result


def _to_int(value: str) -> Any:
    if not re.match(_ATOI, value):
        raise ValueError(f'strconv.Atoi: parsing "{value}": invalid syntax')
    return int(value)


def _to_float(value: str) -> Any:
    if not re.match(_GO_FLOAT, value):
        raise ValueError(f'strconv.ParseFloat: parsing "{value}": invalid syntax')
    return float(value)


def _to_bool(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("y", "yes", "true", "on"):
        return True
    if lowered in ("n", "no", "false", "off"):
        return False
    raise ValueError(f"invalid boolean: {value}")


_S = ("services", "*")
CASTS: dict[tuple[str, ...], Callable[[str], Any]] = {
    (*_S, "configs", "[]", "mode"): _to_int,
    (*_S, "secrets", "[]", "mode"): _to_int,
    (*_S, "healthcheck", "retries"): _to_int,
    (*_S, "healthcheck", "disable"): _to_bool,
    (*_S, "deploy", "replicas"): _to_int,
    (*_S, "deploy", "update_config", "parallelism"): _to_int,
    (*_S, "deploy", "update_config", "max_failure_ratio"): _to_float,
    (*_S, "deploy", "rollback_config", "parallelism"): _to_int,
    (*_S, "deploy", "rollback_config", "max_failure_ratio"): _to_float,
    (*_S, "deploy", "restart_policy", "max_attempts"): _to_int,
    (*_S, "deploy", "placement", "max_replicas_per_node"): _to_int,
    (*_S, "ports", "[]", "target"): _to_int,
    (*_S, "ports", "[]", "published"): _to_int,
    (*_S, "ulimits", "*"): _to_int,
    (*_S, "ulimits", "*", "hard"): _to_int,
    (*_S, "ulimits", "*", "soft"): _to_int,
    (*_S, "privileged"): _to_bool,
    (*_S, "read_only"): _to_bool,
    (*_S, "stdin_open"): _to_bool,
    (*_S, "tty"): _to_bool,
    (*_S, "volumes", "[]", "read_only"): _to_bool,
    (*_S, "volumes", "[]", "volume", "nocopy"): _to_bool,
    ("networks", "*", "external"): _to_bool,
    ("networks", "*", "internal"): _to_bool,
    ("networks", "*", "attachable"): _to_bool,
    ("volumes", "*", "external"): _to_bool,
    ("secrets", "*", "external"): _to_bool,
    ("configs", "*", "external"): _to_bool,
}


def _caster(dotted: str) -> Callable[[str], Any] | None:
    # Docker joins the path with '.' and splits it again, so keys holding dots never match.
    parts = dotted.split(".")
    for pattern, cast in CASTS.items():
        if len(pattern) == len(parts) and all(
            p in ("*", part) for p, part in zip(pattern, parts, strict=True)
        ):
            return cast
    return None


@dataclass(frozen=True)
class Finding:
    """Something interpolation found: ``kind`` is the rule, ``path`` the structural path."""

    # interpolation-format | interpolation-cast | interpolation-bare-dollar | unset-variable
    kind: str
    path: tuple[str | int, ...]
    loc: Loc | None
    message: str


@dataclass
class InterpolationResult:
    findings: list[Finding] = field(default_factory=list)


def interpolate(config: LocDict, lookup: Callable[[str], str | None]) -> InterpolationResult:
    """Interpolate every value of ``config`` in place (except ``version``)."""
    out = InterpolationResult()
    for key in list(config):
        if key == "version":
            continue
        _walk(config, key, (key,), key, config.vallocs.get(key), lookup, out)
    return out


def _walk(
    parent: LocDict | LocList,
    index: Any,
    path: tuple[str | int, ...],
    dotted: str,
    loc: Loc | None,
    lookup: Callable[[str], str | None],
    out: InterpolationResult,
) -> None:
    value = parent[index]
    if isinstance(value, str):
        _one(parent, index, value, path, dotted, loc, lookup, out)
    elif isinstance(value, LocDict):
        for key in list(value):
            _walk(value, key, (*path, key), f"{dotted}.{key}", value.vallocs.get(key), lookup, out)
    elif isinstance(value, LocList):
        for i in range(len(value)):
            _walk(value, i, (*path, i), f"{dotted}.[]", value.locs[i], lookup, out)


def _one(
    parent: LocDict | LocList,
    index: Any,
    value: str,
    path: tuple[str | int, ...],
    dotted: str,
    loc: Loc | None,
    lookup: Callable[[str], str | None],
    out: InterpolationResult,
) -> None:
    if "$" not in value:
        return
    sub = substitute(value, lookup)
    if sub.error is not None:
        out.findings.append(
            Finding(
                "interpolation-format",
                path,
                loc,
                f'invalid interpolation format for {dotted}: "{sub.error}"; '
                "you may need to escape any $ with another $",
            )
        )
        return
    if sub.bare_dollar:
        out.findings.append(
            Finding(
                "interpolation-bare-dollar",
                path,
                loc,
                f'a "$" in {value!r} starts no variable reference; write "$$" for a literal "$"',
            )
        )
    for name in dict.fromkeys(sub.unset):
        out.findings.append(
            Finding(
                "unset-variable",
                path,
                loc,
                f'the "{name}" variable is not set; it became an empty string '
                f"(use ${{{name}:-default}} or ${{{name}:?message}} to say what you mean)",
            )
        )
    if sub.value == value:
        return
    if sub.substituted:
        parent.subst.add(index)  # for the "interpolated mode" and credential checks
    caster = _caster(dotted)
    if caster is None:
        parent[index] = sub.value
        return
    try:
        parent[index] = caster(sub.value)
    except ValueError as exc:
        out.findings.append(
            Finding(
                "interpolation-cast",
                path,
                loc,
                f"error while interpolating {dotted}: failed to cast to expected type: {exc}",
            )
        )
        parent[index] = sub.value
