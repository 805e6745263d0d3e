"""Backends run a resolved stack on an engine. Each one implements :class:`Backend`.

A deploy goes through three steps, each fed by the one before:

1. ``plan = backend.plan(request)``: the backend translates the backend-neutral
   :class:`DeployRequest` (stack name, the normalised compose model, delivery) into its own
   specs, once. Pure: no Docker calls. Raises :class:`InvalidComposeError` for what this
   backend cannot run; ``plan.warnings`` names every compose key it does not apply.
2. ``backend.preflight(plan)``: refuses (before the store or the engine change) what cannot
   work: missing images, name clashes, an engine that is not a swarm manager.
3. ``backend.deploy(plan.with_secrets(secrets), progress)``: converges the engine; the secret
   and config files (values in memory only) are resolved by the caller after the preflight.
   ``backend.diff(plan.with_secrets(secrets))`` says what it would do, changing nothing.

Docker SDK errors are translated into :mod:`composesecrets.errors` classes inside the backends
(:mod:`.docker_api`) and never escape them.

The interface and its types live in :mod:`.base` and are re-exported here on first use, so
that the read-only listings (:mod:`.engine_reader`, :mod:`.listing`) import none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from composesecrets.backends.base import (
        BACKENDS,
        Backend,
        ContainerInfo,
        DeployRequest,
        DeployResult,
        Plan,
        Progress,
        RemoveResult,
        SecretFile,
        ServiceSecrets,
        get_backend,
    )

__all__ = [
    "BACKENDS",
    "Backend",
    "ContainerInfo",
    "DeployRequest",
    "DeployResult",
    "Plan",
    "Progress",
    "RemoveResult",
    "SecretFile",
    "ServiceSecrets",
    "get_backend",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from composesecrets.backends import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
