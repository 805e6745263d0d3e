"""The high-water mark: the highest state counter a store has committed, kept OUTSIDE the database.

It lives beside the key (``<key-dir>/store-<hash of the store directory>.hwm``, mode 0600), so
that restoring an older copy of ``store.db``, emptying it, or losing committed WAL frames is
noticed: the database's authenticated counter is then below the mark. Only a deliberate
``composesecrets store accept-restore`` lowers it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import IntegrityError
from . import paths
from .keys import KeyFileUnlock, Unlock


@dataclass(frozen=True)
class Mark:
    """What the high-water file says: which store was last seen there, at which counter."""

    store_id: str
    counter: int


def state_dir(unlock: Unlock, environ: Mapping[str, str]) -> Path:
    """The key's directory: that of an explicit key file, else of the default key file.

    Chosen from what the user configured (never from the database), so an attacker who can
    only write the store cannot move it.
    """
    if isinstance(unlock, KeyFileUnlock) and unlock.path is not None:
        return Path(unlock.path).expanduser().absolute().parent
    return paths.default_key_file(environ).expanduser().absolute().parent


class HighWater:
    """The high-water file of one store directory."""

    def __init__(self, directory: Path, store_dir: Path) -> None:
        digest = hashlib.sha256(str(store_dir).encode("utf-8", "surrogatepass")).hexdigest()
        self.path = directory / f"store-{digest[:32]}.hwm"
        self._store_dir = store_dir

    def read(self) -> Mark | None:
        """The mark, or None when this store directory has never been sealed from here."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IntegrityError(
                f"cannot read the store's high-water mark {self.path}: {exc.strerror}",
                hint="check the permissions of the key directory",
            ) from None
        try:
            data = json.loads(text)
            return Mark(str(data["store_id"]), int(data["counter"]))
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(
                f"the store's high-water mark {self.path} is damaged",
                hint="if the store itself is fine, run `composesecrets store accept-restore`"
                " to record its current state",
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The key directory itself is the lock (no lock file left behind per store).
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, mark: Mark) -> None:
        body = {"store": str(self._store_dir), "store_id": mark.store_id, "counter": mark.counter}
        paths.write_private_file(self.path, (json.dumps(body) + "\n").encode(), replace=True)

    def raise_to(self, store_id: str, counter: int) -> None:
        """Record ``counter`` if it is higher than the mark (after a commit; never lowers it)."""
        with self._locked():
            current = self.read()
            if current is not None and current.store_id == store_id:
                if current.counter >= counter:
                    return
            elif current is not None:
                return  # another store was seen here: only accept-restore replaces the mark
            self._write(Mark(store_id, counter))

    def reset(self, store_id: str, counter: int) -> None:
        """Set the mark to the store as it is now (``store accept-restore``)."""
        with self._locked():
            self._write(Mark(store_id, counter))
