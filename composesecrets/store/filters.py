"""``secret ls --filter`` semantics, as in Docker: ``name=`` and ``id=`` match prefixes (any of
several values), ``label=KEY`` or ``label=KEY=VALUE`` must all match."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError
from .records import SecretInfo


@dataclass(frozen=True)
class SecretFilter:
    names: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    labels: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> SecretFilter:
        """Parse ``--filter`` values such as ``name=db``, ``id=abc``, ``label=team=infra``."""
        names: list[str] = []
        ids: list[str] = []
        labels: list[tuple[str, str | None]] = []
        for spec in specs:
            key, sep, value = spec.partition("=")
            key = key.strip().lower()
            if not sep:
                raise InputError(
                    f"bad filter {spec!r}: expected KEY=VALUE",
                    hint="use name=PREFIX, id=PREFIX, label=KEY or label=KEY=VALUE",
                )
            if key == "name":
                names.append(value)
            elif key == "id":
                ids.append(value)
            elif key == "label":
                lkey, lsep, lvalue = value.partition("=")
                if not lkey:
                    raise InputError(f"bad filter {spec!r}: the label key is empty")
                labels.append((lkey, lvalue if lsep else None))
            else:
                raise InputError(
                    f"invalid filter {key!r}",
                    hint="secret filters are name=..., id=... and label=...",
                )
        return cls(tuple(names), tuple(ids), tuple(labels))

    def matches(self, info: SecretInfo) -> bool:
        if self.names and not any(info.name.startswith(n) for n in self.names):
            return False
        if self.ids and not any(info.id.startswith(i) for i in self.ids):
            return False
        for key, value in self.labels:
            if key not in info.labels:
                return False
            if value is not None and info.labels[key] != value:
                return False
        return True
