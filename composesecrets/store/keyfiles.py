"""A key file's life across rotations: never lose the key that opens the committed slot.

* A rotation holds an exclusive ``flock`` on the key file's directory from writing the new key
  until it is in place and checked, so two rotations never interleave.
* The new key goes to a pending file of its own (``.<key>.<random>.pending``, 0600, fsynced)
  before the database commit; after the commit it is renamed over the key file.
* After the commit, the key it replaces is first kept as ``<key>.gen<N>-<hash>`` (a hard link;
  N is the generation it unlocked), so another store sharing the file and every backup of this
  store still open.
* Opening a store whose key file does not unlock the slot looks at the pending files (a rotation
  that committed and died before the rename: the file is moved into place) and the kept
  generations (a restored backup: used as is).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import StoreLockedError
from . import paths


def _open_lock(key_file: Path) -> int:
    """The lock is a ``flock`` on the key directory itself (no lock file left behind)."""
    parent = key_file.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.check_key_dir(parent)
    return os.open(parent, os.O_RDONLY | os.O_DIRECTORY)


@contextlib.contextmanager
def locked(key_file: Path) -> Iterator[None]:
    """Hold the key file's rotation lock (waits for another rotation to finish)."""
    fd = _open_lock(key_file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_locked(key_file: Path) -> Iterator[bool]:
    """Hold the lock if nobody else does (True), else yield False at once."""
    try:
        fd = _open_lock(key_file)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def write_pending(key_file: Path, text: str) -> Path:
    """Write a new key to this run's own pending file, durably, and return its path."""
    import tempfile  # only a key rotation writes one (start-up)

    fd, name = tempfile.mkstemp(dir=key_file.parent, prefix=f".{key_file.name}.", suffix=".pending")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (text + "\n").encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    paths.fsync_dir(key_file.parent)
    return Path(name)


def pending_files(key_file: Path) -> list[Path]:
    """Pending files of rotations of ``key_file`` (and the ``<key>.new`` of older versions)."""
    found = sorted(key_file.parent.glob(f".{glob_escape(key_file.name)}.*.pending"))
    legacy = key_file.with_name(key_file.name + ".new")
    return [*found, legacy] if legacy.exists() else found


def kept_files(key_file: Path) -> list[Path]:
    """Kept generations of ``key_file``, newest first."""
    pattern = re.compile(re.escape(key_file.name) + r"\.gen(\d+)-[0-9a-f]+$")
    found = []
    for path in key_file.parent.glob(f"{glob_escape(key_file.name)}.gen*"):
        match = pattern.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def keep(key_file: Path, generation: int) -> Path | None:
    """Keep the current key file as ``<key>.gen<generation>-<hash>`` (a hard link, made before
    the file is replaced); an existing kept file is never overwritten."""
    try:
        content = key_file.read_bytes()
    except FileNotFoundError:
        return None
    tag = hashlib.sha256(content).hexdigest()[:12]
    kept = key_file.with_name(f"{key_file.name}.gen{generation}-{tag}")
    with contextlib.suppress(FileExistsError):
        os.link(key_file, kept)
    paths.fsync_dir(key_file.parent)
    return kept


def install(pending: Path, key_file: Path, old_generation: int) -> Path | None:
    """Keep the current key file (see :func:`keep`), then move ``pending`` over it."""
    kept = keep(key_file, old_generation)
    os.replace(pending, key_file)
    paths.fsync_dir(key_file.parent)
    return kept


def discard(pending: Path | None) -> None:
    if pending is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pending)


def find_key(
    key_file: Path,
    opens: Callable[[bytes], bool],
    read: Callable[[Path], bytes],
    old_generation: int,
) -> tuple[Path, bytes] | None:
    """Find the key that opens the slot when ``key_file`` does not: a pending file (moved into
    place unless a rotation is running right now) or a kept generation (used as it is)."""
    for path in pending_files(key_file):
        try:
            key = read(path)
        except StoreLockedError:
            continue
        if not opens(key):
            continue
        with try_locked(key_file) as mine:
            if mine and path.exists():
                install(path, key_file, old_generation)
        return key_file, key
    for path in kept_files(key_file):
        try:
            key = read(path)
        except StoreLockedError:
            continue
        if opens(key):
            return path, key
    return None


def drop_stale_pending(
    key_file: Path,
    opens: Callable[[bytes], bool],
    read: Callable[[Path], bytes],
    old_generation: int,
) -> None:
    """Under the lock: remove pending files of rotations that died before they committed."""
    for path in pending_files(key_file):
        try:
            key = read(path)
        except StoreLockedError:
            key = b""
        if key and opens(key):
            install(path, key_file, old_generation)  # committed but not moved: finish it
        else:
            discard(path)
