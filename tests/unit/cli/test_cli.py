"""The command line, run in-process through ``composesecrets.cli.main`` (the console script)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from unit.cli_helpers import Run, run_main


def run(args: list[str], stdin: bytes | str | None = None, *, internal: bool = False) -> Run:
    """Call cli.main() as the console script does: exit codes as a user sees them."""
    result = run_main(args, stdin)
    assert "Traceback" not in result.output
    assert internal or "internal error" not in result.output
    return result


GOOD = """\
version: "3.8"
services:
  web:
    image: busybox
    secrets:
      - pw
      - source: api
        target: /etc/app/api
        uid: "1000"
        mode: 0440
secrets:
  pw:
    file: ./pw.txt
  api:
    file: ./pw.txt
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("NOPE", "TAG", "MODE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "pw.txt").write_text("s3cret")
    return tmp_path


def test_valid_file_exit_0(here: Path) -> None:
    (here / "c.yml").write_text(GOOD)
    result = run(["validate", "-c", "c.yml"])
    assert result.code == 0
    assert result.stdout == ""
    assert "c.yml: valid (0 errors, 0 warnings)" in result.stderr


def test_invalid_file_exit_1_with_position(here: Path) -> None:
    (here / "c.yml").write_text(GOOD.replace("mode: 0440", "mode: 440"))
    result = run(["validate", "-c", "c.yml"])
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "c.yml:10:15: error: services.web.secrets[1].mode: mode 440 looks like an octal "
        "permission but is read as decimal 440 (= 0o670); write 0440"
    ]
    assert "c.yml: invalid (1 error, 0 warnings)" in result.stderr


def test_compat_accepts_what_strict_refuses(here: Path) -> None:
    (here / "c.yml").write_text(GOOD.replace("mode: 0440", "mode: 440"))
    assert run(["validate", "--compat", "-c", "c.yml"]).code == 0


def test_schema_error_exit_1(here: Path) -> None:
    (here / "c.yml").write_text(GOOD.replace('uid: "1000"', "uid: 1000"))
    result = run(["validate", "-c", "c.yml", "--compat"])
    assert result.code == 1
    assert result.stdout.startswith("c.yml:9:14: error: services.web.secrets[1].uid: ")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["validate", "-c", "missing.yml"], "missing.yml does not exist"),
        (["validate", "-c", "."], "is a directory"),
        (["validate", "--bogus"], "No such option"),
        (["validate", "--format", "xml", "-c", "c.yml"], "xml"),
        (["config", "--format", "text", "-c", "c.yml"], "text"),
        (["nosuchcommand"], "nosuchcommand"),
        (["validate", "--stack", "bad name", "-c", "c.yml"], "invalid stack name"),
        (["validate", "-c", "c.yml", "--env-file", "nope.env"], "nope.env"),
        (["validate", "-c", "-", "-c", "-"], "only once"),
        (["validate", "c.yml", "-c", "c.yml"], "either"),
        (["validate"], "no compose file"),
    ],
)
def test_usage_and_input_errors_exit_2(here: Path, args: list[str], needle: str) -> None:
    (here / "c.yml").write_text(GOOD)
    result = run(args)
    assert result.code == 2
    assert needle in result.output


@pytest.mark.parametrize(
    ("data", "position"),
    [
        (b"services: [\n", "c.yml:2:1"),
        (b"a: 1\na: 2\n", "c.yml:2:1"),
        (b"a: 1\n---\nb: 1\n", "c.yml:2:1"),
        (b"a: \xff\n", "c.yml:1:4"),
        (b"a:\n\tb: 1\n", "c.yml:2:1"),
    ],
)
def test_unparsable_input_exit_2(here: Path, data: bytes, position: str) -> None:
    (here / "c.yml").write_bytes(data)
    result = run(["validate", "-c", "c.yml"])
    assert result.code == 2
    assert f"composesecrets: error: {position}: " in result.stderr
    assert run(["config", "-c", "c.yml"]).code == 2


