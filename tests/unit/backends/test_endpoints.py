"""The deploy's endpoint guard: changes run together, a rename runs alone and goes before
changes that have not begun."""

from __future__ import annotations

import threading

from composesecrets.backends.engine.endpoints import EndpointGuard

WAIT = 5.0  # seconds: only reached when the guard is broken


def test_a_rename_waits_for_the_changes_under_way() -> None:
    guard = EndpointGuard()
    order: list[str] = []
    renamed = threading.Event()

    def rename() -> None:
        with guard.renaming():
            order.append("rename")
        renamed.set()

    with guard.changing(), guard.changing():  # two at once: changes share the guard
        thread = threading.Thread(target=rename)
        thread.start()
        assert not renamed.wait(0.1)
        order.append("changes end")
    thread.join(WAIT)
    assert order == ["changes end", "rename"]


def test_a_change_that_begins_while_a_rename_waits_goes_after_it() -> None:
    guard = EndpointGuard()
    order: list[str] = []
    waiting = threading.Event()
    first = guard.changing()
    first.__enter__()

    def rename() -> None:
        waiting.set()
        with guard.renaming():
            order.append("rename")

    def change() -> None:
        with guard.changing():
            order.append("change")

    renamer = threading.Thread(target=rename)
    renamer.start()
    waiting.wait(WAIT)
    while not guard._waiting:  # the rename is queued behind the first change
        threading.Event().wait(0.01)
    changer = threading.Thread(target=change)
    changer.start()
    changer.join(0.1)
    assert order == []  # neither the rename nor the new change has run
    first.__exit__(None, None, None)
    renamer.join(WAIT)
    changer.join(WAIT)
    assert order == ["rename", "change"]
