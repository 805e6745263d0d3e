"""`validate` in CI: absent secret files, rule selection, overrides, GitHub/SARIF output,
backend-aware warnings, credential heuristics (issue 12, sections 1 and 2)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from unit.cli_helpers import run_main

from composesecrets.compose.project import load_project, with_overrides
from composesecrets.compose.rules import STRICT_RULES

BASE = """\
version: "3.8"
services:
  web:
    image: busybox
    secrets:
      - pw
secrets:
  pw:
    file: ./secrets/pw.txt
"""


def git_repo(path: Path, ignore: str = "") -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    if ignore:
        (path / ".gitignore").write_text(ignore)
    return path


def rules_of(output: str) -> list[str]:
    return [d["rule"] for d in json.loads(output)]


# --------------------------------------------------------------------------- absent files


def test_gitignored_missing_file_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo(tmp_path, "secrets/\n")
    (tmp_path / "compose.yaml").write_text(BASE)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "--format", "json"])
    assert result.code == 0, result.output
    (d,) = json.loads(result.stdout)
    assert (d["rule"], d["severity"], d["line"]) == ("file-not-checked", "warning", 9)
    assert "git ignores it" in d["message"]
    # --require-files (what deploy needs) keeps it an error
    strict = run_main(["validate", "--require-files", "--format", "json"])
    assert strict.code == 1 and rules_of(strict.stdout) == ["file-missing"]


def test_missing_file_git_does_not_ignore_stays_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo(tmp_path, "other/\n")
    (tmp_path / "compose.yaml").write_text(BASE)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "--format", "json"])
    assert result.code == 1 and rules_of(result.stdout) == ["file-missing"]
    # --no-files: any absent file is only a warning
    loose = run_main(["validate", "--no-files", "--format", "json"])
    assert loose.code == 0 and rules_of(loose.stdout) == ["file-not-checked"]
    assert "--no-files" in json.loads(loose.stdout)[0]["message"]


def test_outside_git_missing_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(BASE)
    project = load_project(
        ["compose.yaml"], cwd=tmp_path, environ={}, secret_files="unless-ignored"
    )
    assert [d.rule for d in project.errors] == ["file-missing"]


def test_library_default_requires_files_as_deploy_does(tmp_path: Path) -> None:
    git_repo(tmp_path, "secrets/\n")
    (tmp_path / "compose.yaml").write_text(BASE)
    project = load_project(["compose.yaml"], cwd=tmp_path, environ={})
    assert [d.rule for d in project.errors] == ["file-missing"]


def test_require_files_and_no_files_exclude_each_other() -> None:
    result = run_main(["validate", "--require-files", "--no-files"])
    assert result.code == 2 and "exclude each other" in result.output


# --------------------------------------------------------------------------- rule selection

NOISY = """\
version: "3.8"
services:
  web:
    image: busybox
    environment:
      DB_PASSWORD: hunter2
secrets:
  spare:
    external: true
