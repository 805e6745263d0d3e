"""Key management that can never lock a user out, and unlock settings an attacker cannot
rewrite (issue 9 items 1-6, 11 and 12)."""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pytest
from unit.store_worker import FAST_KDF, PASSPHRASE, open_keyfile_store, open_passphrase_store

from composesecrets.errors import (
    InputError,
    IntegrityError,
    StoreLockedError,
    UnsafePermissionsError,
)
from composesecrets.store import EnvKeyUnlock, KeyFileUnlock, PassphraseUnlock, Store, keys
from composesecrets.store import crypto as cryptom


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSESECRETS_", "XDG_")) and k != "HOME"
    }
    env.update(HOME=str(tmp_path / "home"), COMPOSESECRETS_HOME=str(tmp_path / "store"))
    env.update(extra)
    return env


def _cli(
    env: dict[str, str], *args: str, stdin: bytes | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "composesecrets", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        timeout=60,
        check=False,
    )


def _slot(store_dir: Path) -> sqlite3.Row:
    with sqlite3.connect(store_dir / "store.db") as db:
        db.row_factory = sqlite3.Row
        row: sqlite3.Row = db.execute("SELECT * FROM keyslot").fetchone()
        return row


# --------------------------------------------------------------------------- item 1


def test_concurrent_rotate_key_never_destroys_the_key(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _cli(env, "secret", "create", "a", "-", stdin=b"alpha").returncode == 0
    for _ in range(4):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "composesecrets", "store", "rotate-key"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(3)
        ]
        for proc in procs:
            proc.wait(timeout=60)
        verify = _cli(env, "store", "verify")
        assert verify.returncode == 0, verify.stderr
    read_back = _cli(env, "store", "status", "--format", "json")
    assert json.loads(read_back.stdout)["KeyGeneration"] >= 5
    leftovers = [p.name for p in Path(env["HOME"]).rglob("*pending*")]
    assert leftovers == []


