"""A fast yes/no check of a document against a Draft-4 schema.

python-jsonschema is the reference and produces every error message; on large files
(thousands of services) it is slow, because most documents are valid and every node
still goes through its generic machinery. This module compiles the keywords our
schemas use into plain closures that only answer "valid or not". A document it
accepts skips jsonschema entirely; anything it rejects is validated again by jsonschema
for the messages. A test checks that both agree on the corpus and on fuzzed documents.

A property's schema is compiled when a document first has that key (``lazy``, the default):
a file uses few of the schema's keys, and compiling all of them was most of a small file's
check (start-up). Compiling lazily, :class:`Unsupported` can come from the check itself;
``lazy=False`` compiles everything at once (the tests check that every schema compiles).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

Check = Callable[[Any], bool]

_IGNORED = frozenset(
    ("$schema", "$id", "id", "$comment", "title", "description", "definitions", "default")
)
_SUPPORTED = frozenset(
    (
        "type", "properties", "additionalProperties", "patternProperties", "required", "$ref",
        "items", "additionalItems", "oneOf", "anyOf", "allOf", "not", "enum", "format",
        "uniqueItems", "multipleOf", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "pattern",
        "minProperties", "maxProperties",
    )
)  # fmt: skip


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not know: use jsonschema alone."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def canonical(value: Any) -> Any:
    """A hashable form in which equality follows JSON Schema (true != 1, 1 == 1.0)."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", tuple(canonical(v) for v in value))
    if isinstance(value, dict):
        return ("d", frozenset((k, canonical(v)) for k, v in value.items()))
    return ("o", repr(value))


class FormatCheck(Protocol):
    def conforms(self, instance: object, format: str) -> bool: ...


