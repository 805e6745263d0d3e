"""Sealed transactions, rollback detection, ``verify`` and ``audit --verify``.

:class:`Guard` runs every keyed read and write of an open store: it authenticates the store's
state (:mod:`.sealing`) against the high-water mark (:mod:`.highwater`) before the work, and a
write ends by chaining its audit rows and bumping the counter, recorded outside the database
once committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import IntegrityError, RollbackError, StoreReadOnlyError
from . import audit, crypto, sealing
from . import db as dbm
from .highwater import HighWater, Mark
from .keyslot import KeyRing, Keys, check_current

if TYPE_CHECKING:
    from .reports import VerifyFailure, VerifyReport

T = TypeVar("T")

_VERSIONS = (
    "SELECT s.id, s.name, v.version, v.size, v.digest,"
    " v.dek_nonce, v.dek_wrapped, v.nonce, v.ciphertext"
    " FROM versions v JOIN secrets s ON s.id = v.secret_id ORDER BY s.name, v.version"
)
_MISSING_CURRENT = (
    "SELECT id, name, current FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM"
    " versions v WHERE v.secret_id = s.id AND v.version = s.current)"
)
_SECRET_ROWS = "SELECT id, name, labels, current, mac FROM secrets ORDER BY name"

Notice = Callable[[str], None]


def check_open(conn: sqlite3.Connection, highwater: HighWater, store_id: str | None) -> None:
    """Key-less check when a store is opened: refuse a database that is older than, or not,
    the store last seen in this directory. ``store_id`` is None for an empty database."""
    mark = highwater.read()
    if mark is None:
        return
    if store_id is None or store_id != mark.store_id:
        raise RollbackError(
            f"the store database was emptied or replaced: store {mark.store_id} was last seen"
            f" here at state {mark.counter}, but the database "
            + ("is empty" if store_id is None else f"holds store {store_id}"),
            hint="restore the store from a backup; if you replaced or deleted it on purpose,"
            " run `composesecrets store accept-restore`",
        )
    counter = dbm.retrying(conn, sealing.raw_counter)
    if counter < mark.counter:
        raise sealing.rollback_error(counter, mark.counter)


class Guard:
    """Keyed, authenticated access to one open store."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        keyring: KeyRing,
        highwater: HighWater,
        notice: Notice,
    ) -> None:
        self._connect = connect
        self.keyring = keyring
        self.highwater = highwater
        self.notice = notice
        self._mac: tuple[Keys, bytes] | None = None

    @property
    def store_id(self) -> str:
        return self.keyring.store_id

    def mac_key(self, k: Keys) -> bytes:
        """The metadata MAC key of ``k`` (derived once per generation)."""
        if self._mac is None or self._mac[0] is not k:
            self._mac = (k, sealing.mac_key(k, self.store_id))
        return self._mac[1]

    def floor(self) -> int:
        """The high-water mark (read before a transaction begins)."""
        mark: Mark | None = self.highwater.read()
        if mark is None:
            return 0
        if mark.store_id != self.store_id:
            check_open(self._connect(), self.highwater, self.store_id)
        return mark.counter

    def write(self, fn: Callable[[sqlite3.Connection, Keys], T]) -> T:
        """Run ``fn`` in a write transaction on an authenticated state, then seal it."""

        def op(k: Keys) -> T:
            floor, key = self.floor(), self.mac_key(k)

            def txn(c: sqlite3.Connection) -> tuple[T, int]:
                check_current(c, k)
                counter = sealing.check_state(c, key, self.store_id, floor)
                result = fn(c, k)
                return result, sealing.seal(c, key, self.store_id, counter)

            result, counter = dbm.write(self._connect(), txn)
            self.record(counter)
            return result

        return self.keyring.with_keys(op)

    def record(self, counter: int) -> None:
        """Raise the high-water mark after a commit; a failure is reported, not fatal (the
        commit happened; the mark then lags, which weakens, never breaks, the check)."""
        try:
            self.highwater.raise_to(self.store_id, counter)
        except OSError as exc:
            self.notice(
                f"warning: could not record the store's high-water mark in"
                f" {self.highwater.path}: {exc.strerror}"
            )

    def read(self, fn: Callable[[sqlite3.Connection, Keys], T]) -> T:
        """Run ``fn`` in a read transaction on an authenticated state (a store that was never
        sealed, new or upgraded from schema 1, is sealed first)."""

        def op(k: Keys) -> tuple[bool, T | None]:
            floor, key = self.floor(), self.mac_key(k)

            def txn(c: sqlite3.Connection) -> tuple[bool, T | None]:
                check_current(c, k)
                if sealing.check_state(c, key, self.store_id, floor) == 0:
                    return False, None
                return True, fn(c, k)

            return dbm.read(self._connect(), txn)

        done, result = self.keyring.with_keys(op)
        if not done:
            self.write(lambda _c, _k: None)
            done, result = self.keyring.with_keys(op)
        return result  # type: ignore[return-value]

    def note(self, action: str, target: str, detail: str = "") -> None:
        """Append an audit entry after a read; a store that cannot be written is reported
        through ``notice``, never fatal to the read."""
        try:
            self.write(lambda c, _k: audit.append(c, action, target, detail))
        except StoreReadOnlyError as exc:
            self.notice(f"warning: audit entry not recorded ({action} {target}): {exc.message}")

    def accept_restore(self) -> int:
        """Record the store as it is now as the newest state (after restoring a backup on
        purpose). The state and every row must still authenticate. Returns the counter."""

        def txn(c: sqlite3.Connection, k: Keys) -> int:
            key = self.mac_key(k)
            counter = sealing.check_state(c, key, self.store_id, 0)
            for row in c.execute(_SECRET_ROWS):
                if counter:
                    sealing.check_row(row, key, self.store_id)
            return counter

        def op(k: Keys) -> int:
            return dbm.read(self._connect(), lambda c: txn(c, k))

        counter = self.keyring.with_keys(op)
        self.highwater.reset(self.store_id, counter)
        return counter

    def audit_failures(self) -> list[str]:
        """Each audit row that was edited or follows a removed one; a damaged state too."""

        def txn(c: sqlite3.Connection, k: Keys) -> list[str]:
            found = sealing.audit_failures(c, self.mac_key(k), self.store_id)
            return [reason for _, reason in found]

        return self.read(txn)


