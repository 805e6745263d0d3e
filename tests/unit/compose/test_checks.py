"""Strict checks: every file in strict/ triggers exactly its rule, at the marked line.

Each ``strict/<rule>.yml`` marks the offending line with ``# <- here``. The file is copied to
``tmp_path`` and the secret files it needs are made there (never committed). ``--compat``
(Docker's verdict) must accept every one of them: Docker only finds these at deploy time, or
never (checked with ``docker stack config``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from composesecrets.compose.checks import MAX_SECRET_BYTES, name_problem
from composesecrets.compose.project import Project, load_project

STRICT = Path(__file__).resolve().parent / "strict"
WARNINGS = {"unused-secret", "plaintext-credential", "same-source-settings", "unset-variable"}
ERRORS = {
    "undefined-secret", "undefined-dependency", "unknown-key", "file-and-external",
    "empty-definition", "file-missing", "file-not-regular", "file-size", "file-unreadable",
    "secret-name", "target-empty", "target-dotdot", "target-duplicate", "uid-not-numeric",
    "gid-not-numeric", "mode-range",
    "mode-decimal", "mode-interpolated", "mode-not-integer", "interpolation-bare-dollar",
    "missing-source", "rotate-label",
}  # fmt: skip
MARKER = "# <- here"


def test_one_file_per_rule() -> None:
    assert {p.stem for p in STRICT.glob("*.yml")} == ERRORS | WARNINGS


def stage(tmp_path: Path, rule: str) -> Path:
    """Copy strict/<rule>.yml to tmp_path and make the files it refers to."""
    target = tmp_path / f"{rule}.yml"
    shutil.copyfile(STRICT / f"{rule}.yml", target)
    (tmp_path / "pw.txt").write_text("correct horse battery staple")
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.txt").write_bytes(b"")
    locked = tmp_path / "locked.txt"
    locked.write_text("x")
    locked.chmod(0)
    return target


def load(path: Path, **kwargs: object) -> Project:
    return load_project([path.name], environ={}, cwd=path.parent, **kwargs)  # type: ignore[arg-type]


def marked_lines(path: Path) -> dict[int, str]:
    return {
        number: line
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.rstrip().endswith(MARKER)
    }


def strict_params() -> list[object]:
    params: list[object] = []
    for rule in sorted(ERRORS | WARNINGS):
        marks = []
        if rule == "file-unreadable":
            marks.append(
                pytest.mark.skipif(
                    os.geteuid() == 0, reason="root reads a mode-000 file; needs a non-root user"
                )
            )
        params.append(pytest.param(rule, marks=marks, id=rule))
    return params


@pytest.mark.parametrize("rule", strict_params())
def test_strict_file_triggers_exactly_its_rule(tmp_path: Path, rule: str) -> None:
    path = stage(tmp_path, rule)
    project = load(path)
    if rule in WARNINGS:
        assert project.errors == []
        assert project.ok
        found = [d for d in project.warnings if d.rule == rule]
    else:
        assert {d.rule for d in project.errors} == {rule}, project.errors
        found = project.errors
    assert found, f"{rule} not reported"
    marks = marked_lines(path)
    assert len(marks) == 1
    ((line, text),) = marks.items()
    for d in found:
        assert d.file == path.name
        assert d.line == line, d
        # the column points into the key or value on that line, not at blanks or the marker
        assert 1 <= d.column <= text.index(MARKER), d
        assert not text[d.column - 1].isspace(), d
        assert d.message
        assert d.path


@pytest.mark.parametrize("rule", sorted(ERRORS | WARNINGS))
def test_compat_accepts_what_docker_accepts(tmp_path: Path, rule: str) -> None:
    project = load(stage(tmp_path, rule), compat=True)
    assert project.errors == []
    assert project.stack is not None
    # compat keeps only the interpolation warning (it changes no verdict)
    assert [d.rule for d in project.warnings] == (
        ["unset-variable"] if rule == "unset-variable" else []
    )


@pytest.mark.parametrize(
    ("rule", "line", "column", "path"),
    [
        ("undefined-secret", 8, 9, "services.web.secrets[1]"),
        ("unknown-key", 8, 9, "services.web.secrets[0].targte"),
        ("file-missing", 10, 11, "secrets.pw.file"),
        ("mode-decimal", 8, 15, "services.web.secrets[0].mode"),
        ("secret-name", 9, 3, "secrets.bad_"),
        ("target-duplicate", 10, 17, "services.web.secrets[1].target"),
        ("plaintext-credential", 7, 23, "services.db.environment.MYSQL_PASSWORD"),
        ("unused-secret", 11, 3, "secrets.spare"),
    ],
)
def test_exact_positions(tmp_path: Path, rule: str, line: int, column: int, path: str) -> None:
    (d,) = [d for d in load(stage(tmp_path, rule)).diagnostics if d.rule == rule]
    assert (d.line, d.column, d.path) == (line, column, path)


def test_mode_decimal_message(tmp_path: Path) -> None:
    (d,) = load(stage(tmp_path, "mode-decimal")).errors
    assert d.message == (
        "mode 440 looks like an octal permission but is read as decimal 440 (= 0o670); write 0440"
    )


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    (d,) = load(stage(tmp_path, "unknown-key")).errors
    assert 'did you mean "target"?' in d.message


# --- files that must never be opened ----------------------------------------------------

SECRET_AT = """\
version: "3.8"
services:
  web:
    image: busybox
    secrets: [pw]