def test_a_pending_key_of_a_committed_rotation_is_recovered(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "k.key"
    with open_keyfile_store(tmp_path / "s", key) as s:
        s.create("a", b"alpha")
        old = key.read_bytes()
        s.rotate_key()
    new = key.read_bytes()
    # As if the process died after the commit, before moving its pending file into place:
    pending = key.parent / f".{key.name}.x1y2z3.pending"
    pending.write_bytes(new)
    os.chmod(pending, 0o600)
    key.write_bytes(old)
    with open_keyfile_store(tmp_path / "s", key) as s:
        assert s.get("a") == b"alpha"
    assert key.read_bytes() == new and not pending.exists()


# --------------------------------------------------------------------------- item 2


def test_rotating_one_store_never_locks_out_another_sharing_its_key(tmp_path: Path) -> None:
    shared = tmp_path / "keys" / "shared.key"
    with open_keyfile_store(tmp_path / "a", shared) as a:
        a.create("x", b"from-a")
    with open_keyfile_store(tmp_path / "b", shared) as b:
        b.create("y", b"from-b")
    backup = tmp_path / "a-backup"
    shutil.copytree(tmp_path / "a", backup)
    with open_keyfile_store(tmp_path / "a", shared) as a:
        change = a.rotate_key()
        assert change.kept_key_file is not None and change.kept_key_file.exists()
    with open_keyfile_store(tmp_path / "b", shared) as b:
        assert b.get("y") == b"from-b" and b.verify().ok
    with open_keyfile_store(backup, shared) as old:
        assert old.get("x") == b"from-a"
    with open_keyfile_store(tmp_path / "a", shared) as a:
        assert a.get("x") == b"from-a" and a.verify().ok


def test_default_key_file_is_one_per_store(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _cli(env, "secret", "create", "a", "-", stdin=b"alpha").returncode == 0
    env_b = {**env, "COMPOSESECRETS_HOME": str(tmp_path / "store-b")}
    assert _cli(env_b, "secret", "create", "b", "-", stdin=b"beta").returncode == 0
    status_a = json.loads(_cli(env, "store", "status", "--format", "json").stdout)
    status_b = json.loads(_cli(env_b, "store", "status", "--format", "json").stdout)
    assert status_a["KeyFile"] != status_b["KeyFile"]
    assert Path(status_a["KeyFile"]).name == f"{status_a['StoreID']}.key"
    assert _cli(env, "store", "rotate-key").returncode == 0
    assert _cli(env_b, "store", "verify").returncode == 0
    assert _cli(env, "store", "verify").returncode == 0


def test_legacy_shared_default_key_opens_and_rotation_moves_off_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    legacy = home / ".config" / "composesecrets" / "master.key"
    env = {"HOME": str(home)}
    for name in ("a", "b"):
        with Store.open(
            tmp_path / name, unlock=KeyFileUnlock(legacy, notice=lambda _m: None), environ=env
        ) as s:
            s.create(name, name.encode())
    with Store.open(tmp_path / "a", environ=env) as a:
        change = a.rotate_key()
        assert change.key_file is not None and change.key_file != legacy
        assert change.key_file.name == f"{a.store_id}.key"
    with Store.open(tmp_path / "b", environ=env) as b:
        assert b.get("b") == b"b"
    with Store.open(tmp_path / "a", environ=env) as a:
        assert a.get("a") == b"a"


# --------------------------------------------------------------------------- item 3


def test_env_key_rotation_needs_the_new_key_first(tmp_path: Path) -> None:
    old = _new_key()
    with Store.open(tmp_path / "s", environ={"COMPOSESECRETS_KEY": old}) as s:
        s.create("a", b"alpha")
        with pytest.raises(InputError, match="COMPOSESECRETS_NEW_KEY"):
            s.rotate_key()
        assert s.status().key_generation == 1
    new = _new_key()
    env = {"COMPOSESECRETS_KEY": old, "COMPOSESECRETS_NEW_KEY": new}
    with Store.open(tmp_path / "s", environ=env) as s:
        change = s.rotate_key()
        assert change.generation == 2
    with Store.open(tmp_path / "s", environ={"COMPOSESECRETS_KEY": new}) as s:
        assert s.get("a") == b"alpha"


def test_env_key_rotation_survives_a_full_stdout(tmp_path: Path) -> None:
    old = _new_key()
    env = _env(tmp_path, COMPOSESECRETS_KEY=old)
    assert _cli(env, "secret", "create", "a", "-", stdin=b"alpha").returncode == 0
    refused = _cli(env, "store", "rotate-key")
    assert refused.returncode == 2 and b"store new-key" in refused.stderr
    made = _cli(env, "store", "new-key")
    assert made.returncode == 0
    new = made.stdout.decode().strip()
    assert len(base64.b64decode(new)) == 32
    assert _cli(env, "store", "verify").returncode == 0  # new-key changed nothing
    with open("/dev/full", "wb") as full:
        _cli({**env, "COMPOSESECRETS_NEW_KEY": new}, "store", "rotate-key", stdout=full.fileno())
    opened = _cli({**env, "COMPOSESECRETS_KEY": new}, "store", "verify")
    assert opened.returncode == 0, opened.stderr


def test_change_unlock_to_env_needs_a_key_given_first(layout_store: Path) -> None:
    with open_keyfile_store(layout_store, layout_store.parent / "k.key") as s:
        s.create("a", b"alpha")
        with pytest.raises(InputError, match="COMPOSESECRETS_NEW_KEY"):
            s.change_unlock(EnvKeyUnlock())
        new = _new_key()
        change = s.change_unlock(EnvKeyUnlock(new))
        assert change.method == "env"
    with Store.open(layout_store, environ={"COMPOSESECRETS_KEY": new}) as s:
        assert s.get("a") == b"alpha"


@pytest.fixture
def layout_store(tmp_path: Path) -> Path:
    return tmp_path / "store"


# --------------------------------------------------------------------------- item 4


def test_change_unlock_rotates_the_root_key(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    with open_keyfile_store(tmp_path / "s", key) as s:
        s.create("a", b"alpha")
        old_slot = _slot(tmp_path / "s")
        old_root = keys.decode_key(key.read_text(), where="k")
        root = cryptom.unwrap_key(
            old_root,
            bytes(old_slot["nonce"]),
            bytes(old_slot["wrapped"]),
            cryptom.root_aad(s.store_id),
        )
        change = s.change_unlock(PassphraseUnlock(PASSPHRASE, kdf=FAST_KDF))
        assert change.generation == 2 and change.versions_rewrapped == 1
        s.create("b", b"beta")
        store_id = s.store_id
    with sqlite3.connect(tmp_path / "s" / "store.db") as db:
        rows = db.execute(
            "SELECT v.secret_id, v.version, v.dek_nonce, v.dek_wrapped FROM versions v"
        ).fetchall()
    for secret_id, version, nonce, wrapped in rows:
        aad = b"\x00".join(
            [
                b"composesecrets/v1",
                b"dek",
                store_id.encode(),
                secret_id.encode(),
                str(version).encode(),
            ]
        )
        with pytest.raises(cryptom.AuthenticationFailed):
            cryptom.unwrap_key(root, bytes(nonce), bytes(wrapped), aad)
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        assert s.get("a") == b"alpha" and s.get("b") == b"beta" and s.verify().ok


# --------------------------------------------------------------------------- item 5


def _other_uid() -> int | None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    return 65534  # nobody


def test_store_precreated_by_another_user_is_refused(tmp_path: Path) -> None:
    uid = _other_uid()
    if uid is None:
        pytest.skip("needs root and setpriv to act as a second user")
    shared = Path(tempfile.mkdtemp(prefix="cs-shared-", dir="/tmp"))
    try:
        os.chmod(shared, 0o1777)
        script = (
            f"mkdir -m 700 {shared}/store && touch {shared}/store/store.db && "
            f"chmod 600 {shared}/store/store.db && mkdir -m 700 {shared}/keys && "
            f"head -c 32 /dev/urandom | base64 > {shared}/keys/k.key && "
            f"chmod 600 {shared}/keys/k.key"
        )
        subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "sh", "-c", script],
            check=True,
        )
        assert (shared / "store").stat().st_uid == uid
        with pytest.raises(UnsafePermissionsError, match="owned by"):
            Store.open(shared / "store", unlock=KeyFileUnlock(tmp_path / "k"), environ={})
        with (
            open_keyfile_store(tmp_path / "mine", shared / "keys" / "k.key") as s,
            pytest.raises(UnsafePermissionsError, match="owned by"),
        ):
            s.create("a", b"alpha")
        env = _env(tmp_path, COMPOSESECRETS_HOME=str(shared / "store"))
        run = _cli(env, "secret", "create", "a", "-", stdin=b"alpha")
        assert run.returncode == 7 and b"chown" in run.stderr, run.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_parent_writable_by_others_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(UnsafePermissionsError, match="writable by others"):
        Store.open(open_dir / "store", unlock=KeyFileUnlock(tmp_path / "k"), environ={})
    with (
        open_keyfile_store(tmp_path / "s", open_dir / "keys" / "k.key") as s,
        pytest.raises(UnsafePermissionsError, match="writable by others"),
    ):
        s.create("a", b"alpha")
    os.chmod(open_dir, 0o1777)  # sticky, like /tmp: allowed
    with open_keyfile_store(open_dir / "store", tmp_path / "k") as s:
        s.create("a", b"alpha")


# --------------------------------------------------------------------------- item 6


def _rewrite_slot_to(store_dir: Path, store_id: str, key_file: Path) -> None:
    """What an attacker who can write the database does: their own key, their root key."""
    attacker = os.urandom(32)
    key_file.write_text(base64.b64encode(attacker).decode())
    os.chmod(key_file, 0o600)
    nonce, wrapped = cryptom.wrap_key(attacker, os.urandom(32), cryptom.root_aad(store_id))
    with sqlite3.connect(store_dir / "store.db") as db:
        db.execute(
            "UPDATE keyslot SET method = 'keyfile', kdf = NULL, key_file = ?, nonce = ?,"
            " wrapped = ?",
            (str(key_file), nonce, wrapped),
        )


def test_a_rewritten_slot_is_refused_with_a_passphrase_set(tmp_path: Path) -> None:
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        s.create("a", b"alpha")
        store_id = s.store_id
    _rewrite_slot_to(tmp_path / "s", store_id, tmp_path / "evil.key")
    env = {"COMPOSESECRETS_PASSPHRASE": PASSPHRASE}
    with Store.open(tmp_path / "s", environ=env) as s, pytest.raises(IntegrityError):
        s.create("b", b"beta")


def test_a_rewritten_key_file_path_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"HOME": str(home)}
    with Store.open(tmp_path / "s", environ=env) as s:
        s.create("a", b"alpha")
        store_id = s.store_id
    _rewrite_slot_to(tmp_path / "s", store_id, tmp_path / "evil.key")
    with Store.open(tmp_path / "s", environ=env) as s, pytest.raises(IntegrityError, match="pin"):
        s.create("b", b"beta")


