"""The ``secret`` and ``store`` commands end to end, each one a real ``python -m composesecrets``
process with its own HOME, store and key file under ``tmp_path``.

Every value written contains ``CANARY``; every command's stdout and stderr is checked for it (in
raw, hex and base64 form) and for tracebacks as it runs, and again when each test ends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from composesecrets.store import KeyFileUnlock, Store, Usage

CANARY = f"CANARY-{uuid.uuid4()}"
ID_RE = re.compile(r"^[0-9a-z]{25}$")
DIGEST_RE = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")
VALUE_MAX = 511_999


def _canary_forms() -> list[str]:
    raw = CANARY.encode()
    forms = [CANARY, raw.hex(), raw.hex().upper()]
    for shift in range(3):  # base64 of the canary at any alignment inside a longer value
        encoded = base64.b64encode(b"\x00" * shift + raw).decode()
        start = -(-shift // 3) * 4
        end = ((shift + len(raw)) // 3) * 4
        forms += [encoded[start:end], encoded[start:end].replace("+", "-").replace("/", "_")]
    return forms


CANARY_FORMS = _canary_forms()


def leaked(text: str) -> list[str]:
    return [form for form in CANARY_FORMS if form in text]


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """A user's environment: HOME, store and key file in a temporary directory; no inherited
    COMPOSESECRETS_* or XDG_* variables."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.store = root / "store"
        self.key_file = root / "keys" / "master.key"
        self.values = root / "values"
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.values.mkdir(mode=0o700, exist_ok=True)
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("COMPOSESECRETS_", "XDG_")) and k != "HOME"
        }
        self.env.update(
            HOME=str(self.home),
            COMPOSESECRETS_HOME=str(self.store),
            COMPOSESECRETS_KEY_FILE=str(self.key_file),
        )
        self.results: list[Result] = []
        self._count = 0

    def __call__(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Result:
        full_env = {**self.env, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "composesecrets", *args],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            env=full_env,
            cwd=self.root,
            timeout=timeout,
            check=False,
        )
        result = Result(
            args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        self.results.append(result)
        self.check(result)
        return result

    @staticmethod
    def check(result: Result) -> None:
        output = result.stdout + result.stderr
        assert not leaked(output), f"canary printed by {result.args}: {output!r}"
        assert "Traceback" not in output, f"traceback from {result.args}: {output}"
        assert "internal error" not in output, f"internal error from {result.args}: {output}"

    def value(self, tag: str = "", size: int | None = None) -> bytes:
        """A fresh value that contains the canary (padded with random hex to ``size``)."""
        base = f"{CANARY}:{tag}:{uuid.uuid4().hex}".encode()
        if size is None:
            return base
        pad = os.urandom(size).hex().encode()
        return (base + pad)[:size]

    def value_file(self, tag: str = "", size: int | None = None, data: bytes | None = None) -> Path:
        self._count += 1
        path = self.values / f"v{self._count}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.value(tag, size) if data is None else data)
        return path

    def create(self, name: str, *labels: str) -> str:
        flags = [arg for label in labels for arg in ("--label", label)]
        result = self("secret", "create", *flags, name, str(self.value_file(name)))
        assert result.code == 0, result
        secret_id = result.stdout.strip()
        assert ID_RE.fullmatch(secret_id), result
        return secret_id

    def inspect(self, *names: str) -> list[dict[str, Any]]:
        result = self("secret", "inspect", *names)
        assert result.code == 0, result
        found: list[dict[str, Any]] = result.json()
        return found

    def names(self) -> list[str]:
        result = self("secret", "ls", "--format", "json")
        assert result.code == 0, result
        return [item["Spec"]["Name"] for item in result.json()]

    def snapshot(self) -> dict[str, str]:
        """SHA-256 of every file under the store and key directories (and their names)."""
        out: dict[str, str] = {}
        for root in (self.store, self.key_file.parent):
            if root.exists():
                for path in sorted(root.rglob("*")):
                    if path.is_file():
                        out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        return out

    def open_store(self) -> Store:
        return Store.open(self.store, unlock=KeyFileUnlock(self.key_file), create=False, environ={})


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    yield runner
    for result in runner.results:  # once more, over the whole test
        Cli.check(result)


def _other_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _flip(store_dir: Path, name: str, column: str, version: int = 1) -> None:
    conn = sqlite3.connect(store_dir / "store.db", isolation_level=None)
    try:
        query = (
            f"SELECT v.{column} FROM versions v JOIN secrets s ON s.id = v.secret_id"
            " WHERE s.name = ? AND v.version = ?"
        )
        data = bytearray(conn.execute(query, (name, version)).fetchone()[0])
        data[len(data) // 2] ^= 0x01
        cur = conn.execute(
            f"UPDATE versions SET {column} = ? WHERE version = ? AND secret_id ="
            " (SELECT id FROM secrets WHERE name = ?)",
            (bytes(data), version, name),
        )
        assert cur.rowcount == 1
    finally:
        conn.close()


def test_canary_check_sees_raw_hex_and_base64() -> None:
    value = f"xy{CANARY}z".encode()
    for text in (
        value.decode(),
        value.hex(),
        base64.b64encode(value).decode(),
        base64.urlsafe_b64encode(b"a" + value).decode(),
        base64.b64encode(b"ab" + value).decode(),
    ):
        assert leaked(f"out: {text}\n")
    assert not leaked("CANARY- nothing else")


# --------------------------------------------------------------------------- create / rotate


def test_create_from_file_and_stdin(cli: Cli) -> None:
    first = cli(
        "secret",
        "create",
        "--label",
        "team=infra",
        "--label",
        "bare",
        "db_pw",
        str(cli.value_file("db", size=100)),
    )
    assert first.code == 0, first
    assert ID_RE.fullmatch(first.stdout.strip()), first.stdout
    assert first.stdout.count("\n") == 1
    # first use: the key file is created 0600 with a one-line notice, the store dir is 0700
    assert "created key file" in first.stderr and str(cli.key_file) in first.stderr
    assert stat.S_IMODE(cli.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.store.stat().st_mode) == 0o700
    assert stat.S_IMODE((cli.store / "store.db").stat().st_mode) == 0o600

    piped = cli("secret", "create", "api.key-2", "-", stdin=cli.value("api", size=VALUE_MAX))
    assert piped.code == 0, piped
    assert ID_RE.fullmatch(piped.stdout.strip())
    assert "created key file" not in piped.stderr  # only once

    longest = "n" * 64
    assert cli("secret", "create", longest, str(cli.value_file())).code == 0

    details = {d["Spec"]["Name"]: d for d in cli.inspect("db_pw", piped.stdout.strip(), longest)}
    assert details["db_pw"]["ID"] == first.stdout.strip()
    assert details["db_pw"]["Spec"]["Labels"] == {"team": "infra", "bare": ""}
    assert details["db_pw"]["Versions"][0]["Size"] == 100
    assert details["api.key-2"]["Versions"][0]["Size"] == VALUE_MAX
    assert details["api.key-2"]["Version"]["Index"] == 1
    quiet = cli("secret", "ls", "-q")
    assert sorted(quiet.stdout.split()) == sorted(d["ID"] for d in details.values())


def test_rotate_adds_versions_and_inspect_never_shows_values(cli: Cli) -> None:
    secret_id = cli.create("token")
    rotated = cli("secret", "rotate", "token", str(cli.value_file("token-v2", size=300)))
    assert rotated.code == 0, rotated
    assert rotated.stdout.strip() == f"{secret_id} version 2"

    [details] = cli.inspect("token")
    assert details["ID"] == secret_id
    assert details["Version"]["Index"] == 2
    versions = details["Versions"]
    assert [v["Index"] for v in versions] == [1, 2]
    assert versions[1]["Size"] == 300
    assert versions[0]["Size"] == len(cli.value("token"))
    assert all(DIGEST_RE.fullmatch(v["Digest"]) for v in versions)
    assert versions[0]["Digest"] != versions[1]["Digest"]
    assert details["CreatedAt"] != details["UpdatedAt"]

    # inspect by unique ID prefix; rotate from standard input (rotate takes exact names only)
    assert cli.inspect(secret_id[:8])[0]["Spec"]["Name"] == "token"
    again = cli("secret", "rotate", "token", "-", stdin=cli.value("v3"))
    assert again.stdout.strip() == f"{secret_id} version 3"
    assert [v["Index"] for v in cli.inspect("token@3")[0]["Versions"]] == [3]

    missing = cli("secret", "rotate", "nope", str(cli.value_file()))
    assert missing.code == 5 and "no such secret: nope" in missing.stderr
    assert cli("secret", "inspect", "token", "nope").code == 5
    empty = cli("secret", "rotate", "token", str(cli.value_file(data=b"")))
    assert empty.code == 2 and "is empty" in empty.stderr
    assert cli.inspect("token")[0]["Version"]["Index"] == 3


# --------------------------------------------------------------------------- ls


def test_ls_table_quiet_json_and_filters(cli: Cli) -> None:
    ids = {
        "alpha": cli.create("alpha", "team=infra"),
        "alpha-2": cli.create("alpha-2", "team=web", "tier"),
        "beta": cli.create("beta"),
    }
    table = cli("secret", "ls")
    assert table.code == 0, table
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "VERSION", "CREATED", "UPDATED"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [(ids[n], n, "1") for n in sorted(ids)]
    assert all("ago" in line for line in lines[1:])

    assert cli("secret", "ls", "-q").stdout.split() == [ids[n] for n in sorted(ids)]

    listed = cli("secret", "ls", "--format", "json").json()
    assert [(i["ID"], i["Spec"]["Name"]) for i in listed] == [(ids[n], n) for n in sorted(ids)]
    assert listed[0]["Spec"]["Labels"] == {"team": "infra"}
    assert listed[0]["Version"]["Index"] == 1

    def names(*filters: str) -> list[str]:
        args = [arg for f in filters for arg in ("--filter", f)]
        result = cli("secret", "ls", "--format", "json", *args)
        assert result.code == 0, result
        return [i["Spec"]["Name"] for i in result.json()]

    assert names("name=alpha") == ["alpha", "alpha-2"]
    assert names("name=be", "name=alpha-") == ["alpha-2", "beta"]
    assert names("label=team") == ["alpha", "alpha-2"]
    assert names("label=team=web") == ["alpha-2"]
    assert names("label=tier", "name=alpha") == ["alpha-2"]
    assert names("name=zzz") == []
    assert cli("secret", "ls", "-q", "--filter", f"id={ids['beta'][:6]}").stdout.split() == [
        ids["beta"]
    ]
    bad = cli("secret", "ls", "--filter", "colour=red")
    assert bad.code == 2 and "invalid filter" in bad.stderr


def test_ls_without_a_store_is_empty_and_creates_nothing(cli: Cli) -> None:
    result = cli("secret", "ls")
    assert result.code == 0, result
    assert result.stdout.split() == ["ID", "NAME", "VERSION", "CREATED", "UPDATED"]
    assert not cli.store.exists() and not cli.key_file.exists()


# --------------------------------------------------------------------------- bad input


def _bad_cases(cli: Cli) -> list[tuple[str, list[str], bytes | None, int, str]]:
    """(what, args, stdin, exit code, regex the stderr must match)."""
    good = str(cli.value_file("good"))
    directory = cli.root / "a-directory"
    directory.mkdir()
    return [
        ("empty file", ["new1", str(cli.value_file(data=b""))], None, 2, r"is empty"),
        (
            "512000-byte file",
            ["new1", str(cli.value_file(size=VALUE_MAX + 1))],
            None,
            2,
            r"holds 512000 bytes.*less than 512000 bytes",
        ),
        ("directory", ["new1", str(directory)], None, 2, r"is a directory"),
        ("device", ["new1", "/dev/null"], None, 2, r"/dev/null is a device"),
        ("missing file", ["new1", str(cli.root / "nowhere")], None, 2, r"nowhere: no such file"),
        ("empty stdin", ["new1", "-"], b"", 2, r"standard input was empty"),
        ("oversize stdin", ["new1", "-"], cli.value(size=VALUE_MAX + 1), 2, r"512000 bytes"),
        ("name with space", ["a b", good], None, 2, r"invalid secret name 'a b'"),
        ("name leading dash", ["--", "-ab", good], None, 2, r"invalid secret name '-ab'"),
        ("name trailing dot", ["ab.", good], None, 2, r"invalid secret name 'ab\.'"),
        ("name with @", ["a@1", good], None, 2, r"invalid secret name"),
        ("65-char name", ["x" * 65, good], None, 2, r"invalid secret name.*\n.*65 characters"),
        ("empty name", ["", good], None, 2, r"secret name must be provided"),
        ("label empty key", ["--label", "=v", "new1", good], None, 2, r"invalid label key ''"),
        ("label key space", ["--label", "a b=v", "new1", good], None, 2, r"invalid label key"),
        (
            "label control char",
            ["--label", "k=a\tb", "new1", good],
            None,
            2,
            r"control characters",
        ),
        (
            "existing name",
            ["taken", good],
            None,
            6,
            r"secret taken already exists\nhint: .*composesecrets secret rotate taken",
        ),
    ]


def test_bad_input_is_refused_and_writes_nothing(cli: Cli) -> None:
    cli.create("taken")
    before = cli.snapshot()
    problems = []
    for what, args, stdin, code, pattern in _bad_cases(cli):
        result = cli("secret", "create", *args, stdin=stdin)
        if (
            result.code != code
            or not re.search(pattern, result.stderr)
            or not result.stderr.startswith("composesecrets: error: ")
            or result.stdout
        ):
            problems.append(f"{what}: exit {result.code}, stderr {result.stderr!r}")
        if cli.snapshot() != before:
            problems.append(f"{what}: the store or key directory changed")
    assert not problems, "\n".join(problems)
    assert cli.names() == ["taken"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_source_is_refused(cli: Cli) -> None:
    path = cli.value_file()
    path.chmod(0)
    result = cli("secret", "create", "new1", str(path))
    assert result.code == 2 and "cannot read" in result.stderr
    assert not cli.store.exists()


def test_bad_input_on_first_use_creates_no_store_or_key(cli: Cli) -> None:
    assert cli("secret", "create", "ok", "/dev/null").code == 2
    assert cli("secret", "create", "bad name", str(cli.value_file())).code == 2
    assert not cli.store.exists() and not cli.key_file.exists()


# --------------------------------------------------------------------------- rm


def test_rm_refuses_a_secret_in_use_and_reports_missing(cli: Cli) -> None:
    cli.create("used")
    free_id = cli.create("free1")
    cli.create("free2")
    cli.create("free3")
    with cli.open_store() as store:
        store.record_usage("shop", "compose", [Usage("used", "api"), Usage("used", "worker")])

    refused = cli("secret", "rm", "used")
    assert refused.code == 6, refused
    assert re.search(r"'used' is in use by stack 'shop' \(services: api, worker\)", refused.stderr)
    assert refused.stdout == ""
    [details] = cli.inspect("used")
    assert {(u["Stack"], u["Service"]) for u in details["UsedBy"]} == {
        ("shop", "api"),
        ("shop", "worker"),
    }

    missing = cli("secret", "rm", "ghost")
    assert missing.code == 5 and "no such secret: ghost" in missing.stderr

    removed = cli("secret", "rm", "free1", "free2")
    assert removed.code == 0, removed
    assert removed.stdout.split() == ["free1", "free2"]

    partly = cli("secret", "rm", "ghost", "free3")  # the others still go; the exit says why
    assert partly.code == 5 and partly.stdout.split() == ["free3"]
    assert cli.names() == ["used"]
    gone = cli("secret", "inspect", free_id)
    assert gone.code == 5


def test_rm_and_rotate_take_exact_names_only(cli: Cli) -> None:
    secret_id = cli.create("by-id")
    before = cli.inspect("by-id")
    for ref in (secret_id, secret_id[:6]):
        removed = cli("secret", "rm", ref)
        assert removed.code == 5 and f"no such secret: {ref}" in removed.stderr, removed
        rotated = cli("secret", "rotate", ref, str(cli.value_file("other")))
        assert rotated.code == 5 and f"no such secret: {ref}" in rotated.stderr, rotated
    assert cli.inspect("by-id") == before  # neither removed nor given a new version
    # inspect is read-only and interactive: it still takes an ID or a unique ID prefix
    assert cli.inspect(secret_id) == before == cli.inspect(secret_id[:6])
    result = cli("secret", "rm", "by-id")
    assert result.code == 0 and result.stdout.strip() == "by-id"
    assert cli.names() == []


def test_create_refuses_a_name_shaped_like_an_id(cli: Cli) -> None:
    shaped = "0123456789abcdefghijklmno"
    result = cli("secret", "create", shaped, str(cli.value_file()))
    assert result.code == 2 and "looks like a secret ID" in result.stderr, result
    assert cli.names() == []


# --------------------------------------------------------------------------- integrity


def test_tampering_is_reported_by_name(cli: Cli) -> None:
    columns = {
        "t-cipher": "ciphertext",
        "t-nonce": "nonce",
        "t-dek-nonce": "dek_nonce",
        "t-dek-wrapped": "dek_wrapped",
    }
    for name in [*columns, "intact"]:
        cli.create(name)
    ok = cli("store", "verify")
    assert ok.code == 0 and ok.stdout.strip() == "ok: 5 versions verified", ok

    for name, column in columns.items():
        _flip(cli.store, name, column)
    bad = cli("store", "verify")
    assert bad.code == 4, bad
    failed = re.findall(r"^FAILED (\S+) version 1 \(([0-9a-z]{25})\)", bad.stdout, re.M)
    assert sorted(n for n, _ in failed) == sorted(columns)
    assert "4 of 5 versions failed" in bad.stderr
    assert "ok:" not in bad.stdout

    # reading every value (re-keying) fails and names a damaged secret; nothing changes
    before = cli.snapshot()
    rekey = cli("store", "rotate-key")
    assert rekey.code == 4, rekey
    assert re.search(
        r"error: secret '(t-cipher|t-nonce|t-dek-nonce|t-dek-wrapped)' \([0-9a-z]{25}\) version 1"
        r" failed authentication",
        rekey.stderr,
    ), rekey
    assert rekey.stdout == ""
    assert cli.snapshot() == before
    assert not Path(str(cli.key_file) + ".new").exists()
    # metadata stays readable
    assert cli.names() == sorted([*columns, "intact"])


# --------------------------------------------------------------------------- locking


def test_wrong_key_is_refused_and_changes_nothing(cli: Cli) -> None:
    cli.create("kept")
    before = cli.snapshot()
    wrong = {"COMPOSESECRETS_KEY": _other_key()}
    for args in (
        ["secret", "create", "other", str(cli.value_file())],
        ["secret", "rotate", "kept", str(cli.value_file())],
        ["store", "verify"],
        ["store", "rotate-key"],
    ):
        result = cli(*args, env=wrong)
        assert result.code == 3, result
        assert "COMPOSESECRETS_KEY does not unlock the store" in result.stderr
        assert "hint:" in result.stderr
        assert cli.snapshot() == before, args

    malformed = cli("store", "verify", env={"COMPOSESECRETS_KEY": "not a key"})
    assert malformed.code == 3 and "not a base64-encoded 32-byte key" in malformed.stderr

    original = cli.key_file.read_bytes()
    cli.key_file.write_text(_other_key() + "\n")
    result = cli("store", "verify")
    assert result.code == 3 and f"key file {cli.key_file} does not unlock" in result.stderr
    cli.key_file.write_bytes(original)
    assert cli.snapshot() == before
    assert cli("store", "verify").code == 0


def test_unsafe_permissions_are_refused_with_a_chmod_hint(cli: Cli) -> None:
    cli.create("p")
    before = cli.snapshot()
    cli.key_file.chmod(0o644)
    result = cli("store", "verify")
    assert result.code == 7, result
    assert f"hint: run: chmod 600 {cli.key_file}" in result.stderr
    cli.key_file.chmod(0o600)

    cli.store.chmod(0o755)
    result = cli("secret", "ls")
    assert result.code == 7, result
    assert f"hint: run: chmod 700 {cli.store}" in result.stderr
    result = cli("secret", "create", "q", str(cli.value_file()))
    assert result.code == 7, result
    cli.store.chmod(0o700)

    db = cli.store / "store.db"
    db.chmod(0o640)
    result = cli("secret", "inspect", "p")
    assert result.code == 7 and f"chmod 600 {db}" in result.stderr
    db.chmod(0o600)
    assert cli.snapshot() == before
    assert cli.names() == ["p"]


PASSPHRASE = "correct horse battery"


def _switch_to_passphrase(cli: Cli) -> None:
    cli.create("pp")
    changed = cli(
        "store", "change-unlock", "passphrase", env={"COMPOSESECRETS_NEW_PASSPHRASE": PASSPHRASE}
    )
    assert changed.code == 0, changed
    assert changed.stdout.startswith("unlock method: passphrase")
    assert PASSPHRASE not in changed.stdout + changed.stderr
    assert "no longer opens this store's new data" in changed.stderr  # the old key file
    status = cli("store", "status", "--format", "json").json()
    assert status["UnlockMethod"] == "passphrase"
    assert status["KDF"].startswith(("argon2id", "scrypt"))


def test_passphrase_from_the_environment_unlocks(cli: Cli) -> None:
    _switch_to_passphrase(cli)
    right = cli("store", "verify", env={"COMPOSESECRETS_PASSPHRASE": PASSPHRASE})
    assert right.code == 0, right
    assert right.stdout.strip() == "ok: 1 version verified"
    rotated = cli(
        "secret",
        "rotate",
        "pp",
        str(cli.value_file()),
        env={"COMPOSESECRETS_PASSPHRASE": PASSPHRASE},
    )
    assert rotated.code == 0 and rotated.stdout.strip().endswith(" version 2"), rotated


def test_wrong_passphrase_is_refused_and_changes_nothing(cli: Cli) -> None:
    _switch_to_passphrase(cli)
    before = cli.snapshot()
    wrong = cli(
        "secret",
        "create",
        "x",
        str(cli.value_file()),
        env={"COMPOSESECRETS_PASSPHRASE": "not the passphrase"},
    )
    assert wrong.code == 3, wrong
    assert "wrong passphrase" in wrong.stderr
    assert cli.snapshot() == before


def test_passphrase_without_a_terminal_fails_fast(cli: Cli) -> None:
    _switch_to_passphrase(cli)
    before = cli.snapshot()
    # neither a passphrase nor a terminal: a clear refusal, not a hang
    none = cli("secret", "rotate", "pp", str(cli.value_file()), timeout=30)
    assert none.code == 3, none
    assert "passphrase" in none.stderr and "no terminal" in none.stderr
    assert "COMPOSESECRETS_PASSPHRASE" in none.stderr
    assert cli.snapshot() == before
    # names and metadata need no passphrase
    assert cli.names() == ["pp"]


def test_rotate_key_keeps_values_readable(cli: Cli) -> None:
    cli.create("a")
    cli.create("b")
    assert cli("secret", "rotate", "a", str(cli.value_file())).code == 0
    old_key = cli.key_file.read_text().strip()
    digests = [v["Digest"] for v in cli.inspect("a")[0]["Versions"]]

    rotated = cli("store", "rotate-key")
    assert rotated.code == 0, rotated
    assert rotated.stdout.splitlines()[0] == (
        "unlock method: keyfile; 3 data keys re-wrapped (key generation 2)"
    )
    new_key = cli.key_file.read_text().strip()
    assert new_key != old_key and len(base64.b64decode(new_key)) == 32
    assert stat.S_IMODE(cli.key_file.stat().st_mode) == 0o600
    assert not Path(str(cli.key_file) + ".new").exists()
    assert cli("store", "status", "--format", "json").json()["KeyGeneration"] == 2

    verify = cli("store", "verify")
    assert verify.code == 0 and verify.stdout.strip() == "ok: 3 versions verified", verify
    assert [v["Digest"] for v in cli.inspect("a")[0]["Versions"]] != digests
    stale = cli("store", "verify", env={"COMPOSESECRETS_KEY": old_key})
    assert stale.code == 3, stale
    assert cli("store", "verify", env={"COMPOSESECRETS_KEY": new_key}).code == 0


# --------------------------------------------------------------------------- audit


def test_audit_lists_actions_without_values(cli: Cli) -> None:
    cli.create("aud")
    cli.create("gone")
    assert cli("secret", "rotate", "aud", str(cli.value_file())).code == 0
    assert cli("secret", "rm", "gone").code == 0
    assert cli("store", "verify").code == 0

    entries = cli("store", "audit", "--format", "json").json()
    actions = [(e["Action"], e["Target"]) for e in entries]
    assert actions[0][0] == "init"
    assert actions[1:] == [
        ("create", "aud"),
        ("create", "gone"),
        ("rotate", "aud"),
        ("remove", "gone"),
        ("verify", actions[0][1]),
    ]
    assert [e["Seq"] for e in entries] == sorted(e["Seq"] for e in entries)
    assert all(e["Who"] and e["At"].endswith("Z") for e in entries)
    assert "version=2" in entries[3]["Detail"]

    newest = cli("store", "audit", "--format", "json", "--limit", "2").json()
    assert [e["Action"] for e in newest] == ["remove", "verify"]
    table = cli("store", "audit")
    header = ["SEQ", "AT", "WHO", "ACTION", "TARGET", "DETAIL"]
    assert table.stdout.splitlines()[0].split() == header
    assert len(table.stdout.splitlines()) == len(entries) + 1