secrets:
  pw:
    file: {file}
"""


def write_compose(tmp_path: Path, file: str) -> Path:
    path = tmp_path / "c.yml"
    path.write_text(SECRET_AT.format(file=file))
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_reported_without_being_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    path = write_compose(tmp_path, "./pipe")
    # Opening a FIFO for reading blocks until a writer appears: a validator that opens it
    # hangs, so run the real CLI with a timeout.
    proc = subprocess.run(
        [sys.executable, "-m", "composesecrets", "validate", "--format", "json", "-c", path.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 1, proc.stderr
    assert '"rule": "file-not-regular"' in proc.stdout
    assert "FIFO" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_device_is_reported(tmp_path: Path) -> None:
    project = load(write_compose(tmp_path, "/dev/null"))
    assert [(d.rule, d.line) for d in project.errors] == [("file-not-regular", 8)]
    assert "device" in project.errors[0].message


def test_directory_is_reported(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (d,) = load(write_compose(tmp_path, "./d")).errors
    assert d.rule == "file-not-regular"
    assert "directory" in d.message


@pytest.mark.parametrize(
    ("size", "ok"), [(0, False), (1, True), (511_999, True), (512_000, False), (600_000, False)]
)
def test_file_size_limits(tmp_path: Path, size: int, ok: bool) -> None:
    (tmp_path / "s.bin").write_bytes(b"x" * size)
    project = load(write_compose(tmp_path, "./s.bin"))
    assert MAX_SECRET_BYTES == 511_999
    if ok:
        assert project.diagnostics == []
    else:
        assert [(d.rule, d.line) for d in project.errors] == [("file-size", 8)]
        assert f"has {size} bytes" in project.errors[0].message


def test_symlink_to_a_regular_file_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("s")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    assert load(write_compose(tmp_path, "./link.txt")).diagnostics == []


def test_dangling_symlink_is_missing(tmp_path: Path) -> None:
    (tmp_path / "link.txt").symlink_to(tmp_path / "gone.txt")
    assert [d.rule for d in load(write_compose(tmp_path, "./link.txt")).errors] == ["file-missing"]


# --- names -------------------------------------------------------------------------------

NAMED = """\
version: "3.8"
services:
  web:
    image: busybox
    secrets: [{key}]
secrets:
  {key}:
    file: ./pw.txt
{extra}"""


def named(tmp_path: Path, key: str, extra: str = "") -> Path:
    (tmp_path / "pw.txt").write_text("s")
    path = tmp_path / "c.yml"
    path.write_text(NAMED.format(key=key, extra=extra))
    return path


def test_stack_prefix_pushes_a_name_over_64(tmp_path: Path) -> None:
    key = "k" * 60
    path = named(tmp_path, key)
    assert load(path).diagnostics == []
    assert load(path, stack_name="stk").diagnostics == []  # 4 + 60 = 64
    project = load(path, stack_name="stack")  # 6 + 60 = 66
    assert [(d.rule, d.line, d.column) for d in project.errors] == [("secret-name", 7, 3)]
    assert f'"stack_{key}"' in project.errors[0].message
    assert "66 characters" in project.errors[0].message
    assert load(path, stack_name="stack", compat=True).errors == []


def test_explicit_name_is_not_prefixed(tmp_path: Path) -> None:
    path = named(tmp_path, "k" * 60, extra="    name: short\n")
    assert load(path, stack_name="stack").diagnostics == []


def test_external_name_is_not_prefixed(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        'version: "3.8"\nservices:\n  web:\n    image: x\n    secrets: [' + "e" * 62 + "]\n"
        "secrets:\n  " + "e" * 62 + ":\n    external: true\n"
    )
    assert load(path, stack_name="stack").diagnostics == []


@pytest.mark.parametrize(
    ("name", "bad"),
    [("db", False), ("a.b-c_d", False), ("9", False), ("bad_", True), ("_bad", True),
     ("-x", True), ("x.", True), ("x" * 64, False), ("x" * 65, True),
     ("abc\n", True), ("abc\nd", True), ("\nabc", True)],
)  # fmt: skip
def test_name_rule(name: str, bad: bool) -> None:
    assert (name_problem(name) is not None) is bad


# --- modes, ids, targets, credentials -----------------------------------------------------

MODE = """\
version: "3.8"
services:
  web:
    image: busybox
    secrets:
      - source: pw
        {item}
