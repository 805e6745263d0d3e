"""Store behaviour: round trips, versions, retention, validation, usages, audit, filters."""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from unit.store_worker import expected_value, open_keyfile_store

from composesecrets.errors import ConflictError, InputError, NotFoundError
from composesecrets.store import (
    DEFAULT_RETENTION,
    SecretFilter,
    Store,
    Usage,
    check_name,
    new_id,
    parse_label,
    read_value,
    split_ref,
)
from composesecrets.store.ids import looks_like_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_keyfile_store(tmp_path / "store", tmp_path / "keys" / "master.key") as s:
        yield s


def test_round_trip_and_info(store: Store) -> None:
    info = store.create("db_password", b"s3cret\x00\xff", {"team": "infra"})
    assert looks_like_id(info.id) and len(info.id) == 25
    assert (info.name, info.version, info.labels) == ("db_password", 1, {"team": "infra"})
    assert store.get("db_password") == b"s3cret\x00\xff"
    assert store.inspect(info.id[:8], allow_id=True).info == info  # as Docker allows
    [listed] = store.list_secrets()
    assert listed == info


def test_ids_are_unique_base36() -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(looks_like_id(i) for i in ids)


def test_every_public_name_of_the_store_package_imports_lazily() -> None:
    """``composesecrets.store`` imports its submodules on first access (start-up): every name
    in ``__all__`` resolves, each to the object its submodule defines, and nothing else does."""
    import importlib

    import composesecrets.store as package

    assert set(package._LAZY) == set(package.__all__)
    for name in package.__all__:
        module = importlib.import_module(f"composesecrets.store.{package._LAZY[name]}")
        assert getattr(package, name) is getattr(module, name)
        assert name in dir(package)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        package.nothing_here  # noqa: B018


def test_reopen_keeps_values(tmp_path: Path) -> None:
    key = tmp_path / "k" / "master.key"
    with open_keyfile_store(tmp_path / "s", key) as s:
        s.create("a", b"one")
    with open_keyfile_store(tmp_path / "s", key, create=False) as s:
        assert s.get("a") == b"one"


def test_open_missing_store_without_create(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        Store.open(tmp_path / "nope", create=False, environ={})
    assert err.value.exit_code == 5
    assert not (tmp_path / "nope").exists()


def test_default_directory_from_environment(tmp_path: Path) -> None:
    env = {
        "COMPOSESECRETS_HOME": str(tmp_path / "home"),
        "COMPOSESECRETS_KEY_FILE": str(tmp_path / "k"),
    }
    with Store.open(environ=env) as s:
        s.create("x", b"v")
        assert s.directory == tmp_path / "home"
    assert (tmp_path / "home" / "store.db").is_file()
    assert (tmp_path / "k").is_file()
    env2 = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "COMPOSESECRETS_KEY_FILE": str(tmp_path / "k")}
    with Store.open(environ=env2) as s:
        assert s.directory == tmp_path / "xdg" / "composesecrets"


def test_versions_and_refs(store: Store) -> None:
    info = store.create("api", b"v1")
    rotated = store.rotate("api", b"v2")
    assert rotated.version == 2 and rotated.id == info.id
    assert rotated.updated_at >= info.updated_at and rotated.created_at == info.created_at
    store.rotate("api", b"v3")
    assert store.get("api") == b"v3"
    assert store.get("api@1") == b"v1"
    assert store.get("api@2") == b"v2"
    assert store.get("api", 2) == b"v2"
    assert store.get("api@2", 2) == b"v2"
    with pytest.raises(InputError):
        store.get("api@2", 3)
    with pytest.raises(InputError):
        store.get("api@0")
    with pytest.raises(NotFoundError, match="no version 9"):
        store.get("api@9")
    with pytest.raises(NotFoundError, match="no such secret: nope"):
        store.get("nope")
    with pytest.raises(InputError):
        store.rotate("api@2", b"x")
    details = store.inspect("api")
    assert [v.version for v in details.versions] == [1, 2, 3]
    assert [v.size for v in details.versions] == [2, 2, 2]
    assert store.inspect("api@2").versions[0].version == 2


def test_inspect_docker_shape_has_no_value(store: Store) -> None:
    store.create("tok", b"VALUE-xyz-123", {"a": "b"})
    store.rotate("tok", b"VALUE-xyz-123")
    doc = store.inspect("tok").to_docker()
    assert doc["Spec"] == {"Name": "tok", "Labels": {"a": "b"}}
    assert doc["Version"] == {"Index": 2}
    assert doc["CreatedAt"].endswith("Z") and doc["UpdatedAt"].endswith("Z")
    digests = [v["Digest"] for v in doc["Versions"]]
    assert digests[0] == digests[1]  # same value, same keyed digest
    assert digests[0].startswith("hmac-sha256:")
    import hashlib

    plain = hashlib.sha256(b"VALUE-xyz-123").hexdigest()
    assert plain not in str(doc) and "VALUE-xyz-123" not in str(doc)
    store.rotate("tok", b"other")
    assert store.inspect("tok").versions[-1].digest != digests[0]


