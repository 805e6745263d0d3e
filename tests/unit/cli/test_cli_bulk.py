"""``secret import``, ``secret reveal``, ``secret diff``, ``store accept-restore`` and
``store audit --verify`` end to end (real processes; no value ever printed, except by
``reveal`` into a pipe)."""

from __future__ import annotations

import os
import pty
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_store import CANARY, Cli, leaked  # type: ignore[import-not-found]  # same directory, as pytest imports it

# The fixture from test_cli_store, reused: a user's environment in tmp_path.


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    yield runner
    for result in runner.results:
        Cli.check(result)


def _dir(cli: Cli, files: dict[str, bytes]) -> Path:
    directory: Path = cli.root / "import-dir"
    directory.mkdir()
    for name, value in files.items():
        (directory / name).write_bytes(value)
    return directory


def test_import_a_directory_in_one_transaction(cli: Cli) -> None:
    values = {"db_password": cli.value("db"), "api_key": cli.value("api") + b"\n"}
    result = cli("secret", "import", "--label", "from=dir", str(_dir(cli, values)))
    assert result.code == 0, result
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["api_key", "db_password"]
    assert "imported 2 secrets" in result.stderr
    with cli.open_store() as s:
        for name, value in values.items():
            assert s.get(name, audit=False) == value  # bytes unchanged, newline kept
        assert s.inspect("api_key").info.labels == {"from": "dir"}


def test_import_a_directory_refuses_what_is_not_a_plain_file(cli: Cli) -> None:
    directory = _dir(cli, {"good": cli.value()})
    (directory / "sub").mkdir()
    result = cli("secret", "import", str(directory))
    assert result.code == 2 and "sub is not a regular file" in result.stderr, result
    (directory / "sub").rmdir()
    (directory / "bad name!").write_bytes(cli.value())
    result = cli("secret", "import", str(directory))
    assert result.code == 2 and "bad name!" in result.stderr, result
    assert cli.names() == []  # all or nothing


def test_import_a_env_file(cli: Cli) -> None:
    env = cli.root / "prod.env"
    env.write_bytes(
        b"# comment\n\nDB_PASSWORD=" + cli.value("a") + b"\r\n"
        b"QUOTED='" + cli.value("b") + b" # kept'\n"
        b'DOUBLE="' + cli.value("c") + b'"\n'
        b"WITH_EQUALS=" + cli.value("d") + b"==\n"
    )
    result = cli("secret", "import", str(env))
    assert result.code == 0, result
    with cli.open_store() as s:
        assert sorted(i.name for i in s.list_secrets()) == [
            "DB_PASSWORD",
            "DOUBLE",
            "QUOTED",
            "WITH_EQUALS",
        ]
        assert s.get("QUOTED", audit=False).endswith(b" # kept")
        assert s.get("WITH_EQUALS", audit=False).endswith(b"==")
        assert not s.get("DB_PASSWORD", audit=False).endswith(b"\r")
        assert s.get("DOUBLE", audit=False).startswith(CANARY.encode())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"JUSTAVALUE\n", "expected NAME=VALUE"),
        (b"export A=1\n", "shell syntax"),
        (b"A=value # comment\n", "inline comment"),
        (b"A='multi\nline'\n", "does not close"),
        (b"A=\n", "empty value"),
        (b"A=1\nA=2\n", "prod.env:3: A is already set on line 2"),
        (b"A B=1\n", "prod.env:2: invalid secret name"),
    ],
)
def test_import_refuses_ambiguous_env_files(cli: Cli, text: bytes, message: str) -> None:
    env = cli.root / "prod.env"
    env.write_bytes(b"OK=" + cli.value() + b"\n" + text)
    result = cli("secret", "import", str(env))
    assert result.code == 2, result
    assert message in result.stderr, result
    assert cli.names() == []


def test_import_refuses_a_plain_file_and_existing_names(cli: Cli) -> None:
    result = cli("secret", "import", str(cli.value_file()))
    assert result.code == 2 and "neither a directory nor a .env file" in result.stderr
    cli.create("taken")
    result = cli("secret", "import", str(_dir(cli, {"taken": b"x", "fresh": b"y"})))
    assert result.code == 6, result
    assert cli.names() == ["taken"]


def test_import_enforces_the_size_limit(cli: Cli) -> None:
    result = cli("secret", "import", str(_dir(cli, {"big": b"x" * 512_000})))
    assert result.code == 2, result
    assert cli.names() == []


