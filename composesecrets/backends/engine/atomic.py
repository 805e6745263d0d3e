"""In-place rotation: a container's secret directory whose content changes in one step.

A file bind mount pins the inode (a renamed-over file is not seen inside the container) and
writing into the same inode is not atomic for a reader. So a service labelled
``io.composesecrets.rotate: in-place`` gets, per container, one *directory* on the tmpfs,
bind-mounted read-only at :data:`~composesecrets.docker_rules.ROTATE_MOUNT`, laid out like
Kubernetes' atomic writer::

    <dir>/                       0711 root (traverse only: nothing can be listed)
        ..000002/                0711 root, one directory per published version
            00-site.key          the value, with the reference's uid/gid/mode
            01-site.crt
            ..versions.json      0600 root: the store versions this directory holds
        ..000001/                the previous one, kept PRUNE_AFTER seconds for readers
                                 that resolved ``..data`` just before the swap
        ..data -> ..000002       swapped with rename(2)

and each target inside the container is a symlink ``<target> -> ROTATE_MOUNT/..data/<file>``
(made in the container's filesystem before it starts, from a tar holding only symlinks: no
secret byte in the writable layer). A reader opens the old file or the new one, never a
partial, empty or mixed one; all files of a service change together.

:func:`publish` is also how the directory is made the first time and remade after a reboot
emptied the tmpfs: it needs only the files, the versions and the directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from composesecrets.backends.engine.tmpfs import file_name, write_file
from composesecrets.docker_rules import ROTATE_MOUNT
from composesecrets.errors import BackendError
from composesecrets.model import SecretFile

__all__ = ["DATA", "link_archive", "link_target", "live_versions", "prune", "publish"]

DATA = "..data"
MANIFEST = "..versions.json"
_VERSION_DIR = re.compile(r"\.\.(\d{6,})")
DIR_MODE = 0o711  # readers of any uid traverse; nobody but root lists
# A superseded version is removed (by the next publish or deploy) this many seconds after it
# stopped being live: a reader whose path walk passed ``..data`` just before the swap may
# still be looking up its file in it (on a loaded host that walk can be descheduled).
PRUNE_AFTER = 5.0


def _version_dirs(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in directory.iterdir():
        match = _VERSION_DIR.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def publish(directory: Path, files: Sequence[SecretFile], versions: Sequence[str]) -> Path:
    """Write ``files`` as a new version directory and point ``..data`` at it in one rename.

    Creates ``directory`` (and the stack's 0700 directory above it) when missing, then
    :func:`prune`s superseded versions. Returns the new version directory."""
    try:
        directory.parent.mkdir(mode=0o700, exist_ok=True)  # the stack's directory (shared)
        os.chmod(directory.parent, 0o700)
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(directory, DIR_MODE)
        existing = _version_dirs(directory)
        number = existing[-1][0] + 1 if existing else 1
        new = directory / f"..{number:06d}"
        new.mkdir(mode=DIR_MODE)
        os.chmod(new, DIR_MODE)
        for index, item in enumerate(files):
            write_file(new / file_name(index, item.source), item)
        manifest = json.dumps(list(versions)).encode()
        write_file(new / MANIFEST, SecretFile(MANIFEST, MANIFEST, 0, 0, 0o600, manifest))
        link = directory / f"{DATA}.tmp"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(new.name, link)
        os.rename(link, directory / DATA)  # the one atomic step
    except OSError as exc:
        raise BackendError(
            f"cannot write secret files in {directory}: {exc.strerror or exc}"
        ) from None
    prune(directory)
    return new


def prune(directory: Path, grace: float = PRUNE_AFTER) -> None:
    """Remove the versions that stopped being live more than ``grace`` seconds ago (when
    the next one was written), and any never made live (a publish that failed)."""
    try:
        live = os.readlink(directory / DATA)
        versions = _version_dirs(directory)
    except OSError:
        return
    numbers = [number for number, path in versions if path.name == live]
    if not numbers:
        return
    now = time.time()
    successors: list[Path | None] = [path for _, path in versions[1:]] + [None]
    for (number, path), successor in zip(versions, successors, strict=True):
        if number == numbers[0]:
            continue
        if number < numbers[0] and successor is not None:
            try:
                superseded = successor.stat().st_mtime
            except OSError:
                continue
            if now - superseded <= grace:
                continue
        shutil.rmtree(path, ignore_errors=True)


def live_versions(directory: Path) -> list[str] | None:
    """The store versions (``name@version``) the container sees now; None when the
    directory holds no published version (never made, or emptied by a reboot)."""
    try:
        raw = (directory / DATA / MANIFEST).read_bytes()
    except OSError:
        return None
    found = json.loads(raw)
    return [str(item) for item in found] if isinstance(found, list) else None


def link_target(index: int, item: SecretFile) -> str:
    """Where the target's symlink points inside the container."""
    return f"{ROTATE_MOUNT}/{DATA}/{file_name(index, item.source)}"


def link_archive(files: Iterable[SecretFile]) -> bytes:
    """A tar of one symlink per target (owned by the reference's uid/gid, so that
    ``fs.protected_symlinks`` lets its reader follow it even in a sticky directory), for
    ``put_archive("/", ...)`` into the created container. It holds no secret value."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for index, item in enumerate(files):
            info = tarfile.TarInfo(item.target.lstrip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = link_target(index, item)
            info.uid, info.gid, info.mode = item.uid, item.gid, 0o777
            tar.addfile(info)
    return buffer.getvalue()