def test_default_retention_keeps_last_ten(store: Store) -> None:
    assert store.retention == DEFAULT_RETENTION == 10
    store.create("r", b"1")
    for v in range(2, 13):
        store.rotate("r", str(v).encode())
    assert [v.version for v in store.inspect("r").versions] == list(range(3, 13))
    with pytest.raises(NotFoundError, match="no longer kept"):
        store.get("r@2")
    assert store.get("r@3") == b"3"


def test_retention_never_prunes_a_used_version(tmp_path: Path) -> None:
    with open_keyfile_store(tmp_path / "s", tmp_path / "k", retention=3) as s:
        s.create("db", b"v1")
        s.record_usage("web", "swarm", [Usage("db", "api")])
        for v in range(2, 7):
            s.rotate("db", f"v{v}".encode())
        assert [v.version for v in s.inspect("db").versions] == [1, 4, 5, 6]
        assert s.get("db@1") == b"v1"
        # Re-deploying the stack at the current version releases version 1.
        s.record_usage("web", "swarm", [Usage("db", "api")])
        assert [v.version for v in s.inspect("db").versions] == [4, 5, 6]
        s.record_usage("web", "swarm", [Usage("db@4", "api")])
        s.rotate("db", b"v7")
        s.rotate("db", b"v8")
        assert [v.version for v in s.inspect("db").versions] == [4, 6, 7, 8]
        assert s.clear_usage("web") == 1
        assert [v.version for v in s.inspect("db").versions] == [6, 7, 8]


@pytest.mark.parametrize(
    "name",
    ["", "-a", "a-", ".a", "a.", "_a", "a b", "a/b", "a@b", "é", "a\n", "x" * 65],
)
def test_bad_names_refused(store: Store, name: str) -> None:
    with pytest.raises(InputError) as err:
        store.create(name, b"v")
    assert err.value.exit_code == 2
    assert err.value.hint
    assert store.list_secrets() == []
    assert store.audit(action="create") == []


@pytest.mark.parametrize("name", ["a", "A9", "a.b_c-d", "x" * 64, "0_0"])
def test_good_names_accepted(store: Store, name: str) -> None:
    assert check_name(name) == name
    assert store.create(name, b"v").name == name


def test_value_sizes(store: Store) -> None:
    with pytest.raises(InputError, match="larger than 0 and less than 512000 bytes"):
        store.create("empty", b"")
    with pytest.raises(InputError, match="512000"):
        store.create("big", b"x" * 512_000)
    store.create("ok", b"x" * 511_999)
    assert len(store.get("ok")) == 511_999
    with pytest.raises(InputError):
        store.rotate("ok", b"")
    with pytest.raises(InputError):
        store.rotate("ok", b"y" * 512_000)
    assert [i.name for i in store.list_secrets()] == ["ok"]
    assert store.inspect("ok").info.version == 1


@pytest.mark.parametrize(
    "labels",
    [{"": "x"}, {"a=b": "x"}, {" a": "x"}, {"a b": "x"}, {"a": "line\nbreak"}, {"k\x00": "v"}],
)
def test_bad_labels_refused(store: Store, labels: dict[str, str]) -> None:
    with pytest.raises(InputError):
        store.create("x", b"v", labels)
    assert store.list_secrets() == []


def test_parse_label_and_split_ref() -> None:
    assert parse_label("team=infra=x") == ("team", "infra=x")
    assert parse_label("flag") == ("flag", "")
    with pytest.raises(InputError):
        parse_label("=v")
    assert split_ref("db@3") == ("db", 3)
    assert split_ref("db") == ("db", None)
    with pytest.raises(InputError):
        split_ref("db@x")


def test_existing_name_conflict_hints_rotate(store: Store) -> None:
    store.create("dup", b"1")
    with pytest.raises(ConflictError) as err:
        store.create("dup", b"2")
    assert err.value.exit_code == 6
    assert err.value.hint is not None and "rotate" in err.value.hint
    assert store.get("dup") == b"1"


