"""Where the store and key file live, and the permission and ownership rules they follow."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError, UnsafePermissionsError

DB_NAME = "store.db"
ENV_HOME = "COMPOSESECRETS_HOME"
ENV_KEY_FILE = "COMPOSESECRETS_KEY_FILE"


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def default_store_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``COMPOSESECRETS_HOME``, else ``$XDG_DATA_HOME/composesecrets``, else ``~/.local/share``."""
    env = _env(environ)
    if env.get(ENV_HOME):
        return Path(env[ENV_HOME]).expanduser()
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "composesecrets"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/composesecrets``, else ``~/.config/composesecrets``: per-store key
    files, unlock pins (:mod:`.pins`)."""
    env = _env(environ)
    xdg = env.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path(env.get("HOME") or Path.home()).expanduser()
    if not xdg:
        base = base / ".config"
    return base.absolute() / "composesecrets"


def legacy_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """The key file every store shared by default before 0.2 (still opened, never rotated)."""
    return config_dir(environ) / "master.key"


def default_key_file(environ: Mapping[str, str] | None = None, store_id: str | None = None) -> Path:
    """``COMPOSESECRETS_KEY_FILE``, else ``<config dir>/<store id>.key`` (one key per store)."""
    env = _env(environ)
    if env.get(ENV_KEY_FILE):
        return Path(env[ENV_KEY_FILE]).expanduser().absolute()
    if store_id is None:
        return legacy_key_file(env)
    return config_dir(env) / f"{store_id}.key"


def _owner_error(path: Path, st: os.stat_result, kind: str) -> UnsafePermissionsError:
    me = os.geteuid()
    return UnsafePermissionsError(
        f"refusing to use {kind} {path}: it is owned by uid {st.st_uid}, not by you (uid {me});"
        " another user could read or replace what it holds",
        hint=f"if it is yours, run: chown {me} {path}; otherwise remove it and choose a path"
        " that only you can write",
    )


def check_parents(path: Path) -> None:
    """Refuse ``path`` when a directory above it can be written by others (without the sticky
    bit, as on /tmp) or belongs to a user other than you or root: they could swap it."""
    me = os.geteuid()
    for parent in path.absolute().parents:
        try:
            st = parent.stat()
        except FileNotFoundError:
            continue
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise UnsafePermissionsError(
                f"refusing to use {path}: the directory {parent} is writable by others"
                " (mode {:04o}) without the sticky bit, so anyone could replace it".format(
                    stat.S_IMODE(st.st_mode)
                ),
                hint=f"run: chmod o-w {parent} (or chmod +t {parent}), or use another path",
            )
        if st.st_uid not in (me, 0):
            raise _owner_error(parent, st, "a path under the directory")


def check_key_dir(path: Path) -> None:
    """The directory holding a key file: yours, and writable by nobody else."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if st.st_uid != os.geteuid():
        raise _owner_error(path, st, "key directory")
    if st.st_mode & 0o022:
        raise UnsafePermissionsError(
            f"refusing to use key directory {path}: its mode {stat.S_IMODE(st.st_mode):04o}"
            " lets group or others replace the key file",
            hint=f"run: chmod go-w {path}",
        )


def check_private(path: Path, *, directory: bool) -> None:
    """Refuse ``path`` when group or others have any access to it, saying how to fix it."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if directory:
        if stat.S_ISLNK(st.st_mode):
            st = path.stat()
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{path} is not a directory", hint="point --store at a directory")
    elif not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file", hint="remove it or choose another path")
    kind = "store directory" if directory else "file"
    if st.st_uid != os.geteuid():
        raise _owner_error(path, st, kind)
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        wanted = "700" if directory else "600"
        raise UnsafePermissionsError(
            f"refusing to use {kind} {path}: its mode {mode:04o} lets group or others access it",
            hint=f"run: chmod {wanted} {path}",
        )


def ensure_private_dir(path: Path, *, create: bool) -> bool:
    """Create ``path`` (mode 0700) if asked and missing; check its mode, its owner and the
    directories above it. True when it exists."""
    check_parents(path)
    if not path.exists():
        if not create:
            return False
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    check_private(path, directory=True)
    return True


def create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600 if it does not exist yet (never loosens a mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes, *, replace: bool) -> bool:
    """Write ``data`` to ``path`` atomically with mode 0600; the parent is made 0700 if missing.

    With ``replace=False`` an existing file is left alone and False is returned (this makes
    concurrent first use safe: exactly one writer wins and everybody reads the winner's file).
    """
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
            written = True
        else:
            try:
                os.link(tmp, path)
                written = True
            except FileExistsError:
                written = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(parent)
    return written


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
