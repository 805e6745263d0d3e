"""One exception tree for the whole tool; every class carries the exit code the CLI returns.

Exit codes (documented in README.md):

====  ==========================================================
0     success (validation: valid, warnings allowed)
1     invalid compose file (validation errors)
2     usage error, or input that cannot be read or parsed
3     store locked: missing, wrong or unusable key or passphrase
4     integrity failure: a stored value failed authentication
5     not found: a secret, stack or version that does not exist
6     conflict: name exists, secret in use, stack clash
7     unsafe permissions or ownership of a store, key file or parent directory
8     Docker Engine / Swarm error (daemon unreachable, API error)
9     deploy failed and was rolled back
10    the store cannot be written: read-only file system or database (reads still work)
11    the store cannot be written: the disk is full
12    the store database is damaged: truncated, not a database, or malformed
70    internal error (a bug: please report it)
====  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from composesecrets.compose.diagnostics import Diagnostic


class ComposeSecretsError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; ``hint`` says how to fix it."""

    exit_code: int = 70

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidComposeError(ComposeSecretsError):
    """The compose file(s) failed validation; ``diagnostics`` carry the details (the loader's
    findings, errors and warnings; empty when a backend refused one value)."""

    exit_code = 1

    def __init__(
        self, message: str, *, hint: str | None = None, diagnostics: Sequence[Diagnostic] = ()
    ) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)


class UnappliedKeysError(InvalidComposeError):
    """The chosen backend does not apply a compose key that changes what runs (``build``,
    ``devices`` on Swarm, ...); ``--allow-unapplied`` deploys anyway."""


class UsageError(ComposeSecretsError):
    """Bad command-line usage (conflicting options, bad option value)."""

    exit_code = 2


class InputError(ComposeSecretsError):
    """Input that cannot be read or parsed: missing file, bad YAML, not UTF-8, ..."""

    exit_code = 2


class ParseError(InputError):
    """Input that is not a well-formed compose document, at a known position."""

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        where = f"{file}:{line}:{column}" if line else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.column = column
        self.detail = message


class StoreLockedError(ComposeSecretsError):
    """The store cannot be unlocked: missing, wrong or malformed key or passphrase."""

    exit_code = 3


class IntegrityError(ComposeSecretsError):
    """A stored ciphertext, nonce or wrapped key failed authentication."""

    exit_code = 4


class RollbackError(IntegrityError):
    """The store is older than one already seen (restored, emptied or lost committed writes)."""


class NotFoundError(ComposeSecretsError):
    """A named object (secret, version, stack) does not exist."""

    exit_code = 5


class ConflictError(ComposeSecretsError):
    """The operation clashes with existing state (name exists, secret in use, ...)."""

    exit_code = 6


class UnsafePermissionsError(ComposeSecretsError):
    """A store directory, database or key file is readable by group or others."""

    exit_code = 7


class StoreReadOnlyError(ComposeSecretsError):
    """The store's file system or database refuses writes (reads still work)."""

    exit_code = 10


class StoreFullError(ComposeSecretsError):
    """A write failed because the disk is full; nothing was changed."""

    exit_code = 11


class StoreCorruptError(ComposeSecretsError):
    """The store database is truncated, not a database, or malformed."""

    exit_code = 12


class BackendError(ComposeSecretsError):
    """The Docker Engine or Swarm refused or failed an operation (translated in backends/)."""

    exit_code = 8


class EngineApiError(BackendError):
    """The Docker Engine answered an API call with an error status (``status``: 404, 503 ...);
    the message is the engine's own explanation."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class DeployFailedError(BackendError):
    """A deploy failed part-way; what this run created was removed."""

    exit_code = 9


class InternalError(ComposeSecretsError):
    """A bug in composesecrets."""

    exit_code = 70
