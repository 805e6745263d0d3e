"""Property-based fuzzing: no input makes composesecrets crash.

Thousands of random and mutated compose documents go through the library entry the CLI
uses (``load_project`` wrapped the way ``cli.main`` wraps it, then every renderer) and a
smaller share through ``cli.main`` itself, in-process. Every run must end with exit code
0, 1 or 2, say something when it fails, and never show a traceback or an internal error
(exit 70). Runs are derandomised and use no example database, so CI is reproducible.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.cli_helpers import run_main

from composesecrets.compose import diagnostics
from composesecrets.compose.project import load_project
from composesecrets.errors import ComposeSecretsError, InternalError

STRICT = Path(__file__).resolve().parent / "strict"
SEEDS = [p.read_text() for p in sorted(STRICT.glob("*.yml"))] + [
    "version: '3.1'\nservices:\n  s:\n    image: x\n    secrets: [a]\nsecrets:\n"
    "  a: {external: {name: b}}\n",
    "x-base: &base\n  image: x\n  secrets: [pw]\nservices:\n  a:\n    <<: *base\n"
    "  b:\n    <<: *base\n    environment: [TOKEN=abc]\nsecrets:\n  pw: {file: ./pw.txt}\n",
]
RULE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ENV = {"MODE": "0440", "EXT": "yes", "BAD": "abc", "EMPTY": "", "A": "x"}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch CWD with the files the seeds refer to (stdin paths resolve against it)."""
    path = tmp_path_factory.mktemp("fuzz")
    (path / "pw.txt").write_text("s3cret")
    (path / "empty.txt").write_bytes(b"")
    (path / "adir").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        for key, value in ENV.items():
            mp.setenv(key, value)
        mp.delenv("COMPOSESECRETS_DEBUG", raising=False)
        yield path


# --- strategies ---------------------------------------------------------------------------

TOKENS = [
    "\n", "\n  ", "\n    ", "  ", ": ", "- ", "[", "]", "{", "}", ", ", "&a ", "*a", "<<: ",
    "---\n", "...\n", "? ", "|\n  ", ">-\n  ", "!!str ", "!!int ", "!!binary ", "!!map ",
    "!tag ", "'", '"', "#", "\t", "%YAML 1.2\n", "\\", "\x00", "\ufeff", "é", "\U0001f600",
    "version: ", "'3.8'", "3.1", "services:", "secrets:", "image: x", "file: ./pw.txt",
    "external: true", "source: ", "target: ", "uid: ", "gid: ", "mode: ", "0440", "0o7777",
    "0888", "440", "-1", "1e400", "${MODE}", "${EXT}", "$", "$$", "${A:-${B}}", "${X:?m}",
    "environment:", "MYSQL_PASSWORD: p", "labels:", "name: ", "driver: d", "x-", "~", "null",
]  # fmt: skip
NAMES = ["pw", "db", "api.key", "bad_", "a b", "k" * 70, "0", "web", "x-y", ""]
SCALAR_TEXT = [
    "0440", "0o440", "0888", "440", "3.10", "yes", "true", "~", "-1", "1_000", "0x1F", ".inf",
    "${MODE}", "${BAD}", "${EXT}", "${NOPE}", "$", "$$", "cost $ 5 ${A}", "${A:?m}", "./pw.txt",
    "./adir", "./empty.txt", "/dev/null", "", "'3.8'", "[]", "{}", "[a, b]", "{a: 1}", "*a",
]  # fmt: skip
VERSIONS = ["3", "3.0", "3.1", "3.4", "3.5", "3.7", "3.8", "3.13", "3.14", "2", "4"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(SCALAR_TEXT),
)
names = st.sampled_from(NAMES) | st.text(max_size=6)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
long_syntax = st.dictionaries(
    st.sampled_from(["source", "target", "uid", "gid", "mode", "targte", "x-a"]) | names,
    scalars,
    max_size=5,
)
secret_item = st.sampled_from(NAMES[:4]) | long_syntax | junk
service = st.dictionaries(
    st.sampled_from(["image", "secrets", "environment", "command", "labels", "x-a", "bogus"]),
    st.lists(secret_item, max_size=4) | st.dictionaries(names, scalars, max_size=3) | junk,
    max_size=4,
)
secret_def = st.dictionaries(
    st.sampled_from(["file", "external", "name", "labels", "driver", "x-a", "mode"]),
    scalars | st.dictionaries(names, scalars, max_size=2),
    max_size=3,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from(["3.8", "3.13", "3", "3.5", "3.1"])
        | st.sampled_from(VERSIONS)
        | scalars,
        "services": st.dictionaries(names, service, max_size=3) | junk,
        "secrets": st.dictionaries(names, secret_def | junk, max_size=3) | junk,
        "x-extra": junk,
    },
)


