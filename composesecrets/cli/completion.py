"""Shell completion of secret and stack names, read from the store without a key or a daemon.

These functions run only while the shell asks for completions (typer's
``_COMPOSESECRETS_COMPLETE`` protocol), so the store is imported inside them. Listing names
needs no key: the store is opened read-only in intent (``create=False``) with no prompt and no
notice. Anything that goes wrong (no store, unsafe permissions, a locked database) completes
nothing rather than printing into the user's command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _store_dir(ctx: Any) -> Path | None:
    root = ctx.find_root()
    given = (root.params or {}).get("store") or (root.obj or {}).get("store")
    return Path(given) if given else None


def _open(ctx: Any) -> Any:
    from composesecrets.store import AutoUnlock, Store

    return Store.open(_store_dir(ctx), unlock=AutoUnlock(prompt=None, notice=None), create=False)


def complete_secret(ctx: Any, incomplete: str) -> list[str]:
    """Secret names in the store that start with ``incomplete``."""
    try:
        with _open(ctx) as store:
            names = [info.name for info in store.list_secrets()]
    except Exception:  # completion must never fail loudly or prompt
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_stack(ctx: Any, incomplete: str) -> list[str]:
    """Stacks the store records as deployed (no daemon is contacted)."""
    try:
        with _open(ctx) as store:
            names = sorted({u.stack for u in store.usages()})
    except Exception:  # completion must never fail loudly or prompt
        return []
    return [n for n in names if n.startswith(incomplete)]
