"""The store API's time helpers and :class:`SecretInfo`, the one result type every listing
needs (the others, which only some commands need, are in :mod:`.reports`: start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


def from_ns(ns: int) -> datetime:
    """Convert stored nanoseconds since the epoch to an aware UTC datetime."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000)


def docker_time(moment: datetime) -> str:
    """Format like Docker's API: ``2024-05-01T10:00:00.123456Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SecretInfo:
    """One secret as ``secret ls`` shows it."""

    id: str
    name: str
    version: int
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime

    def to_docker(self) -> dict[str, Any]:
        """Docker's ``secret inspect`` shape (``ID``, ``Version.Index``, ``Spec`` ...)."""
        return {
            "ID": self.id,
            "Version": {"Index": self.version},
            "CreatedAt": docker_time(self.created_at),
            "UpdatedAt": docker_time(self.updated_at),
            "Spec": {"Name": self.name, "Labels": dict(self.labels)},
        }
