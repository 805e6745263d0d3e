"""Result types of the store API that only some commands need (frozen dataclasses; none of
them ever holds a value). :class:`~.records.SecretInfo` is in :mod:`.records`: listing
secrets, the most frequent command, does not import this module (start-up), and the usage
records (what ``stack restore`` reads at boot) are in :mod:`.usage`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .records import SecretInfo, docker_time

if TYPE_CHECKING:
    from .usage import UsageRecord


@dataclass(frozen=True)
class VersionInfo:
    """One stored version: its size, time and keyed digest (``hmac-sha256:<hex>``)."""

    version: int
    size: int
    created_at: datetime
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "Index": self.version,
            "Size": self.size,
            "CreatedAt": docker_time(self.created_at),
            "Digest": self.digest,
        }


@dataclass(frozen=True)
class SecretDetails:
    """``secret inspect``: the secret, its retained versions and who uses it."""

    info: SecretInfo
    versions: tuple[VersionInfo, ...]
    usages: tuple[UsageRecord, ...] = ()

    def to_docker(self) -> dict[str, Any]:
        out = self.info.to_docker()
        out["Versions"] = [v.to_json() for v in self.versions]
        out["UsedBy"] = [u.to_json() for u in self.usages]
        return out


@dataclass(frozen=True)
class StoreStatus:
    directory: Path
    database: Path
    store_id: str | None
    schema_version: int
    initialised: bool
    unlock_method: str | None
    kdf: str | None
    key_file: Path | None
    key_generation: int | None
    secrets: int
    versions: int
    stacks: tuple[str, ...]
    audit_entries: int
    database_bytes: int
    retention: int
    created_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "Directory": str(self.directory),
            "Database": str(self.database),
            "StoreID": self.store_id,
            "SchemaVersion": self.schema_version,
            "Initialised": self.initialised,
            "UnlockMethod": self.unlock_method,
            "KDF": self.kdf,
            "KeyFile": str(self.key_file) if self.key_file else None,
            "KeyGeneration": self.key_generation,
            "Secrets": self.secrets,
            "Versions": self.versions,
            "Stacks": list(self.stacks),
            "AuditEntries": self.audit_entries,
            "DatabaseBytes": self.database_bytes,
            "Retention": self.retention,
            "CreatedAt": docker_time(self.created_at) if self.created_at else None,
        }


@dataclass(frozen=True)
class VerifyFailure:
    """One thing ``verify`` found wrong. ``kind``: ``version`` (a stored version), ``secret``
    (a secret's metadata row; ``version`` is its recorded current one)."""

    secret_id: str
    name: str
    version: int
    reason: str
    kind: str = "version"

    def describe(self) -> str:
        if self.kind == "secret":
            return f"secret {self.name} ({self.secret_id}): {self.reason}"
        return f"{self.name} version {self.version} ({self.secret_id}): {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    failures: tuple[VerifyFailure, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class KeyChange:
    """Result of ``rotate_key`` / ``change_unlock``.

    ``old_key_file`` is a key file this store no longer uses (it is not deleted: other stores
    or backups may need it). ``kept_key_file`` is where the key file that a rotation replaced
    was kept (``<key>.gen<N>-<hash>``): backups of the store, and other stores that shared the
    file, still open with it; delete it once nothing needs it.
    """

    method: str
    key_file: Path | None
    generation: int
    versions_rewrapped: int
    old_key_file: Path | None = None
    kept_key_file: Path | None = None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    who: str
    action: str
    target: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "Seq": self.seq,
            "At": docker_time(self.at),
            "Who": self.who,
            "Action": self.action,
            "Target": self.target,
            "Detail": self.detail,
        }
