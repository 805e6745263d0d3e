"""The guide's nginx example (examples/nginx-tls) end to end on a real nginx (issue 6).

The example's compose.yaml and site.conf are copied to a temporary directory, next to a
root CA, a site key and a site certificate made by the example's own generator
(examples/nginx-tls/gen-certs.py --dir). The stack is deployed under a unique name with the
port published on a free local port (NGINX_PORT), with a store in the test's temporary
directory unlocked by a random COMPOSESECRETS_KEY, on the image composesecrets-test/nginx
built from Debian's nginx-light by scripts/build-server-images.sh.

Then, like the guide's `curl --cacert root-ca.crt https://localhost:PORT/`: the HTTPS
answer verifies against the root CA (and not against the system's CAs), and the
certificate nginx serves is site.crt, i.e. the secret. site.conf is a config (issue 12):
nginx serves a location only that file defines, and a changed site.conf, redeployed, is
what nginx serves next (a new config version). The mounted files have the modes of the
compose file. After `stack rm`, no container, service, network, swarm secret or config,
store entry or tmpfs directory of the stack is left, and the port is closed.

It runs with the engine backend, and with the swarm backend (port in `mode: host`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from integration.helpers import (
    CLI_TIMEOUT,
    TMPFS_ROOT,
    docker,
    docker_ok,
    free_port,
    ours,
    store_env,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "nginx-tls"
BUILD_SERVER_IMAGES = REPO / "scripts" / "build-server-images.sh"
SERVE_TIMEOUT = 60.0
GONE_TIMEOUT = 30.0

# target -> (mode, uid, gid) from examples/nginx-tls/compose.yaml
EXPECTED_MOUNTS = {
    "/run/secrets/site.key": ("400", "0", "0"),
    "/run/secrets/site.crt": ("444", "0", "0"),
    "/etc/nginx/conf.d/site.conf": ("444", "0", "0"),
}
SOURCES = {
    "/run/secrets/site.key": "site.key",
    "/run/secrets/site.crt": "site.crt",
    "/etc/nginx/conf.d/site.conf": "site.conf",
}


def wait_for(what: str, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


@dataclass
class Answer:
    status: int
    body: str
    peer_der: bytes


def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> Answer:
    """GET https://localhost:PORT/PATH (hostname checked against the certificate's SAN)."""
    conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    try:
        conn.request("GET", path)
        assert conn.sock is not None
        # before the answer: a server that closes the connection after it (nginx's old
        # workers during a reload) leaves no socket to ask afterwards
        peer = conn.sock.getpeercert(binary_form=True)
        assert peer is not None
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        return Answer(response.status, body, peer)
    finally:
        conn.close()


