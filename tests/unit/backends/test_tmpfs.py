"""Secret files on tmpfs: ownership, mode, no plaintext outside memory-backed storage."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from composesecrets.backends.engine import tmpfs as delivery
from composesecrets.errors import BackendError
from composesecrets.model import SecretFile

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to other uids needs root")


@pytest.fixture
def shm(tmp_path: Path) -> Iterator[Path]:
    base = Path("/dev/shm")
    if not delivery.is_memory_backed(base):
        pytest.skip("/dev/shm is not a tmpfs here")
    directory = base / f"cs-test-{os.getpid()}-{tmp_path.name}"
    yield directory
    delivery.remove_directory(directory)


def test_dev_shm_is_memory_backed_and_tmp_path_is_classified() -> None:
    assert delivery.is_memory_backed(Path("/dev/shm"))
    assert delivery._mount_fstype(Path("/proc")) == "proc"


@needs_root
def test_files_get_their_own_uid_gid_and_mode(shm: Path) -> None:
    files = [
        SecretFile("pw", "/run/secrets/pw", 0, 0, 0o444, b"CANARY-1"),
        SecretFile("pw", "/run/secrets/copy", 1000, 2000, 0o400, b"CANARY-1"),
        SecretFile("key", "/etc/app/key.pem", 33, 33, 0o440, b"CANARY-2"),
    ]
    placed = delivery.write_container_files(shm / "c1", files)
    assert list(placed) == ["/run/secrets/pw", "/run/secrets/copy", "/etc/app/key.pem"]
    assert stat.S_IMODE(os.stat(shm / "c1").st_mode) == 0o700
    seen = []
    for path in placed.values():
        info = os.stat(path)
        seen.append((info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), path.read_bytes()))
    assert seen == [
        (0, 0, 0o444, b"CANARY-1"),
        (1000, 2000, 0o400, b"CANARY-1"),
        (33, 33, 0o440, b"CANARY-2"),
    ]
    assert len({p.name for p in placed.values()}) == 3  # one file per reference


def test_rewrite_replaces_and_remove_cleans(shm: Path) -> None:
    uid, gid = os.getuid(), os.getgid()
    delivery.write_container_files(shm / "c", [SecretFile("a", "/a", uid, gid, 0o400, b"old")])
    placed = delivery.write_container_files(
        shm / "c", [SecretFile("b", "/b", uid, gid, 0o400, b"new")]
    )
    assert [p.read_bytes() for p in placed.values()] == [b"new"]
    assert sorted(os.listdir(shm / "c")) == ["00-b"]
    delivery.remove_directory(shm / "c")
    delivery.remove_directory(shm / "c")  # idempotent
    assert not (shm / "c").exists()


def test_secret_file_repr_hides_the_value() -> None:
    item = SecretFile("a", "/a", 0, 0, 0o400, b"CANARY-repr")
    assert "CANARY" not in repr(item) and "CANARY" not in str(item)


def test_runtime_root_refuses_disk_backed_xdg_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if os.geteuid() == 0:
        root = delivery.runtime_root()
        assert root == delivery.ROOT_DIR
        assert delivery.is_memory_backed(root)
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
        root = delivery.runtime_root()
        assert delivery.is_memory_backed(root)


def test_non_memory_root_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(delivery, "is_memory_backed", lambda path: False)
    monkeypatch.setattr(delivery, "ROOT_DIR", tmp_path / "run")
    monkeypatch.setattr(delivery, "_mount_tmpfs", lambda root: None)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(BackendError, match="not on memory-backed storage"):
        delivery.runtime_root()