@pytest.mark.parametrize(
    ("text", "what"), [("[1]\n", "a list"), ("", "empty"), ("x\n", "a string")]
)
def test_non_mapping_root_exit_1(here: Path, text: str, what: str) -> None:
    (here / "c.yml").write_text(text)
    result = run(["validate", "-c", "c.yml"])
    assert result.code == 1
    assert f"must be a mapping (services:, secrets:, ...), but it is {what}" in result.stdout
    (d,) = json.loads(run(["validate", "--format", "json", "-c", "c.yml"]).stdout)
    assert (d["rule"], d["severity"], d["line"]) == ("yaml-root", "error", 1)


def test_discovery_order(here: Path) -> None:
    bad = GOOD.replace("mode: 0440", "mode: 440")
    (here / "docker-compose.yml").write_text(bad)
    assert run(["validate"]).code == 1
    (here / "docker-compose.yaml").write_text(GOOD)
    assert "docker-compose.yaml: valid" in run(["validate"]).stderr
    (here / "compose.yml").write_text(bad)
    result = run(["validate"])
    assert result.code == 1
    assert "compose.yml" in result.stdout
    (here / "compose.yaml").write_text(GOOD)
    result = run(["validate"])
    assert result.code == 0
    assert "compose.yaml: valid" in result.stderr


def test_stdin(here: Path) -> None:
    result = run(["validate", "-c", "-"], stdin=GOOD)
    assert result.code == 0, result.output
    result = run(["validate", "-c", "-"], stdin=GOOD.replace("mode: 0440", "mode: 440"))
    assert result.code == 1
    assert result.stdout.startswith("<stdin>:10:15: error: ")
    # relative file: paths resolve against the current directory
    result = run(["config", "--format", "json", "-c", "-"], stdin=GOOD)
    assert json.loads(result.stdout)["secrets"]["pw"]["file"] == str(here / "pw.txt")


def test_positional_files_are_validated_one_by_one(here: Path) -> None:
    (here / "a.yml").write_text(GOOD)
    (here / "b.yml").write_text("services: [\n")
    (here / "c.yml").write_text(GOOD.replace("mode: 0440", "mode: 440"))
    result = run(["validate", "a.yml", "b.yml", "c.yml", "--format", "json"])
    assert result.code == 2
    found = json.loads(result.stdout)
    assert [(d["file"], d["rule"]) for d in found] == [("b.yml", "yaml"), ("c.yml", "mode-decimal")]
    assert run(["validate", "a.yml", "c.yml"]).code == 1
    assert run(["validate", "a.yml", "a.yml"]).code == 0


JSON_FIELDS = {"file", "line", "column", "path", "severity", "message", "rule"}


def test_json_format(here: Path) -> None:
    text = GOOD.replace("mode: 0440", "mode: 440") + "  spare:\n    file: ./pw.txt\n"
    (here / "c.yml").write_text(text)
    result = run(["validate", "--format", "json", "-c", "c.yml"])
    assert result.code == 1
    found = json.loads(result.stdout)
    assert all(set(d) == JSON_FIELDS for d in found)
    assert found == [
        {
            "file": "c.yml",
            "line": 10,
            "column": 15,
            "path": "services.web.secrets[1].mode",
            "severity": "error",
            "message": "mode 440 looks like an octal permission but is read as decimal 440 "
            "(= 0o670); write 0440",
            "rule": "mode-decimal",
        },
        {
            "file": "c.yml",
            "line": 16,
            "column": 3,
            "path": "secrets.spare",
            "severity": "warning",
            "message": found[1]["message"],
            "rule": "unused-secret",
        },
    ]


def test_json_format_valid_is_an_empty_list(here: Path) -> None:
    (here / "c.yml").write_text(GOOD)
    result = run(["validate", "--format", "json", "-c", "c.yml"])
    assert (result.code, json.loads(result.stdout)) == (0, [])


