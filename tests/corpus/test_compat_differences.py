"""Differential tests for three places where `--compat` once disagreed with
`docker stack config` (issue 12): a missing service `env_file:`, `.env` (Docker's stack
commands do not read it), and `x-*` keys inside top-level secret definitions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from docker_oracle import find_docker

DOCKER = find_docker()
pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(DOCKER is None, reason="no docker CLI with `docker stack config`"),
]

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60, check=False
    )


def docker(cwd: Path) -> subprocess.CompletedProcess[str]:
    assert DOCKER is not None
    return run([DOCKER, "stack", "config", "-c", "compose.yml"], cwd)


def ours(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "composesecrets", *args, "-c", "compose.yml"], cwd)


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "compose.yml").write_text(text)
    return tmp_path


def test_missing_env_file_fails_like_docker(tmp_path: Path) -> None:
    write(
        tmp_path,
        'version: "3.8"\nservices:\n  web:\n    image: busybox\n'
        "    env_file: [ok.env, missing.env]\n",
    )
    (tmp_path / "ok.env").write_text("A=1\n")
    theirs = docker(tmp_path)
    assert theirs.returncode == 1 and "no such file or directory" in theirs.stderr, theirs
    compat = ours(tmp_path, "validate", "--compat")
    assert compat.returncode == 1, compat
    assert "missing.env" in compat.stdout and "no such file or directory" in compat.stdout
    strict = ours(tmp_path, "validate", "--format", "json")
    assert strict.returncode == 1, strict
    found = json.loads(strict.stdout)
    assert [(d["rule"], d["path"], d["line"]) for d in found] == [
        ("env-file", "services.web.env_file[1]", 5)
    ]
    # and once it exists, both accept it
    (tmp_path / "missing.env").write_text("B=2\n")
    assert docker(tmp_path).returncode == 0
    assert ours(tmp_path, "validate", "--compat").returncode == 0


def test_env_file_with_a_bad_variable_name_fails_like_docker(tmp_path: Path) -> None:
    write(tmp_path, 'version: "3.8"\nservices:\n  web:\n    image: busybox\n    env_file: x.env\n')
    (tmp_path / "x.env").write_text("# comment\nGOOD=1\nBAD NAME=2\n")
    theirs = docker(tmp_path)
    assert theirs.returncode == 1 and "contains whitespaces" in theirs.stderr, theirs
    compat = ours(tmp_path, "validate", "--compat")
    assert compat.returncode == 1 and "contains whitespaces" in compat.stdout, compat


def test_compat_reads_no_dotenv_strict_does(tmp_path: Path) -> None:
    write(
        tmp_path,
        'version: "3.8"\nservices:\n  web:\n    image: "busybox:${TAG:?set TAG}"\n',
    )
    (tmp_path / ".env").write_text("TAG=1.36\n")
    theirs = docker(tmp_path)
    assert theirs.returncode == 1 and "required variable TAG" in theirs.stderr, theirs
    compat = ours(tmp_path, "validate", "--compat")
    assert compat.returncode == 1 and "required variable TAG" in compat.stdout, compat
    # strict mode (and stack deploy) keep reading .env
    strict = ours(tmp_path, "config", "--format", "json")
    assert strict.returncode == 0, strict
    assert json.loads(strict.stdout)["services"]["web"]["image"] == "busybox:1.36"


def test_config_compat_keeps_x_keys_in_secret_definitions(tmp_path: Path) -> None:
    write(
        tmp_path,
        'version: "3.7"\n'
        "services:\n  web:\n    image: busybox\n    secrets:\n"
        "      - source: pw\n        x-dropped: yes\n"
        "secrets:\n  pw:\n    file: ./pw.txt\n    x-owner: {team: ops}\n    x-n: 1\n",
    )
    (tmp_path / "pw.txt").write_text("dummy-not-a-secret\n")
    theirs = docker(tmp_path)
    assert theirs.returncode == 0, theirs
    expected = yaml.safe_load(theirs.stdout)
    mine = ours(tmp_path, "config", "--compat", "--format", "json")
    assert mine.returncode == 0, mine
    got = json.loads(mine.stdout)
    assert expected["secrets"]["pw"] == {
        "file": str(tmp_path / "pw.txt"),
        "x-owner": {"team": "ops"},
        "x-n": 1,
    }
    their_x = {k: v for k, v in expected["secrets"]["pw"].items() if k.startswith("x-")}
    our_x = {k: v for k, v in got["secrets"]["pw"].items() if k.startswith("x-")}
    assert our_x == their_x
    # Docker drops x-* keys inside a service's secret entry; so do we
    assert not any(k.startswith("x-") for k in got["services"]["web"]["secrets"][0])
    assert not any(k.startswith("x-") for k in expected["services"]["web"]["secrets"][0])
