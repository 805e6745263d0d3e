"""Interpolation like ``docker stack``: forms, Docker's quirks and texts, casts, .env, paths.

The expected values in the substitution table were checked against ``docker stack config``
(docker CLI 28.2.2) with SET=val and EMPTY= in the environment.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from composesecrets.compose.interpolate import (
    make_lookup,
    read_env_file,
    substitute,
)
from composesecrets.compose.project import Project, load_project
from composesecrets.errors import InputError

ENV = {"SET": "val", "EMPTY": ""}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$SET", "val"),
        ("${SET}", "val"),
        ("pre${SET}post", "prevalpost"),
        ("$SET$SET", "valval"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${SET:-d}", "val"),
        ("${UNSET:-}", ""),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${SET:?no}", "val"),
        ("${EMPTY?m}", ""),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("a$$b", "a$b"),
        ("$$$SET", "$val"),
        ("€$SET€", "€val€"),
        ("$SET}", "val}"),
        # docker/cli quirks
        ("${UNSET:-${SET:-x}}", "${SET:-x}"),  # no nesting: the default stops at the first }
        ("${SET:-${B:-x}}", "val}"),
        ("$SET-alpine", "val"),  # an unbraced name takes a default too
        ("$UNSET-alpine", "alpine"),
        ("${SET?a-b}", "b"),  # "-" is tried before "?": name "SET?a", default "b"
        ("$SETx", ""),  # the name runs on
        ("${set}", ""),  # names are case-sensitive when looked up
    ],
)
def test_substitution_forms(template: str, expected: str) -> None:
    result = substitute(template, ENV.get)
    assert result.error is None
    assert result.value == expected


@pytest.mark.parametrize(
    "template", ["$", "x$", "$1", "${}", "${1A}", "${SET", "${ SET}", "${SET:=x}", "${SET:+x}",
                 "${SET} cost $ 5"],
)  # fmt: skip
def test_invalid_templates(template: str) -> None:
    result = substitute(template, ENV.get)
    assert result.error == template
    assert result.bare_dollar


def test_later_reference_resets_the_error() -> None:
    # Docker keeps only the status of the last reference: this passes there
    result = substitute("cost $ 5 ${SET}", ENV.get)
    assert result.error is None
    assert result.value == "cost  5 val"
    assert result.bare_dollar  # the strict mode still sees it


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("${UNSET:?}", "required variable UNSET is missing a value: "),
        ("${EMPTY:?oops}", "required variable EMPTY is missing a value: oops"),
        ("${UNSET?no way}", "required variable UNSET is missing a value: no way"),
    ],
)
def test_required_variables(template: str, message: str) -> None:
    result = substitute(template, ENV.get)
    assert result.error == message
    assert not result.bare_dollar


def test_unset_and_substituted_flags() -> None:
    result = substitute("${A}-$B-${SET}", ENV.get)
    assert result.unset == ["A"]  # "$B-..." has a default, as in Docker
    assert result.substituted
    assert not substitute("$$", ENV.get).substituted
    assert substitute("${UNSET:-x}", ENV.get).unset == []


# --- through the whole pipeline ----------------------------------------------------------

BASE = """\
version: "3.8"
services:
  web:
    image: busybox
    secrets:
      - source: pw
{extra_ref}secrets:
  pw:
    file: ./pw.txt
{extra_def}"""


def compose(tmp_path: Path, extra_ref: str = "", extra_def: str = "", name: str = "c.yml") -> Path:
    (tmp_path / "pw.txt").write_text("s3cret")
    path = tmp_path / name
    path.write_text(BASE.format(extra_ref=extra_ref, extra_def=extra_def))
    return path


def load(path: Path, env: dict[str, str] | None = None, **kwargs: object) -> Project:
    return load_project([str(path)], environ=env or {}, cwd=path.parent, **kwargs)  # type: ignore[arg-type]


def errors(project: Project) -> list[tuple[str, str]]:
    return [(d.rule, d.message) for d in project.errors]


def test_bare_dollar_message_is_dockers(tmp_path: Path) -> None:
    path = compose(tmp_path, extra_def='    labels:\n      bad: "cost $ 5"\n')
    for compat in (False, True):
        project = load(path, compat=compat)
        assert errors(project) == [
            (
                "interpolation-format",
                'invalid interpolation format for secrets.pw.labels.bad: "cost $ 5"; '
                "you may need to escape any $ with another $",
            )
        ]
        assert (project.errors[0].line, project.errors[0].column) == (11, 12)
        assert project.errors[0].path == "secrets.pw.labels.bad"


def test_required_variable_message_is_dockers(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(
        'version: "3.8"\nservices:\n  web:\n    image: busybox\n    secrets: [pw]\n'
        "secrets:\n  pw:\n    file: ${SECRETS_DIR:?set SECRETS_DIR to the secrets folder}/pw\n"
    )
    for env in ({}, {"SECRETS_DIR": ""}):
        project = load(tmp_path / "c.yml", env, compat=True)
        assert errors(project) == [
            (
                "interpolation-format",
                'invalid interpolation format for secrets.pw.file: "required variable '
                'SECRETS_DIR is missing a value: set SECRETS_DIR to the secrets folder"; '
                "you may need to escape any $ with another $",
            )
        ]
        assert project.errors[0].line == 8


def test_bare_dollar_hidden_by_a_later_reference_is_strict_only(tmp_path: Path) -> None:
    path = compose(tmp_path, extra_def='    labels:\n      bad: "cost $ 5 ${SET}"\n')
    assert load(path, ENV, compat=True).errors == []
    project = load(path, ENV)
    assert [d.rule for d in project.errors] == ["interpolation-bare-dollar"]
    assert project.errors[0].line == 11


def test_dollar_dollar_in_a_label(tmp_path: Path) -> None:
    path = compose(tmp_path, extra_def='    labels:\n      price: "$$5"\n')
    project = load(path)
    assert project.ok
    assert project.stack is not None
    assert project.stack.secrets["pw"].labels == {"price": "$5"}


def test_keys_are_not_interpolated(tmp_path: Path) -> None:
    path = compose(tmp_path, extra_def="    labels:\n      $SET: x\n")
    project = load(path, ENV)
    assert project.ok
    assert project.stack is not None
    assert project.stack.secrets["pw"].labels == {"$SET": "x"}


def test_version_is_not_interpolated(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text('version: "${V}"\nservices: {}\n')
    project = load(path, {"V": "3.8"}, compat=True)
    assert [d.rule for d in project.errors] == ["version"]


def test_interpolated_mode_is_read_as_decimal(tmp_path: Path) -> None:
    path = compose(tmp_path, extra_ref="        mode: ${MODE}\n")
    project = load(path, {"MODE": "0440"}, compat=True)
    assert project.ok
    assert project.stack is not None
    assert project.stack.services["web"].secrets[0].mode == 440  # not 0o440 = 288
    strict = load(path, {"MODE": "0440"})
    assert [d.rule for d in strict.errors] == ["mode-interpolated"]
    assert "440" in strict.errors[0].message


def test_literal_mode_is_not_cast(tmp_path: Path) -> None:
    # a quoted mode without a variable stays a string and fails the schema, as in Docker
    path = compose(tmp_path, extra_ref='        mode: "0440"\n')
    project = load(path, compat=True)
    assert [d.rule for d in project.errors] == ["schema"]
    assert project.errors[0].path == "services.web.secrets[0].mode"


def test_bad_mode_cast_message_is_dockers(tmp_path: Path) -> None:
    path = compose(tmp_path, extra_ref="        mode: ${MODE}\n")
    project = load(path, {"MODE": "abc"}, compat=True)
    assert errors(project) == [
        (
            "interpolation-cast",
            "error while interpolating services.web.secrets.[].mode: failed to cast to "
            'expected type: strconv.Atoi: parsing "abc": invalid syntax',
        )
    ]
    assert project.errors[0].line == 7


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("true", True), ("ON", True), ("y", True), ("no", False), ("off", False)],
)
def test_external_is_cast_to_bool(tmp_path: Path, value: str, expected: bool) -> None:
    (tmp_path / "c.yml").write_text(
        'version: "3.8"\nservices:\n  web:\n    image: busybox\n    secrets: [ext]\n'
        "secrets:\n  ext:\n    external: ${EXT}\n"
    )
    project = load(tmp_path / "c.yml", {"EXT": value}, compat=True)
    assert project.ok, project.diagnostics
    assert project.stack is not None
    assert project.stack.secrets["ext"].external is expected
    assert project.stack.config["secrets"]["ext"]["external"] is expected


def test_bad_bool_cast(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(
        'version: "3.8"\nservices: {}\nsecrets:\n  ext:\n    external: ${EXT}\n'
    )
    project = load(tmp_path / "c.yml", {"EXT": "maybe"}, compat=True)
    assert errors(project) == [
        (
            "interpolation-cast",
            "error while interpolating secrets.ext.external: failed to cast to expected type: "
            "invalid boolean: maybe",
        )
    ]


def test_unset_variable_is_a_warning(tmp_path: Path) -> None:
    path = compose(tmp_path, extra_def="    labels:\n      tag: x${NOPE}y\n")
    project = load(path)
    assert project.ok
    assert [(d.rule, d.severity, d.line) for d in project.warnings] == [
        ("unset-variable", "warning", 11)
    ]
    assert '"NOPE"' in project.warnings[0].message
    assert project.stack is not None
    assert project.stack.secrets["pw"].labels == {"tag": "xy"}


# --- where values come from --------------------------------------------------------------

TAGGED = 'version: "3.8"\nservices:\n  web:\n    image: "busybox:${TAG}"\n'


def image(project: Project) -> str:
    assert project.ok, project.diagnostics
    assert project.stack is not None
    return str(project.stack.config["services"]["web"]["image"])


def test_dotenv_beside_the_first_file(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yml").write_text(TAGGED)
    (sub / ".env").write_text("# comment\nTAG=fromdotenv\n")
    (tmp_path / ".env").write_text("TAG=fromcwd\n")
    project = load_project(["sub/c.yml"], environ={}, cwd=tmp_path)
    assert image(project) == "busybox:fromdotenv"


def test_a_dollar_spelt_as_a_yaml_escape_is_interpolated(tmp_path: Path) -> None:
    """Files without "$" skip interpolation (start-up), but a double-quoted YAML string can
    spell one with an escape: such a file is interpolated as Docker does."""
    (tmp_path / "c.yml").write_text(TAGGED.replace("${TAG}", "\\x24{TAG}"))
    assert "$" not in (tmp_path / "c.yml").read_text()
    assert image(load(tmp_path / "c.yml", {"TAG": "escaped"})) == "busybox:escaped"
    (tmp_path / "c.yml").write_text(TAGGED.replace("${TAG}", "\\u0024TAG"))
    assert image(load(tmp_path / "c.yml", {"TAG": "escaped"})) == "busybox:escaped"


def test_process_environment_wins_over_dotenv(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(TAGGED)
    (tmp_path / ".env").write_text("TAG=fromdotenv\n")
    assert image(load(tmp_path / "c.yml", {"TAG": "fromenv"})) == "busybox:fromenv"


def test_env_file_replaces_dotenv(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(TAGGED)
    (tmp_path / ".env").write_text("TAG=fromdotenv\nOTHER=1\n")
    (tmp_path / "custom.env").write_text("export TAG='quoted value'\n")
    project = load(tmp_path / "c.yml", env_file="custom.env")
    assert image(project) == "busybox:quoted value"


def test_missing_env_file_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text(TAGGED)
    with pytest.raises(InputError, match=r"nope\.env"):
        load(tmp_path / "c.yml", env_file="nope.env")


def test_read_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / "e"
    path.write_text(
        "\ufeffA=1\n  B = two words # comment\nC=\"x\\ny\"\nD='$lit'\nexport E=e\nF=\n\n# x\n"
    )
    assert read_env_file(path) == {
        "A": "1",
        "B": "two words",
        "C": "x\ny",
        "D": "$lit",
        "E": "e",
        "F": "",
    }


def test_read_env_file_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "e"
    path.write_text("A=1\nnot a pair\n")
    with pytest.raises(InputError, match=":2:"):
        read_env_file(path)


def test_make_lookup_order() -> None:
    lookup = make_lookup({"A": "env", "E": ""}, {"A": "dot", "B": "dot", "E": "dot"})
    assert (lookup("A"), lookup("B"), lookup("E"), lookup("C")) == ("env", "dot", "", None)


# --- relative file: paths ----------------------------------------------------------------


def test_relative_file_resolves_against_the_first_files_dir(tmp_path: Path) -> None:
    first = tmp_path / "a"
    second = tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "c.yml").write_text('version: "3.8"\nservices: {}\n')
    (second / "o.yml").write_text(
        'version: "3.8"\nservices:\n  web:\n    image: x\n    secrets: [pw]\n'
        "secrets:\n  pw:\n    file: ./pw.txt\n"
    )
    (first / "pw.txt").write_text("s")
    project = load_project(["a/c.yml", "b/o.yml"], environ={}, cwd=tmp_path)
    assert project.ok, project.diagnostics
    assert project.stack is not None
    assert project.stack.secrets["pw"].file == (first / "pw.txt").resolve()
    assert project.working_dir == first.resolve()


def test_relative_file_from_stdin_resolves_against_cwd(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("s")
    text = BASE.format(extra_ref="", extra_def="").encode()
    project = load_project(["-"], environ={}, cwd=tmp_path, stdin=io.BytesIO(text))
    assert project.ok, project.diagnostics
    assert project.files == ["<stdin>"]
    assert project.stack is not None
    assert project.stack.secrets["pw"].file == tmp_path / "pw.txt"


def test_file_paths_are_not_user_expanded(tmp_path: Path) -> None:
    path = compose(tmp_path)
    path.write_text(path.read_text().replace("./pw.txt", "~/pw.txt"))
    project = load(path, compat=True)
    assert project.stack is not None
    assert project.stack.secrets["pw"].file == tmp_path / "~" / "pw.txt"
