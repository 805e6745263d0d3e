"""Secret files on memory-backed storage, one directory per container.

The engine backend bind-mounts each file read-only at its target. A file is written with
the reference's uid, gid and mode (``fchown``/``fchmod`` on the open descriptor, so umask
does not apply and nothing is ever world-readable in between) inside a 0700 directory on a
tmpfs: ``/run/composesecrets`` when running as root (mounted by us if it is not a tmpfs
yet), else ``$XDG_RUNTIME_DIR/composesecrets``, else ``/dev/shm/composesecrets-<uid>``.
Nothing here ever writes a value anywhere else.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from composesecrets.docker_rules import LABEL_DIR, LABEL_STACK
from composesecrets.errors import BackendError
from composesecrets.model import SecretFile

ROOT_DIR = Path("/run/composesecrets")
MEMORY_FILESYSTEMS = frozenset(("tmpfs", "ramfs"))
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _mount_fstype(path: Path) -> str | None:
    """The filesystem type of the mount that holds ``path`` (from /proc/self/mountinfo)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    best, fstype = "", None
    target = str(path.resolve())
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, right.split()[0]
    return fstype


def is_memory_backed(path: Path) -> bool:
    return _mount_fstype(path) in MEMORY_FILESYSTEMS


def runtime_root() -> Path:
    """Where secret files go; created 0700 and checked to be memory-backed."""
    if os.geteuid() == 0:
        root = ROOT_DIR
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.path.ismount(root) or not is_memory_backed(root):
            _mount_tmpfs(root)
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime and is_memory_backed(Path(runtime)):
            root = Path(runtime) / "composesecrets"
        else:
            root = Path("/dev/shm") / f"composesecrets-{os.getuid()}"
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    if not is_memory_backed(root):
        raise BackendError(
            f"{root} is not on memory-backed storage (tmpfs); refusing to write secrets there",
            hint="run as root (composesecrets mounts a tmpfs at /run/composesecrets) or set "
            "XDG_RUNTIME_DIR to a tmpfs directory",
        )
    return root


def _mount_tmpfs(root: Path) -> None:
    result = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "mode=0700,nodev,nosuid,noexec,size=64m",
            "composesecrets",
            str(root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 and not is_memory_backed(root):
        raise BackendError(
            f"cannot mount a tmpfs at {root}: {result.stderr.strip() or result.returncode}",
        )


def file_name(index: int, source: str) -> str:
    return f"{index:02d}-{_SAFE.sub('_', source)[:60]}"


def write_file(path: Path, item: SecretFile) -> None:
    """Create ``path`` (never an existing one) holding the value, with uid/gid/mode set on
    the descriptor before anyone else can open it (created 0600, owner root)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(item.value)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fchown(fd, item.uid, item.gid)
        os.fchmod(fd, item.mode)
    finally:
        os.close(fd)


def write_container_files(directory: Path, files: Iterable[SecretFile]) -> dict[str, Path]:
    """(Re)write a container's secret directory; returns target -> host file path."""
    if directory.exists():
        remove_directory(directory)
    directory.parent.mkdir(mode=0o700, exist_ok=True)  # the stack's directory (shared)
    os.chmod(directory.parent, 0o700)
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    placed: dict[str, Path] = {}
    try:
        for index, item in enumerate(files):
            path = directory / file_name(index, item.source)
            write_file(path, item)
            placed[item.target] = path
    except OSError as exc:
        remove_directory(directory)
        raise BackendError(f"cannot write secret files in {directory}: {exc.strerror}") from None
    return placed


def remove_directory(directory: Path) -> None:
    """Remove a container's secret directory (idempotent)."""
    shutil.rmtree(directory, ignore_errors=True)


def stack_directory(root: Path, stack: str) -> Path:
    return root / stack


def container_directory(root: Path | None, labels: Mapping[str, str]) -> Path | None:
    """A container's secret directory, from the labels its deploy gave it; None without a
    tmpfs root or a directory label (copy delivery, or a container without files)."""
    token = labels.get(LABEL_DIR)
    if root is None or not token:
        return None
    return stack_directory(root, labels.get(LABEL_STACK, "")) / token


def secret_archive(files: Iterable[SecretFile]) -> bytes:
    """``--secret-delivery copy``: the same files as a tar made in memory (owners and modes
    set), for ``put_archive`` into a container that has not started yet."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for item in files:
            info = tarfile.TarInfo(item.target.lstrip("/"))
            info.size = len(item.value)
            info.uid, info.gid, info.mode = item.uid, item.gid, item.mode
            tar.addfile(info, io.BytesIO(item.value))
    return buffer.getvalue()
