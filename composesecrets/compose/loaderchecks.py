"""Checks Docker's v3 loader makes after the JSON schema (part of Docker's own verdict).

(Not to be confused with :mod:`composesecrets.docker_rules`, which holds Docker's name
patterns, limits and defaults that every layer shares.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from composesecrets.compose.diagnostics import Diagnostic, make
from composesecrets.compose.formats import is_go_duration
from composesecrets.compose.yamlload import LocDict


def _at_least(version: str, minimum: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split("."))

    return parts(version) >= parts(minimum)


def check_file(config: LocDict, version: str, filename: str) -> list[Diagnostic]:
    """Docker's post-schema loader errors and warnings for one schema-valid file."""
    out: list[Diagnostic] = []
    for section, kind in (("secrets", "secret"), ("configs", "config")):
        defs = config.get(section)
        if not isinstance(defs, Mapping):
            continue
        for key, body in defs.items():
            if not isinstance(body, Mapping):
                continue
            out += _file_object(config, section, kind, key, body, version, filename)
    services = config.get("services")
    if isinstance(services, Mapping):
        for name, body in services.items():
            if not isinstance(body, Mapping):
                continue
            out += _durations(config, name, body, filename)
            for section in ("secrets", "configs"):
                items = body.get(section)
                for index, item in enumerate(items if isinstance(items, list) else []):
                    mode = item.get("mode") if isinstance(item, Mapping) else None
                    # Docker's decoder refuses negatives (and JSON refuses inf/NaN); larger
                    # values wrap silently, which the strict mode-range check reports.
                    if (
                        isinstance(mode, (int, float))
                        and not isinstance(mode, bool)
                        and not (0 <= mode < math.inf)
                    ):
                        out.append(
                            make(
                                config,
                                ("services", name, section, index, "mode"),
                                "error",
                                "mode-overflow",
                                f"mode {mode} is not a valid mode: Docker fails with "
                                f"\"cannot parse 'Secrets[{index}].Mode', {mode} overflows "
                                'uint"; use an octal permission such as 0440',
                                file=filename,
                            )
                        )
    return out


# Fields Docker decodes into a Go time.Duration; older schemas do not check them, the
# decoder then fails on a string time.ParseDuration refuses.
_DURATIONS = (
    ("healthcheck", "interval"),
    ("healthcheck", "timeout"),
    ("healthcheck", "start_period"),
    ("stop_grace_period",),
    ("deploy", "update_config", "delay"),
    ("deploy", "update_config", "monitor"),
    ("deploy", "rollback_config", "delay"),
    ("deploy", "rollback_config", "monitor"),
    ("deploy", "restart_policy", "delay"),
    ("deploy", "restart_policy", "window"),
)


def _durations(
    config: LocDict, name: str, body: Mapping[str, Any], filename: str
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for path in _DURATIONS:
        value: Any = body
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str) and not is_go_duration(value):
            out.append(
                make(
                    config,
                    ("services", name, *path),
                    "error",
                    "duration",
                    f'"{value}" is not a duration; write e.g. 30s, 1m30s or 1h',
                    file=filename,
                )
            )
    return out


def _file_object(
    config: LocDict,
    section: str,
    kind: str,
    key: str,
    body: Mapping[str, Any],
    version: str,
    filename: str,
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    external = body.get("external")
    path = (section, key)
    if isinstance(external, Mapping) and external.get("name"):
        if body.get("name"):
            out.append(
                make(
                    config,
                    (*path, "external", "name"),
                    "error",
                    "external-name-conflict",
                    f"{kind} {key}: {kind}.external.name and {kind}.name conflict; "
                    f"only use {kind}.name",
                    file=filename,
                )
            )
        elif _at_least(version, "3.5"):
            out.append(
                make(
                    config,
                    (*path, "external", "name"),
                    "warning",
                    "external-name-deprecated",
                    f"{kind} {key}: {kind}.external.name is deprecated in favor of {kind}.name "
                    f"(write name: {external['name']} and external: true)",
                    file=filename,
                )
            )
    elif not external and body.get("driver") and body.get("file"):
        out.append(
            make(
                config,
                (*path, "driver"),
                "error",
                "driver-and-file",
                f"{kind} {key}: {kind}.driver and {kind}.file conflict; only use {kind}.driver",
                file=filename,
            )
        )
    return out


def check_env_files(config: LocDict, working_dir: Path) -> list[Diagnostic]:
    """Each service ``env_file:`` must be a readable env file, as Docker's loader reads them
    all (``open ...: no such file or directory`` otherwise). Runs on the merged config."""
    out: list[Diagnostic] = []
    services = config.get("services")
    if not isinstance(services, Mapping):
        return out
    for name, body in services.items():
        raw = body.get("env_file") if isinstance(body, Mapping) else None
        entries = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        for index, entry in enumerate(entries):
            if not isinstance(entry, str):
                continue
            path: tuple[str | int, ...] = ("services", name, "env_file")
            if isinstance(raw, list):
                path = (*path, index)
            problem = _env_file_problem(working_dir / entry)
            if problem:
                out.append(make(config, path, "error", "env-file", problem))
    return out


def _env_file_problem(path: Path) -> str | None:
    """Docker's ``opts.ParseEnvFile`` errors for one env file, or None."""
    import stat

    try:
        info = path.stat()
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            return f"env file {path} is not a regular file"  # never open a FIFO or device
        data = path.read_bytes()
    except FileNotFoundError:
        return f"env file {path} does not exist (Docker: open {path}: no such file or directory)"
    except IsADirectoryError:
        return f"env file {path} is a directory (Docker: read {path}: is a directory)"
    except OSError as exc:
        return f"cannot read env file {path}: {exc.strerror}"
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        raw_line = raw_line.removesuffix(b"\r")
        if number == 1 and raw_line.startswith(b"\xef\xbb\xbf"):
            raw_line = raw_line[3:]
        try:
            line = raw_line.decode("utf-8").lstrip()
        except UnicodeDecodeError:
            return f"env file {path} contains invalid utf8 bytes at line {number}"
        if not line or line.startswith("#"):
            continue
        variable = line.split("=", 1)[0]
        if not variable:
            return f"env file {path}: no variable name on line {line!r}"
        if " " in variable or "\t" in variable:
            return f"env file {path}: variable {variable!r} contains whitespaces"
    return None
