"""The key slot: the root key wrapped under the unlock method's key (KEK), one row per store.

:class:`KeyRing` unlocks it once per open store (creating it on first need), notices when
another process rotated the key meanwhile, and rotates the root key (``rotate_key``) or the
method that protects it (``change_unlock``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..errors import ConflictError, InputError, StoreLockedError
from . import audit, crypto, keyfiles, keys, paths, pins, sealing
from . import db as dbm
from .keys import AutoUnlock, EnvKeyUnlock, KeyFileUnlock, Unlock

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from .kdf import Kek
    from .reports import KeyChange

T = TypeVar("T")


_SLOT_COLUMNS = "method, kdf, key_file, nonce, wrapped, generation"


class SlotRow(NamedTuple):
    """The ``keyslot`` row."""

    method: str
    kdf: dict[str, Any] | None
    key_file: str | None
    nonce: bytes
    wrapped: bytes
    generation: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SlotRow:
        return cls(
            method=row["method"],
            kdf=json.loads(row["kdf"]) if row["kdf"] else None,
            key_file=row["key_file"],
            nonce=bytes(row["nonce"]),
            wrapped=bytes(row["wrapped"]),
            generation=int(row["generation"]),
        )


@dataclass
class Keys:
    """The unlocked keys of one generation (held in memory only)."""

    kek: Kek
    root_key: bytes
    root: AESGCM
    digest_key: bytes
    generation: int


class StaleKeys(Exception):
    """Another process changed the root key since this store unlocked it."""


def _generation(c: sqlite3.Connection) -> int | None:
    row = c.execute("SELECT generation FROM keyslot").fetchone()
    return None if row is None else int(row["generation"])


def check_current(c: sqlite3.Connection, k: Keys) -> None:
    """Raise :class:`StaleKeys` (retried by :meth:`KeyRing.with_keys`) if ``k`` is outdated."""
    if _generation(c) != k.generation:
        raise StaleKeys()


def _check_generation(c: sqlite3.Connection, k: Keys) -> None:
    if _generation(c) != k.generation:
        raise ConflictError(
            "the store's key was changed by another process meanwhile",
            hint="run the command again",
        )


def _slot_values(kek: Kek, store_id: str, root_key: bytes) -> tuple[Any, ...]:
    nonce, wrapped = crypto.wrap_key(kek.key, root_key, crypto.root_aad(store_id))
    kdf = json.dumps(kek.kdf) if kek.kdf else None
    return (kek.method, kdf, str(kek.key_file) if kek.key_file else None, nonce, wrapped)


def _old_key_file(old: Kek, new: Kek) -> Path | None:
    if old.method == "keyfile" and old.key_file is not None and old.key_file != new.key_file:
        return old.key_file
    return None


class KeyRing:
    """Unlocks the store's key slot on first need and keeps the keys of this open store."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        store_id: str,
        directory: Path,
        unlock: Unlock,
        environ: Mapping[str, str],
    ) -> None:
        self._connect = connect
        self.store_id = store_id
        self._directory = directory
        self._unlock = unlock
        self._environ = environ
        self._keys: Keys | None = None

    @property
    def unlocked(self) -> bool:
        return self._keys is not None

    def forget(self) -> None:
        self._keys = None

    def read_slot(self) -> SlotRow | None:
        row = dbm.retrying(
            self._connect(),
            lambda c: c.execute(f"SELECT {_SLOT_COLUMNS} FROM keyslot").fetchone(),
        )
        return None if row is None else SlotRow.from_row(row)

    def keys(self) -> Keys:
        """The unlocked keys (initialising the slot on first use of a new store)."""
        if self._keys is not None:
            return self._keys
        slot = self.read_slot()
        if slot is None:
            kek = keys.new_kek(
                self._unlock, self._environ, purpose="init", store_id=self.store_id
            )
            pins.add(self._environ, self.store_id, _pair(kek))
            won = dbm.write(self._connect(), lambda c: self._init_slot(c, kek))
            if won is not None:
                self._keys = won
                return won
            slot = self.read_slot()
            if slot is None:  # pragma: no cover - the slot was just written by someone
                raise StoreLockedError("the store's key slot vanished")
        pinned = pins.check(self._environ, self.store_id, _slot_pair(slot))
        self._keys = self._open_slot(slot)
        if not pinned:
            pins.pin_on_first_use(self._environ, self.store_id, _slot_pair(slot))
        return self._keys

    def with_keys(self, op: Callable[[Keys], T]) -> T:
        """Run ``op`` with the unlocked keys, again with fresh keys if they went stale."""
        k = self.keys()
        for _ in range(5):
            try:
                return op(k)
            except StaleKeys:
                k = self._refresh()
        raise ConflictError(
            "the store's key kept changing while this command ran", hint="run it again"
        )

    def _make_keys(self, kek: Kek, root_key: bytes, generation: int) -> Keys:
        return Keys(
            kek=kek,
            root_key=root_key,
            root=crypto.aesgcm(root_key),
            digest_key=crypto.digest_key(root_key, self.store_id),
            generation=generation,
        )

    def _init_slot(self, c: sqlite3.Connection, kek: Kek) -> Keys | None:
        if c.execute("SELECT 1 FROM keyslot").fetchone() is not None:
            return None  # another process initialised the store first
        root_key = crypto.random_key()
        c.execute(
            "INSERT INTO keyslot (id, method, kdf, key_file, nonce, wrapped, generation,"
            " changed_ns) VALUES (1, ?, ?, ?, ?, ?, 1, ?)",
            (*_slot_values(kek, self.store_id, root_key), time.time_ns()),
        )
        audit.append(c, "init", self.store_id, f"unlock={kek.method}")
        return self._make_keys(kek, root_key, 1)

    def _write_slot(self, c: sqlite3.Connection, kek: Kek, root_key: bytes, gen: int) -> None:
        c.execute(
            "UPDATE keyslot SET method = ?, kdf = ?, key_file = ?, nonce = ?, wrapped = ?,"
            " generation = ?, changed_ns = ? WHERE id = 1",
            (*_slot_values(kek, self.store_id, root_key), gen, time.time_ns()),
        )

    def _open_slot(self, slot: SlotRow) -> Keys:
        kek = keys.kek_for_existing(
            self._unlock, slot.method, slot.kdf, slot.key_file, self._environ, self.store_id
        )
        aad = crypto.root_aad(self.store_id)
        try:
            root_key = crypto.unwrap_key(kek.key, slot.nonce, slot.wrapped, aad)
        except crypto.AuthenticationFailed:
            if kek.method != "keyfile" or kek.key_file is None:
                raise self._locked_error(kek) from None

            def opens(key: bytes) -> bool:
                try:
                    crypto.unwrap_key(key, slot.nonce, slot.wrapped, aad)
                except crypto.AuthenticationFailed:
                    return False
                return True

            found = keyfiles.find_key(
                kek.key_file, opens, keys.read_key_file, slot.generation - 1
            )
            if found is None:
                raise self._locked_error(kek) from None
            from .kdf import Kek

            kek = Kek(found[1], "keyfile", key_file=kek.key_file)
            root_key = crypto.unwrap_key(kek.key, slot.nonce, slot.wrapped, aad)
        return self._make_keys(kek, root_key, slot.generation)

    def _refresh(self) -> Keys:
        """Re-read the key slot after another process rotated the key or changed the method."""
        old, self._keys = self._keys, None
        slot = self.read_slot()
        if old is not None and slot is not None:
            pins.check(self._environ, self.store_id, _slot_pair(slot))
            try:  # the same KEK still works when only the root key changed (passphrase)
                root_key = crypto.unwrap_key(
                    old.kek.key, slot.nonce, slot.wrapped, crypto.root_aad(self.store_id)
                )
            except crypto.AuthenticationFailed:
                pass
            else:
                self._keys = self._make_keys(old.kek, root_key, slot.generation)
                return self._keys
        return self.keys()

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

    # ------------------------------------------------------------------ key changes

    def rotate_key(self, new_unlock: Unlock | None = None) -> KeyChange:
        """Make a new root key and re-wrap every data key in one transaction (see
        :meth:`Store.rotate_key`)."""
        if isinstance(new_unlock, AutoUnlock):
            raise InputError("choose a key file, an environment key or a passphrase")
        k = self._refresh()
        if new_unlock is None and k.kek.method == "passphrase":
            return self._rekey("rotate-key", lambda _k: _k.kek)
        target: Unlock
        if new_unlock is not None:
            target = new_unlock
        elif k.kek.method == "keyfile":
            path = k.kek.key_file
            if path is None or path == paths.legacy_key_file(self._environ):
                # The old shared default: this store moves to a key file of its own.
                path = paths.config_dir(self._environ) / f"{self.store_id}.key"
            target = KeyFileUnlock(path=path)
        else:
            target = EnvKeyUnlock()
        return self._rekey(
            "rotate-key",
            lambda _k: keys.new_kek(
                target, self._environ, purpose="rotate", store_id=self.store_id
            ),
            target,
        )

    def change_unlock(self, new: Unlock) -> KeyChange:
        """Protect the store with another method, under a new root key (see
        :meth:`Store.change_unlock`)."""
        if isinstance(new, AutoUnlock):
            raise InputError("choose a key file, an environment key or a passphrase")
        self._refresh()
        return self._rekey(
            "change-unlock",
            lambda _k: keys.new_kek(new, self._environ, purpose="change", store_id=self.store_id),
            new,
        )

    def _target_key_file(self, target: Unlock | None) -> Path | None:
        if isinstance(target, KeyFileUnlock):
            return keys.key_file_path(target, None, self._environ, self.store_id)
        return None

    def _rekey(
        self, action: str, make_kek: Callable[[Keys], Kek], target: Unlock | None = None
    ) -> KeyChange:
        """Wrap a new root key under the KEK ``make_kek`` gives and re-wrap every data key,
        in one transaction; a new key file is durable before the commit and the key it
        replaces is kept (:mod:`.keyfiles`)."""
        key_file = self._target_key_file(target)
        lock = keyfiles.locked(key_file) if key_file else contextlib.nullcontext()
        with lock:
            k = self._refresh()  # after the lock: another rotation may have just finished
            opens = self._opens_slot
            if key_file is not None:
                keyfiles.drop_stale_pending(
                    key_file, opens, keys.read_key_file, k.generation - 1
                )
            new_kek = make_kek(k)
            pending = (
                keyfiles.write_pending(key_file, keys.encode_key(new_kek.key))
                if key_file is not None and new_kek.fresh
                else None
            )
            kept = None
            try:
                pins.add(self._environ, self.store_id, _pair(new_kek))
                new = self._make_keys(new_kek, crypto.random_key(), k.generation + 1)
                count = dbm.write(self._connect(), lambda c: self._rekey_txn(c, action, k, new))
            except BaseException:
                keyfiles.discard(pending)
                raise
            if pending is not None and key_file is not None:
                kept = keyfiles.install(pending, key_file, k.generation)
                self._check_installed(key_file)
        from .reports import KeyChange

        self._keys = new
        return KeyChange(
            method=new_kek.method,
            key_file=new_kek.key_file,
            generation=new.generation,
            versions_rewrapped=count,
            old_key_file=_old_key_file(k.kek, new_kek),
            kept_key_file=kept,
        )

    def _rekey_txn(self, c: sqlite3.Connection, action: str, k: Keys, new: Keys) -> int:
        _check_generation(c, k)
        rows = c.execute(
            f"SELECT s.name, v.secret_id, v.version, {crypto.SealedVersion.COLUMNS}"
            " FROM versions v JOIN secrets s ON s.id = v.secret_id"
        ).fetchall()
        updates = []
        for row in rows:
            secret_id, version = row["secret_id"], int(row["version"])
            sealed = crypto.SealedVersion.from_row(row)
            try:
                value = crypto.open_sealed(k.root, self.store_id, secret_id, version, sealed)
                fresh = crypto.rewrap(k.root, new.root, self.store_id, secret_id, version, sealed)
            except crypto.AuthenticationFailed:
                raise crypto.integrity_error(row["name"], secret_id, version) from None
            digest = crypto.value_digest(new.digest_key, value)
            updates.append((fresh.dek_nonce, fresh.dek_wrapped, digest, secret_id, version))
            del value
        c.executemany(
            "UPDATE versions SET dek_nonce = ?, dek_wrapped = ?, digest = ?"
            " WHERE secret_id = ? AND version = ?",
            updates,
        )
        self._write_slot(c, new.kek, new.root_key, new.generation)
        if action == "change-unlock":
            detail = f"from={k.kek.method} to={new.kek.method} generation={new.generation}"
        else:
            detail = f"unlock={new.kek.method} generation={new.generation}"
        audit.append(c, action, self.store_id, f"{detail} versions={len(updates)}")
        # INTEGRITY HOOK (sealing.py): re-MAC all metadata under the new root key.
        sealing.reseal(c, self.store_id, k, new)
        return len(updates)

    def _opens_slot(self, key: bytes) -> bool:
        slot = self.read_slot()
        if slot is None:
            return False
        try:
            crypto.unwrap_key(key, slot.nonce, slot.wrapped, crypto.root_aad(self.store_id))
        except crypto.AuthenticationFailed:
            return False
        return True

    def _check_installed(self, key_file: Path) -> None:
        """The key file now in place must open the committed slot (the kept generation and
        the pin stay either way; this only reports a key file changed behind our back)."""
        if not self._opens_slot(keys.read_key_file(key_file)):
            raise StoreLockedError(
                f"the key file {key_file} changed during the rotation and does not open the"
                " store's new key slot",
                hint=f"look for the new key in {key_file.parent} (.{key_file.name}.*.pending)",
            )


def _pair(kek: Kek) -> pins.Pair:
    return kek.method, str(kek.key_file) if kek.method == "keyfile" and kek.key_file else None


def _slot_pair(slot: SlotRow) -> pins.Pair:
    return slot.method, slot.key_file if slot.method == "keyfile" else None
