"""Progress of a deploy or removal: live lines on a terminal, plain lines otherwise.

The library reports progress through a callback ``progress(subject, what)`` (subject: a
container, network, volume or secret; what: ``creating``, ``replacing``, ``removing``,
``waiting up to 10s for app_1 to stop (...)``, ...). On a terminal each object gets one line
with a spinner while work goes on and, once done, a mark and the time it took; the last frame
shows every object done (``replaced``, not a stale ``replacing``). An object is done when the
thread that reported it moves on to another object, when ``what`` is ``done``, or at the end.

Everything goes to standard error, so that machine output on standard output (``-q``,
``--format json``) never mixes with it. Colour only on a terminal, never with ``NO_COLOR``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import typer

_PAST = {
    "creating": "created",
    "replacing": "replaced",
    "starting": "started",
    "stopping": "stopped",
    "removing": "removed",
    "removing (undo)": "removed (undo)",
    "removing leftover": "leftover removed",
    "creating network": "network created",
    "removing network": "network removed",
    "creating volume": "volume created",
    "importing secret": "secret imported",
    "new secret version": "new secret version stored",
    "removing secret": "secret removed",
}


@dataclass
class _Item:
    action: str
    started: float
    detail: str = ""  # e.g. a grace period being waited for
    finished: float | None = None
    failed: bool = False
    spinner: Any = None  # rich Spinner, kept so that it turns from frame to frame

    def done_text(self) -> str:
        return _PAST.get(self.action, f"{self.action}: done")


class Progress:
    """The ``progress(subject, what)`` callback of the CLI; call :meth:`close` at the end."""

    def __init__(self, quiet: bool, *, terminal: bool | None = None) -> None:
        self.quiet = quiet
        self.lock = threading.RLock()
        self.items: dict[str, _Item] = {}
        self.current: dict[int, str] = {}  # thread -> subject it last reported
        self.live: Any = None
        if terminal is None:
            terminal = sys.stderr.isatty()
        self.terminal = not quiet and terminal
        self.closed = False

    def _start(self) -> None:
        """The live display, from the first event on (a passphrase prompt before it stays
        readable)."""
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")))
        self.live = Live(
            console=console, refresh_per_second=8, transient=False, get_renderable=self.frame
        )
        self.live.start()

    def __call__(self, subject: str, what: str) -> None:
        if self.quiet:
            return
        if self.terminal and self.live is None and not self.closed:
            with self.lock:
                if self.live is None:
                    self._start()
        now = time.monotonic()
        waiting = what.startswith("waiting")
        with self.lock:
            if not waiting:  # a wait may be reported from another thread: not a move on
                thread = threading.get_ident()
                previous = self.current.get(thread)
                if previous is not None and previous != subject:
                    self._finish(previous, now)
                self.current[thread] = subject
            item = self.items.get(subject)
            if what == "done":
                if item is not None:
                    self._finish(subject, now)
                return
            if item is None or item.finished is not None:
                if waiting:
                    item = self.items[subject] = _Item("stopping", now, detail=what)
                else:
                    item = self.items[subject] = _Item(what, now)
            elif waiting:
                item.detail = what
            else:
                item.action, item.detail = what, ""
            if not self.terminal:
                typer.echo(what if waiting else f"{what} {subject}", err=True)

    def _finish(self, subject: str, now: float, *, failed: bool = False) -> None:
        item = self.items.get(subject)
        if item is not None and item.finished is None:
            item.finished, item.detail, item.failed = now, "", failed

    def close(self, *, ok: bool = True) -> None:
        """Mark what is still open as done (or failed) and leave the summary frame."""
        now = time.monotonic()
        with self.lock:
            self.closed = True
            for subject in self.items:
                self._finish(subject, now, failed=not ok)
        if self.live is not None:
            self.live.stop()
            self.live = None

    def frame(self) -> Any:
        """The rich renderable of the current state (one row per object)."""
        from rich.spinner import Spinner
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=1)
        grid.add_column()
        grid.add_column()
        grid.add_column(justify="right")
        now = time.monotonic()
        with self.lock:
            items = list(self.items.items())
        for subject, item in items:
            if item.finished is None:
                text = Text(item.detail or item.action, style="yellow" if item.detail else "")
                item.spinner = item.spinner or Spinner("dots")
                grid.add_row(item.spinner, subject, text, f"{now - item.started:.1f}s")
            elif item.failed:
                took = f"{item.finished - item.started:.1f}s"
                grid.add_row(Text("✗", style="red"), subject, Text(f"{item.action}: stopped"), took)
            else:
                took = f"{item.finished - item.started:.1f}s"
                grid.add_row(Text("✓", style="green"), subject, item.done_text(), took)
        return grid
