"""Errors, not bugs (issue 9 item 10, parts of 11): a full disk, a read-only store, a damaged
database, a ciphertext stored as text, labels that are not JSON, a FIFO without a writer, and a
forged ``SUDO_USER`` each end in their own clear error, never exit 70."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from unit.store_worker import open_keyfile_store

from composesecrets.errors import (
    InputError,
    IntegrityError,
    StoreCorruptError,
    StoreFullError,
    StoreReadOnlyError,
)
from composesecrets.store import Usage, read_value, sources
from composesecrets.store.audit import who


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def read_only_store(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A store with one secret, seen through a read-only bind mount (unmounted afterwards)."""
    source, view, key = tmp_path / "src", tmp_path / "ro", tmp_path / "keys" / "master.key"
    with open_keyfile_store(source, key) as s:
        s.create("db", b"password-1", {"team": "a"})
    view.mkdir(mode=0o700)
    _mount("--bind", str(source), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        yield view, key
    finally:
        subprocess.run(["umount", str(view)], check=False, capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")
def test_read_only_store_serves_reads_and_refuses_writes(
    read_only_store: tuple[Path, Path],
) -> None:
    notices: list[str] = []
    from composesecrets.store import KeyFileUnlock, Store

    with Store.open(
        read_only_store[0],
        unlock=KeyFileUnlock(read_only_store[1]),
        create=False,
        environ={},
        notice=notices.append,
    ) as s:
        assert [i.name for i in s.list_secrets()] == ["db"]
        assert s.inspect("db").info.labels == {"team": "a"}
        assert s.status().secrets == 1
        assert s.get("db") == b"password-1"  # its audit entry cannot be written: reported
        assert s.verify().ok
        assert s.record_usage("web", "engine", [Usage("db", "app")]) == []
        assert any("audit entry not recorded" in n for n in notices), notices
        assert any("usage of stack web not recorded" in n for n in notices), notices
        with pytest.raises(StoreReadOnlyError) as err:
            s.rotate("db", b"password-2")
        assert err.value.exit_code == 10


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_is_its_own_error(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(disk))
    try:
        with open_keyfile_store(disk / "store", tmp_path / "master.key") as s:
            s.create("first", b"v")
            filler = disk / "filler"
            with open(filler, "wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * 65536)
                        handle.flush()
                except OSError:
                    pass
            with pytest.raises(StoreFullError) as err:
                s.import_many((f"s{i}", os.urandom(4000), None) for i in range(100))
            assert err.value.exit_code == 11
            filler.unlink()
            assert s.get("first") == b"v"
            assert s.verify().ok
    finally:
        subprocess.run(["umount", str(disk)], check=False, capture_output=True)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_database_is_its_own_error(tmp_path: Path, damage: str) -> None:
    store_dir, key = tmp_path / "store", tmp_path / "master.key"
    with open_keyfile_store(store_dir, key) as s:
        s.import_many((f"s{i}", os.urandom(2000), None) for i in range(50))
    db = store_dir / "store.db"
    if damage == "truncated":
        os.truncate(db, db.stat().st_size // 2)
    else:
        db.write_bytes(os.urandom(db.stat().st_size))
    with (
        pytest.raises(StoreCorruptError) as err,
        open_keyfile_store(store_dir, key, create=False) as s,
    ):
        s.verify()
        for info in s.list_secrets():
            s.get(info.name)
    assert err.value.exit_code == 12


def _sql(store_dir: Path, statement: str) -> None:
    conn = sqlite3.connect(store_dir / "store.db", isolation_level=None)
    try:
        conn.execute(statement)
    finally:
        conn.close()


def test_ciphertext_stored_as_text_names_the_row(tmp_path: Path) -> None:
    store_dir, key = tmp_path / "store", tmp_path / "master.key"
    with open_keyfile_store(store_dir, key) as s:
        s.create("db", b"value")
        s.create("other", b"value")
    _sql(store_dir, "UPDATE versions SET ciphertext = CAST(ciphertext AS TEXT) || 'x'")
    with open_keyfile_store(store_dir, key, create=False) as s:
        with pytest.raises(IntegrityError, match="'db'"):
            s.get("db")
        report = s.verify()
        assert {(f.name, f.version) for f in report.failures} == {("db", 1), ("other", 1)}


def test_labels_that_are_not_json_name_the_row(tmp_path: Path) -> None:
    store_dir, key = tmp_path / "store", tmp_path / "master.key"
    with open_keyfile_store(store_dir, key) as s:
        s.create("db", b"value", {"a": "b"})
    _sql(store_dir, "UPDATE secrets SET labels = '{not json' WHERE name = 'db'")
    with open_keyfile_store(store_dir, key, create=False) as s:
        with pytest.raises(IntegrityError, match="'db'") as err:
            s.list_secrets()
        assert err.value.exit_code == 4
        assert [f.name for f in s.verify().failures] == ["db"]


def test_fifo_without_a_writer_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    monkeypatch.setattr(sources, "FIFO_WAIT_SECONDS", 0.3)
    started = time.monotonic()
    with pytest.raises(InputError, match="named pipe"):
        read_value(fifo)
    assert time.monotonic() - started < 5


def test_fifo_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def write() -> None:
        time.sleep(0.2)
        with open(fifo, "wb") as handle:
            handle.write(b"from-a-pipe")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert read_value(fifo) == b"from-a-pipe"
    finally:
        writer.join()


@pytest.mark.parametrize(
    "sudo_user",
    ["alice\n9999  2026-01-01  root  rm  db", "al\x1b[2Jice", "x" * 200, "bob cat", ""],
)
def test_forged_sudo_user_is_not_recorded(monkeypatch: pytest.MonkeyPatch, sudo_user: str) -> None:
    monkeypatch.setenv("SUDO_USER", sudo_user)
    recorded = who()
    assert sudo_user not in recorded or not sudo_user
    assert all(ch.isprintable() for ch in recorded)
    assert len(recorded) < 80


def test_valid_sudo_user_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "deploy-bot")
    assert who().endswith("(sudo by deploy-bot)")
