"""Store security properties: no plaintext on disk, tamper detection, locking, permissions,
key rotation and unlock-method changes."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from unit.store_worker import FAST_KDF, PASSPHRASE, open_keyfile_store, open_passphrase_store

from composesecrets.errors import (
    InputError,
    IntegrityError,
    StoreLockedError,
    UnsafePermissionsError,
)
from composesecrets.store import (
    AutoUnlock,
    EnvKeyUnlock,
    KeyFileUnlock,
    PassphraseUnlock,
    ScryptParams,
    Store,
    keys,
)

# --------------------------------------------------------------------------- helpers


def _b64_fragments(data: bytes) -> list[bytes]:
    """Base64 text that must appear whatever the canary's alignment in an encoded stream."""
    out = []
    for shift in range(3):
        encoded = base64.b64encode(b"\x00" * shift + data)
        start = -(-shift // 3) * 4
        end = ((shift + len(data)) // 3) * 4
        fragment = encoded[start:end]
        out += [fragment, fragment.replace(b"+", b"-").replace(b"/", b"_")]
    return out


def encodings(canary: bytes) -> list[bytes]:
    text = canary.decode("ascii")
    return [
        canary,
        canary.hex().encode(),
        canary.hex().upper().encode(),
        text.encode("utf-16-le"),
        text.encode("utf-16-be"),
        text.encode("utf-32-le"),
        *_b64_fragments(canary),
    ]


def find_canaries(roots: list[Path], canaries: list[bytes]) -> list[str]:
    hits = []
    for root in roots:
        for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
            if not path.is_file():
                continue
            data = path.read_bytes()
            for canary in canaries:
                for form in encodings(canary):
                    if form in data:
                        hits.append(f"{path}: {form[:20]!r}")
    return hits


def file_hashes(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def canary() -> bytes:
    return b"CANARY-" + os.urandom(16).hex().encode() + b"-END"


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    return {"store": tmp_path / "store", "key": tmp_path / "keys" / "master.key"}


@pytest.fixture
def store(layout: dict[str, Path]) -> Iterator[Store]:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        yield s


def _db(store_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(store_dir / "store.db", isolation_level=None)


def _column(store_dir: Path, name: str, version: int, column: str) -> bytes:
    conn = _db(store_dir)
    try:
        row = conn.execute(
            f"SELECT v.{column} FROM versions v JOIN secrets s ON s.id = v.secret_id"
            " WHERE s.name = ? AND v.version = ?",
            (name, version),
        ).fetchone()
        return bytes(row[0])
    finally:
        conn.close()


def _set_column(store_dir: Path, name: str, version: int, column: str, value: Any) -> None:
    conn = _db(store_dir)
    try:
        cur = conn.execute(
            f"UPDATE versions SET {column} = ? WHERE version = ? AND secret_id ="
            " (SELECT id FROM secrets WHERE name = ?)",
            (value, version, name),
        )
        assert cur.rowcount == 1
    finally:
        conn.close()


# --------------------------------------------------------------------------- no plaintext


def test_canary_scanner_detects_every_encoding(tmp_path: Path) -> None:
    value = canary()
    for i, form in enumerate(encodings(value)):
        planted = tmp_path / f"planted{i}"
        planted.write_bytes(b"junk" + form + b"junk")
        assert find_canaries([planted], [value]), form
    # base64 of the canary embedded at each alignment inside a longer stream
    for shift in range(3):
        planted = tmp_path / f"b64-{shift}"
        planted.write_bytes(base64.b64encode(os.urandom(7 + shift) + value + os.urandom(5)))
        assert find_canaries([planted], [value])


def test_no_plaintext_on_disk(
    layout: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("SQLITE_TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    values = [canary() for _ in range(6)]
    roots = [layout["store"], layout["key"].parent, tmp]
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("one", values[0], {"kind": "canary"})
        s.rotate("one", values[1])
        s.create("gone", values[2])
        s.rotate("gone", values[3])
        s.import_many([("bulk", values[4], None)])
        s.create("big", values[5] * 4000)
        assert s.get("one@1") == values[0]
        s.remove("gone")
        assert s.verify().ok
        # While open: the -wal and -shm files exist and are scanned too.
        assert (layout["store"] / "store.db-wal").exists()
        assert find_canaries(roots, values) == []
        s.rotate_key()
        assert find_canaries(roots, values) == []
    assert find_canaries(roots, values) == []
    assert find_canaries([Path(tempfile.gettempdir())], values) == []


# --------------------------------------------------------------------------- tampering

TAMPER_COLUMNS = ["ciphertext", "nonce", "dek_wrapped", "dek_nonce"]


@pytest.mark.parametrize("column", TAMPER_COLUMNS)
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_flipped_byte_is_detected(layout: dict[str, Path], column: str, position: str) -> None:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("victim", b"the real value")
        s.rotate("victim", b"the second value")
        s.create("bystander", b"untouched")
    original = _column(layout["store"], "victim", 2, column)
    index = {"first": 0, "middle": len(original) // 2, "last": len(original) - 1}[position]
    damaged = bytearray(original)
    damaged[index] ^= 0x01
    _set_column(layout["store"], "victim", 2, column, bytes(damaged))
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        with pytest.raises(IntegrityError) as err:
            s.get("victim")
        assert err.value.exit_code == 4
        assert "'victim'" in str(err.value) and "version 2" in str(err.value)
        assert "the real value" not in str(err.value)
        assert s.get("victim@1") == b"the real value"
        assert s.get("bystander") == b"untouched"
        report = s.verify()
        assert not report.ok
        assert [(f.name, f.version) for f in report.failures] == [("victim", 2)]
        assert report.checked == 3
    _set_column(layout["store"], "victim", 2, column, original)
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        assert s.get("victim") == b"the second value"
        assert s.verify().ok


def test_truncated_and_altered_metadata_detected(layout: dict[str, Path]) -> None:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"value-a")
        s.create("b", b"value-b")
    ct = _column(layout["store"], "a", 1, "ciphertext")
    _set_column(layout["store"], "a", 1, "ciphertext", ct[:-1])
    _set_column(layout["store"], "b", 1, "digest", b"\x00" * 32)
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        with pytest.raises(IntegrityError):
            s.get("a")
        failures = {(f.name, f.reason) for f in s.verify().failures}
        assert ("b", "recorded digest does not match") in failures
        assert {name for name, _ in failures} == {"a", "b"}


def test_ciphertext_copied_to_another_row_fails(layout: dict[str, Path]) -> None:
    sealed = ["dek_nonce", "dek_wrapped", "nonce", "ciphertext"]
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"value of a")
        s.create("b", b"value of b")
        s.rotate("b", b"value of b2")
    for col in sealed:
        _set_column(layout["store"], "b", 1, col, _column(layout["store"], "a", 1, col))
        _set_column(layout["store"], "b", 2, col, _column(layout["store"], "a", 1, col))
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        for ref in ("b@1", "b@2"):
            with pytest.raises(IntegrityError, match="'b'"):
                s.get(ref)
        assert s.get("a") == b"value of a"
        assert {(f.name, f.version) for f in s.verify().failures} == {("b", 1), ("b", 2)}


def test_version_swap_within_a_secret_fails(layout: dict[str, Path]) -> None:
    sealed = ["dek_nonce", "dek_wrapped", "nonce", "ciphertext"]
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"old")
        s.rotate("a", b"new")
    v1 = {c: _column(layout["store"], "a", 1, c) for c in sealed}
    for col in sealed:
        _set_column(layout["store"], "a", 2, col, v1[col])
    with open_keyfile_store(layout["store"], layout["key"]) as s, pytest.raises(IntegrityError):
        s.get("a")


def test_ciphertext_copied_into_another_store_fails(tmp_path: Path) -> None:
    key = tmp_path / "shared.key"  # both stores even share the key file
    sealed = ["dek_nonce", "dek_wrapped", "nonce", "ciphertext"]
    with open_keyfile_store(tmp_path / "one", key) as s1:
        source = s1.create("db", b"value in store one")
    with open_keyfile_store(tmp_path / "two", key) as s2:
        s2.create("db", b"value in store two")
    # Give store two's row the same secret ID, then copy the sealed columns across.
    conn = _db(tmp_path / "two")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("UPDATE versions SET secret_id = ?", (source.id,))
    conn.execute("UPDATE secrets SET id = ?", (source.id,))
    conn.close()
    for col in sealed:
        _set_column(tmp_path / "two", "db", 1, col, _column(tmp_path / "one", "db", 1, col))
    with open_keyfile_store(tmp_path / "two", key) as s2:
        with pytest.raises(IntegrityError):
            s2.get("db")
        assert not s2.verify().ok


# --------------------------------------------------------------------------- locking


def _make_store_with_data(layout: dict[str, Path]) -> None:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"value")


def test_wrong_key_file_leaves_store_unchanged(layout: dict[str, Path], tmp_path: Path) -> None:
    _make_store_with_data(layout)
    other = tmp_path / "other.key"
    keys.ensure_key_file(other, lambda _m: None)
    before = file_hashes(layout["store"], layout["key"].parent)
    with open_keyfile_store(layout["store"], other) as s:
        with pytest.raises(StoreLockedError) as err:
            s.get("a")
        assert err.value.exit_code == 3
        assert str(other) in str(err.value) and err.value.hint
        with pytest.raises(StoreLockedError):
            s.create("b", b"x")
        with pytest.raises(StoreLockedError):
            s.verify()
        assert [i.name for i in s.list_secrets()] == ["a"]
    assert file_hashes(layout["store"], layout["key"].parent) == before


def test_wrong_passphrase_leaves_store_unchanged(tmp_path: Path) -> None:
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        s.create("a", b"value")
    before = file_hashes(tmp_path / "s")
    with open_passphrase_store(tmp_path / "s", "wrong horse") as s:
        with pytest.raises(StoreLockedError, match="wrong passphrase"):
            s.get("a")
        with pytest.raises(StoreLockedError):
            s.rotate("a", b"new")
    assert file_hashes(tmp_path / "s") == before
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        assert s.get("a") == b"value"


def test_passphrase_from_environment_and_prompt(tmp_path: Path) -> None:
    prompts: list[bool] = []

    def prompt(new: bool) -> str:
        prompts.append(new)
        return PASSPHRASE

    with Store.open(tmp_path / "s", unlock=PassphraseUnlock(prompt, kdf=FAST_KDF), environ={}) as s:
        s.create("a", b"v")
    assert prompts == [True]
    env = {"COMPOSESECRETS_PASSPHRASE": PASSPHRASE}
    with Store.open(tmp_path / "s", environ=env) as s:
        assert s.get("a") == b"v"
    with Store.open(tmp_path / "s", unlock=AutoUnlock(prompt=prompt), environ={}) as s:
        assert s.get("a") == b"v"
    assert prompts == [True, False]
    with (
        Store.open(tmp_path / "s", environ={}) as s,
        pytest.raises(StoreLockedError, match="passphrase"),
    ):
        s.get("a")
    keyfile = KeyFileUnlock(tmp_path / "k")
    with (
        Store.open(tmp_path / "s", unlock=keyfile, environ={}) as s,
        pytest.raises(StoreLockedError, match="passphrase, not a key"),
    ):
        s.get("a")
    assert not (tmp_path / "k").exists()


def test_env_key_store(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"COMPOSESECRETS_KEY": key, "COMPOSESECRETS_KEY_FILE": str(tmp_path / "k")}
    with Store.open(tmp_path / "s", environ=env) as s:
        s.create("a", b"v")
        assert s.status().unlock_method == "env"
    assert not (tmp_path / "k").exists()
    with Store.open(tmp_path / "s", unlock=EnvKeyUnlock(key), environ={}) as s:
        assert s.get("a") == b"v"
    with (
        Store.open(tmp_path / "s", environ={}) as s,
        pytest.raises(StoreLockedError, match="COMPOSESECRETS_KEY"),
    ):
        s.get("a")
    bad = {"COMPOSESECRETS_KEY": base64.b64encode(os.urandom(32)).decode()}
    with Store.open(tmp_path / "s", environ=bad) as s, pytest.raises(StoreLockedError):
        s.get("a")
    for malformed in ("not base64!!", base64.b64encode(b"short").decode()):
        with Store.open(tmp_path / "s", environ={"COMPOSESECRETS_KEY": malformed}) as s:
            with pytest.raises(StoreLockedError, match="32-byte") as err:
                s.get("a")
            assert err.value.hint and "urandom" in err.value.hint


def test_key_file_notice_and_mode(tmp_path: Path) -> None:
    notices: list[str] = []
    key = tmp_path / "cfg" / "master.key"
    with Store.open(tmp_path / "s", unlock=KeyFileUnlock(key, notice=notices.append)) as s:
        assert notices == []  # opening alone creates no key
        s.create("a", b"value")
        s.create("b", b"value")
    assert len(notices) == 1 and str(key) in notices[0]
    assert "\n" not in notices[0]
    assert key.read_text().strip() not in notices[0]
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o777 == 0o700
    store_dir = tmp_path / "s"
    assert store_dir.stat().st_mode & 0o777 == 0o700
    for f in store_dir.iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f


def test_one_key_derivation_per_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = keys.derive_kek

    def counting(passphrase: str, spec: Any) -> bytes:
        calls.append(spec["alg"])
        return real(passphrase, spec)

    monkeypatch.setattr(keys, "derive_kek", counting)
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        s.create("a", b"1")
        s.create("b", b"1")
    assert len(calls) == 1
    calls.clear()
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        s.list_secrets()
        s.inspect("a")
        s.status()
        assert calls == []
        s.get("a")
        s.rotate("a", b"2")
        s.import_many([("c", b"3", None)])
        assert s.verify().ok
        s.rotate_key()
        assert s.get("a") == b"2"
    assert len(calls) == 1


def test_default_kdf_is_strong() -> None:
    spec = keys.new_kdf_spec(None)
    if keys.argon2_available():
        assert spec["alg"] == "argon2id"
        assert spec["memory_kib"] >= 65536 and spec["iterations"] >= 3
    else:  # pragma: no cover - depends on cryptography
        assert spec["alg"] == "scrypt" and spec["log2_n"] >= 17
    assert len(base64.b64decode(spec["salt"])) == 16
    assert keys.new_kdf_spec(None)["salt"] != spec["salt"]
    scrypt = keys.new_kdf_spec(ScryptParams(log2_n=10))
    assert len(keys.derive_kek(PASSPHRASE, scrypt)) == 32


# --------------------------------------------------------------------------- permissions


def test_group_readable_store_dir_refused(layout: dict[str, Path]) -> None:
    _make_store_with_data(layout)
    os.chmod(layout["store"], 0o755)
    with pytest.raises(UnsafePermissionsError) as err:
        open_keyfile_store(layout["store"], layout["key"])
    assert err.value.exit_code == 7
    assert err.value.hint == f"run: chmod 700 {layout['store'].absolute()}"
    os.chmod(layout["store"], 0o700)
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        assert s.get("a") == b"value"


def test_readable_database_refused(layout: dict[str, Path]) -> None:
    _make_store_with_data(layout)
    db = layout["store"].absolute() / "store.db"
    os.chmod(db, 0o640)
    with pytest.raises(UnsafePermissionsError) as err:
        open_keyfile_store(layout["store"], layout["key"])
    assert err.value.hint == f"run: chmod 600 {db}"


def test_readable_key_file_refused(layout: dict[str, Path]) -> None:
    _make_store_with_data(layout)
    os.chmod(layout["key"], 0o644)
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        with pytest.raises(UnsafePermissionsError) as err:
            s.get("a")
        assert err.value.hint == f"run: chmod 600 {layout['key']}"
        assert s.audit(action="read") == []


def test_store_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError):
        Store.open(tmp_path / "file", environ={})


# --------------------------------------------------------------------------- key changes


def test_rotate_key_with_key_file(layout: dict[str, Path], tmp_path: Path) -> None:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"alpha")
        s.rotate("a", b"alpha2")
        s.create("b", b"beta")
        digest_before = s.inspect("a").versions[0].digest
        wrapped_before = _column(layout["store"], "a", 1, "dek_wrapped")
        old_key = tmp_path / "old.key"
        shutil.copy(layout["key"], old_key)
        change = s.rotate_key()
        assert (change.method, change.generation, change.versions_rewrapped) == ("keyfile", 2, 3)
        assert change.key_file == layout["key"] and change.kept_key_file is not None
        assert s.get("a@1") == b"alpha" and s.get("b") == b"beta"
        assert s.inspect("a").versions[0].digest != digest_before
    assert _column(layout["store"], "a", 1, "dek_wrapped") != wrapped_before
    assert not keys.pending_path(layout["key"]).exists()
    assert layout["key"].read_bytes() != old_key.read_bytes()
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        assert s.get("a") == b"alpha2" and s.verify().ok
        assert s.status().key_generation == 2
        assert [e.action for e in s.audit(action="rotate-key")] == ["rotate-key"]
    with open_keyfile_store(layout["store"], old_key) as s, pytest.raises(StoreLockedError):
        s.get("a")


def test_interrupted_key_file_rotation_recovers(layout: dict[str, Path], tmp_path: Path) -> None:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"alpha")
        old = layout["key"].read_bytes()
        s.rotate_key()
    new = layout["key"].read_bytes()
    # As if the process died after the commit but before moving <key>.new into place:
    pending = keys.pending_path(layout["key"])
    pending.write_bytes(new)
    os.chmod(pending, 0o600)
    layout["key"].write_bytes(old)
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        assert s.get("a") == b"alpha"
    assert layout["key"].read_bytes() == new and not pending.exists()