def test_json_format_for_unparsable_input(here: Path) -> None:
    (here / "c.yml").write_text("a: 1\na: 2\n")
    result = run(["validate", "--format", "json", "-c", "c.yml"])
    assert result.code == 2
    (d,) = json.loads(result.stdout)
    assert (d["file"], d["line"], d["column"], d["rule"]) == ("c.yml", 2, 1, "yaml")


GITHUB = re.compile(r"^::(error|warning) file=([^,]+),line=(\d+),col=(\d+),title=([^:]+)::(.+)$")


def test_github_format(here: Path) -> None:
    text = GOOD.replace("mode: 0440", "mode: 440") + "  spare:\n    file: ./pw.txt\n"
    (here / "c.yml").write_text(text)
    result = run(["validate", "--format", "github", "-c", "c.yml"])
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    matches = [GITHUB.match(line) for line in lines]
    assert all(matches), lines
    assert [m.groups()[:5] for m in matches if m] == [
        ("error", "c.yml", "10", "15", "mode-decimal"),
        ("warning", "c.yml", "16", "3", "unused-secret"),
    ]
    assert lines[0].startswith("::error file=c.yml,line=10,col=15,")
    assert lines[0].endswith(
        "::services.web.secrets[1].mode: mode 440 looks like an octal "
        "permission but is read as decimal 440 (= 0o670); write 0440"
    )


def test_github_format_escapes(here: Path) -> None:
    sub = here / "a,b:c"
    sub.mkdir()
    (sub / "c.yml").write_text(GOOD.replace("mode: 0440", "mode: 440"))
    (sub / "pw.txt").write_text("s")
    result = run(["validate", "--format", "github", "-c", "a,b:c/c.yml"])
    assert result.stdout.startswith("::error file=a%2Cb%3Ac/c.yml,line=10,col=15,")


def test_strict_warnings(here: Path) -> None:
    (here / "c.yml").write_text(GOOD + "  spare:\n    file: ./pw.txt\n")
    result = run(["validate", "-c", "c.yml"])
    assert result.code == 0
    assert "warning: secrets.spare:" in result.stdout
    assert run(["validate", "--strict-warnings", "-c", "c.yml"]).code == 1
    (here / "d.yml").write_text(GOOD)
    assert run(["validate", "--strict-warnings", "-c", "d.yml"]).code == 0


def test_env_file_option(here: Path) -> None:
    (here / "c.yml").write_text(GOOD.replace("busybox", "busybox:${TAG:?set TAG}"))
    assert run(["validate", "-c", "c.yml"]).code == 1
    (here / "vars.env").write_text("TAG=1.36\n")
    assert run(["validate", "-c", "c.yml", "--env-file", "vars.env"]).code == 0
    (here / ".env").write_text("TAG=1.36\n")
    assert run(["validate", "-c", "c.yml"]).code == 0


def test_stack_option(here: Path) -> None:
    key = "k" * 60
    (here / "c.yml").write_text(GOOD.replace("api", key))
    assert run(["validate", "-c", "c.yml"]).code == 0
    result = run(["validate", "-c", "c.yml", "--stack", "stack"])
    assert result.code == 1
    assert "secret-name" in run(["validate", "-c", "c.yml", "--stack", "stack",
                                 "--format", "json"]).stdout  # fmt: skip


def test_config_json(here: Path) -> None:
    (here / "c.yml").write_text(GOOD)
    result = run(["config", "--format", "json", "-c", "c.yml"])
    assert result.code == 0
    data = json.loads(result.stdout)
    assert data == {
        "version": "3.8",
        "services": {
            "web": {
                "image": "busybox",
                "secrets": [
                    {"source": "pw", "target": "/run/secrets/pw", "uid": "0", "gid": "0",
                     "mode": 292},
                    {"source": "api", "target": "/etc/app/api", "uid": "1000", "gid": "0",
                     "mode": 288},
                ],
            }
        },
        "secrets": {
            "pw": {"name": "pw", "file": str(here / "pw.txt")},
            "api": {"name": "api", "file": str(here / "pw.txt")},
        },
    }  # fmt: skip
    assert type(data["services"]["web"]["secrets"][0]["mode"]) is int


