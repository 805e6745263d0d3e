"""Keep the rename of a running container apart from the deploy's other endpoint changes.

A replacement runs as ``<name>-next`` next to the old container and takes its name once the
old one is gone, so it is renamed while it runs. Docker (20.10 and later; libnetwork's
``endpoint.rename``) then rewrites the endpoint count of each of its networks from a copy
it read when the rename began, a "dummy update" that retries on a conflict by writing the
old number again. A container that joins or leaves the same network meanwhile (another
replacement's start, an old container's stop or removal) is lost from the count. The
network then answers "has active endpoints" while it shows no container, and only a daemon
restart clears it. Measured here: 30 replacements with parallel renames left such a network
every time; the same with each rename alone, none.

So the deploy's own starts, stops and removals of containers run under
:meth:`EndpointGuard.changing` (any number at once, as before) and each rename of a running
container under :meth:`EndpointGuard.renaming` (alone). A stop counts until dockerd has let
go of the container's endpoints: it answers the stop once the state says stopped and
releases the network after that, under the container's lock, so the stop is followed by an
inspect (which waits for that lock) in the same section (read in Docker's source; the
fake engine in the unit tests behaves so). A waiting rename goes before changes
that have not begun yet, so it waits for at most the changes already under way. The price:
those include stops, each up to its grace period, and the starts queued behind the rename
wait with it. Guarded sections are single engine calls and never nest (a nested ``changing``
behind a waiting rename would wait forever).

It cannot cover changes made outside this run: a container of another program restarting on
the same network during the few milliseconds of a rename.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["EndpointGuard"]


class EndpointGuard:
    """A shared/exclusive lock: changes of endpoints shared, renames exclusive."""

    def __init__(self) -> None:
        self._state = threading.Condition()
        self._changing = 0  # changes under way
        self._renaming = False
        self._waiting = 0  # renames waiting for the changes under way to end

    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """A start, stop or removal of a container on the stack's networks."""
        with self._state:
            self._state.wait_for(lambda: not self._renaming and not self._waiting)
            self._changing += 1
        try:
            yield
        finally:
            with self._state:
                self._changing -= 1
                self._state.notify_all()

    @contextlib.contextmanager
    def renaming(self) -> Iterator[None]:
        """The rename of a running container: while no endpoint changes."""
        with self._state:
            self._waiting += 1
            self._state.wait_for(lambda: not self._renaming and not self._changing)
            self._waiting -= 1
            self._renaming = True
        try:
            yield
        finally:
            with self._state:
                self._renaming = False
                self._state.notify_all()
