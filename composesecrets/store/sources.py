"""Reading a secret value from ``FILE`` or ``-`` (standard input), as ``secret create`` does.

Never reads more than one byte past the limit, refuses directories, devices and sockets, waits
for a named pipe's writer for a bounded time only, and turns every failure into an
:class:`InputError` that says what to do.
"""

from __future__ import annotations

import os
import select
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from .validation import VALUE_MAX, check_value

#: How long a named pipe may keep ``secret create`` waiting for its writer.
FIFO_WAIT_SECONDS = 10.0


def _read_limited(stream: BinaryIO) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= VALUE_MAX:
        chunk = stream.read(VALUE_MAX + 1 - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_fifo(path: Path) -> bytes:
    """A named pipe (or ``<(command)``): wait at most :data:`FIFO_WAIT_SECONDS` for its writer
    instead of hanging forever when nothing ever writes it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(int(FIFO_WAIT_SECONDS * 1000)):
            raise InputError(
                f"{path} is a named pipe and nothing wrote to it within"
                f" {FIFO_WAIT_SECONDS:g} seconds",
                hint="start the program that writes the pipe first, or pass the value on"
                " standard input with -",
            )
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        data = _read_limited(handle)
    if not data:
        raise InputError(f"{path}: the pipe was closed without a value")
    check_value(data, name=None)
    return data


def read_value(source: str | Path, *, stdin: BinaryIO | None = None) -> bytes:
    """Read a value from a file path, or from ``stdin`` (default: standard input) for ``-``."""
    if str(source) == "-":
        data = _read_limited(stdin if stdin is not None else sys.stdin.buffer)
        if not data:
            raise InputError(
                "standard input was empty: a secret needs 1 to 511999 bytes",
                hint='pipe the value in, for example: printf %s "$VALUE" | ... -',
            )
        check_value(data, name=None)
        return data
    path = Path(source)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="check the path of the value file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path} is a directory", hint="give the file holding the value")
    if stat.S_ISFIFO(st.st_mode):
        return _read_fifo(path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(
            f"{path} is a device or socket, not a file",
            hint="give a regular file, or '-' to read standard input",
        )
    if stat.S_ISREG(st.st_mode) and st.st_size > VALUE_MAX:
        raise InputError(
            f"{path} holds {st.st_size} bytes: secret data must be larger than 0 and less than"
            " 512000 bytes",
            hint="store a smaller value",
        )
    try:
        with open(path, "rb") as handle:
            data = _read_limited(handle)
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror}", hint="check the file's permissions"
        ) from None
    if not data:
        raise InputError(
            f"{path} is empty: a secret needs 1 to 511999 bytes",
            hint="write the value into the file first",
        )
    check_value(data, name=None)
    return data


__all__ = ["read_value"]
