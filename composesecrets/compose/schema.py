"""Version selection and JSON-schema validation of one compose file, with readable messages."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composesecrets.compose import fastschema, formats
from composesecrets.compose.diagnostics import Diagnostic, format_path, make
from composesecrets.compose.yamlload import LocDict

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

# jsonschema is imported when a file fails the fast check (it words every error message):
# valid files are checked without paying for its import

SUPPORTED_VERSIONS = tuple(f"3.{minor}" for minor in range(14))
LATEST_VERSION = SUPPORTED_VERSIONS[-1]

_HERE = Path(__file__).resolve().parent.parent
_SCHEMA_DIRS = (_HERE / "schemas", _HERE.parent / "schemas")  # installed wheel, then checkout


def normalise_version(raw: str) -> str | None:
    """``"3"`` and ``""`` mean the latest 3.x; None for a version Docker does not support."""
    if raw in ("3", ""):
        return LATEST_VERSION
    return raw if raw in SUPPORTED_VERSIONS else None


def schema_path(version: str) -> Path:
    for directory in _SCHEMA_DIRS:
        candidate = directory / f"compose_v{version}.json"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no JSON schema for compose version {version} in {_SCHEMA_DIRS}")


@cache
def _schema(version: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path(version).read_text(encoding="utf-8"))
    return loaded


@cache
def validator(version: str) -> jsonschema.Draft4Validator:
    import jsonschema

    return jsonschema.Draft4Validator(_schema(version), format_checker=formats.FORMAT_CHECKER)


@cache
def fast_check(version: str) -> fastschema.Check | None:
    """The compiled yes/no check for ``version`` (None if the schema is outside its subset)."""
    try:
        return fastschema.compile_schema(_schema(version), formats.FAST_FORMATS)
    except fastschema.Unsupported:
        return None


_TYPE_NAMES = {
    "object": "mapping",
    "array": "list",
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "null": "null",
}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "null" if value is None else type(value).__name__


def _expected(types: Any) -> str:
    names = [_TYPE_NAMES.get(t, str(t)) for t in (types if isinstance(types, list) else [types])]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


_FIELD_HINTS = {
    "mode": "write it as an unquoted octal number with a leading 0, e.g. mode: 0440",
    "uid": 'quote it: uid: "1000"',
    "gid": 'quote it: gid: "1000"',
    "version": 'quote it: version: "3.8"',
}


def _describe(error: ValidationError, where: str) -> list[tuple[list[str | int], str, bool]]:
    """(path, message, point-at-key) triples for one schema error."""
    path: list[str | int] = list(error.absolute_path)
    kind = error.validator
    value = error.instance
    sub: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    if kind == "type":
        message = f"must be a {_expected(error.validator_value)}, not a {_type_of(value)}"
        if _is_service_key(path, "depends_on") and isinstance(value, dict):
            message = (
                "depends_on as a mapping (with condition:) is a compose-spec form (docker "
                f"compose); {_SPEC_READS}; write depends_on as a list of service names. " + message
            )
        leaf = path[-1] if path else ""
        if isinstance(leaf, str) and leaf in _FIELD_HINTS and not isinstance(value, dict):
            message += f"; {_FIELD_HINTS[leaf]}"
        return [(path, message, False)]
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(sub.get("properties", {}))
        patterns = sorted(sub.get("patternProperties", {}))
        extras = [
            k
            for k in value
            if k not in allowed and not any(jsonschema_pattern(p, k) for p in patterns)
        ]
        out: list[tuple[list[str | int], str, bool]] = []
        for extra in extras:
            if allowed:
                hint = f"allowed in {where}: {', '.join(allowed)}"
                if patterns:
                    hint += " and keys matching " + ", ".join(patterns)
            else:
                hint = "names may use only letters, digits, '.', '_' and '-'"
            first, close = _compose_spec_note(path, extra, allowed)
            message = f'{first}"{extra}" is not allowed here{close} ({hint})'
            out.append(([*path, extra], message, True))
        return out or [(path, error.message, False)]
    if kind == "required":
        return [(path, f"missing required key: {error.message.split(' ')[0]}", False)]
    if kind == "format":
        if error.validator_value == "duration":
            return [(path, f"{value!r} is not a duration (write e.g. 30s, 1m30s, 1h)", False)]
        return [(path, f"{value!r} is not a valid {error.validator_value}", False)]
    if kind in ("oneOf", "anyOf"):
        return [
            (path, f"{_type_of(value)} {_short(value)} matches none of the allowed forms", False)
        ]
    if kind == "enum":
        choices = ", ".join(json.dumps(c) for c in sub.get("enum", []))
        return [(path, f"must be one of {choices}, not {_short(value)}", False)]
    if kind == "uniqueItems":
        return [(path, "must not contain the same item twice", False)]
    return [(path, error.message, False)]


_SPEC_READS = "composesecrets reads the compose 3.x format that docker stack deploy reads"
# Keys of the compose specification (docker compose) that no 3.x schema has, by location.
_SPEC_SERVICE_KEYS = frozenset((
    "annotations", "attach", "blkio_config", "cpu_count", "cpu_percent", "cpu_period",
    "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "develop",
    "device_cgroup_rules", "dns_opt", "extends", "gpus", "group_add", "label_file", "mem_limit",
    "mem_reservation", "mem_swappiness", "memswap_limit", "models", "oom_kill_disable",
    "oom_score_adj", "pids_limit", "platform", "post_start", "pre_stop", "profiles", "provider",
    "pull_policy", "runtime", "scale", "storage_opt", "use_api_socket", "uts", "volumes_from",
))  # fmt: skip
_SPEC_TOP_KEYS = frozenset(("name", "include", "models"))
_SPEC_DEFINITION_KEYS = frozenset(("environment", "content"))


def _is_service_key(path: list[str | int], key: str) -> bool:
    return len(path) == 3 and path[0] == "services" and path[2] == key


def _compose_spec_note(path: list[str | int], extra: str, allowed: list[str]) -> tuple[str, str]:
    """(first sentence, suggestion) for a key that is not allowed: a compose-spec key says
    first what format this tool reads; a near miss of an allowed key gets "did you mean"."""
    spec = (
        (not path and extra in _SPEC_TOP_KEYS)
        or (len(path) == 2 and path[0] == "services" and extra in _SPEC_SERVICE_KEYS)
        or (len(path) == 2 and path[0] in ("secrets", "configs")
            and extra in _SPEC_DEFINITION_KEYS)
    )  # fmt: skip
    if spec:
        return f'"{extra}" is a compose-spec key (docker compose); {_SPEC_READS}. ', ""
    if allowed:
        import difflib

        close = difflib.get_close_matches(extra, allowed, n=1)
        if close:
            return "", f'; did you mean "{close[0]}"?'
    return "", ""


@cache
def _compiled(pattern: str) -> Any:
    import re

    return re.compile(pattern)


def jsonschema_pattern(pattern: str, key: str) -> bool:
    return _compiled(pattern).search(key) is not None


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(config: LocDict, version: str, filename: str) -> list[Diagnostic]:
    """Validate one (interpolated) compose file against its version's schema."""
    fast = fast_check(version)
    try:
        if fast is not None and fast(config):
            return []
    except fastschema.Unsupported:  # a property's schema, compiled on first use
        pass  # jsonschema alone decides
    from jsonschema.exceptions import best_match

    diagnostics: list[Diagnostic] = []
    for error in validator(version).iter_errors(config):
        best = best_match([error])
        where = format_path(list(best.absolute_path)) or "the top level"
        for path, message, key in _describe(best, where):
            diagnostics.append(
                make(config, path, "error", "schema", message, file=filename, key=key)
            )
    return diagnostics
