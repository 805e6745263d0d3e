"""Light access to the Docker Engine API: the listings (``stack ls/ps/services``) and
``stack restore`` (list, inspect, start), the commands whose start-up matters most.

A transport has ONE method, ``request(method, path, query) -> parsed JSON`` (``None`` for an
answer without a body); :class:`BaseTransport` adds ``get`` on top of it. The listings in
:mod:`.listing` and the restore in :mod:`.engine.restore` are written against it, and unit
tests give them an in-memory fake of it.

* :class:`UnixTransport` (DOCKER_HOST unset or ``unix://...``): the standard library's
  ``http.client`` over an ``AF_UNIX`` socket. It neither imports the docker SDK (requests,
  urllib3: most of a listing's start-up) nor the deploy machinery.
* :class:`SdkTransport` (any other DOCKER_HOST: ``tcp://``, ``ssh://``, TLS): the docker SDK's
  low-level client, so that every address and TLS setting the SDK reads keeps working.

Errors leave a transport as the errors users get from the backends: an engine that cannot
be reached is a :class:`BackendError` naming the address, why in plain words and how to start
it; an error status is an :class:`EngineApiError` with the engine's explanation and the
status (503 on ``/services``: the engine is not a swarm manager).

The API version is the SDK's default (:data:`~composesecrets.docker_rules.DOCKER_API_VERSION`)
capped at the engine's own version (the ``API-Version`` header of ``GET /_ping``, asked once).
With ``--debug`` each call is logged as method, path and query, status and time; never a body.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus, urlencode, urlsplit

from composesecrets.docker_rules import DOCKER_API_VERSION
from composesecrets.errors import BackendError, EngineApiError

if TYPE_CHECKING:
    import http.client
    import logging
    from types import ModuleType

__all__ = [
    "START_HINT",
    "BaseTransport",
    "SdkTransport",
    "Transport",
    "UnixTransport",
    "connect",
    "describe_request",
    "engine_address",
    "reason",
    "unreachable",
]

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT = 120.0  # seconds, as the backends' SDK client
DEBUG_ENV = "COMPOSESECRETS_DEBUG"

START_HINT = (
    "start the Docker Engine (`sudo systemctl start docker`, or run `sudo dockerd`), "
    "or point DOCKER_HOST at a running one; `docker info` checks it"
)

Query = Mapping[str, Any]


class Transport(Protocol):
    """``request``: ``method`` on ``path`` (unversioned, e.g. ``/containers/json``) with
    ``query`` (values that are not strings are sent as JSON: Docker's ``filters``), no body;
    the parsed JSON answer, or None when there is none (204, 304). ``get``: a GET."""

    def request(self, method: str, path: str, query: Query | None = None) -> Any: ...

    def get(self, path: str, query: Query | None = None) -> Any: ...


class BaseTransport:
    """``get`` for a transport that implements ``request``."""

    def request(self, method: str, path: str, query: Query | None = None) -> Any:
        raise NotImplementedError

    def get(self, path: str, query: Query | None = None) -> Any:
        return self.request("GET", path, query)


def engine_address(environ: Mapping[str, str] | None = None) -> str:
    """Where the SDK looks for the engine: ``DOCKER_HOST`` or the default socket."""
    return (os.environ if environ is None else environ).get(
        "DOCKER_HOST", ""
    ) or f"unix://{DEFAULT_SOCKET}"


def reason(exc: Any) -> str:
    """The engine's own explanation of an SDK error (its message otherwise)."""
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc).strip()


def unreachable(exc: BaseException) -> BackendError:
    """The error for an engine that cannot be reached: where, why in plain words, what to do
    (whatever the caller was doing does not matter then)."""
    address = engine_address()
    text = str(exc)
    if "FileNotFoundError" in text or "No such file" in text:
        why = "no such socket"
    elif "PermissionError" in text or "Permission denied" in text:
        return BackendError(
            f"cannot reach the Docker Engine at {address}: permission denied on the socket",
            hint="run as root, or add your user to the docker group (then log in again)",
        )
    elif "Connection refused" in text or "ConnectionRefusedError" in text:
        why = "connection refused"
    elif "timed out" in text.lower() or isinstance(exc, TimeoutError):
        why = "no answer (timed out)"
    else:
        why = reason(exc) or type(exc).__name__
    return BackendError(f"cannot reach the Docker Engine at {address}: {why}", hint=START_HINT)


def describe_request(method: str, url: str) -> str:
    """``GET /v1.47/containers/json?filters=...``: the path and query, never a body."""
    parts = urlsplit(url)
    path = unquote_plus(parts.path)
    query = f"?{unquote_plus(parts.query)}" if parts.query else ""
    return f"{method} {path}{query}"


def _encode(query: Query | None) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in (query or {}).items()}


def _logger() -> logging.Logger | None:
    """The ``--debug`` log of API calls, when it is on (``logging`` is imported only then)."""
    if os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no"):
        from composesecrets.backends.docker_api import enable_debug

        enable_debug()
    if "logging" not in sys.modules:
        return None  # nothing can have switched the log on
    import logging

    log = logging.getLogger("composesecrets.docker")
    return log if log.isEnabledFor(logging.DEBUG) else None