def test_list_filters(store: Store) -> None:
    a = store.create("app_db", b"1", {"team": "infra", "env": "prod"})
    store.create("app_cache", b"1", {"team": "web"})
    store.create("other", b"1")
    assert [i.name for i in store.list_secrets()] == ["app_cache", "app_db", "other"]
    assert [i.name for i in store.list_secrets(["name=app"])] == ["app_cache", "app_db"]
    assert [i.name for i in store.list_secrets(["name=oth", "name=app_d"])] == ["app_db", "other"]
    assert [i.name for i in store.list_secrets(["label=team"])] == ["app_cache", "app_db"]
    assert [i.name for i in store.list_secrets(["label=team=infra"])] == ["app_db"]
    assert [i.name for i in store.list_secrets(["label=team", "label=env=prod"])] == ["app_db"]
    assert [i.name for i in store.list_secrets(SecretFilter(ids=(a.id[:6],)))] == ["app_db"]
    with pytest.raises(InputError):
        store.list_secrets(["colour=red"])
    with pytest.raises(InputError):
        store.list_secrets(["name"])


def test_remove_and_usage_records(store: Store) -> None:
    store.create("db", b"1")
    store.create("tls", b"1")
    recs = store.record_usage(
        "shop", "swarm", [Usage("db", "api"), Usage("db", "worker"), Usage("tls", "web")]
    )
    assert {(r.secret_name, r.service, r.version) for r in recs} == {
        ("db", "api", 1),
        ("db", "worker", 1),
        ("tls", "web", 1),
    }
    store.record_usage("blog", "compose", [Usage("db", "wp")])
    with pytest.raises(ConflictError) as err:
        store.remove("db")
    message = str(err.value)
    for word in ("db", "shop", "api", "worker", "blog", "wp"):
        assert word in message
    assert err.value.exit_code == 6
    assert store.get("db") == b"1"
    # Recording again replaces the stack's previous set.
    store.record_usage("shop", "swarm", [Usage("tls", "web")])
    assert {(r.stack, r.service) for r in store.usages(secret="db")} == {("blog", "wp")}
    assert [r.secret_name for r in store.usages(stack="shop")] == ["tls"]
    assert store.clear_usage("blog") == 1
    removed = store.remove("db")
    assert removed.name == "db"
    with pytest.raises(NotFoundError):
        store.get("db")
    with pytest.raises(NotFoundError):
        store.remove("db")
    with pytest.raises(NotFoundError):
        store.record_usage("x", "swarm", [Usage("nope", "svc")])
    with pytest.raises(NotFoundError):
        store.record_usage("x", "swarm", [Usage("tls@5", "svc")])


def test_import_many_is_one_transaction(store: Store) -> None:
    items = [(f"s{i:04d}", expected_value(f"s{i}", 1), {"n": str(i)}) for i in range(1000)]
    infos = store.import_many(items)
    assert len(infos) == 1000 and len({i.id for i in infos}) == 1000
    assert store.get("s0999") == expected_value("s999", 1)
    assert store.list_secrets(["label=n=7"])[0].name == "s0007"
    # One clash: nothing of the batch is written.
    with pytest.raises(ConflictError):
        store.import_many([("fresh1", b"x", None), ("s0001", b"x", None)])
    with pytest.raises(InputError):
        store.import_many([("fresh2", b"x", None), ("fresh2", b"y", None)])
    with pytest.raises(InputError):
        store.import_many([("fresh3", b"x", None), ("bad name", b"y", None)])
    assert store.list_secrets(["name=fresh"]) == []
    assert store.import_many([]) == []


def test_audit_records_actions_and_is_append_only(store: Store) -> None:
    store.create("a", b"secret-value-1")
    store.rotate("a", b"secret-value-2")
    store.get("a", reason="deploy web")
    store.get("a", audit=False)
    store.remove("a")
    actions = [(e.action, e.target) for e in store.audit()]
    assert actions == [
        ("init", store.store_id),
        ("create", "a"),
        ("rotate", "a"),
        ("read", "a@2"),
        ("remove", "a"),
    ]
    entries = store.audit()
    assert all(e.who for e in entries)
    assert store.audit(action="read")[0].detail == "deploy web"
    assert [e.action for e in store.audit(limit=2)] == ["read", "remove"]
    assert "secret-value" not in repr(entries)
    conn = sqlite3.connect(store.database)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET who = 'mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
    finally:
        conn.close()
    assert len(store.audit()) == 5


def test_status_without_unlocking(tmp_path: Path) -> None:
    key = tmp_path / "k"
    with open_keyfile_store(tmp_path / "s", key) as s:
        status = s.status()
        assert not status.initialised and status.unlock_method is None
        s.create("a", b"1")
        s.rotate("a", b"2")
        s.record_usage("st", "swarm", [Usage("a", "svc")])
    key.unlink()  # without the key, metadata stays readable (as in Swarm)
    with open_keyfile_store(tmp_path / "s", key, create=False) as s:
        status = s.status()
        assert status.initialised and status.unlock_method == "keyfile"
        assert (status.secrets, status.versions, status.stacks) == (1, 2, ("st",))
        assert status.key_file == key
        assert [i.name for i in s.list_secrets()] == ["a"]
        assert s.inspect("a").info.version == 2
        assert status.to_json()["Secrets"] == 1