def test_rotate_key_with_env_key(tmp_path: Path) -> None:
    old_key = base64.b64encode(os.urandom(32)).decode()
    new_key = base64.b64encode(os.urandom(32)).decode()
    env = {"COMPOSESECRETS_NEW_KEY": new_key}
    with Store.open(tmp_path / "s", unlock=EnvKeyUnlock(old_key), environ=env) as s:
        s.create("a", b"alpha")
        change = s.rotate_key()
        assert change.method == "env" and new_key not in repr(change)
    with (
        Store.open(tmp_path / "s", unlock=EnvKeyUnlock(old_key), environ={}) as s,
        pytest.raises(StoreLockedError),
    ):
        s.get("a")
    with Store.open(tmp_path / "s", environ={"COMPOSESECRETS_KEY": new_key}) as s:
        assert s.get("a") == b"alpha"


def test_rotate_key_with_passphrase(tmp_path: Path) -> None:
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        s.create("a", b"alpha")
        before = _column(tmp_path / "s", "a", 1, "dek_wrapped")
        assert s.rotate_key().method == "passphrase"
        assert s.get("a") == b"alpha"
    assert _column(tmp_path / "s", "a", 1, "dek_wrapped") != before
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        assert s.get("a") == b"alpha" and s.verify().ok


def test_rotate_key_refuses_a_damaged_store(layout: dict[str, Path]) -> None:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"alpha")
    ct = bytearray(_column(layout["store"], "a", 1, "ciphertext"))
    ct[0] ^= 0xFF
    _set_column(layout["store"], "a", 1, "ciphertext", bytes(ct))
    key_before = layout["key"].read_bytes()
    with (
        open_keyfile_store(layout["store"], layout["key"]) as s,
        pytest.raises(IntegrityError, match="'a'"),
    ):
        s.rotate_key()
    assert layout["key"].read_bytes() == key_before
    assert not keys.pending_path(layout["key"]).exists()


