"""What both backends need of the Docker SDK: a lazily made client, error translation into
:mod:`composesecrets.errors`, a thread pool helper, and the ``--debug`` log of API calls.

The SDK is imported on first use (start-up time). A backend is given a client object (the
SDK's ``DockerClient``, or in unit tests the in-memory fake in ``tests/unit/backends``) or
makes one from the environment (``DOCKER_HOST`` ...). Every SDK or transport error leaves a
backend as a :class:`BackendError` carrying the engine's own reason.

Debug log (``--debug`` or ``COMPOSESECRETS_DEBUG=1``): each HTTP request the SDK makes is
logged to stderr as method, path and query (names and filters), then its status and time.
Request bodies (where secret values travel) are never logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from composesecrets.backends.engine_reader import (
    START_HINT,
    describe_request,
    engine_address,
    reason,
    unreachable,
)
from composesecrets.errors import BackendError, ComposeSecretsError, DeployFailedError

__all__ = [
    "START_HINT",
    "STOP_WORKERS",
    "WORKERS",
    "LazyClient",
    "debug_enabled",
    "deploy_failed",
    "describe_request",
    "docker",
    "enable_debug",
    "engine_address",
    "is_local_daemon",
    "is_running",
    "list_containers",
    "parallel",
    "reason",
    "translated",
]

STOP_WORKERS = 64
WORKERS = 16  # engine calls are I/O bound; stops wait out grace periods in parallel
DEBUG_ENV = "COMPOSESECRETS_DEBUG"

log = logging.getLogger("composesecrets.docker")

T = TypeVar("T")


def docker() -> Any:
    """The ``docker`` SDK package (imported on first use)."""
    import docker as sdk

    return sdk


def is_local_daemon(environ: Mapping[str, str] | None = None) -> bool:
    host = (os.environ if environ is None else environ).get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


_unreachable = unreachable


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn Docker SDK / transport errors into BackendError with the engine's reason."""
    sdk = docker()
    try:
        yield
    except ComposeSecretsError:
        raise
    except sdk.errors.APIError as exc:  # NotFound and ImageNotFound included
        error = BackendError(f"{what}: {reason(exc)}")
    except sdk.errors.DockerException as exc:
        error = _unreachable(exc)
    except OSError as exc:  # requests' ConnectionError is an OSError
        error = _unreachable(exc) if _is_transport(exc) else BackendError(f"{what}: {exc}")
    else:
        return
    log.debug("failed: %s", error.message)
    raise error from None


def _is_transport(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in ("requests", "urllib3")


def deploy_failed(stack: str, exc: ComposeSecretsError) -> DeployFailedError:
    """The error of a deploy of ``stack`` that failed with ``exc`` and was undone."""
    return DeployFailedError(
        f"deploy of stack {stack} failed: {exc.message}; the changes of this run were undone",
        hint=exc.hint,
    )


def parallel(jobs: Sequence[Callable[[], T]], workers: int = WORKERS) -> list[T]:
    """Run jobs on a thread pool; re-raise the first error after all have finished."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = [pool.submit(job) for job in jobs]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


# --------------------------------------------------------------------------- debug log


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(DEBUG_ENV, "")
    return value.lower() not in ("", "0", "false", "no") or log.isEnabledFor(logging.DEBUG)


def enable_debug() -> None:
    """Log Docker API calls to stderr (``--debug``)."""
    if not any(getattr(h, "_composesecrets", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("debug: %(message)s"))
        handler._composesecrets = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False


def _log_response(response: Any, *args: Any, **kwargs: Any) -> None:
    request = response.request
    elapsed = response.elapsed.total_seconds() * 1000 if response.elapsed else 0.0
    outcome = f"{response.status_code} {response.reason or ''}".strip()
    log.debug("%s -> %s (%.0f ms)", describe_request(request.method, request.url), outcome, elapsed)


def _log_calls(client: Any) -> None:
    """Hook the SDK's HTTP session (the low-level APIClient is a requests.Session)."""
    hooks = getattr(getattr(client, "api", None), "hooks", None)
    if isinstance(hooks, dict):
        hooks.setdefault("response", []).append(_log_response)


class LazyClient:
    """A backend's Docker SDK client: the one it was given, else one made from the
    environment on first use (and pinged, so that an unreachable engine fails at once).
    Made clients are shared by every backend of the process that finds the same environment
    (one connection pool, one ping: a deploy asks both backends about the stack first)."""

    _shared: ClassVar[dict[tuple[str, ...], Any]] = {}
    _shared_lock = threading.Lock()

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            key = tuple(os.environ.get(k, "") for k in _CLIENT_ENV)
            with self._shared_lock:
                found = self._shared.get(key)
                if found is None:
                    found = self._shared[key] = _connect()
            self._client = found
        return self._client


# what docker.from_env() reads: a client made for one of these is not shared with another
_CLIENT_ENV = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION")


def _connect() -> Any:
    debug = debug_enabled()
    if debug:
        enable_debug()
        log.debug("connecting to the Docker Engine at %s", engine_address())
    started = time.monotonic()
    with translated("connecting to the Docker Engine"):
        try:
            client = docker().from_env(timeout=120, max_pool_size=STOP_WORKERS)
            if debug:
                _log_calls(client)
            client.ping()
        except Exception as exc:
            if debug:
                took = (time.monotonic() - started) * 1000
                log.debug("connecting failed after %.0f ms: %s", took, type(exc).__name__)
            raise
    return client


def is_running(attrs: Mapping[str, Any]) -> bool:
    """Running, by a list entry (``State`` is a word) or an inspect (``State`` a mapping)."""
    state = attrs.get("State")
    return state == "running" or (isinstance(state, Mapping) and bool(state.get("Running")))


def list_containers(client: Any, filters: dict[str, str] | None) -> list[Any]:
    """Containers from ONE list call (the SDK's default inspects each one: a call per
    container), given the inspect-shaped ``Name`` and ``Config`` that the backend reads."""
    found: list[Any] = client.containers.list(all=True, sparse=True, filters=filters or {})
    for container in found:
        attrs = container.attrs
        if "Config" not in attrs:
            attrs["Config"] = {"Labels": attrs.get("Labels") or {}, "Image": attrs.get("Image")}
            attrs["Name"] = "/" + (attrs.get("Names") or ["/"])[0].lstrip("/")
    return found
