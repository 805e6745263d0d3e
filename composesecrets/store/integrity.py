"""``verify``: every stored version must open and match its recorded size and keyed digest."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from . import audit, crypto
from . import db as dbm
from .keyslot import KeyRing, Keys, check_current
from .records import VerifyFailure, VerifyReport

_VERSIONS = (
    "SELECT s.id, s.name, v.version, v.size, v.digest,"
    " v.dek_nonce, v.dek_wrapped, v.nonce, v.ciphertext"
    " FROM versions v JOIN secrets s ON s.id = v.secret_id ORDER BY s.name, v.version"
)
_MISSING_CURRENT = (
    "SELECT id, name, current FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM"
    " versions v WHERE v.secret_id = s.id AND v.version = s.current)"
)


def verify(connect: Callable[[], sqlite3.Connection], keyring: KeyRing) -> VerifyReport:
    """Open every stored version; list each that fails (never raises on a bad row).

    Raises only :class:`StoreLockedError` when the store cannot be unlocked at all.
    """
    if not keyring.unlocked and keyring.read_slot() is None:
        return VerifyReport(0)  # nothing was ever written; do not create a key for it

    def snapshot(c: sqlite3.Connection, k: Keys) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        check_current(c, k)
        return c.execute(_VERSIONS).fetchall(), c.execute(_MISSING_CURRENT).fetchall()

    def op(k: Keys) -> VerifyReport:
        rows, missing = dbm.read(connect(), lambda c: snapshot(c, k))
        failures: list[VerifyFailure] = []
        for row in rows:
            secret_id, name, version = row["id"], row["name"], int(row["version"])
            try:
                value = crypto.open_sealed(
                    k.root, keyring.store_id, secret_id, version, crypto.SealedVersion.from_row(row)
                )
            except crypto.AuthenticationFailed as exc:
                failures.append(VerifyFailure(secret_id, name, version, str(exc)))
                continue
            reason = None
            if len(value) != int(row["size"]):
                reason = "recorded size does not match"
            elif not crypto.digest_equal(
                crypto.value_digest(k.digest_key, value), bytes(row["digest"])
            ):
                reason = "recorded digest does not match"
            del value
            if reason:
                failures.append(VerifyFailure(secret_id, name, version, reason))
        failures.extend(
            VerifyFailure(r["id"], r["name"], int(r["current"]), "the current version is missing")
            for r in missing
        )
        return VerifyReport(len(rows), tuple(failures))

    report = keyring.with_keys(op)
    detail = f"checked={report.checked} failed={len(report.failures)}"
    dbm.write(connect(), lambda c: audit.append(c, "verify", keyring.store_id, detail))
    return report
