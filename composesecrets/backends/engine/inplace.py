"""The engine backend's side of in-place rotation (``io.composesecrets.rotate: in-place``).

:mod:`.atomic` owns the directory layout; this module wires it to containers: the mount and
the symlinks of a new container, a new version written into a running one (then its reload
signal), and the versions a container holds for ``stack ps``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from composesecrets.backends import Progress, listing
from composesecrets.backends.docker_api import docker, translated
from composesecrets.backends.engine import atomic, tmpfs
from composesecrets.backends.engine.plan import Replica, in_place_service
from composesecrets.docker_rules import ROTATE_MOUNT

__all__ = [
    "in_place_service",
    "install_links",
    "mount",
    "rotate",
    "versions_of",
    "write_files",
]


def write_files(directory: Path, want: Replica) -> None:
    """(Re)make a container's secret directory in its service's layout (also after a reboot
    emptied the tmpfs): a published version for in-place services, plain files otherwise."""
    if want.in_place:
        atomic.publish(directory, want.secrets.files, want.versions)
    else:
        tmpfs.write_container_files(directory, want.secrets.files)


def mount(directory: Path) -> Any:
    """The read-only directory bind mount of an in-place container's secret directory."""
    return docker().types.Mount(
        target=ROTATE_MOUNT, source=str(directory), type="bind", read_only=True
    )


def install_links(container: Any, want: Replica) -> None:
    """Each target as a symlink into the mounted directory, before the container starts."""
    with translated(f"linking the secrets of {container.name}"):
        container.put_archive("/", atomic.link_archive(want.secrets.files))


def rotate(container: Any, want: Replica, directory: Path, progress: Progress) -> bool:
    """Publish the wanted versions into a running container when they are not live yet, then
    send its reload signal. True when it rotated."""
    if atomic.live_versions(directory) == want.versions:
        atomic.prune(directory)  # superseded versions go once no reader can be in them
        return False
    progress(want.name, "rotating secrets in place")
    atomic.publish(directory, want.secrets.files, want.versions)
    signal = want.reload_signal
    if signal:
        progress(want.name, f"sending {signal}")
        with translated(f'service "{want.service.name}": sending {signal} to {want.name}'):
            container.kill(signal=signal)
    return True


def versions_of(container: Any, directory: Path | None) -> tuple[str, ...]:
    """The store versions (``name@version``) a container holds: what its in-place directory
    has published, else what it was created with."""
    return listing.versions_of(container.labels or {}, directory)
