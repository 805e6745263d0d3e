"""Load one compose file as YAML, keeping the line and column of every key and value.

PyYAML's C composer builds the node tree (with marks); this module turns nodes into
Python values itself so that scalars are read the way Docker's YAML parser (go-yaml v3)
reads them: ``0440`` and ``0o440`` are octal 288, ``0888`` is decimal 888, ``yes`` is a
string, ``3.10`` is a float. Duplicate keys, recursive aliases, alias expansion bombs,
multiple documents and non-UTF-8 input are refused with a positioned :class:`InputError`.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from composesecrets.errors import ParseError


class LazyPattern:
    """A regular expression compiled on first use, then used directly (start-up time)."""

    def __init__(self, pattern: Any, flags: int = 0) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> Any:
        compiled = _compile(*self._source)
        value = getattr(compiled, name)
        if callable(value):
            setattr(self, name, value)  # later calls skip __getattr__
        return value


_compile = re.compile


@contextlib.contextmanager
def _lazy_compiles() -> Iterator[None]:
    """While PyYAML is imported, its regular expressions are compiled on first use only:
    its reader's Unicode class alone takes ~10 ms to compile and this module's loader uses
    neither the pure-Python reader nor PyYAML's resolver (see :func:`_resolve`)."""
    re.compile = LazyPattern  # type: ignore[assignment]
    try:
        yield
    finally:
        re.compile = _compile


with _lazy_compiles():
    import yaml

_IMPLICIT = "composesecrets:implicit"  # marks scalars that carried no explicit tag
_TAG = "tag:yaml.org,2002:"
_SEQ_TAG = _TAG + "seq"
_MAP_TAG = _TAG + "map"


def _resolve(self: Any, kind: Any, value: Any, implicit: Any) -> str:
    # PyYAML's YAML 1.1 resolver is replaced: scalars are resolved by resolve_plain.
    if kind is yaml.ScalarNode:
        return _IMPLICIT
    return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG


# The C composer is much faster; fall back to pure Python where libyaml is missing.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Loader: Any = type("_Loader", (_Base,), {"resolve": _resolve})

MAX_DEPTH = 200
# Nodes produced by expanding aliases; legitimate files (anchors for shared service
# defaults) stay far below this, a "billion laughs" document goes far above it.
MAX_ALIAS_NODES = 1_000_000
ALIAS_RATIO = 10

