"""`composesecrets stack deploy --backend swarm` on the single-node swarm (issue 5).

Stacks get unique names and their own store (see helpers.py for the shared helpers);
secret files hold canaries. Services run `sleep 3600` with `stop_grace_period: 1s`. Every
session ends with `stack rm` and checks that `docker service ls`, `docker network ls`,
`docker secret ls` and `docker ps -a` show nothing of the stack; leftovers are then removed
by hand so that one failure does not leak into the next run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from integration.helpers import (
    EXIT_NOT_FOUND,
    EXIT_ROLLED_BACK,
    MODES_TARGETS,
    Tool,
    canary,
    checked_cleanup,
    docker,
    docker_ok,
    free_port,
    read_in,
    stat_in,
    wait_running,
)

NAMESPACE = "com.docker.stack.namespace"
HASH = "io.composesecrets.config-hash"
TIMEOUT = 60.0

REDEPLOY = """\
version: "3.8"
services:
  web:
    image: composesecrets-test/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      update_config: {delay: 0s, order: stop-first}
    ports:
      - {target: 80, published: %(port)d, mode: host}
    secrets:
      - source: token
        target: token
        uid: "1000"
        mode: 0400
  other:
    image: composesecrets-test/busybox:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
%(extra)s
secrets:
  token:
    file: ./token.txt
"""

FAILING = """\
  bad:
    image: composesecrets-test/busybox:latest
    command: ["sh", "-c", "exit 3"]
    stop_grace_period: 1s
    secrets: [token]
