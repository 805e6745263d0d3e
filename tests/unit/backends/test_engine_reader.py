"""engine_reader: the stdlib unix-socket transport against a real HTTP server on a unix
socket, its errors (the same users get from the SDK path), and the listings' Docker fields."""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import docker.constants
import pytest
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import FakeEngineApi

from composesecrets.backends import engine_reader, listing
from composesecrets.backends.engine_reader import SdkTransport, UnixTransport
from composesecrets.docker_rules import DOCKER_API_VERSION, LABEL_SERVICE, LABEL_STACK
from composesecrets.errors import BackendError, EngineApiError


def test_the_api_version_is_the_sdks() -> None:
    assert DOCKER_API_VERSION == docker.constants.DEFAULT_DOCKER_API_VERSION


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Engine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as dockerd
    seen: ClassVar[list[str]] = []
    api_version = "1.41"

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body: Any
        headers = {}
        if self.path in ("/_ping", f"/v{self.api_version}/_ping"):  # the version: a header
            status, body, headers = 200, "OK", {"API-Version": self.api_version}
        elif self.path == "/version":  # what the SDK asks
            status, body = 200, {"ApiVersion": self.api_version}
        elif self.path.startswith(f"/v{self.api_version}/containers/json"):
            status, body = 200, [{"Id": "abc", "Labels": {LABEL_STACK: "shop"}}]
        elif self.path.endswith("/services"):
            status, body = 503, {"message": "This node is not a swarm manager."}
        else:
            status, body = 404, {"message": f"page not found: {self.path}"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        """A start: 204 when it starts, 304 when it runs already, 404 for no container."""
        self.seen.append(f"POST {self.path}")
        codes = {"new": 204, "running": 304}
        status = codes.get(self.path.split("/")[3], 404) if self.path.count("/") > 3 else 404
        data = b"" if status != 404 else json.dumps({"message": "No such container"}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def engine_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "docker.sock"
    _Engine.seen = []
    server = _Server(str(path), _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()


def test_get_negotiates_the_version_and_keeps_one_connection(engine_socket: Path) -> None:
    transport = UnixTransport(str(engine_socket))
    query = {"all": "1", "filters": {"label": ["a=b"]}}
    assert transport.get("/containers/json", query) == [
        {"Id": "abc", "Labels": {LABEL_STACK: "shop"}}
    ]
    transport.get("/containers/json")
    assert transport.version == "1.41"  # the engine's, older than the SDK's default
    assert _Engine.seen[0] == "/_ping"
    assert _Engine.seen[1].startswith("/v1.41/containers/json?all=1&filters=")
    sent = parse_qs(urlsplit(_Engine.seen[1]).query)
    assert json.loads(sent["filters"][0]) == {"label": ["a=b"]}
    assert len(_Engine.seen) == 3


def test_a_post_without_an_answer_body_returns_none(engine_socket: Path) -> None:
    transport = UnixTransport(str(engine_socket))
    assert transport.request("POST", "/containers/new/start") is None  # 204 No Content
    assert transport.request("POST", "/containers/running/start") is None  # 304: runs already
    with pytest.raises(EngineApiError) as caught:
        transport.request("POST", "/containers/gone/start")
    assert (caught.value.status, caught.value.message) == (404, "No such container")
    assert _Engine.seen[1:] == [f"POST /v1.41/containers/{c}/start" for c in ("new", "running",
                                                                            "gone")]  # fmt: skip


def test_one_transport_serves_many_threads_at_once(engine_socket: Path) -> None:
    """restore starts containers from a thread pool through one transport: an http.client
    connection carries one request at a time ("Request-sent" when shared)."""
    from concurrent.futures import ThreadPoolExecutor

    transport = UnixTransport(str(engine_socket))
    transport.get("/containers/json")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: transport.get("/containers/json"), range(40)))
    assert all(a == [{"Id": "abc", "Labels": {LABEL_STACK: "shop"}}] for a in answers)


def test_a_newer_engine_is_asked_with_the_sdks_version(engine_socket: Path) -> None:
    _Engine.api_version = "9.99"
    try:
        transport = UnixTransport(str(engine_socket))
        with pytest.raises(EngineApiError):
            transport.get("/containers/json")
        assert transport.version == DOCKER_API_VERSION
    finally:
        _Engine.api_version = "1.41"


def test_an_error_status_carries_the_engines_message(engine_socket: Path) -> None:
    transport = UnixTransport(str(engine_socket))
    with pytest.raises(EngineApiError) as caught:
        transport.get("/services")
    assert caught.value.status == 503
    assert caught.value.message == "This node is not a swarm manager."
    assert caught.value.exit_code == 8
    with pytest.raises(EngineApiError) as missing:
        transport.get("/nope")
    assert missing.value.status == 404
    assert transport.get("/containers/json")  # the connection is still usable


def test_debug_logs_each_call_without_its_body(
    engine_socket: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="composesecrets.docker"):
        transport = UnixTransport(str(engine_socket))
        transport.get("/containers/json", {"filters": {"label": ["x"]}})
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1].startswith("GET /_ping -> 200 OK (")
    assert lines[2].startswith('GET /v1.41/containers/json?filters={"label": ["x"]} -> 200 OK (')
    assert "abc" not in caplog.text  # no body