def _explanation(body: bytes) -> str:
    """The ``message`` of the engine's JSON error body (the body's text otherwise)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        found = json.loads(text)
    except ValueError:
        return text
    message = found.get("message") if isinstance(found, dict) else None
    return str(message or text).strip()


_IMPORTING = threading.Lock()


def plain_http_client() -> ModuleType:
    """``http.client``; in a command-line process, imported without ``ssl`` when nothing has
    imported ``ssl`` yet. The transport speaks plain HTTP over a unix socket, and ``ssl``
    (OpenSSL's ``_ssl`` with it) is a third of ``http.client``'s import time: about 8 ms of
    every ``stack ls``, ``ps``, ``services`` and ``restore``. ``http.client`` then has no
    ``HTTPSConnection`` in that process, which nothing of ours uses (a TLS or remote engine
    goes through the SDK: urllib3 imports ``ssl`` itself, which stays importable). A library
    caller's process keeps the ordinary ``http.client`` (urllib's https needs it)."""
    import composesecrets

    with _IMPORTING:  # one thread stands in for ssl, and takes its stand-in away again
        if (composesecrets._command_line and "http.client" not in sys.modules
                and "ssl" not in sys.modules):  # fmt: skip
            sys.modules["ssl"] = None  # type: ignore[assignment]  # import ssl: ImportError
            try:
                import http.client
            finally:
                del sys.modules["ssl"]
    import http.client

    return http.client


class UnixTransport(BaseTransport):
    """The engine's unix socket with ``http.client``: one kept-alive connection per thread
    (an ``http.client`` connection carries one request at a time; restore starts containers
    from a thread pool)."""

    def __init__(self, socket_path: str, *, timeout: float = TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.version: str | None = None  # negotiated on the first call
        self._local = threading.local()  # .connection: this thread's http.client connection
        self._log = _logger()
        if self._log is not None:
            self._log.debug("connecting to the Docker Engine at %s", engine_address())

    def request(self, method: str, path: str, query: Query | None = None) -> Any:
        if self.version is None:
            self.version = self._negotiate()
        return self._request(method, f"/v{self.version}{path}", query)

    def _negotiate(self) -> str:
        """The SDK's default API version, or the engine's when it is older (the engine names
        its own in the ``API-Version`` header of ``/_ping``: cheaper than ``/version``, which
        asks containerd and runc for theirs)."""
        response, _body = self._send("GET", "/_ping", None)
        found = response.getheader("API-Version") or DOCKER_API_VERSION
        numbers = [tuple(int(p) for p in v.split(".")) for v in (found, DOCKER_API_VERSION)]
        return found if numbers[0] < numbers[1] else DOCKER_API_VERSION

    def _open(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            import socket

            plain_http_client()
            import http.client

            socket_path = self.socket_path

            class Connection(http.client.HTTPConnection):
                def connect(self) -> None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(self.timeout)
                    try:
                        sock.connect(socket_path)
                    except BaseException:
                        sock.close()
                        raise
                    self.sock = sock

            connection = self._local.connection = Connection("localhost", timeout=self.timeout)
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _request(self, method: str, url: str, query: Query | None) -> Any:
        response, body = self._send(method, url, query)
        if response.status in (204, 304):  # done; nothing to do (e.g. started already)
            return None
        if not 200 <= response.status < 300:
            raise EngineApiError(_explanation(body), status=response.status)
        return json.loads(body) if body else None

    def _send(
        self, method: str, url: str, query: Query | None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        encoded = _encode(query)
        if encoded:
            url = f"{url}?{urlencode(encoded)}"
        started = time.monotonic()
        try:
            connection = self._open()
            connection.request(method, url, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read()
        except Exception as exc:  # OSError, or http.client's: the engine hung up mid-answer
            self.close()
            error = unreachable(exc)
            if self._log is not None:
                took = (time.monotonic() - started) * 1000
                self._log.debug("%s failed after %.0f ms: %s", describe_request(method, url),
                                took, type(exc).__name__)  # fmt: skip
            raise error from None
        if self._log is not None:
            took = (time.monotonic() - started) * 1000
            outcome = f"{response.status} {response.reason or ''}".strip()
            self._log.debug("%s -> %s (%.0f ms)", describe_request(method, url), outcome, took)
        return response, body


class SdkTransport(BaseTransport):
    """The docker SDK's low-level client (remote engines, TLS, ssh)."""

    def __init__(self, client: Any = None) -> None:
        from composesecrets.backends.docker_api import LazyClient

        self._lazy = LazyClient(client)

    def request(self, method: str, path: str, query: Query | None = None) -> Any:
        from composesecrets.backends.docker_api import docker, translated

        sdk = docker()
        with translated("asking the Docker Engine"):
            api = self._lazy.client.api
            send = {"GET": api._get, "POST": api._post}[method]
            try:
                response = send(api._url(path), params=_encode(query))
                api._raise_for_status(response)
                return response.json() if response.content else None
            except sdk.errors.APIError as exc:
                status = int(getattr(exc, "status_code", None) or 500)
                raise EngineApiError(reason(exc), status=status) from None


def connect(environ: Mapping[str, str] | None = None) -> Transport:
    """The transport for the engine the environment names (unit tests replace this)."""
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
    if not host or host.startswith("unix://"):
        return UnixTransport(host.removeprefix("unix://") or DEFAULT_SOCKET)
    return SdkTransport()
