"""The compose JSON schemas (schemas/compose_v3.*.json) and Docker's format checks.

The verdict table below is checked twice: against our schemas with python-jsonschema
(always), and against `docker stack config` (tests marked `oracle`, skipped when no docker
CLI with `stack config` is on PATH). Every document is written without `$`, so Docker's
interpolation leaves it unchanged, and the expected verdict is the *schema* verdict: a
document that passes the schema but that Docker's loader rejects later (a float port, a
non-duration healthcheck interval in 3.1) counts as valid here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from docker_oracle import find_docker

from composesecrets.compose.formats import FORMAT_CHECKER, is_docker_port_spec, is_go_duration

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
MINORS = range(14)
ALL = frozenset(MINORS)
NONE: frozenset[int] = frozenset()
Doc = dict[str, Any]


def since(minor: int) -> frozenset[int]:
    return frozenset(range(minor, 14))


def between(first: int, last: int) -> frozenset[int]:
    return frozenset(range(first, last + 1))


@cache
def schema(minor: int) -> Doc:
    data: Doc = json.loads((SCHEMA_DIR / f"compose_v3.{minor}.json").read_text(encoding="utf-8"))
    return data


@cache
def validator(minor: int) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(schema(minor), format_checker=FORMAT_CHECKER)


@cache
def build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_schemas", SCHEMA_DIR / "build_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- schema files


@pytest.mark.parametrize("minor", MINORS)
def test_schema_file_is_a_draft4_schema(minor: int) -> None:
    data = schema(minor)
    assert data["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert data["$id"] == f"https://composesecrets.dev/schemas/compose_v3.{minor}.json"
    jsonschema.Draft4Validator.check_schema(data)

    def ids(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("id"), str):
                yield node["id"]
            for value in node.values():
                yield from ids(value)
        elif isinstance(node, list):
            for value in node:
                yield from ids(value)

    # draft-04 treats "id" as a base-URI change, which would break "#/definitions/..." refs.
    assert list(ids(data)) == []
    # Every $ref resolves: validating a document that uses each definition must not raise.
    doc = {
        "version": f"3.{minor}",
        "services": {"web": {"image": "x", "deploy": {}, "healthcheck": {}, "dns": "1.1.1.1"}},
        "networks": {"n": {}},
        "volumes": {"v": {}},
    }
    assert validator(minor).is_valid(doc)


@pytest.mark.parametrize("minor", MINORS)
def test_committed_schema_matches_generator(minor: int) -> None:
    build = build_module()
    path = SCHEMA_DIR / f"compose_v3.{minor}.json"
    assert path.read_text(encoding="utf-8") == build.render(minor), (
        "schemas are stale: run `python schemas/build_schemas.py`"
    )


def test_only_docker_formats_are_checked() -> None:
    assert set(FORMAT_CHECKER.checkers) == {"duration", "ports", "expose"}
    for fmt in ("email", "ipv4", "hostname", "date-time", "regex", "uri"):
        loose = jsonschema.Draft4Validator(
            {"type": "string", "format": fmt}, format_checker=FORMAT_CHECKER
        )
        assert loose.is_valid("[not a valid value")


# --------------------------------------------------------------------------- verdict table


@dataclass(frozen=True)
class Case:
    name: str
    doc: Callable[[str], Doc]
    valid: frozenset[int]  # the minors 3.<m> whose schema accepts the document

    def __str__(self) -> str:
        return self.name


def root(v: str, **sections: Any) -> Doc:
    return {"version": v, **sections}


def svc(v: str, keys: Doc) -> Doc:
    return {"version": v, "services": {"web": {"image": "busybox", **keys}}}


def deploy(v: str, keys: Doc | None) -> Doc:
    return svc(v, {"deploy": keys})


def secret(v: str, definition: Any) -> Doc:
    return {"version": v, "secrets": {"s": definition}}


def config(v: str, definition: Any) -> Doc:
    return {"version": v, "configs": {"c": definition}}


def network(v: str, definition: Any) -> Doc:
    return {"version": v, "networks": {"n": definition}}


def volume(v: str, definition: Any) -> Doc:
    return {"version": v, "volumes": {"v": definition}}


CASES = [
    # ---- top level
    Case("version only", lambda v: root(v), ALL),
    Case("version not a string", lambda v: {"version": 3}, NONE),
    Case("no services, only networks", lambda v: root(v, networks={"front": {}}), ALL),
    Case("services null", lambda v: root(v, services=None), NONE),
    Case("services empty", lambda v: root(v, services={}), ALL),
    Case("unknown root key", lambda v: root(v, foo=1), NONE),
    Case("x- root key", lambda v: {"version": v, "x-common": {"a": 1}}, since(4)),
    Case("root secrets", lambda v: secret(v, {"file": "./s.txt"}), since(1)),
    Case("root configs", lambda v: config(v, {"file": "./c.txt"}), since(3)),
    Case("service name with space", lambda v: root(v, services={"a b": {"image": "x"}}), NONE),
    Case(
        "service name ends in newline", lambda v: root(v, services={"web\n": {"image": "x"}}), NONE
    ),
    Case("service null", lambda v: root(v, services={"web": None}), NONE),
    Case("service without image or build", lambda v: root(v, services={"web": {}}), ALL),
    Case("unchecked network name", lambda v: root(v, networks={"a b": {"foo": 1}}), ALL),
    Case("bad volume name", lambda v: root(v, volumes={"a b": {}}), NONE),
    # ---- service keys by version
    Case("init", lambda v: svc(v, {"init": True}), since(7)),
    Case("x- service key", lambda v: svc(v, {"x-note": "hi"}), since(7)),
    Case("unknown service key", lambda v: svc(v, {"imagee": "x"}), NONE),
    Case("isolation", lambda v: svc(v, {"isolation": "default"}), since(5)),
    Case("cgroupns_mode", lambda v: svc(v, {"cgroupns_mode": "host"}), since(9)),
    Case("oom_score_adj", lambda v: svc(v, {"oom_score_adj": 100}), since(13)),
    Case("credential_spec file", lambda v: svc(v, {"credential_spec": {"file": "f"}}), since(3)),
    Case(
        "credential_spec config", lambda v: svc(v, {"credential_spec": {"config": "c"}}), since(8)
    ),
    Case("service configs", lambda v: svc(v, {"configs": ["c"]}), since(3)),
    Case("build cache_from", lambda v: svc(v, {"build": {"cache_from": ["a"]}}), since(2)),
    Case("build labels", lambda v: svc(v, {"build": {"labels": ["a=b"]}}), since(3)),
    Case("build target", lambda v: svc(v, {"build": {"target": "t"}}), since(4)),
    Case("build shm_size", lambda v: svc(v, {"build": {"shm_size": 1024}}), since(5)),
    Case("build shm_size float", lambda v: svc(v, {"build": {"shm_size": 1.5}}), NONE),
    Case(
        "build extra_hosts", lambda v: svc(v, {"build": {"extra_hosts": ["a:1.2.3.4"]}}), since(9)
    ),
    Case("build unknown key", lambda v: svc(v, {"build": {"context": ".", "foo": 1}}), since(11)),
    Case(
        "service network driver_opts",
        lambda v: svc(v, {"networks": {"n": {"driver_opts": {"a": "b"}}}}),
        since(13),
    ),
    Case("service network null entry", lambda v: svc(v, {"networks": {"n": None}}), ALL),
    # ---- healthcheck and durations
    Case(
        "healthcheck start_period",
        lambda v: svc(v, {"healthcheck": {"start_period": "30s"}}),
        since(4),
    ),
    Case(
        "healthcheck start_interval",
        lambda v: svc(v, {"healthcheck": {"start_interval": "5s"}}),
        since(12),
    ),
    # 3.0-3.3 do not check the format (Docker's loader then fails on it).
    Case(
        "healthcheck interval without unit",
        lambda v: svc(v, {"healthcheck": {"interval": "10"}}),
        between(0, 3),
    ),
    Case("healthcheck retries float", lambda v: svc(v, {"healthcheck": {"retries": 3.5}}), ALL),
    Case("stop_grace_period", lambda v: svc(v, {"stop_grace_period": "1m30.5s"}), ALL),
    Case("stop_grace_period without unit", lambda v: svc(v, {"stop_grace_period": "90"}), NONE),
    Case("stop_grace_period number", lambda v: svc(v, {"stop_grace_period": 90}), NONE),
    # ---- deploy
    Case("deploy null", lambda v: deploy(v, None), ALL),
    Case("replicas 1.0 counts as integer", lambda v: deploy(v, {"replicas": 1.0}), ALL),
    Case("replicas 1.5", lambda v: deploy(v, {"replicas": 1.5}), NONE),
    Case("replicas string", lambda v: deploy(v, {"replicas": "2"}), NONE),
    Case("endpoint_mode", lambda v: deploy(v, {"endpoint_mode": "dnsrr"}), since(2)),
    Case("rollback_config", lambda v: deploy(v, {"rollback_config": {"parallelism": 1}}), since(7)),
    Case(
        "update_config order",
        lambda v: deploy(v, {"update_config": {"order": "start-first"}}),
        since(4),
    ),
    Case("update_config bad order", lambda v: deploy(v, {"update_config": {"order": "up"}}), NONE),
    Case(
        "placement max_replicas_per_node",
        lambda v: deploy(v, {"placement": {"max_replicas_per_node": 2}}),
        since(8),
    ),
    Case(
        "placement preferences",
        lambda v: deploy(v, {"placement": {"preferences": [{"spread": "node.id"}]}}),
        since(3),
    ),
    Case(
        "resources limits pids",
        lambda v: deploy(v, {"resources": {"limits": {"pids": 10}}}),
        since(9),
    ),
    Case(
        "generic_resources",
        lambda v: deploy(
            v,
            {
                "resources": {
                    "reservations": {
                        "generic_resources": [
                            {"discrete_resource_spec": {"kind": "gpu", "value": 2}}
                        ]
                    }
                }
            },
        ),
        since(5),
    ),
    # ---- ports, expose, volumes, uniqueness
    Case("ports short", lambda v: svc(v, {"ports": ["8080:80/udp", 443]}), ALL),
    Case(
        "ports long syntax",
        lambda v: svc(v, {"ports": [{"target": 80, "published": 8080}]}),
        since(2),
    ),
    Case(
        "ports long syntax unknown key", lambda v: svc(v, {"ports": [{"target": 80, "x": 1}]}), NONE
    ),
    Case("ports duplicate", lambda v: svc(v, {"ports": ["80:80", "80:80"]}), NONE),
    Case("ports 80 and 80.0 are duplicates", lambda v: svc(v, {"ports": [80, 80.0]}), NONE),
    Case("ports negative number", lambda v: svc(v, {"ports": [-1]}), NONE),
    Case("ports bad string", lambda v: svc(v, {"ports": ["80:90-91"]}), NONE),
    Case("ports float numerator is a port", lambda v: svc(v, {"ports": [2.5]}), ALL),
    Case("expose is not format-checked", lambda v: svc(v, {"expose": ["abc", -1]}), ALL),
    Case("expose bool", lambda v: svc(v, {"expose": [True]}), NONE),
    Case("cap_add duplicate", lambda v: svc(v, {"cap_add": ["NET_ADMIN", "NET_ADMIN"]}), NONE),
    # 3.2 moved uniqueItems onto the item schema, where it does nothing.
    Case("volumes duplicate", lambda v: svc(v, {"volumes": ["a:/a", "a:/a"]}), since(2)),
    Case(
        "volumes long syntax",
        lambda v: svc(v, {"volumes": [{"type": "volume", "source": "a", "target": "/a"}]}),
        since(2),
    ),
    Case(
        "volumes long syntax tmpfs size",
        lambda v: svc(v, {"volumes": [{"type": "tmpfs", "target": "/t", "tmpfs": {"size": 1}}]}),
        since(6),
    ),
    Case(
        "volumes long syntax negative tmpfs size",
        lambda v: svc(v, {"volumes": [{"type": "tmpfs", "target": "/t", "tmpfs": {"size": -1}}]}),
        NONE,
    ),
    Case(
        "volumes long syntax without type", lambda v: svc(v, {"volumes": [{"target": "/a"}]}), NONE
    ),
    Case(
        "ulimits soft and hard",
        lambda v: svc(v, {"ulimits": {"nofile": {"soft": 1, "hard": 2}}}),
        ALL,
    ),
    Case("ulimits soft only", lambda v: svc(v, {"ulimits": {"nofile": {"soft": 1}}}), NONE),
    Case("environment list value", lambda v: svc(v, {"environment": {"A": [1]}}), NONE),
    Case("environment null value", lambda v: svc(v, {"environment": {"A": None}}), ALL),
    Case("labels duplicate", lambda v: svc(v, {"labels": ["a=b", "a=b"]}), NONE),
    Case(
        "logging option with list value",
        lambda v: svc(v, {"logging": {"options": {"a": [1]}}}),
        NONE,
    ),
    # Go's `$` does not match before a trailing newline, so "^.+$" does not match this key.
    Case(
        "logging option key ending in newline is unchecked",
        lambda v: svc(v, {"logging": {"options": {"a\n": [1]}}}),
        ALL,
    ),
    Case("pid null", lambda v: svc(v, {"pid": None}), ALL),
    # ---- service-level secrets
    Case("service secrets short", lambda v: svc(v, {"secrets": ["s"]}), since(1)),
    Case(
        "service secrets long with unknown keys",
        lambda v: svc(v, {"secrets": [{"source": "s", "targte": "x", "required": True}]}),
        since(1),
    ),
    Case(
        "service secrets long without source",
        lambda v: svc(v, {"secrets": [{"target": "x"}]}),
        since(1),
    ),
    Case(
        "service secrets uid/gid strings, mode number",
        lambda v: svc(v, {"secrets": [{"source": "s", "uid": "1000", "gid": "1000", "mode": 288}]}),
        since(1),
    ),
    Case(
        "service secrets mode float",
        lambda v: svc(v, {"secrets": [{"source": "s", "mode": 292.5}]}),
        since(1),
    ),
    Case(
        "service secrets mode string",
        lambda v: svc(v, {"secrets": [{"source": "s", "mode": "0440"}]}),
        NONE,
    ),
    Case(
        "service secrets uid int",
        lambda v: svc(v, {"secrets": [{"source": "s", "uid": 1000}]}),
        NONE,
    ),
    Case("service secrets short int", lambda v: svc(v, {"secrets": [123]}), NONE),
    Case("service secrets not a list", lambda v: svc(v, {"secrets": "s"}), NONE),
    # ---- top-level secrets
    Case("secret name", lambda v: secret(v, {"name": "prod_s", "file": "./s.txt"}), since(5)),
    Case("secret x- key", lambda v: secret(v, {"file": "./s.txt", "x-owner": "me"}), since(7)),
    Case("secret driver", lambda v: secret(v, {"driver": "vault"}), since(8)),
    Case(
        "secret driver_opts",
        lambda v: secret(v, {"external": True, "driver_opts": {"a": 1}}),
        since(8),
    ),
    Case("secret driver_opts list", lambda v: secret(v, {"driver_opts": {"a": [1]}}), NONE),
    Case(
        "secret template_driver",
        lambda v: secret(v, {"file": "./s.txt", "template_driver": "golang"}),
        since(8),
    ),
    Case("secret unknown key", lambda v: secret(v, {"file": "./s.txt", "mode": 256}), NONE),
    Case("secret environment key", lambda v: secret(v, {"environment": "TOKEN"}), NONE),
    Case(
        "secret external object with extra key",
        lambda v: secret(v, {"external": {"name": "x", "foo": 1}}),
        since(1),
    ),
    Case("secret external string", lambda v: secret(v, {"external": "yes"}), NONE),
    Case(
        "secret labels dict",
        lambda v: secret(v, {"file": "./s.txt", "labels": {"a": "b"}}),
        since(1),
    ),
    Case("secret labels string", lambda v: secret(v, {"file": "./s.txt", "labels": "a=b"}), NONE),
    Case("secret file int", lambda v: secret(v, {"file": 5}), NONE),
    Case("secret definition null", lambda v: secret(v, None), NONE),
    Case("secret definition empty", lambda v: secret(v, {}), since(1)),
    Case("secret key with space", lambda v: root(v, secrets={"a b": {"file": "./s.txt"}}), NONE),
    # ---- configs, networks, volumes
    Case("config name", lambda v: config(v, {"name": "c1", "file": "./c.txt"}), since(5)),
    Case("config x- key", lambda v: config(v, {"file": "./c.txt", "x-a": 1}), since(7)),
    Case(
        "config template_driver",
        lambda v: config(v, {"file": "./c.txt", "template_driver": "golang"}),
        since(8),
    ),
    Case("network name", lambda v: network(v, {"name": "front"}), since(5)),
    Case("network attachable", lambda v: network(v, {"attachable": True}), since(2)),
    Case("network x- key", lambda v: network(v, {"x-a": 1}), since(7)),
    Case(
        "network external with extra key",
        lambda v: network(v, {"external": {"name": "x", "foo": 1}}),
        NONE,
    ),
    Case("network null", lambda v: network(v, None), ALL),
    Case("volume name", lambda v: volume(v, {"name": "data"}), since(4)),
    Case("volume x- key", lambda v: volume(v, {"x-a": 1}), since(7)),
    Case(
        "volume x-cluster-spec", lambda v: volume(v, {"x-cluster-spec": {"group": "g"}}), since(7)
    ),
    # From 3.10 x-cluster-spec has a schema of its own; before that it is a free x- key.
    Case(
        "volume x-cluster-spec bad group",
        lambda v: volume(v, {"x-cluster-spec": {"group": 5}}),
        between(7, 9),
    ),
    Case("volume driver_opts number", lambda v: volume(v, {"driver_opts": {"size": 10}}), ALL),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_schema_verdicts(case: Case) -> None:
    wrong = [
        f"3.{m}: expected {'valid' if m in case.valid else 'invalid'}"
        for m in MINORS
        if validator(m).is_valid(case.doc(f"3.{m}")) != (m in case.valid)
    ]
    assert wrong == []


def test_missing_version_only_fails_schemas_that_require_it() -> None:
    # Docker validates a file without `version` against 3.13, which does not require it.
    assert [m for m in MINORS if validator(m).is_valid({})] == list(range(10, 14))


# --------------------------------------------------------------------------- formats

GOOD_DURATIONS = [
    "1h2m3.5s",
    "300ms",
    "-1.5h",
    "0",
    "-0",
    "+0",
    ".5s",
    "5.s",
    "1.h",
    "1us",
    "1\u00b5s",
    "1\u03bcs",
    "1ns",
    "1h1h",
    "+5m",
    "9223372036854775807ns",
    "-9223372036854775808ns",
    "2562047h47m16.854775807s",
    "0.00000000000000000000000001s",
]
BAD_DURATIONS = [
    "",
    "00",
    "0.0",
    "10",
    "1d",
    "1 s",
    " 1s",
    "1s ",
    "1S",
    ".",
    "-.s",
    "1.5.5s",
    "1e3s",
    "--5m",
    "9223372036854775808ns",
    "-9223372036854775809ns",
    "2562048h",
    "5m0",
    "1h-1m",
    "1_000s",
    "\uff11s",
    "h",
    "1.",
]


@pytest.mark.parametrize("text", GOOD_DURATIONS)
def test_go_duration_accepts(text: str) -> None:
    assert is_go_duration(text)
    assert FORMAT_CHECKER.conforms(text, "duration")


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_go_duration_rejects(text: str) -> None:
    assert not is_go_duration(text)
    assert not FORMAT_CHECKER.conforms(text, "duration")


@pytest.mark.parametrize("value", [10, 1.5, None, True, ["1s"]])
def test_duration_format_rejects_non_strings(value: object) -> None:
    assert not FORMAT_CHECKER.conforms(value, "duration")


GOOD_PORTS: list[object] = [
    "80",
    "0",
    "65535",
    "080",
    "80/udp",
    "80/TCP",
    "80/sctp",
    "80/",
    "80/tcp/x",
    "1-2-3",
    "8080:80",
    ":80",
    "8000-8001:80",
    "8000-8001:80-81",
    "1.2.3.4:80:80",
    "1.2.3.4::80",
    "[::1]:80:80",
    "::1:80:80",
    "[]:80:80",
    "[::ffff:1.2.3.4]:1:1",
    80,
    0,
    65535,
    80.0,
    2.5,
    0.25,
]
BAD_PORTS: list[object] = [
    "",
    "/tcp",
    "65536",
    "+80",
    " 80",
    "80 ",
    "-80",
    "80-",
    "80-79",
    "80:",
    "a:80",
    "80:90-91",
    "80/http",
    "80:80:80:80",
    "01.2.3.4:80:80",
    "256.1.1.1:80:80",
    "fe80::1%eth0:80:80",
    "[fe80::1%eth0]:80:80",
    "[::1:80:80",
    "1::2::3:80:80",
    "\u0968\u0966",
    -1,
    65536,
    65535.5,
    -0.5,
    1e20,
    float("inf"),
]


@pytest.mark.parametrize("value", GOOD_PORTS, ids=repr)
def test_ports_format_accepts(value: object) -> None:
    assert FORMAT_CHECKER.conforms(value, "ports")
    if isinstance(value, str):
        assert is_docker_port_spec(value)


@pytest.mark.parametrize("value", BAD_PORTS, ids=repr)
def test_ports_format_rejects(value: object) -> None:
    assert not FORMAT_CHECKER.conforms(value, "ports")
    if isinstance(value, str):
        assert not is_docker_port_spec(value)


@pytest.mark.parametrize("value", ["", "80:80", -1, 1.5, True, None])
def test_expose_format_accepts_anything(value: object) -> None:
    assert FORMAT_CHECKER.conforms(value, "expose")


# --------------------------------------------------------------------------- Docker as oracle

SCHEMA_ERROR_MARKERS = (
    "Additional property",
    " must be a",
    " is required",
    "Does not match format",
    " must be unique",
    "Must be greater",
    " must be one of",
    "Must validate",
)


@pytest.fixture(scope="module")
def docker() -> str:
    found = find_docker()
    if found is None:
        why = "no docker CLI with `docker stack config` on PATH (used as an oracle)"
        if os.environ.get("COMPOSESECRETS_REQUIRE_ENGINE") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return found


def docker_says(docker: str, doc: Doc, workdir: Path) -> tuple[bool, str]:
    """(passed the schema step, stderr) for one document, from `docker stack config`."""
    text = json.dumps(doc)  # JSON is YAML; floats stay floats, strings stay strings
    assert "$" not in text, "documents must not depend on interpolation"
    path = workdir / "compose.yml"
    path.write_text(text, encoding="utf-8")
    run = subprocess.run(
        [docker, "stack", "config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        check=False,
    )
    schema_error = run.returncode != 0 and any(m in run.stderr for m in SCHEMA_ERROR_MARKERS)
    return not schema_error, run.stderr.strip()


def boundary_minors(valid: frozenset[int]) -> list[int]:
    """The first and last version, and both sides of every change of verdict."""
    picked = {0, 13}
    for m in range(1, 14):
        if (m in valid) != (m - 1 in valid):
            picked.update((m - 1, m))
    return sorted(picked)


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES, ids=str)
def test_docker_agrees_with_verdict_table(docker: str, case: Case, tmp_path: Path) -> None:
    wrong = []
    for m in boundary_minors(case.valid):
        ok, stderr = docker_says(docker, case.doc(f"3.{m}"), tmp_path)
        if ok != (m in case.valid):
            wrong.append(f"3.{m}: docker says {'valid' if ok else 'invalid'} ({stderr})")
    assert wrong == []


@pytest.mark.oracle
def test_docker_uses_313_rules_without_version(docker: str, tmp_path: Path) -> None:
    doc = {"x-a": 1, "services": {"web": {"image": "x", "init": True, "oom_score_adj": 1}}}
    assert docker_says(docker, doc, tmp_path) == (True, "")
    assert validator(13).is_valid(doc)


@pytest.mark.oracle
def test_docker_agrees_on_durations(docker: str, tmp_path: Path) -> None:
    wrong = []
    for text in GOOD_DURATIONS + BAD_DURATIONS:
        ok, _ = docker_says(docker, svc("3.13", {"stop_grace_period": text}), tmp_path)
        if ok != is_go_duration(text):
            wrong.append(text)
    assert wrong == []


@pytest.mark.oracle
def test_docker_agrees_on_ports(docker: str, tmp_path: Path) -> None:
    wrong = []
    for value in GOOD_PORTS + BAD_PORTS:
        if isinstance(value, float) and value == float("inf"):
            continue  # not representable in the JSON/YAML we write
        _, stderr = docker_says(docker, svc("3.13", {"ports": [value]}), tmp_path)
        if ("Does not match format" not in stderr) != FORMAT_CHECKER.conforms(value, "ports"):
            wrong.append(value)
    assert wrong == []


@pytest.mark.oracle
def test_schemas_match_the_ones_inside_docker(docker: str) -> None:
    """Key by key, after the documented adjustments (see schemas/build_schemas.py)."""
    assert build_module().compare_with_docker(Path(docker)) == []


def test_fast_path_compiles_a_property_when_a_document_first_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A property's schema is compiled on first use; one outside the fast path's subset
    (seen only then) leaves the verdict to jsonschema instead of failing the check."""
    from composesecrets.compose import fastschema, schema
    from composesecrets.compose.formats import FAST_FORMATS
    from composesecrets.compose.yamlload import load

    root = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "odd": {"if": {"type": "string"}}},
    }
    with pytest.raises(fastschema.Unsupported, match="if"):
        fastschema.compile_schema(root, FAST_FORMATS, lazy=False)
    check = fastschema.compile_schema(root, FAST_FORMATS)  # nothing compiled but the root
    assert check({"a": "x"}) and not check({"a": 1})
    with pytest.raises(fastschema.Unsupported, match="if"):
        check({"odd": 1})

    # schema.validate then asks jsonschema (which ignores the draft-7 keyword in draft 4)
    monkeypatch.setattr(schema, "fast_check", lambda version: check)
    monkeypatch.setattr(schema, "validator", lambda version: jsonschema.Draft4Validator(root))
    for text, rules in (("odd: 1\n", []), ("a: 1\n", ["schema"])):
        document = load(text, "c.yml")
        assert [d.rule for d in schema.validate(document, "3.8", "c.yml")] == rules, text
