"""The key-encryption key (:class:`Kek`) and the cost parameters of the passphrase KDFs, as
:mod:`.keys` obtains them.

Their own module: only unlocking needs them, and a command that reads the store without its
key (``secret ls``, ``secret inspect``) does not create these classes (start-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .keys import Method


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost; the default (64 MiB, 3 passes, 4 lanes) follows RFC 9106's second choice."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost, used when Argon2id is unavailable; default N = 2**17, r = 8, p = 1."""

    log2_n: int = 17
    r: int = 8
    p: int = 1


KdfParams = Argon2Params | ScryptParams


@dataclass(frozen=True)
class Kek:
    """A key-encryption key and how it was obtained (kept in memory only)."""

    key: bytes = field(repr=False)
    method: Method
    kdf: dict[str, Any] | None = None
    key_file: Path | None = None
    #: A fresh key for ``key_file`` that is not on disk yet: the rotation writes it to a
    #: pending file before its commit and moves it over ``key_file`` after (:mod:`.keyfiles`).
    fresh: bool = False