"""


def test_ignore_and_select(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text(NOISY)
    monkeypatch.chdir(tmp_path)
    both = run_main(["validate", "--format", "json"])
    assert sorted(rules_of(both.stdout)) == ["plaintext-credential", "unused-secret"]
    ignored = run_main(["validate", "--format", "json", "--ignore", "unused-secret"])
    assert rules_of(ignored.stdout) == ["plaintext-credential"]
    none = run_main(
        ["validate", "--format", "json", "--ignore", "unused-secret,plaintext-credential"]
    )
    assert rules_of(none.stdout) == []
    selected = run_main(["validate", "--format", "json", "--select", "unused-secret"])
    assert rules_of(selected.stdout) == ["unused-secret"]


def test_unknown_rule_is_a_usage_error_listing_valid_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "compose.yaml").write_text(NOISY)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "--ignore", "unused-secrets"])
    assert result.code == 2
    assert "unknown rule unused-secrets" in result.output
    assert "valid rules:" in result.output and "plaintext-credential" in result.output


def test_docker_verdict_cannot_be_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text('version: "3.8"\nservices:\n  web:\n    imgae: x\n')
    monkeypatch.chdir(tmp_path)
    assert run_main(["validate", "--ignore", "schema"]).code == 2
    assert run_main(["validate", "--select", "unused-secret"]).code == 1


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (".composesecrets.toml", 'ignore = ["unused-secret"]\n'),
        (
            "pyproject.toml",
            '[project]\nname = "x"\n[tool.composesecrets]\nignore = ["unused-secret"]\n',
        ),
    ],
)
def test_config_file_found_upwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    git_repo(tmp_path)
    (tmp_path / name).write_text(text)
    sub = tmp_path / "deploy" / "prod"
    sub.mkdir(parents=True)
    (sub / "compose.yaml").write_text(NOISY)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "--format", "json", "deploy/prod/compose.yaml"])
    assert rules_of(result.stdout) == ["plaintext-credential"]
    # the command line adds to the file's ignore list
    more = run_main(
        [
            "validate",
            "--format",
            "json",
            "--ignore",
            "plaintext-credential",
            "deploy/prod/compose.yaml",
        ]
    )
    assert rules_of(more.stdout) == []


def test_config_file_with_unknown_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".composesecrets.toml").write_text('select = ["nope"]\n')
    (tmp_path / "compose.yaml").write_text(NOISY)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate"])
    assert result.code == 2 and "unknown rule nope" in result.output
    assert ".composesecrets.toml" in result.output


def test_inline_ignore_on_the_offending_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = NOISY.replace("hunter2", "hunter2  # composesecrets: ignore[plaintext-credential]")
    (tmp_path / "compose.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "--format", "json"])
    assert rules_of(result.stdout) == ["unused-secret"]
    # another rule on that line is still reported
    other = NOISY.replace("hunter2", "hunter2  # composesecrets: ignore[unused-secret]")
    (tmp_path / "compose.yaml").write_text(other)
    assert sorted(rules_of(run_main(["validate", "--format", "json"]).stdout)) == [
        "plaintext-credential",
        "unused-secret",
    ]
    bad = NOISY.replace("hunter2", "hunter2  # composesecrets: ignore[plaintext]")
    (tmp_path / "compose.yaml").write_text(bad)
    result = run_main(["validate"])
    assert result.code == 2 and "compose.yaml:6" in result.output


def test_every_strict_rule_is_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert [r for r in STRICT_RULES if f"`{r}`" not in readme] == []


# --------------------------------------------------------------------------- overrides

OVERRIDE = """\
version: "3.8"
services:
  web:
    secrets:
      - extra
secrets:
  extra:
    external: true
