"""Differential tests: `composesecrets validate --compat` against `docker stack config`.

Every `*.yml` file in this directory is run through both tools and must get the same
verdict. For the files Docker accepts, the secrets that `composesecrets config` prints
must match what `docker stack config` prints once Docker's defaults are filled in.
See README.md in this directory for the corpus format.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker_oracle import find_docker

CORPUS_DIR = Path(__file__).resolve().parent
CORPUS = sorted(p.name for p in CORPUS_DIR.glob("*.yml"))


DOCKER = find_docker()

if DOCKER is None:
    WHY = (
        "no docker CLI with `docker stack config` on PATH: the differential corpus needs it "
        "as an oracle (client binary only, no daemon)"
    )
    if os.environ.get("COMPOSESECRETS_REQUIRE_ENGINE") == "1":
        pytest.fail(WHY, pytrace=False)
    pytest.skip(WHY, allow_module_level=True)

pytestmark = pytest.mark.oracle

TIMEOUT = 60
ENV_HEADER = re.compile(r"^#\s*env:(.*)$")
# Relative paths of secret/config files a compose file refers to; they get dummy content.
SECRET_FILE = re.compile(r"(?:[\w.-]+/)*[\w.-]+\.(?:txt|key|pem|crt|json)\b")
VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
DEFAULT_UID = "0"
DEFAULT_GID = "0"
DEFAULT_MODE = 0o444


@dataclass(frozen=True)
class Run:
    """One finished command."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\n-> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )


@dataclass(frozen=True)
class Case:
    """A corpus file copied into its own scratch directory, with Docker's answer."""

    name: str
    workdir: Path
    env: dict[str, str]
    docker: Run


_CASES: dict[str, Case] = {}


