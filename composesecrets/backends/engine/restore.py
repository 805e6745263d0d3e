"""Bringing an engine stack back after its secret files were lost (a host reboot empties
the tmpfs; the containers then stay ``Exited (127)``: Docker never starts them with a
missing bind-mount source).

Everything comes from the containers and the store, nothing from a compose file: each
container's ``io.composesecrets.secret-files`` label holds the layout of its files (store
name, version, compose key, target, uid, gid, mode, in reference order); the caller passes
the values. Files are re-created with the same uid/gid/mode in the container's own
directory (the path its bind mounts name). Then the containers that Docker would have
restarted are started:

* ``always``: Docker restarts it when the daemon starts, whatever happened before;
* ``unless-stopped`` and ``on-failure``: Docker tried to start it when the daemon started
  (not manually stopped before; a non-zero exit within the retry count) and could not:
  the start failure is in its ``State.Error``. A container the user stopped before the
  reboot was not tried, has no error, and stays stopped;
* ``no``: never.

Files that are still there are left alone, and so are running containers: it is idempotent
and safe to run when nothing was lost.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composesecrets.backends.docker_api import is_running, parallel, reason
from composesecrets.backends.engine import atomic, tmpfs
from composesecrets.backends.listing import stack_entries
from composesecrets.docker_rules import (
    LABEL_FILES,
    LABEL_ROTATE,
    LABEL_SERVICE,
    LABEL_TARGETS,
    ROTATE_IN_PLACE,
)
from composesecrets.errors import BackendError, EngineApiError
from composesecrets.model import SECRET, SecretFile

if TYPE_CHECKING:
    from composesecrets.backends import Progress
    from composesecrets.backends.engine_reader import Transport

__all__ = [
    "ApiContainer",
    "FileRecord",
    "RestoreResult",
    "file_records",
    "restore_containers",
    "restore_stack",
    "should_start",
    "stack_containers",
]


@dataclass(frozen=True)
class FileRecord:
    """One secret file of a container, as its label records it (no value)."""

    name: str  # store name
    version: int
    source: str  # compose key
    target: str
    uid: int
    gid: int
    mode: int
    kind: str = SECRET  # or CONFIG

    def to_label(self) -> list[Any]:
        row: list[Any] = [self.name, self.version, self.source, self.target, self.uid,
                          self.gid, self.mode]  # fmt: skip
        return row if self.kind == SECRET else [*row, self.kind]


def files_label(files: tuple[SecretFile, ...], versions: tuple[tuple[str, int], ...]) -> str:
    """The ``secret-files`` label value of a container with these files."""
    return json.dumps(
        [
            FileRecord(name, version, f.source, f.target, f.uid, f.gid, f.mode, f.kind).to_label()
            for f, (name, version) in zip(files, versions, strict=True)
        ],
        separators=(",", ":"),
    )


def file_records(labels: Mapping[str, str]) -> list[FileRecord] | None:
    """The container's secret files from its label; None when it has files but no record
    (created by a version without the label: a redeploy records it)."""
    raw = labels.get(LABEL_FILES)
    if raw is None:
        return None if json.loads(labels.get(LABEL_TARGETS) or "[]") else []
    return [FileRecord(str(n), int(v), str(s), str(t), int(u), int(g), int(m), *map(str, rest))
            for n, v, s, t, u, g, m, *rest in json.loads(raw)]  # fmt: skip


def should_start(attrs: Mapping[str, Any]) -> bool:
    """True when Docker's restart policy would have started this stopped container when the
    daemon started (see the module doc)."""
    state = attrs.get("State") or {}
    if state.get("Running"):
        return False
    policy = ((attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    if policy == "always":
        return True
    if policy in ("unless-stopped", "on-failure"):
        return bool(state.get("Error"))
    return False


@dataclass(frozen=True)
class RestoreResult:
    stack: str
    started: tuple[str, ...] = ()
    running: tuple[str, ...] = ()  # were running: left alone
    stopped: tuple[str, ...] = ()  # files restored, left stopped (policy, or stopped by the user)
    files: int = 0  # secret files written
    problems: tuple[str, ...] = field(default=())


Version = Callable[[str, FileRecord], int]  # (service, file) -> the version it must hold
Fetch = Callable[[set[tuple[str, int]]], Mapping[tuple[str, int], bytes]]


class ApiContainer:
    """A container as the Engine API lists it, with what restoring reads and does: ``name``,
    ``labels``, ``attrs`` (the listing entry; the inspect after :meth:`reload`), ``start``."""

    def __init__(self, api: Transport, entry: Mapping[str, Any]) -> None:
        self._api = api
        self.attrs: dict[str, Any] = dict(entry)
        self.id = str(entry["Id"])
        self.name = str((entry.get("Names") or ["/"])[0]).lstrip("/")
        self.labels: dict[str, str] = dict(entry.get("Labels") or {})

    def reload(self) -> None:
        self.attrs = dict(self._api.get(f"/containers/{self.id}/json") or {})

    def start(self) -> None:
        self._api.request("POST", f"/containers/{self.id}/start")


def stack_containers(api: Transport, stack: str) -> list[ApiContainer]:
    """The stack's containers, running or not, in one listing."""
    return [ApiContainer(api, entry) for entry in stack_entries(api, stack)]