# for numbers only: compiled on first use
_FLOAT_RE: Any = LazyPattern(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DOT_FLOAT_RE: Any = LazyPattern(r"^\.[0-9]+([eE][-+]?[0-9]+)?$")
_INT_RE: dict[str, Any] = {
    "x": LazyPattern(r"^[0-9a-fA-F]+$"),
    "o": LazyPattern(r"^[0-7]+$"),
    "b": LazyPattern(r"^[01]+$"),
}
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUES = frozenset(("true", "True", "TRUE"))
_FALSES = frozenset(("false", "False", "FALSE"))
_SPECIAL_FLOATS = {
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}  # fmt: skip
_SPECIAL_FLOATS_FIRST = frozenset(k[0] for k in _SPECIAL_FLOATS)
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


class Loc(NamedTuple):
    """A position in a compose file; line and column start at 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class LocDict(dict[str, Any]):
    """A mapping that remembers where it, each key and each value came from, and which
    values came out of a variable substitution (``subst``)."""

    __slots__ = ("keylocs", "loc", "subst", "vallocs")

    def __init__(self, loc: Loc | None = None) -> None:
        super().__init__()
        self.loc = loc
        self.keylocs: dict[str, Loc] = {}
        self.vallocs: dict[str, Loc] = {}
        self.subst: set[str] = set()


class LocList(list[Any]):
    """A sequence that remembers where it and each item came from, and which items came out
    of a variable substitution (``subst``)."""

    __slots__ = ("loc", "locs", "subst")

    def __init__(self, loc: Loc | None = None) -> None:
        super().__init__()
        self.loc = loc
        self.locs: list[Loc] = []
        self.subst: set[int] = set()


def substituted(root: Any, path: Sequence[str | int]) -> bool:
    """Whether the value at ``path`` was produced by variable interpolation."""
    node = root
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, (LocDict, LocList)) and path[-1] in node.subst


def _go_parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)`` falling back to ``ParseUint``; None when neither parses."""
    sign = 1
    body = text
    if body[:1] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    value: int
    if len(body) > 1 and body[0] == "0" and body[1] in "xXoObB":
        digits = body[2:]
        kind = body[1].lower()
        if not digits or not _INT_RE[kind].match(digits):
            return None
        value = int(digits, {"x": 16, "o": 8, "b": 2}[kind])
    elif body[0] == "0" and len(body) > 1:
        if not _INT_RE["o"].match(body):
            return None
        value = int(body, 8)
    elif body.isascii() and body.isdigit():
        value = int(body)
    else:
        return None
    value *= sign
    if value < _INT64_MIN or value > _UINT64_MAX or (sign < 0 and value < _INT64_MIN):
        return None
    return value


def resolve_plain(text: str) -> Any:
    """Resolve an unquoted scalar the way go-yaml v3 does when decoding into ``any``."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    first = text[0]
    if first in _SPECIAL_FLOATS_FIRST and text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    if first == ".":
        return float(text) if _DOT_FLOAT_RE.match(text) else text
    if first in "+-0123456789":
        plain = text.replace("_", "")
        number = _go_parse_int(plain)
        if number is not None:
            return number
        if _FLOAT_RE.match(plain):
            return float(plain)
        for prefix, base in (("0b", 2), ("-0b", 2), ("0o", 8), ("-0o", 8)):
            if plain.startswith(prefix):
                try:
                    value = int(plain[len(prefix) :], base)
                except ValueError:
                    return text
                return -value if prefix.startswith("-") else value
    return text


class _Builder:
    """Turns a composed node tree into LocDict / LocList / scalars."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.direct_nodes = 0
        self.alias_nodes = 0
        self._in_alias = 0
        self._built: set[int] = set()  # containers built once: a second time is an alias
        self._active: set[int] = set()  # containers being built: seeing one again is a cycle

    def loc(self, node: yaml.Node) -> Loc:
        mark = node.start_mark
        return Loc(self.filename, mark.line + 1, mark.column + 1)

    def fail(self, node: yaml.Node, message: str) -> ParseError:
        loc = self.loc(node)
        return ParseError(loc.file, loc.line, loc.column, message)

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        if node.__class__ is yaml.ScalarNode:
            return self.scalar(node)
        if depth > MAX_DEPTH:
            raise self.fail(node, f"YAML is nested more than {MAX_DEPTH} levels deep")
        key = id(node)
        if key in self._active:
            raise self.fail(
                node, "a YAML alias refers to a node that contains it (recursive alias)"
            )
        again = key in self._built
        if again:
            self._in_alias += 1
        self._count(node)
        self._active.add(key)
        try:
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, depth)
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, depth)
        finally:
            self._active.discard(key)
            self._built.add(key)
            if again:
                self._in_alias -= 1

    def _count(self, node: yaml.Node) -> None:
        size = len(node.value) + 1
        if not self._in_alias:
            self.direct_nodes += size
            return
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES or (
            self.alias_nodes > 10_000 and self.alias_nodes > ALIAS_RATIO * self.direct_nodes
        ):
            raise self.fail(
                node,
                "the document expands YAML aliases too much (a possible alias bomb); "
                "refusing to load it",
            )

    def sequence(self, node: yaml.SequenceNode, depth: int) -> LocList:
        seq = LocList(self.loc(node))
        filename = self.filename
        locs = seq.locs
        append, build = seq.append, self.build
        for item in node.value:
            append(build(item, depth + 1))
            mark = item.start_mark
            locs.append(Loc(filename, mark.line + 1, mark.column + 1))
        return seq

    def scalar(self, node: yaml.ScalarNode) -> Any:
        value: str = node.value
        tag: str = node.tag
        if tag == _IMPLICIT:
            return value if node.style else resolve_plain(value)
        if tag == _TAG + "str" or not tag.startswith(_TAG):
            return value
        # An explicit core tag (!!int "5", !!bool ...): honour it where the text fits.
        resolved = resolve_plain(value)
        kind = tag[len(_TAG) :]
        if (
            (kind == "int" and isinstance(resolved, int) and not isinstance(resolved, bool))
            or (kind == "float" and isinstance(resolved, (int, float)))
            or (kind == "bool" and isinstance(resolved, bool))
            or (kind == "null" and resolved is None)
        ):
            return resolved
        return value

    def mapping(self, node: yaml.MappingNode, depth: int) -> LocDict:
        result = LocDict(self.loc(node))
        keylocs, vallocs = result.keylocs, result.vallocs
        filename = self.filename
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.__class__ is not yaml.ScalarNode:
                raise self.fail(key_node, "a mapping key must be a string, not a list or mapping")
            if key_node.value == "<<" and key_node.tag == _IMPLICIT and not key_node.style:
                merges.append(value_node)
                continue
            key = self.scalar(key_node)
            if not isinstance(key, str):
                raise self.fail(
                    key_node,
                    f"non-string key {key_node.value!r}: quote it to make it a string",
                )
            if key in keylocs:
                first = keylocs[key]
                raise self.fail(
                    key_node, f'mapping key "{key}" already defined at line {first.line}'
                )
            result[key] = self.build(value_node, depth + 1)
            mark = key_node.start_mark
            keylocs[key] = Loc(filename, mark.line + 1, mark.column + 1)
            mark = value_node.start_mark
            vallocs[key] = Loc(filename, mark.line + 1, mark.column + 1)
        for merge in merges:
            self.merge_into(result, merge, depth)
        return result

    def merge_into(self, result: LocDict, merge: yaml.Node, depth: int) -> None:
        """Apply a ``<<`` merge key: explicit keys win; earlier merged maps win over later."""
        sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
        for source in sources:
            built = self.build(source, depth + 1)
            if not isinstance(built, LocDict):
                raise self.fail(source, "a merge key (<<) needs a mapping or a list of mappings")
            for key, value in built.items():
                if key not in result.keylocs:
                    result[key] = value
                    result.keylocs[key] = built.keylocs[key]
                    result.vallocs[key] = built.vallocs[key]


