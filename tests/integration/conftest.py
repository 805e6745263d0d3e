"""Fixtures for tests that need a real Docker Engine (started by `make engine`).

Without a reachable engine the tests are skipped with one line, unless the environment
sets COMPOSESECRETS_REQUIRE_ENGINE=1 (CI does): then they fail, because a CI run that
silently skipped them would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

# helpers.py asserts too: give its failures pytest's detailed messages
pytest.register_assert_rewrite("helpers")

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
BUILD_IMAGES = REPO_ROOT / "scripts" / "build-test-images.sh"
HINT = "start it with `make engine`"


def engine_required() -> bool:
    return os.environ.get("COMPOSESECRETS_REQUIRE_ENGINE") == "1"


def unavailable(problem: str) -> NoReturn:
    """Skip (developer machine) or fail (CI) because the test bed is not usable."""
    if engine_required():
        pytest.fail(
            f"{problem}; COMPOSESECRETS_REQUIRE_ENGINE=1 so this is an error ({HINT})",
            pytrace=False,
        )
    pytest.skip(f"{problem}; {HINT} — integration tests skipped")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else type(exc).__name__
    return detail if len(detail) <= 160 else detail[:157] + "..."


def engine_problem() -> str | None:
    """None when the engine answers a ping, else a one-line description of the problem."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # ImportError, DockerException, transport errors...
        return f"Docker Engine not reachable ({_first_line(exc)})"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item of the session: mark only ours.
    ours = [item for item in items if HERE in item.path.parents]
    for item in ours:
        item.add_marker(pytest.mark.integration)
    # Probe once, so that a missing engine gives one folded skip line (pytest -ra) rather
    # than one per test. Under COMPOSESECRETS_REQUIRE_ENGINE=1 the fixtures fail instead.
    if ours and not engine_required():
        problem = engine_problem()
        if problem is not None:
            skip = pytest.mark.skip(reason=f"{problem}; {HINT} — integration tests skipped")
            for item in ours:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session (its module fixtures too, and every command a test runs) gets its own
    HOME: what a store writes beside its default key (unlock pins, high-water marks) never
    lands in the real home, as in the unit tests."""
    home: Path = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.delenv("XDG_CONFIG_HOME", raising=False)
        patch.delenv("XDG_DATA_HOME", raising=False)
        yield


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker SDK client whose engine answered a ping (skip/fail otherwise)."""
    problem = None
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # ImportError, DockerException, transport errors...
        problem = f"Docker Engine not reachable ({_first_line(exc)})"
    if problem is not None:
        unavailable(problem)  # outside `except`: no chained traceback in the report
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def swarm(docker_client: Any) -> dict[str, Any]:
    """The engine's swarm info; the node must be an active swarm manager."""
    info = docker_client.info().get("Swarm") or {}
    state = info.get("LocalNodeState")
    if state != "active" or not info.get("ControlAvailable"):
        unavailable(
            f"Docker Engine is not an active swarm manager (LocalNodeState={state!r}, "
            f"ControlAvailable={info.get('ControlAvailable')!r})"
        )
    return dict(info)


@pytest.fixture(scope="session")
def test_image(docker_client: Any) -> str:
    """Tag of the local busybox test image, built by scripts/build-test-images.sh if missing.

    The script is cheap when the image exists; it also keeps the alias tag
    composesecrets-test/busybox:latest pointing at the current recipe.
    """
    proc = subprocess.run(
        [str(BUILD_IMAGES)], capture_output=True, text=True, check=False, timeout=300
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        unavailable(f"test image could not be built (exit {proc.returncode}: {tail})")
    return lines[-1]
