"""The JSON-schema ``format`` checks Docker applies to compose files.

docker/cli (``cli/compose/schema/schema.go``, as shipped in docker CLI 28.x) registers custom
formats with gojsonschema, which applies a format only to strings and numbers:

* ``duration``: a string that Go's ``time.ParseDuration`` accepts. Anything else fails (Docker's
  checker returns false); every ``duration`` in the compose schemas sits next to
  ``"type": "string"``, so a non-string is a type error anyway.
* ``ports``: a port spec that ``nat.ParsePortSpec`` (docker/go-connections) accepts, such as
  ``"80"``, ``"8080:80/udp"``, ``"127.0.0.1:8000-8001:80"`` or ``"[::1]:80:80"``. A number is
  checked the way gojsonschema hands it over: as an exact fraction whose numerator (in lowest
  terms) is parsed, so ``80`` and ``80.0`` pass, ``2.5`` passes (numerator 5), ``-1`` and
  ``65535.5`` fail. (Older docker CLIs accepted anything here.)
* ``expose``: not checked at all (always valid).

No other format is enforced. python-jsonschema's default checkers (``email``, ``ipv4``,
``regex`` ...) are deliberately absent, so :data:`FORMAT_CHECKER` enforces only what Docker does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from jsonschema import FormatChecker

# FORMAT_CHECKER too, made on first use by __getattr__ below
__all__ = [
    "FAST_FORMATS",
    "is_docker_port_spec",
    "is_go_duration",
    "parse_go_duration",
]

# Nanoseconds per unit, as in Go's time.unitMap. Both micro signs are accepted:
# U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU.
_UNITS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_LIMIT: Final = 1 << 63  # |duration| in ns must fit an int64
_DIGITS: Final = "0123456789"  # ASCII only: str.isdigit() also accepts other scripts


def _leading_int(s: str, i: int) -> tuple[int, int] | None:
    """Digits at ``s[i:]`` as an integer and the index after them; None on overflow."""
    x = 0
    while i < len(s) and s[i] in _DIGITS:
        if x > _LIMIT // 10:
            return None
        x = x * 10 + (ord(s[i]) - 48)
        if x > _LIMIT:
            return None
        i += 1
    return x, i


def _leading_fraction(s: str, i: int) -> tuple[int, float, int]:
    """Digits after a '.': (value, scale, next index); digits past int64 precision are skipped."""
    x = 0
    scale = 1.0
    overflow = False
    while i < len(s) and s[i] in _DIGITS:
        if not overflow:
            if x > (_LIMIT - 1) // 10:
                overflow = True
            else:
                y = x * 10 + (ord(s[i]) - 48)
                if y > _LIMIT:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, i


def is_go_duration(value: str) -> bool:
    """True if Go's ``time.ParseDuration(value)`` succeeds.

    The grammar is ``[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`` with units ns, us, µs, μs, ms, s, m, h;
    a bare ``"0"`` (optionally signed) needs no unit; the total must fit in an int64 count of
    nanoseconds. Examples: ``"1h2m3.5s"``, ``"300ms"``, ``"-1.5h"``, ``"0"``; not ``""``,
    ``"10"``, ``"1d"``, ``"1 s"`` or ``"."``.
    """
    return isinstance(value, str) and _duration_ns(value) is not None


def parse_go_duration(value: str) -> int:
    """Go's ``time.ParseDuration(value)`` as a signed count of nanoseconds.

    ``"1m30s"`` is 90_000_000_000, ``"1.5ms"`` 1_500_000, ``"-2s"`` -2_000_000_000. Raises
    :class:`ValueError` for anything :func:`is_go_duration` rejects.
    """
    result = _duration_ns(value) if isinstance(value, str) else None
    if result is None:
        raise ValueError(f"not a Go duration: {value!r}")
    return result


def _duration_ns(value: str) -> int | None:
    s = value
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    i = 0
    while i < len(s):
        if not (s[i] == "." or s[i] in _DIGITS):
            return None
        start = i
        parsed = _leading_int(s, i)
        if parsed is None:
            return None
        whole, i = parsed
        has_int = i != start
        frac, scale, has_frac = 0, 1.0, False
        if i < len(s) and s[i] == ".":
            frac, scale, after = _leading_fraction(s, i + 1)
            has_frac = after != i + 1
            i = after
        if not has_int and not has_frac:
            return None  # no digits, as in ".s"
        unit_start = i
        while i < len(s) and s[i] != "." and s[i] not in _DIGITS:
            i += 1
        unit = _UNITS.get(s[unit_start:i])
        if unit is None:  # missing or unknown unit
            return None
        if whole > _LIMIT // unit:
            return None
        whole *= unit
        if frac > 0:
            # Go adds the fraction through a float64 and truncates: do the same.
            whole += int(float(frac) * (float(unit) / scale))
            if whole > _LIMIT:
                return None
        total += whole
        if total > _LIMIT:
            return None
    if neg:
        return -total
    return total if total <= _LIMIT - 1 else None


# --------------------------------------------------------------------------- ports


def _parse_uint16(s: str) -> int | None:
    """strconv.ParseUint(s, 10, 16): ASCII digits only, no sign, at most 65535."""
    if not s or any(c not in _DIGITS for c in s):
        return None
    value = int(s)
    return value if value <= 0xFFFF else None


def _parse_port_range(ports: str) -> tuple[int, int] | None:
    """nat.ParsePortRange: "80" or "80-90"; text after a second '-' is ignored, as in Go."""
    if "-" not in ports:
        single = _parse_uint16(ports)
        return None if single is None else (single, single)
    parts = ports.split("-")
    start = _parse_uint16(parts[0])
    end = _parse_uint16(parts[1])
    if start is None or end is None or end < start:
        return None
    return start, end


def _split_parts(raw: str) -> tuple[str, str, str]:
    """(ip, host port, container port) the way nat splits "ip:host:container"."""
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_proto_port(raw: str) -> tuple[str, str]:
    """(proto, port) from "port/proto"; anything after a second '/' is ignored."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    if not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _parse_ipv4(s: str) -> bool:
    """netip's IPv4 grammar: four decimal fields 0-255 without leading zeros."""
    fields = s.split(".")
    if len(fields) != 4:
        return False
    for field in fields:
        if not field or any(c not in _DIGITS for c in field):
            return False
        if len(field) > 1 and field[0] == "0":
            return False
        if len(field) > 3 or int(field) > 255:
            return False
    return True


_HEX: Final = frozenset("0123456789abcdefABCDEF")


def _parse_ipv6(s: str) -> bool:
    """netip's IPv6 grammar, without a zone (net.ParseIP rejects zones)."""
    if "%" in s:
        return False
    filled = 0  # bytes parsed so far
    ellipsis = False
    if s.startswith("::"):
        ellipsis = True
        s = s[2:]
        if not s:
            return True
    while filled < 16:
        off = 0
        while off < len(s) and s[off] in _HEX:
            off += 1
            if off > 4:
                return False
        if off == 0:
            return False
        if off < len(s) and s[off] == ".":
            # A dotted IPv4 tail must fill the last four bytes.
            if (not ellipsis and filled != 12) or filled + 4 > 16:
                return False
            if not _parse_ipv4(s):
                return False
            s = ""
            filled += 4
            break
        filled += 2
        s = s[off:]
        if not s:
            break
        if s[0] != ":" or len(s) == 1:
            return False
        s = s[1:]
        if s[0] == ":":
            if ellipsis:
                return False
            ellipsis = True
            s = s[1:]
            if not s:
                break
    if s:
        return False
    if filled < 16:
        return ellipsis
    return not ellipsis  # '::' must stand for at least one zero group


def _parse_ip(s: str) -> bool:
    """net.ParseIP: the first of '.', ':' or '%' decides the family."""
    for c in s:
        if c == ".":
            return _parse_ipv4(s)
        if c == ":":
            return _parse_ipv6(s)
        if c == "%":
            return False
    return False


def is_docker_port_spec(value: str) -> bool:
    """True if docker/go-connections' ``nat.ParsePortSpec(value)`` succeeds.

    Accepts ``[ip:][host_port[-end]:]container_port[-end][/proto]`` with proto tcp, udp or
    sctp (any case), ports 0-65535, an IPv4 or (bracketed or bare) IPv6 address, and a host
    range only where the container range has the same size or is a single port. Quirks kept
    from Go: ``"80/tcp/x"`` and ``"1-2-3"`` are accepted (extra parts ignored), ``"[]:80:80"``
    too (empty address).
    """
    if not isinstance(value, str):
        return False
    ip, host_port, container_port = _split_parts(value)
    proto, container_port = _split_proto_port(container_port)
    if ip.startswith("["):
        # net.SplitHostPort(ip + ":") must find exactly "[host]" before the colon.
        close = ip.find("]")
        if close != len(ip) - 1 or "[" in ip[1:]:
            return False
        ip = ip[1:-1]
    if ip and not _parse_ip(ip):
        return False
    if not container_port:
        return False
    container = _parse_port_range(container_port)
    if container is None:
        return False
    if host_port:
        host = _parse_port_range(host_port)
        if host is None:
            return False
        if container[1] - container[0] != host[1] - host[0] and container[0] != container[1]:
            return False
    return proto.lower() in ("tcp", "udp", "sctp")


def _check_duration(instance: object) -> bool:
    return isinstance(instance, str) and is_go_duration(instance)


def _check_ports(instance: object) -> bool:
    if isinstance(instance, str):
        return is_docker_port_spec(instance)
    if isinstance(instance, bool) or not isinstance(instance, (int, float)):
        return True  # gojsonschema applies formats to strings and numbers only
    if isinstance(instance, float) and not math.isfinite(instance):
        return False  # cannot even be encoded as JSON
    # gojsonschema passes a number as a big.Rat; Docker parses the numerator of its
    # "num/den" string as a port spec. repr() gives the same shortest decimal as Go's JSON
    # encoder. A negative numerator ("-1") never parses, so the spec is valid iff the
    # numerator is a port number.
    from fractions import Fraction  # imports decimal: only for numeric ports (start-up)

    numerator = Fraction(instance if isinstance(instance, int) else repr(instance)).numerator
    return 0 <= numerator <= 0xFFFF


def _check_expose(instance: object) -> bool:
    return True


#: The formats Docker checks: ``duration``, ``ports`` and (trivially) ``expose``.
_CHECKS: dict[str, Callable[[object], bool]] = {
    "duration": _check_duration,
    "ports": _check_ports,
    "expose": _check_expose,
}


class FastFormats:
    """``conforms(value, format)`` as jsonschema's FormatChecker answers it for these formats,
    without importing jsonschema (the fast schema check of valid files never needs it)."""

    checkers = _CHECKS

    def conforms(self, instance: object, format: str) -> bool:
        check = _CHECKS.get(format)
        return True if check is None else check(instance)


FAST_FORMATS = FastFormats()


@cache
def _format_checker() -> FormatChecker:
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    for name, check in _CHECKS.items():
        checker.checks(name)(check)
    return checker


def __getattr__(name: str) -> Any:
    # FORMAT_CHECKER (jsonschema's FormatChecker with exactly Docker's formats) is built on
    # first use, so that importing this module does not import jsonschema
    if name == "FORMAT_CHECKER":
        return _format_checker()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