def test_read_value_sources(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(b"value\n")
    assert read_value(good) == b"value\n"
    assert read_value("-", stdin=io.BytesIO(b"from stdin")) == b"from stdin"
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 511_999)
    assert len(read_value(exact)) == 511_999
    big = tmp_path / "big"
    big.write_bytes(b"x" * 512_000)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    cases: list[tuple[str | Path, str]] = [
        (tmp_path / "missing", "no such file"),
        (tmp_path, "is a directory"),
        ("/dev/null", "device"),
        (empty, "is empty"),
        (big, "512000"),
    ]
    for source, message in cases:
        with pytest.raises(InputError, match=message) as err:
            read_value(source)
        assert err.value.exit_code == 2 and err.value.hint
    with pytest.raises(InputError, match="empty"):
        read_value("-", stdin=io.BytesIO(b""))
    with pytest.raises(InputError, match="512000"):
        read_value("-", stdin=io.BytesIO(b"y" * 600_000))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_read_value_unreadable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.write_bytes(b"v")
    locked.chmod(0)
    with pytest.raises(InputError, match="cannot read"):
        read_value(locked)


def test_remove_many_is_all_or_nothing(store: Store) -> None:
    for name in ("a", "b", "c"):
        store.create(name, b"v-" + name.encode())
    store.record_usage("web", "engine", [Usage("b", "api")])
    with pytest.raises(ConflictError, match="'b'"):
        store.remove_many(["a", "b", "c"])
    assert sorted(i.name for i in store.list_secrets()) == ["a", "b", "c"]
    assert [i.name for i in store.remove_many(["a", "c"])] == ["a", "c"]
    assert [i.name for i in store.list_secrets()] == ["b"]
    assert [e.target for e in store.audit(action="remove")] == ["a", "c"]


# --------------------------------------------------------------------------- exact names


def test_deploy_and_mutations_resolve_exact_names_never_ids(store: Store) -> None:
    victim = store.create("victim", b"v1")
    prefix = victim.id[:6]  # a valid secret name that is also a unique prefix of victim's ID
    for ref in (prefix, victim.id):
        with pytest.raises(NotFoundError):
            store.get(ref)
        with pytest.raises(NotFoundError):
            store.rotate(ref, b"overwritten")
        with pytest.raises(NotFoundError):
            store.remove(ref)
        with pytest.raises(NotFoundError):
            store.remove_many([ref])
        with pytest.raises(NotFoundError):
            store.record_usage("shop", "fake", [Usage(ref, "web")])
        with pytest.raises(NotFoundError):
            store.usages(secret=ref)
        with pytest.raises(NotFoundError):
            store.inspect(ref)  # the API default is an exact name, as deploy needs
    assert store.get("victim") == b"v1"
    assert store.inspect("victim").info.version == 1
    assert store.usages() == []


def test_interactive_inspect_and_filters_still_accept_ids(store: Store) -> None:
    victim = store.create("victim", b"v1")
    assert store.inspect(victim.id, allow_id=True).info == victim
    assert store.inspect(victim.id[:6], allow_id=True).info == victim
    assert store.inspect("victim", allow_id=True).info == victim
    assert store.list_secrets([f"id={victim.id[:6]}"]) == [victim]


def test_a_name_equal_to_another_secrets_id_prefix_is_its_own_secret(store: Store) -> None:
    victim = store.create("victim", b"v1")
    prefix = victim.id[:6]
    mine = store.create(prefix, b"mine")
    assert mine.id != victim.id
    assert store.get(prefix) == b"mine"
    assert store.rotate(prefix, b"mine2").id == mine.id
    assert store.get("victim") == b"v1"


def test_names_shaped_like_ids_are_refused(store: Store) -> None:
    shaped = new_id()
    with pytest.raises(InputError, match="looks like a secret ID"):
        check_name(shaped)
    with pytest.raises(InputError, match="looks like a secret ID"):
        store.create(shaped, b"x")
    with pytest.raises(InputError, match="looks like a secret ID"):
        store.import_many([(shaped, b"x", None)])
    assert store.list_secrets() == []
    for fine in (shaped[:24], shaped + "x", shaped.upper(), shaped[:12] + "-" + shaped[13:]):
        check_name(fine)
