"""SQLite access: schema, pragmas, and write transactions that retry instead of failing busy.

Only ciphertexts, wrapped keys, nonces, keyed digests and metadata (names, labels, times) are
ever written here; values never are, not even transiently.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import (
    ComposeSecretsError,
    InternalError,
    StoreCorruptError,
    StoreFullError,
    StoreLockedError,
    StoreReadOnlyError,
)

SCHEMA_VERSION = 2  # 2: secrets.mac and audit.mac (metadata MACs, audit chain)
BUSY_TIMEOUT_MS = 5000
RETRY_SECONDS = 120.0

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS keyslot (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    method     TEXT NOT NULL CHECK (method IN ('keyfile', 'env', 'passphrase')),
    kdf        TEXT,
    key_file   TEXT,
    nonce      BLOB NOT NULL,
    wrapped    BLOB NOT NULL,
    generation INTEGER NOT NULL,
    changed_ns INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS secrets (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    labels      TEXT NOT NULL,
    current     INTEGER NOT NULL,
    created_ns  INTEGER NOT NULL,
    updated_ns  INTEGER NOT NULL,
    mac         BLOB
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS versions (
    secret_id   TEXT NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    digest      BLOB NOT NULL,
    dek_nonce   BLOB NOT NULL,
    dek_wrapped BLOB NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_ns  INTEGER NOT NULL,
    PRIMARY KEY (secret_id, version)
);

CREATE TABLE IF NOT EXISTS usages (
    stack       TEXT NOT NULL,
    backend     TEXT NOT NULL,
    secret_id   TEXT NOT NULL REFERENCES secrets(id),
    version     INTEGER NOT NULL,
    service     TEXT NOT NULL,
    recorded_ns INTEGER NOT NULL,
    PRIMARY KEY (stack, secret_id, version, service)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usages_by_secret ON usages (secret_id, version);

CREATE TABLE IF NOT EXISTS audit (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ns  INTEGER NOT NULL,
    who    TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    mac    BLOB
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit WHEN OLD.mac IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

# Version 1 -> 2: metadata MACs. The MACs themselves are computed on the first unlocked use.
_UPGRADE_2 = """
ALTER TABLE secrets ADD COLUMN mac BLOB;
ALTER TABLE audit ADD COLUMN mac BLOB;
DROP TRIGGER IF EXISTS audit_no_update;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN OLD.mac IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _backoff(attempt: int) -> None:
    import random  # only when the database is busy (start-up)

    time.sleep(min(0.2, 0.005 * (2 ** min(attempt, 6))) * (0.5 + random.random()))


READ_ONLY_HINT = (
    "reads (ls, inspect, status, verify, reveal, deploy) still work; make the store's file"
    " system or files writable to change it"
)


def translate(exc: sqlite3.Error) -> ComposeSecretsError | None:
    """The error a user should see for an SQLite failure that is not a bug (None if it is)."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    text = str(exc).lower()
    if name == "SQLITE_FULL" or "disk is full" in text:
        return StoreFullError(
            "the disk holding the store is full: nothing was changed",
            hint="free some space, then run the command again",
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return StoreReadOnlyError("the store is read-only", hint=READ_ONLY_HINT)
    if (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "not a database" in text
        or "malformed" in text
    ):
        return StoreCorruptError(
            "the store database is damaged (truncated, not a database, or malformed)",
            hint="restore the store directory from a backup (then `composesecrets store"
            " accept-restore`)",
        )
    if name == "SQLITE_IOERR_SHORT_READ":
        return StoreCorruptError(
            "the store database is truncated", hint="restore the store directory from a backup"
        )
    return None


def _translated(exc: sqlite3.Error) -> BaseException:
    found = translate(exc)
    if found is None:
        return exc
    found.__cause__ = exc
    return found


def _writable(path: Path) -> bool:
    """Whether SQLite can write ``path`` and create its -wal / -shm files beside it."""
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return False
    except OSError:
        return True
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def is_read_only(conn: sqlite3.Connection) -> bool:
    return bool(retrying(conn, lambda c: c.execute("PRAGMA query_only").fetchone()[0]))


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in autocommit mode with WAL, full sync, a busy timeout and
    :class:`sqlite3.Row` rows. A store that cannot be written (read-only file system or file)
    is opened read-only: reads work, writes fail with :class:`StoreReadOnlyError`."""
    if _writable(path):
        return _open(str(path), uri=False, setup=_setup)
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"
    try:
        return _open(uri, uri=True, setup=_setup_read_only)
    except ComposeSecretsError:
        # No -shm can be created beside a WAL database on a read-only file system: read it as
        # immutable (nothing can write it there either).
        return _open(uri + "&immutable=1", uri=True, setup=_setup_read_only)