def _reveal(cli: Cli, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``secret reveal`` into a pipe (not through ``cli``, which fails on a printed value)."""
    return subprocess.run(
        [sys.executable, "-m", "composesecrets", "secret", "reveal", *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=cli.env,
        timeout=60,
        check=False,
    )


def test_reveal_to_a_pipe_is_audited(cli: Cli) -> None:
    value = cli.value("reveal")
    cli("secret", "create", "db", "-", stdin=value)
    cli("secret", "rotate", "db", "-", stdin=value + b"2")
    result = _reveal(cli, "db")
    assert result.returncode == 0 and result.stdout == value + b"2"
    assert result.stderr == b""
    result = _reveal(cli, "db", "--version", "1")
    assert result.stdout == value
    audit = cli("store", "audit", "--format", "json").json()
    reveals = [e for e in audit if e["Action"] == "read" and e["Detail"] == "reveal"]
    assert [e["Target"] for e in reveals] == ["db@2", "db@1"]


def _on_a_terminal(cli: Cli, *args: str) -> tuple[int, bytes]:
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "composesecrets", *args],
            stdout=secondary,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=cli.env,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        seen = b""
        try:
            while chunk := os.read(primary, 4096):
                seen += chunk
        except OSError:
            pass
        return proc.returncode, seen + proc.stderr
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)


def test_reveal_to_a_terminal_needs_force(cli: Cli) -> None:
    cli("secret", "create", "db", "-", stdin=cli.value("tty"))
    code, seen = _on_a_terminal(cli, "secret", "reveal", "db")
    assert code == 2, seen
    assert b"refusing to print a secret value to a terminal" in seen
    assert not leaked(seen.decode("utf-8", "replace"))
    code, seen = _on_a_terminal(cli, "secret", "reveal", "--force", "db")
    assert code == 0 and CANARY.encode() in seen


def test_diff_compares_by_digest_and_prints_no_value(cli: Cli) -> None:
    same = cli.value_file("diff")
    cli("secret", "create", "db", str(same))
    result = cli("secret", "diff", "db", str(same))
    assert result.code == 0 and result.stdout.startswith("same:"), result
    result = cli("secret", "diff", "db", str(cli.value_file("other")))
    assert result.code == 1 and result.stdout.startswith("different:"), result
    result = cli("secret", "diff", "db", "-", stdin=same.read_bytes())
    assert result.code == 0, result
    assert cli("secret", "diff", "nope", str(same)).code == 5


def test_restored_backup_needs_accept_restore(cli: Cli) -> None:
    cli("secret", "create", "db", "-", stdin=cli.value("old"))
    backup = cli.root / "backup"
    shutil.copytree(cli.store, backup)
    cli("secret", "rotate", "db", "-", stdin=cli.value("new"))
    shutil.rmtree(cli.store)
    shutil.copytree(backup, cli.store)
    for args in (("secret", "ls"), ("store", "verify"), ("secret", "diff", "db", "-")):
        result = cli(*args, stdin=b"x")
        assert result.code == 4 and "older than one already seen" in result.stderr, result
    result = cli("store", "accept-restore")
    assert result.code == 0 and "accepted store" in result.stdout, result
    assert cli("store", "verify").code == 0
    assert cli("secret", "ls", "--format", "json").json()[0]["Version"]["Index"] == 1


def test_emptied_store_fails_verify_and_create(cli: Cli) -> None:
    cli.create("db")
    for f in cli.store.iterdir():
        f.unlink() if f.is_file() else shutil.rmtree(f)
    (cli.store / "store.db").touch(mode=0o600)
    assert cli("store", "verify").code == 4
    result = cli("secret", "create", "new", str(cli.value_file()))
    assert result.code == 4 and "emptied" in result.stderr, result


def test_audit_verify_finds_a_removed_row_and_verify_names_edited_rows(cli: Cli) -> None:
    for name in ("a", "b", "c"):
        cli.create(name)
    assert cli("store", "audit", "--verify").code == 0
    conn = sqlite3.connect(cli.store / "store.db", isolation_level=None)
    try:
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute("DELETE FROM audit WHERE action = 'create' AND target = 'b'")
        conn.execute("UPDATE secrets SET name = 'z' WHERE name = 'c'")
    finally:
        conn.close()
    result = cli("store", "audit", "--verify")
    assert result.code == 4 and "FAILED audit entry" in result.stdout, result
    result = cli("store", "verify")
    assert result.code == 4, result
    assert "FAILED secret z" in result.stdout
    assert _reveal(cli, "z").returncode == 4
