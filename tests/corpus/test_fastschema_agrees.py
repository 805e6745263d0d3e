"""compose/fastschema.py answers "valid?" without jsonschema; it must give jsonschema's
verdict on every corpus file (and every strict golden file) under every 3.x schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from composesecrets.compose import fastschema, formats, interpolate, schema, yamlload
from composesecrets.errors import InputError

HERE = Path(__file__).resolve().parent
STRICT = HERE.parent / "unit" / "compose" / "strict"
FILES = sorted(HERE.glob("*.yml")) + sorted(STRICT.glob("*.yml"))


def documents(path: Path) -> list[Any]:
    """The file's mapping as loaded, and once more interpolated with no variables set."""
    try:
        text = yamlload.decode(path.read_bytes(), path.name)
        raw = yamlload.load(text, path.name, first_document_only=True)
        again = yamlload.load(text, path.name, first_document_only=True)
    except InputError:
        return []
    if not isinstance(raw, yamlload.LocDict):
        return [raw]
    interpolate.interpolate(again, lambda name: None)
    return [raw, again]


@pytest.mark.parametrize("version", schema.SUPPORTED_VERSIONS)
def test_fast_path_and_jsonschema_agree(version: str) -> None:
    fast = schema.fast_check(version)
    assert fast is not None, f"schema {version} is outside the fast path's subset"
    # the fast path compiles a property's schema on first use: all of them compile
    fastschema.compile_schema(schema._schema(version), formats.FAST_FORMATS, lazy=False)
    validator = schema.validator(version)
    checked = disagree = valid = 0
    problems = []
    for path in FILES:
        for doc in documents(path):
            checked += 1
            expected = validator.is_valid(doc)
            valid += expected
            if fast(doc) != expected:
                disagree += 1
                problems.append(f"{path.name}: jsonschema says {expected}")
    assert checked >= 150
    assert 3 <= valid <= checked - 20, f"{valid} of {checked} valid: not a balanced sample"
    assert not problems, "\n".join(problems)
    assert disagree == 0
