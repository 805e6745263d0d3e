"""Merge several compose files with the override rules of ``docker stack deploy -c A -c B``.

Top-level ``networks``, ``volumes``, ``secrets`` and ``configs`` entries are replaced per key;
services are merged key by key: mappings recursively, ``secrets``/``configs`` lists by
``source``, ``volumes`` by target, ``ports`` by their full form, ``command``/``entrypoint``
replaced, other lists appended. Positions follow the value that won.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from composesecrets.compose.yamlload import LocDict, LocList

_REPLACE_LISTS = frozenset(("command", "entrypoint"))


def _source_key(item: Any) -> Any:
    if isinstance(item, str):
        return item
    return item.get("source") if isinstance(item, dict) else repr(item)


def _volume_key(item: Any) -> Any:
    if isinstance(item, str):
        parts = item.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return item.get("target") if isinstance(item, dict) else repr(item)


def _port_key(item: Any) -> Any:
    return repr(sorted(item.items())) if isinstance(item, dict) else str(item)


_KEYED_LISTS: dict[str, Callable[[Any], Any]] = {
    "secrets": _source_key,
    "configs": _source_key,
    "volumes": _volume_key,
    "ports": _port_key,
}


def merge_files(configs: list[LocDict]) -> LocDict:
    """Merge loaded files, later ones overriding earlier ones."""
    merged = configs[0]
    for override in configs[1:]:
        merged = _merge_top(merged, override)
    return merged


def _merge_top(base: LocDict, over: LocDict) -> LocDict:
    out = _copy(base)
    for key, value in over.items():
        if key == "services" and isinstance(value, LocDict) and isinstance(out.get(key), LocDict):
            services = _copy(out[key])
            for name, body in value.items():
                current = services.get(name)
                if isinstance(current, LocDict) and isinstance(body, LocDict):
                    _set(services, name, _merge_service(current, body), value, name)
                else:
                    _set(services, name, body, value, name)
            _set(out, key, services, over, key)
        elif (
            key in ("networks", "volumes", "secrets", "configs")
            and isinstance(value, LocDict)
            and isinstance(out.get(key), LocDict)
        ):
            section = _copy(out[key])
            for name, body in value.items():
                _set(section, name, body, value, name)
            _set(out, key, section, over, key)
        elif key != "version":
            _set(out, key, value, over, key)
    return out


def _merge_service(base: LocDict, over: LocDict) -> LocDict:
    out = _copy(base)
    for key, value in over.items():
        current = out.get(key)
        if isinstance(current, LocDict) and isinstance(value, LocDict):
            _set(out, key, _merge_mapping(current, value), over, key)
        elif (
            isinstance(current, LocList)
            and isinstance(value, LocList)
            and key not in _REPLACE_LISTS
        ):
            keyer = _KEYED_LISTS.get(key)
            merged = _merge_keyed(current, value, keyer) if keyer else _append(current, value)
            _set(out, key, merged, over, key)
        else:
            _set(out, key, value, over, key)
    return out


def _merge_mapping(base: LocDict, over: LocDict) -> LocDict:
    out = _copy(base)
    for key, value in over.items():
        current = out.get(key)
        if isinstance(current, LocDict) and isinstance(value, LocDict):
            _set(out, key, _merge_mapping(current, value), over, key)
        else:
            _set(out, key, value, over, key)
    return out


def _merge_keyed(base: LocList, over: LocList, keyer: Callable[[Any], Any]) -> LocList:
    entries: dict[Any, tuple[LocList, int]] = {}
    for items in (base, over):
        for index, item in enumerate(items):
            entries[keyer(item)] = (items, index)
    return _collect(over.loc, entries.values())


def _append(base: LocList, over: LocList) -> LocList:
    return _collect(base.loc, [(items, i) for items in (base, over) for i in range(len(items))])


def _collect(loc: Any, picks: Iterable[tuple[LocList, int]]) -> LocList:
    """A new list of the picked items, each with its position and substitution flag."""
    out = LocList(loc)
    for items, index in picks:
        if index in items.subst:
            out.subst.add(len(out))
        out.append(items[index])
        out.locs.append(items.locs[index])
    return out


def _copy(d: LocDict) -> LocDict:
    out = LocDict(d.loc)
    out.update(d)
    out.keylocs = dict(d.keylocs)
    out.vallocs = dict(d.vallocs)
    out.subst = set(d.subst)
    return out


def _set(target: LocDict, key: str, value: Any, source: LocDict, source_key: str) -> None:
    target[key] = value
    if source_key in source.keylocs:
        target.keylocs[key] = source.keylocs[source_key]
        target.vallocs[key] = source.vallocs[source_key]
    if source_key in source.subst:
        target.subst.add(key)
    else:
        target.subst.discard(key)
