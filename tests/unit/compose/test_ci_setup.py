"""The shipped pre-commit hook (.pre-commit-hooks.yaml) passes on a fresh clone of this
repository (secret files are gitignored and absent) and still fails on each strict rule's
golden file (tests/unit/compose/strict/)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_checks import ERRORS, WARNINGS, stage  # type: ignore[import-not-found]  # same directory, as pytest imports it

ROOT = Path(__file__).resolve().parents[3]
(HOOK,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def hook_argv(files: list[str]) -> list[str]:
    """The hook's entry as pre-commit runs it, with this interpreter's composesecrets."""
    entry = shlex.split(HOOK["entry"])
    assert entry[0] == "composesecrets"
    return [sys.executable, "-m", "composesecrets", *entry[1:], *HOOK.get("args", []), *files]


def run_hook(cwd: Path, files: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    assert HOOK["pass_filenames"] is True
    return subprocess.run(
        [*hook_argv(files), *extra],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tracked_files() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a fresh clone has")
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    return [name for name in out.decode().split("\0") if name]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A git work tree holding exactly the tracked files of this checkout."""
    clone = tmp_path_factory.mktemp("clone")
    files = tracked_files()
    for name in files:
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the work tree
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    return clone, files


def test_hook_passes_on_a_fresh_clone(fresh_clone: tuple[Path, Any]) -> None:
    clone, files = fresh_clone
    pattern = re.compile(HOOK["files"])
    matched = [f for f in files if pattern.search(f) and (clone / f).is_file()]
    assert "examples/wordpress/compose.yaml" in matched
    # the secret files of the examples are absent, as in any fresh clone
    assert not (clone / "examples/wordpress/db_password.txt").exists()
    result = run_hook(clone, matched)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error:" not in result.stdout
    found = json.loads(run_hook(clone, matched, "--format", "json").stdout)
    assert {d["rule"] for d in found} <= {"file-not-checked", "same-source-settings"}, found
    assert "file-not-checked" in {d["rule"] for d in found}


def test_hook_reports_each_strict_rule(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    rules = sorted(ERRORS | WARNINGS)
    if os.geteuid() == 0:
        rules.remove("file-unreadable")  # root reads a mode-000 file
    names = []
    for rule in rules:
        (tmp_path / rule).mkdir()
        names.append(f"{rule}/{stage(tmp_path / rule, rule).name}")
    found = json.loads(run_hook(tmp_path, names, "--format", "json").stdout)
    for rule, name in zip(rules, names, strict=True):
        mine = [d for d in found if d["file"] == name]
        assert rule in {d["rule"] for d in mine}, (rule, mine)
        severities = {d["severity"] for d in mine}
        assert ("error" in severities) is (rule in ERRORS), (rule, mine)
    # every error file fails the hook on its own; warnings alone do not
    for rule in ("file-missing", "mode-decimal", "undefined-dependency"):
        assert run_hook(tmp_path, [f"{rule}/{rule}.yml"]).returncode == 1
    result = run_hook(tmp_path, [f"{rule}/{rule}.yml" for rule in sorted(WARNINGS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning:" in result.stdout


WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"


def test_readme_shows_the_workflow_file_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```yaml\n{WORKFLOW.read_text()}```\n" in readme


def test_workflow_validate_steps_pass_on_a_fresh_clone(
    fresh_clone: tuple[Path, Any], tmp_path: Path
) -> None:
    clone, _ = fresh_clone
    shim = tmp_path / "bin"
    shim.mkdir()
    script = shim / "composesecrets"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m composesecrets "$@"\n')
    script.chmod(0o755)
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [
        s["run"] for s in workflow["jobs"]["validate"]["steps"] if "validate" in s.get("run", "")
    ]
    assert len(steps) == 2
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_WORKSPACE": str(clone),
    }
    subprocess.run(["git", "-C", str(clone), "add", "-A"], check=True)  # ls-files sees them
    for command in steps:
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", command], cwd=clone, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, command + "\n" + result.stdout + result.stderr
    annotations = subprocess.run(
        ["bash", "-c", steps[0]], cwd=clone, env=env, capture_output=True, text=True, check=False
    ).stdout.splitlines()
    assert annotations and all(a.startswith("::warning file=examples/") for a in annotations)
    log = json.loads((clone / "composesecrets.sarif").read_text())
    assert log["version"] == "2.1.0"
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    }
    assert uris and all(u.startswith("examples/") for u in uris), uris
