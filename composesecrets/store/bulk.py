"""What ``secret import DIR|FILE.env`` reads: many (name, value) pairs, refused when ambiguous.

* A directory: each entry is one secret, named exactly after the file, holding the file's
  bytes unchanged. Every entry must be a regular file (or a symlink to one) with a valid
  secret name; a subdirectory, device, FIFO or socket refuses the whole import.
* A ``.env`` file: one ``NAME=VALUE`` per line; blank lines and lines starting with ``#`` are
  skipped. The value is the rest of the line after the first ``=`` (a trailing ``\\r`` is
  dropped); a value wrapped in matching single or double quotes loses those quotes and nothing
  else (no escapes, no ``$`` interpolation). Refused as ambiguous: a line without ``=``,
  ``export NAME=...``, an unquoted value containing `` #`` (an inline comment or not?), an
  opening quote without its closing one (a multi-line value), an empty value, a name twice.

Names and sizes follow the same rules as ``secret create`` (checked again by the store).
Error messages name the file and line, never a value.
"""

from __future__ import annotations

import stat
from pathlib import Path

from ..errors import InputError
from .sources import read_value
from .validation import VALUE_MAX, check_name

#: The largest ``.env`` file read (its values are limited one by one, as any secret's are).
ENV_FILE_MAX = 64 * 1024 * 1024


def read_import(source: Path) -> list[tuple[str, bytes]]:
    """The (name, value) pairs in a directory or ``.env`` file, in name order."""
    try:
        st = source.stat()
    except FileNotFoundError:
        raise InputError(f"{source}: no such file or directory") from None
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        items = _read_dir(source)
    elif stat.S_ISREG(st.st_mode) and source.name.endswith(".env"):
        items = _read_env(source, st.st_size)
    elif stat.S_ISREG(st.st_mode):
        raise InputError(
            f"{source} is neither a directory nor a .env file",
            hint="to import KEY=VALUE lines, name the file *.env; to store one file as one"
            " secret, use `composesecrets secret create NAME FILE`",
        )
    else:
        raise InputError(f"{source} is not a directory or a regular file")
    if not items:
        raise InputError(f"{source} holds no secrets to import")
    return sorted(items)


def _read_dir(directory: Path) -> list[tuple[str, bytes]]:
    entries = sorted(directory.iterdir())
    for entry in entries:
        try:
            mode = entry.stat().st_mode
        except OSError:
            mode = 0
        if not stat.S_ISREG(mode):
            raise InputError(
                f"{entry} is not a regular file: a directory import takes only files",
                hint="move it out of the directory, or import the files you mean one by one",
            )
        _check(entry.name, f"{entry}")
    return [(entry.name, read_value(entry)) for entry in entries]


def _read_env(path: Path, size: int) -> list[tuple[str, bytes]]:
    if size > ENV_FILE_MAX:
        raise InputError(f"{path} holds {size} bytes; a .env import reads at most 64 MiB")
    data = path.read_bytes()
    found: dict[str, tuple[int, bytes]] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw[:-1] if raw.endswith(b"\r") else raw
        where = f"{path}:{number}"
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        if b"=" not in line:
            raise InputError(f"{where}: expected NAME=VALUE", hint="comment lines start with #")
        key_bytes, value = line.split(b"=", 1)
        try:
            name = key_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{where}: the name is not UTF-8") from None
        if name.startswith("export "):
            raise InputError(f"{where}: `export NAME=VALUE` is shell syntax", hint="drop export")
        _check(name, where)
        value = _unquote(value, where)
        if not value:
            raise InputError(f"{where}: {name} has an empty value; a secret needs 1 byte or more")
        if len(value) > VALUE_MAX:
            raise InputError(f"{where}: the value of {name} is larger than {VALUE_MAX} bytes")
        if name in found:
            raise InputError(f"{where}: {name} is already set on line {found[name][0]}")
        found[name] = (number, value)
    return [(name, value) for name, (_, value) in found.items()]


def _unquote(value: bytes, where: str) -> bytes:
    if value[:1] in (b'"', b"'"):
        quote = value[:1]
        if len(value) < 2 or not value.endswith(quote):
            raise InputError(
                f"{where}: the value opens a quote it does not close on this line",
                hint="multi-line values cannot be imported from a .env file; put the value in"
                " a file of a directory import",
            )
        return value[1:-1]
    if b" #" in value or b"\t#" in value:
        raise InputError(
            f"{where}: the value contains ' #': is it an inline comment or part of the value?",
            hint="quote the value ('...') to keep the # in it, or remove the comment",
        )
    return value


def _check(name: str, where: str) -> None:
    try:
        check_name(name)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}", hint=exc.hint) from None
