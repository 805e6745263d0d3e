"""The YAML loader: go-yaml v3 scalar reading, positions, and refusal of hostile input."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from composesecrets.compose import yamlload
from composesecrets.compose.yamlload import Loc, LocDict, LocList, decode, load
from composesecrets.errors import InputError, ParseError


def value_of(scalar: str) -> Any:
    """The value go-yaml v3 would give the plain scalar ``scalar`` under key ``a``."""
    return load(f"a: {scalar}\n", "f.yml")["a"]


def parse_error(text: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        load(text, "f.yml")
    return info.value


# --- scalars, as go-yaml v3 reads them ---------------------------------------------------


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("0440", 288),  # a leading 0 means octal, as in strconv.ParseInt(s, 0, 64)
        ("0o440", 288),
        ("0O440", 288),
        ("0444", 292),
        ("0_440", 288),
        ("-0o17", -15),
        ("0x1F", 31),
        ("0b101", 5),
        ("1_000", 1000),
        ("+12", 12),
        ("-7", -7),
        ("0", 0),
        ("9223372036854775808", 2**63),  # fits uint64
    ],
)
def test_integers_like_go_yaml_v3(scalar: str, expected: int) -> None:
    value = value_of(scalar)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("0888", 888),  # not octal: go-yaml falls back to a decimal float
        ("08", 8),
        ("3.10", 3.1),
        ("1e3", 1000),
        (".5", 0.5),
        ("1_0.5", 10.5),
        ("18446744073709551616", 2.0**64),  # beyond uint64: a float
    ],
)
def test_numbers_that_are_not_go_integers_are_floats(scalar: str, expected: float) -> None:
    value = value_of(scalar)
    assert isinstance(value, float)
    assert value == expected


def test_special_floats() -> None:
    assert value_of(".inf") == math.inf
    assert value_of("-.Inf") == -math.inf
    assert math.isnan(value_of(".nan"))


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("yes", "yes"),  # YAML 1.2: only true/false are booleans
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("0o", "0o"),
        ("0x", "0x"),
        ("0x1G", "0x1G"),
        ("2001-12-14", "2001-12-14"),
        ("'0440'", "0440"),
        ('"0440"', "0440"),
        ("'true'", "true"),
        ("3.1.4", "3.1.4"),
    ],
)
def test_strings_stay_strings(scalar: str, expected: str) -> None:
    assert value_of(scalar) == expected


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False)],
)
def test_booleans(scalar: str, expected: bool) -> None:
    assert value_of(scalar) is expected


@pytest.mark.parametrize("scalar", ["", "~", "null", "Null", "NULL"])
def test_nulls(scalar: str) -> None:
    assert value_of(scalar) is None


def test_explicit_str_tag_keeps_the_string() -> None:
    # go-yaml v3: `!!str 0440` is the string "0440" (docker stack config then says
    # "services.web.secrets.0.mode must be a number").
    assert value_of("!!str 0440") == "0440"


def test_explicit_int_tag_on_a_quoted_scalar() -> None:
    assert value_of("!!int '0440'") == 288


def test_version_unquoted_is_a_float() -> None:
    root = load('version: 3.10\nother: "3.10"\n', "f.yml")
    assert root["version"] == 3.1
    assert root["other"] == "3.10"


# --- structure ---------------------------------------------------------------------------


def test_returns_loc_containers() -> None:
    root = load("a:\n  b: [1, 2]\n", "f.yml")
    assert isinstance(root, LocDict)
    assert isinstance(root["a"], LocDict)
    assert isinstance(root["a"]["b"], LocList)
    assert root == {"a": {"b": [1, 2]}}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_document_is_none(text: str) -> None:
    assert load(text, "f.yml") is None


def test_document_end_marker_is_fine() -> None:
    assert load("a: 1\n...\n", "f.yml") == {"a": 1}


def test_duplicate_key_names_the_first_line() -> None:
    err = parse_error(
        "services:\n  web:\n    image: a\n  db:\n    image: b\n  web:\n    image: c\n"
    )
    assert (err.line, err.column) == (6, 3)
    assert 'mapping key "web" already defined at line 2' in err.detail
    assert isinstance(err, InputError)
    assert err.exit_code == 2
    assert str(err).startswith("f.yml:6:3: ")


def test_duplicate_key_nested_in_flow_mapping() -> None:
    err = parse_error("a: {x: 1, x: 2}\n")
    assert err.line == 1
    assert 'mapping key "x" already defined at line 1' in err.detail


def test_merge_key_explicit_keys_win() -> None:
    root = load("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n", "f.yml")
    assert root["c"] == {"x": 1, "y": 3}
    assert "<<" not in root["c"]
    # the merged key keeps the position where it was written (in the anchor)
    assert root["c"].keylocs["x"] == Loc("f.yml", 1, 11)
    assert root["c"].keylocs["y"] == Loc("f.yml", 4, 3)


def test_merge_key_list_earlier_maps_win() -> None:
    root = load("a: &a {x: 1}\nb: &b {x: 5, z: 1}\nc:\n  <<: [*a, *b]\n", "f.yml")
    assert root["c"] == {"x": 1, "z": 1}


def test_merge_key_with_a_duplicate_explicit_key_is_still_a_duplicate() -> None:
    err = parse_error("a: &a {x: 1}\nc:\n  <<: *a\n  y: 1\n  y: 2\n")
    assert err.line == 5


@pytest.mark.parametrize("text", ["<<: 5\n", "a: &x 1\n<<: *x\n", "<<: [1, 2]\n"])
def test_merge_key_needs_mappings(text: str) -> None:
    assert "merge key" in parse_error(text).detail


def test_aliases_are_expanded() -> None:
    root = load("x-env: &env {A: '1'}\nservices:\n  a: {environment: *env}\n", "f.yml")
    assert root["services"]["a"]["environment"] == {"A": "1"}


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a {b: [{c: *a}]}\n"])
def test_recursive_alias_is_refused(text: str) -> None:
    err = parse_error(text)
    assert "recursive alias" in err.detail
    assert err.line == 1


def test_undefined_alias() -> None:
    err = parse_error("a: *nope\n")
    assert "undefined alias" in err.detail
    assert (err.line, err.column) == (1, 4)


def _alias_bomb(levels: int) -> str:
    names = "abcdefghijkl"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*{names[i - 1]}"] * 10)
        lines.append(f"{names[i]}: &{names[i]} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9, 12])
def test_alias_bomb_refused_quickly(levels: int) -> None:
    started = time.monotonic()
    err = parse_error(_alias_bomb(levels))
    assert time.monotonic() - started < 2.0
    assert "alias bomb" in err.detail


def test_moderate_alias_use_is_fine() -> None:
    # 1000 expanded nodes from 10 anchors: ordinary shared defaults, not a bomb
    root = load(_alias_bomb(3), "f.yml")
    assert len(root["c"]) == 10
    assert len(root["c"][0]) == 10


def test_multiple_documents_refused() -> None:
    err = parse_error("a: 1\n---\nb: 2\n")
    assert err.line == 2
    assert "more than one YAML document" in err.detail


def test_tab_indentation_explained() -> None:
    err = parse_error("a:\n\tb: 1\n")
    assert (err.line, err.column) == (2, 1)
    assert "tabs" in err.detail


def test_tab_inside_a_value_is_fine() -> None:
    assert load('a: "x\\ty"\nb: "p\tq"\n', "f.yml") == {"a": "x\ty", "b": "p\tq"}


def test_nul_byte_refused_with_line() -> None:
    err = parse_error("a: 1\nb: x\x00y\n")
    assert err.line == 2
    assert "NUL" in err.detail


def test_syntax_error_position() -> None:
    err = parse_error("a:\n  b: [1, 2\nc: 3\n")
    assert err.line == 3
    assert err.detail.startswith("invalid YAML:")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("1: x\n", 1, 1), ("true: x\n", 1, 1), ("~: x\n", 1, 1), ("a:\n  0440: x\n", 2, 3)],
)
def test_non_string_keys_refused(text: str, line: int, column: int) -> None:
    err = parse_error(text)
    assert (err.line, err.column) == (line, column)
    assert "non-string key" in err.detail


def test_complex_key_refused() -> None:
    err = parse_error("? [a]\n: x\n")
    assert "must be a string" in err.detail


def test_quoted_number_key_is_a_string() -> None:
    assert load("'1': x\n", "f.yml") == {"1": "x"}


def test_nesting_within_limit() -> None:
    depth = 150
    value = load("a: " + "[" * depth + "]" * depth + "\n", "f.yml")["a"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == []


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 250 + "]" * 250 + "\n",
        "a: " + "{b: " * 250 + "1" + "}" * 250 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(260)),
        "a: " + "[" * 20000 + "]" * 20000 + "\n",
    ],
)
def test_deep_nesting_refused_cleanly(text: str) -> None:
    err = parse_error(text)
    assert err.line >= 1
    assert "nest" in err.detail


def test_root_can_be_any_node() -> None:
    # load() returns what is there; the project reports a non-mapping root
    assert load("[1, 2]\n", "f.yml") == [1, 2]
    assert load("just text\n", "f.yml") == "just text"


# --- decoding ----------------------------------------------------------------------------


def test_decode_utf8_and_bom() -> None:
    assert decode("a: é\n".encode(), "f.yml") == "a: é\n"
    assert decode(b"\xef\xbb\xbfa: 1\n", "f.yml") == "a: 1\n"
    assert load(decode(b"\xef\xbb\xbfa: 1\n", "f.yml"), "f.yml").keylocs["a"] == Loc("f.yml", 1, 1)


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b"a: 1\nb: \xff\n", 2, 4),
        (b"\xfe\xff", 1, 1),
        (b"a: caf\xe9\n", 1, 7),  # Latin-1
        ("a: é\nbb: x".encode() + b"\x80", 2, 6),
    ],
)
def test_decode_refuses_non_utf8_with_position(data: bytes, line: int, column: int) -> None:
    with pytest.raises(ParseError) as info:
        decode(data, "f.yml")
    assert (info.value.line, info.value.column) == (line, column)
    assert "not valid UTF-8" in info.value.detail


def test_utf16_is_refused() -> None:
    with pytest.raises(ParseError):
        decode("a: 1\n".encode("utf-16"), "f.yml")


# --- positions ---------------------------------------------------------------------------

POSITIONS = """\
version: "3.8"
services:
  web:
    image: busybox
    secrets:
      - db
      - source: db
        mode: 0440
