"""Stopping a container, and saying so when the stop waits out its grace period.

A stop sends the container's stop signal, waits up to its grace period
(``stop_grace_period``), then kills. A stop that is still going after :data:`NOTICE_AFTER`
seconds is reported through ``progress`` as ``waiting up to 10s for app_1 to stop
(stop_grace_period)``, so that a teardown that seems to hang explains itself.

The notice also says when waiting cannot help: a process that is its container's init
(PID 1 of its PID namespace, as a shell or ``sleep`` started as the command is) and has no
handler for the stop signal never receives it (the kernel drops it), so the stop always takes
the whole grace period. The fix is the user's: ``init: true``, an ``exec``-form entrypoint that
handles the signal, or a shorter ``stop_grace_period``. This needs the container's process on
this host (the engine backend only deploys to a local engine); when its ``/proc`` entry cannot
be read, or belongs to another container, the process counts as one that receives it.

A stop always waits the whole grace period, even when the process cannot receive its signal.
Killing such processes sooner in a teardown (their grace period counted from its start instead
of from their own stop) makes tens of them exit in the same moment, the pattern after which
Docker 20.10 keeps a phantom endpoint on a network (:mod:`.engine.teardown`); it was tried
and measured no safer, so it is not done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any

from composesecrets.backends.base import Progress
from composesecrets.backends.docker_api import docker

__all__ = ["NOTICE_AFTER", "deaf_to", "ignores_signal", "stop_container"]

NOTICE_AFTER = 0.5  # seconds a stop may take before it is reported as waiting
DEFAULT_GRACE = 10  # seconds: Docker's default stop timeout
PROC = Path("/proc")


def stop_container(
    api: Any, container_id: str, name: str, timeout: int | None, progress: Progress
) -> None:
    """Stop one container (``docker stop -t timeout``; ``None``: its own stop timeout),
    reporting a stop that waits (see the module doc). Errors are the caller's to translate."""
    grace = DEFAULT_GRACE if timeout is None else timeout
    done = threading.Event()

    def notice() -> None:
        if done.wait(NOTICE_AFTER):
            return
        with contextlib.suppress(Exception):  # a notice must never fail the stop
            why = deaf_to(api, container_id)
            reason = f"; the process ignores {why}" if why else ""
            progress(name, f"waiting up to {grace}s for {name} to stop (stop_grace_period{reason})")

    if grace > 0 and not getattr(progress, "quiet", False):  # (-q: nobody would read it)
        threading.Thread(target=notice, name=f"notice-{name}", daemon=True).start()
    try:
        api.stop(container_id, timeout=timeout)
    finally:
        done.set()


def deaf_to(api: Any, container_id: str) -> str | None:
    """The stop signal (``SIGTERM``...) the container's process can never receive, or None
    (it can, or this cannot be known: an error, no ``/proc`` entry)."""
    with contextlib.suppress(docker().errors.DockerException, OSError, ValueError):
        found = api.inspect_container(container_id)
        pid = int((found.get("State") or {}).get("Pid") or 0)
        stop_signal = str((found.get("Config") or {}).get("StopSignal") or "SIGTERM")
        if pid > 0 and ignores_signal(pid, str(found.get("Id") or container_id), stop_signal):
            return _signal_name(stop_signal)
    return None


def _signal_number(stop_signal: str) -> int | None:
    text = stop_signal.strip().upper()
    if text.isdigit():
        return int(text)
    with contextlib.suppress(KeyError):
        return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    return None


def _signal_name(stop_signal: str) -> str:
    number = _signal_number(stop_signal)
    with contextlib.suppress(ValueError, TypeError):
        return signal.Signals(number).name  # type: ignore[arg-type]
    return stop_signal


def ignores_signal(
    pid: int, container_id: str, stop_signal: str, proc: Path | None = None
) -> bool:
    """Whether process ``pid`` (the init of container ``container_id``) can never receive
    ``stop_signal``: it ignores the signal, or it is PID 1 of its PID namespace and has no
    handler for it. False when unsure (not that container's process, no ``/proc``)."""
    number = _signal_number(stop_signal)
    if number is None or number in (signal.SIGKILL, signal.SIGSTOP):
        return False
    proc = PROC if proc is None else proc
    try:
        if container_id not in (proc / str(pid) / "cgroup").read_text():
            return False  # not that container's process (another PID namespace than ours)
        fields = dict(
            line.split(":", 1)
            for line in (proc / str(pid) / "status").read_text().splitlines()
            if ":" in line
        )
    except OSError:
        return False
    bit = 1 << (number - 1)
    if int(fields.get("SigIgn", "0").strip() or "0", 16) & bit:
        return True  # explicitly ignored
    nspid = fields.get("NSpid", "").split()
    caught = int(fields.get("SigCgt", "0").strip() or "0", 16) & bit
    return bool(nspid) and nspid[-1] == "1" and not caught
