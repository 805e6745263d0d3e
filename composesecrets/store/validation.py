"""Checks on names, values, labels and references, with messages that say how to fix them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..docker_rules import LABEL_KEY_MAX, LABEL_VALUE_MAX, NAME_MAX, is_secret_name
from ..docker_rules import SECRET_VALUE_MAX as VALUE_MAX
from ..errors import InputError
from .ids import looks_like_id

__all__ = [
    "NAME_MAX",
    "VALUE_MAX",
    "check_labels",
    "check_name",
    "check_value",
    "parse_label",
    "split_ref",
]

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_REF_RE = re.compile(r"^(?P<base>[^@]+)@(?P<version>[0-9]+)$")


def check_name(name: str) -> str:
    """Return ``name`` when it follows Docker's rule and does not look like an ID, else raise
    :class:`InputError` (a name shaped like an ID could be mistaken for another secret's ID)."""
    if not isinstance(name, str) or not name:
        raise InputError("secret name must be provided", hint="give a name such as db_password")
    if not is_secret_name(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise InputError(
            f"invalid secret name {shown!r}: only {NAME_MAX} [a-zA-Z0-9-_.] characters allowed,"
            " and the start and end character must be [a-zA-Z0-9]",
            hint=f"this name has {len(name)} characters; use letters, digits, '-', '_' and '.'",
        )
    if looks_like_id(name):
        raise InputError(
            f"invalid secret name {name!r}: it looks like a secret ID (25 characters [0-9a-z])",
            hint="choose a name that is not 25 lowercase letters and digits, e.g. add a '_' or '-'",
        )
    return name


def check_value(value: bytes, *, name: str | None = None) -> None:
    """Raise :class:`InputError` unless ``value`` is bytes of 1 to 511,999 bytes."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InputError("a secret value must be bytes")
    size = len(value)
    if size < 1 or size > VALUE_MAX:
        what = f"secret {name!r}" if name else "secret"
        raise InputError(
            f"{what} data must be larger than 0 and less than 512000 bytes (got {size} bytes)",
            hint="an empty source usually means the file or pipe was empty"
            if size == 0
            else "store a smaller value, or keep large files outside the secret store",
        )


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Return a plain copy of ``labels`` after checking every key and value."""
    if labels is None:
        return {}
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InputError("label keys and values must be strings")
        if not key or key != key.strip():
            raise InputError(
                f"invalid label key {key!r}: it must be non-empty, without surrounding spaces",
                hint="write labels as KEY=VALUE, for example --label team=infra",
            )
        if "=" in key or _CONTROL_RE.search(key) or any(c.isspace() for c in key):
            raise InputError(
                f"invalid label key {key!r}: no '=', spaces or control characters allowed",
                hint="write labels as KEY=VALUE, for example --label team=infra",
            )
        if len(key) > LABEL_KEY_MAX:
            raise InputError(f"label key {key[:40]!r}... is longer than {LABEL_KEY_MAX} characters")
        if _CONTROL_RE.search(value):
            raise InputError(
                f"invalid value for label {key!r}: control characters are not allowed",
                hint="remove newlines, tabs and other control characters from the value",
            )
        if len(value) > LABEL_VALUE_MAX:
            raise InputError(f"value for label {key!r} is longer than {LABEL_VALUE_MAX} characters")
        out[key] = value
    return out


def parse_label(text: str) -> tuple[str, str]:
    """Parse a ``KEY=VALUE`` (or bare ``KEY``, meaning an empty value) command-line label."""
    key, _, value = text.partition("=")
    check_labels({key: value})
    return key, value


def split_ref(ref: str, version: int | None = None) -> tuple[str, int | None]:
    """Split ``NAME@N`` / ``ID@N`` into its base and version; ``version`` must agree if given."""
    if not isinstance(ref, str) or not ref:
        raise InputError("a secret name or ID must be provided")
    match = _REF_RE.fullmatch(ref)
    if match is None:
        if "@" in ref:
            raise InputError(
                f"invalid secret reference {ref!r}",
                hint="use NAME, ID, NAME@VERSION or ID@VERSION, for example db_password@2",
            )
        base, parsed = ref, None
    else:
        base, parsed = match.group("base"), int(match.group("version"))
    if parsed is not None and version is not None and parsed != version:
        raise InputError(f"{ref!r} names version {parsed} but version {version} was asked for")
    chosen = parsed if parsed is not None else version
    if chosen is not None and chosen < 1:
        raise InputError(f"invalid version {chosen} for {base!r}: versions start at 1")
    return base, chosen
