"""The typed, normalised stack: what every later stage (store, backends) works from.

Short and long secret syntax become one :class:`SecretRef` with Docker's defaults filled
in: target under ``/run/secrets/`` (default: the source key), uid and gid ``"0"``, mode
0o444. Top-level secrets become :class:`SecretDef` with an absolute ``file`` resolved
against the directory of the first compose file, or ``external`` with its name.

``configs`` take the same two classes (``kind="config"``): a service's reference has the
target ``/<source key>`` by default (a relative target is taken from ``/``, as Docker does),
uid/gid "0" and mode 0o444; a top-level config is stored, like a secret, as
``<stack>_<key>`` (or its ``name:``) in the encrypted store.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composesecrets.docker_rules import DEFAULT_GID, DEFAULT_MODE, DEFAULT_UID, SECRETS_DIR

__all__ = [
    "CONFIG",
    "DEFAULT_GID",
    "DEFAULT_MODE",
    "DEFAULT_UID",
    "SECRET",
    "SECRETS_DIR",
    "SecretDef",
    "SecretFile",
    "SecretRef",
    "Service",
    "Stack",
    "build",
]


SECRET = "secret"
CONFIG = "config"


@dataclass(frozen=True)
class SecretRef:
    """A service's use of a secret (or of a config: ``kind``), normalised."""

    source: str
    target: str  # absolute path inside the container
    uid: str
    gid: str
    mode: int
    index: int  # position in the service's ``secrets:`` (``configs:``) list
    kind: str = SECRET

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "uid": self.uid,
            "gid": self.gid,
            "mode": self.mode,
        }


@dataclass(frozen=True)
class SecretDef:
    """A top-level secret (or config: ``kind``) definition."""

    key: str
    name: str  # the name it has in the store / on the engine
    file: Path | None  # absolute; None for external secrets
    external: bool
    labels: Mapping[str, str]
    kind: str = SECRET

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.external:
            out["external"] = True
        elif self.file is not None:
            out["file"] = str(self.file)
        if self.labels:
            out["labels"] = dict(self.labels)
        return out


@dataclass(frozen=True)
class SecretFile:
    """One secret file to deliver into a service's containers: a :class:`SecretRef` with its
    value from the store (memory only; never printed, logged or written outside a tmpfs)."""

    source: str
    target: str  # absolute path in the container
    uid: int
    gid: int
    mode: int
    value: bytes
    kind: str = SECRET  # or CONFIG: delivered the same way, a Swarm config on Swarm

    def __repr__(self) -> str:  # never show the value
        return (
            f"SecretFile({self.kind} {self.source!r} -> {self.target!r}, "
            f"{self.uid}:{self.gid} {self.mode:o})"
        )


@dataclass(frozen=True)
class Service:
    name: str
    secrets: tuple[SecretRef, ...]
    config: Mapping[str, Any]
    # the variables of the service's ``env_file`` files, in order (the compose loader reads
    # them for a deploy: ``compose.project.read_env_files``); backends do no file I/O
    env_from_files: Mapping[str, str] = field(default_factory=dict)
    configs: tuple[SecretRef, ...] = ()

    def files(self) -> tuple[SecretRef, ...]:
        """The secret references, then the config references: every file it gets."""
        return self.secrets + self.configs


@dataclass(frozen=True)
class Stack:
    """A whole compose project after loading, interpolation, validation and merging."""

    version: str
    working_dir: Path
    services: Mapping[str, Service]
    secrets: Mapping[str, SecretDef]
    config: Mapping[str, Any]
    stack_name: str | None = None
    configs: Mapping[str, SecretDef] = field(default_factory=dict)

    def definition(self, ref: SecretRef) -> SecretDef:
        """The top-level definition a reference uses (KeyError when it is not defined)."""
        return (self.configs if ref.kind == CONFIG else self.secrets)[ref.source]

    def to_config(self) -> dict[str, Any]:
        """The normalised configuration, as ``config`` prints it (plain dicts and lists)."""
        out: dict[str, Any] = {"version": self.version}
        for key, value in self.config.items():
            if key == "version":
                continue
            if key == "services":
                out["services"] = {
                    name: _service_config(svc, self.services.get(name))
                    for name, svc in value.items()
                }
            elif key == "secrets":
                out["secrets"] = {
                    k: {**d.to_dict(), **_extensions(value.get(k))} for k, d in self.secrets.items()
                }
            else:
                out[key] = plain(value)
        return out


def _extensions(raw: Any) -> dict[str, Any]:
    """The ``x-*`` keys of a definition, which Docker keeps in its printed config."""
    if not isinstance(raw, Mapping):
        return {}
    return {k: plain(v) for k, v in raw.items() if isinstance(k, str) and k.startswith("x-")}


def _service_config(raw: Any, service: Service | None) -> Any:
    body = plain(raw)
    if service is not None and isinstance(body, dict) and "secrets" in body:
        body["secrets"] = [ref.to_dict() for ref in service.secrets]
    if service is not None and isinstance(body, dict) and "configs" in body:
        body["configs"] = [ref.to_dict() for ref in service.configs]
    return body