def ca_context(cafile: Path) -> ssl.SSLContext:
    """Like `curl --cacert root-ca.crt`: trust only that CA, check the host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(cafile))
    return context


def port_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


@dataclass
class Deployment:
    backend: str
    stack: str
    port: int
    workdir: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ours(), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=CLI_TIMEOUT,
        )

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, (
            f"composesecrets {' '.join(args)}: exit {proc.returncode}\n"
            f"{proc.stdout.strip()}\n{proc.stderr.strip()}"
        )
        return proc.stdout

    def containers(self) -> list[str]:
        rows = json.loads(self.ok("stack", "ps", self.stack, "--format", "json"))
        return [row["Name"] for row in rows if row.get("State") == "running"]

    def leftovers(self) -> list[str]:
        """Everything of the stack still known to the engine, the store or the tmpfs."""
        found: list[str] = []
        for label in (
            f"io.composesecrets.stack={self.stack}",
            f"com.docker.stack.namespace={self.stack}",
        ):
            names = docker_ok("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}")
            found += [f"container {n}" for n in names.split()]
        networks = docker_ok("network", "ls", "--format", "{{.Name}}").split()
        found += [f"network {n}" for n in networks if n.startswith(f"{self.stack}_")]
        if self.backend == "swarm":
            services = docker_ok("service", "ls", "--format", "{{.Name}}").split()
            found += [f"service {n}" for n in services if n.startswith(f"{self.stack}_")]
            secrets = docker_ok("secret", "ls", "--format", "{{.Name}}").split()
            found += [f"swarm secret {n}" for n in secrets if n.startswith(f"{self.stack}_")]
            configs = docker_ok("config", "ls", "--format", "{{.Name}}").split()
            found += [f"swarm config {n}" for n in configs if n.startswith(f"{self.stack}_")]
        if TMPFS_ROOT.is_dir():
            found += [f"tmpfs {p}" for p in TMPFS_ROOT.glob(f"{self.stack}*")]
        stored = json.loads(self.ok("secret", "ls", "--format", "json"))
        found += [f"stored secret {entry['Spec']['Name']}" for entry in stored]
        return sorted(found)

    def force_cleanup(self) -> None:
        """Best effort after a failure, so that one failure does not leak into the next run."""
        self.run("stack", "rm", self.stack)
        if self.backend == "swarm":
            for name in docker_ok("service", "ls", "--format", "{{.Name}}").split():
                if name.startswith(f"{self.stack}_"):
                    docker("service", "rm", name)
        ids = docker_ok(
            "ps", "-aq", "--filter", f"label=io.composesecrets.stack={self.stack}"
        ).split()
        if ids:
            docker("rm", "-f", *ids)
        for name in docker_ok("network", "ls", "--format", "{{.Name}}").split():
            if name.startswith(f"{self.stack}_"):
                docker("network", "rm", name)


def _backend_ready(request: pytest.FixtureRequest, backend: str) -> None:
    request.getfixturevalue("docker_client")
    if backend == "swarm":
        request.getfixturevalue("swarm")


@pytest.fixture(scope="session")
def nginx_image(docker_client: Any) -> str:
    """composesecrets-test/nginx, built by scripts/build-server-images.sh when missing."""
    proc = subprocess.run(
        [str(BUILD_SERVER_IMAGES), "nginx"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, (
        f"building the nginx image failed (exit {proc.returncode}): {proc.stderr.strip()}"
    )
    return lines[-1]


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A copy of examples/nginx-tls with freshly generated keys and certificates."""
    work = tmp_path / "nginx-tls"
    work.mkdir(mode=0o700)
    for name in ("compose.yaml", "site.conf"):
        shutil.copyfile(EXAMPLE / name, work / name)
    subprocess.run(
        [sys.executable, str(EXAMPLE / "gen-certs.py"), "--dir", str(work)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for key in ("root-ca.key", "site.key"):
        assert (work / key).stat().st_mode & 0o777 == 0o600, f"{key} is not 0600"
    with_marker(work / "site.conf", "config v1")
    return work


MARKER_PATH = "/composesecrets-config"


def with_marker(site_conf: Path, marker: str) -> None:
    """Give the server block a location that answers ``marker``: only the config defines it."""
    text = (EXAMPLE / "site.conf").read_text()
    location = f'    location = {MARKER_PATH} {{ return 200 "{marker}"; }}\n'
    site_conf.write_text(text.replace("    location / {", location + "    location / {", 1))


@pytest.fixture(params=["engine", "swarm"])
def deployment(
    request: pytest.FixtureRequest, nginx_image: str, example_dir: Path, tmp_path: Path
) -> Iterator[Deployment]:
    backend: str = request.param
    _backend_ready(request, backend)
    port = free_port()
    env = {**store_env(tmp_path / "store"), "NGINX_PORT": str(port), "NGINX_IMAGE": nginx_image}
    dep = Deployment(backend, f"ngx{uuid.uuid4().hex[:10]}", port, example_dir, env)
    try:
        yield dep
    finally:
        if dep.leftovers():
            dep.force_cleanup()


def test_nginx_tls_example_serves_the_secret_certificate_and_leaves_nothing(
    deployment: Deployment, example_dir: Path
) -> None:
    dep = deployment
    dep.ok("stack", "deploy", "--backend", dep.backend, "-c", "compose.yaml", dep.stack)

    context = ca_context(example_dir / "root-ca.crt")
    answers: list[Answer] = []

    def served() -> bool:
        try:
            answers.append(https_get(dep.port, context))
        except (OSError, http.client.HTTPException):
            return False
        return True

    wait_for(f"https://localhost:{dep.port}/", served, SERVE_TIMEOUT)
    answer = answers[-1]
    assert answer.status == 200
    assert "Welcome to nginx" in answer.body
    site_crt = x509.load_pem_x509_certificate((example_dir / "site.crt").read_bytes())
    assert answer.peer_der == site_crt.public_bytes(serialization.Encoding.DER), (
        "nginx does not serve the certificate given as the secret site.crt"
    )
    # The verification is real: without our root CA the same server is not trusted.
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(dep.port, ssl.create_default_context())

    # The mounted secrets: content, owner and mode as the compose file says.
    (container,) = dep.containers()
    targets = list(EXPECTED_MOUNTS)
    # (-L: with in-place rotation each target is a symlink into the secret directory)
    out = docker_ok("exec", container, "stat", "-L", "-c", "%n %a %u %g", *targets)
    seen = {line.split()[0]: tuple(line.split()[1:]) for line in out.splitlines()}
    assert seen == EXPECTED_MOUNTS
    sums = docker_ok("exec", container, "sha256sum", *targets)
    inside = {line.split()[1]: line.split()[0] for line in sums.splitlines()}
    for target, source in SOURCES.items():
        expected = hashlib.sha256((example_dir / source).read_bytes()).hexdigest()
        assert inside[target] == expected, f"{target} differs from {source}"
    # The config: nginx serves what only site.conf defines; a changed site.conf, redeployed,
    # becomes a new config version that nginx serves next.
    assert https_get(dep.port, context, MARKER_PATH).body == "config v1"
    namespace = f"label=com.docker.stack.namespace={dep.stack}"

    def swarm_configs() -> list[str]:
        return docker_ok("config", "ls", "--filter", namespace, "--format", "{{.Name}}").split()

    if dep.backend == "swarm":
        first = swarm_configs()
        assert len(first) == 1 and first[0].startswith(f"{dep.stack}_site.conf_")
    with_marker(example_dir / "site.conf", "config v2")
    dep.ok("stack", "deploy", "--backend", dep.backend, "-c", "compose.yaml", dep.stack)
    bodies: list[str] = []

    def rotated() -> bool:
        try:
            bodies.append(https_get(dep.port, context, MARKER_PATH).body)
        except (OSError, http.client.HTTPException):
            return False
        return bodies[-1] == "config v2"

    wait_for("nginx to serve the new config version", rotated, SERVE_TIMEOUT)
    stored = json.loads(dep.ok("secret", "inspect", f"{dep.stack}_site.conf"))
    assert stored[0]["Spec"]["Labels"]["io.composesecrets.kind"] == "config"
    assert stored[0]["Version"]["Index"] == 2
    if dep.backend == "swarm":
        second = swarm_configs()  # the old version's Swarm config is pruned
        assert len(second) == 1 and second != first
    (container,) = dep.containers()
    # The key's content is in no container configuration.
    key_body = (example_dir / "site.key").read_text().splitlines()[1]
    assert key_body not in docker_ok("inspect", container)

    secret_dirs = sorted(
        {
            str(Path(m["Source"]).parent)
            for m in json.loads(docker_ok("inspect", container))[0]["Mounts"]
            if m.get("Source", "").startswith(str(TMPFS_ROOT) + "/")
        }
    )
    if dep.backend == "engine":
        assert secret_dirs, "the engine backend should mount secrets from its tmpfs"

    dep.ok("stack", "rm", dep.stack)
    wait_for(
        f"nothing of {dep.stack} left (still: {dep.leftovers()})",
        lambda: not dep.leftovers(),
        GONE_TIMEOUT,
    )
    assert not [d for d in secret_dirs if Path(d).exists()]
    assert port_closed(dep.port)


ROTATION_DEADLINE = 2.0  # seconds from the command to the new certificate being served
MAX_REQUESTS = 5000
REQUEST_PAUSE = 0.05  # about 15 requests a second: the client does not starve the 2 cores


@pytest.fixture
def engine_deployment(
    request: pytest.FixtureRequest, nginx_image: str, example_dir: Path, tmp_path: Path
) -> Iterator[Deployment]:
    _backend_ready(request, "engine")
    port = free_port()
    env = {**store_env(tmp_path / "store"), "NGINX_PORT": str(port), "NGINX_IMAGE": nginx_image}
    dep = Deployment("engine", f"ngr{uuid.uuid4().hex[:10]}", port, example_dir, env)
    try:
        yield dep
    finally:
        if dep.leftovers():
            dep.force_cleanup()


def test_nginx_key_and_certificate_rotate_in_place_without_a_failed_request(
    engine_deployment: Deployment, example_dir: Path
) -> None:
    """Issue 11: a new site key and certificate from the same CA, while a client makes HTTPS
    requests in a bounded loop: no failed request, the new certificate is served within 2 s
    of the command, the container is the same one (nginx reloads on SIGHUP)."""
    dep = engine_deployment
    dep.ok("stack", "deploy", "-c", "compose.yaml", dep.stack)
    context = ca_context(example_dir / "root-ca.crt")
    wait_for(f"https://localhost:{dep.port}/", lambda: _serves(dep.port, context), SERVE_TIMEOUT)
    (container,) = dep.containers()
    container_id = docker_ok("inspect", "-f", "{{.Id}}", container).strip()
    old_der = _der(example_dir / "site.crt")

    subprocess.run(
        [sys.executable, str(EXAMPLE / "gen-certs.py"), "--dir", str(example_dir), "--new-site"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    new_der = _der(example_dir / "site.crt")
    assert new_der != old_der

    seen: list[tuple[float, bytes]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        for _ in range(MAX_REQUESTS):
            if stop.is_set():
                return
            try:
                answer = https_get(dep.port, context)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{time.monotonic():.3f} {type(exc).__name__}: {exc}")
                continue
            if answer.status != 200:
                failures.append(f"HTTP {answer.status}")
            seen.append((time.monotonic(), answer.peer_der))
            time.sleep(REQUEST_PAUSE)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.5)  # requests are being answered with the old pair
        started = time.monotonic()
        out = dep.ok("stack", "deploy", "-c", "compose.yaml", dep.stack)
        finished = time.monotonic()
        wait_for("the new certificate", lambda: any(d == new_der for _, d in seen), 10)
        time.sleep(0.5)  # and a little more traffic after it
    finally:
        stop.set()
        thread.join(timeout=60)
    assert failures == [], f"{len(failures)} failed requests: {failures[:3]}"
    assert "1 rotated" in out, out
    assert {d for _, d in seen} <= {old_der, new_der}
    assert any(d == old_der for t, d in seen if t < started), "no request before the rotation"
    first_new = min(t for t, d in seen if d == new_der)
    assert first_new - started <= ROTATION_DEADLINE, (
        f"the new certificate was served {first_new - started:.2f} s after the command "
        f"(the command took {finished - started:.2f} s)"
    )
    assert all(d == new_der for t, d in seen if t > finished + 1.0), "old certificate after"
    assert docker_ok("inspect", "-f", "{{.Id}}", container).strip() == container_id
    rows = json.loads(dep.ok("stack", "ps", dep.stack, "--format", "json"))
    versions = rows[0]["SecretVersions"]
    assert f"{dep.stack}_site.key@2" in versions and f"{dep.stack}_site.crt@2" in versions
    # the new key is what nginx's master reads: root, 0400, through the symlink
    out = docker_ok("exec", container, "stat", "-L", "-c", "%a %u %g", "/run/secrets/site.key")
    assert out.split() == ["400", "0", "0"]
    dep.ok("stack", "rm", dep.stack)
    wait_for(f"nothing of {dep.stack} left", lambda: not dep.leftovers(), GONE_TIMEOUT)


def _serves(port: int, context: ssl.SSLContext) -> bool:
    try:
        return https_get(port, context).status == 200
    except (OSError, http.client.HTTPException):
        return False


def _der(path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)
