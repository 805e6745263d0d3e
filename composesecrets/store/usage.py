"""Usage records: which deployed stack's services use which secret version.

A version a stack uses is kept whatever the retention, and a secret in use cannot be removed.
Secrets are found by their exact name (deploy records them; see :func:`secretrows.by_name`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError, NotFoundError
from . import audit
from .records import docker_time, from_ns
from .secretrows import by_name, prune
from .validation import split_ref

if TYPE_CHECKING:
    from datetime import datetime


@dataclass(frozen=True)
class Usage:
    """A reference from a deployed service to a secret (``version`` None = current)."""

    secret: str
    service: str
    version: int | None = None


@dataclass(frozen=True)
class UsageRecord:
    stack: str
    backend: str
    secret_id: str
    secret_name: str
    version: int
    service: str
    recorded_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "Stack": self.stack,
            "Backend": self.backend,
            "SecretID": self.secret_id,
            "SecretName": self.secret_name,
            "Version": self.version,
            "Service": self.service,
            "RecordedAt": docker_time(self.recorded_at),
        }


_SELECT = (
    "SELECT u.stack, u.backend, u.secret_id, s.name, u.version, u.service, u.recorded_ns"
    " FROM usages u JOIN secrets s ON s.id = u.secret_id WHERE 1 = 1"
)


def rows(c: sqlite3.Connection, secret_id: str | None, stack: str | None) -> list[UsageRecord]:
    """Usage records, optionally of one secret and/or one stack."""
    sql = _SELECT
    args: list[str] = []
    if secret_id is not None:
        sql += " AND u.secret_id = ?"
        args.append(secret_id)
    if stack is not None:
        sql += " AND u.stack = ?"
        args.append(stack)
    sql += " ORDER BY u.stack, s.name, u.version, u.service"
    return [
        UsageRecord(
            stack=r["stack"],
            backend=r["backend"],
            secret_id=r["secret_id"],
            secret_name=r["name"],
            version=int(r["version"]),
            service=r["service"],
            recorded_at=from_ns(int(r["recorded_ns"])),
        )
        for r in c.execute(sql, args)
    ]


def of_secret(c: sqlite3.Connection, secret: str | None, stack: str | None) -> list[UsageRecord]:
    """Usage records of the secret named ``secret`` (exactly) and/or of ``stack``."""
    secret_id = None
    if secret is not None:
        base, _ = split_ref(secret)
        secret_id = by_name(c, base).id
    return rows(c, secret_id, stack)


def record(
    c: sqlite3.Connection,
    retention: int,
    stack: str,
    backend: str,
    usages: Sequence[Usage],
) -> list[UsageRecord]:
    """Replace what ``stack`` uses with ``usages`` (inside the caller's write transaction)."""
    if not stack:
        raise InputError("a stack name must be provided")
    if not backend:
        raise InputError("a backend name must be provided")
    now = time.time_ns()
    found: dict[tuple[str, int, str], tuple[str, str, str, int, str, int]] = {}
    names: set[str] = set()
    for usage in usages:
        if not usage.service:
            raise InputError(f"usage of {usage.secret!r} names no service")
        base, wanted = split_ref(usage.secret, usage.version)
        secret = by_name(c, base)
        number = wanted if wanted is not None else secret.current
        if not c.execute(
            "SELECT 1 FROM versions WHERE secret_id = ? AND version = ?", (secret.id, number)
        ).fetchone():
            raise NotFoundError(f"secret {secret.name!r} has no stored version {number}")
        names.add(f"{secret.name}@{number}")
        found[(secret.id, number, usage.service)] = (
            stack,
            backend,
            secret.id,
            number,
            usage.service,
            now,
        )
    c.execute("DELETE FROM usages WHERE stack = ?", (stack,))
    c.executemany(
        "INSERT INTO usages (stack, backend, secret_id, version, service, recorded_ns)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        list(found.values()),
    )
    prune(c, retention)
    detail = ", ".join(sorted(names))
    audit.append(c, "record-usage", stack, f"backend={backend} secrets={detail}")
    return rows(c, None, stack)


def clear(c: sqlite3.Connection, retention: int, stack: str) -> int:
    """Forget what ``stack`` uses (inside the caller's write transaction)."""
    count = int(c.execute("DELETE FROM usages WHERE stack = ?", (stack,)).rowcount)
    prune(c, retention)
    audit.append(c, "clear-usage", stack, f"records={count}")
    return count
