"""The cost parameters of the passphrase KDFs (:mod:`.keys` stretches passphrases with them).

Their own module: only stores unlocked by a passphrase need them, and a command that opens a
store by key (or no key, as ``secret ls``) does not create these classes (start-up).
"""

from __future__ import annotations

from dataclasses import dataclass


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
