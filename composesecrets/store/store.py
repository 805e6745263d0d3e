"""The :class:`Store`: an encrypted, versioned secret store in one SQLite database."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import (
    ConflictError,
    InputError,
    IntegrityError,
    NotFoundError,
    StoreLockedError,
)
from . import crypto, keys, paths
from . import db as dbm
from .filters import SecretFilter
from .ids import new_id
from .keys import AutoUnlock, EnvKeyUnlock, Kek, KeyFileUnlock, Unlock
from .models import (
    AuditEntry,
    KeyChange,
    SecretDetails,
    SecretInfo,
    StoreStatus,
    Usage,
    UsageRecord,
    VerifyFailure,
    VerifyReport,
    VersionInfo,
    from_ns,
)
from .validation import check_labels, check_name, check_value, split_ref

DEFAULT_RETENTION = 10

T = TypeVar("T")

_SECRET_COLUMNS = "id, name, labels, current, created_ns, updated_ns"
_SEALED_COLUMNS = "dek_nonce, dek_wrapped, nonce, ciphertext"
_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")


def _who() -> str:
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        user = str(os.geteuid()) if hasattr(os, "geteuid") else "unknown"
    sudo = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {sudo})" if sudo and sudo != user else user


def _info(row: Sequence[Any]) -> SecretInfo:
    labels = json.loads(row[2]) if row[2] != "{}" else {}
    return SecretInfo(
        id=row[0],
        name=row[1],
        version=int(row[3]),
        labels=labels,
        created_at=from_ns(int(row[4])),
        updated_at=from_ns(int(row[5])),
    )


def _sealed(row: Sequence[Any]) -> crypto.SealedVersion:
    return crypto.SealedVersion(bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]))


def _integrity_error(name: str, secret_id: str, version: int) -> IntegrityError:
    return IntegrityError(
        f"secret {name!r} ({secret_id}) version {version} failed authentication: its stored"
        " ciphertext, nonce or wrapped data key was altered or copied from elsewhere",
        hint="run `composesecrets store verify`; restore the store from a backup, or replace"
        " the value with `composesecrets secret rotate`",
    )


class _StaleKeys(Exception):
    """Another process changed the root key since this store unlocked it."""


@dataclass
class _Keys:
    kek: Kek
    root_key: bytes
    root: AESGCM
    digest_key: bytes
    generation: int


class Store:
    """An open store. Create it with :meth:`Store.open`; use it as a context manager.

    Opening performs no key derivation: names, labels, ``list``, ``inspect``, ``status``,
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
        self._unlock_method = unlock
        self._environ = environ
        self._retention = retention
        self._keys: _Keys | None = None

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
            return str(row[0])

        def _init(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (new_id(),))
            c.execute("INSERT OR IGNORE INTO meta VALUES ('created_ns', ?)", (str(time.time_ns()),))
            return str(c.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0])

        return dbm.write(conn, _init)

    def close(self) -> None:
        """Close the database and forget the keys held in memory."""
        self._keys = None
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

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise InputError("the store is closed")
        return self._conn

    # ------------------------------------------------------------------ unlocking

    def unlock(self) -> None:
        """Unlock now (else it happens on first need). :class:`StoreLockedError` if it fails."""
        self._unlocked()

    def _unlocked(self) -> _Keys:
        if self._keys is not None:
            return self._keys
        slot = self._read_slot()
        if slot is None:
            kek = keys.new_kek(self._unlock_method, self._environ, purpose="init")
            won = dbm.write(self._db, lambda c: self._init_slot(c, kek))
            if won is not None:
                self._keys = won
                return won
            slot = self._read_slot()
            if slot is None:  # pragma: no cover - the slot was just written by someone
                raise StoreLockedError("the store's key slot vanished")
        self._keys = self._open_slot(slot)
        return self._keys

    def _read_slot(self) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = dbm.retrying(
            self._db,
            lambda c: c.execute(
                "SELECT method, kdf, key_file, nonce, wrapped, generation FROM keyslot"
            ).fetchone(),
        )
        return row

    def _init_slot(self, c: sqlite3.Connection, kek: Kek) -> _Keys | None:
        if c.execute("SELECT 1 FROM keyslot").fetchone() is not None:
            return None  # another process initialised the store first
        root_key = crypto.random_key()
        nonce, wrapped = crypto.wrap_key(kek.key, root_key, crypto.root_aad(self._store_id))
        c.execute(
            "INSERT INTO keyslot VALUES (1, ?, ?, ?, ?, ?, 1, ?)",
            (
                kek.method,
                json.dumps(kek.kdf) if kek.kdf else None,
                str(kek.key_file) if kek.key_file else None,
                nonce,
                wrapped,
                time.time_ns(),
            ),
        )
        self._audit(c, "init", self._store_id, f"unlock={kek.method}")
        return self._make_keys(kek, root_key, 1)

    def _make_keys(self, kek: Kek, root_key: bytes, generation: int) -> _Keys:
        return _Keys(
            kek=kek,
            root_key=root_key,
            root=AESGCM(root_key),
            digest_key=crypto.digest_key(root_key, self._store_id),
            generation=generation,
        )

    def _open_slot(self, slot: tuple[Any, ...]) -> _Keys:
        method, kdf_json, key_file, nonce, wrapped, generation = slot
        kdf = json.loads(kdf_json) if kdf_json else None
        kek = keys.kek_for_existing(self._unlock_method, method, kdf, key_file, self._environ)
        aad = crypto.root_aad(self._store_id)
        try:
            root_key = crypto.unwrap_key(kek.key, bytes(nonce), bytes(wrapped), aad)
        except crypto.AuthenticationFailed:
            recovered = self._recover_pending_key_file(kek, bytes(nonce), bytes(wrapped), aad)
            if recovered is None:
                raise self._locked_error(kek) from None
            kek, root_key = recovered
        return self._make_keys(kek, root_key, int(generation))

    def _refresh(self) -> _Keys:
        """Re-read the key slot after another process rotated the key or changed the method."""
        old, self._keys = self._keys, None
        slot = self._read_slot()
        if old is not None and slot is not None:
            try:  # the same KEK still works when only the root key changed (passphrase)
                root_key = crypto.unwrap_key(
                    old.kek.key, bytes(slot[3]), bytes(slot[4]), crypto.root_aad(self._store_id)
                )
            except crypto.AuthenticationFailed:
                pass
            else:
                self._keys = self._make_keys(old.kek, root_key, int(slot[5]))
                return self._keys
        return self._unlocked()

    @staticmethod
    def _current(c: sqlite3.Connection, k: _Keys) -> None:
        row = c.execute("SELECT generation FROM keyslot").fetchone()
        if row is None or int(row[0]) != k.generation:
            raise _StaleKeys()

    def _with_keys(self, op: Callable[[_Keys], T]) -> T:
        """Run ``op`` with the unlocked keys, again with fresh keys if they went stale."""
        k = self._unlocked()
        for _ in range(5):
            try:
                return op(k)
            except _StaleKeys:
                k = self._refresh()
        raise ConflictError(
            "the store's key kept changing while this command ran", hint="run it again"
        )

    @staticmethod
    def _recover_pending_key_file(
        kek: Kek, nonce: bytes, wrapped: bytes, aad: bytes
    ) -> tuple[Kek, bytes] | None:
        """Find the key of a key-file rotation that committed but has not (yet) renamed
        ``<key>.new`` into place: it died, or it is doing so right now in another process."""
        if kek.method != "keyfile" or kek.key_file is None:
            return None
        pending = keys.pending_path(kek.key_file)
        for path in (pending, kek.key_file):
            try:
                candidate = keys.read_key_file(path)
            except StoreLockedError:
                continue  # missing (renamed meanwhile) or unreadable
            if candidate == kek.key:
                continue
            try:
                root_key = crypto.unwrap_key(candidate, nonce, wrapped, aad)
            except crypto.AuthenticationFailed:
                continue
            if path == pending:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(pending, kek.key_file)
            return Kek(candidate, "keyfile", key_file=kek.key_file), root_key
        return None

    def _locked_error(self, kek: Kek) -> StoreLockedError:
        where = f"the store at {self._directory}"
        if kek.method == "passphrase":
            return StoreLockedError(
                f"wrong passphrase for {where}",
                hint="check the passphrase (or COMPOSESECRETS_PASSPHRASE) and try again",
            )
        if kek.method == "env":
            return StoreLockedError(
                f"{keys.ENV_KEY} does not unlock {where}",
                hint=f"set {keys.ENV_KEY} to this store's key, or unset it to use the key file",
            )
        return StoreLockedError(
            f"the key file {kek.key_file} does not unlock {where}",
            hint="use the key file this store was created with (COMPOSESECRETS_KEY_FILE), or"
            " restore it from your backup",
        )

    # ------------------------------------------------------------------ helpers

    def _audit(self, c: sqlite3.Connection, action: str, target: str, detail: str = "") -> None:
        c.execute(
            "INSERT INTO audit (at_ns, who, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time_ns(), _who(), action, target, detail),
        )

    def _resolve(self, c: sqlite3.Connection, ref: str) -> tuple[Any, ...]:
        """Find a secret by exact ID, exact name, then unique ID prefix (as Docker does)."""
        query = f"SELECT {_SECRET_COLUMNS} FROM secrets WHERE "
        row: tuple[Any, ...] | None = c.execute(query + "id = ?", (ref,)).fetchone()
        if row is None:
            row = c.execute(query + "name = ?", (ref,)).fetchone()
        if row is None and ref and set(ref) <= _ID_CHARS:
            rows = c.execute(query + "id >= ? AND id < ? LIMIT 2", (ref, ref + "{")).fetchall()
            if len(rows) > 1:
                raise InputError(
                    f"secret ID prefix {ref!r} is ambiguous", hint="give more characters of the ID"
                )
            row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(
                f"no such secret: {ref}", hint="list secrets with `composesecrets secret ls`"
            )
        return row

    def _prune(self, c: sqlite3.Connection, secret_id: str | None = None) -> None:
        """Drop versions older than the retention window that no usage record references."""
        unused = (
            " AND NOT EXISTS (SELECT 1 FROM usages u WHERE u.secret_id = versions.secret_id"
            " AND u.version = versions.version)"
        )
        if secret_id is not None:
            c.execute(
                "DELETE FROM versions WHERE secret_id = ? AND version <= "
                "(SELECT current FROM secrets WHERE id = ?) - ?" + unused,
                (secret_id, secret_id, self._retention),
            )
        else:
            c.execute(
                "DELETE FROM versions WHERE version <= "
                "(SELECT current FROM secrets s WHERE s.id = versions.secret_id) - ?" + unused,
                (self._retention,),
            )

    def _insert_version(
        self,
        c: sqlite3.Connection,
        k: _Keys,
        secret_id: str,
        version: int,
        value: bytes,
        now: int,
    ) -> None:
        sealed = crypto.seal(k.root, self._store_id, secret_id, version, value)
        c.execute(
            "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                secret_id,
                version,
                len(value),
                crypto.value_digest(k.digest_key, value),
                sealed.dek_nonce,
                sealed.dek_wrapped,
                sealed.nonce,
                sealed.ciphertext,
                now,
            ),
        )

    @staticmethod
    def _no_version(ref: str) -> None:
        if "@" in ref:
            raise InputError(
                f"{ref!r} names a version; this operation works on whole secrets",
                hint="drop the @VERSION suffix",
            )

    # ------------------------------------------------------------------ secrets

    def create(
        self, name: str, value: bytes, labels: Mapping[str, str] | None = None
    ) -> SecretInfo:
        """Create secret ``name`` at version 1. :class:`ConflictError` if the name exists."""
        check_name(name)
        check_value(value, name=name)
        clean = check_labels(labels)

        def txn(c: sqlite3.Connection, k: _Keys) -> SecretInfo:
            self._current(c, k)
            if c.execute("SELECT 1 FROM secrets WHERE name = ?", (name,)).fetchone():
                raise ConflictError(
                    f"secret {name} already exists",
                    hint=f"to store a new value, run `composesecrets secret rotate {name} FILE`",
                )
            secret_id, now = new_id(), time.time_ns()
            c.execute(
                "INSERT INTO secrets VALUES (?, ?, ?, 1, ?, ?)",
                (secret_id, name, json.dumps(clean, sort_keys=True), now, now),
            )
            self._insert_version(c, k, secret_id, 1, bytes(value), now)
            self._audit(c, "create", name, f"id={secret_id} version=1 size={len(value)}")
            return SecretInfo(secret_id, name, 1, clean, from_ns(now), from_ns(now))

        return self._with_keys(lambda k: dbm.write(self._db, lambda c: txn(c, k)))

    def rotate(self, name_or_id: str, value: bytes) -> SecretInfo:
        """Store ``value`` as the next version of an existing secret; prunes old versions."""
        self._no_version(name_or_id)
        check_value(value, name=name_or_id)

        def txn(c: sqlite3.Connection, k: _Keys) -> SecretInfo:
            self._current(c, k)
            row = self._resolve(c, name_or_id)
            old = _info(row)
            version, now = old.version + 1, time.time_ns()
            self._insert_version(c, k, old.id, version, bytes(value), now)
            c.execute(
                "UPDATE secrets SET current = ?, updated_ns = ? WHERE id = ?",
                (version, now, old.id),
            )
            self._prune(c, old.id)
            self._audit(c, "rotate", old.name, f"id={old.id} version={version} size={len(value)}")
            return SecretInfo(old.id, old.name, version, old.labels, old.created_at, from_ns(now))

        return self._with_keys(lambda k: dbm.write(self._db, lambda c: txn(c, k)))

    def get(
        self,
        name_or_id: str,
        version: int | None = None,
        *,
        audit: bool = True,
        reason: str = "",
    ) -> bytes:
        """Return the value of a secret (current version, ``version``, or ``NAME@N``/``ID@N``).

        Raises :class:`NotFoundError` (no secret or version), :class:`IntegrityError` (tampered
        or corrupted data: never returns wrong data), :class:`StoreLockedError`. Each read is
        recorded in the audit log (action ``read``, with ``reason``) unless ``audit`` is False.
        """
        base, wanted = split_ref(name_or_id, version)

        def read(c: sqlite3.Connection, k: _Keys) -> tuple[SecretInfo, int, tuple[Any, ...] | None]:
            self._current(c, k)
            info = _info(self._resolve(c, base))
            number = wanted if wanted is not None else info.version
            row = c.execute(
                f"SELECT {_SEALED_COLUMNS} FROM versions WHERE secret_id = ? AND version = ?",
                (info.id, number),
            ).fetchone()
            return info, number, row

        def op(k: _Keys) -> tuple[SecretInfo, int, bytes]:
            info, number, row = dbm.read(self._db, lambda c: read(c, k))
            if row is None:
                if number > info.version:
                    raise NotFoundError(
                        f"secret {info.name!r} has no version {number}"
                        f" (its latest is {info.version})"
                    )
                raise NotFoundError(
                    f"version {number} of secret {info.name!r} is no longer kept",
                    hint=f"the store keeps the last {self._retention} versions and any version a"
                    " deployed stack uses",
                )
            try:
                value = crypto.open_sealed(k.root, self._store_id, info.id, number, _sealed(row))
            except crypto.AuthenticationFailed:
                raise _integrity_error(info.name, info.id, number) from None
            return info, number, value

        info, number, value = self._with_keys(op)
        if audit:
            dbm.write(
                self._db,
                lambda c: self._audit(c, "read", f"{info.name}@{number}", reason),
            )
        return value

    def note(self, action: str, target: str, detail: str = "") -> None:
        """Append one audit entry (e.g. a deploy's reads, done with ``get(audit=False)``, in
        one record instead of one write per value). Never pass a value here."""
        dbm.write(self._db, lambda c: self._audit(c, action, target, detail))

    def list(self, filters: SecretFilter | Iterable[str] | None = None) -> list[SecretInfo]:
        """All secrets sorted by name; ``filters`` is a :class:`SecretFilter` or ``--filter``
        strings (``name=PREFIX``, ``id=PREFIX``, ``label=KEY[=VALUE]``). Needs no key."""
        if filters is not None and not isinstance(filters, SecretFilter):
            filters = SecretFilter.parse(filters)
        rows = dbm.retrying(
            self._db,
            lambda c: c.execute(f"SELECT {_SECRET_COLUMNS} FROM secrets ORDER BY name").fetchall(),
        )
        infos = [_info(r) for r in rows]
        if filters is None:
            return infos
        return [i for i in infos if filters.matches(i)]

    def inspect(self, name_or_id: str) -> SecretDetails:
        """Metadata, retained versions (size, time, keyed digest) and usages. Needs no key.
        ``NAME@N`` limits the versions shown to N."""
        base, wanted = split_ref(name_or_id)

        def read(c: sqlite3.Connection) -> SecretDetails:
            info = _info(self._resolve(c, base))
            rows = c.execute(
                "SELECT version, size, created_ns, digest FROM versions WHERE secret_id = ?"
                " ORDER BY version",
                (info.id,),
            ).fetchall()
            versions = tuple(
                VersionInfo(int(v), int(s), from_ns(int(t)), "hmac-sha256:" + bytes(d).hex())
                for v, s, t, d in rows
                if wanted is None or int(v) == wanted
            )
            if wanted is not None and not versions:
                raise NotFoundError(f"secret {info.name!r} has no stored version {wanted}")
            return SecretDetails(info, versions, tuple(self._usage_rows(c, info.id, None)))

        return dbm.retrying(self._db, read)

    def remove(self, name_or_id: str) -> SecretInfo:
        """Delete a secret and all its versions. :class:`ConflictError` naming the stacks and
        services when a deployed stack uses it."""
        return self.remove_many([name_or_id])[0]

    def remove_many(self, names_or_ids: Iterable[str]) -> builtins.list[SecretInfo]:
        """Delete several secrets in one transaction: all of them, or (on any error) none."""
        refs = builtins.list(names_or_ids)
        for ref in refs:
            self._no_version(ref)

        def txn(c: sqlite3.Connection) -> builtins.list[SecretInfo]:
            return [self._remove_in(c, ref) for ref in refs]

        return dbm.write(self._db, txn)

    def _remove_in(self, c: sqlite3.Connection, name_or_id: str) -> SecretInfo:
        info = _info(self._resolve(c, name_or_id))
        users = c.execute(
            "SELECT stack, service FROM usages WHERE secret_id = ? ORDER BY stack, service",
            (info.id,),
        ).fetchall()
        if users:
            by_stack: dict[str, builtins.list[str]] = {}
            for stack, service in users:
                if service not in by_stack.setdefault(stack, []):
                    by_stack[stack].append(service)
            parts = [f"stack {s!r} (services: {', '.join(v)})" for s, v in by_stack.items()]
            raise ConflictError(
                f"secret {info.name!r} is in use by " + "; ".join(parts),
                hint="remove the stack first, or deploy it without this secret",
            )
        c.execute("DELETE FROM versions WHERE secret_id = ?", (info.id,))
        c.execute("DELETE FROM secrets WHERE id = ?", (info.id,))
        self._audit(c, "remove", info.name, f"id={info.id}")
        return info

    def import_many(
        self, items: Iterable[tuple[str, bytes, Mapping[str, str] | None]]
    ) -> builtins.list[SecretInfo]:
        """Create many secrets in one transaction: all are created or none is."""
        batch: builtins.list[tuple[str, bytes, dict[str, str]]] = []
        seen: set[str] = set()
        for name, value, labels in items:
            check_name(name)
            check_value(value, name=name)
            if name in seen:
                raise InputError(f"secret {name!r} appears twice in the import")
            seen.add(name)
            batch.append((name, bytes(value), check_labels(labels)))
        if not batch:
            return []

        def txn(c: sqlite3.Connection, k: _Keys) -> builtins.list[SecretInfo]:
            self._current(c, k)
            existing = {r[0] for r in c.execute("SELECT name FROM secrets")} & seen
            if existing:
                shown = ", ".join(sorted(existing)[:5])
                raise ConflictError(
                    f"{len(existing)} secret(s) already exist: {shown}",
                    hint="import only new names; change existing ones with `secret rotate`",
                )
            now = time.time_ns()
            out: builtins.list[SecretInfo] = []
            secret_rows = []
            version_rows = []
            audit_rows = []
            who = _who()
            for name, value, labels in batch:
                secret_id = new_id()
                sealed = crypto.seal(k.root, self._store_id, secret_id, 1, value)
                secret_rows.append((secret_id, name, json.dumps(labels, sort_keys=True), now, now))
                version_rows.append(
                    (
                        secret_id,
                        len(value),
                        crypto.value_digest(k.digest_key, value),
                        sealed.dek_nonce,
                        sealed.dek_wrapped,
                        sealed.nonce,
                        sealed.ciphertext,
                        now,
                    )
                )
                audit_rows.append(
                    (now, who, "create", name, f"id={secret_id} version=1 size={len(value)} import")
                )
                out.append(SecretInfo(secret_id, name, 1, labels, from_ns(now), from_ns(now)))
            c.executemany("INSERT INTO secrets VALUES (?, ?, ?, 1, ?, ?)", secret_rows)
            c.executemany("INSERT INTO versions VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)", version_rows)
            c.executemany(
                "INSERT INTO audit (at_ns, who, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                audit_rows,
            )
            return out

        return self._with_keys(lambda k: dbm.write(self._db, lambda c: txn(c, k)))

    # ------------------------------------------------------------------ usage records

    def record_usage(
        self, stack: str, backend: str, usages: Sequence[Usage]
    ) -> builtins.list[UsageRecord]:
        """Replace what ``stack`` uses with ``usages`` (versions default to the current one)."""
        if not stack:
            raise InputError("a stack name must be provided")
        if not backend:
            raise InputError("a backend name must be provided")

        def txn(c: sqlite3.Connection) -> builtins.list[UsageRecord]:
            now = time.time_ns()
            rows: dict[tuple[str, int, str], tuple[str, str, str, int, str, int]] = {}
            names: set[str] = set()
            for usage in usages:
                if not usage.service:
                    raise InputError(f"usage of {usage.secret!r} names no service")
                base, wanted = split_ref(usage.secret, usage.version)
                info = _info(self._resolve(c, base))
                number = wanted if wanted is not None else info.version
                if not c.execute(
                    "SELECT 1 FROM versions WHERE secret_id = ? AND version = ?",
                    (info.id, number),
                ).fetchone():
                    raise NotFoundError(f"secret {info.name!r} has no stored version {number}")
                names.add(f"{info.name}@{number}")
                rows[(info.id, number, usage.service)] = (
                    stack,
                    backend,
                    info.id,
                    number,
                    usage.service,
                    now,
                )
            c.execute("DELETE FROM usages WHERE stack = ?", (stack,))
            c.executemany("INSERT INTO usages VALUES (?, ?, ?, ?, ?, ?)", list(rows.values()))
            self._prune(c)
            detail = ", ".join(sorted(names))
            self._audit(c, "record-usage", stack, f"backend={backend} secrets={detail}")
            return self._usage_rows(c, None, stack)

        return dbm.write(self._db, txn)

    def _usage_rows(
        self, c: sqlite3.Connection, secret_id: str | None, stack: str | None
    ) -> builtins.list[UsageRecord]:
        sql = (
            "SELECT u.stack, u.backend, u.secret_id, s.name, u.version, u.service, u.recorded_ns"
            " FROM usages u JOIN secrets s ON s.id = u.secret_id WHERE 1 = 1"
        )
        args: builtins.list[str] = []
        if secret_id is not None:
            sql += " AND u.secret_id = ?"
            args.append(secret_id)
        if stack is not None:
            sql += " AND u.stack = ?"
            args.append(stack)
        sql += " ORDER BY u.stack, s.name, u.version, u.service"
        return [
            UsageRecord(r[0], r[1], r[2], r[3], int(r[4]), r[5], from_ns(int(r[6])))
            for r in c.execute(sql, args)
        ]

    def usages(
        self, secret: str | None = None, stack: str | None = None
    ) -> builtins.list[UsageRecord]:
        """Usage records, optionally for one secret (name or ID) and/or one stack."""

        def read(c: sqlite3.Connection) -> builtins.list[UsageRecord]:
            secret_id = None
            if secret is not None:
                base, _ = split_ref(secret)
                secret_id = str(self._resolve(c, base)[0])
            return self._usage_rows(c, secret_id, stack)

        return dbm.retrying(self._db, read)

    def clear_usage(self, stack: str) -> int:
        """Forget what ``stack`` uses (after it is removed); returns the records dropped."""

        def txn(c: sqlite3.Connection) -> int:
            count = c.execute("DELETE FROM usages WHERE stack = ?", (stack,)).rowcount
            self._prune(c)
            self._audit(c, "clear-usage", stack, f"records={count}")
            return int(count)

        return dbm.write(self._db, txn)

    # ------------------------------------------------------------------ store-wide

    def status(self) -> StoreStatus:
        """Counts and key-slot facts. Needs no key."""

        def read(c: sqlite3.Connection) -> StoreStatus:
            slot = c.execute("SELECT method, kdf, key_file, generation FROM keyslot").fetchone()
            created = c.execute("SELECT value FROM meta WHERE key = 'created_ns'").fetchone()
            kdf = json.loads(slot[1]) if slot and slot[1] else None
            return StoreStatus(
                directory=self._directory,
                database=self.database,
                store_id=self._store_id,
                schema_version=int(c.execute("PRAGMA user_version").fetchone()[0]),
                initialised=slot is not None,
                unlock_method=slot[0] if slot else None,
                kdf=keys.describe_kdf(kdf) if slot else None,
                key_file=Path(slot[2]) if slot and slot[2] else None,
                key_generation=int(slot[3]) if slot else None,
                secrets=int(c.execute("SELECT count(*) FROM secrets").fetchone()[0]),
                versions=int(c.execute("SELECT count(*) FROM versions").fetchone()[0]),
                stacks=tuple(
                    r[0] for r in c.execute("SELECT DISTINCT stack FROM usages ORDER BY stack")
                ),
                audit_entries=int(c.execute("SELECT count(*) FROM audit").fetchone()[0]),
                database_bytes=sum(
                    p.stat().st_size
                    for p in self._directory.glob(paths.DB_NAME + "*")
                    if p.is_file()
                ),
                retention=self._retention,
                created_at=from_ns(int(created[0])) if created else None,
            )

        return dbm.retrying(self._db, read)

    def verify(self) -> VerifyReport:
        """Open every stored version; list each that fails (never raises on a bad row).

        Raises only :class:`StoreLockedError` when the store cannot be unlocked at all.
        """
        if self._keys is None and self._read_slot() is None:
            return VerifyReport(0)  # nothing was ever written; do not create a key for it

        def snapshot(
            c: sqlite3.Connection, k: _Keys
        ) -> tuple[builtins.list[Any], builtins.list[Any]]:
            self._current(c, k)
            rows = c.execute(
                "SELECT s.id, s.name, v.version, v.size, v.digest, "
                "v.dek_nonce, v.dek_wrapped, v.nonce, v.ciphertext "
                "FROM versions v JOIN secrets s ON s.id = v.secret_id ORDER BY s.name, v.version"
            ).fetchall()
            missing = c.execute(
                "SELECT id, name, current FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM"
                " versions v WHERE v.secret_id = s.id AND v.version = s.current)"
            ).fetchall()
            return rows, missing

        def op(k: _Keys) -> VerifyReport:
            rows, missing = dbm.read(self._db, lambda c: snapshot(c, k))
            failures: builtins.list[VerifyFailure] = []
            for secret_id, name, version, size, digest, *sealed in rows:
                try:
                    value = crypto.open_sealed(
                        k.root, self._store_id, secret_id, int(version), _sealed(sealed)
                    )
                except crypto.AuthenticationFailed as exc:
                    failures.append(VerifyFailure(secret_id, name, int(version), str(exc)))
                    continue
                reason = None
                if len(value) != int(size):
                    reason = "recorded size does not match"
                elif not crypto.digest_equal(
                    crypto.value_digest(k.digest_key, value), bytes(digest)
                ):
                    reason = "recorded digest does not match"
                del value
                if reason:
                    failures.append(VerifyFailure(secret_id, name, int(version), reason))
            failures.extend(
                VerifyFailure(sid, name, int(cur), "the current version is missing")
                for sid, name, cur in missing
            )
            return VerifyReport(len(rows), tuple(failures))

        report = self._with_keys(op)
        dbm.write(
            self._db,
            lambda c: self._audit(
                c,
                "verify",
                self._store_id,
                f"checked={report.checked} failed={len(report.failures)}",
            ),
        )
        return report

    def _check_generation(self, c: sqlite3.Connection, k: _Keys) -> None:
        row = c.execute("SELECT generation FROM keyslot").fetchone()
        if row is None or int(row[0]) != k.generation:
            raise ConflictError(
                "the store's key was changed by another process meanwhile",
                hint="run the command again",
            )

    def rotate_key(self, new_unlock: Unlock | None = None) -> KeyChange:
        """Make a new root key and re-wrap every data key in one transaction.

        The key that protects it is replaced too: a key file gets a fresh key (written to
        ``<file>.new`` first, moved into place after the commit), an environment key is
        regenerated and returned in :attr:`KeyChange.generated_key` (show it to the user), and a
        passphrase keeps protecting the new root key. ``new_unlock`` switches method as well.
        Note: a key file shared by several stores would stop opening the others.
        """
        if isinstance(new_unlock, AutoUnlock):
            raise InputError("choose a key file, an environment key or a passphrase")
        k = self._refresh()
        if new_unlock is None and k.kek.method == "passphrase":
            new_kek = k.kek
        else:
            target: Unlock
            if new_unlock is not None:
                target = new_unlock
            elif k.kek.method == "keyfile":
                target = KeyFileUnlock(path=k.kek.key_file)
            else:
                target = EnvKeyUnlock()
            new_kek = keys.new_kek(target, self._environ, purpose="rotate")
        new_root_key = crypto.random_key()
        new = self._make_keys(new_kek, new_root_key, k.generation + 1)

        def txn(c: sqlite3.Connection) -> int:
            self._check_generation(c, k)
            rows = c.execute(
                "SELECT s.name, v.secret_id, v.version, "
                + _SEALED_COLUMNS
                + " FROM versions v JOIN secrets s ON s.id = v.secret_id"
            ).fetchall()
            updates = []
            for name, secret_id, version, *sealed_row in rows:
                sealed = _sealed(sealed_row)
                try:
                    value = crypto.open_sealed(
                        k.root, self._store_id, secret_id, int(version), sealed
                    )
                    fresh = crypto.rewrap(
                        k.root, new.root, self._store_id, secret_id, int(version), sealed
                    )
                except crypto.AuthenticationFailed:
                    raise _integrity_error(name, secret_id, int(version)) from None
                updates.append(
                    (
                        fresh.dek_nonce,
                        fresh.dek_wrapped,
                        crypto.value_digest(new.digest_key, value),
                        secret_id,
                        version,
                    )
                )
                del value
            c.executemany(
                "UPDATE versions SET dek_nonce = ?, dek_wrapped = ?, digest = ?"
                " WHERE secret_id = ? AND version = ?",
                updates,
            )
            self._write_slot(c, new_kek, new_root_key, new.generation)
            self._audit(
                c,
                "rotate-key",
                self._store_id,
                f"unlock={new_kek.method} generation={new.generation} versions={len(updates)}",
            )
            return len(updates)

        try:
            count = dbm.write(self._db, txn)
        except BaseException:
            if new_kek is not k.kek:
                keys.discard_pending(new_kek)
            raise
        keys.finish_pending(new_kek)
        self._keys = new
        return KeyChange(
            method=new_kek.method,
            key_file=new_kek.key_file,
            generation=new.generation,
            versions_rewrapped=count,
            generated_key=new_kek.generated_key,
            old_key_file=self._old_key_file(k.kek, new_kek),
        )

    @staticmethod
    def _old_key_file(old: Kek, new: Kek) -> Path | None:
        if old.method == "keyfile" and old.key_file is not None and old.key_file != new.key_file:
            return old.key_file
        return None

    def _write_slot(self, c: sqlite3.Connection, kek: Kek, root_key: bytes, gen: int) -> None:
        nonce, wrapped = crypto.wrap_key(kek.key, root_key, crypto.root_aad(self._store_id))
        c.execute(
            "UPDATE keyslot SET method = ?, kdf = ?, key_file = ?, nonce = ?, wrapped = ?,"
            " generation = ?, changed_ns = ? WHERE id = 1",
            (
                kek.method,
                json.dumps(kek.kdf) if kek.kdf else None,
                str(kek.key_file) if kek.key_file else None,
                nonce,
                wrapped,
                gen,
                time.time_ns(),
            ),
        )

    def change_unlock(self, new: Unlock) -> KeyChange:
        """Protect the same root key with another method; the data is not touched.

        Switching to an environment key with neither ``EnvKeyUnlock(key=...)`` nor
        ``COMPOSESECRETS_KEY`` generates one, returned in :attr:`KeyChange.generated_key`.
        A key file that is missing is created (0600, with a notice); an existing one is reused.
        """
        if isinstance(new, AutoUnlock):
            raise InputError("choose a key file, an environment key or a passphrase")
        k = self._refresh()
        new_kek = keys.new_kek(new, self._environ, purpose="change")

        def txn(c: sqlite3.Connection) -> None:
            self._check_generation(c, k)
            self._write_slot(c, new_kek, k.root_key, k.generation)
            self._audit(
                c, "change-unlock", self._store_id, f"from={k.kek.method} to={new_kek.method}"
            )

        dbm.write(self._db, txn)
        self._keys = self._make_keys(new_kek, k.root_key, k.generation)
        return KeyChange(
            method=new_kek.method,
            key_file=new_kek.key_file,
            generation=k.generation,
            versions_rewrapped=0,
            generated_key=new_kek.generated_key,
            old_key_file=self._old_key_file(k.kek, new_kek),
        )

    def audit(
        self,
        *,
        action: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[AuditEntry]:
        """Audit entries, oldest first (``limit`` keeps the newest N). Needs no key."""
        sql = "SELECT seq, at_ns, who, action, target, detail FROM audit WHERE 1 = 1"
        args: builtins.list[Any] = []
        if action is not None:
            sql += " AND action = ?"
            args.append(action)
        if target is not None:
            sql += " AND target = ?"
            args.append(target)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        rows = dbm.retrying(self._db, lambda c: c.execute(sql, args).fetchall())
        return [
            AuditEntry(int(r[0]), from_ns(int(r[1])), r[2], r[3], r[4], r[5])
            for r in reversed(rows)
        ]
