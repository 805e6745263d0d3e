"""The variables interpolation reads: ``.env`` files and the lookup (environment first).

Apart from :mod:`.interpolate` so that a file without ``$`` imports no interpolation
machinery (start-up); :mod:`.interpolate` re-exports both functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from composesecrets.errors import InputError

_ENV_LINE = r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*(=?)(.*)$"


def read_env_file(path: Path) -> dict[str, str]:
    """Read a ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes, ``export``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read env file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"env file {path} is not valid UTF-8") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(_ENV_LINE, line)
        if not match or not match.group(2):
            raise InputError(
                f"{path}:{number}: expected KEY=VALUE (a variable name, '=', then the value)"
            )
        key, rest = match.group(1), match.group(3).strip()
        values[key] = _env_value(rest)
    return values


def _env_value(rest: str) -> str:
    if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
        inner = rest[1:-1]
        if rest[0] == '"':
            inner = inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        return inner
    # an unquoted value ends at an inline comment (" #")
    hash_at = rest.find(" #")
    return (rest[:hash_at] if hash_at >= 0 else rest).strip()


def make_lookup(
    environ: Mapping[str, str], dotenv: Mapping[str, str]
) -> Callable[[str], str | None]:
    """Process environment first, then the ``.env`` file, as compose does."""

    def lookup(name: str) -> str | None:
        value = environ.get(name)
        return dotenv.get(name) if value is None else value

    return lookup