def test_config_yaml_writes_octal_modes(here: Path) -> None:
    (here / "c.yml").write_text(GOOD)
    result = run(["config", "-c", "c.yml"])
    assert result.code == 0
    assert re.search(r"^\s+mode: 0440$", result.stdout, re.M)
    assert re.search(r"^\s+mode: 0444$", result.stdout, re.M)
    # it reads back (YAML 1.1 octal) to the same numbers
    data = yaml.safe_load(result.stdout)
    assert [s["mode"] for s in data["services"]["web"]["secrets"]] == [0o444, 0o440]
    assert data["secrets"]["pw"]["file"] == str(here / "pw.txt")


def test_config_external_and_relative_target(here: Path) -> None:
    (here / "c.yml").write_text(
        'version: "3.8"\nservices:\n  web:\n    image: x\n    secrets:\n'
        "      - source: ext\n        target: sub/key.pem\nsecrets:\n  ext:\n    external: true\n"
    )
    data = json.loads(run(["config", "--format", "json", "-c", "c.yml"]).stdout)
    assert data["services"]["web"]["secrets"][0]["target"] == "/run/secrets/sub/key.pem"
    assert data["secrets"] == {"ext": {"name": "ext", "external": True}}


def test_config_refuses_invalid(here: Path) -> None:
    (here / "c.yml").write_text(GOOD.replace("mode: 0440", "mode: 440"))
    result = run(["config", "-c", "c.yml"])
    assert result.code == 1
    assert result.stdout == ""
    assert "mode-decimal" not in result.stdout
    assert "c.yml:10:15: error:" in result.stderr
    # --compat prints what Docker would: decimal 440 shown in octal is 0670
    result = run(["config", "--compat", "-c", "c.yml"])
    assert result.code == 0
    assert re.search(r"^\s+mode: 0670$", result.stdout, re.M)


def test_version_flag() -> None:
    result = run(["--version"])
    assert result.code == 0
    assert result.stdout.startswith("composesecrets ")


def test_no_args_shows_help() -> None:
    result = run([])
    assert result.code in (0, 2)
    assert "validate" in result.output


def test_internal_errors_are_reported_without_traceback(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("composesecrets.compose.project.load_project", boom)
    monkeypatch.delenv("COMPOSESECRETS_DEBUG", raising=False)
    (here / "c.yml").write_text(GOOD)
    result = run(["validate", "-c", "c.yml"], internal=True)
    assert result.code == 70
    assert "internal error (RuntimeError)" in result.stderr


def test_console_script_module(here: Path) -> None:
    """One real process: python -m composesecrets exits with the documented codes."""
    (here / "c.yml").write_text(GOOD.replace("mode: 0440", "mode: 440"))
    env = {k: v for k, v in os.environ.items() if k != "COMPOSESECRETS_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "composesecrets", "validate", "-c", "c.yml", "-c", "nope.yml"],
        capture_output=True, text=True, timeout=60, env=env, cwd=here,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "nope.yml does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreadable_input_is_reported_in_the_ci_formats(here: Path) -> None:
    result = run(["validate", "-c", "missing.yml", "--format", "json"])
    assert result.code == 2
    [found] = json.loads(result.stdout)
    assert found["rule"] == "input" and found["file"] == "missing.yml"
    assert "does not exist" in found["message"]
    result = run(["validate", "-c", "missing.yml", "--format", "github"])
    assert result.code == 2
    assert result.stdout.startswith("::error file=missing.yml,title=input::")