def _open(
    target: str, *, uri: bool, setup: Callable[[sqlite3.Connection], None]
) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            target,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=True,
            uri=uri,
        )
    except sqlite3.Error as exc:
        raise _translated(exc) from None
    conn.row_factory = sqlite3.Row  # rows are read by column name
    conn.text_factory = _text
    try:
        retrying(conn, setup)
    except BaseException:
        conn.close()
        raise
    return conn


def _text(data: bytes) -> str | bytes:
    """TEXT as str; text that is not UTF-8 (written outside composesecrets) stays bytes, for
    the integrity checks to report instead of failing the whole query."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _setup_read_only(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = ON")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        if "unable to open" in str(exc).lower():
            raise StoreReadOnlyError(
                "the store is read-only and cannot be opened", hint=READ_ONLY_HINT
            ) from exc
        raise


def _setup(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise InternalError(f"could not switch the store database to WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA temp_store = MEMORY")


def retrying(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` (reads, or a setup step), retrying while the database is busy."""
    deadline = time.monotonic() + RETRY_SECONDS
    attempt = 0
    while True:
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise _translated(exc) from None
        except sqlite3.DatabaseError as exc:
            raise _translated(exc) from None
        attempt += 1
        _backoff(attempt)


def read(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` inside one read transaction (a consistent snapshot); retried while busy."""
    return _transaction(conn, fn, "BEGIN")


def write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``; retried whole while busy."""
    return _transaction(conn, fn, "BEGIN IMMEDIATE")


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
    deadline = time.monotonic() + RETRY_SECONDS
    attempt = 0
    while True:
        began = False
        try:
            conn.execute(begin)
            began = True
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except sqlite3.OperationalError as exc:
            if began and conn.in_transaction:
                conn.execute("ROLLBACK")
            if not is_busy(exc):
                raise _translated(exc) from None
            if time.monotonic() > deadline:
                raise StoreLockedError(
                    "the store stayed busy for too long",
                    hint="another composesecrets process holds it; retry when it has finished",
                ) from None
        except sqlite3.DatabaseError as exc:
            if began and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _translated(exc) from None
        except BaseException:
            if began and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        attempt += 1
        _backoff(attempt)


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema (idempotent, safe when several processes race)."""
    version = retrying(conn, lambda c: int(c.execute("PRAGMA user_version").fetchone()[0]))
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise InternalError(
            f"the store uses schema version {version}, newer than this composesecrets supports"
            f" ({SCHEMA_VERSION})",
            hint="upgrade composesecrets",
        )

    def _apply(c: sqlite3.Connection) -> None:
        current = int(c.execute("PRAGMA user_version").fetchone()[0])
        if current >= SCHEMA_VERSION:
            return
        if current == 1:
            for statement in _split(_UPGRADE_2):
                c.execute(statement)
        for statement in _split(_SCHEMA):
            c.execute(statement)
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    write(conn, _apply)


def _split(script: str) -> list[str]:
    """Split the schema into statements (triggers contain ``;`` inside BEGIN ... END)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    return out
