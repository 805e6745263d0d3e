"""Docker's grammar on the command line: aliases, -h, -f, -q, --format templates, help texts,
near-miss suggestions, shell completion and the no-store note (issue 14)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from unit.backends.fake_docker import FakeDocker
from unit.backends.fake_engine_api import serve
from unit.cli_helpers import Run, run_main
from unit.store_worker import FAST_KDF

from composesecrets.backends import BACKENDS
from composesecrets.backends.engine import tmpfs
from composesecrets.backends.engine.backend import EngineBackend
from composesecrets.cli.templates import parse_format, render
from composesecrets.errors import UsageError
from composesecrets.store import EnvKeyUnlock, PassphraseUnlock, Store, Usage

KEY = base64.b64encode(os.urandom(32)).decode()

COMPOSE = """\
version: "3.8"
services:
  web:
    image: busybox:test
    secrets: [pw]
  worker:
    image: busybox:test
    deploy:
      replicas: 2
secrets:
  pw:
    file: ./pw.txt
"""


def run(args: list[str], stdin: str | None = None) -> Run:
    result = run_main(args, stdin)
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    return result


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store in tmp_path/store unlocked by an environment key; cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMPOSESECRETS_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("COMPOSESECRETS_KEY", KEY)
    monkeypatch.delenv("COMPOSESECRETS_PASSPHRASE", raising=False)
    return tmp_path


@pytest.fixture
def two_secrets(home: Path) -> Path:
    assert run(["secret", "create", "db_pw", "-"], "one").code == 0
    assert run(["secret", "create", "-l", "team=web", "api", "-"], "two").code == 0
    return home


@pytest.fixture
def engine(home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    """The real engine backend on an in-memory Docker Engine (no swarm)."""
    fake = FakeDocker()
    monkeypatch.setitem(BACKENDS, "engine", lambda: EngineBackend(fake))
    serve(monkeypatch, engine=fake)
    monkeypatch.delitem(BACKENDS, "swarm")
    root = home / "secret-root"
    root.mkdir()
    monkeypatch.setattr(tmpfs, "runtime_root", lambda: root)
    (home / "compose.yaml").write_text(COMPOSE)
    (home / "pw.txt").write_text("s3cret")
    return fake


@pytest.fixture
def deployed(engine: FakeDocker) -> FakeDocker:
    """Stack "shop" deployed through the CLI (with the `stack up` alias and `-f`)."""
    result = run(["stack", "up", "shop", "-f", "compose.yaml"])
    assert result.code == 0, result
    return engine


# ---------------------------------------------------------------- aliases, -h, bare groups


def test_bare_command_prints_help_and_exits_0() -> None:
    for args in ([], ["stack"], ["secret"], ["store"]):
        result = run(args)
        assert result.code == 0, (args, result)
        assert result.stdout.startswith(f"Usage: composesecrets {' '.join(args)}".rstrip())
        assert "Commands:" in result.stdout


def test_dash_h_is_help_everywhere() -> None:
    for args in (["-h"], ["stack", "-h"], ["secret", "ls", "-h"], ["stack", "deploy", "-h"]):
        result = run(args)
        assert result.code == 0, (args, result)
        assert "Usage: composesecrets" in result.stdout
        assert "-h, --help" in result.stdout


def test_aliases_show_beside_their_command() -> None:
    stack = run(["stack", "--help"]).stdout
    assert "deploy, up" in stack
    assert "rm, remove, down" in stack
    assert "ls, list" in stack
    secret = run(["secret", "--help"]).stdout
    assert "ls, list" in secret
    assert "rm, remove  " in secret  # not `down`: that is compose's word for stacks
    assert run(["secret", "down", "x"]).code == 2


def test_secret_list_and_remove_aliases(two_secrets: Path) -> None:
    listed = run(["secret", "list", "--format", "{{.Name}}"])
    assert listed.stdout.splitlines() == ["api", "db_pw"]
    removed = run(["secret", "remove", "db_pw"])
    assert removed.code == 0
    assert run(["secret", "ls", "-q"]).stdout.count("\n") == 1


def test_stack_up_down_remove_aliases(deployed: FakeDocker) -> None:
    assert "shop_web_1" in deployed.container_names()
    assert run(["stack", "down", "shop"]).code == 0
    assert deployed.container_names() == []
    assert run(["stack", "deploy", "shop", "-c", "compose.yaml"]).code == 0
    assert run(["stack", "remove", "shop", "-q"]).code == 0
    assert deployed.container_names() == []


def test_unknown_command_suggests_only_a_close_one() -> None:
    far = run(["stack", "logs"])
    assert far.code == 2
    assert "'composesecrets stack logs' is not a command" in far.stderr
    assert "Did you mean" not in far.stderr
    near = run(["stack", "lss"])
    assert near.code == 2
    assert "Did you mean 'composesecrets stack ls'?" in near.stderr
    alias = run(["secret", "lst"])
    assert "Did you mean 'composesecrets secret l" in alias.stderr  # ls or list
    top = run(["valdiate"])
    assert "Did you mean 'composesecrets validate'?" in top.stderr


def test_dash_f_is_a_compose_file_and_secret_ls_keeps_filter(two_secrets: Path) -> None:
    (two_secrets / "pw.txt").write_text("x")
    (two_secrets / "c.yml").write_text(COMPOSE)
    assert run(["validate", "-f", "c.yml"]).code == 0
    by_f = run(["config", "-f", "c.yml", "--format", "json"])
    by_c = run(["config", "-c", "c.yml", "--format", "json"])
    assert by_f.code == 0 and by_f.stdout == by_c.stdout
    filtered = run(["secret", "ls", "-f", "name=db", "--format", "{{.Name}}"])
    assert filtered.stdout.splitlines() == ["db_pw"]


def test_stack_config_is_the_top_level_config(home: Path) -> None:
    (home / "pw.txt").write_text("x")
    (home / "compose.yaml").write_text(COMPOSE)
    top = run(["config", "--format", "json"])
    stack = run(["stack", "config", "-c", "compose.yaml", "--format", "json"])
    assert stack.code == 0, stack
    assert stack.stdout == top.stdout
    assert json.loads(stack.stdout)["services"]["worker"]["deploy"]["replicas"] == 2


# ---------------------------------------------------------------- help texts


def test_help_names_arguments_and_shows_choices() -> None:
    create = run(["secret", "create", "--help"]).stdout
    assert "Usage: composesecrets secret create [OPTIONS] NAME FILE|-" in create
    assert "{" not in create
    assert "name or ID" not in create
    assert "secret rm [OPTIONS] NAME..." in run(["secret", "rm", "--help"]).stdout
    assert "secret inspect [OPTIONS] SECRET..." in run(["secret", "inspect", "--help"]).stdout
    deploy = run(["stack", "deploy", "--help"]).stdout
    assert "--backend [engine|swarm]" in deploy
    assert "-c, -f, --compose-file FILE" in deploy
    assert "--format [table|json]" in run(["store", "status", "--help"]).stdout
    assert "--format [table|json|TEMPLATE]" in run(["stack", "ls", "--help"]).stdout
    assert "--store DIR" in run(["--help"]).stdout


def test_invalid_backend_choice_is_a_usage_error() -> None:
    result = run(["stack", "deploy", "shop", "--backend", "k8s"])
    assert result.code == 2
    assert "k8s" in result.stderr


# ---------------------------------------------------------------- --format templates


def test_template_parsing_and_rendering() -> None:
    fields = ["ID", "Name", "Version", "Spec"]
    rows = [{"ID": "a1", "Name": "x", "Version": 2, "Spec": {"Labels": {"k": "v"}}}]
    assert render(parse_format("{{.Name}}", fields, command="t"), rows, {}) == "x"
    assert render(parse_format("{{ .ID }}:{{.Version}}", fields, command="t"), rows, {}) == "a1:2"
    assert render(parse_format("{{.Spec.Labels}}", fields, command="t"), rows, {}) == "k=v"
    assert render(parse_format("{{json .Spec}}", fields, command="t"), rows, {}) == (
        '{"Labels":{"k":"v"}}'
    )
    table = parse_format("table {{.Name}}\\t{{.Version}}", fields, command="t")
    assert render(table, [*rows, {**rows[0], "Name": "long-name"}], {"Name": "NAME"}) == (
        "NAME        VERSION\nx           2\nlong-name   2"
    )
    assert parse_format("json", fields, command="t").kind == "json"
    assert parse_format(None, fields, command="t").kind == "table"


@pytest.mark.parametrize(
    "bad",
    ["{{.Nope}}", "{{range .}}{{end}}", "{{.Name | upper}}", "{{.Name", "plain", "{{printf .ID}}"],
)
def test_templates_outside_the_subset_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_format(bad, ["ID", "Name"], command="secret ls")
    assert caught.value.exit_code == 2
    assert caught.value.hint is not None and ".ID, .Name" in caught.value.hint


def test_secret_ls_formats(two_secrets: Path) -> None:
    ids = run(["secret", "ls", "-q"]).stdout.split()
    assert run(["secret", "ls", "--format", "{{.ID}}"]).stdout.split() == ids
    table = run(["secret", "ls", "--format", "table {{.Name}}\\t{{.Version}}\\t{{.Labels}}"])
    assert table.stdout.splitlines() == [
        "NAME    VERSION   LABELS",
        "api     1         team=web",
        "db_pw   1",
    ]
    lines = run(["secret", "ls", "--format", "{{json .}}"]).stdout.splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"ID", "Name", "Version", "CreatedAt", "UpdatedAt", "Labels"}
    assert (first["Name"], first["Labels"]) == ("api", "team=web")
    document = json.loads(run(["secret", "ls", "--format", "json"]).stdout)
    assert [d["Spec"]["Name"] for d in document] == ["api", "db_pw"]
    bad = run(["secret", "ls", "--format", "{{.Size}}"])
    assert bad.code == 2
    assert ".ID, .Name, .Version, .CreatedAt, .UpdatedAt" in bad.stderr
    assert bad.stdout == ""


def test_secret_inspect_format(two_secrets: Path) -> None:
    out = run(
        ["secret", "inspect", "api", "db_pw", "--format", "{{.Spec.Name}} {{.Version.Index}}"]
    )
    assert out.stdout.splitlines() == ["api 1", "db_pw 1"]
    labels = run(["secret", "inspect", "api", "--format", "{{json .Spec.Labels}}"])
    assert json.loads(labels.stdout) == {"team": "web"}
    missing = run(["secret", "inspect", "api", "--format", "{{.Spec.Nam}}"])
    assert missing.code == 2
    assert "fields: .Name, .Labels" in missing.stderr
    assert run(["secret", "inspect", "api", "--format", "table"]).code == 2


def test_stack_lists_quiet_and_templates(deployed: FakeDocker) -> None:
    assert run(["stack", "ls", "-q"]).stdout == "shop\n"
    assert run(["stack", "ls", "--format", "{{.Name}} {{.Services}} {{.Backend}}"]).stdout == (
        "shop 2 engine\n"
    )
    ids = run(["stack", "ps", "shop", "-q"]).stdout.split()
    assert len(ids) == 3 and all(ids)
    names = run(["stack", "ps", "shop", "--format", "{{.Name}}\\t{{.CurrentState}}"]).stdout
    assert names.splitlines() == [
        "shop_web_1\trunning",
        "shop_worker_1\trunning",
        "shop_worker_2\trunning",
    ]
    assert run(["stack", "services", "shop", "--quiet"]).stdout.split() == [
        "shop_web",
        "shop_worker",
    ]
    table = run(["stack", "services", "shop", "--format", "table {{.Name}}\\t{{.Replicas}}"])
    assert table.stdout.splitlines() == [
        "NAME          REPLICAS",
        "shop_web      1/1",
        "shop_worker   2/2",
    ]
    modes = run(["stack", "services", "shop", "--format", "{{.Name}} {{.Mode}} {{.ID}}|"])
    assert modes.stdout.splitlines() == ["shop_web replicated |", "shop_worker replicated |"]
    default = run(["stack", "services", "shop"]).stdout.splitlines()
    assert default[0].split() == ["NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    bad = run(["stack", "services", "shop", "--format", "{{.Node}}"])
    assert bad.code == 2
    assert ".ID, .Name, .Mode, .Replicas, .Image, .Ports" in bad.stderr
    docker_fields = "{{.ID}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}|{{.Ports}}"
    ps = run(["stack", "ps", "shop", "--format", docker_fields]).stdout.splitlines()
    assert [line.split()[1:] for line in ps] == [["fake-node", "running", "running", "|"]] * 3
    bad = run(["stack", "ps", "shop", "--format", "{{.Mode}}"])
    assert ".ID, .Name, .Service, .Image, .Node, .DesiredState, .CurrentState, .Error, " in (
        bad.stderr
    )
    document = json.loads(run(["stack", "ls", "--format", "json"]).stdout)
    assert document == [{"Name": "shop", "Services": 2, "Backend": "engine"}]


def test_progress_stays_off_stdout(deployed: FakeDocker) -> None:
    (Path("pw.txt")).write_text("changed")
    result = run(["stack", "deploy", "shop"])
    assert result.code == 0
    assert "replacing shop_web_1" in result.stderr
    assert "replacing" not in result.stdout
    assert result.stdout.startswith("stack shop deployed on engine:")


# ---------------------------------------------------------------- no store


def test_secret_ls_notes_a_missing_explicit_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOSESECRETS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    default = run(["secret", "ls"])
    assert (default.code, default.stderr) == (0, "")
    given = run(["--store", str(tmp_path / "typo"), "secret", "ls", "-q"])
    assert given.code == 0
    assert given.stdout == ""
    assert f"note: no secret store at {tmp_path / 'typo'}" in given.stderr
    monkeypatch.setenv("COMPOSESECRETS_HOME", str(tmp_path / "elsewhere"))
    by_env = run(["secret", "ls"])
    assert f"note: no secret store at {tmp_path / 'elsewhere'}" in by_env.stderr


# ---------------------------------------------------------------- shell completion


def complete(monkeypatch: pytest.MonkeyPatch, words: str, cword: int) -> list[str]:
    monkeypatch.setenv("_COMPOSESECRETS_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", words)
    monkeypatch.setenv("COMP_CWORD", str(cword))
    result = run_main([])
    monkeypatch.delenv("_COMPOSESECRETS_COMPLETE")
    assert result.code == 0, result
    assert result.stderr == ""
    return result.stdout.split()


def test_show_completion_prints_a_bash_script(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(["--show-completion", "bash"])
    assert result.code == 0
    assert "_COMPOSESECRETS_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _composesecrets_completion composesecrets" in result.stdout


def test_completes_commands_options_and_secret_names(
    two_secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert complete(monkeypatch, "composesecrets st", 1) == ["stack", "store"]
    assert "services" in complete(monkeypatch, "composesecrets stack ", 2)
    assert "--format" in complete(monkeypatch, "composesecrets secret ls --", 3)
    assert complete(monkeypatch, "composesecrets secret inspect ", 3) == ["api", "db_pw"]
    assert complete(monkeypatch, "composesecrets secret rm d", 3) == ["db_pw"]
    elsewhere = f"composesecrets --store {two_secrets / 'none'} secret rm "
    assert complete(monkeypatch, elsewhere, 5) == []


def test_completes_stack_names_from_the_store_records(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store.open(home / "store", unlock=EnvKeyUnlock(key=KEY)) as store:
        store.create("shop_pw", b"x")
        store.record_usage("shop", "engine", [Usage("shop_pw", "web", 1)])
    assert complete(monkeypatch, "composesecrets stack ps ", 3) == ["shop"]
    assert complete(monkeypatch, "composesecrets stack rm s", 3) == ["shop"]


def test_completion_never_prompts_for_a_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOSESECRETS_KEY", raising=False)
    monkeypatch.delenv("COMPOSESECRETS_PASSPHRASE", raising=False)
    monkeypatch.setenv("COMPOSESECRETS_HOME", str(tmp_path / "store"))
    with Store.open(
        tmp_path / "store", unlock=PassphraseUnlock("correct horse battery", kdf=FAST_KDF)
    ) as store:
        store.create("locked_name", b"x")
    # names need no key: listed without asking; values are never touched
    assert complete(monkeypatch, "composesecrets secret inspect ", 3) == ["locked_name"]
    os.chmod(tmp_path / "store", 0o755)  # unsafe: the store refuses to open, silently here
    assert complete(monkeypatch, "composesecrets secret inspect ", 3) == []


# ---------------------------------------------------------------- start-up


def test_command_word_skips_the_store_option() -> None:
    from composesecrets.cli import _command_word

    assert _command_word(["--store", "stack", "secret", "ls"]) == "secret"
    assert _command_word(["--store=/x", "-h"]) is None
    assert _command_word(["validate", "-c", "x"]) == "validate"


def test_validate_secret_ls_and_stack_ls_import_only_what_they_need(two_secrets: Path) -> None:
    (two_secrets / "c.yml").write_text('version: "3.8"\nservices:\n  web:\n    image: nginx\n')

    def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
        """The modules a fresh process has loaded when the command ends."""
        script = (
            "import json, sys\n"
            f"sys.argv = ['composesecrets', *{list(args)!r}]\n"
            "from composesecrets.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert proc.returncode == 0, proc.stderr
        return set(json.loads(proc.stderr.splitlines()[-1]))

    validate = imported("validate", "-c", "c.yml")
    assert "composesecrets.compose.project" in validate
    for heavy in ("jsonschema", "docker", "cryptography", "composesecrets.cli.secret_cmds"):
        assert heavy not in validate
    # a file without "$" needs no interpolation machinery; the store is not read at all
    for unused in ("composesecrets.compose.interpolate", "composesecrets.store"):
        assert unused not in validate
    assert "composesecrets.compose.envfiles" in validate
    listing = imported("secret", "ls")
    assert "composesecrets.cli.secret_cmds" in listing
    # listing needs no key: neither cryptography nor the docker SDK nor the compose reader
    for heavy in ("docker", "yaml", "cryptography", "composesecrets.cli.stack_cmds"):
        assert heavy not in listing
    # nor the store's parts it does not use: the report types (verify, status, inspect, usage,
    # audit, key changes), usage records, import/export, value sources, the KEK and KDF costs
    for unused in ("reports", "usage", "bulk", "sources", "kdf"):
        assert f"composesecrets.store.{unused}" not in listing
    # nor what only a busy database, a key rotation or the key itself needs
    for unused in ("random", "tempfile", "base64", "hmac"):
        assert unused not in listing
    # the stack list asks a local engine (none here: it fails after the imports) with the
    # standard library: neither the docker SDK nor the backends' deploy code nor a store
    stacks = imported("stack", "ls", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert "composesecrets.backends.engine_reader" in stacks
    assert "http.client" in stacks  # plain HTTP on a unix socket: OpenSSL is not loaded
    for heavy in ("docker", "requests", "urllib3", "composesecrets.backends.engine.backend",
                  "composesecrets.backends.swarm.backend", "composesecrets.backends.base",
                  "composesecrets.stackfiles", "composesecrets.model", "composesecrets.store",
                  "cryptography", "yaml", "jsonschema", "fractions", "composesecrets.stacks", "ssl",
                  "composesecrets.cli.compose_cmds", "composesecrets.cli.progress"):  # fmt: skip
        assert heavy not in stacks, heavy
    # a restore at boot unlocks the store and asks the engine through the light transport:
    # neither the SDK nor the deploy code, nor the store's report types
    restore = imported("stack", "restore", "shop", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert {"composesecrets.backends.engine.restore", "composesecrets.store.keyslot"} <= restore
    for heavy in ("docker", "ssl", "yaml", "composesecrets.backends.base",
                  "composesecrets.stackfiles", "composesecrets.store.reports",
                  "composesecrets.compose.project"):  # fmt: skip
        assert heavy not in restore, heavy
    # a remote engine is asked through the docker SDK (TLS, ssh: whatever the SDK reads)
    remote = imported("stack", "ls", env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert "docker" in remote


def test_the_start_up_commands_annotations_are_evaluated_once() -> None:
    """typer reads a command's annotations twice on every start: string annotations (``from
    __future__ import annotations``) were compiled and evaluated each time (~3 ms for
    ``validate``), so the modules of the timed commands keep evaluated ones."""
    import importlib

    for module, names in (
        ("app", ["_root"]),
        ("compose_cmds", ["validate", "config"]),
        ("secret_cmds", ["secret_ls", "secret_inspect"]),
        ("stack_cmds", ["stack_ls", "stack_ps", "stack_services"]),
    ):
        found = importlib.import_module(f"composesecrets.cli.{module}")
        for name in names:
            hints = getattr(found, name).__annotations__
            assert hints, name
            assert not [k for k, v in hints.items() if isinstance(v, str)], (module, name)


def test_only_the_command_being_run_is_registered() -> None:
    """typer builds every registered command on each start: a fresh `stack ls` registers
    only `ls`; a misspelt command gets them all back, in their declared order."""
    script = (
        "import sys\n"
        "from composesecrets.cli import load_commands\n"
        "load_commands(sys.argv[1:])\n"
        "from composesecrets.cli.stack_cmds import stack_app\n"
        "print(' '.join(c.name or '' for c in stack_app.registered_commands))\n"
    )

    def registered(*args: str) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
        )
        return proc.stdout.split()

    assert registered("stack", "ls") == ["ls"]
    assert registered("stack", "down", "shop") == ["rm"]  # an alias selects its command
    everything = ["deploy", "rm", "restore", "config", "ls", "ps", "services"]
    assert registered("stack", "lss") == everything
    assert registered("stack", "--help") == everything
    assert registered("--store", "x", "stack") == everything


def test_deploy_unlocks_before_any_progress(
    home: Path, engine: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOSESECRETS_KEY")
    with Store.open(
        home / "store", unlock=PassphraseUnlock("correct horse battery", kdf=FAST_KDF)
    ) as store:
        store.create("other", b"x")
    result = run(["stack", "deploy", "shop"])  # no terminal, no passphrase: refused
    assert result.code == 3, result
    assert "passphrase" in result.stderr
    assert "importing secret" not in result.stderr  # a prompt would not be drawn over
    monkeypatch.setenv("COMPOSESECRETS_PASSPHRASE", "correct horse battery")
    deployed = run(["stack", "deploy", "shop"])
    assert deployed.code == 0, deployed
    assert deployed.stderr.index("importing secret shop_pw") < deployed.stderr.index("creating")
