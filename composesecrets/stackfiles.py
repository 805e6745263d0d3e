"""The files a stack's services get (secrets and configs), resolved against the store.

Secrets and configs travel the same way: a ``file:`` definition is imported into the
encrypted store as ``<STACK>_<key>`` (or its ``name:``; a changed content becomes a new
version), an ``external`` one must already be in the store, and each service reference
becomes a :class:`SecretFile` with the value in memory. Configs are marked in the store with
the label ``io.composesecrets.kind=config`` (secret and config names share the store's one
namespace: a stack whose secret and config would get the same store name is refused).

:func:`preview` answers the same question without changing the store (``--dry-run``): which
version each reference would get, and whether it would be new.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from composesecrets import model
from composesecrets.backends import Progress, SecretFile, ServiceSecrets
from composesecrets.docker_rules import LABEL_KIND, LABEL_STACK
from composesecrets.errors import InvalidComposeError, NotFoundError

if TYPE_CHECKING:  # the store is imported by the functions that use it (start-up)
    from composesecrets.store import Store, Usage

__all__ = ["Planned", "check_external", "check_names", "import_files", "preview", "used"]

Values = dict[str, tuple[bytes, int]]  # store name -> (value, version)


def used(stack: model.Stack) -> list[model.SecretDef]:
    """The definitions some service references (secrets first, then configs)."""
    refs = [ref for svc in stack.services.values() for ref in svc.files()]
    keys = {(ref.kind, ref.source) for ref in refs}
    defs = list(stack.secrets.values()) + list(stack.configs.values())
    return [d for d in defs if (d.kind, d.key) in keys]


def check_names(stack: model.Stack) -> None:
    """Refuse a secret and a config that would share a name in the store."""
    secrets = {d.name: d.key for d in stack.secrets.values()}
    for definition in stack.configs.values():
        if definition.name in secrets and not definition.external:
            raise InvalidComposeError(
                f'config "{definition.key}" and secret "{secrets[definition.name]}" would both '
                f"be stored as {definition.name}; give one of them another name: "
                "(composesecrets keeps configs in the secret store)"
            )


def check_external(store: Store | None, definitions: Iterable[model.SecretDef]) -> None:
    missing = []
    for definition in definitions:
        if not definition.external:
            continue
        try:
            if store is None:
                raise NotFoundError(definition.name)
            store.inspect(definition.name)
        except NotFoundError:
            kind = "config " if definition.kind == model.CONFIG else ""
            missing.append(f"{kind}{definition.name}")
    if missing:
        names = ", ".join(sorted(missing))
        raise NotFoundError(
            f"external secret(s) not in the store: {names}; nothing was deployed",
            hint="create them first: composesecrets secret create NAME FILE",
        )


def _labels(definition: model.SecretDef, stack_name: str) -> dict[str, str]:
    labels = {**definition.labels, LABEL_STACK: stack_name}
    if definition.kind == model.CONFIG:
        labels[LABEL_KIND] = model.CONFIG
    return labels


def import_files(
    store: Store,
    definitions: Iterable[model.SecretDef],
    stack_name: str,
    progress: Progress,
    values: Values,
) -> list[str]:
    """Import each ``file:`` definition; a changed content becomes a new version. The new
    secrets are created in one store transaction (one commit for a whole new stack).

    ``values`` collects store name -> (value, version) for the definitions handled here."""
    from composesecrets.store import read_value

    changed = []
    new: list[tuple[model.SecretDef, bytes]] = []
    for definition in definitions:
        if definition.external or definition.file is None:
            continue
        value = read_value(definition.file)
        try:
            version = store.inspect(definition.name).info.version
        except NotFoundError:
            new.append((definition, value))
            continue
        current = store.get(definition.name, version, audit=False)
        if hmac.compare_digest(current, value):
            values[definition.name] = (current, version)
        else:
            progress(definition.name, f"new {definition.kind} version")
            values[definition.name] = (value, store.rotate(definition.name, value).version)
            changed.append(definition.name)
    for definition, _value in new:
        progress(definition.name, f"importing {definition.kind}")
    created = store.import_many((d.name, v, _labels(d, stack_name)) for d, v in new)
    for (definition, value), info in zip(new, created, strict=True):
        values[definition.name] = (value, info.version)
        changed.append(definition.name)
    return changed


def service_files(
    store: Store, stack: model.Stack, values: Values
) -> tuple[dict[str, ServiceSecrets], list[Usage]]:
    """Each service's files (values read once per store secret) and the usage records."""
    from composesecrets.store import Usage

    out: dict[str, ServiceSecrets] = {}
    usages: list[Usage] = []
    digests: dict[str, str] = {}
    for name, service in stack.services.items():
        files, versions, marks = [], [], []
        for ref in service.files():
            store_name = stack.definition(ref).name
            if store_name not in values or store_name not in digests:
                details = store.inspect(store_name)
                version = values[store_name][1] if store_name in values else details.info.version
                if store_name not in values:
                    values[store_name] = (store.get(store_name, version, audit=False), version)
                digests[store_name] = next(
                    v.digest for v in details.versions if v.version == version
                )
            value, version = values[store_name]
            files.append(_file(ref, value))
            versions.append((store_name, version))
            marks.append(digests[store_name])
            usages.append(Usage(store_name, name, version))
        out[name] = ServiceSecrets(tuple(files), tuple(versions), tuple(marks))
    return out, usages


