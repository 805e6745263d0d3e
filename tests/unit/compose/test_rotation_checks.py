"""The rotation labels' strict rules (issue 11): ``rotate-label`` and, for the Swarm
backend, the ``rotate-in-place-swarm`` warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from composesecrets.compose import rotation


@dataclass
class Ctx:
    """The part of checks.CheckContext that rotation.check uses."""

    services: dict[str, Any]
    backend: str | None = None
    found: list[tuple[tuple[str | int, ...], str, str, str]] = field(default_factory=list)

    @property
    def stack(self) -> Any:
        return SimpleNamespace(config={"services": self.services})

    @property
    def options(self) -> Any:
        return SimpleNamespace(backend=self.backend)

    def add(self, path: Any, severity: str, rule: str, message: str, *, key: bool = False) -> None:
        self.found.append((tuple(path), severity, rule, message))


def run(labels: Any, backend: str | None = None, **extra: Any) -> list[tuple[Any, ...]]:
    ctx = Ctx({"web": {"image": "busybox", "labels": labels, **extra}}, backend)
    rotation.check(ctx)  # type: ignore[arg-type]
    return ctx.found


def test_valid_labels_pass_on_the_engine() -> None:
    labels = {"io.composesecrets.rotate": "in-place", "io.composesecrets.reload-signal": "HUP"}
    assert run(labels) == []
    assert run(labels, "engine") == []
    assert run(["io.composesecrets.rotate=in-place", "io.composesecrets.reload-signal=1"]) == []


def test_swarm_backend_warns_on_the_label() -> None:
    ((path, severity, rule, message),) = run({"io.composesecrets.rotate": "in-place"}, "swarm")
    assert (path, severity, rule) == (
        ("services", "web", "labels", "io.composesecrets.rotate"),
        "warning",
        "rotate-in-place-swarm",
    )
    assert "immutable" in message and "rolls" in message


@pytest.mark.parametrize(
    ("labels", "severity", "needle"),
    [
        ({"io.composesecrets.rotate": "always"}, "error", "is not known"),
        (["io.composesecrets.rotate=in-place", "io.composesecrets.reload-signal=SIGFOO"],
         "error", "is not a signal"),
        ({"io.composesecrets.reload-signal": "SIGHUP"}, "warning", "no effect without"),
    ],
)  # fmt: skip
def test_wrong_labels(labels: Any, severity: str, needle: str) -> None:
    ((_, found_severity, rule, message),) = run(labels)
    assert (found_severity, rule) == (severity, "rotate-label")
    assert needle in message


def test_deploy_labels_are_the_wrong_place() -> None:
    found = run({}, deploy={"labels": {"io.composesecrets.rotate": "in-place"}})
    ((path, severity, rule, _),) = found
    assert path == ("services", "web", "deploy", "labels", "io.composesecrets.rotate")
    assert (severity, rule) == ("error", "rotate-label")
