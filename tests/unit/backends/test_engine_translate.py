"""composesecrets.backends.engine.translate: compose service -> Docker SDK create kwargs.

Every case goes through the real loader (``load_project`` on a file in ``tmp_path``), so the
input is what a deploy sees. The kwargs are checked against the Docker SDK's own argument
handling (``_create_container_args``) without a daemon.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker.models.containers as sdk_containers
import docker.types
import pytest
from unit.compose_helpers import load_stack

from composesecrets.backends.engine import translate as containerspec
from composesecrets.backends.engine.translate import EngineService, parse_bytes, stack_specs
from composesecrets.compose.formats import is_go_duration, parse_go_duration
from composesecrets.errors import InputError, InvalidComposeError

IMAGE = "composesecrets-test/busybox:latest"
SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "compose_v3.13.json"


def load(
    tmp_path: Path,
    services: dict[str, Any],
    *,
    top: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    stack: str = "st",
) -> tuple[dict[str, EngineService], dict[str, containerspec.EngineNetwork], dict[str, Any]]:
    doc: dict[str, Any] = {"services": services, **(top or {})}
    return stack_specs(load_stack(tmp_path, doc, stack), stack, environ=environ or {})


def one(tmp_path: Path, body: dict[str, Any], **kwargs: Any) -> EngineService:
    services, _, _ = load(tmp_path, {"svc": {"image": IMAGE, **body}}, **kwargs)
    return services["svc"]


# --------------------------------------------------------------------------- kwargs table

KWARGS_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("command string", {"command": "sh -c 'echo hi there'"},
     {"command": ["sh", "-c", "echo hi there"]}),
    ("command list", {"command": ["echo", "a b"]}, {"command": ["echo", "a b"]}),
    ("entrypoint string", {"entrypoint": "/bin/sh -c"}, {"entrypoint": ["/bin/sh", "-c"]}),
    ("entrypoint list", {"entrypoint": ["/x", "--y"]}, {"entrypoint": ["/x", "--y"]}),
    ("env list", {"environment": ["A=1", "B=x=y", "C="]},
     {"environment": {"A": "1", "B": "x=y", "C": ""}}),
    ("env map", {"environment": {"A": 1, "B": "two", "C": 1.5}},
     {"environment": {"A": "1", "B": "two", "C": "1.5"}}),
    ("ports short", {"ports": ["8000:80"]},
     {"ports": {"80/tcp": [{"HostIp": "", "HostPort": "8000"}]}}),
    ("ports ip udp", {"ports": ["127.0.0.1:8000:80/udp"]},
     {"ports": {"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]}}),
    ("ports container only", {"ports": ["80", 81]},
     {"ports": {"80/tcp": [{"HostIp": "", "HostPort": ""}],
                "81/tcp": [{"HostIp": "", "HostPort": ""}]}}),
    ("ports ranges pair up", {"ports": ["8000-8001:80-81"]},
     {"ports": {"80/tcp": [{"HostIp": "", "HostPort": "8000"}],
                "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}}),
    ("ports host range one container port", {"ports": ["9000-9009:80"]},
     {"ports": {"80/tcp": [{"HostIp": "", "HostPort": "9000-9009"}]}}),
    ("ports ip without host port", {"ports": ["127.0.0.1::80"]},
     {"ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}),
    ("ports ipv6", {"ports": ["[::1]:8080:80"]},
     {"ports": {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}}),
    ("ports same container port twice", {"ports": ["8000:80", "127.0.0.1:8001:80"]},
     {"ports": {"80/tcp": [{"HostIp": "", "HostPort": "8000"},
                           {"HostIp": "127.0.0.1", "HostPort": "8001"}]}}),
    ("ports long", {"ports": [{"target": 80, "published": 8080, "protocol": "udp",
                               "mode": "host"}, {"target": 81}]},
     {"ports": {"80/udp": [{"HostIp": "", "HostPort": "8080"}],
                "81/tcp": [{"HostIp": "", "HostPort": ""}]}}),
    ("restart no", {"restart": "no"}, {"restart_policy": {"Name": "no"}}),
    ("restart default any", {}, {"restart_policy": {"Name": "always"}}),
    ("restart always", {"restart": "always"}, {"restart_policy": {"Name": "always"}}),
    ("restart unless-stopped", {"restart": "unless-stopped"},
     {"restart_policy": {"Name": "unless-stopped"}}),
    ("restart on-failure:N", {"restart": "on-failure:5"},
     {"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 5}}),
    ("restart_policy none", {"deploy": {"restart_policy": {"condition": "none"}}},
     {"restart_policy": {"Name": "no"}}),
    ("restart_policy any", {"deploy": {"restart_policy": {"condition": "any"}}},
     {"restart_policy": {"Name": "always"}}),
    ("restart_policy default any", {"deploy": {"restart_policy": {}}},
     {"restart_policy": {"Name": "always"}}),
    ("restart_policy on-failure", {"deploy": {"restart_policy": {
        "condition": "on-failure", "max_attempts": 4}}},
     {"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 4}}),
    ("deploy restart_policy wins", {"restart": "always",
                                    "deploy": {"restart_policy": {"condition": "none"}}},
     {"restart_policy": {"Name": "no"}}),
    ("user", {"user": "1000:1000"}, {"user": "1000:1000"}),
    ("working_dir", {"working_dir": "/srv"}, {"working_dir": "/srv"}),
    ("healthcheck full", {"healthcheck": {"test": ["CMD", "true"], "interval": "1m30s",
                                          "timeout": "10s", "start_period": "1.5s",
                                          "retries": 3}},
     {"healthcheck": {"Test": ["CMD", "true"], "Interval": 90_000_000_000,
                      "Timeout": 10_000_000_000, "StartPeriod": 1_500_000_000, "Retries": 3}}),
    ("healthcheck string", {"healthcheck": {"test": "curl -f http://x/"}},
     {"healthcheck": {"Test": ["CMD-SHELL", "curl -f http://x/"]}}),
    ("healthcheck disable", {"healthcheck": {"disable": True, "interval": "5s"}},
     {"healthcheck": {"Test": ["NONE"]}}),
    ("tmpfs string", {"tmpfs": "/run"}, {"tmpfs": {"/run": ""}}),
    ("tmpfs list", {"tmpfs": ["/run:size=64m,mode=1777", "/tmp"]},
     {"tmpfs": {"/run": "size=64m,mode=1777", "/tmp": ""}}),
    ("read_only", {"read_only": True}, {"read_only": True}),
    ("hostname", {"hostname": "h1", "domainname": "example.org"},
     {"hostname": "h1", "domainname": "example.org"}),
    ("caps", {"cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"]},
     {"cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"]}),
    ("stop_signal", {"stop_signal": "SIGINT"}, {"stop_signal": "SIGINT"}),
    ("init privileged tty stdin", {"init": True, "privileged": True, "tty": True,
                                   "stdin_open": True},
     {"init": True, "privileged": True, "tty": True, "stdin_open": True}),
    ("extra_hosts list", {"extra_hosts": ["db:10.0.0.2"]}, {"extra_hosts": ["db:10.0.0.2"]}),
    ("extra_hosts map", {"extra_hosts": {"db": "10.0.0.2"}}, {"extra_hosts": ["db:10.0.0.2"]}),
    ("dns string", {"dns": "8.8.8.8", "dns_search": "example.org"},
     {"dns": ["8.8.8.8"], "dns_search": ["example.org"]}),
    ("dns list", {"dns": ["1.1.1.1", "8.8.8.8"]}, {"dns": ["1.1.1.1", "8.8.8.8"]}),
    ("sysctls map", {"sysctls": {"net.core.somaxconn": 1024}},
     {"sysctls": {"net.core.somaxconn": "1024"}}),
    ("sysctls list", {"sysctls": ["net.ipv4.ip_forward=1"]},
     {"sysctls": {"net.ipv4.ip_forward": "1"}}),
    ("ulimits", {"ulimits": {"nproc": 65535, "nofile": {"soft": 20000, "hard": 40000}}},
     {"ulimits": [{"Name": "nproc", "Soft": 65535, "Hard": 65535},
                  {"Name": "nofile", "Soft": 20000, "Hard": 40000}]}),
    ("shm_size string", {"shm_size": "64m"}, {"shm_size": 64 << 20}),
    ("shm_size number", {"shm_size": 1024}, {"shm_size": 1024}),
    ("security_opt devices", {"security_opt": ["no-new-privileges:true"],
                              "devices": ["/dev/null:/dev/xnull:rwm"]},
     {"security_opt": ["no-new-privileges:true"], "devices": ["/dev/null:/dev/xnull:rwm"]}),
    ("ipc pid", {"ipc": "private", "pid": "host"}, {"ipc_mode": "private", "pid_mode": "host"}),
    ("oom cgroups userns", {"oom_score_adj": 100, "cgroup_parent": "/cs",
                            "userns_mode": "host"},
     {"oom_score_adj": 100, "cgroup_parent": "/cs", "userns_mode": "host"}),
    ("logging", {"logging": {"driver": "json-file", "options": {"max-size": "1m",
                                                                 "max-file": 3}}},
     {"log_config": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "3"}}}),
    ("resources limits", {"deploy": {"resources": {"limits": {"memory": "64M", "cpus": "0.5",
                                                              "pids": 100},
                                                   "reservations": {"memory": "1g"}}}},
     {"mem_limit": 64 << 20, "nano_cpus": 500_000_000, "pids_limit": 100,
      "mem_reservation": 1 << 30}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in KWARGS_CASES], ids=[c[0] for c in KWARGS_CASES]
)
def test_kwargs(tmp_path: Path, body: dict[str, Any], expected: dict[str, Any]) -> None:
    spec = one(tmp_path, body)
    for key, value in expected.items():
        assert spec.create_kwargs[key] == value, key
    sdk_args(spec)  # the SDK accepts them


def test_minimal_service_has_only_the_stack_restart_default(tmp_path: Path) -> None:
    spec = one(tmp_path, {})
    # a compose 3.x file is a stack: Swarm's default restart_policy condition "any"
    assert spec.create_kwargs == {"restart_policy": {"Name": "always"}}
    assert spec.image == IMAGE
    assert spec.replicas == 1
    assert spec.depends_on == ()
    assert spec.warnings == ()
    assert spec.stop_timeout is None
    assert spec.networks == {"st_default": ("svc",)}


# --------------------------------------------------------------------------- volumes


def test_volumes_short_and_long(tmp_path: Path) -> None:
    spec = one(
        tmp_path,
        {
            "volumes": [
                "data:/data:ro",
                "./conf:/etc/app:ro",
                "/srv/logs:/logs",
                "/anon",
                "logs:/cache:nocopy",
                {"type": "volume", "source": "data", "target": "/d2", "read_only": True,
                 "volume": {"nocopy": True}},
                {"type": "bind", "source": "./conf", "target": "/c2",
                 "bind": {"propagation": "rslave"}},
                {"type": "tmpfs", "target": "/scratch", "tmpfs": {"size": 1048576}},
                {"type": "volume", "target": "/anon2"},
            ]
        },
        top={"volumes": {"data": None, "logs": {"name": "shared-logs"}}},
    )  # fmt: skip
    assert spec.create_kwargs["volumes"] == {
        str(tmp_path / "conf"): {"bind": "/etc/app", "mode": "ro"},
        "/srv/logs": {"bind": "/logs", "mode": "rw"},
    }
    assert spec.create_kwargs["mounts"] == [
        {"Type": "volume", "Source": "st_data", "Target": "/data", "ReadOnly": True},
        {"Type": "volume", "Target": "/anon", "ReadOnly": False},
        {"Type": "volume", "Source": "shared-logs", "Target": "/cache", "ReadOnly": False,
         "VolumeOptions": {"NoCopy": True}},
        {"Type": "volume", "Source": "st_data", "Target": "/d2", "ReadOnly": True,
         "VolumeOptions": {"NoCopy": True}},
        {"Type": "bind", "Source": str(tmp_path / "conf"), "Target": "/c2", "ReadOnly": False,
         "BindOptions": {"Propagation": "rslave"}},
        {"Type": "tmpfs", "Target": "/scratch", "ReadOnly": False,
         "TmpfsOptions": {"SizeBytes": 1048576}},
        {"Type": "volume", "Target": "/anon2", "ReadOnly": False},
    ]  # fmt: skip
    assert spec.warnings == ()
    sdk_args(spec)


def test_same_host_path_twice_keeps_both(tmp_path: Path) -> None:
    spec = one(tmp_path, {"volumes": ["./c:/a", "./c:/b:ro"]})
    host = str(tmp_path / "c")
    assert spec.create_kwargs["volumes"] == {host: {"bind": "/a", "mode": "rw"}}
    assert spec.create_kwargs["mounts"] == [
        {"Type": "bind", "Source": host, "Target": "/b", "ReadOnly": True}
    ]


def test_bind_mode_options_pass_through(tmp_path: Path) -> None:
    spec = one(tmp_path, {"volumes": ["/x:/y:ro,z", "/p:/q:rshared"]})
    assert spec.create_kwargs["volumes"] == {
        "/x": {"bind": "/y", "mode": "ro,z"},
        "/p": {"bind": "/q", "mode": "rshared"},
    }


def test_top_level_volumes(tmp_path: Path) -> None:
    _, _, volumes = load(
        tmp_path,
        {"svc": {"image": IMAGE}},
        top={
            "volumes": {
                "data": {"driver_opts": {"type": "tmpfs", "o": "size=1m"},
                         "labels": ["a=b"]},
                "named": {"name": "exact"},
                "ext": {"external": True},
                "ext2": {"external": {"name": "other"}},
            }
        },
    )  # fmt: skip
    got = {k: (v.name, v.external, v.driver, v.driver_opts, v.labels) for k, v in volumes.items()}
    assert got == {
        "data": ("st_data", False, "local", {"type": "tmpfs", "o": "size=1m"}, {"a": "b"}),
        "named": ("exact", False, "local", {}, {}),
        "ext": ("ext", True, "local", {}, {}),
        "ext2": ("other", True, "local", {}, {}),
    }


# --------------------------------------------------------------------------- environment


def test_environment_sources_and_precedence(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text('# comment\nFROM_A=1\nSHARED=a\nQUOTED="x y"\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.env").write_text("SHARED=b\nFROM_B=2\n")
    spec = one(
        tmp_path,
        {
            "env_file": ["a.env", "sub/b.env"],
            "environment": ["FROM_ENV", "UNSET", "SHARED_FILE=c", "FROM_A"],
        },
        environ={"FROM_ENV": "host", "FROM_A": "host-a"},
    )
    assert spec.create_kwargs["environment"] == {
        "FROM_A": "host-a",  # a bare name takes the process environment over the file
        "SHARED": "b",  # later env_file wins
        "QUOTED": "x y",
        "FROM_B": "2",
        "FROM_ENV": "host",
        "SHARED_FILE": "c",
    }


def test_environment_map_null_and_single_env_file(tmp_path: Path) -> None:
    (tmp_path / "only.env").write_text("K=file\n")
    spec = one(
        tmp_path,
        {"env_file": "only.env", "environment": {"K": None, "L": None}},
        environ={"L": "host"},
    )
    # K is given without a value and is not set in the process: compose drops it
    assert spec.create_kwargs["environment"] == {"L": "host"}


def test_env_file_missing_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r'service "svc": env_file missing\.env'):
        one(tmp_path, {"env_file": "missing.env"})


# --------------------------------------------------------------------------- networks


def test_networks(tmp_path: Path) -> None:
    services, networks, _ = load(
        tmp_path,
        {
            "web": {"image": IMAGE, "networks": {"front": {"aliases": ["www", "web"]},
                                                 "back": None}},
            "db": {"image": IMAGE, "networks": ["back"]},
            "job": {"image": IMAGE},
        },
        top={
            "networks": {
                "front": {"driver": "overlay", "attachable": True, "labels": {"x": "1"},
                          "driver_opts": {"com.docker.network.bridge.enable_icc": "true"}},
                "back": {"internal": True, "name": "the-back", "ipam": {"driver": "default"}},
                "ext": {"external": True},
            }
        },
    )  # fmt: skip
    assert services["web"].networks == {"st_front": ("web", "www"), "the-back": ("web",)}
    assert services["db"].networks == {"the-back": ("db",)}
    assert services["job"].networks == {"st_default": ("job",)}
    front, back, ext, default = (networks[k] for k in ("front", "back", "ext", "default"))
    assert (front.name, front.driver, front.attachable, front.labels, front.options) == (
        "st_front", "bridge", True, {"x": "1"},
        {"com.docker.network.bridge.enable_icc": "true"},
    )  # fmt: skip
    assert "overlay" in front.warnings[0] and "Swarm" in front.warnings[0]
    assert (back.name, back.internal, back.external) == ("the-back", True, False)
    assert back.warnings == ('network "back": ipam is not applied by the engine backend',)
    assert (ext.name, ext.external) == ("ext", True)
    assert (default.name, default.driver, default.external) == ("st_default", "bridge", False)


def test_default_network_only_when_used(tmp_path: Path) -> None:
    _, networks, _ = load(
        tmp_path, {"svc": {"image": IMAGE, "networks": ["n"]}}, top={"networks": {"n": None}}
    )
    assert set(networks) == {"n"}


def test_declared_default_network_is_used(tmp_path: Path) -> None:
    services, networks, _ = load(
        tmp_path,
        {"svc": {"image": IMAGE}},
        top={"networks": {"default": {"external": {"name": "shared"}}}},
    )
    assert services["svc"].networks == {"shared": ("svc",)}
    assert networks["default"].external and networks["default"].name == "shared"


# --------------------------------------------------------------------------- other fields


def test_labels_list_and_map_are_the_same(tmp_path: Path) -> None:
    a = one(tmp_path, {"labels": ["a=1", "b"]})
    b = one(tmp_path, {"labels": {"a": "1", "b": ""}})
    assert a.labels == b.labels == {"a": "1", "b": ""}
    assert a.fingerprint == b.fingerprint
    assert "labels" not in a.create_kwargs  # the caller merges them with its own


def test_replicas_depends_on_stop_grace(tmp_path: Path) -> None:
    services, _, _ = load(
        tmp_path,
        {
            "db": {"image": IMAGE},
            "cache": {"image": IMAGE},
            "web": {"image": IMAGE, "depends_on": ["db", "cache"], "stop_grace_period": "1m30s",
                    "deploy": {"replicas": 3, "mode": "replicated"}},
        },
    )  # fmt: skip
    web = services["web"]
    assert (web.replicas, web.depends_on, web.stop_timeout) == (3, ("db", "cache"), 90)
    assert web.warnings == ()
    assert services["db"].replicas == 1


def test_replicas_zero(tmp_path: Path) -> None:
    assert one(tmp_path, {"deploy": {"replicas": 0}}).replicas == 0


# --------------------------------------------------------------------------- warnings

WARNING_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("build", {"build": "."}, ["build is not applied"]),
    ("container_name", {"container_name": "x"}, ["container_name is not applied"]),
    ("expose", {"expose": ["80"]}, ["expose is not applied"]),
    ("links", {"links": ["db"], "external_links": ["other"]},
     ["links is not applied", "external_links is not applied"]),
    ("network_mode", {"network_mode": "host"}, ["network_mode is not applied"]),
    ("isolation credential_spec", {"isolation": "default",
                                   "credential_spec": {"file": "x.json"}},
     ["isolation is not applied", "credential_spec is not applied"]),
    ("mac_address", {"mac_address": "02:42:ac:11:00:02"}, ["mac_address is not applied"]),
    ("deploy swarm keys", {"deploy": {
        "mode": "global", "endpoint_mode": "vip", "labels": {"a": "b"},
        "placement": {"constraints": ["node.role==manager"]},
        "update_config": {"parallelism": 1}, "rollback_config": {"parallelism": 1}}},
     ["deploy.mode global is not applied by the engine backend (Swarm only; one container",
      "deploy.endpoint_mode is not applied by the engine backend (Swarm only)",
      "deploy.labels is not applied", "deploy.placement is not applied",
      "deploy.update_config is not applied", "deploy.rollback_config is not applied"]),
    ("resources not applied", {"deploy": {"resources": {"reservations": {
        "cpus": "0.5", "generic_resources": [{"discrete_resource_spec": {
            "kind": "gpu", "value": 1}}]}}}},
     ["deploy.resources.reservations.cpus is not applied",
      "deploy.resources.reservations.generic_resources is not applied"]),
    ("restart_policy timing", {"deploy": {"restart_policy": {
        "condition": "any", "delay": "5s", "window": "1m", "max_attempts": 3}}},
     ["deploy.restart_policy.max_attempts is not applied",
      "deploy.restart_policy.delay is not applied",
      "deploy.restart_policy.window is not applied"]),
    ("restart overridden", {"restart": "always", "deploy": {"restart_policy": {}}},
     ["restart is not applied by the engine backend: deploy.restart_policy takes precedence"]),
    ("network endpoint options", {"networks": {"default": {"ipv4_address": "10.0.0.5"}}},
     ["networks.default.ipv4_address is not applied"]),
    ("volume z on named volume", {"volumes": ["v:/v:z"]},
     ["volumes[0] option 'z' is not applied"]),
    ("long volume consistency", {"volumes": [{"type": "bind", "source": "/x", "target": "/y",
                                              "consistency": "cached"}]},
     ["volumes[0].consistency is not applied"]),
    ("healthcheck start_interval", {"healthcheck": {"test": "true",
                                                    "start_interval": "1s"}},
     ["healthcheck.start_interval is not applied"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in WARNING_CASES], ids=[c[0] for c in WARNING_CASES]
)
def test_warnings(tmp_path: Path, body: dict[str, Any], expected: list[str]) -> None:
    top = {"volumes": {"v": None}, "configs": {"cfg": {"file": "./cfg"}}}
    spec = one(tmp_path, body, top=top)
    assert len(spec.warnings) == len(expected), spec.warnings
    for warning, text in zip(spec.warnings, expected, strict=True):
        assert warning.startswith('service "svc": ')
        assert text in warning


def test_x_keys_and_secrets_are_silent(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("s3cret")
    spec = one(
        tmp_path,
        {"x-note": {"a": 1}, "secrets": ["pw"]},
        top={"secrets": {"pw": {"file": "./pw.txt"}}, "x-top": 1},
    )
    assert spec.warnings == ()
    assert spec.create_kwargs == {"restart_policy": {"Name": "always"}}


def test_every_schema_key_is_applied_or_warned() -> None:
    schema = json.loads(SCHEMA.read_text())
    keys = set(schema["definitions"]["service"]["properties"])
    assert keys <= containerspec.APPLIED_KEYS | set(containerspec.NOT_APPLIED)
    assert not containerspec.APPLIED_KEYS & set(containerspec.NOT_APPLIED)


# --------------------------------------------------------------------------- errors

ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("undefined network", {"networks": ["nope"]}, 'network "nope" is not defined'),
    ("undefined volume", {"volumes": ["nope:/x"]}, 'volume "nope" is not defined'),
    ("undefined long volume", {"volumes": [{"type": "volume", "source": "nope",
                                            "target": "/x"}]}, 'volume "nope" is not defined'),
    ("undefined dependency", {"depends_on": ["ghost"]}, 'service "ghost" is not defined'),
    ("bad restart", {"restart": "sometimes"}, 'restart: "sometimes" is not one of'),
    ("restart count on always", {"restart": "always:3"}, 'restart: "always:3"'),
    ("bad condition", {"deploy": {"restart_policy": {"condition": "bogus"}}},
     'condition: "bogus" is not one of'),
    ("bad memory", {"deploy": {"resources": {"limits": {"memory": "lots"}}}},
     "deploy.resources.limits.memory: 'lots' is not a size"),
    ("relative target", {"volumes": ["/a:rel"]}, 'the target "rel" must be an absolute path'),
    ("bad volume option", {"volumes": ["/a:/b:rx"]}, "unknown volume option 'rx'"),
    ("npipe", {"volumes": [{"type": "npipe", "source": "x", "target": "/x"}]},
     'volume type "npipe" is not supported'),
    ("bad command quoting", {"command": "echo 'unterminated"}, "command: cannot split"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_errors(tmp_path: Path, body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidComposeError) as info:
        one(tmp_path, body)
    assert str(info.value).startswith('service "svc": ')
    assert message in str(info.value)


def test_no_image_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidComposeError, match="does not build images"):
        load(tmp_path, {"svc": {"build": "."}})


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_tracks_what_makes_the_container(tmp_path: Path) -> None:
    base = {"command": ["sleep", "1"], "environment": {"A": "1"}}
    first = one(tmp_path, base).fingerprint
    assert one(tmp_path, base).fingerprint == first  # stable across loads
    assert len(first) == 64 and int(first, 16) >= 0
    # replicas and depends_on do not change a container
    assert one(tmp_path, {**base, "deploy": {"replicas": 4}}).fingerprint == first
    changed = [
        {**base, "command": ["sleep", "2"]},
        {**base, "environment": {"A": "2"}},
        {**base, "labels": {"x": "y"}},
        {**base, "stop_grace_period": "3s"},
        {**base, "networks": {"default": {"aliases": ["other"]}}},
    ]
    prints = {one(tmp_path, body).fingerprint for body in changed}
    assert first not in prints and len(prints) == len(changed)
    services, _, _ = load(tmp_path, {"svc": {"image": "other:1", **base}})
    assert services["svc"].fingerprint != first


# --------------------------------------------------------------------------- SDK contract


def sdk_args(spec: EngineService) -> dict[str, Any]:
    """What ``client.containers.create`` would send, built by the SDK itself (no daemon)."""
    kwargs = {**spec.create_kwargs, "image": spec.image, "version": "1.41"}
    return sdk_containers._create_container_args(kwargs)  # type: ignore[no-any-return]


RICH: dict[str, Any] = {
    "command": "sh -c 'sleep 100'", "entrypoint": ["/bin/sh"], "environment": ["A=1"],
    "ports": ["8000:80", "127.0.0.1:8001:81/udp", {"target": 82, "published": 8002}],
    "volumes": ["data:/data:ro", "./conf:/conf:ro", "/anon",
                {"type": "tmpfs", "target": "/t", "tmpfs": {"size": 1024}}],
    "restart": "on-failure:3", "user": "1000", "working_dir": "/data", "labels": {"a": "b"},
    "healthcheck": {"test": ["CMD", "true"], "interval": "30s", "retries": 2},
    "tmpfs": ["/run"], "read_only": True, "hostname": "h", "cap_add": ["NET_ADMIN"],
    "cap_drop": ["MKNOD"], "stop_signal": "SIGTERM", "init": True, "privileged": False,
    "extra_hosts": ["x:1.2.3.4"], "dns": ["8.8.8.8"], "dns_search": ["example.org"],
    "sysctls": {"net.core.somaxconn": 1024}, "ulimits": {"nofile": 1000}, "shm_size": "1m",
    "security_opt": ["no-new-privileges"], "devices": ["/dev/null:/dev/xnull"],
    "domainname": "d", "ipc": "private", "pid": "host", "tty": True, "stdin_open": True,
    "logging": {"driver": "json-file", "options": {"max-size": "1m"}}, "oom_score_adj": 1,
    "cgroup_parent": "/cs", "cgroupns_mode": "private", "userns_mode": "host",
    "deploy": {"resources": {"limits": {"memory": "64m", "cpus": "1", "pids": 10},
                             "reservations": {"memory": "32m"}}},
}  # fmt: skip


def test_kwargs_are_sdk_create_parameters(tmp_path: Path) -> None:
    spec = one(tmp_path, RICH, top={"volumes": {"data": None}})
    allowed = (
        set(sdk_containers.RUN_CREATE_KWARGS)
        | set(sdk_containers.RUN_HOST_CONFIG_KWARGS)
        | {"ports", "volumes"}  # split by _create_container_args itself
    ) - {"image", "name", "labels", "network", "networking_config", "version", "detach"}
    assert set(spec.create_kwargs) <= allowed, set(spec.create_kwargs) - allowed
    json.dumps(spec.create_kwargs)  # plain data
    args = sdk_args(spec)
    host = args["host_config"]
    assert host["PortBindings"]["81/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "8001"}]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Binds"] == [f"{tmp_path / 'conf'}:/conf:ro"]
    assert [m["Target"] for m in host["Mounts"]] == ["/data", "/anon", "/t"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1000, "Hard": 1000}]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert host["ShmSize"] == 1 << 20 and host["Memory"] == 64 << 20
    # the request body the SDK would send to POST /containers/create
    body = docker.types.ContainerConfig("1.41", **args)
    assert body["Healthcheck"] == {
        "Test": ["CMD", "true"], "Interval": 30_000_000_000, "Timeout": None,
        "Retries": 2, "StartPeriod": None,
    }  # fmt: skip
    assert set(body["ExposedPorts"]) == {"80/tcp", "81/udp", "82/tcp"}
    assert body["Cmd"] == ["sh", "-c", "sleep 100"] and body["Entrypoint"] == ["/bin/sh"]
    assert body["Env"] == ["A=1"] and body["StopSignal"] == "SIGTERM"
    assert spec.warnings == ()


# --------------------------------------------------------------------------- parsers

DURATIONS = [
    ("0", 0), ("-0", 0), ("1ns", 1), ("1.5ms", 1_500_000), ("1us", 1_000), ("1µs", 1_000),
    ("2s", 2_000_000_000), ("1m30s", 90_000_000_000), ("1h", 3_600_000_000_000),
    ("-2s", -2_000_000_000), ("+3s", 3_000_000_000), (".5s", 500_000_000),
    ("9223372036854775807ns", (1 << 63) - 1), ("-9223372036854775808ns", -(1 << 63)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "nanoseconds"), DURATIONS)
def test_parse_go_duration(text: str, nanoseconds: int) -> None:
    assert parse_go_duration(text) == nanoseconds
    assert is_go_duration(text)


@pytest.mark.parametrize("text", ["", "10", "1d", "1 s", ".", "s", "9223372036854775808ns"])
def test_parse_go_duration_rejects(text: str) -> None:
    assert not is_go_duration(text)
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("value", "size"),
    [(512, 512), ("512", 512), ("64m", 64 << 20), ("64MB", 64 << 20), ("1GiB", 1 << 30),
     ("1.5k", 1536), ("2 g", 2 << 30), ("10b", 10)],
)  # fmt: skip
def test_parse_bytes(value: object, size: int) -> None:
    assert parse_bytes(value) == size


@pytest.mark.parametrize("value", ["", "lots", "-1", "1x", True, -5])
def test_parse_bytes_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_bytes(value)
