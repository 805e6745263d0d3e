"""Swarm secrets and configs for a stack: one immutable Swarm secret (Swarm config, for a
compose config) per (store secret version, uid, gid, mode) a service mounts, named
``<stack>_<key>_<suffix>``; reuse after a digest check, and pruning of the stack's Swarm
secrets and configs no service references any more.

Swarm secrets cannot change, so each secret version a service mounts becomes its own Swarm
secret: the suffix is derived from the store name, the version, the reference's
uid/gid/mode and the store's keyed digest (never from the value), so a new version gets a
new name and the service is updated to it with a rolling update. A distinct Swarm secret per
(uid, gid, mode) is needed because Swarm keys the mounted file by secret ID: one secret
mounted twice would get the last settings twice. Values go to the engine only; they are
never logged nor part of a message.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composesecrets.backends import DeployRequest, Progress, ServiceSecrets
from composesecrets.backends.docker_api import docker, parallel, translated
from composesecrets.docker_rules import (
    LABEL_DIGEST,
    LABEL_KIND,
    LABEL_NAMESPACE,
    LABEL_SECRET,
    LABEL_STACK,
    LABEL_VERSION,
    NAME_MAX,
)
from composesecrets.errors import BackendError, InternalError
from composesecrets.model import CONFIG, SECRET

__all__ = [
    "SUFFIX_LEN",
    "WantedSecret",
    "ensure_secrets",
    "planned_refs",
    "prune_secrets",
    "swarm_secret_name",
]

SUFFIX_LEN = 10

Record = Callable[[str, str], None]  # (id, name) of a Swarm secret this run created


def swarm_secret_name(
    stack: str, key: str, store_name: str, version: int, uid: int, gid: int, mode: int,
    digest: str = "", kind: str = SECRET,
) -> str:  # fmt: skip
    """``<stack>_<key>_<10 hex>``, at most 64 characters. The suffix comes from the store name,
    version, uid/gid/mode and the store's keyed digest of the content (an HMAC under the
    store's key, so a recreated store secret with other content gets another name); it
    never involves the value itself."""
    material = [store_name, version, uid, gid, mode] + ([digest] if digest else [])
    if kind != SECRET:
        material.append(kind)
    suffix = hashlib.sha256(json.dumps(material).encode()).hexdigest()[:SUFFIX_LEN]
    prefix = f"{stack}_{key}"[: NAME_MAX - SUFFIX_LEN - 1].rstrip("-_.")
    return f"{prefix}_{suffix}"


@dataclass(frozen=True)
class WantedSecret:
    """One Swarm secret the request needs."""

    key: str
    store_name: str
    version: int
    uid: int
    gid: int
    mode: int
    digest: str
    value: bytes = field(repr=False, compare=False)
    kind: str = SECRET

    def name(self, stack: str) -> str:
        return swarm_secret_name(
            stack, self.key, self.store_name, self.version, self.uid, self.gid, self.mode,
            self.digest, self.kind,
        )  # fmt: skip

    def ref(self, target: str, object_id: str, name: str) -> dict[str, Any]:
        """The ContainerSpec ``Secrets`` (``Configs``) entry mounting it at ``target``."""
        field_prefix = "Config" if self.kind == CONFIG else "Secret"
        return {
            "File": {"Name": target, "UID": str(self.uid), "GID": str(self.gid), "Mode": self.mode},
            f"{field_prefix}ID": object_id,
            f"{field_prefix}Name": name,
        }


def pairs(secrets: ServiceSecrets) -> list[tuple[WantedSecret, str]]:
    """(secret, target) of each reference of one service."""
    if not len(secrets.files) == len(secrets.versions) == len(secrets.digests):
        raise InternalError("secret files, versions and digests do not pair up")
    return [
        (
            WantedSecret(f.source, store, version, f.uid, f.gid, f.mode, digest, f.value, f.kind),
            f.target,
        )
        for f, (store, version), digest in zip(
            secrets.files, secrets.versions, secrets.digests, strict=True
        )
    ]


def _wanted(
    request: DeployRequest,
) -> tuple[dict[str, list[tuple[WantedSecret, str]]], dict[WantedSecret, None]]:
    """Per service its (object, target) pairs, and the distinct objects in order."""
    wanted: dict[str, list[tuple[WantedSecret, str]]] = {}
    unique: dict[WantedSecret, None] = {}
    for service, secrets in request.secrets.items():
        wanted[service] = pairs(secrets)
        for item, _target in wanted[service]:
            unique.setdefault(item, None)
    return wanted, unique


def _refs(
    wanted: Mapping[str, list[tuple[WantedSecret, str]]],
    resolved: Mapping[WantedSecret, tuple[str, str]],
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for service, items in wanted.items():
        refs = [item.ref(target, *resolved[item]) for item, target in items]
        out[service] = sorted(refs, key=ref_key)
    return out


def ref_key(ref: Mapping[str, Any]) -> tuple[str, str, str]:
    """Order of the references (secrets, then configs) and the name they hash with."""
    kind = CONFIG if "ConfigID" in ref else SECRET
    return kind, ref["File"]["Name"], str(ref.get("SecretName") or ref.get("ConfigName"))


def planned_refs(request: DeployRequest) -> dict[str, list[dict[str, Any]]]:
    """The references :func:`ensure_secrets` would give, without Docker (no IDs)."""
    wanted, unique = _wanted(request)
    return _refs(wanted, {item: ("", item.name(request.stack)) for item in unique})


def ensure_secrets(
    client: Any, request: DeployRequest, record: Record, progress: Progress
) -> dict[str, list[dict[str, Any]]]:
    """Create (or confirm) the Swarm secrets and configs; per service, its ContainerSpec
    references (secrets and configs: a config's entry has ``ConfigID``)."""
    wanted, unique = _wanted(request)
    label = {"label": f"{LABEL_STACK}={request.stack}"}
    with translated(f"listing secrets and configs of stack {request.stack}"):
        found = {
            SECRET: client.api.secrets(filters=label),
            CONFIG: client.api.configs(filters=label) if _any_config(unique) else [],
        }
    existing = {
        kind: {str((s.get("Spec") or {}).get("Name")): s for s in items}
        for kind, items in found.items()
    }
    jobs = [
        functools.partial(
            _secret, client, request.stack, item, existing[item.kind], record, progress
        )
        for item in unique
    ]
    resolved = dict(zip(unique, parallel(jobs), strict=True))
    return _refs(wanted, resolved)


def _any_config(items: Iterable[WantedSecret]) -> bool:
    return any(item.kind == CONFIG for item in items)


def _secret(
    client: Any,
    stack: str,
    item: WantedSecret,
    existing: Mapping[str, dict[str, Any]],
    record: Record,
    progress: Progress,
) -> tuple[str, str]:
    """(id, name) of a Swarm secret holding ``item``'s value, created if needed.

    An existing one is reused only when its digest label matches: the name and the label
    come from the store's keyed digest, so the value is never sent twice to compare."""
    name = item.name(stack)
    found = existing.get(name)
    if found is not None:
        labels = (found.get("Spec") or {}).get("Labels") or {}
        if labels.get(LABEL_DIGEST) == item.digest:
            return str(found["ID"]), name
        raise BackendError(
            f"{item.kind} {item.store_name} version {item.version}: the Swarm {item.kind} "
            f"{name} holds other data",
            hint=f"remove the stack's Swarm secrets (composesecrets stack rm {stack}) and "
            "deploy again",
        )
    progress(name, f"creating swarm {item.kind}")
    labels = {
        LABEL_NAMESPACE: stack,
        LABEL_STACK: stack,
        LABEL_SECRET: item.store_name,
        LABEL_VERSION: str(item.version),
        LABEL_DIGEST: item.digest,
    }
    objects = client.secrets
    if item.kind == CONFIG:
        labels[LABEL_KIND] = CONFIG
        objects = client.configs
    with translated(f"creating Swarm {item.kind} {name} ({item.kind} {item.store_name})"):
        created = objects.create(name=name, data=item.value, labels=labels)
    secret_id = str(created.id)
    record(secret_id, f"{item.kind}:{name}")
    return secret_id, name


def prune_secrets(client: Any, stack: str, progress: Progress, everything: bool = False) -> None:
    """Remove the stack's Swarm secrets and configs that no service of the swarm references
    (all of them with ``everything``)."""
    api = client.api
    sdk = docker()
    label = {"label": f"{LABEL_STACK}={stack}"}
    with translated(f"listing Swarm secrets and configs of stack {stack}"):
        found = [(SECRET, s) for s in api.secrets(filters=label)]
        found += [(CONFIG, c) for c in api.configs(filters=label)]
        used: set[str] = set()
        if not everything:
            for service in api.services():
                container = ((service.get("Spec") or {}).get("TaskTemplate") or {}).get(
                    "ContainerSpec"
                ) or {}
                used |= {r.get("SecretID") for r in container.get("Secrets") or []}
                used |= {r.get("ConfigID") for r in container.get("Configs") or []}

    def remove(kind: str, item: Mapping[str, Any]) -> None:
        name = str((item.get("Spec") or {}).get("Name", item["ID"]))
        progress(name, f"removing swarm {kind}")
        with (
            translated(f"removing Swarm {kind} {name}"),
            contextlib.suppress(sdk.errors.NotFound),
        ):
            remove_object(api, kind, item["ID"])

    # independent objects: removed at once (a stack's secrets are many small requests)
    parallel([functools.partial(remove, k, i) for k, i in found if i["ID"] not in used])


def remove_object(api: Any, kind: str, object_id: str) -> None:
    """Remove a Swarm secret or config by ID."""
    if kind == CONFIG:
        api.remove_config(object_id)
    else:
        api.remove_secret(object_id)
