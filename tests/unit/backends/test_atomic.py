"""In-place rotation's directory layout (issue 11): a ``..data`` symlink swapped with
rename(2) over versioned directories; readers see complete old or new values only."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import threading
import time
from pathlib import Path

import pytest

from composesecrets.backends.engine import atomic
from composesecrets.docker_rules import ROTATE_MOUNT
from composesecrets.model import SecretFile

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to other uids needs root")


def files(tag: str) -> list[SecretFile]:
    return [
        SecretFile("site.key", "/run/secrets/site.key", 0, 0, 0o400, f"KEY-{tag}".encode()),
        SecretFile("site.crt", "/run/secrets/site.crt", 33, 44, 0o440, f"CRT-{tag}".encode()),
    ]


def test_publish_makes_the_layout_and_swaps_data(tmp_path: Path) -> None:
    directory = tmp_path / "stack" / "c1"
    first = atomic.publish(directory, files("1"), ["st_site.key@1", "st_site.crt@1"])
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.stat().st_mode) == 0o711
    assert stat.S_IMODE(first.stat().st_mode) == 0o711
    data = directory / atomic.DATA
    assert data.is_symlink() and os.readlink(data) == first.name  # relative: works in a mount
    assert (data / "00-site.key").read_bytes() == b"KEY-1"
    assert stat.S_IMODE((data / "00-site.key").stat().st_mode) == 0o400
    assert atomic.live_versions(directory) == ["st_site.key@1", "st_site.crt@1"]

    second = atomic.publish(directory, files("2"), ["st_site.key@2", "st_site.crt@2"])
    assert os.readlink(data) == second.name
    assert (data / "01-site.crt").read_bytes() == b"CRT-2"
    assert atomic.live_versions(directory) == ["st_site.key@2", "st_site.crt@2"]
    assert first.is_dir(), "the previous version stays for readers that resolved it"
    third = atomic.publish(directory, files("3"), ["st_site.key@3", "st_site.crt@3"])
    assert first.is_dir() and second.is_dir(), f"kept {atomic.PRUNE_AFTER} s after the swap"
    old = time.time() - atomic.PRUNE_AFTER - 1
    for path in (second, third):  # as if published long ago
        os.utime(path, (old, old))
    atomic.prune(directory)
    assert not first.exists() and not second.exists() and third.is_dir()
    assert sorted(p.name for p in directory.iterdir()) == sorted([atomic.DATA, third.name])


@needs_root
def test_published_files_have_the_references_owner_and_mode(tmp_path: Path) -> None:
    directory = tmp_path / "stack" / "c1"
    atomic.publish(directory, files("1"), [])
    info = (directory / atomic.DATA / "01-site.crt").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (33, 44, 0o440)
    manifest = (directory / atomic.DATA / atomic.MANIFEST).stat()
    assert (manifest.st_uid, stat.S_IMODE(manifest.st_mode)) == (0, 0o600)


def test_publish_remakes_an_emptied_directory(tmp_path: Path) -> None:
    """After a reboot the tmpfs is empty: publishing again needs nothing but the files."""
    directory = tmp_path / "stack" / "c1"
    assert atomic.live_versions(directory) is None
    atomic.publish(directory, files("1"), ["a@1"])
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            for child in entry.iterdir():
                child.unlink()
            entry.rmdir()
        else:
            entry.unlink()
    directory.rmdir()
    atomic.publish(directory, files("2"), ["a@2"])
    assert (directory / atomic.DATA / "00-site.key").read_bytes() == b"KEY-2"


def test_readers_see_only_complete_old_or_new_values(tmp_path: Path) -> None:
    directory = tmp_path / "stack" / "c1"
    size = 64 * 1024  # bigger than one write: a torn read would show
    values = [bytes([65 + i % 26]) * size for i in range(101)]

    def version(i: int) -> list[SecretFile]:
        return [SecretFile("big", "/run/secrets/big", os.getuid(), os.getgid(), 0o400, values[i])]

    atomic.publish(directory, version(0), ["big@0"])
    seen: set[bytes] = set()
    bad: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        path = directory / atomic.DATA / "00-big"
        while not stop.is_set():
            try:
                body = path.read_bytes()
            except OSError as exc:
                bad.append(f"read failed: {exc}")
                continue
            if body not in values:
                bad.append(f"partial or mixed value of {len(body)} bytes")
            seen.add(body[:1])

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for i in range(1, 101):
            atomic.publish(directory, version(i), [f"big@{i}"])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert bad == []
    assert len(seen) > 1, "the readers never saw a rotation"
    assert (directory / atomic.DATA / "00-big").read_bytes() == values[100]


def test_link_archive_holds_symlinks_into_the_mount_and_no_value() -> None:
    data = atomic.link_archive(files("SECRET"))
    assert b"SECRET" not in data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [(m.name, m.issym(), m.linkname, m.uid, m.gid) for m in members] == [
        ("run/secrets/site.key", True, f"{ROTATE_MOUNT}/..data/00-site.key", 0, 0),
        ("run/secrets/site.crt", True, f"{ROTATE_MOUNT}/..data/01-site.crt", 33, 44),
    ]


def test_prune_removes_a_version_never_made_live(tmp_path: Path) -> None:
    directory = tmp_path / "stack" / "c1"
    live = atomic.publish(directory, files("1"), [])
    orphan = directory / "..000002"  # a publish that failed before the swap
    orphan.mkdir()
    atomic.prune(directory)
    assert not orphan.exists() and live.is_dir()
    assert os.readlink(directory / atomic.DATA) == live.name
    atomic.prune(tmp_path / "missing")  # nothing published: nothing to do