"""


def of_stack(kind: str, stack: str) -> list[str]:
    """Names the docker CLI lists for ``kind`` (service, network, secret) of the stack."""
    out = docker_ok(kind, "ls", "--filter", f"label={NAMESPACE}={stack}", "--format", "{{.Name}}")
    return sorted(out.split())


def leftovers(stack: str) -> list[str]:
    found = [
        f"{kind} {n}" for kind in ("service", "network", "secret") for n in of_stack(kind, stack)
    ]
    containers = docker_ok(
        "ps", "-a", "--filter", f"label={NAMESPACE}={stack}", "--format", "{{.Names}}"
    ).split()
    return found + [f"container {n}" for n in containers]


@dataclass
class Session:
    tool: Tool
    names: list[str] = field(default_factory=list)

    def new_name(self) -> str:
        name = f"css{time.monotonic_ns() % 10**10:010d}"
        self.names.append(name)
        return name

    def deploy(self, stack: str, compose: Path, backend: str = "swarm") -> Any:
        return self.tool.run("stack", "deploy", "--backend", backend, "-c", str(compose), stack)

    def cleanup(self) -> list[str]:
        problems = []
        for name in self.names:
            result = self.tool.run("stack", "rm", name)
            if result.returncode not in (0, EXIT_NOT_FOUND):
                problems.append(f"stack rm {name} failed:\n{result.describe()}")
        deadline = time.monotonic() + TIMEOUT
        for name in self.names:
            left = leftovers(name)
            while left and any(x.startswith("container") for x in left):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
                left = leftovers(name)
            if left:
                problems.append(f"stack {name} left behind after `stack rm`: {left}")
                _force_remove(name)
        return problems


def _force_remove(stack: str) -> None:
    for kind in ("service", "secret", "network"):
        names = of_stack(kind, stack)
        if names:
            docker(kind, "rm", *names)
    ids = docker_ok("ps", "-aq", "--filter", f"label={NAMESPACE}={stack}").split()
    if ids:
        docker("rm", "-f", *ids)


def session(base: Path) -> AbstractContextManager[Session]:
    return checked_cleanup(Session(Tool.create(base)))


def task_containers(client: Any, stack: str, service: str, count: int = 1) -> list[Any]:
    """The running task containers of ``<stack>_<service>`` that run its current spec."""
    full = f"{stack}_{service}"
    deadline = time.monotonic() + TIMEOUT
    while True:
        wanted = client.api.inspect_service(full)["Spec"]["Labels"][HASH]
        found = client.containers.list(
            filters={"label": [f"com.docker.swarm.service.name={full}", f"{HASH}={wanted}"]}
        )
        running = [c for c in found if c.status == "running"]
        if len(running) == count:
            return running
        if time.monotonic() > deadline:
            raise AssertionError(f"{full}: {len(running)} of {count} task containers running")
        time.sleep(0.3)


def service_version(client: Any, name: str) -> int:
    return int(client.api.inspect_service(name)["Version"]["Index"])


# ------------------------------------------------------------------ uid/gid/mode, names


@dataclass
class Deployed:
    session: Session
    name: str
    values: dict[str, str]
    container: Any


@pytest.fixture(scope="module")
def modes(
    docker_client: Any, swarm: dict[str, Any], test_image: str, tmp_path_factory: Any
) -> Iterator[Deployed]:
    with session(tmp_path_factory.mktemp("swarm-modes")) as current:
        tool = current.tool
        compose = tool.compose("stack-modes.yml")
        values = {}
        for filename in sorted({entry[3] for entry in MODES_TARGETS.values()}):
            values[filename] = canary()
            tool.secret_file(filename, values[filename])
        name = current.new_name()
        result = current.deploy(name, compose)
        assert result.returncode == 0, result.describe()
        (container,) = task_containers(docker_client, name, "web")
        yield Deployed(current, name, values, container)


def test_targets_have_uid_gid_mode_and_value(modes: Deployed) -> None:
    observed = {t: stat_in(modes.container, t) for t in MODES_TARGETS}
    expected = {t: (u, g, m) for t, (u, g, m, _f) in MODES_TARGETS.items()}
    assert {t: (u, g, oct(m)) for t, (u, g, m) in observed.items()} == {
        t: (u, g, oct(m)) for t, (u, g, m) in expected.items()
    }
    for target, (_u, _g, _m, filename) in MODES_TARGETS.items():
        assert read_in(modes.container, target) == modes.values[filename], target


def test_docker_sees_a_stack(docker_client: Any, modes: Deployed) -> None:
    name = modes.name
    assert of_stack("service", name) == [f"{name}_web"]
    assert of_stack("network", name) == [f"{name}_default"]
    net = docker_client.networks.get(f"{name}_default")
    assert net.attrs["Driver"] == "overlay" and net.attrs["Attachable"] is True
    secrets = of_stack("secret", name)
    # one per version and (uid, gid, mode): `twice` is mounted with two settings
    assert len(secrets) == 5, secrets
    for key in ("short_s", "long_s", "abs_s", "twice"):
        assert any(re.fullmatch(rf"{name}_{key}_[0-9a-f]{{10}}", s) for s in secrets), key
    stack_services = docker_ok("stack", "services", name, "--format", "{{.Name}} {{.Replicas}}")
    assert stack_services.split() == [f"{name}_web", "1/1"]
    spec = docker_client.api.inspect_service(f"{name}_web")["Spec"]
    labels = spec["Labels"]
    assert labels[NAMESPACE] == name and labels["io.composesecrets.stack"] == name
    assert labels["com.docker.stack.image"] == "composesecrets-test/busybox:latest"
    # a local image no registry knows is named by its ID: its tasks try no pull
    local = docker_client.images.get("composesecrets-test/busybox:latest")
    assert not local.attrs.get("RepoDigests")
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == local.id
    secret = docker_client.api.inspect_secret(secrets[0])
    assert secret["Spec"]["Labels"][NAMESPACE] == name
    assert secret["Spec"]["Labels"]["io.composesecrets.version"] == "1"
    inspected = docker_ok("service", "inspect", f"{name}_web") + docker_ok(
        "secret", "inspect", *secrets
    )
    assert not [v for v in modes.values.values() if v in inspected]


def test_stack_ps_and_services(modes: Deployed) -> None:
    tool = modes.session.tool
    rows = json.loads(tool.ok("stack", "ps", modes.name, "--format", "json").stdout)
    assert len(rows) == 1, rows
    assert rows[0]["Name"].startswith(f"{modes.name}_web.1.")
    assert rows[0]["Service"] == "web"
    assert str(rows[0]["State"]).lower() == "running"
    assert sorted(rows[0]["Secrets"]) == sorted(MODES_TARGETS)
    assert rows[0]["Node"] and rows[0]["DesiredState"] == "running" and rows[0]["Error"] == ""
    services = json.loads(tool.ok("stack", "services", modes.name, "--format", "json").stdout)
    assert [(s["Name"], str(s["Running"])) for s in services] == [(f"{modes.name}_web", "1")]
    assert services[0]["Mode"] == "replicated" and len(services[0]["ID"]) == 12
    listed = json.loads(tool.ok("stack", "ls", "--format", "json").stdout)
    assert [s["Backend"] for s in listed if s["Name"] == modes.name] == ["swarm"]


def test_same_files_as_the_engine_backend(docker_client: Any, modes: Deployed) -> None:
    current = modes.session
    engine_name = current.new_name()
    result = current.deploy(engine_name, current.tool.workdir / "compose.yaml", "engine")
    assert result.returncode == 0, result.describe()
    wait_running(docker_client, engine_name, [f"{engine_name}_web_1"])
    on_engine = docker_client.containers.get(f"{engine_name}_web_1")

    def files(container: Any) -> dict[str, tuple[tuple[int, int, int], str]]:
        return {t: (stat_in(container, t), read_in(container, t)) for t in MODES_TARGETS}

    assert files(on_engine) == files(modes.container)
    current.tool.ok("stack", "rm", engine_name)


# ------------------------------------------------------------------ redeploy, rotation, rm


def test_redeploy_rotation_and_rm(
    docker_client: Any, swarm: dict[str, Any], test_image: str, tmp_path: Path
) -> None:
    with session(tmp_path) as current:
        tool = current.tool
        compose = tool.workdir / "compose.yaml"
        compose.write_text(REDEPLOY % {"port": free_port(), "extra": ""})
        old = canary()
        tool.secret_file("token.txt", old)
        name = current.new_name()
        tool.ok("stack", "deploy", "--backend", "swarm", "-c", str(compose), name)
        (web,) = task_containers(docker_client, name, "web")
        assert read_in(web, "/run/secrets/token") == old
        assert stat_in(web, "/run/secrets/token") == (1000, 0, 0o400)
        versions = {s: service_version(docker_client, f"{name}_{s}") for s in ("web", "other")}
        secrets_before = of_stack("secret", name)
        assert len(secrets_before) == 1

        # Unchanged: no service update, same task, same Swarm secret.
        tool.ok("stack", "deploy", "--backend", "swarm", "-c", str(compose), name)
        assert {s: service_version(docker_client, f"{name}_{s}") for s in versions} == versions
        assert task_containers(docker_client, name, "web")[0].id == web.id
        assert of_stack("secret", name) == secrets_before

        # New file content: a new Swarm secret, web updated, the old secret gone.
        new = canary()
        tool.secret_file("token.txt", new)
        tool.ok("stack", "deploy", "--backend", "swarm", "-c", str(compose), name)
        (web2,) = task_containers(docker_client, name, "web")
        assert web2.id != web.id
        assert read_in(web2, "/run/secrets/token") == new
        assert stat_in(web2, "/run/secrets/token") == (1000, 0, 0o400)
        assert service_version(docker_client, f"{name}_other") == versions["other"]
        after = of_stack("secret", name)
        assert len(after) == 1 and after != secrets_before, after

        # A deploy that fails part-way (a new service whose task exits) is undone: web keeps
        # the value it had, the failing service and the new Swarm secret are gone.
        newest = canary()
        tool.secret_file("token.txt", newest)
        failing = tool.workdir / "failing.yaml"
        failing.write_text(
            compose.read_text().replace("\nsecrets:\n", "\n" + FAILING + "secrets:\n", 1)
        )
        result = tool.run("stack", "deploy", "--backend", "swarm", "-c", str(failing), name)
        assert result.returncode == EXIT_ROLLED_BACK, result.describe()
        assert "bad" in result.output, result.describe()
        assert "Traceback" not in result.output
        assert of_stack("service", name) == [f"{name}_other", f"{name}_web"]
        assert of_stack("secret", name) == after
        (web3,) = task_containers(docker_client, name, "web")
        assert read_in(web3, "/run/secrets/token") == new

        # stack rm: nothing of the stack is left, and a second rm is fine.
        tool.ok("stack", "rm", name)
        assert leftovers(name) == []
        again = tool.run("stack", "rm", name)
        assert again.returncode == 0, again.describe()


def test_external_secret_rotate(
    docker_client: Any, swarm: dict[str, Any], test_image: str, tmp_path: Path
) -> None:
    with session(tmp_path) as current:
        tool = current.tool
        v1, v2 = canary(), canary()
        tool.ok("secret", "create", "my_secret_data", "-", stdin=v1)
        name = current.new_name()
        compose = tool.compose("stack-simple.yml")
        tool.ok("stack", "deploy", "--backend", "swarm", "-c", str(compose), name)
        (redis,) = task_containers(docker_client, name, "redis")
        assert read_in(redis, "/run/secrets/my_secret_data") == v1
        assert stat_in(redis, "/run/secrets/my_secret_data") == (0, 0, 0o444)
        first = of_stack("secret", name)

        tool.ok("secret", "rotate", "my_secret_data", "-", stdin=v2)
        tool.ok("stack", "deploy", "--backend", "swarm", "-c", str(compose), name)
        (redis2,) = task_containers(docker_client, name, "redis")
        assert read_in(redis2, "/run/secrets/my_secret_data") == v2
        second = of_stack("secret", name)
        assert len(second) == 1 and second != first, (first, second)
        labels = docker_client.api.inspect_secret(second[0])["Spec"]["Labels"]
        assert labels["io.composesecrets.secret"] == "my_secret_data"
        assert labels["io.composesecrets.version"] == "2"

        tool.ok("stack", "rm", name)
        assert leftovers(name) == []
        assert "my_secret_data" in tool.secret_names()  # external: kept in the store


REBUILT = """\
version: "3.8"
services:
  app:
    image: %(image)s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      update_config: {delay: 0s, order: stop-first}
    secrets: [token]