"""


@pytest.mark.parametrize(
    ("base", "override"),
    [
        ("compose.yaml", "compose.override.yaml"),
        ("docker-compose.yml", "docker-compose.override.yml"),
    ],
)
def test_override_is_validated_with_its_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: str, override: str
) -> None:
    (tmp_path / base).write_text(BASE.replace("./secrets/pw.txt", "./pw.txt"))
    (tmp_path / "pw.txt").write_text("x")
    (tmp_path / override).write_text(OVERRIDE)
    monkeypatch.chdir(tmp_path)
    for args in ([override], [base], [base, override]):
        result = run_main(["validate", *args])
        assert result.code == 0, (args, result.output)
        assert f"{base} + {override}: valid (0 errors, 0 warnings)" in result.stderr


def test_override_without_base_is_not_judged_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docker-compose.override.yml").write_text(OVERRIDE)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "docker-compose.override.yml"])
    assert result.code == 0, result.output
    assert "not validated alone" in result.stderr
    assert with_overrides(["docker-compose.override.yml"], tmp_path) == (
        [],
        ["docker-compose.override.yml"],
    )


def test_other_files_are_validated_alone(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("")
    (tmp_path / "compose.override.yaml").write_text("")
    groups, _ = with_overrides(["compose.prod.yaml", "sub/compose.yaml"], tmp_path)
    assert groups == [["compose.prod.yaml"], ["sub/compose.yaml"]]


# --------------------------------------------------------------------------- github / sarif

BROKEN = NOISY.replace("DB_PASSWORD: hunter2", "DB_PASSWORD: hunter2\n    secrets: [nope]")


def test_github_paths_are_relative_to_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_repo(tmp_path)
    sub = tmp_path / "deploy"
    sub.mkdir()
    (sub / "compose.yaml").write_text(BROKEN)
    monkeypatch.chdir(sub)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    result = run_main(["validate", "--format", "github", str(sub / "compose.yaml")])
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("::") for line in lines)
    assert all("file=deploy/compose.yaml," in line for line in lines), lines
    monkeypatch.setenv("GITHUB_WORKSPACE", str(sub))
    result = run_main(["validate", "--format", "github", "compose.yaml"])
    assert all("file=compose.yaml," in line for line in result.stdout.splitlines())


def test_sarif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git_repo(tmp_path)
    (tmp_path / "compose.yaml").write_text(BROKEN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    result = run_main(["validate", "--format", "sarif"])
    assert result.code == 1
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "composesecrets"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == ["plaintext-credential", "undefined-secret", "unused-secret"]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert sorted(by_rule) == rule_ids
    for r in run["results"]:
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["level"] in ("error", "warning")
        assert r["message"]["text"]
        (loc,) = r["locations"]
        phys = loc["physicalLocation"]
        assert phys["artifactLocation"]["uri"] == "compose.yaml"
        assert phys["region"]["startLine"] >= 1 and phys["region"]["startColumn"] >= 1
    assert by_rule["undefined-secret"]["level"] == "error"
    assert by_rule["undefined-secret"]["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 7,
        "startColumn": 15,
    }


def test_sarif_with_nothing_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text('version: "3.8"\nservices:\n  web:\n    image: x\n')
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "--format", "sarif"])
    assert result.code == 0
    assert json.loads(result.stdout)["runs"][0]["results"] == []


# --------------------------------------------------------------------------- credentials


def credential_rules(tmp_path: Path, env: str, secrets: str = "") -> list[str]:
    text = f'version: "3.8"\nservices:\n  web:\n    image: x\n{secrets}    environment:\n{env}'
    if secrets:
        text += "secrets:\n  tls:\n    external: true\n"
    (tmp_path / "compose.yaml").write_text(text)
    project = load_project(["compose.yaml"], cwd=tmp_path, environ={})
    return [d.rule for d in project.diagnostics]


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ("      DATABASE_PASSWORD: /run/secrets/db-password\n", False),
        ("      REGISTRY_HTTP_TLS_KEY: /run/secrets/registry.key\n", False),
        ("      - DB_PASSWORD=/run/secrets/db\n", False),
        ("      DB_PASSWORD: /run/secrets/../etc/shadow\n", True),
        ("      DB_PASSWORD: /run/secrets/\n", True),
        ("      DB_PASSWORD: /etc/app/pw\n", True),
        ("      RAILS_SECRET_KEY_BASE: 0123abcd\n", True),
        ("      SECRET_KEY_BASE: 0123abcd\n", True),
        ("      WORDPRESS_AUTH_SALT: abc\n", True),
        ("      PASSWORD_SALT: abc\n", True),
        ("      KEY_BASE: abc\n", True),
        ("      SALTY: abc\n", False),
    ],
)
def test_plaintext_credential(tmp_path: Path, env: str, warned: bool) -> None:
    assert (credential_rules(tmp_path, env) == ["plaintext-credential"]) is warned


def test_value_that_is_a_secret_target_is_no_credential(tmp_path: Path) -> None:
    secrets = "    secrets:\n      - source: tls\n        target: /etc/tls/key.pem\n"
    assert credential_rules(tmp_path, "      TLS_KEY: /etc/tls/key.pem\n", secrets) == []
    assert credential_rules(tmp_path, "      TLS_KEY: /etc/tls/other.pem\n", secrets) == [
        "plaintext-credential"
    ]


def test_credential_message(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(NOISY)
    project = load_project(["compose.yaml"], cwd=tmp_path, environ={})
    (d,) = [d for d in project.warnings if d.rule == "plaintext-credential"]
    assert "visible in `docker inspect`" in d.message
    assert "environment of every process" in d.message


# --------------------------------------------------------------------------- backends

TWICE = """\
version: "3.8"
services:
  web:
    image: x
    secrets:
      - pw
      - source: pw
        target: b
        mode: 0400