def dump(doc: Any, flow: bool) -> str:
    return yaml.safe_dump(doc, default_flow_style=flow, sort_keys=False, allow_unicode=True)


structured = st.builds(dump, documents | junk, st.booleans())
yamlish = st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=40).map("".join)


def mutate(seed: str, ops: list[tuple[str, int, int, str]]) -> str:
    text = seed
    for op, a, b, token in ops:
        size = len(text) or 1
        i, j = sorted((a % size, b % size))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + token + text[i:]
        else:  # swap the value of one "key: value" line for another type
            lines = text.split("\n")
            candidates = [n for n, line in enumerate(lines) if ": " in line]
            if candidates:
                n = candidates[a % len(candidates)]
                key = lines[n].split(": ", 1)[0]
                lines[n] = f"{key}: {token}"
            text = "\n".join(lines)
    return text


mutated = st.builds(
    mutate,
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "duplicate", "insert", "swap"]),
            st.integers(min_value=0, max_value=10**6),
            st.integers(min_value=0, max_value=10**6),
            st.sampled_from(TOKENS + SCALAR_TEXT),
        ),
        min_size=1,
        max_size=4,
    ),
)


def flip_bytes(seed: str, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(seed.encode())
    for where, value in flips:
        data[where % len(data)] = value
    return bytes(data)


raw_bytes = st.binary(max_size=300) | st.builds(
    flip_bytes,
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
)


# --- the entry points -----------------------------------------------------------------------


def library(data: bytes, *, compat: bool) -> int:
    """What ``composesecrets validate``/``config`` do with ``-c -``, as cli.main handles it.

    ComposeSecretsError becomes its exit code; any other exception escapes and fails the
    test with its traceback (cli.main would print "internal error" and exit 70).
    """
    try:
        project = load_project(["-"], compat=compat, stdin=io.BytesIO(data), environ=ENV)
    except ComposeSecretsError as exc:
        assert not isinstance(exc, InternalError)
        assert exc.exit_code == 2, exc
        assert str(exc).strip()
        return exc.exit_code
    found = project.diagnostics
    for d in found:
        assert d.severity in ("error", "warning")
        assert d.message.strip()
        assert RULE.match(d.rule), d
        assert d.file == "<stdin>"
        assert d.line >= 0 and d.column >= 0
    diagnostics.render_text(found)
    json.loads(diagnostics.render_json(found))
    diagnostics.render_github(found)
    if project.errors:
        return 1
    assert project.stack is not None
    json.dumps(project.stack.to_config())
    return 0


# --- properties -----------------------------------------------------------------------------


@fuzz_settings(1200)
@given(text=structured, compat=st.booleans())
def test_structured_documents(text: str, compat: bool) -> None:
    assert library(text.encode(), compat=compat) in (0, 1, 2)


@fuzz_settings(1200)
@given(text=mutated, compat=st.booleans())
def test_mutated_seeds(text: str, compat: bool) -> None:
    assert library(text.encode(), compat=compat) in (0, 1, 2)


@fuzz_settings(800)
@given(text=yamlish, compat=st.booleans())
def test_yamlish_text(text: str, compat: bool) -> None:
    assert library(text.encode(errors="surrogatepass"), compat=compat) in (0, 1, 2)


@fuzz_settings(300)
@given(data=raw_bytes)
def test_raw_bytes(data: bytes) -> None:
    assert library(data, compat=False) in (0, 1, 2)


CLI_ARGS = [
    ["validate", "-c", "-"],
    ["validate", "--compat", "-c", "-"],
    ["validate", "--format", "json", "-c", "-"],
    ["validate", "--format", "github", "--strict-warnings", "-c", "-"],
    ["validate", "--stack", "stk", "-c", "-"],
    ["config", "-c", "-"],
    ["config", "--format", "json", "--compat", "-c", "-"],
]


@fuzz_settings(400)
@given(
    text=structured | mutated | yamlish,
    args=st.sampled_from(CLI_ARGS),
)
def test_cli_never_crashes(text: str, args: list[str]) -> None:
    result = run_main(args, text.encode(errors="surrogatepass"))
    code, output = result.code, result.output
    assert "Traceback" not in output
    assert "internal error" not in output, output
    assert code in (0, 1, 2), output
    if code:
        assert output.strip()
    if args[0] == "validate" and "json" in args and code != 2:
        assert isinstance(json.loads(output[: output.rindex("]") + 1]), list)


def test_seeds_are_still_interesting() -> None:
    """The seeds cover all three verdicts, so mutations start from every kind of file."""
    codes = {library(seed.encode(), compat=False) for seed in SEEDS}
    assert codes == {0, 1}
    assert library(b"a: [", compat=False) == 2


def test_workdir_is_used(workdir: Path) -> None:
    assert Path.cwd() == workdir
    assert os.environ["MODE"] == "0440"
