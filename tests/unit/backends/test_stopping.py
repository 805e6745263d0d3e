"""Stops that wait out their grace period say so, and why (backends/stopping.py)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from unit.backends.fake_docker import FakeDocker

from composesecrets.backends import stopping

CONTAINER = "c0ffee" * 10 + "abcd"


def proc_entry(
    proc: Path,
    pid: int,
    *,
    nspid: str = "4242 1",
    caught: int = 0,
    ignored: int = 0,
    container: str = CONTAINER,
) -> Path:
    entry = proc / str(pid)
    entry.mkdir(parents=True)
    (entry / "cgroup").write_text(f"9:pids:/docker/{container}\n")
    (entry / "status").write_text(
        f"Name:\tsleep\nNSpid:\t{nspid}\nSigIgn:\t{ignored:016x}\nSigCgt:\t{caught:016x}\n"
    )
    return proc


TERM = 1 << (signal.SIGTERM - 1)


@pytest.mark.parametrize(
    ("entry", "stop_signal", "expected"),
    [
        ({}, "SIGTERM", True),  # PID 1 of its namespace, no handler: the kernel drops it
        ({"caught": TERM}, "SIGTERM", False),  # handles it (tini, a real server)
        ({"caught": TERM}, "SIGINT", True),  # handles TERM, but the stop signal is INT
        ({"nspid": "4242"}, "SIGTERM", False),  # not a namespace init (pid: host)
        ({"nspid": "4242", "ignored": TERM}, "15", True),  # SIG_IGN, wherever it runs
        ({"container": "another" * 9}, "SIGTERM", False),  # not that container's process
        ({}, "SIGKILL", False),
        ({}, "TERM", True),
        ({}, "SIGNOPE", False),
    ],
)
def test_ignores_signal(
    tmp_path: Path, entry: dict[str, object], stop_signal: str, expected: bool
) -> None:
    proc = proc_entry(tmp_path, 4242, **entry)  # type: ignore[arg-type]
    assert stopping.ignores_signal(4242, CONTAINER, stop_signal, proc) is expected


def test_no_proc_entry_means_unsure(tmp_path: Path) -> None:
    assert stopping.ignores_signal(4242, CONTAINER, "SIGTERM", tmp_path) is False


def running(fake: FakeDocker, image: str = "busybox:test") -> str:
    container = fake.containers.create(image, name="shop_web_1", labels={})
    container.start()
    return str(container.id)


def test_a_stop_that_waits_says_so_and_why(
    fake: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stopping, "NOTICE_AFTER", 0.01)
    fake.slow_stops["busybox:test"] = 0.3
    container_id = running(fake)
    fake.containers_by_id[container_id].pid = 4242
    monkeypatch.setattr(stopping, "PROC", proc_entry(tmp_path, 4242, container=container_id))
    said: list[tuple[str, str]] = []
    stopping.stop_container(fake.api, container_id, "shop_web_1", 3, lambda *a: said.append(a))
    assert said == [
        (
            "shop_web_1",
            "waiting up to 3s for shop_web_1 to stop (stop_grace_period; the process ignores"
            " SIGTERM)",
        )
    ]
    assert fake.containers_by_id[container_id].status == "exited"


def test_a_quick_stop_says_nothing(fake: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stopping, "NOTICE_AFTER", 0.2)
    container_id = running(fake)
    said: list[tuple[str, str]] = []
    stopping.stop_container(fake.api, container_id, "shop_web_1", None, lambda *a: said.append(a))
    threading.Event().wait(0.3)  # the notice would have come by now
    assert said == []
    assert fake.stop_timeouts["shop_web_1"] == 10  # None: the container's own timeout


def test_without_a_reason_the_notice_still_comes(
    fake: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stopping, "NOTICE_AFTER", 0.01)
    fake.slow_stops["busybox:test"] = 0.3
    container_id = running(fake)  # pid 0: nothing to read in /proc
    said: list[tuple[str, str]] = []
    stopping.stop_container(fake.api, container_id, "shop_web_1", None, lambda *a: said.append(a))
    assert said == [("shop_web_1", "waiting up to 10s for shop_web_1 to stop (stop_grace_period)")]


def test_quiet_progress_is_not_asked(fake: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-q`: no notice thread, no inspect call."""
    monkeypatch.setattr(stopping, "NOTICE_AFTER", 0.01)
    fake.slow_stops["busybox:test"] = 0.2
    container_id = running(fake)

    class Quiet:
        quiet = True

        def __init__(self) -> None:
            self.said: list[tuple[str, str]] = []

        def __call__(self, subject: str, what: str) -> None:
            self.said.append((subject, what))

    progress = Quiet()
    inspected: list[str] = []
    monkeypatch.setattr(fake.api, "inspect_container", inspected.append)
    stopping.stop_container(fake.api, container_id, "shop_web_1", 3, progress)
    assert progress.said == [] and inspected == []