def test_a_missing_socket_is_the_no_daemon_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "none.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    with pytest.raises(BackendError) as caught:
        engine_reader.connect().get("/containers/json")
    assert caught.value.message == (
        f"cannot reach the Docker Engine at unix://{path}: no such socket"
    )
    assert caught.value.hint == engine_reader.START_HINT


def test_a_refused_connection_is_the_no_daemon_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    path = tmp_path / "dead.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # bound, never listening: connect() is refused
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        with pytest.raises(BackendError) as caught:
            engine_reader.connect().get("/info")
    finally:
        dead.close()
    assert caught.value.message.endswith(": connection refused")


def test_only_a_local_socket_bypasses_the_sdk() -> None:
    assert isinstance(engine_reader.connect({}), UnixTransport)
    local = engine_reader.connect({"DOCKER_HOST": "unix:///run/x.sock"})
    assert isinstance(local, UnixTransport) and local.socket_path == "/run/x.sock"
    for host in ("tcp://10.0.0.1:2376", "ssh://me@host"):
        assert isinstance(engine_reader.connect({"DOCKER_HOST": host}), SdkTransport)


def test_the_sdk_transport_answers_like_the_unix_one(
    engine_socket: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback (remote engines) through the SDK's low-level client, here on the socket."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{engine_socket}")
    transport = SdkTransport()
    assert transport.get("/containers/json")[0]["Id"] == "abc"
    with pytest.raises(EngineApiError) as caught:
        transport.get("/services")
    assert caught.value.status == 503 and "not a swarm manager" in caught.value.message


# --------------------------------------------------------------------------- listings


def test_engine_fields_as_docker_names_them(tmp_path: Path) -> None:
    fake = FakeDocker()
    labels = {LABEL_STACK: "shop", LABEL_SERVICE: "web"}
    web = fake.containers.create("busybox:test", "shop_web_1", labels=dict(labels),
                                 ports={"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
                                 restart_policy={"Name": "always"})  # fmt: skip
    web.start()
    crashed = fake.containers.create("busybox:test", "shop_web_2", labels=dict(labels))
    crashed.status, crashed.exit_code = "exited", 3
    failed = fake.containers.create("busybox:test", "shop_web_3", labels=dict(labels))
    failed.status, failed.error = "created", "no such file or directory"
    api = FakeEngineApi(fake)
    one, two, three = listing.engine_containers(api, "shop")
    assert (one.node, one.desired_state, one.error, one.ports) == (
        "fake-node", "running", "", ("0.0.0.0:8080->80/tcp",)
    )
    assert (two.state, two.desired_state, two.error) == ("exited", "shutdown",
                                                         "non-zero exit (3)")  # fmt: skip
    assert three.error == "no such file or directory"
    assert listing.engine_stacks(api) == {"shop": 1}
    assert listing.swarm_stacks(api) == {}  # not a swarm manager: no swarm stacks


def test_ports_as_docker_ps_prints_them() -> None:
    ports = [
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
    ]
    assert listing.format_ports(ports) == (
        "53/udp", "0.0.0.0:8080->80/tcp", "[::]:8080->80/tcp"
    )
    swarm = [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080}]
    assert listing.format_swarm_ports(swarm) == ("*:8080->80/tcp",)


def test_a_non_manager_engine_still_lists_its_engine_stacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from unit.backends.fake_engine_api import serve

    from composesecrets import inventory

    fake = FakeDocker()
    fake.containers.create("busybox:test", "a_web_1", labels={LABEL_STACK: "a",
                                                              LABEL_SERVICE: "web"})  # fmt: skip
    api = serve(monkeypatch, engine=fake)
    assert [(s.name, s.services, s.backend) for s in inventory.stacks()] == [("a", 1, "engine")]
    assert "/services" in api.paths


def test_the_plain_http_client_leaves_ssl_unloaded_and_importable() -> None:
    """In a fresh command-line process the transport's ``http.client`` comes without OpenSSL;
    ``ssl`` can still be imported afterwards (the SDK's urllib3 needs it for TLS engines).
    When ssl was loaded first, or in a library caller's process, ``http.client`` is the
    ordinary one (with ``HTTPSConnection``, which urllib's https needs)."""
    import subprocess
    import sys

    def run(prelude: str) -> list[str]:
        script = (
            f"import sys\n{prelude}"
            "from composesecrets.backends.engine_reader import plain_http_client\n"
            "client = plain_http_client()\n"
            "print('ssl' in sys.modules, hasattr(client, 'HTTPSConnection'))\n"
            "import ssl, urllib3\n"
            "print(ssl.OPENSSL_VERSION.split()[0], urllib3.util.ssl_.IS_PYOPENSSL is False)\n"
        )
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    command_line = "import composesecrets\ncomposesecrets._command_line = True\n"
    assert run(command_line) == ["False", "False", "OpenSSL", "True"]
    assert run(command_line + "import ssl\n")[:2] == ["True", "True"]
    assert run("")[:2] == ["True", "True"]  # a library caller's process