secrets:
  token:
    file: ./token.txt
"""


def test_a_rebuilt_local_image_rolls_the_service(
    docker_client: Any, swarm: dict[str, Any], test_image: str, tmp_path: Path
) -> None:
    """`docker build -t app .` again, then `stack deploy`: the service runs the new build
    (a tag alone would leave the service spec, and so its tasks, as they were)."""
    tag = f"composesecrets-test/rebuilt:{time.monotonic_ns()}"
    builds: list[str] = []

    def build(n: int) -> str:
        dockerfile = f"FROM {test_image}\nLABEL io.composesecrets.test.build={n}\n"
        image, _ = docker_client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True
        )  # (rm: no intermediate containers left behind)
        builds.append(image.id)
        return str(image.id)

    try:
        with session(tmp_path) as current:
            tool = current.tool
            compose = tool.workdir / "compose.yaml"
            compose.write_text(REBUILT % {"image": tag})
            value = canary()
            tool.secret_file("token.txt", value)
            name = current.new_name()
            first = build(1)
            tool.ok("stack", "deploy", "--backend", "swarm", "-c", str(compose), name)
            (app,) = task_containers(docker_client, name, "app")
            assert app.image.id == first

            second = build(2)
            assert second != first
            tool.ok("stack", "deploy", "--backend", "swarm", "-c", str(compose), name)
            (app2,) = task_containers(docker_client, name, "app")
            assert app2.id != app.id and app2.image.id == second
            assert read_in(app2, "/run/secrets/token") == value
            tool.ok("stack", "rm", name)
    finally:
        for image_id in reversed(builds):
            with contextlib.suppress(Exception):  # docker.errors.NotFound: already gone
                docker_client.images.remove(image_id, force=True)
