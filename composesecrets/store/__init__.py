"""The encrypted secret store: one SQLite database, envelope encryption, versioned secrets.

Typical use::

    from composesecrets.store import Store

    with Store.open() as store:
        store.create("db_password", b"s3cret", {"team": "infra"})
        value = store.get("db_password")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bulk import read_import
    from .filters import SecretFilter
    from .ids import new_id
    from .kdf import Argon2Params, KdfParams, ScryptParams
    from .keys import (
        ENV_KEY,
        ENV_PASSPHRASE,
        AutoUnlock,
        EnvKeyUnlock,
        KeyFileUnlock,
        PassphrasePrompt,
        PassphraseUnlock,
        Unlock,
        argon2_available,
    )
    from .paths import ENV_HOME, ENV_KEY_FILE, default_key_file, default_store_dir
    from .records import SecretInfo, docker_time
    from .reports import (
        AuditEntry,
        KeyChange,
        SecretDetails,
        StoreStatus,
        VerifyFailure,
        VerifyReport,
        VersionInfo,
    )
    from .sources import read_value
    from .store import DEFAULT_RETENTION, Store
    from .usage import Usage, UsageRecord
    from .validation import NAME_MAX, VALUE_MAX, check_labels, check_name, parse_label, split_ref

# Every public name -> the submodule that defines it, imported on first access (PEP 562): a
# command imports only the parts of the store it uses (start-up; ``secret ls`` needs neither
# the import/export nor the report types).
_LAZY = {
    "Argon2Params": "kdf",
    "AuditEntry": "reports",
    "AutoUnlock": "keys",
    "DEFAULT_RETENTION": "store",
    "ENV_HOME": "paths",
    "ENV_KEY": "keys",
    "ENV_KEY_FILE": "paths",
    "ENV_PASSPHRASE": "keys",
    "EnvKeyUnlock": "keys",
    "KdfParams": "kdf",
    "KeyChange": "reports",
    "KeyFileUnlock": "keys",
    "NAME_MAX": "validation",
    "PassphrasePrompt": "keys",
    "PassphraseUnlock": "keys",
    "ScryptParams": "kdf",
    "SecretDetails": "reports",
    "SecretFilter": "filters",
    "SecretInfo": "records",
    "Store": "store",
    "StoreStatus": "reports",
    "Unlock": "keys",
    "Usage": "usage",
    "UsageRecord": "usage",
    "VALUE_MAX": "validation",
    "VerifyFailure": "reports",
    "VerifyReport": "reports",
    "VersionInfo": "reports",
    "argon2_available": "keys",
    "check_labels": "validation",
    "check_name": "validation",
    "default_key_file": "paths",
    "default_store_dir": "paths",
    "docker_time": "records",
    "new_id": "ids",
    "parse_label": "validation",
    "read_import": "bulk",
    "read_value": "sources",
    "split_ref": "validation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
