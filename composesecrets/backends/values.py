"""Compose values as both translations read them: scalars as text, lists, ``KEY=value`` lists,
sizes, port and volume short syntax, and the fingerprint of a translated spec. Pure functions.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "PROPAGATION",
    "VOLUME_OPTIONS",
    "fingerprint",
    "is_path",
    "key_values",
    "parse_bytes",
    "short_port",
    "split_volume",
    "str_map",
    "string_list",
    "sysctl_map",
    "text",
    "ulimit_list",
]

# The options of a short-syntax volume (``src:dst:ro,z``) compose accepts.
VOLUME_OPTIONS = frozenset(
    ("ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private",
     "rprivate", "delegated", "cached", "consistent")
)  # fmt: skip
PROPAGATION = frozenset(("shared", "rshared", "slave", "rslave", "private", "rprivate"))


def text(value: Any) -> str:
    """A scalar as compose writes it into the container: booleans lower case, 2.0 as 2."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def string_list(raw: Any) -> list[str]:
    """None -> [], a list -> its items as text, anything else -> [it as text]."""
    if raw is None:
        return []
    if isinstance(raw, list):
        return [text(v) for v in raw]
    return [text(raw)]


def key_values(raw: Any, sep: str = "=") -> dict[str, str | None]:
    """A list of ``k<sep>v`` (``k`` alone -> None) or a mapping -> dict."""
    out: dict[str, str | None] = {}
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            out[str(key)] = None if value is None else text(value)
    elif isinstance(raw, list):
        for item in raw:
            key, found, value = text(item).partition(sep)
            out[key] = value if found else None
    return out


def str_map(raw: Any) -> dict[str, str]:
    """A mapping with its values as text (None values left out); anything else -> {}."""
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): text(v) for k, v in raw.items() if v is not None}


def sysctl_map(raw: Any) -> dict[str, str]:
    """``sysctls`` (list or mapping) -> {name: value}, a missing value as ""."""
    return {k: v or "" for k, v in key_values(raw).items()}


def ulimit_list(raw: Any) -> list[dict[str, Any]]:
    """``ulimits`` -> Engine-API ``[{"Name", "Soft", "Hard"}]``; a bare number is both."""
    if not isinstance(raw, Mapping):
        return []
    limits: list[dict[str, Any]] = []
    for name, body in raw.items():
        if isinstance(body, Mapping):
            soft, hard = int(body["soft"]), int(body["hard"])
        else:
            soft = hard = int(body)
        limits.append({"Name": str(name), "Soft": soft, "Hard": hard})
    return limits


_BYTES_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", re.IGNORECASE)
_BYTES_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: Any) -> int:
    """A size as compose reads it (go-units ``RAMInBytes``): ``64m``, ``1.5GB``, ``512``,
    binary multiples, case-insensitive. Raises :class:`ValueError` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"not a size: {value!r}")
        return int(value)
    match = _BYTES_RE.match(str(value).strip())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    number, unit = match.group(1), (match.group(2) or "").lower()
    return int(float(number) * _BYTES_UNITS[unit])


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def fingerprint(payload: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of ``payload`` (sorted keys, tuples as lists)."""
    data = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def is_path(source: str) -> bool:
    """Compose's rule: a source that starts like a path is a bind mount, else a volume name."""
    return source.startswith((".", "/", "~"))


def split_volume(spec: str) -> tuple[str, str, str]:
    """(source, target, mode) of a short-syntax volume; a lone path is an anonymous volume."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return parts[0], parts[1], ""
    return parts[0], parts[1], ":".join(parts[2:])


def short_port(spec: str) -> list[tuple[str, str, str]]:
    """``[ip:][host[-end]:]container[-end][/proto]`` -> (container/proto, host ip, host port).

    The spec is already valid (the schema's ``ports`` format). Equal-sized ranges pair up
    port by port; a host range for one container port is left to the engine to pick from.
    """
    parts = spec.split(":")
    if len(parts) == 1:
        ip, host, container = "", "", parts[0]
    elif len(parts) == 2:
        ip, host, container = "", parts[0], parts[1]
    else:
        ip, host, container = ":".join(parts[:-2]), parts[-2], parts[-1]
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    port, _, proto = container.partition("/")
    proto = (proto.split("/")[0] or "tcp").lower()
    c_start, c_end = _port_range(port)
    if not host:
        return [(f"{p}/{proto}", ip, "") for p in range(c_start, c_end + 1)]
    h_start, h_end = _port_range(host)
    if c_start == c_end:
        host_port = str(h_start) if h_start == h_end else f"{h_start}-{h_end}"
        return [(f"{c_start}/{proto}", ip, host_port)]
    return [(f"{c_start + i}/{proto}", ip, str(h_start + i)) for i in range(c_end - c_start + 1)]


def _port_range(spec: str) -> tuple[int, int]:
    start, _, end = spec.partition("-")
    end = end.split("-")[0]
    return int(start), int(end) if end else int(start)
