"""Several -c files merge with ``docker stack`` override rules (checked with its config)."""

from __future__ import annotations

from pathlib import Path

from composesecrets.compose.merge import merge_files
from composesecrets.compose.project import Project, load_project
from composesecrets.compose.yamlload import Loc, load

BASE = """\
version: "3.8"
services:
  web:
    image: busybox:1
    command: ["a", "b"]
    environment:
      A: "1"
    secrets:
      - source: pw
        mode: 0400
      - other
secrets:
  pw:
    file: ./pw.txt
    labels:
      team: a
  other:
    file: ./other.txt
"""

OVERRIDE = """\
version: "3.8"
services:
  web:
    image: busybox:2
    command: ["c"]
    environment:
      B: "2"
    secrets:
      - source: pw
        target: renamed
  extra:
    image: alpine
secrets:
  pw:
    external: true
"""


def project(tmp_path: Path, *texts: str) -> Project:
    names = []
    for i, text in enumerate(texts):
        name = f"f{i}.yml"
        (tmp_path / name).write_text(text)
        names.append(name)
    for secret in ("pw.txt", "other.txt"):
        (tmp_path / secret).write_text("s")
    return load_project(names, environ={}, cwd=tmp_path)


def test_override_image_env_and_command(tmp_path: Path) -> None:
    result = project(tmp_path, BASE, OVERRIDE)
    assert result.ok, result.diagnostics
    assert result.files == ["f0.yml", "f1.yml"]
    assert result.stack is not None
    web = result.stack.config["services"]["web"]
    assert web["image"] == "busybox:2"
    assert web["environment"] == {"A": "1", "B": "2"}
    assert web["command"] == ["c"]  # replaced, not appended
    assert set(result.stack.services) == {"web", "extra"}


def test_service_secrets_merge_by_source(tmp_path: Path) -> None:
    result = project(tmp_path, BASE, OVERRIDE)
    assert result.stack is not None
    refs = {r.source: r for r in result.stack.services["web"].secrets}
    assert set(refs) == {"pw", "other"}
    # the override's entry replaces the whole entry: mode 0400 does not survive
    assert refs["pw"].target == "/run/secrets/renamed"
    assert refs["pw"].mode == 0o444
    assert refs["other"].target == "/run/secrets/other"


def test_top_level_secrets_replaced_per_key(tmp_path: Path) -> None:
    result = project(tmp_path, BASE, OVERRIDE)
    assert result.stack is not None
    secrets = result.stack.secrets
    assert secrets["pw"].external
    assert secrets["pw"].file is None
    assert dict(secrets["pw"].labels) == {}  # not merged with the base definition
    assert secrets["other"].file == tmp_path / "other.txt"
    assert result.stack.to_config()["secrets"]["pw"] == {"name": "pw", "external": True}


def test_override_positions_point_into_the_override(tmp_path: Path) -> None:
    bad = OVERRIDE.replace("target: renamed", "target: renamed\n        mode: 644")
    result = project(tmp_path, BASE, bad)
    assert [(d.rule, d.file, d.line) for d in result.errors] == [("mode-decimal", "f1.yml", 11)]


def test_strict_checks_see_the_merged_result(tmp_path: Path) -> None:
    # the base file alone uses an undefined secret; the override defines it
    base = 'version: "3.8"\nservices:\n  web:\n    image: x\n    secrets: [late]\n'
    override = 'version: "3.8"\nsecrets:\n  late:\n    external: true\n'
    (tmp_path / "a.yml").write_text(base)
    alone = load_project(["a.yml"], environ={}, cwd=tmp_path)
    assert [d.rule for d in alone.errors] == ["undefined-secret"]
    assert project(tmp_path, base, override).diagnostics == []


def test_version_mismatch(tmp_path: Path) -> None:
    result = project(tmp_path, BASE, OVERRIDE.replace('"3.8"', '"3.7"'))
    assert [(d.rule, d.file, d.line) for d in result.errors] == [("version-mismatch", "f1.yml", 1)]
    assert "version mismatched between two composefiles: 3.8 and 3.7" in result.errors[0].message
    assert result.stack is None


def test_missing_version_means_latest_and_mismatches(tmp_path: Path) -> None:
    result = project(tmp_path, BASE, "services: {}\n")
    assert [d.rule for d in result.errors] == ["version-mismatch"]
    assert "3.8 and 3.13" in result.errors[0].message


def test_error_in_second_file_is_reported_against_it(tmp_path: Path) -> None:
    result = project(tmp_path, BASE, 'version: "3.8"\nsecrets:\n  pw:\n    mode: 1\n')
    assert [(d.rule, d.file, d.line) for d in result.errors] == [("schema", "f1.yml", 4)]
    assert result.stack is None


def test_merge_files_directly() -> None:
    a = load("services:\n  s:\n    image: a\n    ports: ['80:80']\n    dns: [a]\n", "a.yml")
    b = load("services:\n  s:\n    ports: ['80:80', '81:81']\n    dns: [b]\n", "b.yml")
    merged = merge_files([a, b])
    service = merged["services"]["s"]
    assert service["ports"] == ["80:80", "81:81"]  # keyed: no duplicate 80:80
    assert service["dns"] == ["a", "b"]  # other lists append
    assert service["image"] == "a"
    assert service.vallocs["ports"] == Loc("b.yml", 3, 12)
    assert service.vallocs["image"] == Loc("a.yml", 3, 12)
    # the inputs are not modified
    assert a["services"]["s"]["ports"] == ["80:80"]


def test_interpolated_mode_is_tracked_through_the_merge(tmp_path: Path) -> None:
    # base: "pw" has a literal mode at secrets[0]; the override adds "other" at its own
    # secrets[0] with an interpolated mode. Merged by source, "pw" stays at [0] and "other"
    # lands at [1]: only "other" (from f1.yml line 6) has an interpolated mode.
    base = (
        'version: "3.8"\nservices:\n  web:\n    image: x\n    secrets:\n'
        "      - source: pw\n        mode: 0440\n"
        "secrets:\n  pw: {file: ./pw.txt}\n  other: {file: ./other.txt}\n"
    )
    override = (
        'version: "3.8"\nservices:\n  web:\n    secrets:\n'
        "      - source: other\n        mode: ${MODE:-0440}\n"
    )
    result = project(tmp_path, base, override)
    assert [(d.rule, d.file, d.line, d.path) for d in result.errors] == [
        ("mode-interpolated", "f1.yml", 6, "services.web.secrets[1].mode")
    ]


def test_literal_override_of_an_interpolated_mode_is_not_flagged(tmp_path: Path) -> None:
    base = (
        'version: "3.8"\nservices:\n  web:\n    image: x\n    secrets:\n'
        "      - source: pw\n        mode: ${MODE:-0440}\nsecrets:\n  pw: {file: ./pw.txt}\n"
    )
    override = (
        'version: "3.8"\nservices:\n  web:\n    secrets:\n      - source: pw\n        mode: 0440\n'
    )
    assert project(tmp_path, base, override).diagnostics == []
