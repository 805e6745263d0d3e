"""The CLI's progress callback: live frames on a terminal, plain lines otherwise (issue 14)."""

from __future__ import annotations

import io
import threading

import pytest
from rich.console import Console

from composesecrets.cli.progress import Progress


def shown(progress: Progress) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(progress.frame())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def rows(progress: Progress) -> dict[str, str]:
    return {line.split()[1]: line for line in shown(progress).splitlines() if line.strip()}


def test_last_frame_is_the_summary_with_marks_and_times(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(False, terminal=True)
    progress("shop_default", "creating network")
    progress("shop_web_1", "replacing")
    progress("shop_web_1", "waiting up to 10s for shop_web_1 to stop (stop_grace_period)")
    live = rows(progress)
    assert "network created" in live["shop_default"] and "✓" in live["shop_default"]
    assert "waiting up to 10s for shop_web_1" in live["shop_web_1"]
    assert "✓" not in live["shop_web_1"]
    progress.close()
    final = rows(progress)
    assert "replaced" in final["shop_web_1"] and "✓" in final["shop_web_1"]
    assert "replacing" not in shown(progress)
    assert "waiting" not in shown(progress)
    assert all(line.rstrip().endswith("s") for line in final.values())  # a time per object
    assert "replaced" in capsys.readouterr().err  # the final frame went to stderr


def test_an_object_is_done_when_its_thread_moves_on() -> None:
    progress = Progress(False, terminal=False)
    both = threading.Barrier(2)  # both threads alive throughout (idents are not reused)

    def worker(service: str) -> None:
        progress(f"{service}_1", "creating")
        both.wait()
        progress(f"{service}_2", "creating")
        both.wait()

    threads = [threading.Thread(target=worker, args=(s,)) for s in ("web", "db")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = {name: item.finished is not None for name, item in progress.items.items()}
    assert state == {"web_1": True, "web_2": False, "db_1": True, "db_2": False}
    progress("db_2", "done")
    assert progress.items["db_2"].finished is not None


def test_a_failure_marks_open_objects_stopped() -> None:
    progress = Progress(False, terminal=False)
    progress("shop_web_1", "creating")
    progress.close(ok=False)
    line = rows(progress)["shop_web_1"]
    assert "✗" in line and "creating: stopped" in line


def test_plain_lines_without_a_terminal_and_nothing_when_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = Progress(False, terminal=False)
    progress("shop_web_1", "creating")
    progress("shop_web_1", "waiting up to 10s for shop_web_1 to stop")
    progress.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "creating shop_web_1",
        "waiting up to 10s for shop_web_1 to stop",
    ]
    quiet = Progress(True, terminal=True)
    quiet("shop_web_1", "creating")
    quiet.close()
    assert capsys.readouterr() == ("", "")


def test_no_colour_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    progress = Progress(False, terminal=True)
    assert progress.live is None  # nothing on screen before the first event (e.g. a prompt)
    progress("shop_web_1", "creating")
    try:
        assert progress.live is not None and progress.live.console.no_color
    finally:
        progress.close()
    monkeypatch.delenv("NO_COLOR")
    coloured = Progress(False, terminal=True)
    coloured("shop_web_1", "creating")
    try:
        assert not coloured.live.console.no_color
    finally:
        coloured.close()


def test_a_wait_reported_from_another_thread_finishes_nothing() -> None:
    progress = Progress(False, terminal=False)
    progress("shop_web_1", "removing")
    waiter = threading.Thread(
        target=progress, args=("shop_web_1", "waiting up to 10s for shop_web_1 to stop")
    )
    waiter.start()
    waiter.join()
    progress("shop_db_1", "waiting up to 5s for shop_db_1 to stop")
    assert progress.items["shop_web_1"].finished is None
    assert progress.items["shop_web_1"].detail.startswith("waiting up to 10s")
    progress.close()
    summary = rows(progress)
    assert "removed" in summary["shop_web_1"]
    assert "stopped" in summary["shop_db_1"]