def compile_schema(
    root: dict[str, Any], format_checker: FormatCheck, *, lazy: bool = True
) -> Check:
    """Compile ``root``; raises :class:`Unsupported` for keywords outside our subset (with
    ``lazy``, a property's schema is compiled, and may raise, when first checked)."""
    refs: dict[str, Check] = {}

    def ref(pointer: str) -> Check:
        if pointer in refs:
            return refs[pointer]
        if not pointer.startswith("#/"):
            raise Unsupported(f"remote $ref {pointer}")
        target: Any = root
        for part in pointer[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        slot: list[Check] = []
        refs[pointer] = lambda v: slot[0](v)
        slot.append(compile_node(target))
        refs[pointer] = slot[0]
        return slot[0]

    def compile_node(schema: Any) -> Check:
        if schema is True or schema == {}:
            return lambda v: True
        if not isinstance(schema, dict):
            raise Unsupported(repr(schema))
        unknown = set(schema) - _SUPPORTED - _IGNORED
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        if "$ref" in schema:  # draft 4: siblings of $ref are ignored
            return ref(schema["$ref"])
        checks: list[Check] = []
        if "type" in schema:
            checks.append(_type(schema["type"]))
        if "enum" in schema:
            allowed = {canonical(v) for v in schema["enum"]}
            checks.append(lambda v: canonical(v) in allowed)
        if "format" in schema:
            fmt = schema["format"]
            checks.append(lambda v: format_checker.conforms(v, fmt))
        checks += _object(schema, compile_node, lazy)
        checks += _array(schema, compile_node)
        checks += _scalar(schema)
        for key, combine in (("oneOf", _one_of), ("anyOf", _any_of), ("allOf", _all_of)):
            if key in schema:
                checks.append(combine([compile_node(s) for s in schema[key]]))
        if "not" in schema:
            inner = compile_node(schema["not"])
            checks.append(lambda v: not inner(v))
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return _all_of(checks)

    return compile_node(root)


def _type(types: Any) -> Check:
    names = types if isinstance(types, list) else [types]
    funcs = [_TYPES[n] for n in names]
    if len(funcs) == 1:
        return funcs[0]
    return lambda v: any(f(v) for f in funcs)


def _one_of(checks: list[Check]) -> Check:
    def check(v: Any) -> bool:
        passed = 0
        for c in checks:
            if c(v):
                passed += 1
                if passed > 1:
                    return False
        return passed == 1

    return check


def _any_of(checks: list[Check]) -> Check:
    return lambda v: any(c(v) for c in checks)


def _all_of(checks: list[Check]) -> Check:
    def check(v: Any) -> bool:
        for c in checks:  # noqa: SIM110 - a plain loop is faster than all() here
            if not c(v):
                return False
        return True

    return check


def _object(
    schema: dict[str, Any], compile_node: Callable[[Any], Check], lazy: bool
) -> list[Check]:
    keys = ("properties", "patternProperties", "additionalProperties", "required",
            "minProperties", "maxProperties")  # fmt: skip
    if not any(k in schema for k in keys):
        return []
    prop_schemas: dict[str, Any] = schema.get("properties", {})
    props: dict[str, Check] = {} if lazy else {k: compile_node(s) for k, s in prop_schemas.items()}
    patterns = [
        (re.compile(p), compile_node(s)) for p, s in schema.get("patternProperties", {}).items()
    ]
    extra = schema.get("additionalProperties", True)
    extra_check: Check | None = None
    if isinstance(extra, dict):
        extra_check = compile_node(extra)
    forbid_extra = extra is False
    required = list(schema.get("required", ()))
    min_props = schema.get("minProperties")
    max_props = schema.get("maxProperties")

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return True
        for key, value in v.items():
            sub = props.get(key)
            if sub is None and key in prop_schemas:
                sub = props[key] = compile_node(prop_schemas[key])  # lazy: first use
            matched = sub is not None
            if sub is not None and not sub(value):
                return False
            for pattern, pcheck in patterns:
                if pattern.search(key):
                    matched = True
                    if not pcheck(value):
                        return False
            if not matched:
                if forbid_extra:
                    return False
                if extra_check is not None and not extra_check(value):
                    return False
        for key in required:
            if key not in v:
                return False
        if min_props is not None and len(v) < min_props:
            return False
        return not (max_props is not None and len(v) > max_props)

    return [check]


def _array(schema: dict[str, Any], compile_node: Callable[[Any], Check]) -> list[Check]:
    out: list[Check] = []
    items = schema.get("items")
    if isinstance(items, list):
        firsts = [compile_node(s) for s in items]
        extra = schema.get("additionalItems", True)
        extra_check = compile_node(extra) if isinstance(extra, dict) else None

        def tuple_check(v: Any) -> bool:
            if not isinstance(v, list):
                return True
            for i, item in enumerate(v):
                if i < len(firsts):
                    if not firsts[i](item):
                        return False
                elif extra is False or (extra_check is not None and not extra_check(item)):
                    return False
            return True

        out.append(tuple_check)
    elif items is not None:
        each = compile_node(items)
        out.append(lambda v: not isinstance(v, list) or all(each(i) for i in v))
    if schema.get("uniqueItems"):

        def unique(v: Any) -> bool:
            if not isinstance(v, list):
                return True
            seen = [canonical(i) for i in v]
            return len(set(seen)) == len(seen)

        out.append(unique)
    if "minItems" in schema:
        low: int = schema["minItems"]
        out.append(lambda v: not isinstance(v, list) or len(v) >= low)
    if "maxItems" in schema:
        high: int = schema["maxItems"]
        out.append(lambda v: not isinstance(v, list) or len(v) <= high)
    return out


def _scalar(schema: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "multipleOf" in schema:
        step = schema["multipleOf"]

        def multiple(v: Any) -> bool:
            if not _is_number(v):
                return True
            if isinstance(step, float):
                quotient = v / step
                try:
                    return bool(int(quotient) == quotient)
                except (OverflowError, ValueError):
                    return False
            remainder = v % step
            return not remainder

        out.append(multiple)
    if "minimum" in schema:
        low, exclusive = schema["minimum"], schema.get("exclusiveMinimum", False)
        out.append(lambda v: not _is_number(v) or (v > low if exclusive else v >= low))
    if "maximum" in schema:
        high, exclusive_h = schema["maximum"], schema.get("exclusiveMaximum", False)
        out.append(lambda v: not _is_number(v) or (v < high if exclusive_h else v <= high))
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        out.append(lambda v: not isinstance(v, str) or rx.search(v) is not None)
    if "minLength" in schema:
        n = schema["minLength"]
        out.append(lambda v: not isinstance(v, str) or len(v) >= n)
    if "maxLength" in schema:
        m = schema["maxLength"]
        out.append(lambda v: not isinstance(v, str) or len(v) <= m)
    return out
