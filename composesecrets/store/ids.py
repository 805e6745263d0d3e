"""Object IDs in Swarm's format: 128 random bits written in base36, zero-padded to 25 characters."""

from __future__ import annotations

import os
import re

ID_LENGTH = 25
ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_ID_RE = re.compile(r"[0-9a-z]{25}")
_ID_PREFIX_RE = re.compile(r"[0-9a-z]{1,25}")


def new_id() -> str:
    """Return a fresh random ID such as ``yvsczlx9votfw3l0nz5rlidig``."""
    number = int.from_bytes(os.urandom(16), "big")
    digits: list[str] = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(ID_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(ID_LENGTH, "0")


def looks_like_id(text: str) -> bool:
    """True when ``text`` has the exact shape of an ID (such names are refused at create)."""
    return _ID_RE.fullmatch(text) is not None


def could_be_id_prefix(text: str) -> bool:
    """True when ``text`` could be the start of an ID (1 to 25 base36 digits)."""
    return _ID_PREFIX_RE.fullmatch(text) is not None