def header_env(text: str) -> dict[str, str]:
    """Variables from the `# env: A=1 B=` header lines at the top of a corpus file."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        match = ENV_HEADER.match(line)
        if match:
            for item in match.group(1).split():
                key, sep, value = item.partition("=")
                assert sep, f"bad env header item {item!r} (want KEY=VALUE)"
                env[key] = value
    return env


def referenced_files(text: str) -> set[str]:
    """Relative secret-file paths in the text, with and without `${...}` parts removed."""
    found = set(SECRET_FILE.findall(text)) | set(SECRET_FILE.findall(VARIABLE.sub("", text)))
    return {p for p in found if not p.startswith("/") and ".." not in p.split("/")}


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(extra)
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> Run:
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )
    return Run(argv, proc.returncode, proc.stdout, proc.stderr)


def ours(args: list[str], case: Case) -> Run:
    return run([sys.executable, "-m", "composesecrets", *args], case.workdir, case.env)


def get_case(name: str, factory: pytest.TempPathFactory) -> Case:
    """Copy a corpus file into a fresh directory, create its secret files, ask Docker."""
    if name not in _CASES:
        source = CORPUS_DIR / name
        text = source.read_text(encoding="utf-8", errors="replace")
        workdir = factory.mktemp(name.removesuffix(".yml"))
        shutil.copyfile(source, workdir / name)
        for rel in referenced_files(text):
            target = workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("dummy-not-a-secret\n", encoding="utf-8")
        env = clean_env(header_env(text))
        assert DOCKER is not None
        docker = run([DOCKER, "stack", "config", "-c", name], workdir, env)
        _CASES[name] = Case(name, workdir, env, docker)
    return _CASES[name]


def assert_no_traceback(result: Run) -> None:
    assert "Traceback (most recent call last)" not in result.stderr, result.describe()


@pytest.mark.parametrize("name", CORPUS)
def test_same_verdict_as_docker(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    case = get_case(name, tmp_path_factory)
    mine = ours(["validate", "--compat", "-c", name], case)
    assert_no_traceback(mine)
    docker_ok = case.docker.returncode == 0
    # Docker exits 1 for every rejection; ours may say 1 (invalid) or 2 (unreadable input).
    ok = mine.returncode == 0 if docker_ok else mine.returncode in (1, 2)
    verdict = "accepts" if docker_ok else "rejects"
    assert ok, (
        f"{name}: docker {verdict} it but composesecrets exited {mine.returncode}\n"
        f"=== docker ===\n{case.docker.describe()}\n=== composesecrets ===\n{mine.describe()}"
    )


def docker_service_secrets(entries: list[Any] | None) -> list[tuple[str, str, str, str, int]]:
    """Docker's printed service secrets with Docker's defaults filled in."""
    result = []
    for entry in entries or []:
        if isinstance(entry, str):
            entry = {"source": entry}
        source = str(entry.get("source") or "")
        target = str(entry.get("target") or source)
        if not target.startswith("/"):
            target = posixpath.join("/run/secrets", target)
        uid = entry.get("uid")
        gid = entry.get("gid")
        mode = entry.get("mode")
        result.append(
            (
                source,
                posixpath.normpath(target),
                DEFAULT_UID if uid is None else str(uid),
                DEFAULT_GID if gid is None else str(gid),
                DEFAULT_MODE if mode is None else int(mode),
            )
        )
    return result


def our_service_secrets(entries: list[Any] | None) -> list[tuple[str, str, str, str, int]]:
    result = []
    for entry in entries or []:
        assert isinstance(entry, dict), f"secret entry is not an object: {entry!r}"
        assert str(entry["target"]).startswith("/"), f"target not absolute: {entry!r}"
        result.append(
            (
                entry["source"],
                posixpath.normpath(entry["target"]),
                entry["uid"],
                entry["gid"],
                entry["mode"],
            )
        )
    return result


@pytest.mark.parametrize("name", CORPUS)
def test_config_secrets_match_docker(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    case = get_case(name, tmp_path_factory)
    mine = ours(["config", "--compat", "--format", "json", "-c", name], case)
    assert_no_traceback(mine)
    both = f"=== docker ===\n{case.docker.describe()}\n=== composesecrets ===\n{mine.describe()}"
    if case.docker.returncode != 0:
        # Docker prints no config for it: neither may we
        assert mine.returncode in (1, 2), f"{name}: docker rejects it, `config` did not\n{both}"
        assert not mine.stdout.strip(), f"{name}: `config` printed a rejected file\n{both}"
        return
    assert mine.returncode == 0, f"{name}: docker accepts it, `config` failed\n{both}"
    theirs_doc: dict[str, Any] = yaml.safe_load(case.docker.stdout) or {}
    try:
        ours_doc: dict[str, Any] = json.loads(mine.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{name}: `config --format json` printed no JSON ({exc})\n{both}")

    their_services = theirs_doc.get("services") or {}
    our_services = ours_doc.get("services") or {}
    assert sorted(our_services) == sorted(their_services), f"{name}: service names differ\n{both}"
    for svc, body in their_services.items():
        expected = docker_service_secrets((body or {}).get("secrets"))
        got = our_service_secrets((our_services[svc] or {}).get("secrets"))
        assert got == expected, f"{name}: services.{svc}.secrets differ\n{both}"

    their_secrets = theirs_doc.get("secrets") or {}
    our_secrets = ours_doc.get("secrets") or {}
    assert sorted(our_secrets) == sorted(their_secrets), f"{name}: secret keys differ\n{both}"
    for key, theirs in their_secrets.items():
        theirs = theirs or {}
        mine_def = our_secrets[key] or {}
        external = bool(theirs.get("external"))
        assert bool(mine_def.get("external")) == external, f"{name}: secrets.{key}.external\n{both}"
        if not external:
            assert mine_def.get("file") == theirs.get("file"), f"{name}: secrets.{key}.file\n{both}"
        if "name" in theirs:
            assert mine_def.get("name") == theirs["name"], f"{name}: secrets.{key}.name\n{both}"


def test_corpus_is_large_and_balanced(tmp_path_factory: pytest.TempPathFactory) -> None:
    verdicts = [get_case(name, tmp_path_factory).docker.returncode == 0 for name in CORPUS]
    valid = sum(verdicts)
    invalid = len(verdicts) - valid
    assert len(CORPUS) >= 80, f"only {len(CORPUS)} corpus files"
    assert valid >= 30, f"only {valid} files that docker accepts"
    assert invalid >= 30, f"only {invalid} files that docker rejects"
