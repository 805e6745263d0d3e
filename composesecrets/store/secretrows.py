"""Secrets and their versions: create, rotate, read, list, remove and import.

Everything that deploys, imports or changes a secret finds it by its exact name
(:func:`by_name`); only read-only interactive commands may also take an ID or a unique ID
prefix (:func:`lookup`), so a name can never reach an unrelated secret whose ID starts with it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from ..errors import ConflictError, InputError, IntegrityError, NotFoundError
from . import audit, crypto, ids, sealing
from . import db as dbm
from .filters import SecretFilter
from .integrity import Guard
from .keyslot import Keys
from .records import SecretInfo, from_ns
from .validation import check_labels, check_name, check_value, split_ref

if TYPE_CHECKING:
    from .reports import VersionInfo

_SECRET_COLUMNS = "id, name, labels, current, created_ns, updated_ns"


class SecretRow(NamedTuple):
    """A ``secrets`` row."""

    id: str
    name: str
    labels: dict[str, str]
    current: int
    created_ns: int
    updated_ns: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SecretRow:
        labels = row["labels"]
        try:
            parsed = json.loads(labels) if labels != "{}" else {}
            if not isinstance(parsed, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
            ):
                raise ValueError("not an object of strings")
            return cls(
                id=str(row["id"]),
                name=str(row["name"]),
                labels=parsed,
                current=int(row["current"]),
                created_ns=int(row["created_ns"]),
                updated_ns=int(row["updated_ns"]),
            )
        except (TypeError, ValueError):
            raise IntegrityError(
                f"secret {row['name']!r} ({row['id']}): its stored labels or numbers are not"
                " valid (the database was edited outside composesecrets)",
                hint="run `composesecrets store verify`; restore the store from a backup",
            ) from None

    def info(self) -> SecretInfo:
        return SecretInfo(
            id=self.id,
            name=self.name,
            version=self.current,
            labels=self.labels,
            created_at=from_ns(self.created_ns),
            updated_at=from_ns(self.updated_ns),
        )


_SELECT = f"SELECT {_SECRET_COLUMNS}, mac FROM secrets WHERE "


def _not_found(ref: str) -> NotFoundError:
    return NotFoundError(
        f"no such secret: {ref}", hint="list secrets with `composesecrets secret ls`"
    )


def by_name(c: sqlite3.Connection, name: str) -> SecretRow:
    """The secret called exactly ``name`` (never an ID or ID prefix): deploy, import, rotate,
    remove and usage records find secrets this way."""
    row = c.execute(_SELECT + "name = ?", (name,)).fetchone()
    if row is None:
        raise _not_found(name)
    return SecretRow.from_row(row)


def lookup(c: sqlite3.Connection, ref: str) -> SecretRow:
    """Exact ID, exact name, then unique ID prefix (as Docker does): read-only interactive use."""
    row = c.execute(_SELECT + "id = ?", (ref,)).fetchone()
    if row is None:
        row = c.execute(_SELECT + "name = ?", (ref,)).fetchone()
    if row is None and ids.could_be_id_prefix(ref):
        rows = c.execute(_SELECT + "id >= ? AND id < ? LIMIT 2", (ref, ref + "{")).fetchall()
        if len(rows) > 1:
            raise InputError(
                f"secret ID prefix {ref!r} is ambiguous", hint="give more characters of the ID"
            )
        row = rows[0] if rows else None
    if row is None:
        raise _not_found(ref)
    return SecretRow.from_row(row)


def versions(
    c: sqlite3.Connection, info: SecretInfo, wanted: int | None
) -> tuple[VersionInfo, ...]:
    """The retained versions of a secret (only ``wanted`` when given)."""
    from .reports import VersionInfo

    rows = c.execute(
        "SELECT version, size, created_ns, digest FROM versions WHERE secret_id = ?"
        " ORDER BY version",
        (info.id,),
    ).fetchall()
    found = tuple(
        VersionInfo(
            int(r["version"]),
            int(r["size"]),
            from_ns(int(r["created_ns"])),
            "hmac-sha256:" + bytes(r["digest"]).hex(),
        )
        for r in rows
        if wanted is None or int(r["version"]) == wanted
    )
    if wanted is not None and not found:
        raise NotFoundError(f"secret {info.name!r} has no stored version {wanted}")
    return found


def prune(c: sqlite3.Connection, retention: int, secret_id: str | None = None) -> None:
    """Drop versions older than the retention window that no usage record references."""
    unused = (
        " AND NOT EXISTS (SELECT 1 FROM usages u WHERE u.secret_id = versions.secret_id"
        " AND u.version = versions.version)"
    )
    if secret_id is not None:
        c.execute(
            "DELETE FROM versions WHERE secret_id = ? AND version <= "
            "(SELECT current FROM secrets WHERE id = ?) - ?" + unused,
            (secret_id, secret_id, retention),
        )
    else:
        c.execute(
            "DELETE FROM versions WHERE version <= "
            "(SELECT current FROM secrets s WHERE s.id = versions.secret_id) - ?" + unused,
            (retention,),
        )


def _version_row(
    k: Keys, store_id: str, secret_id: str, version: int, value: bytes, now: int
) -> tuple[object, ...]:
    sealed = crypto.seal(k.root, store_id, secret_id, version, value)
    digest = crypto.value_digest(k.digest_key, value)
    size = len(value)
    return (secret_id, version, size, digest, *_sealed_values(sealed), now)


def _sealed_values(sealed: crypto.SealedVersion) -> tuple[bytes, bytes, bytes, bytes]:
    return sealed.dek_nonce, sealed.dek_wrapped, sealed.nonce, sealed.ciphertext


_INSERT_VERSION = (
    "INSERT INTO versions (secret_id, version, size, digest, dek_nonce, dek_wrapped, nonce,"
    " ciphertext, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SECRET = (
    "INSERT INTO secrets (id, name, labels, current, created_ns, updated_ns, mac)"
    " VALUES (?, ?, ?, 1, ?, ?, ?)"
)


def checked_by_name(c: sqlite3.Connection, name: str, key: bytes, store_id: str) -> SecretRow:
    """:func:`by_name`, with the row's MAC checked (:class:`IntegrityError` naming it)."""
    row = c.execute(_SELECT + "name = ?", (name,)).fetchone()
    if row is None:
        raise _not_found(name)
    sealing.check_row(row, key, store_id)
    return SecretRow.from_row(row)