def plain(value: Any) -> Any:
    """Deep copy into plain dict/list/scalars (drops position bookkeeping)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def absolute_target(target: str, kind: str = SECRET) -> str:
    """Where the engine puts a target: relative secret targets go under /run/secrets, relative
    config targets under / (path-joined)."""
    if target.startswith("/"):
        return posixpath.normpath(target)
    return posixpath.normpath(posixpath.join(SECRETS_DIR if kind == SECRET else "/", target))


def config_ref(item: Any, index: int) -> SecretRef | None:
    """Normalise one entry of a service's ``configs:`` list: target ``/<source>`` by default."""
    return secret_ref(item, index, CONFIG)


def secret_ref(item: Any, index: int, kind: str = SECRET) -> SecretRef | None:
    """Normalise one entry of a service's ``secrets:`` list (None if it is not one).

    Empty strings count as absent, as in Docker: ``uid: ""`` is uid "0", ``target: ""`` the
    source key. A long-syntax entry without ``source`` is kept with an empty source (Docker
    keeps it too; the strict check ``missing-source`` reports it).
    """
    if isinstance(item, str):
        where = absolute_target(item, kind)
        return SecretRef(item, where, DEFAULT_UID, DEFAULT_GID, DEFAULT_MODE, index, kind)
    if not isinstance(item, Mapping):
        return None
    source = item.get("source")
    source = source if isinstance(source, str) else ""
    target = item.get("target")
    target = target if isinstance(target, str) and target else source
    mode = item.get("mode")
    if not isinstance(mode, (int, float)) or isinstance(mode, bool):
        mode = DEFAULT_MODE
    return SecretRef(
        source=source,
        target=absolute_target(target, kind),
        uid=_text_or(item.get("uid"), DEFAULT_UID),
        gid=_text_or(item.get("gid"), DEFAULT_GID),
        mode=int(mode),
        index=index,
        kind=kind,
    )


def _text_or(value: Any, default: str) -> str:
    return default if value is None or value == "" else str(value)


def labels_dict(labels: Any) -> dict[str, str]:
    """Compose labels as a list of ``k=v`` or a mapping -> a dict of strings."""
    if isinstance(labels, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in labels.items()}
    out: dict[str, str] = {}
    if isinstance(labels, list):
        for item in labels:
            key, _, value = str(item).partition("=")
            out[key] = value
    return out


def secret_def(
    key: str, raw: Any, working_dir: Path, stack_name: str | None = None, kind: str = SECRET
) -> SecretDef:
    """Normalise a top-level secret (or config) definition."""
    body: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    external_raw = body.get("external")
    external = bool(external_raw) if not isinstance(external_raw, Mapping) else True
    name = body.get("name")
    if isinstance(external_raw, Mapping) and isinstance(external_raw.get("name"), str):
        name = name or external_raw["name"]
    if not isinstance(name, str) or not name:
        name = key if external or not stack_name else f"{stack_name}_{key}"
    file: Path | None = None
    if not external and not body.get("driver"):
        # Like Docker: joined onto the working directory, no '~' expansion, no existence
        # check; a definition without ``file`` resolves to the directory itself.
        raw_file = body.get("file")
        relative = raw_file if isinstance(raw_file, str) else ""
        file = Path(posixpath.normpath(posixpath.join(str(working_dir), relative)))
    return SecretDef(key, name, file, external, labels_dict(body.get("labels")), kind)


def _definitions(
    raw: Any, working_dir: Path, stack_name: str | None, kind: str
) -> dict[str, SecretDef]:
    return {
        key: secret_def(key, body, working_dir, stack_name, kind)
        for key, body in (raw.items() if isinstance(raw, Mapping) else [])
    }


def _refs(body: Any, section: str, kind: str) -> tuple[SecretRef, ...]:
    items = body.get(section) if isinstance(body, Mapping) else None
    refs = (secret_ref(item, index, kind) for index, item in enumerate(_list(items)))
    return tuple(ref for ref in refs if ref is not None)


def _list(items: Any) -> list[Any]:
    return items if isinstance(items, list) else []


def build(
    config: Mapping[str, Any], version: str, working_dir: Path, stack_name: str | None = None
) -> Stack:
    """Build the normalised stack from a merged, schema-valid configuration."""
    secrets = _definitions(config.get("secrets") or {}, working_dir, stack_name, SECRET)
    configs = _definitions(config.get("configs") or {}, working_dir, stack_name, CONFIG)
    services: dict[str, Service] = {}
    services_raw = config.get("services") or {}
    if isinstance(services_raw, Mapping):
        for name, body in services_raw.items():
            services[name] = Service(
                name,
                _refs(body, "secrets", SECRET),
                body if isinstance(body, Mapping) else {},
                configs=_refs(body, "configs", CONFIG),
            )
    return Stack(version, working_dir, services, secrets, config, stack_name, configs)
