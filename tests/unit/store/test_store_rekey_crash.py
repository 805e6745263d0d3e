"""Crash loop for key changes: SIGKILL at random points of ``rotate-key`` and
``change-unlock`` (at least 30 of each), and after every kill the store opens with a key the
user holds, ``verify`` passes and no acknowledged write is lost (issue 9, "Tests and numbers").

Each run is a forked child of the test process (no interpreter start-up, so the loop stays
fast) that keeps creating secrets and changing keys, reporting over a pipe what it has
committed ("ack"), which key it handed to the user before using it ("hold"), and which key
change it is in ("begin"/"end").
"""

from __future__ import annotations

import base64
import os
import random
import signal
import sqlite3
import time
from pathlib import Path

from unit.store_worker import expected_value

from composesecrets.store import EnvKeyUnlock, KeyFileUnlock, Store

OPS = ("rotate-key", "change-unlock")


def _slot_method(store_dir: Path) -> str:
    with sqlite3.connect(store_dir / "store.db") as db:
        return str(db.execute("SELECT method FROM keyslot").fetchone()[0])


def probe_key(store: Store) -> str:
    """The environment key that opened ``store`` (one of those the user holds)."""
    return base64.b64encode(store._keyring.keys().kek.key).decode()


def _open_as_user(store_dir: Path, home: Path, held: list[str]) -> Store:
    """Open the store as its user would: the key file it records, else an env key they hold."""
    env = {"HOME": str(home)}
    if _slot_method(store_dir) != "env":
        return Store.open(store_dir, environ=env, create=False)
    for key in reversed(held):
        s = Store.open(store_dir, environ={**env, "COMPOSESECRETS_KEY": key}, create=False)
        try:
            s.unlock()
        except Exception:
            s.close()
            continue
        return s
    raise AssertionError("no key the user holds opens the store")


def _child(
    store_dir: Path, home: Path, keys_dir: Path, held: list[str], seed: int, out: int
) -> None:
    rng = random.Random(seed)

    def say(line: str) -> None:
        os.write(out, (line + "\n").encode())

    environ: dict[str, str] = {"HOME": str(home)}
    if _slot_method(store_dir) == "env":
        with _open_as_user(store_dir, home, held) as probe:
            environ["COMPOSESECRETS_KEY"] = probe_key(probe)
    store = Store.open(store_dir, environ=environ, create=False)
    store.unlock()
    say("ready")
    for i in range(10_000):
        name = f"s{seed}-{i}"
        store.create(name, expected_value(name, 1))
        say(f"ack {name}")
        op = rng.choice(OPS)
        say(f"begin {op}")
        method = store.status().unlock_method
        if op == "rotate-key":
            if method == "env":
                new = base64.b64encode(os.urandom(32)).decode()
                say(f"hold {new}")
                environ["COMPOSESECRETS_NEW_KEY"] = new
            store.rotate_key()
        else:
            choice = rng.choice(("k1", "k2", "env"))
            if choice == "env":
                new = base64.b64encode(os.urandom(32)).decode()
                say(f"hold {new}")
                store.change_unlock(EnvKeyUnlock(new))
            else:
                store.change_unlock(KeyFileUnlock(keys_dir / f"{choice}.key"))
        say(f"end {op}")


def test_sigkill_during_key_changes_never_locks_out_or_loses_writes(tmp_path: Path) -> None:
    store_dir, home, keys_dir = tmp_path / "store", tmp_path / "home", tmp_path / "keys"
    home.mkdir(exist_ok=True)
    with Store.open(
        store_dir, unlock=KeyFileUnlock(keys_dir / "k1.key"), environ={"HOME": str(home)}
    ) as s:
        s.create("first", expected_value("first", 1))
    acked = ["first"]
    held: list[str] = []
    kills = dict.fromkeys(OPS, 0)
    rng = random.Random(20261203)
    for run in range(400):
        if min(kills.values()) >= 30:
            break
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(read_end)
            try:
                _child(store_dir, home, keys_dir, held, run, write_end)
            except BaseException as exc:
                os.write(write_end, f"error {exc!r}\n".encode())
            finally:
                os._exit(0)
        os.close(write_end)
        data = b""
        while b"ready\n" not in data:
            chunk = os.read(read_end, 4096)
            assert chunk, f"the child died before it was ready: {data!r}"
            data += chunk
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        while chunk := os.read(read_end, 65536):
            data += chunk
        os.close(read_end)
        in_op = None
        for line in data.decode().splitlines():
            word, _, rest = line.partition(" ")
            if word == "ack":
                acked.append(rest)
            elif word == "hold":
                held.append(rest)
            elif word == "begin":
                in_op = rest
            elif word == "end":
                in_op = None
        if in_op is not None:
            kills[in_op] += 1
        with _open_as_user(store_dir, home, held) as s:
            report = s.verify()
            assert report.ok, (run, report.failures)
            for name in acked:
                assert s.get(name, audit=False) == expected_value(name, 1), (run, name)
    assert min(kills.values()) >= 30, kills