secrets:
  pw:
    file: ./pw.txt
"""


def item(tmp_path: Path, text: str) -> Project:
    (tmp_path / "pw.txt").write_text("s")
    path = tmp_path / "c.yml"
    path.write_text(MODE.format(item=text))
    return load(path)


@pytest.mark.parametrize(
    ("text", "rules"),
    [
        ("mode: 0440", []),
        ("mode: 0o400", []),
        ("mode: 0", []),
        ("mode: 0o7777", []),
        ("mode: 0o10000", ["mode-range"]),
        ("mode: 256", []),  # 0o400 written in decimal on purpose
        ("mode: 292", []),
        ("mode: 400", ["mode-decimal"]),
        ("mode: 644", ["mode-decimal"]),
        ("mode: 0888", []),  # decimal 888 = 0o1570: odd but in range and not octal-looking
        ("mode: 292.5", ["mode-not-integer"]),
        ("mode: -1", ["mode-overflow"]),  # Docker refuses it too
        ('uid: "1000"', []),
        ('uid: "root"', ["uid-not-numeric"]),
        ('uid: "-1"', ["uid-not-numeric"]),
        ('gid: "12a"', ["gid-not-numeric"]),
        ("target: /etc/app/pw", []),
        ("target: sub/pw", []),
        ("target: /run/secrets/../../etc/pw", ["target-dotdot"]),
        ('target: "  "', ["target-empty"]),
        ("x-note: fine", []),
        ("required: true", ["unknown-key"]),
    ],
)
def test_long_syntax_values(tmp_path: Path, text: str, rules: list[str]) -> None:
    project = item(tmp_path, text)
    assert [d.rule for d in project.errors] == rules
    for d in project.errors:
        assert d.line == 7


def test_negative_mode_is_dockers_error_too(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("s")
    path = tmp_path / "c.yml"
    path.write_text(MODE.format(item="mode: -1"))
    assert [d.rule for d in load(path, compat=True).errors] == ["mode-overflow"]


def test_duplicate_short_syntax_targets(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("s")
    path = tmp_path / "c.yml"
    path.write_text(
        'version: "3.8"\nservices:\n  web:\n    image: x\n    secrets:\n      - pw\n'
        "      - source: pw2\n        target: pw\nsecrets:\n  pw: {file: ./pw.txt}\n"
        "  pw2: {file: ./pw.txt}\n"
    )
    assert [(d.rule, d.line) for d in load(path).errors] == [("target-duplicate", 8)]


@pytest.mark.parametrize(
    ("env", "flagged"),
    [
        ("      MYSQL_PASSWORD: hunter2", True),
        ("      API_TOKEN: abc", True),
        ("      AWS_SECRET: abc", True),
        ("      SSH_KEY: 12345", True),
        ("      MYSQL_PASSWORD_FILE: /run/secrets/pw", False),
        ("      MYSQL_PASSWORD: ''", False),
        ("      MYSQL_PASSWORD:", False),
        ("      MYSQL_PASSWORD: ${DB_PASSWORD:-x}", False),  # comes from the environment
        ("      MONKEY: banana", False),
        ("      PASSWORD_POLICY: strict", False),
        ("      - MYSQL_PASSWORD=hunter2", True),
        ("      - MYSQL_PASSWORD", False),
    ],
)
def test_plaintext_credentials(tmp_path: Path, env: str, flagged: bool) -> None:
    (tmp_path / "pw.txt").write_text("s")
    path = tmp_path / "c.yml"
    path.write_text(
        'version: "3.8"\nservices:\n  db:\n    image: x\n    secrets: [pw]\n'
        f"    environment:\n{env}\nsecrets:\n  pw: {{file: ./pw.txt}}\n"
    )
    project = load(path)
    assert project.errors == []
    found = [(d.rule, d.line) for d in project.warnings]
    assert found == ([("plaintext-credential", 7)] if flagged else [])


def test_warnings_keep_a_valid_project(tmp_path: Path) -> None:
    project = load(stage(tmp_path, "unused-secret"))
    assert project.ok
    assert project.stack is not None