def _no_version(ref: str) -> None:
    if "@" in ref:
        raise InputError(
            f"{ref!r} names a version; this operation works on whole secrets",
            hint="drop the @VERSION suffix",
        )


class SecretTable:
    """The secret operations of one open store (values need the :class:`KeyRing`)."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], guard: Guard, retention: int
    ) -> None:
        self._connect = connect
        self._guard = guard
        self._retention = retention

    def _mac(self, k: Keys, secret_id: str, name: str, labels: str, current: int) -> bytes:
        key = self._guard.mac_key(k)
        return sealing.secret_mac(key, self._guard.store_id, secret_id, name, labels, current)

    def create(self, name: str, value: bytes, labels: Mapping[str, str] | None) -> SecretInfo:
        check_name(name)
        check_value(value, name=name)
        clean = check_labels(labels)
        store_id = self._guard.store_id

        def txn(c: sqlite3.Connection, k: Keys) -> SecretInfo:
            if c.execute("SELECT 1 FROM secrets WHERE name = ?", (name,)).fetchone():
                raise ConflictError(
                    f"secret {name} already exists",
                    hint=f"to store a new value, run `composesecrets secret rotate {name} FILE`",
                )
            secret_id, now = ids.new_id(), time.time_ns()
            text = json.dumps(clean, sort_keys=True)
            mac = self._mac(k, secret_id, name, text, 1)
            c.execute(_INSERT_SECRET, (secret_id, name, text, now, now, mac))
            c.execute(_INSERT_VERSION, _version_row(k, store_id, secret_id, 1, bytes(value), now))
            audit.append(c, "create", name, f"id={secret_id} version=1 size={len(value)}")
            return SecretInfo(secret_id, name, 1, clean, from_ns(now), from_ns(now))

        return self._guard.write(txn)

    def rotate(self, name: str, value: bytes) -> SecretInfo:
        _no_version(name)
        check_value(value, name=name)
        store_id = self._guard.store_id

        def txn(c: sqlite3.Connection, k: Keys) -> SecretInfo:
            row = checked_by_name(c, name, self._guard.mac_key(k), store_id)
            old = row.info()
            version, now = old.version + 1, time.time_ns()
            c.execute(
                _INSERT_VERSION, _version_row(k, store_id, old.id, version, bytes(value), now)
            )
            labels = json.dumps(row.labels, sort_keys=True)
            c.execute(
                "UPDATE secrets SET current = ?, updated_ns = ?, labels = ?, mac = ? WHERE id = ?",
                (version, now, labels, self._mac(k, old.id, old.name, labels, version), old.id),
            )
            prune(c, self._retention, old.id)
            audit.append(c, "rotate", old.name, f"id={old.id} version={version} size={len(value)}")
            return SecretInfo(old.id, old.name, version, old.labels, old.created_at, from_ns(now))

        return self._guard.write(txn)

    def drop_version(self, name: str, version: int) -> SecretInfo:
        """Undo a :meth:`rotate` that made ``version``: delete it (it must be the current one
        and used by no stack) and make the newest remaining version current again."""
        store_id = self._guard.store_id

        def txn(c: sqlite3.Connection, k: Keys) -> SecretInfo:
            row = checked_by_name(c, name, self._guard.mac_key(k), store_id)
            old = row.info()
            if old.version != version or version < 2:
                raise ConflictError(
                    f"secret {old.name!r}: version {version} is not the newest of several"
                )
            if c.execute(
                "SELECT 1 FROM usages WHERE secret_id = ? AND version = ?", (old.id, version)
            ).fetchone():
                raise ConflictError(f"secret {old.name!r}: version {version} is in use")
            previous = c.execute(
                "SELECT MAX(version) FROM versions WHERE secret_id = ? AND version < ?",
                (old.id, version),
            ).fetchone()[0]
            if previous is None:
                raise ConflictError(f"secret {old.name!r} keeps no version before {version}")
            now = time.time_ns()
            c.execute("DELETE FROM versions WHERE secret_id = ? AND version = ?", (old.id, version))
            labels = json.dumps(row.labels, sort_keys=True)
            c.execute(
                "UPDATE secrets SET current = ?, updated_ns = ?, labels = ?, mac = ? WHERE id = ?",
                (previous, now, labels, self._mac(k, old.id, old.name, labels, int(previous)),
                 old.id),
            )  # fmt: skip
            audit.append(c, "drop-version", old.name, f"id={old.id} version={version} "
                         f"current={previous}")  # fmt: skip
            return SecretInfo(old.id, old.name, int(previous), old.labels, old.created_at,
                              from_ns(now))  # fmt: skip

        return self._guard.write(txn)

    def get(self, name: str, version: int | None, *, audited: bool, reason: str) -> bytes:
        base, wanted = split_ref(name, version)
        store_id = self._guard.store_id

        def read(c: sqlite3.Connection, k: Keys) -> tuple[SecretInfo, int, bytes]:
            info = checked_by_name(c, base, self._guard.mac_key(k), store_id).info()
            number = wanted if wanted is not None else info.version
            row = c.execute(
                f"SELECT {crypto.SealedVersion.COLUMNS} FROM versions"
                " WHERE secret_id = ? AND version = ?",
                (info.id, number),
            ).fetchone()
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
                sealed = crypto.SealedVersion.from_row(row)
                value = crypto.open_sealed(k.root, store_id, info.id, number, sealed)
            except (crypto.AuthenticationFailed, TypeError, ValueError):
                raise crypto.integrity_error(info.name, info.id, number) from None
            return info, number, value

        info, number, value = self._guard.read(read)
        if audited:
            self._guard.note("read", f"{info.name}@{number}", reason)
        return value

    def matches(self, name: str, value: bytes, version: int | None) -> tuple[bool, int]:
        """Whether ``value`` equals the stored version (current by default), compared by keyed
        digest; returns (equal, version). Audited as ``compare`` (one bit about the value)."""
        base, wanted = split_ref(name, version)
        store_id = self._guard.store_id

        def read(c: sqlite3.Connection, k: Keys) -> tuple[bool, SecretInfo, int]:
            info = checked_by_name(c, base, self._guard.mac_key(k), store_id).info()
            number = wanted if wanted is not None else info.version
            row = c.execute(
                "SELECT digest FROM versions WHERE secret_id = ? AND version = ?",
                (info.id, number),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"secret {info.name!r} has no stored version {number}")
            mine = crypto.value_digest(k.digest_key, value)
            stored = row["digest"]
            return isinstance(stored, bytes) and crypto.digest_equal(mine, stored), info, number

        equal, info, number = self._guard.read(read)
        self._guard.note("compare", f"{info.name}@{number}", "same" if equal else "different")
        return equal, number

    def list_secrets(self, filters: SecretFilter | Iterable[str] | None) -> list[SecretInfo]:
        if filters is not None and not isinstance(filters, SecretFilter):
            filters = SecretFilter.parse(filters)
        rows = dbm.retrying(
            self._connect(),
            lambda c: c.execute(f"SELECT {_SECRET_COLUMNS} FROM secrets ORDER BY name").fetchall(),
        )
        infos = [SecretRow.from_row(r).info() for r in rows]
        if filters is None:
            return infos
        return [i for i in infos if filters.matches(i)]

    def remove_many(self, names: Iterable[str]) -> list[SecretInfo]:
        refs = list(names)
        for ref in refs:
            _no_version(ref)

        def txn(c: sqlite3.Connection, _k: Keys) -> list[SecretInfo]:
            return [self._remove_in(c, ref) for ref in refs]

        return self._guard.write(txn)

    @staticmethod
    def _remove_in(c: sqlite3.Connection, name: str) -> SecretInfo:
        info = by_name(c, name).info()
        users = c.execute(
            "SELECT stack, service FROM usages WHERE secret_id = ? ORDER BY stack, service",
            (info.id,),
        ).fetchall()
        if users:
            by_stack: dict[str, list[str]] = {}
            for user in users:
                services = by_stack.setdefault(user["stack"], [])
                if user["service"] not in services:
                    services.append(user["service"])
            parts = [f"stack {s!r} (services: {', '.join(v)})" for s, v in by_stack.items()]
            raise ConflictError(
                f"secret {info.name!r} is in use by " + "; ".join(parts),
                hint="remove the stack first, or deploy it without this secret",
            )
        c.execute("DELETE FROM versions WHERE secret_id = ?", (info.id,))
        c.execute("DELETE FROM secrets WHERE id = ?", (info.id,))
        audit.append(c, "remove", info.name, f"id={info.id}")
        return info

    def import_many(
        self, items: Iterable[tuple[str, bytes, Mapping[str, str] | None]]
    ) -> list[SecretInfo]:
        batch: list[tuple[str, bytes, dict[str, str]]] = []
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
        store_id = self._guard.store_id

        def txn(c: sqlite3.Connection, k: Keys) -> list[SecretInfo]:
            existing = {r["name"] for r in c.execute("SELECT name FROM secrets")} & seen
            if existing:
                shown = ", ".join(sorted(existing)[:5])
                raise ConflictError(
                    f"{len(existing)} secret(s) already exist: {shown}",
                    hint="import only new names; change existing ones with `secret rotate`",
                )
            now = time.time_ns()
            out: list[SecretInfo] = []
            secret_rows, version_rows, entries = [], [], []
            for name, value, labels in batch:
                secret_id = ids.new_id()
                text = json.dumps(labels, sort_keys=True)
                mac = self._mac(k, secret_id, name, text, 1)
                secret_rows.append((secret_id, name, text, now, now, mac))
                version_rows.append(_version_row(k, store_id, secret_id, 1, value, now))
                entries.append(
                    ("create", name, f"id={secret_id} version=1 size={len(value)} import")
                )
                out.append(SecretInfo(secret_id, name, 1, labels, from_ns(now), from_ns(now)))
            c.executemany(_INSERT_SECRET, secret_rows)
            c.executemany(_INSERT_VERSION, version_rows)
            audit.append_many(c, now, entries)
            return out

        return self._guard.write(txn)