def decode(data: bytes, filename: str) -> str:
    """Decode a compose file's bytes as UTF-8 (a BOM is allowed), or raise InputError."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ParseError(
            filename,
            line,
            column,
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8",
        ) from None


def load(text: str, filename: str, *, first_document_only: bool = False) -> Any:
    """Parse one YAML document; returns LocDict/LocList/scalar, or None for an empty file.

    A stream of several documents is refused, unless ``first_document_only`` (Docker's own
    behaviour, for ``--compat``): then the first document is used and the rest not even parsed.
    """
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ParseError(filename, line, 1, "the file contains NUL bytes; it is not a text file")
    loader = _Loader(text)
    try:
        if first_document_only:
            node = loader.get_node() if loader.check_node() else None
        else:
            node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, filename, text) from None
    except yaml.YAMLError as exc:
        raise ParseError(filename, 0, 0, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        return None
    try:
        return _Builder(filename).build(node)
    except RecursionError:
        raise ParseError(filename, 0, 0, "YAML is nested too deeply") from None


def _yaml_error(exc: yaml.MarkedYAMLError, filename: str, text: str) -> ParseError:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    if "expected a single document" in str(exc.context or ""):
        return ParseError(
            filename,
            line,
            column,
            "the file holds more than one YAML document ('---'); "
            "a compose file is exactly one document",
        )
    problem = exc.problem or "invalid YAML"
    if mark is not None and "\t" in _line(text, mark.line)[: mark.column + 1]:
        problem += " (YAML does not allow tabs for indentation; use spaces)"
    context = f" {exc.context}" if exc.context else ""
    return ParseError(filename, line, column, f"invalid YAML: {problem}{context}")


def _line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""
