"""What a backend does not apply of a compose file, known before anything changes.

Each translation (:mod:`.engine.translate`, :mod:`.swarm.translate`, their ``networks``
modules) words every compose key it does not apply as an :class:`Unapplied` warning (a
``str``, so that it prints as the warning it is) that also carries the key and whether
leaving it out changes what runs. ``stack deploy`` refuses a plan with such a key unless
``--allow-unapplied``; ``validate --backend`` reports the same list through
:func:`unapplied_keys` (the translation alone: no Docker, no store).

A key is *harmless* when the containers that run are the same without it on that backend
(naming, documentation, scheduling hints a single engine has no use for, a precedence
rule); every other unapplied key — ``build``, ``links``, ``network_mode``, a device map on
Swarm, an unknown key — changes what runs.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["HARMLESS", "Unapplied", "base_key", "is_harmless", "unapplied_keys"]

# Per backend: unapplied keys (as :func:`base_key` gives them) that do not change what runs.
HARMLESS: dict[str, frozenset[str]] = {
    "engine": frozenset(
        (
            "container_name",
            "expose",
            "credential_spec",
            "isolation",
            "restart",
            "deploy.mode",
            "deploy.update_config",
            "deploy.rollback_config",
            "deploy.placement",
            "deploy.endpoint_mode",
            "deploy.labels",
            "deploy.restart_policy.delay",
            "deploy.restart_policy.window",
            "deploy.restart_policy.max_attempts",
            "deploy.resources.reservations",
            "healthcheck.start_interval",
            "volumes.consistency",
            "volumes option",
            "networks.driver",
        )
    ),
    "swarm": frozenset(
        (
            "container_name",
            "credential_spec",
            "isolation",
            "depends_on",
            "expose",
            "restart",
            "healthcheck.start_interval",
            "volumes.consistency",
        )
    ),
}

_INDEX = re.compile(r"\[\d+\]")
_TOP = re.compile(r"[A-Za-z0-9_-]+")


def base_key(key: str) -> str:
    """``volumes[0].consistency`` -> ``volumes.consistency``; ``networks.front.ipam`` keeps
    its network key (a reader wants to know which)."""
    return _INDEX.sub("", key)


def is_harmless(backend: str, key: str) -> bool:
    key = base_key(key)
    for prefix in HARMLESS.get(backend, frozenset()):
        if key == prefix or key.startswith((prefix + ".", prefix + " ")):
            return True
    return False


class Unapplied(str):
    """One warning about a compose key the backend does not apply (the text is the warning)."""

    key: str
    service: str | None
    changes_run: bool
    path: tuple[str, ...]  # where it is in the compose file (for validate's FILE:LINE:COL)

    def __new__(
        cls,
        text: str,
        *,
        backend: str,
        key: str,
        service: str | None = None,
        path: tuple[str, ...] = (),
    ) -> Unapplied:
        self = super().__new__(cls, text)
        self.key = key
        self.service = service
        self.changes_run = not is_harmless(backend, key)
        top = _TOP.match(key)
        where = ("services", service) if service else ()
        self.path = path or where + ((top.group(0),) if top else ())
        return self

    @property
    def subject(self) -> str:
        """``service "web": build`` / ``network "front": ipam``: what the refusal names."""
        return f'service "{self.service}": {self.key}' if self.service else self.key


def blocking(warnings: Collection[str]) -> list[Unapplied]:
    """The warnings that name an unapplied key which changes what runs."""
    return [w for w in warnings if isinstance(w, Unapplied) and w.changes_run]


def unapplied_keys(stack: object, backend: str) -> list[Unapplied]:
    """The unapplied keys of ``stack`` (a :class:`composesecrets.model.Stack`) on ``backend``:
    the backend's plan translation, without Docker. Raises what the translation raises
    (:class:`InvalidComposeError` for what the backend cannot run)."""
    from composesecrets.backends import DeployRequest
    from composesecrets.model import Stack

    if not isinstance(stack, Stack):
        raise TypeError("unapplied_keys takes a model.Stack")
    request = DeployRequest(stack.stack_name or "stack", stack)
    if backend == "swarm":
        from composesecrets.backends.swarm.plan import make_plan as swarm_plan

        plan_warnings = swarm_plan(request).warnings
    else:
        from composesecrets.backends.engine.plan import make_plan as engine_plan

        plan_warnings = engine_plan(request).warnings
    return [w for w in plan_warnings if isinstance(w, Unapplied)]