def verify(guard: Guard, key_exists: bool) -> VerifyReport:
    """Authenticate the state (counter, key slot, audit head) and every secret row, and open
    every stored version; list each that fails (never raises on a bad row). The audit chain
    itself is walked by :meth:`Guard.audit_failures` (``store audit --verify``).

    Raises :class:`StoreLockedError` when the store cannot be unlocked,
    :class:`IntegrityError` when it is empty although a key (or high-water mark) exists, and
    :class:`RollbackError` when it is older than a state already committed.
    """
    from .reports import VerifyFailure, VerifyReport

    keyring = guard.keyring
    if not keyring.unlocked and keyring.read_slot() is None:
        if key_exists or guard.highwater.read() is not None:
            raise IntegrityError(
                "the store database is empty or uninitialised, but a key for it exists",
                hint="restore the store from a backup; if you replaced it on purpose, run"
                " `composesecrets store accept-restore`",
            )
        return VerifyReport(0)  # nothing was ever written; do not create a key for it

    Snapshot = tuple[Keys, list[sqlite3.Row], list[sqlite3.Row], list[sqlite3.Row]]

    def snapshot(c: sqlite3.Connection, k: Keys) -> Snapshot:
        return (
            k,
            c.execute(_VERSIONS).fetchall(),
            c.execute(_MISSING_CURRENT).fetchall(),
            c.execute(_SECRET_ROWS).fetchall(),
        )

    k, rows, missing, secrets = guard.read(snapshot)
    key = guard.mac_key(k)
    failures: list[VerifyFailure] = []
    for row in secrets:
        reason = sealing.row_failure(row, key, guard.store_id)
        if reason is not None:
            failures.append(
                VerifyFailure(row["id"], str(row["name"]), _int(row["current"]), reason, "secret")
            )
    failures.extend(_check_versions(rows, k, guard.store_id))
    failures.extend(
        VerifyFailure(r["id"], r["name"], int(r["current"]), "the current version is missing")
        for r in missing
    )
    report = VerifyReport(len(rows), tuple(failures))
    detail = f"checked={report.checked} failed={len(report.failures)}"
    guard.note("verify", guard.store_id, detail)
    return report


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


def _check_versions(rows: list[sqlite3.Row], k: Keys, store_id: str) -> list[VerifyFailure]:
    from .reports import VerifyFailure

    failures: list[VerifyFailure] = []
    for row in rows:
        secret_id, name, version = row["id"], row["name"], int(row["version"])
        try:
            sealed = crypto.SealedVersion.from_row(row)
        except (TypeError, ValueError):
            failures.append(
                VerifyFailure(secret_id, name, version, "its stored ciphertext is not binary data")
            )
            continue
        try:
            value = crypto.open_sealed(k.root, store_id, secret_id, version, sealed)
        except crypto.AuthenticationFailed as exc:
            failures.append(VerifyFailure(secret_id, name, version, str(exc)))
            continue
        reason = None
        if len(value) != int(row["size"]):
            reason = "recorded size does not match"
        elif not isinstance(row["digest"], bytes) or not crypto.digest_equal(
            crypto.value_digest(k.digest_key, value), bytes(row["digest"])
        ):
            reason = "recorded digest does not match"
        del value
        if reason:
            failures.append(VerifyFailure(secret_id, name, version, reason))
    return failures