def _file(ref: model.SecretRef, value: bytes) -> SecretFile:
    return SecretFile(ref.source, ref.target, int(ref.uid), int(ref.gid), ref.mode, value, ref.kind)


@dataclass(frozen=True)
class Planned:
    """What one reference would get (``--dry-run``)."""

    service: str
    kind: str
    store_name: str
    version: int
    new: bool  # a version the store does not hold yet (would be imported)
    target: str

    def text(self) -> str:
        mark = " (new)" if self.new else ""
        return f"{self.kind} {self.store_name}@{self.version}{mark} -> {self.target}"


def preview(
    store: Store | None, stack: model.Stack, definitions: Iterable[model.SecretDef]
) -> tuple[dict[str, ServiceSecrets], list[Planned]]:
    """What :func:`import_files` and :func:`service_files` would give, the store unchanged:
    a file equal to the current version keeps it, another content would be the next version.
    Values are read (to compare) but stay in memory; a version that does not exist yet gets
    no digest (its service would change anyway)."""
    from composesecrets.store import read_value

    known: dict[str, tuple[bytes, int, str, bool]] = {}  # name -> (value, version, digest, new)
    for definition in definitions:
        current: tuple[bytes, int, str] | None = None
        if store is not None:
            try:
                details = store.inspect(definition.name)
            except NotFoundError:
                details = None
            if details is not None:
                version = details.info.version
                digest = next(v.digest for v in details.versions if v.version == version)
                current = (store.get(definition.name, version, audit=False), version, digest)
        missing = definition.file is not None and not Path(definition.file).exists()
        if definition.external or definition.file is None or (missing and current is not None):
            # a missing file with the value in the store: deploy uses the stored version
            if current is not None:
                known[definition.name] = (*current, False)
            continue
        value = read_value(Path(definition.file))
        if current is not None and hmac.compare_digest(current[0], value):
            known[definition.name] = (*current, False)
        else:
            version = current[1] + 1 if current is not None else 1
            known[definition.name] = (value, version, "", True)
    out: dict[str, ServiceSecrets] = {}
    planned: list[Planned] = []
    for name, service in stack.services.items():
        files, versions, marks = [], [], []
        for ref in service.files():
            store_name = stack.definition(ref).name
            value, version, digest, new = known[store_name]
            files.append(_file(ref, value))
            versions.append((store_name, version))
            marks.append(digest)
            planned.append(Planned(name, ref.kind, store_name, version, new, ref.target))
        out[name] = ServiceSecrets(tuple(files), tuple(versions), tuple(marks))
    return out, planned
