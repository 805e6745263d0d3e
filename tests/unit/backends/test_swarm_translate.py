"""composesecrets.backends.swarm.translate: compose service -> Swarm ServiceSpec pieces; and the
swarm backend's checks that need no daemon (not a manager, secret names).

Every case goes through the real loader (``load_project`` on a file in ``tmp_path``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from unit.compose_helpers import load_stack

from composesecrets.backends import DeployRequest, get_backend
from composesecrets.backends.swarm.backend import SwarmBackend
from composesecrets.backends.swarm.swarm_secrets import swarm_secret_name
from composesecrets.backends.swarm.translate import SwarmNetwork, SwarmService, stack_specs
from composesecrets.compose.project import load_project
from composesecrets.errors import BackendError, InputError, InvalidComposeError

IMAGE = "composesecrets-test/busybox:latest"
NS = 1_000_000_000


def load(
    tmp_path: Path,
    services: dict[str, Any],
    *,
    top: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    stack: str = "st",
) -> tuple[dict[str, SwarmService], dict[str, SwarmNetwork]]:
    doc: dict[str, Any] = {"version": "3.8", "services": services, **(top or {})}
    return stack_specs(load_stack(tmp_path, doc, stack), stack, environ=environ or {})


def one(tmp_path: Path, body: dict[str, Any], **kwargs: Any) -> SwarmService:
    services, _ = load(tmp_path, {"svc": {"image": IMAGE, **body}}, **kwargs)
    return services["svc"]


# --------------------------------------------------------------------------- ContainerSpec

CONTAINER_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("command string is Args", {"command": "sh -c 'echo hi'"},
     {"Args": ["sh", "-c", "echo hi"]}),
    ("entrypoint is Command", {"entrypoint": ["/bin/sh", "-c"]},
     {"Command": ["/bin/sh", "-c"]}),
    ("env list sorted", {"environment": ["B=2", "A=x=y"]}, {"Env": ["A=x=y", "B=2"]}),
    ("env map", {"environment": {"A": 1, "B": 2.0}}, {"Env": ["A=1", "B=2"]}),
    ("user", {"user": "1000:1000"}, {"User": "1000:1000"}),
    ("working_dir", {"working_dir": "/srv"}, {"Dir": "/srv"}),
    ("stop_grace_period", {"stop_grace_period": "1m30s"}, {"StopGracePeriod": 90 * NS}),
    ("healthcheck", {"healthcheck": {"test": "true", "interval": "5s", "retries": 2}},
     {"Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5 * NS, "Retries": 2}}),
    ("healthcheck disabled", {"healthcheck": {"disable": True}},
     {"Healthcheck": {"Test": ["NONE"]}}),
    ("extra_hosts", {"extra_hosts": ["db:10.0.0.5"]}, {"Hosts": ["10.0.0.5 db"]}),
    ("dns", {"dns": "1.1.1.1", "dns_search": ["x.local"]},
     {"DNSConfig": {"Nameservers": ["1.1.1.1"], "Search": ["x.local"]}}),
    ("hostname and flags", {"hostname": "h", "read_only": True, "init": True, "tty": True},
     {"Hostname": "h", "ReadOnly": True, "Init": True, "TTY": True}),
    ("labels are container labels", {"labels": ["a=b"]}, {"Labels": {"a": "b"}}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in CONTAINER_CASES], ids=[c[0] for c in CONTAINER_CASES]
)
def test_container_spec(tmp_path: Path, body: dict[str, Any], expected: dict[str, Any]) -> None:
    spec = one(tmp_path, body)
    container = spec.task_template["ContainerSpec"]
    assert container["Image"] == IMAGE
    assert {k: container.get(k) for k in expected} == expected
    assert "Secrets" not in container
    assert spec.warnings == ()


def test_env_file_then_environment_and_unset_values(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("A=from-file\nB=file\n")
    spec = one(
        tmp_path,
        {"env_file": "app.env", "environment": ["B=inline", "C", "D"]},
        environ={"C": "from-env"},
    )
    assert spec.task_template["ContainerSpec"]["Env"] == ["A=from-file", "B=inline", "C=from-env"]


def test_missing_env_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.env"):
        one(tmp_path, {"env_file": "nope.env"})


# --------------------------------------------------------------------------- task, mode, deploy

DEPLOY_CASES: list[tuple[str, dict[str, Any], str, Any]] = [
    ("default one replica", {}, "mode", {"Replicated": {"Replicas": 1}}),
    ("replicas", {"deploy": {"replicas": 3}}, "mode", {"Replicated": {"Replicas": 3}}),
    ("global", {"deploy": {"mode": "global"}}, "mode", {"Global": {}}),
    ("constraints", {"deploy": {"placement": {"constraints": ["node.role==manager"]}}},
     "Placement", {"Constraints": ["node.role==manager"]}),
    ("spread", {"deploy": {"placement": {"preferences": [{"spread": "node.labels.az"}]}}},
     "Placement", {"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.az"}}]}),
    ("resources", {"deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "64M"},
                                            "reservations": {"memory": "32m"}}}},
     "Resources", {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20},
                   "Reservations": {"MemoryBytes": 32 << 20}}),
    ("restart_policy", {"deploy": {"restart_policy": {"condition": "on-failure", "delay": "2s",
                                                      "max_attempts": 3, "window": "10s"}}},
     "RestartPolicy", {"Condition": "on-failure", "Delay": 2 * NS, "MaxAttempts": 3,
                       "Window": 10 * NS}),
    ("restart key", {"restart": "unless-stopped"}, "RestartPolicy", {"Condition": "any"}),
    ("restart on-failure:4", {"restart": "on-failure:4"}, "RestartPolicy",
     {"Condition": "on-failure", "MaxAttempts": 4}),
    ("update_config", {"deploy": {"update_config": {"parallelism": 2, "delay": "1s",
                                                    "order": "start-first",
                                                    "failure_action": "rollback"}}},
     "update_config", {"Parallelism": 2, "Delay": NS, "Order": "start-first",
                       "FailureAction": "rollback"}),
    ("deploy labels are service labels", {"deploy": {"labels": {"tier": "web"}}}, "labels",
     {"tier": "web"}),
    ("logging", {"logging": {"driver": "json-file", "options": {"max-size": "1m"}}},
     "LogDriver", {"Name": "json-file", "Options": {"max-size": "1m"}}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "where", "expected"), [c[1:] for c in DEPLOY_CASES], ids=[c[0] for c in DEPLOY_CASES]
)
def test_deploy_keys(tmp_path: Path, body: dict[str, Any], where: str, expected: Any) -> None:
    spec = one(tmp_path, body)
    found: Any
    if where == "mode":
        found = spec.mode
    elif where == "update_config":
        found = spec.update_config
    elif where == "labels":
        found = spec.labels
    else:
        found = spec.task_template.get(where)
    assert found == expected
    assert spec.warnings == ()


# --------------------------------------------------------------------------- ports

PORT_CASES: list[tuple[str, list[Any], dict[str, Any] | None]] = [
    ("host mode", [{"target": 80, "published": 8080, "mode": "host"}],
     {"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080,
                 "PublishMode": "host"}]}),
    ("short syntax is ingress", ["8000:80/udp"],
     {"Ports": [{"Protocol": "udp", "TargetPort": 80, "PublishedPort": 8000,
                 "PublishMode": "ingress"}]}),
    ("unpublished", ["80"], {"Ports": [{"Protocol": "tcp", "TargetPort": 80,
                                         "PublishMode": "ingress"}]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ports", "expected"), [c[1:] for c in PORT_CASES], ids=[c[0] for c in PORT_CASES]
)
def test_ports(tmp_path: Path, ports: list[Any], expected: dict[str, Any]) -> None:
    assert one(tmp_path, {"ports": ports}).endpoint_spec == expected


def test_endpoint_mode(tmp_path: Path) -> None:
    assert one(tmp_path, {"deploy": {"endpoint_mode": "dnsrr"}}).endpoint_spec == {"Mode": "dnsrr"}


# --------------------------------------------------------------------------- networks, volumes


def test_default_network_is_stack_scoped_overlay(tmp_path: Path) -> None:
    services, networks = load(tmp_path, {"web": {"image": IMAGE}}, stack="shop")
    assert services["web"].name == "shop_web"
    assert services["web"].task_template["Networks"] == [
        {"Target": "shop_default", "Aliases": ["web"]}
    ]
    net = networks["default"]
    assert (net.name, net.driver, net.attachable, net.external) == (
        "shop_default",
        "overlay",
        True,
        False,
    )


def test_named_networks_aliases_and_external(tmp_path: Path) -> None:
    services, networks = load(
        tmp_path,
        {
            "web": {
                "image": IMAGE,
                "networks": {"front": {"aliases": ["www"]}, "shared": None},
            }
        },
        top={
            "networks": {
                "front": {"driver_opts": {"encrypted": ""}, "labels": ["a=b"]},
                "shared": {"external": True},
            }
        },
        stack="shop",
    )
    assert services["web"].task_template["Networks"] == [
        {"Target": "shop_front", "Aliases": ["web", "www"]},
        {"Target": "shared", "Aliases": ["web"]},
    ]
    assert set(networks) == {"front", "shared"}  # no default network: nobody uses it
    assert networks["front"].options == {"encrypted": ""}
    assert networks["front"].labels == {"a": "b"}
    assert networks["shared"].external and networks["shared"].name == "shared"


def test_volumes_become_mounts(tmp_path: Path) -> None:
    spec = one(
        tmp_path,
        {
            "volumes": [
                "data:/data:ro",
                "./conf:/etc/conf",
                "/anon",
                {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 1 << 20}},
            ]
        },
        top={"volumes": {"data": {"labels": {"k": "v"}}}},
    )
    assert spec.task_template["ContainerSpec"]["Mounts"] == [
        {
            "Type": "volume",
            "Source": "st_data",
            "Target": "/data",
            "ReadOnly": True,
            "VolumeOptions": {"Labels": {"k": "v", "com.docker.stack.namespace": "st"}},
        },
        {
            "Type": "bind",
            "Source": str(tmp_path / "conf"),
            "Target": "/etc/conf",
            "ReadOnly": False,
        },
        {"Type": "volume", "Target": "/anon", "ReadOnly": False},
        {
            "Type": "tmpfs",
            "Target": "/tmp",
            "ReadOnly": False,
            "TmpfsOptions": {"SizeBytes": 1 << 20},
        },
    ]


# --------------------------------------------------------------------------- warnings, errors

WARNING_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("build", {"build": "."}, "build"),
    ("depends_on", {"depends_on": ["other"]}, "depends_on"),
    ("privileged", {"privileged": True}, "privileged"),
    ("container_name", {"container_name": "x"}, "container_name"),
    ("host ip on a port", {"ports": ["127.0.0.1:8000:80"]}, "host IP"),
    ("restart overridden", {"restart": "always",
                            "deploy": {"restart_policy": {"condition": "none"}}}, "restart"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "needle"), [c[1:] for c in WARNING_CASES], ids=[c[0] for c in WARNING_CASES]
)
def test_keys_not_applied_are_warnings(tmp_path: Path, body: dict[str, Any], needle: str) -> None:
    services, _ = load(tmp_path, {"svc": {"image": IMAGE, **body}, "other": {"image": IMAGE}})
    warnings = services["svc"].warnings
    assert any(needle in w and 'service "svc"' in w for w in warnings), warnings


ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no image", {"image": None, "command": "true"}, "no image"),
    ("undefined network", {"networks": ["nope"]}, "nope"),
    ("undefined volume", {"volumes": ["nope:/x"]}, "nope"),
    ("replicas with global", {"deploy": {"mode": "global", "replicas": 2}}, "global"),
    ("port range to one port", {"ports": ["8000-8010:80"]}, "range"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "needle"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_invalid_for_swarm(tmp_path: Path, body: dict[str, Any], needle: str) -> None:
    service = {"image": IMAGE, **body}
    if service["image"] is None:
        del service["image"]
    with pytest.raises(InvalidComposeError, match=needle):
        load(tmp_path, {"svc": service})


def test_fingerprint_follows_the_spec(tmp_path: Path) -> None:
    a = one(tmp_path, {"command": ["sleep", "1"]})
    b = one(tmp_path, {"command": ["sleep", "1"]})
    c = one(tmp_path, {"command": ["sleep", "2"]})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


# --------------------------------------------------------------------------- backend, no daemon


def test_swarm_secret_names() -> None:
    name = swarm_secret_name("shop", "db_password", "shop_db_password", 3, 0, 0, 0o444)
    assert re.fullmatch(r"shop_db_password_[0-9a-f]{10}", name)
    assert name == swarm_secret_name("shop", "db_password", "shop_db_password", 3, 0, 0, 0o444)
    others = {
        swarm_secret_name("shop", "db_password", "shop_db_password", 4, 0, 0, 0o444),
        swarm_secret_name("shop", "db_password", "shop_db_password", 3, 1000, 0, 0o444),
        swarm_secret_name("shop", "db_password", "shop_db_password", 3, 0, 0, 0o400),
        swarm_secret_name("shop", "db_password", "shop_db_password", 3, 0, 0, 0o444, "hmac:other"),
    }
    assert name not in others and len(others) == 4
    long = swarm_secret_name("s" * 40, "k" * 40, "x", 1, 0, 0, 0o444)
    assert len(long) <= 64
    assert re.fullmatch(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?", long)


class _FakeClient:
    def __init__(self, swarm: dict[str, Any]) -> None:
        self.swarm = swarm
        self.calls: list[str] = []

    def info(self) -> dict[str, Any]:
        self.calls.append("info")
        return {"Swarm": self.swarm}


@pytest.mark.parametrize(
    ("swarm", "needle"),
    [
        ({"LocalNodeState": "inactive", "ControlAvailable": False}, "docker swarm init"),
        ({"LocalNodeState": "active", "ControlAvailable": False}, "docker node promote"),
        ({}, "docker swarm init"),
    ],
    ids=["no swarm", "worker", "no swarm info"],
)
def test_not_a_manager_is_a_backend_error_with_a_hint(
    tmp_path: Path, swarm: dict[str, Any], needle: str
) -> None:
    (tmp_path / "compose.yml").write_text(yaml.safe_dump({"services": {"w": {"image": IMAGE}}}))
    project = load_project(["compose.yml"], environ={}, cwd=tmp_path, stack_name="st")
    client = _FakeClient(swarm)
    backend = SwarmBackend(client)
    assert project.stack is not None
    plan = backend.plan(DeployRequest("st", project.stack))
    with pytest.raises(BackendError) as caught:
        backend.preflight(plan)
    assert caught.value.exit_code == 8
    assert "swarm manager" in caught.value.message or "not a manager" in caught.value.message
    assert caught.value.hint is not None and needle in caught.value.hint
    assert client.calls == ["info"]  # nothing else was asked or changed


def test_swarm_is_a_registered_backend() -> None:
    backend = get_backend("swarm")
    assert isinstance(backend, SwarmBackend) and backend.name == "swarm"