def test_change_unlock_keyfile_passphrase_env(layout: dict[str, Path]) -> None:
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        s.create("a", b"alpha")
        wrapped = _column(layout["store"], "a", 1, "dek_wrapped")
        change = s.change_unlock(PassphraseUnlock(PASSPHRASE, kdf=FAST_KDF))
        assert change.method == "passphrase" and change.old_key_file == layout["key"]
        assert s.get("a") == b"alpha"
    assert _column(layout["store"], "a", 1, "dek_wrapped") != wrapped  # a new root key
    with open_keyfile_store(layout["store"], layout["key"]) as s, pytest.raises(StoreLockedError):
        s.get("a")
    with open_passphrase_store(layout["store"], PASSPHRASE) as s:
        assert s.get("a") == b"alpha"
        assert s.status().unlock_method == "passphrase"
        env_key = base64.b64encode(os.urandom(32)).decode()
        change = s.change_unlock(EnvKeyUnlock(env_key))
        assert change.method == "env"
    with open_passphrase_store(layout["store"], PASSPHRASE) as s, pytest.raises(StoreLockedError):
        s.get("a")
    with Store.open(layout["store"], environ={"COMPOSESECRETS_KEY": env_key}) as s:
        assert s.get("a") == b"alpha"
        other = tmp_key = layout["key"].with_name("second.key")
        s.change_unlock(KeyFileUnlock(other, notice=lambda _m: None))
    assert tmp_key.exists()
    with open_keyfile_store(layout["store"], other) as s:
        assert s.get("a") == b"alpha" and s.verify().ok
        actions = [e.detail for e in s.audit(action="change-unlock")]
        assert actions == [
            "from=keyfile to=passphrase generation=2 versions=1",
            "from=passphrase to=env generation=3 versions=1",
            "from=env to=keyfile generation=4 versions=1",
        ]
    with (
        Store.open(layout["store"], environ={"COMPOSESECRETS_KEY": env_key}) as s,
        pytest.raises(StoreLockedError),
    ):
        s.get("a")