# --------------------------------------------------------------------------- item 11


def test_relative_key_file_is_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_keyfile_store(tmp_path / "s", tmp_path / "k.key") as s:
        s.create("a", b"alpha")
        change = s.change_unlock(KeyFileUnlock(Path("rel.key"), notice=lambda _m: None))
        assert change.key_file == tmp_path / "rel.key"
    assert _slot(tmp_path / "s")["key_file"] == str(tmp_path / "rel.key")
    monkeypatch.chdir("/")
    with Store.open(tmp_path / "s", environ={"HOME": str(tmp_path / "home")}) as s:
        assert s.get("a") == b"alpha"


def test_short_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="12 characters"), Store.open(
        tmp_path / "s", unlock=PassphraseUnlock("short", kdf=FAST_KDF), environ={}
    ) as s:
        s.create("a", b"alpha")


@pytest.mark.parametrize(
    "kdf",
    [
        {"alg": "argon2id", "memory_kib": 4 * 1024 * 1024, "iterations": 64, "lanes": 4},
        {"alg": "argon2id", "memory_kib": 65536, "iterations": 1000, "lanes": 4},
        {"alg": "scrypt", "log2_n": 22, "r": 32, "p": 16},
        {"alg": "argon2id", "memory_kib": 256, "iterations": 1, "lanes": 1, "salt": "AA=="},
    ],
)
def test_kdf_parameters_from_the_database_are_bounded(
    tmp_path: Path, kdf: dict[str, object]
) -> None:
    with open_passphrase_store(tmp_path / "s", PASSPHRASE) as s:
        s.create("a", b"alpha")
    spec = json.loads(_slot(tmp_path / "s")["kdf"])
    spec.update(kdf)
    with sqlite3.connect(tmp_path / "s" / "store.db") as db:
        db.execute("UPDATE keyslot SET kdf = ?", (json.dumps(spec),))
    started = time.monotonic()
    with (
        open_passphrase_store(tmp_path / "s", PASSPHRASE) as s,
        pytest.raises(StoreLockedError, match="damaged"),
    ):
        s.get("a")
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- item 12


