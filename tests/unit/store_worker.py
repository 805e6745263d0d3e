"""Helpers for the store tests, and a subprocess worker for crash and concurrency tests.

Run as ``python store_worker.py MODE STORE_DIR KEY_FILE PREFIX [COUNT]``:

* ``crash``: prints ``ready`` then creates and rotates secrets forever (the test SIGKILLs it).
* ``concurrent``: creates COUNT secrets, rotates each twice, and rotates ``shared`` COUNT times.
* ``rotate``: rotates secret PREFIX forever, printing ``ack VERSION`` after each commit.

Values are derived from the name and version (:func:`expected_value`), so a test can tell that a
secret is wholly there.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

from composesecrets.errors import ConflictError
from composesecrets.store import (
    DEFAULT_RETENTION,
    Argon2Params,
    KeyFileUnlock,
    PassphraseUnlock,
    Store,
)

#: A cheap passphrase KDF so tests stay fast (the default is 64 MiB / 3 passes).
FAST_KDF = Argon2Params(memory_kib=256, iterations=1, lanes=1)
WORKER_RETENTION = 1000
#: A passphrase long enough for the 12-character minimum.
PASSPHRASE = "correct horse battery"


def expected_value(name: str, version: int) -> bytes:
    """A deterministic 1 KiB value for ``name`` at ``version``."""
    return hashlib.sha256(f"{name}:{version}".encode()).digest() * 32


def open_keyfile_store(
    directory: Path, key_file: Path, *, create: bool = True, retention: int = DEFAULT_RETENTION
) -> Store:
    """Open a store unlocked by ``key_file``, ignoring the real environment."""
    return Store.open(
        directory,
        unlock=KeyFileUnlock(key_file, notice=lambda _m: None),
        create=create,
        retention=retention,
        environ={},
    )


def open_passphrase_store(directory: Path, passphrase: str) -> Store:
    return Store.open(directory, unlock=PassphraseUnlock(passphrase, kdf=FAST_KDF), environ={})


def _crash(store: Store, prefix: str) -> None:
    print("ready", flush=True)
    i = 0
    while True:
        name = f"{prefix}-{i}"
        if i % 5 == 4:
            batch = [f"{name}-b{j}" for j in range(5)]
            store.import_many((n, expected_value(n, 1), {"batch": name}) for n in batch)
        else:
            store.create(name, expected_value(name, 1), {"i": str(i)})
            if i % 2:
                store.rotate(name, expected_value(name, 2))
        i += 1


def _concurrent(store: Store, prefix: str, count: int) -> None:
    with contextlib.suppress(ConflictError):
        store.create("shared", expected_value("shared", 1))
    for i in range(count):
        store.create(f"{prefix}-{i}", expected_value(f"{prefix}-{i}", 1))
    for version in (2, 3):
        for i in range(count):
            store.rotate(f"{prefix}-{i}", expected_value(f"{prefix}-{i}", version))
    for _ in range(count):
        info = store.rotate("shared", b"shared")
        assert info.version >= 2


def _rotate(store: Store, name: str) -> None:
    with contextlib.suppress(ConflictError):
        store.create(name, expected_value(name, 1))
    print("ready", flush=True)
    while True:
        version = store.inspect(name).info.version + 1
        info = store.rotate(name, expected_value(name, version))
        assert info.version == version
        print(f"ack {info.version}", flush=True)


def main(argv: list[str]) -> int:
    mode, directory, key_file, prefix = argv[:4]
    with open_keyfile_store(Path(directory), Path(key_file), retention=WORKER_RETENTION) as store:
        if mode == "crash":
            _crash(store, prefix)
        elif mode == "rotate":
            _rotate(store, prefix)
        elif mode == "concurrent":
            _concurrent(store, prefix, int(argv[4]))
        else:
            raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