secrets:
  db: {file: ./db.txt}
"""


def test_key_and_value_positions() -> None:
    root = load(POSITIONS, "p.yml")
    assert root.loc == Loc("p.yml", 1, 1)
    assert root.keylocs["version"] == Loc("p.yml", 1, 1)
    assert root.vallocs["version"] == Loc("p.yml", 1, 10)
    assert root.keylocs["services"] == Loc("p.yml", 2, 1)
    assert root.vallocs["services"] == Loc("p.yml", 3, 3)
    web = root["services"]["web"]
    assert web.keylocs["image"] == Loc("p.yml", 4, 5)
    assert web.vallocs["image"] == Loc("p.yml", 4, 12)
    secrets = web["secrets"]
    assert secrets.loc == Loc("p.yml", 6, 7)
    assert secrets.locs == [Loc("p.yml", 6, 9), Loc("p.yml", 7, 9)]
    long = secrets[1]
    assert long.keylocs["mode"] == Loc("p.yml", 8, 9)
    assert long.vallocs["mode"] == Loc("p.yml", 8, 15)
    assert long["mode"] == 288
    db = root["secrets"]["db"]
    assert root["secrets"].keylocs["db"] == Loc("p.yml", 10, 3)
    assert db.loc == Loc("p.yml", 10, 7)
    assert db.keylocs["file"] == Loc("p.yml", 10, 8)
    assert db.vallocs["file"] == Loc("p.yml", 10, 14)


def test_positions_after_a_bom_and_crlf() -> None:
    text = decode(b"\xef\xbb\xbfa: 1\r\nb:\r\n  c: x\r\n", "w.yml")
    root = load(text, "w.yml")
    assert root["b"].keylocs["c"] == Loc("w.yml", 3, 3)
    assert root["b"].vallocs["c"] == Loc("w.yml", 3, 6)


def test_loc_str() -> None:
    assert str(Loc("x.yml", 3, 7)) == "x.yml:3:7"


def test_pure_python_loader_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    fast = load(POSITIONS, "p.yml")
    pure = type("PureLoader", (yaml.SafeLoader,), {"resolve": yamlload._resolve})
    monkeypatch.setattr(yamlload, "_Loader", pure)
    slow = load(POSITIONS, "p.yml")
    assert value_of("!!str 0440") == "0440"
    assert value_of("0o440") == 288
    assert slow == fast
    assert (
        slow["services"]["web"]["secrets"][1].vallocs
        == fast["services"]["web"]["secrets"][1].vallocs
    )


def test_pyyaml_regexes_are_compiled_on_first_use_only() -> None:
    """Start-up: importing the loader compiles none of PyYAML's patterns (its reader's Unicode
    class is the costliest), re.compile is restored, and PyYAML still works where it uses them."""
    import subprocess
    import sys

    script = (
        "import re\n"
        "from composesecrets.compose import yamlload\n"
        "import yaml\n"
        "assert re.compile is yamlload._compile\n"
        "assert not isinstance(yaml.reader.Reader.__dict__['NON_PRINTABLE'], re.Pattern)\n"
        "assert yaml.safe_load('a: 2001-12-14\\nb: yes\\n')['b'] is True\n"
        "assert yaml.safe_dump({'x': 'yes'}) == \"x: 'yes'\\n\"\n"
        "try:\n"
        "    yaml.reader.Reader('ok\\x07')\n"
        "except yaml.reader.ReaderError:\n"
        "    print('refused')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "refused\n"
