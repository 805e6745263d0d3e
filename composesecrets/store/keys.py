"""How the root key is unlocked: a key file, a base64 key in the environment, or a passphrase.

The root key itself is random and only ever stored wrapped (AES-256-GCM) under a key-encryption
key (KEK). The KEK is the 32 raw bytes of the key file or ``COMPOSESECRETS_KEY`` (both hold the
same base64 text, so a key file's content can be handed to CI as ``COMPOSESECRETS_KEY``), or is
stretched from a passphrase with Argon2id (scrypt when the installed ``cryptography`` lacks it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InputError, IntegrityError, StoreLockedError
from . import paths
from .crypto import KEY_BYTES, random_key

if TYPE_CHECKING:  # imported where used: only unlocking needs them (start-up)
    from .kdf import KdfParams, Kek

ENV_KEY = "COMPOSESECRETS_KEY"
ENV_PASSPHRASE = "COMPOSESECRETS_PASSPHRASE"
#: The next environment key, given by the user *before* ``rotate-key`` / ``change-unlock env``
#: commits (so the only copy of the new key is never one that is printed afterwards).
ENV_NEW_KEY = "COMPOSESECRETS_NEW_KEY"
#: New passphrases need at least this many characters.
PASSPHRASE_MIN = 12

Method = Literal["keyfile", "env", "passphrase"]
NoticeCallback = Callable[[str], None]
#: Asked for a passphrase; the argument is True when a *new* passphrase is wanted (the caller
#: should then ask twice and compare).
PassphrasePrompt = Callable[[bool], str]


# Bounds on KDF parameters read from the database (a tampered row must not make an open take
# minutes or gigabytes): at most 1 GiB of memory and a few seconds of work.
_MAX_MEMORY_KIB = 1024 * 1024
_MAX_ITERATIONS = 16
_MAX_LANES = 16
_MAX_LOG2_N = 20
_SALT_BYTES = (16, 64)


def _argon2id() -> Any:
    """cryptography's Argon2id (>= 44), None before; imported on first use (start-up)."""
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
    except ImportError:  # pragma: no cover - depends on the installed cryptography
        return None
    return Argon2id


def argon2_available() -> bool:
    return _argon2id() is not None


