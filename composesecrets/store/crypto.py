"""Envelope encryption: AES-256-GCM data keys wrapped by the root key, bound to their row.

Every ciphertext carries associated data naming the store, the secret and the version, so a
ciphertext or wrapped key copied onto another row, or into another store, fails to open.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography is imported on first use: listing needs no key (start-up)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError

KEY_BYTES = 32
NONCE_BYTES = 12
_PREFIX = b"composesecrets/v1"


class AuthenticationFailed(Exception):
    """A ciphertext or wrapped key did not authenticate (tampered, copied or wrong key)."""


@dataclass(frozen=True)
class SealedVersion:
    """What is stored for one secret version; nothing here reveals the value."""

    dek_nonce: bytes
    dek_wrapped: bytes
    nonce: bytes
    ciphertext: bytes

    #: The ``versions`` columns that hold it (select them to use :meth:`from_row`).
    COLUMNS = "dek_nonce, dek_wrapped, nonce, ciphertext"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SealedVersion:
        return cls(
            bytes(row["dek_nonce"]),
            bytes(row["dek_wrapped"]),
            bytes(row["nonce"]),
            bytes(row["ciphertext"]),
        )


def integrity_error(name: str, secret_id: str, version: int) -> IntegrityError:
    """The error for a stored version that fails authentication."""
    return IntegrityError(
        f"secret {name!r} ({secret_id}) version {version} failed authentication: its stored"
        " ciphertext, nonce or wrapped data key was altered or copied from elsewhere",
        hint="run `composesecrets store verify`; restore the store from a backup, or replace"
        " the value with `composesecrets secret rotate`",
    )


def random_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _aad(purpose: bytes, *parts: str) -> bytes:
    return b"\x00".join([_PREFIX, purpose, *(p.encode("ascii") for p in parts)])


def root_aad(store_id: str) -> bytes:
    return _aad(b"root", store_id)


def _dek_aad(store_id: str, secret_id: str, version: int) -> bytes:
    return _aad(b"dek", store_id, secret_id, str(version))


def _value_aad(store_id: str, secret_id: str, version: int) -> bytes:
    return _aad(b"value", store_id, secret_id, str(version))


def aesgcm(key: bytes) -> AESGCM:
    """AES-256-GCM under ``key`` (cryptography is imported here, on first use)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _hkdf(root_key: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root_key)


def wrap_key(kek: bytes, key: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``key`` under ``kek``; returns ``(nonce, wrapped)``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, aesgcm(kek).encrypt(nonce, key, aad)


def unwrap_key(kek: bytes, nonce: bytes, wrapped: bytes, aad: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag

    try:
        key = aesgcm(kek).decrypt(nonce, wrapped, aad)
    except (InvalidTag, ValueError) as exc:
        raise AuthenticationFailed("key did not authenticate") from exc
    if len(key) != KEY_BYTES:
        raise AuthenticationFailed("unwrapped key has the wrong length")
    return key


def seal(root: AESGCM, store_id: str, secret_id: str, version: int, value: bytes) -> SealedVersion:
    """Encrypt ``value`` under a fresh data key and wrap that key with the root key."""
    dek = os.urandom(KEY_BYTES)
    dek_nonce = os.urandom(NONCE_BYTES)
    dek_wrapped = root.encrypt(dek_nonce, dek, _dek_aad(store_id, secret_id, version))
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = aesgcm(dek).encrypt(nonce, value, _value_aad(store_id, secret_id, version))
    return SealedVersion(dek_nonce, dek_wrapped, nonce, ciphertext)


def _open_dek(
    root: AESGCM, store_id: str, secret_id: str, version: int, sealed: SealedVersion
) -> bytes:
    from cryptography.exceptions import InvalidTag

    try:
        dek = root.decrypt(
            sealed.dek_nonce, sealed.dek_wrapped, _dek_aad(store_id, secret_id, version)
        )
    except (InvalidTag, ValueError, TypeError) as exc:
        raise AuthenticationFailed("the wrapped data key did not authenticate") from exc
    if len(dek) != KEY_BYTES:
        raise AuthenticationFailed("the data key has the wrong length")
    return dek


def open_sealed(
    root: AESGCM, store_id: str, secret_id: str, version: int, sealed: SealedVersion
) -> bytes:
    """Decrypt a stored version; :class:`AuthenticationFailed` if anything was altered."""
    from cryptography.exceptions import InvalidTag

    dek = _open_dek(root, store_id, secret_id, version, sealed)
    try:
        return aesgcm(dek).decrypt(
            sealed.nonce, sealed.ciphertext, _value_aad(store_id, secret_id, version)
        )
    except (InvalidTag, ValueError, TypeError) as exc:
        raise AuthenticationFailed("the ciphertext did not authenticate") from exc


def rewrap(
    old_root: AESGCM,
    new_root: AESGCM,
    store_id: str,
    secret_id: str,
    version: int,
    sealed: SealedVersion,
) -> SealedVersion:
    """Re-wrap the data key of a version under a new root key; the ciphertext is unchanged."""
    dek = _open_dek(old_root, store_id, secret_id, version, sealed)
    dek_nonce = os.urandom(NONCE_BYTES)
    wrapped = new_root.encrypt(dek_nonce, dek, _dek_aad(store_id, secret_id, version))
    return SealedVersion(dek_nonce, wrapped, sealed.nonce, sealed.ciphertext)


def digest_key(root_key: bytes, store_id: str) -> bytes:
    """The HMAC key for value digests, derived from (never equal to) the root key."""
    return _hkdf(root_key, _aad(b"digest", store_id))


def value_digest(key: bytes, value: bytes) -> bytes:
    """Keyed digest of a value: equal values give equal digests, without revealing them."""
    import hmac  # only with the key: listing needs none (start-up)

    return hmac.digest(key, value, "sha256")


def digest_equal(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)


def mac_key(root_key: bytes, store_id: str) -> bytes:
    """The HMAC key that authenticates metadata (secret rows, key slot, counter, audit chain),
    derived from (never equal to) the root key, and distinct from the digest key."""
    return _hkdf(root_key, _aad(b"mac", store_id))


def mac(key: bytes, purpose: str, *parts: str | bytes | int | None) -> bytes:
    """HMAC-SHA256 over length-prefixed ``parts`` (so no two part lists collide)."""
    chunks = [_PREFIX, b"\x00", purpose.encode("ascii")]
    for part in parts:
        if part is None:
            data = b"\xff"
        elif isinstance(part, bytes):
            data = b"b" + part
        elif isinstance(part, int):
            data = b"i%d" % part
        else:
            data = b"s" + part.encode("utf-8", "surrogatepass")
        chunks.append(len(data).to_bytes(4, "big"))
        chunks.append(data)
    import hmac

    return hmac.digest(key, b"".join(chunks), "sha256")
