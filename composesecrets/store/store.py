"""The :class:`Store`: an encrypted, versioned secret store in one SQLite database.

A facade over the parts that do the work: :mod:`.keyslot` (unlocking, key rotation),
:mod:`.secretrows` (secrets and versions), :mod:`.usage` (what deployed stacks use),
:mod:`.audit` (the audit log) and :mod:`.integrity` (``verify``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ..errors import InputError, NotFoundError
from . import audit, integrity, keys, paths, secretrows, usage
from . import db as dbm
from .filters import SecretFilter
from .ids import new_id
from .keys import AutoUnlock, Unlock
from .keyslot import KeyRing
from .records import (
    AuditEntry,
    KeyChange,
    SecretDetails,
    SecretInfo,
    StoreStatus,
    Usage,
    UsageRecord,
    VerifyReport,
    from_ns,
)
from .validation import split_ref

DEFAULT_RETENTION = 10


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
    ) -> None:
        self._directory = directory
        self._conn: sqlite3.Connection | None = conn
        self._store_id = store_id
        self._retention = retention
        self._keyring = KeyRing(self._connection, store_id, directory, unlock, environ)
        self._secrets = secretrows.SecretTable(self._connection, self._keyring, retention)

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
    ) -> Store:
        """Open (and with ``create``, create) the store in ``directory``.

        ``directory`` defaults to ``COMPOSESECRETS_HOME``, then ``$XDG_DATA_HOME/composesecrets``,
        then ``~/.local/share/composesecrets``. ``unlock`` defaults to :class:`AutoUnlock`.
        Raises :class:`UnsafePermissionsError` when group or others can access the directory or
        database, :class:`NotFoundError` when the store is missing and ``create`` is False.
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
        conn = dbm.connect(db_path)
        try:
            for suffix in ("-wal", "-shm"):
                paths.check_private(Path(str(db_path) + suffix), directory=False)
            dbm.migrate(conn)
            store_id = cls._ensure_store_id(conn)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, store_id, unlock or AutoUnlock(), env, retention)

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

    def note(self, action: str, target: str, detail: str = "") -> None:
        """Append one audit entry (e.g. a deploy's reads, done with ``get(audit=False)``, in
        one record instead of one write per value). Never pass a value here."""
        dbm.write(self._connection(), lambda c: audit.append(c, action, target, detail))

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
        return dbm.write(
            self._connection(),
            lambda c: usage.record(c, self._retention, stack, backend, usages),
        )

    def usages(self, secret: str | None = None, stack: str | None = None) -> list[UsageRecord]:
        """Usage records, optionally for one secret (exact name) and/or one stack."""
        return dbm.retrying(self._connection(), lambda c: usage.of_secret(c, secret, stack))

    def clear_usage(self, stack: str) -> int:
        """Forget what ``stack`` uses (after it is removed); returns the records dropped."""
        return dbm.write(self._connection(), lambda c: usage.clear(c, self._retention, stack))

    # ------------------------------------------------------------------ store-wide

    def status(self) -> StoreStatus:
        """Counts and key-slot facts. Needs no key."""

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
        return integrity.verify(self._connection, self._keyring)

    def rotate_key(self, new_unlock: Unlock | None = None) -> KeyChange:
        """Make a new root key and re-wrap every data key in one transaction.

        The key that protects it is replaced too: a key file gets a fresh key (written to
        ``<file>.new`` first, moved into place after the commit), an environment key is
        regenerated and returned in :attr:`KeyChange.generated_key` (show it to the user), and a
        passphrase keeps protecting the new root key. ``new_unlock`` switches method as well.
        Note: a key file shared by several stores would stop opening the others.
        """
        return self._keyring.rotate_key(new_unlock)

    def change_unlock(self, new: Unlock) -> KeyChange:
        """Protect the same root key with another method; the data is not touched.

        Switching to an environment key with neither ``EnvKeyUnlock(key=...)`` nor
        ``COMPOSESECRETS_KEY`` generates one, returned in :attr:`KeyChange.generated_key`.
        A key file that is missing is created (0600, with a notice); an existing one is reused.
        """
        return self._keyring.change_unlock(new)

    def audit(
        self,
        *,
        action: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Audit entries, oldest first (``limit`` keeps the newest N). Needs no key."""
        return audit.entries(self._connection(), action=action, target=target, limit=limit)
