"""Authenticated metadata: MACs over what the ciphertexts' AAD does not cover.

Under a subkey of the root key (HKDF, :func:`crypto.mac_key`):

* every ``secrets`` row (id, name, labels, current) carries a MAC in ``secrets.mac``;
* every audit row MACs its content and the previous row's MAC (a chain, ``audit.mac``);
* the *state* (``meta`` rows ``counter`` and ``state_mac``) MACs a monotonic counter, the key
  slot (method, KDF, key file, generation, wrapped root key) and the audit chain's head.

Every write transaction bumps the counter (:func:`seal`); :mod:`.highwater` keeps the highest
counter outside the database, so an older or emptied database is noticed.
Usage records, times and the ``versions`` bookkeeping columns (size, created) are not MACed;
a version's ciphertext is bound to its secret ID and number by its AAD, and its value to the
recorded keyed digest.
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from ..errors import IntegrityError, RollbackError
from . import crypto


class HasRootKey(Protocol):
    root_key: bytes


def mac_key(k: HasRootKey, store_id: str) -> bytes:
    return crypto.mac_key(k.root_key, store_id)


def secret_mac(
    key: bytes, store_id: str, secret_id: str, name: str, labels: str, current: int
) -> bytes:
    return crypto.mac(key, "secret", store_id, secret_id, name, labels, current)


def row_failure(row: sqlite3.Row, key: bytes, store_id: str) -> str | None:
    """Why a ``secrets`` row does not authenticate (None when it does)."""
    mac = row["mac"]
    if not isinstance(mac, bytes):
        return "its metadata carries no MAC (edited outside composesecrets)"
    if not isinstance(row["labels"], str) or not isinstance(row["name"], str):
        return "its name or labels are not text"
    try:
        current = int(row["current"])
    except (TypeError, ValueError):
        return "its current version is not a number"
    expected = secret_mac(key, store_id, row["id"], row["name"], row["labels"], current)
    if not crypto.digest_equal(expected, mac):
        return "its name, labels or current version were altered outside composesecrets"
    return None


def check_row(row: sqlite3.Row, key: bytes, store_id: str) -> None:
    """Raise :class:`IntegrityError` naming the secret when its row does not authenticate."""
    reason = row_failure(row, key, store_id)
    if reason is not None:
        raise IntegrityError(
            f"secret {row['name']!r} ({row['id']}) failed authentication: {reason}",
            hint="run `composesecrets store verify`; restore the store from a backup"
            " (see `store accept-restore`)",
        )


def _meta(c: sqlite3.Connection, key: str) -> str | None:
    row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row["value"])


def raw_counter(c: sqlite3.Connection) -> int:
    """The counter as stored (unauthenticated: for the key-less check at open); 0 if none."""
    value = _meta(c, "counter")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _state_mac(c: sqlite3.Connection, key: bytes, store_id: str, counter: int) -> bytes:
    slot = c.execute(
        "SELECT method, kdf, key_file, nonce, wrapped, generation FROM keyslot"
    ).fetchone()
    head = c.execute("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    slot_parts: list[str | bytes | int | None] = (
        [None]
        if slot is None
        else [
            slot["method"],
            slot["kdf"],
            slot["key_file"],
            bytes(slot["nonce"]),
            bytes(slot["wrapped"]),
            int(slot["generation"]),
        ]
    )
    head_parts: list[str | bytes | int | None] = (
        [None] if head is None else [int(head["seq"]), head["mac"]]
    )
    return crypto.mac(key, "state", store_id, counter, *slot_parts, *head_parts)


def check_state(c: sqlite3.Connection, key: bytes, store_id: str, floor: int) -> int:
    """Authenticate the state; return its counter (0: never sealed, a new or upgraded store).

    ``floor`` is the high-water mark read before this transaction began.
    """
    counter_text, stored = _meta(c, "counter"), _meta(c, "state_mac")
    if counter_text is None and stored is None:
        if floor > 0:
            raise rollback_error(0, floor)
        return 0
    try:
        counter = int(counter_text or "")
        ok = stored is not None and crypto.digest_equal(
            _state_mac(c, key, store_id, counter), bytes.fromhex(stored)
        )
    except ValueError:
        ok = False
    if not ok:
        raise IntegrityError(
            "the store's authenticated state (counter, key slot or audit log head) was altered"
            " outside composesecrets",
            hint="restore the store from a backup (see `composesecrets store accept-restore`)",
        )
    if counter < floor:
        raise rollback_error(counter, floor)
    return counter


def rollback_error(counter: int, floor: int) -> RollbackError:
    return RollbackError(
        f"the store is older than one already seen here: its state counter is {counter}, but"
        f" {floor} was committed before (an older copy was restored, the database was emptied,"
        " or committed writes were lost)",
        hint="if you restored a backup on purpose, run `composesecrets store accept-restore`;"
        " otherwise restore the newest copy of the store",
    )


def _audit_mac(key: bytes, store_id: str, row: sqlite3.Row, prev: bytes) -> bytes:
    return crypto.mac(
        key,
        "audit",
        store_id,
        int(row["seq"]),
        int(row["at_ns"]),
        row["who"],
        row["action"],
        row["target"],
        row["detail"],
        prev,
    )


_AUDIT_ROWS = "SELECT seq, at_ns, who, action, target, detail, mac FROM audit"


def audit_failures(c: sqlite3.Connection, key: bytes, store_id: str) -> list[tuple[int, str]]:
    """Walk the audit chain: (seq, reason) for each row edited, or following a removed row."""
    failures: list[tuple[int, str]] = []
    prev = b""
    for row in c.execute(_AUDIT_ROWS + " ORDER BY seq"):
        mac = row["mac"]
        try:
            expected = _audit_mac(key, store_id, row, prev)
        except (TypeError, ValueError, AttributeError):
            expected = b""
        if not isinstance(mac, bytes) or not crypto.digest_equal(expected, mac):
            failures.append(
                (
                    int(row["seq"]),
                    f"audit entry {row['seq']} was edited, or an entry before it was removed",
                )
            )
        prev = mac if isinstance(mac, bytes) else b""
    return failures


def _chain_new(c: sqlite3.Connection, key: bytes, store_id: str, *, everything: bool) -> None:
    """MAC the audit rows appended by this transaction (every row with ``everything``)."""
    prev = b""
    where = ""
    if not everything:
        head = c.execute(
            "SELECT seq, mac FROM audit WHERE mac IS NOT NULL ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if head is not None:
            prev, where = bytes(head["mac"]), f" WHERE seq > {int(head['seq'])}"
    updates = []
    for row in c.execute(_AUDIT_ROWS + where + " ORDER BY seq").fetchall():
        prev = _audit_mac(key, store_id, row, prev)
        updates.append((prev, int(row["seq"])))
    c.executemany("UPDATE audit SET mac = ? WHERE seq = ?", updates)


def _remac_secrets(c: sqlite3.Connection, old: bytes | None, new: bytes, store_id: str) -> None:
    rows = c.execute("SELECT id, name, labels, current, mac FROM secrets").fetchall()
    if old is not None:
        for row in rows:
            check_row(row, old, store_id)
    c.executemany(
        "UPDATE secrets SET mac = ? WHERE id = ?",
        [
            (secret_mac(new, store_id, r["id"], r["name"], r["labels"], int(r["current"])), r["id"])
            for r in rows
        ],
    )


def _write_state(c: sqlite3.Connection, key: bytes, store_id: str, counter: int) -> None:
    c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('counter', ?)", (str(counter),))
    c.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('state_mac', ?)",
        (_state_mac(c, key, store_id, counter).hex(),),
    )


def seal(c: sqlite3.Connection, key: bytes, store_id: str, counter: int) -> int:
    """End of a write transaction: chain new audit rows, bump the counter, MAC the state.

    ``counter`` is what :func:`check_state` returned at the start; 0 seals a store for the
    first time (a new store, or one upgraded from schema 1: its rows are MACed as they are).
    Returns the new counter (record it with :meth:`HighWater.raise_to` after the commit).
    """
    if counter == 0:
        _remac_secrets(c, None, key, store_id)
    _chain_new(c, key, store_id, everything=counter == 0)
    _write_state(c, key, store_id, counter + 1)
    return counter + 1


#: Audit actions (prefixes) that key changes append in the transaction calling :func:`reseal`.
_KEY_CHANGE_ACTIONS = ("rotate-key", "change-unlock")


def reseal(c: sqlite3.Connection, store_id: str, old: HasRootKey, new: HasRootKey) -> int:
    """Inside ``rotate-key`` / ``change-unlock``, after the slot is rewritten: check the secret
    rows and audit chain under the old root key, then MAC everything again under the new one
    (the state was authenticated before the change, by :meth:`Store.rotate_key`).
    Returns the new counter."""
    old_key, new_key = mac_key(old, store_id), mac_key(new, store_id)
    sealed = _meta(c, "counter") is not None
    if sealed:
        pending = c.execute(
            "SELECT seq, action FROM audit WHERE mac IS NULL ORDER BY seq"
        ).fetchall()
        if any(not str(r["action"]).startswith(_KEY_CHANGE_ACTIONS) for r in pending):
            raise IntegrityError(
                f"audit entry {pending[0]['seq']} carries no MAC (added outside composesecrets)",
                hint="run `composesecrets store audit --verify`",
            )
        first_pending = int(pending[0]["seq"]) if pending else None
        bad = [
            reason
            for seq, reason in audit_failures(c, old_key, store_id)
            if first_pending is None or seq < first_pending
        ]
        if bad:
            raise IntegrityError(
                "the audit log failed authentication: " + bad[0],
                hint="run `composesecrets store audit --verify`",
            )
    _remac_secrets(c, old_key if sealed else None, new_key, store_id)
    c.execute("DROP TRIGGER IF EXISTS audit_no_update")
    _chain_new(c, new_key, store_id, everything=True)
    c.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN OLD.mac IS NOT NULL"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    value = raw_counter(c) + 1
    _write_state(c, new_key, store_id, value)
    return value
