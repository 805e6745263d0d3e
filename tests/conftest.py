"""Root pytest configuration: kept deliberately small.

Markers (`integration`, `oracle`) are declared in pyproject.toml; the Docker Engine
fixtures live in tests/integration/conftest.py so that unit tests never import the
Docker SDK.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """Absolute path of the repository checkout."""
    return REPO_ROOT
