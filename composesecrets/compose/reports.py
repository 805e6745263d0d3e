"""Findings for code hosts: paths relative to the repository root, and SARIF 2.1.0 (GitHub
code scanning). Text, JSON and GitHub-annotation rendering live in ``diagnostics``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from composesecrets import __version__
from composesecrets.compose.diagnostics import Diagnostic
from composesecrets.compose.rules import STRICT_RULES

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://docs.docker.com/engine/swarm/secrets/"


def repo_root(cwd: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where annotation paths start: ``GITHUB_WORKSPACE`` when set (GitHub Actions), else
    the git work tree holding ``cwd``, else ``cwd``."""
    environ = os.environ if environ is None else environ
    workspace = environ.get("GITHUB_WORKSPACE")
    if workspace:
        return Path(workspace).resolve()
    try:
        proc = subprocess.run(
            ["git", "-C", str(cwd), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return cwd.resolve()
    top = proc.stdout.strip()
    return Path(top).resolve() if proc.returncode == 0 and top else cwd.resolve()


def relative_to_root(diagnostics: Iterable[Diagnostic], cwd: Path, root: Path) -> list[Diagnostic]:
    """The same findings with each file as a POSIX path relative to ``root`` (files outside
    it, and standard input, are left as they are)."""
    out = []
    cache: dict[str, str] = {}
    for d in diagnostics:
        if d.file not in cache:
            cache[d.file] = d.file
            if d.file and not d.file.startswith("<"):
                absolute = Path(os.path.abspath(cwd / d.file))
                rel = os.path.relpath(absolute, root)
                if not rel.startswith(".."):
                    cache[d.file] = Path(rel).as_posix()
        out.append(replace(d, file=cache[d.file]))
    return out


def render_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    """One SARIF 2.1.0 log with one run; every rule that fired is in the driver's rules."""
    found = list(diagnostics)
    rule_ids = sorted({d.rule or "input" for d in found})
    index = {rule: i for i, rule in enumerate(rule_ids)}
    rules = [
        {
            "id": rule,
            "name": rule,
            "shortDescription": {"text": STRICT_RULES.get(rule, f"Docker's verdict ({rule})")},
            "helpUri": "https://docs.docker.com/reference/compose-file/legacy-versions/",
        }
        for rule in rule_ids
    ]
    results = []
    for d in found:
        location: dict[str, object] = {"artifactLocation": {"uri": d.file or "."}}
        if d.line:
            location["region"] = {"startLine": d.line, "startColumn": max(d.column, 1)}
        subject = f"{d.path}: " if d.path else ""
        results.append(
            {
                "ruleId": d.rule or "input",
                "ruleIndex": index[d.rule or "input"],
                "level": d.severity,
                "message": {"text": subject + d.message},
                "locations": [{"physicalLocation": location}],
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "composesecrets",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)
