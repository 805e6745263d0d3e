"""The supported keys: README's table is the one the backends' translations generate, and
over the real-world-like files in tests/corpus each key used has the status the deploy plan
gives it on each backend (applied, warned, refused)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from composesecrets.backends import keytable
from composesecrets.backends.unapplied import unapplied_keys
from composesecrets.compose.project import load_project
from composesecrets.errors import ComposeSecretsError, InvalidComposeError

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.yml"))


def _script() -> object:
    spec = importlib.util.spec_from_file_location("supported_keys", ROOT / "scripts" /
                                                  "supported_keys.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_the_generated_one() -> None:
    script = _script()
    readme = (ROOT / "README.md").read_text()
    assert script.current(readme) == script.generated()  # type: ignore[attr-defined]
    assert script.main(["--check"]) == 0  # type: ignore[attr-defined]


def test_corpus_uses_keys_and_each_backend_has_a_status() -> None:
    usage = keytable.corpus_usage(CORPUS)
    assert usage["image"] > 100 and usage["secrets"] > 100 and usage["configs"] >= 1
    listing = {
        key: {backend: keytable.status(backend, key)[0] for backend in keytable.BACKEND_NAMES}
        for key in usage
    }
    assert listing["configs"] == {"engine": "applied", "swarm": "applied"}
    assert listing["build"] == {"engine": "refused", "swarm": "refused"}
    for statuses in listing.values():
        assert set(statuses.values()) <= {"applied", "warned", "refused"}


@pytest.mark.parametrize("backend", keytable.BACKEND_NAMES)
def test_corpus_statuses_are_what_the_plan_does(backend: str) -> None:
    """For each corpus file that loads, the plan's unapplied keys are exactly the used keys
    the table lists as not applied (keys applied in part are warned sub-key by sub-key)."""
    checked = 0
    for path in CORPUS:
        try:
            project = load_project([str(path)], environ={}, cwd=path.parent, stack_name="st",
                                   secret_files="optional")  # fmt: skip
        except ComposeSecretsError:
            continue  # unreadable input (e.g. an alias bomb)
        if project.errors or project.stack is None:
            continue
        try:
            found = unapplied_keys(project.stack, backend)
        except InvalidComposeError:
            continue
        for name, service in project.stack.services.items():
            for key in service.config:
                if str(key).startswith("x-") or key in keytable.PARTLY:
                    continue
                state, _ = keytable.status(backend, str(key))
                warned = [w for w in found if w.service == name and w.key == key]
                if state == "applied":
                    assert not warned, (path.name, key)
                else:
                    assert len(warned) == 1, (path.name, key)
                    assert warned[0].changes_run is (state == "refused")
                checked += 1
    assert checked > 100
