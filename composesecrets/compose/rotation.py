"""Strict checks of the in-place rotation labels (issue 11).

``io.composesecrets.rotate: in-place`` and ``io.composesecrets.reload-signal`` belong under a
service's ``labels:`` (container labels, what the engine backend reads). Rules:
``rotate-label`` (an unknown value, a name that is not a signal, or the label where the
engine does not read it) and ``rotate-in-place-swarm`` (*warning*, ``--backend swarm``: Swarm
secrets are immutable, a new version rolls the service's tasks instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from composesecrets.docker_rules import (
    LABEL_RELOAD_SIGNAL,
    LABEL_ROTATE,
    ROTATE_IN_PLACE,
    is_signal_name,
)

if TYPE_CHECKING:
    from composesecrets.compose.checks import CheckContext

__all__ = ["check"]


def _labels(value: Any) -> dict[str, tuple[str | int, str]]:
    """label key -> (the path element under ``labels``, the value), from a map or a list."""
    out: dict[str, tuple[str | int, str]] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            out[str(key)] = (str(key), "" if item is None else str(item))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            key, _, text = str(item).partition("=")
            out[key] = (index, text)
    return out


def check(ctx: CheckContext) -> None:
    backend = ctx.options.backend
    services = ctx.stack.config.get("services") or {}
    for name, body in services.items():
        if not isinstance(body, Mapping):
            continue
        labels = _labels(body.get("labels"))
        base = ("services", name, "labels")
        rotate = labels.get(LABEL_ROTATE)
        if rotate is not None and rotate[1] != ROTATE_IN_PLACE:
            ctx.add(
                (*base, rotate[0]),
                "error",
                "rotate-label",
                f'{LABEL_ROTATE}: "{rotate[1]}" is not known; the one value is "{ROTATE_IN_PLACE}"',
            )
        signal = labels.get(LABEL_RELOAD_SIGNAL)
        if signal is not None and not is_signal_name(signal[1]):
            ctx.add(
                (*base, signal[0]),
                "error",
                "rotate-label",
                f'{LABEL_RELOAD_SIGNAL}: "{signal[1]}" is not a signal (e.g. SIGHUP, SIGUSR1)',
            )
        elif signal is not None and rotate is None:
            ctx.add(
                (*base, signal[0]),
                "warning",
                "rotate-label",
                f"{LABEL_RELOAD_SIGNAL} has no effect without {LABEL_ROTATE}: {ROTATE_IN_PLACE}",
            )
        deploy = body.get("deploy")
        deploy_labels = _labels(deploy.get("labels")) if isinstance(deploy, Mapping) else {}
        for key in (LABEL_ROTATE, LABEL_RELOAD_SIGNAL):
            if key in deploy_labels:
                ctx.add(
                    ("services", name, "deploy", "labels", deploy_labels[key][0]),
                    "error",
                    "rotate-label",
                    f"{key} belongs under the service's labels: (container labels), not "
                    "deploy.labels",
                )
        if rotate is not None and backend == "swarm":
            ctx.add(
                (*base, rotate[0]),
                "warning",
                "rotate-in-place-swarm",
                f"{LABEL_ROTATE}: {rotate[1]} is not applied on Docker Swarm: Swarm secrets are "
                "immutable, so a new secret version rolls the service's tasks (new containers) "
                "instead; the engine backend writes it into the running containers",
            )