def _stderr_notice(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class KeyFileUnlock:
    """Unlock with a key file (the default). ``path`` defaults to ``COMPOSESECRETS_KEY_FILE``,
    then the path recorded in the store (and pinned), then
    ``~/.config/composesecrets/<store id>.key``. A missing file is created (0600) when a store
    is initialised, and ``notice`` gets one line about it."""

    path: Path | None = None
    notice: NoticeCallback | None = None


@dataclass(frozen=True)
class EnvKeyUnlock:
    """Unlock with a base64 32-byte key: ``key`` if given, else ``COMPOSESECRETS_KEY``."""

    key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PassphraseUnlock:
    """Unlock with a passphrase: a string, a prompt callable, else ``COMPOSESECRETS_PASSPHRASE``.

    ``kdf`` sets the cost for *new* wrappings (tests use a cheap one); unlocking always uses the
    parameters recorded in the store.
    """

    passphrase: str | PassphrasePrompt | None = field(default=None, repr=False)
    kdf: KdfParams | None = None


@dataclass(frozen=True)
class AutoUnlock:
    """Pick the method the store records (or, for a new store, from the environment).

    Raw keys: ``COMPOSESECRETS_KEY`` if set, else the key file. Passphrase:
    ``COMPOSESECRETS_PASSPHRASE`` if set, else ``prompt`` (the CLI passes one on a TTY).
    """

    prompt: PassphrasePrompt | None = None
    notice: NoticeCallback | None = None


Unlock = KeyFileUnlock | EnvKeyUnlock | PassphraseUnlock | AutoUnlock


# base64 is imported where a key is read or written: listing needs no key (start-up)


def encode_key(key: bytes) -> str:
    import base64

    return base64.b64encode(key).decode("ascii")


def decode_key(text: str, *, where: str) -> bytes:
    """Decode a base64 32-byte key, raising :class:`StoreLockedError` with a fix hint."""
    import base64

    try:
        key = base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, ValueError):  # binascii.Error is a ValueError
        key = b""
    if len(key) != KEY_BYTES:
        raise StoreLockedError(
            f"{where} is not a base64-encoded 32-byte key",
            hint="generate one with: head -c 32 /dev/urandom | base64",
        )
    return key


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def read_key_file(path: Path) -> bytes:
    """Read a key file after checking that it, its directory and the directories above are
    yours and that only you can read it."""
    paths.check_private(path, directory=False)
    paths.check_key_dir(path.parent)
    paths.check_parents(path.parent)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise StoreLockedError(
            f"key file {path} does not exist",
            hint=f"restore it from your backup, or set {ENV_KEY} / {paths.ENV_KEY_FILE}",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreLockedError(f"cannot read key file {path}: {exc}") from None
    return decode_key(text, where=f"key file {path}")


def _notice_for_new_key_file(path: Path, notice: NoticeCallback | None) -> None:
    (notice or _stderr_notice)(
        f"composesecrets: created key file {path} (mode 0600); back it up, the store cannot be"
        " opened without it"
    )


def ensure_key_file(path: Path, notice: NoticeCallback | None) -> bytes:
    """Read ``path``, creating it with a fresh key first when it does not exist."""
    paths.check_parents(path.parent)
    paths.check_key_dir(path.parent)
    if not path.exists():
        key = random_key()
        if paths.write_private_file(path, (encode_key(key) + "\n").encode(), replace=False):
            _notice_for_new_key_file(path, notice)
            return key
    return read_key_file(path)


def new_kdf_spec(params: KdfParams | None) -> dict[str, Any]:
    import base64

    from .kdf import Argon2Params, ScryptParams

    salt = base64.b64encode(os.urandom(16)).decode("ascii")
    if params is None:
        params = Argon2Params() if argon2_available() else ScryptParams()
    if isinstance(params, Argon2Params):
        if not argon2_available():
            raise StoreLockedError(
                "Argon2id is not available in the installed cryptography package",
                hint="upgrade cryptography (>= 44), or use scrypt parameters",
            )
        return {
            "alg": "argon2id",
            "salt": salt,
            "memory_kib": params.memory_kib,
            "iterations": params.iterations,
            "lanes": params.lanes,
        }
    return {"alg": "scrypt", "salt": salt, "log2_n": params.log2_n, "r": params.r, "p": params.p}


def describe_kdf(spec: Mapping[str, Any] | None) -> str:
    if not spec:
        return "none (raw 256-bit key)"
    if spec.get("alg") == "argon2id":
        return (
            f"argon2id (memory {spec.get('memory_kib')} KiB, iterations "
            f"{spec.get('iterations')}, lanes {spec.get('lanes')})"
        )
    return f"scrypt (N=2**{spec.get('log2_n')}, r={spec.get('r')}, p={spec.get('p')})"


def derive_kek(passphrase: str, spec: Mapping[str, Any]) -> bytes:
    """Stretch ``passphrase`` with the recorded KDF parameters (the one costly step)."""
    if not passphrase:
        raise StoreLockedError("the passphrase is empty", hint="enter the store's passphrase")
    import base64

    secret = passphrase.encode("utf-8")
    try:
        salt = base64.b64decode(str(spec["salt"]), validate=True)
        if not _SALT_BYTES[0] <= len(salt) <= _SALT_BYTES[1]:
            raise ValueError(f"a {len(salt)}-byte salt")
        alg = spec["alg"]
        if alg == "argon2id":
            memory, iterations, lanes = (
                int(spec["memory_kib"]),
                int(spec["iterations"]),
                int(spec["lanes"]),
            )
            if not (
                1 <= lanes <= _MAX_LANES
                and 8 * lanes <= memory <= _MAX_MEMORY_KIB
                and 1 <= iterations <= _MAX_ITERATIONS
            ):
                raise ValueError("argon2id parameters out of range")
            argon2id = _argon2id()
            if argon2id is None:
                raise StoreLockedError(
                    "this store's passphrase is stretched with Argon2id, which the installed"
                    " cryptography package lacks",
                    hint="upgrade cryptography to 44 or later",
                )
            return argon2id(  # type: ignore[no-any-return]
                salt=salt, length=KEY_BYTES, iterations=iterations, lanes=lanes, memory_cost=memory
            ).derive(secret)
        if alg == "scrypt":
            log2_n, r, p = int(spec["log2_n"]), int(spec["r"]), int(spec["p"])
            if not (
                1 <= log2_n <= _MAX_LOG2_N
                and 1 <= r <= 16
                and 1 <= p <= 4
                and 128 * r * p * 2**log2_n <= _MAX_MEMORY_KIB * 1024
            ):
                raise ValueError("scrypt parameters out of range")
            from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

            return Scrypt(salt=salt, length=KEY_BYTES, n=2**log2_n, r=r, p=p).derive(secret)
        raise ValueError(f"unknown KDF {alg!r}")
    except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise StoreLockedError(
            f"the store's passphrase parameters are damaged ({exc})",
            hint="restore the store from a backup",
        ) from None


def _passphrase_from(
    source: str | PassphrasePrompt | None, environ: Mapping[str, str], *, new: bool
) -> str:
    if isinstance(source, str):
        return source
    if source is None and environ.get(ENV_PASSPHRASE):
        return environ[ENV_PASSPHRASE]
    if callable(source):
        return source(new)
    raise StoreLockedError(
        "the store is locked with a passphrase and none was given",
        hint=f"set {ENV_PASSPHRASE} or run the command on a terminal to be prompted",
    )


def _env_key(unlock: EnvKeyUnlock, environ: Mapping[str, str]) -> bytes | None:
    if unlock.key is not None:
        return decode_key(unlock.key, where="the given key")
    if environ.get(ENV_KEY):
        return decode_key(environ[ENV_KEY], where=ENV_KEY)
    return None


def key_file_path(
    unlock: KeyFileUnlock | None,
    recorded: str | None,
    environ: Mapping[str, str],
    store_id: str | None = None,
) -> Path:
    """The key file to use, always absolute: the given path, ``COMPOSESECRETS_KEY_FILE``, the
    path the (pinned) slot records, else ``<config dir>/<store id>.key``."""
    if unlock is not None and unlock.path is not None:
        return Path(unlock.path).expanduser().absolute()
    if environ.get(paths.ENV_KEY_FILE) or not recorded:
        return paths.default_key_file(environ, store_id)
    return Path(recorded)


def new_passphrase(passphrase: str) -> str:
    if len(passphrase) < PASSPHRASE_MIN:
        raise InputError(
            f"the new passphrase has {len(passphrase)} characters: use at least"
            f" {PASSPHRASE_MIN} characters",
            hint="a few random words make a long passphrase that is easy to type",
        )
    return passphrase


def _new_env_key(unlock: EnvKeyUnlock, environ: Mapping[str, str], *, rotate: bool) -> bytes:
    if unlock.key is not None:
        return decode_key(unlock.key, where="the given key")
    if environ.get(ENV_NEW_KEY):
        return decode_key(environ[ENV_NEW_KEY], where=ENV_NEW_KEY)
    if not rotate and environ.get(ENV_KEY):
        return decode_key(environ[ENV_KEY], where=ENV_KEY)
    raise InputError(
        f"set {ENV_NEW_KEY} to the new key first: it must be saved before the store uses it",
        hint="make one with `composesecrets store new-key`, save it (e.g. in your CI secret"
        f" settings), then run: {ENV_NEW_KEY}=<new key> composesecrets store "
        + ("rotate-key" if rotate else "change-unlock env"),
    )


def kek_for_existing(
    unlock: Unlock,
    method: str,
    kdf: Mapping[str, Any] | None,
    recorded_key_file: str | None,
    environ: Mapping[str, str],
    store_id: str | None = None,
) -> Kek:
    """Obtain the KEK that should open a store whose key slot records ``method``."""
    from .kdf import Kek

    raw = method in ("keyfile", "env")
    if isinstance(unlock, AutoUnlock):
        if raw and environ.get(ENV_PASSPHRASE) and not environ.get(ENV_KEY):
            # The user configured a passphrase; a slot that says otherwise was rewritten.
            raise IntegrityError(
                f"{ENV_PASSPHRASE} is set, but the store's key slot says it is unlocked by a"
                f" {'key file' if method == 'keyfile' else 'key'}: refusing a slot that disagrees"
                " with what you configured",
                hint=f"restore the store from a backup, or unset {ENV_PASSPHRASE} if this store"
                " really uses a key",
            )
        if raw:
            key = _env_key(EnvKeyUnlock(), environ)
            if key is not None:
                return Kek(key, "env")
            if method == "env" and not recorded_key_file:
                raise StoreLockedError(
                    f"the store is unlocked by a key in {ENV_KEY}, which is not set",
                    hint=f"export {ENV_KEY}=<base64 key>",
                )
            unlock = KeyFileUnlock(notice=unlock.notice)
        else:
            # The environment first, as the AutoUnlock docstring promises; then the prompt.
            unlock = PassphraseUnlock(passphrase=environ.get(ENV_PASSPHRASE) or unlock.prompt)
    if isinstance(unlock, PassphraseUnlock):
        if raw or kdf is None:
            raise StoreLockedError(
                "the store is unlocked by a key, not a passphrase",
                hint=f"unset {ENV_PASSPHRASE} and provide the key file or {ENV_KEY}",
            )
        passphrase = _passphrase_from(
            unlock.passphrase, environ if unlock.passphrase is None else {}, new=False
        )
        return Kek(derive_kek(passphrase, kdf), "passphrase", dict(kdf))
    if not raw:
        raise StoreLockedError(
            "the store is locked with a passphrase, not a key",
            hint=f"set {ENV_PASSPHRASE} or run the command on a terminal to be prompted",
        )
    if isinstance(unlock, EnvKeyUnlock):
        key = _env_key(unlock, environ)
        if key is None:
            raise StoreLockedError(f"{ENV_KEY} is not set", hint=f"export {ENV_KEY}=<base64 key>")
        return Kek(key, "env")
    path = key_file_path(unlock, recorded_key_file, environ, store_id)
    return Kek(read_key_file(path), "keyfile", key_file=path)


def new_kek(
    unlock: Unlock,
    environ: Mapping[str, str],
    *,
    purpose: Literal["init", "change", "rotate"],
    store_id: str | None = None,
) -> Kek:
    """Obtain a KEK for a new wrapping of the root key.

    ``init``: a new store (key file created if missing; an environment key must be set).
    ``change``: switching method (a key file is reused if it exists, else a fresh key is
    returned with ``fresh``; an environment key comes from the caller or
    ``COMPOSESECRETS_NEW_KEY``, else ``COMPOSESECRETS_KEY``).
    ``rotate``: a fresh key file key (``fresh``), or ``COMPOSESECRETS_NEW_KEY``.
    """
    from .kdf import Kek

    if isinstance(unlock, AutoUnlock):
        if purpose != "init":
            raise ValueError("AutoUnlock can only initialise a store")
        if environ.get(ENV_KEY):
            unlock = EnvKeyUnlock()
        elif environ.get(ENV_PASSPHRASE):
            unlock = PassphraseUnlock()
        else:
            unlock = KeyFileUnlock(notice=unlock.notice)
    if isinstance(unlock, PassphraseUnlock):
        passphrase = new_passphrase(
            _passphrase_from(
                unlock.passphrase, environ if unlock.passphrase is None else {}, new=True
            )
        )
        spec = new_kdf_spec(unlock.kdf)
        return Kek(derive_kek(passphrase, spec), "passphrase", spec)
    if isinstance(unlock, EnvKeyUnlock):
        if purpose != "init":
            return Kek(_new_env_key(unlock, environ, rotate=purpose == "rotate"), "env")
        found = _env_key(unlock, environ)
        if found is not None:
            return Kek(found, "env")
        raise StoreLockedError(
            f"{ENV_KEY} is not set", hint="generate one with: composesecrets store new-key"
        )
    path = key_file_path(unlock, None, environ, store_id)
    if purpose == "init":
        return Kek(ensure_key_file(path, unlock.notice), "keyfile", key_file=path)
    if purpose == "change" and path.exists():
        return Kek(read_key_file(path), "keyfile", key_file=path)
    return Kek(random_key(), "keyfile", key_file=path, fresh=True)