def test_other_handle_follows_a_key_rotation(layout: dict[str, Path]) -> None:
    with (
        open_keyfile_store(layout["store"], layout["key"]) as first,
        open_keyfile_store(layout["store"], layout["key"]) as second,
    ):
        first.create("a", b"alpha")
        assert second.get("a") == b"alpha"  # second has now unlocked the old root key
        first.rotate_key()
        second.create("b", b"beta")  # must be sealed under the new root key
        second.rotate("a", b"alpha2")
        assert second.get("a@1") == b"alpha"
        assert first.get("b") == b"beta" and first.get("a") == b"alpha2"
        assert second.verify().ok
    with open_keyfile_store(layout["store"], layout["key"]) as s:
        assert s.verify().ok and s.get("b") == b"beta"


def test_other_passphrase_handle_follows_without_deriving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        open_passphrase_store(tmp_path / "s", PASSPHRASE) as first,
        open_passphrase_store(tmp_path / "s", PASSPHRASE) as second,
    ):
        first.create("a", b"alpha")
        assert second.get("a") == b"alpha"

        def no_derivation(passphrase: str, spec: Any) -> bytes:
            raise AssertionError("unexpected key derivation")

        monkeypatch.setattr(keys, "derive_kek", no_derivation)
        first.rotate_key()
        second.create("b", b"beta")
        assert first.get("b") == b"beta" and second.get("a") == b"alpha"


def test_verify_on_an_empty_store_creates_no_key(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with open_keyfile_store(tmp_path / "s", key) as s:
        report = s.verify()
        assert report.ok and report.checked == 0
    assert not key.exists()