def restore_stack(
    stack: str,
    containers: list[ApiContainer],
    fetch: Fetch,
    version: Version,
    progress: Progress,
) -> RestoreResult:
    """Re-create the secret files of the stack's ``containers`` (:func:`stack_containers`;
    values from ``fetch``: (store name, version) -> value) and start what Docker would have
    restarted: an inspect of each stopped container, its start (through the light Engine
    API transport)."""
    values = fetch(needed(containers, version))
    return restore_containers(stack, containers, values, version, progress)


def restore_containers(
    stack: str,
    containers: list[Any],
    values: Mapping[tuple[str, int], bytes],
    version: Version,
    progress: Progress,
) -> RestoreResult:
    """Re-create the secret files of ``containers`` from ``values`` ((store name, version) ->
    value) and start those Docker would have restarted; all containers at once."""
    root = tmpfs.runtime_root()
    jobs = [functools.partial(_restore_one, root, stack, c, values, version, progress)
            for c in containers if not c.name.endswith("-next")]  # fmt: skip
    outcomes = parallel(jobs)
    by: dict[str, list[str]] = {"started": [], "running": [], "stopped": [], "problem": []}
    written = 0
    for name, outcome, count in outcomes:
        by[outcome].append(name)
        written += count
    return RestoreResult(
        stack,
        tuple(sorted(by["started"])),
        tuple(sorted(by["running"])),
        tuple(sorted(by["stopped"])),
        written,
        tuple(sorted(by["problem"])),
    )


def needed(containers: list[Any], version: Version) -> set[tuple[str, int]]:
    """The (store name, version) values the containers' files need."""
    out = set()
    for c in containers:
        labels = c.labels or {}
        for record in file_records(labels) or []:
            out.add((record.name, version(labels.get(LABEL_SERVICE, ""), record)))
    return out


def _restore_one(
    root: Path,
    stack: str,
    container: Any,
    values: Mapping[tuple[str, int], bytes],
    version: Version,
    progress: Progress,
) -> tuple[str, str, int]:
    """(name, 'started' | 'running' | 'stopped' | 'problem: ...', files written)."""
    labels: dict[str, str] = container.labels or {}
    name = str(container.name)
    records = file_records(labels)
    if records is None:
        return (f"{name}: its secret files were not recorded by this version of "
                "composesecrets; redeploy the stack once", "problem", 0)  # fmt: skip
    running = is_running(container.attrs)
    if not running and not isinstance(container.attrs.get("State"), Mapping):
        try:  # a listing entry: the policy needs an inspect
            container.reload()
        except EngineApiError as exc:  # the transport's errors are ours already (no SDK here)
            raise BackendError(f"inspecting {name}: {exc.message}") from None
        running = is_running(container.attrs)
    written = 0
    directory = tmpfs.container_directory(root, labels)
    if records and directory is not None:
        in_place = labels.get(LABEL_ROTATE) == ROTATE_IN_PLACE
        if in_place:  # a published version (atomic.py's layout) is there or not
            present = atomic.live_versions(directory) is not None
        else:
            paths = [directory / tmpfs.file_name(i, r.source) for i, r in enumerate(records)]
            present = all(p.exists() for p in paths)
        if not present:  # present: written by a deploy or restore
            service = labels.get(LABEL_SERVICE, "")
            files = []
            for r in records:
                wanted = version(service, r)
                if (r.name, wanted) not in values:
                    return (f"{name}: secret {r.name} version {wanted} is not in this store",
                            "problem", 0)  # fmt: skip
                files.append(SecretFile(r.source, r.target, r.uid, r.gid, r.mode,
                                        values[(r.name, wanted)], r.kind))  # fmt: skip
            progress(name, "restoring secret files")
            if in_place:
                versions = [f"{r.name}@{version(service, r)}" for r in records]
                atomic.publish(directory, files, versions)
            else:
                tmpfs.write_container_files(directory, files)
            written = len(files)
    if running:
        return name, "running", written
    if not should_start(container.attrs):
        return name, "stopped", written
    progress(name, "starting")
    try:
        container.start()
    except Exception as exc:  # an SDK error: reported, the other containers go on
        return f"{name}: start failed: {reason(exc)}", "problem", written
    return name, "started", written
