"""The :class:`Store`: an encrypted, versioned secret store in one SQLite database.

A facade over the parts that do the work: :mod:`.keyslot` (unlocking, key rotation),
:mod:`.secretrows` (secrets and versions), :mod:`.usage` (what deployed stacks use),
:mod:`.audit` (the audit log) and :mod:`.integrity` (``verify``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import InputError, NotFoundError, StoreReadOnlyError
from . import audit, integrity, keys, paths, pins, sealing, secretrows
from . import db as dbm
from .filters import SecretFilter
from .highwater import HighWater, state_dir
from .ids import new_id
from .keys import AutoUnlock, EnvKeyUnlock, KeyFileUnlock, Unlock
from .keyslot import KeyRing
from .records import SecretInfo, from_ns
from .validation import split_ref

if TYPE_CHECKING:  # imported where used: listing secrets needs none of them (start-up)
    from .reports import (
        AuditEntry,
        KeyChange,
        SecretDetails,
        StoreStatus,
        VerifyReport,
    )
    from .usage import Usage, UsageRecord

DEFAULT_RETENTION = 10


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Store:
    """An open store. Create it with :meth:`Store.open`; use it as a context manager.

    Opening performs no key derivation: names, labels, ``list_secrets``, ``inspect``, ``status``,
    ``usages`` and ``audit`` work without the key. The first operation that needs the key
    unlocks it once (at most one passphrase derivation per open store) and keeps the root key
    in memory only.
    """

    def __init__(
        self,
        directory: Path,
        conn: sqlite3.Connection,
        store_id: str,
        unlock: Unlock,
        environ: Mapping[str, str],
        retention: int,
        highwater: HighWater,
        notice: Callable[[str], None],
    ) -> None:
        self._directory = directory
        self._conn: sqlite3.Connection | None = conn
        self._store_id = store_id
        self._retention = retention
        self._unlock = unlock
        self._environ = environ
        self._keyring = KeyRing(self._connection, store_id, directory, unlock, environ)
        self._guard = integrity.Guard(self._connection, self._keyring, highwater, notice)
        self._secrets = secretrows.SecretTable(self._connection, self._guard, retention)

    # ------------------------------------------------------------------ opening / closing

    @classmethod
    def open(
        cls,
        directory: Path | str | None = None,
        *,
        unlock: Unlock | None = None,
        create: bool = True,
        retention: int = DEFAULT_RETENTION,
        environ: Mapping[str, str] | None = None,
        accept_restore: bool = False,
        notice: Callable[[str], None] | None = None,
    ) -> Store:
        """Open (and with ``create``, create) the store in ``directory``.

        ``directory`` defaults to ``COMPOSESECRETS_HOME``, then ``$XDG_DATA_HOME/composesecrets``,
        then ``~/.local/share/composesecrets``. ``unlock`` defaults to :class:`AutoUnlock`.
        Raises :class:`UnsafePermissionsError` when group or others can access the directory or
        database, :class:`NotFoundError` when the store is missing and ``create`` is False,
        :class:`RollbackError` when the database is older than (or not) the store last seen in
        this directory, unless ``accept_restore`` (then call :meth:`accept_restore`).
        ``notice`` gets warnings (an audit entry a read-only store could not record).
        """
        env: Mapping[str, str] = os.environ if environ is None else environ
        if retention < 1:
            raise InputError(f"retention must keep at least 1 version (got {retention})")
        if directory is not None:
            path = Path(directory).expanduser()
        else:
            path = paths.default_store_dir(env)
        path = path.absolute()
        db_path = path / paths.DB_NAME
        if not paths.ensure_private_dir(path, create=create) or (
            not create and not db_path.exists()
        ):
            raise NotFoundError(
                f"no secret store at {path}",
                hint="create a secret first, or point --store / COMPOSESECRETS_HOME at the store",
            )
        if create:
            paths.create_private_file(db_path)
        for suffix in ("", "-wal", "-shm"):
            paths.check_private(Path(str(db_path) + suffix), directory=False)
        unlock = unlock or AutoUnlock()
        highwater = HighWater(state_dir(unlock, env), path)
        conn = dbm.connect(db_path)
        try:
            for suffix in ("-wal", "-shm"):
                paths.check_private(Path(str(db_path) + suffix), directory=False)
            if not accept_restore and cls._existing_id(conn) is None:
                integrity.check_open(conn, highwater, None)  # emptied: refuse to start anew
            dbm.migrate(conn)
            store_id = cls._ensure_store_id(conn)
            if not accept_restore:
                integrity.check_open(conn, highwater, store_id)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, store_id, unlock, env, retention, highwater, notice or _stderr)

    @staticmethod
    def _existing_id(conn: sqlite3.Connection) -> str | None:
        def read(c: sqlite3.Connection) -> str | None:
            if int(c.execute("PRAGMA user_version").fetchone()[0]) == 0:
                return None
            row = c.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            return None if row is None else str(row["value"])

        return dbm.retrying(conn, read)

    @staticmethod
    def _ensure_store_id(conn: sqlite3.Connection) -> str:
        row = dbm.retrying(
            conn, lambda c: c.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        )
        if row is not None:
            return str(row["value"])

        def _init(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (new_id(),))
            c.execute("INSERT OR IGNORE INTO meta VALUES ('created_ns', ?)", (str(time.time_ns()),))
            return str(
                c.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()["value"]
            )

        return dbm.write(conn, _init)

    def close(self) -> None:
        """Close the database and forget the keys held in memory."""
        self._keyring.forget()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def database(self) -> Path:
        return self._directory / paths.DB_NAME

    @property
    def store_id(self) -> str:
        return self._store_id

    @property
    def retention(self) -> int:
        return self._retention

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise InputError("the store is closed")
        return self._conn

    # ------------------------------------------------------------------ unlocking

    def unlock(self) -> None:
        """Unlock now (else it happens on first need). :class:`StoreLockedError` if it fails."""
        self._keyring.keys()

    @property
    def initialised(self) -> bool:
        """Whether the store has its key slot yet (the first write makes it). Needs no key;
        cheaper than :meth:`status`, which counts every table."""
        return self._keyring.read_slot() is not None

    # ------------------------------------------------------------------ secrets

    def create(
        self, name: str, value: bytes, labels: Mapping[str, str] | None = None
    ) -> SecretInfo:
        """Create secret ``name`` at version 1. :class:`ConflictError` if the name exists;
        :class:`InputError` for a name Docker refuses or one shaped like an ID."""
        return self._secrets.create(name, value, labels)

    def rotate(self, name: str, value: bytes) -> SecretInfo:
        """Store ``value`` as the next version of the secret called exactly ``name`` (never
        an ID or ID prefix); prunes old versions."""
        return self._secrets.rotate(name, value)

    def drop_version(self, name: str, version: int) -> SecretInfo:
        """Undo the rotation that made ``version`` (the current one, used by no stack): it is
        deleted and the version before it is current again (a rolled-back deploy)."""
        return self._secrets.drop_version(name, version)

    def get(
        self,
        name: str,
        version: int | None = None,
        *,
        audit: bool = True,
        reason: str = "",
    ) -> bytes:
        """Return the value of the secret called exactly ``name`` (current version,
        ``version``, or ``NAME@N``); an ID or ID prefix is never taken for a name.

        Raises :class:`NotFoundError` (no secret or version), :class:`IntegrityError` (tampered
        or corrupted data: never returns wrong data), :class:`StoreLockedError`. Each read is
        recorded in the audit log (action ``read``, with ``reason``) unless ``audit`` is False.
        """
        return self._secrets.get(name, version, audited=audit, reason=reason)

    def matches(self, name: str, value: bytes, version: int | None = None) -> tuple[bool, int]:
        """Whether ``value`` equals the stored value of ``name`` (current version, or
        ``version``), compared by keyed digest without decrypting; returns (equal, version).
        Recorded in the audit log as ``compare``."""
        return self._secrets.matches(name, value, version)

    def note(self, action: str, target: str, detail: str = "") -> None:
        """Append one audit entry (e.g. a deploy's reads, done with ``get(audit=False)``, in
        one record instead of one write per value). Never pass a value here."""
        self._guard.note(action, target, detail)

    def list_secrets(self, filters: SecretFilter | Iterable[str] | None = None) -> list[SecretInfo]:
        """All secrets sorted by name; ``filters`` is a :class:`SecretFilter` or ``--filter``
        strings (``name=PREFIX``, ``id=PREFIX``, ``label=KEY[=VALUE]``). Needs no key."""
        return self._secrets.list_secrets(filters)

    def inspect(self, name: str, *, allow_id: bool = False) -> SecretDetails:
        """Metadata, retained versions (size, time, keyed digest) and usages. Needs no key.
        ``NAME@N`` limits the versions shown to N.

        ``name`` is an exact name; with ``allow_id`` (read-only interactive use, such as
        ``secret inspect``) it may also be an ID or a unique ID prefix, as in Docker.
        """
        from . import usage
        from .reports import SecretDetails

        base, wanted = split_ref(name)
        find = secretrows.lookup if allow_id else secretrows.by_name

        def read(c: sqlite3.Connection) -> SecretDetails:
            info = find(c, base).info()
            versions = secretrows.versions(c, info, wanted)
            return SecretDetails(info, versions, tuple(usage.rows(c, info.id, None)))

        return dbm.retrying(self._connection(), read)

    def remove(self, name: str) -> SecretInfo:
        """Delete the secret called exactly ``name`` and all its versions.
        :class:`ConflictError` naming the stacks and services when a deployed stack uses it."""
        return self.remove_many([name])[0]

    def remove_many(self, names: Iterable[str]) -> list[SecretInfo]:
        """Delete several secrets (exact names) in one transaction: all of them, or (on any
        error) none."""
        return self._secrets.remove_many(names)

    def import_many(
        self, items: Iterable[tuple[str, bytes, Mapping[str, str] | None]]
    ) -> list[SecretInfo]:
        """Create many secrets in one transaction: all are created or none is."""
        return self._secrets.import_many(items)

    # ------------------------------------------------------------------ usage records

    def record_usage(self, stack: str, backend: str, usages: Sequence[Usage]) -> list[UsageRecord]:
        """Replace what ``stack`` uses with ``usages`` (exact secret names; versions default
        to the current one)."""
        from . import usage

        try:
            return self._guard.write(
                lambda c, _k: usage.record(c, self._retention, stack, backend, usages)
            )
        except StoreReadOnlyError as exc:
            # Nothing can remove a secret from a read-only store either: deploy goes on.
            self._guard.notice(f"warning: usage of stack {stack} not recorded: {exc.message}")
            return []

    def usages(self, secret: str | None = None, stack: str | None = None) -> list[UsageRecord]:
        """Usage records, optionally for one secret (exact name) and/or one stack."""
        from . import usage

        return dbm.retrying(self._connection(), lambda c: usage.of_secret(c, secret, stack))

    def clear_usage(self, stack: str) -> int:
        """Forget what ``stack`` uses (after it is removed); returns the records dropped."""
        from . import usage

        return self._guard.write(lambda c, _k: usage.clear(c, self._retention, stack))

    # ------------------------------------------------------------------ store-wide

    def status(self) -> StoreStatus:
        """Counts and key-slot facts. Needs no key."""
        from .reports import StoreStatus

        def count(c: sqlite3.Connection, table: str) -> int:
            return int(c.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"])

        def read(c: sqlite3.Connection) -> StoreStatus:
            slot = c.execute("SELECT method, kdf, key_file, generation FROM keyslot").fetchone()
            created = c.execute("SELECT value FROM meta WHERE key = 'created_ns'").fetchone()
            kdf = json.loads(slot["kdf"]) if slot and slot["kdf"] else None
            return StoreStatus(
                directory=self._directory,
                database=self.database,
                store_id=self._store_id,
                schema_version=int(c.execute("PRAGMA user_version").fetchone()[0]),
                initialised=slot is not None,
                unlock_method=slot["method"] if slot else None,
                kdf=keys.describe_kdf(kdf) if slot else None,
                key_file=Path(slot["key_file"]) if slot and slot["key_file"] else None,
                key_generation=int(slot["generation"]) if slot else None,
                secrets=count(c, "secrets"),
                versions=count(c, "versions"),
                stacks=tuple(
                    r["stack"]
                    for r in c.execute("SELECT DISTINCT stack FROM usages ORDER BY stack")
                ),
                audit_entries=count(c, "audit"),
                database_bytes=sum(
                    p.stat().st_size
                    for p in self._directory.glob(paths.DB_NAME + "*")
                    if p.is_file()
                ),
                retention=self._retention,
                created_at=from_ns(int(created["value"])) if created else None,
            )

        return dbm.retrying(self._connection(), read)

    def verify(self) -> VerifyReport:
        """Open every stored version; list each that fails (never raises on a bad row).

        Raises only :class:`StoreLockedError` when the store cannot be unlocked at all.
        """
        return integrity.verify(self._guard, self._key_exists())

    def _key_exists(self) -> bool:
        if isinstance(self._unlock, EnvKeyUnlock) and self._unlock.key is not None:
            return True
        if isinstance(self._unlock, KeyFileUnlock) and self._unlock.path is not None:
            return Path(self._unlock.path).expanduser().exists()
        return (
            bool(self._environ.get(keys.ENV_KEY))
            or paths.default_key_file(self._environ, self._store_id).exists()
            or paths.default_key_file(self._environ).exists()
            or pins.pin_path(self._environ, self._store_id).exists()
        )

    def verify_audit(self) -> list[str]:
        """Walk the audit chain: one line per entry that was edited or follows a removed one
        (entries removed from the end are found by the authenticated state). Needs the key."""
        return self._guard.audit_failures()

    def accept_restore(self) -> int:
        """Accept the store as it is now as its newest state (after restoring a backup on
        purpose): lowers the high-water mark kept beside the key. The store must still
        authenticate under the key. Returns the state counter recorded."""
        return self._guard.accept_restore()

    def _sealed_key_change(self, change: Callable[[], KeyChange]) -> KeyChange:
        self._guard.read(lambda _c, _k: None)  # the state authenticates before it changes
        result = change()
        self._guard.record(dbm.retrying(self._connection(), sealing.raw_counter))
        return result

    def rotate_key(self, new_unlock: Unlock | None = None) -> KeyChange:
        """Make a new root key and re-wrap every data key in one transaction.

        The key that protects it is replaced too: a key file gets a fresh key (in a pending
        file of its own, under an exclusive lock, moved into place after the commit; the key
        it replaces is kept as ``<key>.gen<N>-<hash>``, see :mod:`.keyfiles`); a store on the
        old shared default ``master.key`` moves to ``<config dir>/<store id>.key`` and leaves
        ``master.key`` alone; an environment key is replaced by ``COMPOSESECRETS_NEW_KEY``
        (required: :class:`InputError` without it); a passphrase keeps protecting the new root
        key. ``new_unlock`` switches method as well.
        """
        return self._sealed_key_change(lambda: self._keyring.rotate_key(new_unlock))

    def change_unlock(self, new: Unlock) -> KeyChange:
        """Protect the store with another method, under a new root key (every data key is
        re-wrapped, as by :meth:`rotate_key`), so an old key file opens nothing written after.

        An environment key comes from ``EnvKeyUnlock(key=...)``, ``COMPOSESECRETS_NEW_KEY`` or
        ``COMPOSESECRETS_KEY`` (never generated and printed afterwards). An existing key file
        is reused; a missing one gets a fresh key. A new passphrase needs 12 characters.
        """
        return self._sealed_key_change(lambda: self._keyring.change_unlock(new))

    def audit(
        self,
        *,
        action: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries, oldest first (``limit`` keeps the newest N). Needs no key."""
        return audit.entries(self._connection(), action=action, target=target, limit=limit)
