"""Metadata integrity, rollback and truncation detection, the audit chain (issue 9 items 7, 8).

Each test edits the SQLite database (or its files) the way an attacker or an accident would,
then checks that reads and ``verify`` fail with exit 4 naming the row, or that opening fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from unit.store_worker import open_keyfile_store

from composesecrets.errors import IntegrityError, RollbackError
from composesecrets.store import KeyFileUnlock, Store


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "store", tmp_path / "keys" / "master.key"


def _sql(store_dir: Path, *statements: str) -> None:
    conn = sqlite3.connect(store_dir / "store.db", isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def _two_secrets(layout: tuple[Path, Path]) -> None:
    with open_keyfile_store(*layout) as s:
        s.create("alpha", b"value-of-alpha", {"team": "a"})
        s.create("beta", b"value-of-beta")


def test_swapped_names_fail_every_read_and_verify(layout: tuple[Path, Path]) -> None:
    _two_secrets(layout)
    _sql(
        layout[0],
        "UPDATE secrets SET name = 'tmp' WHERE name = 'alpha'",
        "UPDATE secrets SET name = 'alpha' WHERE name = 'beta'",
        "UPDATE secrets SET name = 'beta' WHERE name = 'tmp'",
    )
    with open_keyfile_store(*layout, create=False) as s:
        with pytest.raises(IntegrityError, match="'alpha'") as err:
            s.get("alpha")
        assert err.value.exit_code == 4
        with pytest.raises(IntegrityError, match="'beta'"):
            s.get("beta")
        report = s.verify()
        assert not report.ok
        assert {f.name for f in report.failures} == {"alpha", "beta"}


def test_current_set_back_after_rotate_is_detected(layout: tuple[Path, Path]) -> None:
    with open_keyfile_store(*layout) as s:
        s.create("db", b"old-password")
        s.rotate("db", b"new-password")
    _sql(layout[0], "UPDATE secrets SET current = 1 WHERE name = 'db'")
    with open_keyfile_store(*layout, create=False) as s:
        with pytest.raises(IntegrityError, match="'db'"):
            s.get("db")
        assert [f.name for f in s.verify().failures] == ["db"]


def test_edited_labels_and_removed_mac_are_detected(layout: tuple[Path, Path]) -> None:
    _two_secrets(layout)
    _sql(
        layout[0],
        """UPDATE secrets SET labels = '{"team": "b"}' WHERE name = 'alpha'""",
        "UPDATE secrets SET mac = NULL WHERE name = 'beta'",
    )
    with open_keyfile_store(*layout, create=False) as s:
        failures = {f.name: f.reason for f in s.verify().failures}
        assert set(failures) == {"alpha", "beta"}
        assert "no MAC" in failures["beta"]


def test_edited_key_slot_fields_are_detected(layout: tuple[Path, Path]) -> None:
    _two_secrets(layout)
    _sql(layout[0], "UPDATE keyslot SET changed_ns = 1, generation = 7")
    with open_keyfile_store(*layout, create=False) as s, pytest.raises(IntegrityError):
        s.get("alpha")


def _copy_db(store_dir: Path, to: Path) -> None:
    to.mkdir()
    for f in store_dir.iterdir():
        shutil.copy2(f, to / f.name)


def _restore_db(copy: Path, store_dir: Path) -> None:
    for f in store_dir.iterdir():
        f.unlink()
    for f in copy.iterdir():
        shutil.copy2(f, store_dir / f.name)


def test_restored_older_copy_is_refused_until_accepted(
    layout: tuple[Path, Path], tmp_path: Path
) -> None:
    with open_keyfile_store(*layout) as s:
        s.create("db", b"old-password")
    _copy_db(layout[0], tmp_path / "backup")
    with open_keyfile_store(*layout) as s:
        s.rotate("db", b"new-password")
    _restore_db(tmp_path / "backup", layout[0])
    with pytest.raises(RollbackError, match="older") as err:
        open_keyfile_store(*layout, create=False)
    assert err.value.exit_code == 4
    # The deliberate override: accept the restored state, then it opens and serves it.
    with Store.open(
        layout[0],
        unlock=_keyfile(layout[1]),
        create=False,
        environ={},
        accept_restore=True,
    ) as s:
        s.accept_restore()
    with open_keyfile_store(*layout, create=False) as s:
        assert s.get("db") == b"old-password"
        assert s.verify().ok


def _keyfile(key: Path) -> KeyFileUnlock:

    return KeyFileUnlock(key, notice=lambda _m: None)


def test_emptied_database_is_refused_not_restarted(layout: tuple[Path, Path]) -> None:
    _two_secrets(layout)
    for f in layout[0].iterdir():
        if f.name != "store.db":
            f.unlink()
    os.truncate(layout[0] / "store.db", 0)
    with pytest.raises(RollbackError, match="emptied"):
        open_keyfile_store(*layout)  # create=True must not silently start a new store
    conn = sqlite3.connect(layout[0] / "store.db")
    try:  # no new store was started in its place
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    finally:
        conn.close()


def test_verify_fails_on_an_empty_database_when_a_key_exists(layout: tuple[Path, Path]) -> None:
    store_dir, key = layout
    key.parent.mkdir(mode=0o700)
    key.write_text("")  # any key file: the user has a key, so an empty store is suspect
    key.chmod(0o600)
    store_dir.mkdir(mode=0o700)
    (store_dir / "store.db").touch(mode=0o600)
    with open_keyfile_store(*layout, create=False) as s, pytest.raises(IntegrityError):
        s.verify()


def test_audit_chain_finds_removed_and_edited_rows(layout: tuple[Path, Path]) -> None:
    with open_keyfile_store(*layout) as s:
        for i in range(5):
            s.create(f"s{i}", b"v")
        assert s.verify_audit() == []
        seqs = [e.seq for e in s.audit()]
    _sql(
        layout[0],
        "DROP TRIGGER audit_no_delete",
        "DROP TRIGGER audit_no_update",
        f"DELETE FROM audit WHERE seq = {seqs[2]}",
        f"UPDATE audit SET who = 'mallory' WHERE seq = {seqs[4]}",
    )
    with open_keyfile_store(*layout, create=False) as s:
        found = s.verify_audit()
        assert any(f"entry {seqs[3]} " in line for line in found), found
        assert any(f"entry {seqs[4]} " in line for line in found), found


def test_audit_rows_removed_from_the_end_are_found(layout: tuple[Path, Path]) -> None:
    _two_secrets(layout)
    _sql(
        layout[0],
        "DROP TRIGGER audit_no_delete",
        "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)",
    )
    with open_keyfile_store(*layout, create=False) as s, pytest.raises(IntegrityError):
        s.get("alpha")


_KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, sys.argv[3])
from store_worker import expected_value, open_keyfile_store
from pathlib import Path
s = open_keyfile_store(Path(sys.argv[1]), Path(sys.argv[2]))
s._connection().execute("PRAGMA wal_autocheckpoint = 0")
for i in range(20):
    s.create(f"w{i}", expected_value(f"w{i}", 1))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_bit_flip_in_a_crashed_wal_is_detected(layout: tuple[Path, Path]) -> None:
    with open_keyfile_store(*layout) as s:
        s.create("first", b"v")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_WRITER,
            str(layout[0]),
            str(layout[1]),
            str(Path(__file__).resolve().parents[1]),  # store_worker.py
        ],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    wal = layout[0] / "store.db-wal"
    data = bytearray(wal.read_bytes())
    assert len(data) > 40000, "the crash left no WAL to damage"
    data[len(data) // 3] ^= 0x01  # one bit, a third of the way into the committed frames
    wal.write_bytes(bytes(data))
    with pytest.raises(RollbackError), open_keyfile_store(*layout, create=False) as s:
        s.get("w19")


def test_schema_1_store_is_upgraded_on_first_unlocked_use(layout: tuple[Path, Path]) -> None:
    _two_secrets(layout)
    # Turn the store back into what schema 1 wrote: no MAC columns, no state, no mark.
    _sql(
        layout[0],
        "DROP TRIGGER audit_no_update",
        "ALTER TABLE secrets DROP COLUMN mac",
        "ALTER TABLE audit DROP COLUMN mac",
        "DELETE FROM meta WHERE key IN ('counter', 'state_mac')",
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        "PRAGMA user_version = 1",
    )
    for mark in layout[1].parent.glob("*.hwm"):
        mark.unlink()
    with open_keyfile_store(*layout, create=False) as s:
        assert s.status().schema_version == 2
        assert s.get("alpha") == b"value-of-alpha"
        assert s.verify().ok
        assert s.verify_audit() == []
    _sql(layout[0], "UPDATE secrets SET current = 2 WHERE name = 'beta'")
    with open_keyfile_store(*layout, create=False) as s:
        assert {f.name for f in s.verify().failures} == {"beta"}


def test_rotate_key_and_change_unlock_keep_everything_authenticated(
    layout: tuple[Path, Path], tmp_path: Path
) -> None:
    from composesecrets.store import KeyFileUnlock

    _two_secrets(layout)
    with open_keyfile_store(*layout, create=False) as s:
        s.rotate_key()
        assert s.verify().ok
        assert s.verify_audit() == []
    with open_keyfile_store(*layout, create=False) as s:
        s.change_unlock(KeyFileUnlock(layout[1].parent / "other.key", notice=lambda _m: None))
        assert s.get("beta") == b"value-of-beta"
    with Store.open(
        layout[0],
        unlock=KeyFileUnlock(layout[1].parent / "other.key"),
        create=False,
        environ={},
    ) as s:
        assert s.verify().ok
        assert s.verify_audit() == []
        assert s.get("alpha", audit=False) == b"value-of-alpha"
