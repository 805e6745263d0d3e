"""Swarm secrets for a stack: one immutable Swarm secret per (store secret version, uid, gid,
mode) a service mounts, named ``<stack>_<key>_<suffix>``; reuse after a digest check, and
pruning of the stack's Swarm secrets no service references any more.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from composesecrets.backends import DeployRequest, Progress, ServiceSecrets
from composesecrets.backends.docker_api import docker, parallel, translated
from composesecrets.docker_rules import (
    LABEL_DIGEST,
    LABEL_NAMESPACE,
    LABEL_SECRET,
    LABEL_STACK,
    LABEL_VERSION,
    NAME_MAX,
)
from composesecrets.errors import BackendError, InternalError

__all__ = ["SUFFIX_LEN", "WantedSecret", "ensure_secrets", "prune_secrets", "swarm_secret_name"]

SUFFIX_LEN = 10

Record = Callable[[str, str], None]  # (id, name) of a Swarm secret this run created


def swarm_secret_name(
    stack: str, key: str, store_name: str, version: int, uid: int, gid: int, mode: int,
    digest: str = "",
) -> str:  # fmt: skip
    """``<stack>_<key>_<10 hex>``, at most 64 characters. The suffix comes from the store name,
    version, uid/gid/mode and the store's keyed digest of the content (an HMAC under the
    store's key, so a recreated store secret with other content gets another name); it
    never involves the value itself."""
    material = [store_name, version, uid, gid, mode] + ([digest] if digest else [])
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

    def name(self, stack: str) -> str:
        return swarm_secret_name(
            stack, self.key, self.store_name, self.version, self.uid, self.gid, self.mode,
            self.digest,
        )  # fmt: skip


def pairs(secrets: ServiceSecrets) -> list[tuple[WantedSecret, str]]:
    """(secret, target) of each reference of one service."""
    if not len(secrets.files) == len(secrets.versions) == len(secrets.digests):
        raise InternalError("secret files, versions and digests do not pair up")
    return [
        (WantedSecret(f.source, store, version, f.uid, f.gid, f.mode, digest, f.value), f.target)
        for f, (store, version), digest in zip(
            secrets.files, secrets.versions, secrets.digests, strict=True
        )
    ]


def ensure_secrets(
    client: Any, request: DeployRequest, record: Record, progress: Progress
) -> dict[str, list[dict[str, Any]]]:
    """Create (or confirm) the Swarm secrets; per service, its ContainerSpec secret refs."""
    wanted: dict[str, list[tuple[WantedSecret, str]]] = {}  # service -> (secret, target)
    unique: dict[WantedSecret, None] = {}
    for service, secrets in request.secrets.items():
        wanted[service] = pairs(secrets)
        for item, _target in wanted[service]:
            unique.setdefault(item, None)
    with translated(f"listing secrets of stack {request.stack}"):
        found = client.api.secrets(filters={"label": f"{LABEL_STACK}={request.stack}"})
    existing: dict[str, dict[str, Any]] = {str((s.get("Spec") or {}).get("Name")): s for s in found}
    jobs = [
        functools.partial(_secret, client, request.stack, item, existing, record, progress)
        for item in unique
    ]
    resolved = dict(zip(unique, parallel(jobs), strict=True))
    out: dict[str, list[dict[str, Any]]] = {}
    for service, items in wanted.items():
        refs = []
        for item, target in items:
            secret_id, name = resolved[item]
            refs.append(
                {
                    "File": {
                        "Name": target,
                        "UID": str(item.uid),
                        "GID": str(item.gid),
                        "Mode": item.mode,
                    },
                    "SecretID": secret_id,
                    "SecretName": name,
                }
            )
        out[service] = sorted(refs, key=lambda r: (r["File"]["Name"], r["SecretName"]))
    return out


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
            f"secret {item.store_name} version {item.version}: the Swarm secret {name} "
            "holds other data",
            hint=f"remove the stack's Swarm secrets (composesecrets stack rm {stack}) and "
            "deploy again",
        )
    progress(name, "creating swarm secret")
    labels = {
        LABEL_NAMESPACE: stack,
        LABEL_STACK: stack,
        LABEL_SECRET: item.store_name,
        LABEL_VERSION: str(item.version),
        LABEL_DIGEST: item.digest,
    }
    with translated(f"creating Swarm secret {name} (secret {item.store_name})"):
        created = client.secrets.create(name=name, data=item.value, labels=labels)
    secret_id = str(created.id)
    record(secret_id, name)
    return secret_id, name


def prune_secrets(client: Any, stack: str, progress: Progress, everything: bool = False) -> None:
    """Remove the stack's Swarm secrets that no service of the swarm references (all of
    them with ``everything``)."""
    api = client.api
    sdk = docker()
    with translated(f"listing Swarm secrets of stack {stack}"):
        secrets = api.secrets(filters={"label": f"{LABEL_STACK}={stack}"})
        used: set[str] = set()
        if not everything:
            for service in api.services():
                container = ((service.get("Spec") or {}).get("TaskTemplate") or {}).get(
                    "ContainerSpec"
                ) or {}
                used |= {r.get("SecretID") for r in container.get("Secrets") or []}
    for secret in secrets:
        if secret["ID"] in used:
            continue
        name = str((secret.get("Spec") or {}).get("Name", secret["ID"]))
        progress(name, "removing swarm secret")
        with (
            translated(f"removing Swarm secret {name}"),
            contextlib.suppress(sdk.errors.NotFound),
        ):
            api.remove_secret(secret["ID"])
