"""The encrypted secret store: one SQLite database, envelope encryption, versioned secrets.

Typical use::

    from composesecrets.store import Store

    with Store.open() as store:
        store.create("db_password", b"s3cret", {"team": "infra"})
        value = store.get("db_password")
"""

from __future__ import annotations

from .bulk import read_import
from .filters import SecretFilter
from .ids import new_id
from .keys import (
    ENV_KEY,
    ENV_PASSPHRASE,
    Argon2Params,
    AutoUnlock,
    EnvKeyUnlock,
    KdfParams,
    KeyFileUnlock,
    PassphrasePrompt,
    PassphraseUnlock,
    ScryptParams,
    Unlock,
    argon2_available,
)
from .paths import ENV_HOME, ENV_KEY_FILE, default_key_file, default_store_dir
from .records import (
    AuditEntry,
    KeyChange,
    SecretDetails,
    SecretInfo,
    StoreStatus,
    Usage,
    UsageRecord,
    VerifyFailure,
    VerifyReport,
    VersionInfo,
    docker_time,
)
from .sources import read_value
from .store import DEFAULT_RETENTION, Store
from .validation import NAME_MAX, VALUE_MAX, check_labels, check_name, parse_label, split_ref

__all__ = [
    "DEFAULT_RETENTION",
    "ENV_HOME",
    "ENV_KEY",
    "ENV_KEY_FILE",
    "ENV_PASSPHRASE",
    "NAME_MAX",
    "VALUE_MAX",
    "Argon2Params",
    "AuditEntry",
    "AutoUnlock",
    "EnvKeyUnlock",
    "KdfParams",
    "KeyChange",
    "KeyFileUnlock",
    "PassphrasePrompt",
    "PassphraseUnlock",
    "ScryptParams",
    "SecretDetails",
    "SecretFilter",
    "SecretInfo",
    "Store",
    "StoreStatus",
    "Unlock",
    "Usage",
    "UsageRecord",
    "VerifyFailure",
    "VerifyReport",
    "VersionInfo",
    "argon2_available",
    "check_labels",
    "check_name",
    "default_key_file",
    "default_store_dir",
    "docker_time",
    "new_id",
    "parse_label",
    "read_import",
    "read_value",
    "split_ref",
]
