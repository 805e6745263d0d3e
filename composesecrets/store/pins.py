"""Unlock pins: how a store may be unlocked, recorded outside its database.

The key slot row says which method (key file, environment key, passphrase) and which key file
protect the root key. Someone who can rewrite that row could point it at a key of their own,
and new secrets would be sealed for them. So the pairs ``(method, key file)`` this store has
ever been set up with on this machine are also kept in ``<config dir>/<store id>.pin`` (0600,
in a directory only you can write), and a slot that names any other pair is refused.

A new pair is added *before* the key change commits, and none is ever removed, so a crash at
any point, or a backup restored from before a change, still opens. A store without a pin file
(made by an older version, or copied onto this machine) is pinned to its slot when it is first
unlocked here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path

from ..errors import IntegrityError, StoreLockedError
from . import paths

Pair = tuple[str, str | None]


def pin_path(environ: Mapping[str, str], store_id: str) -> Path:
    return paths.config_dir(environ) / f"{store_id}.pin"


def read(environ: Mapping[str, str], store_id: str) -> set[Pair] | None:
    """The pinned pairs, or None when this store has no pin on this machine."""
    path = pin_path(environ, store_id)
    paths.check_private(path, directory=False)
    paths.check_key_dir(path.parent)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreLockedError(f"cannot read the unlock pin {path}: {exc}") from None
    try:
        data = json.loads(text)
        if data.get("store_id") != store_id:
            raise ValueError("it names another store")
        return {(str(m), None if f is None else str(f)) for m, f in data["accept"]}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise IntegrityError(
            f"the unlock pin {path} is damaged ({exc})",
            hint="remove it only if you are sure the store's key slot is yours",
        ) from None


def add(environ: Mapping[str, str], store_id: str, pair: Pair) -> None:
    """Accept ``pair`` for this store from now on (written durably; call before a commit)."""
    current = read(environ, store_id) or set()
    if pair in current:
        return
    accept = sorted(current | {pair}, key=lambda p: (p[0], p[1] or ""))
    data = {"store_id": store_id, "accept": [list(p) for p in accept]}
    paths.write_private_file(
        pin_path(environ, store_id), (json.dumps(data, indent=1) + "\n").encode(), replace=True
    )


def pin_on_first_use(environ: Mapping[str, str], store_id: str, pair: Pair) -> None:
    """Pin a store that has no pin yet (best effort: a read-only home does not stop reads)."""
    with contextlib.suppress(OSError):
        if read(environ, store_id) is None:
            add(environ, store_id, pair)


def check(environ: Mapping[str, str], store_id: str, pair: Pair) -> bool:
    """Refuse a slot whose pair is not pinned. True when the store has a pin."""
    accepted = read(environ, store_id)
    if accepted is None:
        return False
    if pair not in accepted:
        method, key_file = pair
        shown = f"{method}" + (f" with key file {key_file}" if key_file else "")
        raise IntegrityError(
            f"the store's key slot says it is unlocked by {shown}, which its unlock pin"
            f" {pin_path(environ, store_id)} does not allow: the database was altered",
            hint="restore the store from a backup; if you changed the unlock method with"
            " another tool, add the pair to the pin file yourself",
        )
    return True
