"""Load a compose document through the real loader, for the unit tests of the backends'
translations (imported as ``compose_helpers``: pytest puts this directory on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from composesecrets.compose.project import load_project, read_env_files
from composesecrets.model import Stack

_TRANSLATION_CHECKED = frozenset(("env-file", "undefined-dependency"))


def load_stack(tmp_path: Path, doc: dict[str, Any], stack: str = "st") -> Stack:
    """Write ``doc`` to tmp_path/compose.yml and load it as stack ``stack``; it must be valid."""
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    project = load_project(["compose.yml"], environ={}, cwd=tmp_path, stack_name=stack)
    # The loader refuses these too now; tolerated here so that the translations' own
    # defensive checks stay tested.
    errors = [d for d in project.errors if d.rule not in _TRANSLATION_CHECKED]
    assert project.stack is not None and not errors, errors
    return read_env_files(project.stack)
