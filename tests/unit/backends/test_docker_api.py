"""docker_api: the no-daemon error users see, and the --debug log of Docker API calls."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from unit.cli_helpers import run_main

from composesecrets.backends import docker_api
from composesecrets.errors import BackendError


def test_no_daemon_names_the_socket_and_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    with pytest.raises(BackendError) as caught:
        docker_api.LazyClient().client  # noqa: B018 (connecting is the point)
    error = caught.value
    assert error.message == (
        "cannot reach the Docker Engine at unix:///nonexistent.sock: no such socket"
    )
    assert error.hint is not None
    assert "systemctl start docker" in error.hint and "dockerd" in error.hint
    assert "make engine" not in error.hint
    assert "Connection aborted" not in error.message


def test_no_daemon_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    result = run_main(["stack", "ls"])
    assert result.code == 8
    assert "cannot reach the Docker Engine at unix:///nonexistent.sock: no such socket" in (
        result.stderr
    )
    assert "FileNotFoundError" not in result.stderr


def test_the_request_line_shows_path_and_query_only() -> None:
    line = docker_api.describe_request(
        "GET",
        "http+docker://localhost/v1.41/secrets?filters=%7B%22label%22%3A+%5B%22a%3Db%22%5D%7D",
    )
    assert line == 'GET /v1.41/secrets?filters={"label": ["a=b"]}'


def test_a_response_is_logged_without_its_body(caplog: pytest.LogCaptureFixture) -> None:
    request = SimpleNamespace(method="POST", url="http://x/v1.41/secrets/create", body=b"CANARY")
    response = SimpleNamespace(
        request=request, status_code=201, reason="Created", elapsed=timedelta(milliseconds=5),
        content=b"CANARY-reply",
    )  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger="composesecrets.docker"):
        docker_api._log_response(response)
    (record,) = caplog.records
    assert record.getMessage() == "POST /v1.41/secrets/create -> 201 Created (5 ms)"
    assert "CANARY" not in caplog.text


def test_debug_is_switched_on_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_api.log, "level", logging.NOTSET)
    assert not docker_api.debug_enabled({})
    assert docker_api.debug_enabled({"COMPOSESECRETS_DEBUG": "1"})
    assert not docker_api.debug_enabled({"COMPOSESECRETS_DEBUG": "0"})
