"""The audit log: who did what and when (never a value); append-only (schema triggers)."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import db as dbm
from .records import from_ns

if TYPE_CHECKING:
    from .reports import AuditEntry

_INSERT = "INSERT INTO audit (at_ns, who, action, target, detail) VALUES (?, ?, ?, ?, ?)"


def who() -> str:
    """The effective user, with the sudo caller when there is one."""
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        user = str(os.geteuid()) if hasattr(os, "geteuid") else "unknown"
    sudo = os.environ.get("SUDO_USER")
    if not sudo or sudo == user:
        return user
    if not _USER_NAME.fullmatch(sudo):
        # Set by whoever started the process: a newline or escape here would forge lines of
        # `store audit`, so it is never copied into the log.
        return f"{user} (sudo by <invalid SUDO_USER>)"
    return f"{user} (sudo by {sudo})"


#: What ``useradd`` accepts (POSIX portable names, a trailing ``$`` for machine accounts),
#: at most 32 characters.
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,30}\$?")


def append(c: sqlite3.Connection, action: str, target: str, detail: str = "") -> None:
    """Append one entry inside the caller's transaction. Never pass a value here."""
    c.execute(_INSERT, (time.time_ns(), who(), action, target, detail))


def append_many(c: sqlite3.Connection, at_ns: int, entries: Iterable[tuple[str, str, str]]) -> None:
    """Append (action, target, detail) entries that share one time and user."""
    user = who()
    c.executemany(_INSERT, [(at_ns, user, action, t, d) for action, t, d in entries])


def entries(
    conn: sqlite3.Connection,
    *,
    action: str | None = None,
    target: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Entries, oldest first (``limit`` keeps the newest N)."""
    from .reports import AuditEntry

    sql = "SELECT seq, at_ns, who, action, target, detail FROM audit WHERE 1 = 1"
    args: list[Any] = []
    if action is not None:
        sql += " AND action = ?"
        args.append(action)
    if target is not None:
        sql += " AND target = ?"
        args.append(target)
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    rows: list[sqlite3.Row] = dbm.retrying(conn, lambda c: c.execute(sql, args).fetchall())
    return [
        AuditEntry(
            int(r["seq"]), from_ns(int(r["at_ns"])), r["who"], r["action"], r["target"], r["detail"]
        )
        for r in reversed(rows)
    ]