secrets:
  pw:
    external: true
"""


def test_same_source_settings_by_backend(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(TWICE)

    def messages(backend: str | None) -> list[str]:
        project = load_project(["compose.yaml"], cwd=tmp_path, environ={}, backend=backend)  # type: ignore[arg-type]
        return [d.message for d in project.diagnostics if d.rule == "same-source-settings"]

    assert messages("engine") == []
    (swarm,) = messages("swarm")
    assert "Docker Swarm applies the last uid/gid/mode to both targets" in swarm
    (unknown,) = messages(None)
    assert "the engine backend keeps them apart" in unknown and "--backend engine" in unknown


def test_simple_example_has_no_warning_for_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "simple"
    monkeypatch.chdir(example)
    result = run_main(["validate", "--backend", "engine", "--strict-warnings"])
    assert result.code == 0, result.output
    assert "valid (0 errors, 0 warnings)" in result.stderr


def test_summary_uses_singular(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text(BROKEN)
    monkeypatch.chdir(tmp_path)
    result = run_main(["validate", "--ignore", "unused-secret"])
    assert "compose.yaml: invalid (1 error, 1 warning)" in result.stderr


# --------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("    profiles: [debug]\n", "profiles"),
        ("    develop: {}\n", "develop"),
        ("    pull_policy: always\n", "pull_policy"),
    ],
)
def test_compose_spec_service_key_says_which_format_first(
    tmp_path: Path, body: str, key: str
) -> None:
    (tmp_path / "compose.yaml").write_text(
        'version: "3.8"\nservices:\n  web:\n    image: x\n' + body
    )
    (d,) = load_project(["compose.yaml"], cwd=tmp_path, environ={}).errors
    assert d.message.startswith(
        f'"{key}" is a compose-spec key (docker compose); composesecrets reads the compose '
        "3.x format that docker stack deploy reads. "
    )
    assert d.message.index("compose-spec") < d.message.index("allowed in services.web:")


def test_compose_spec_forms_of_depends_on_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        'version: "3.8"\nservices:\n  web:\n    image: x\n    depends_on:\n'
        "      db: {condition: service_healthy}\n  db:\n    image: x\n"
        "secrets:\n  s:\n    environment: VAR\n"
    )
    errors = load_project(["compose.yaml"], cwd=tmp_path, environ={}).errors
    by_path = {d.path: d.message for d in errors}
    assert by_path["services.web.depends_on"].startswith(
        "depends_on as a mapping (with condition:) is a compose-spec form"
    )
    assert by_path["secrets.s.environment"].startswith('"environment" is a compose-spec key')


def test_misspelt_service_key_gets_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text('version: "3.8"\nservices:\n  web:\n    imgae: x\n')
    (d,) = load_project(["compose.yaml"], cwd=tmp_path, environ={}).errors
    assert d.message.startswith('"imgae" is not allowed here; did you mean "image"? (allowed in')
    assert (d.line, d.column) == (4, 5)


def test_undefined_dependency_is_an_error_except_for_swarm(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        'version: "3.8"\nservices:\n  web:\n    image: x\n    depends_on: [nope]\n'
    )

    def found(backend: str | None) -> list[tuple[str, str]]:
        project = load_project(["compose.yaml"], cwd=tmp_path, environ={}, backend=backend)  # type: ignore[arg-type]
        return [(d.rule, d.severity) for d in project.diagnostics]

    assert found(None) == [("undefined-dependency", "error")]
    assert found("engine") == [("undefined-dependency", "error")]
    # Swarm ignores depends_on: a warning, next to the backend's own "not applied" one
    assert sorted(found("swarm")) == [
        ("unapplied-key", "warning"),
        ("undefined-dependency", "warning"),
    ]
    assert load_project(["compose.yaml"], cwd=tmp_path, environ={}, compat=True).ok