def _run_on_a_terminal(
    env: dict[str, str], args: list[str], typed: list[bytes]
) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, [sys.executable, "-m", "composesecrets", *args], env)
    output = b""
    answers = list(typed)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        # Type only once the program has turned echo off (as a person would see the prompt):
        # input typed earlier is flushed by getpass.
        if (
            answers
            and output.rstrip().endswith(b":")
            and not termios.tcgetattr(fd)[3] & termios.ECHO
        ):
            os.write(fd, answers.pop(0))
            output += b"<typed>"
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output


def test_secret_typed_at_a_terminal_is_hidden_confirmed_and_stripped(tmp_path: Path) -> None:
    env = _env(tmp_path)
    code, output = _run_on_a_terminal(
        env, ["secret", "create", "typed", "-"], [b"s3cret-typed\n", b"s3cret-typed\n"]
    )
    assert code == 0, output
    assert b"s3cret-typed" not in output  # no echo
    with Store.open(tmp_path / "store", environ={"HOME": str(tmp_path / "home")}) as s:
        assert s.get("typed") == b"s3cret-typed"
    code, output = _run_on_a_terminal(
        env, ["secret", "create", "other", "-"], [b"one\n", b"two\n", b"\x03"]
    )
    assert code != 0
    assert b"match" in output.lower()
    piped = _cli(env, "secret", "create", "piped", "-", stdin=b"line\n")
    assert piped.returncode == 0
    with Store.open(tmp_path / "store", environ={"HOME": str(tmp_path / "home")}) as s:
        assert s.get("piped") == b"line\n"
        assert [i.name for i in s.list_secrets()] == ["piped", "typed"]
