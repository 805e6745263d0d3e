"""``stack deploy --dry-run``: what would be created, recreated, left unchanged and removed,
and which secret/config versions each service would get; the store and the engine stay as
they are (engine and Swarm backends on the in-memory Docker client, a real store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from unit.backends.fake_docker import FakeDocker
from unit.cli_helpers import run_main
from unit.test_stack_configs import COMPOSE
from unit.test_stack_configs import engine as engine
from unit.test_stack_configs import project as project
from unit.test_stack_configs import swarm as swarm
from unit.test_stacks import KEY, opener, options, progress

from composesecrets import stacks
from composesecrets.errors import NotFoundError


def snapshot(fake: FakeDocker) -> tuple[object, ...]:
    return (
        fake.container_names(), fake.network_names(), fake.service_names(),
        fake.secret_names(), fake.config_names(),
        [c for c in fake.calls],
    )  # fmt: skip


def store_state(project: Path) -> list[object]:
    """Secrets with versions, and the audit log (a dry run writes no audit entry either)."""
    with opener(project) as store:
        return sorted((i.name, i.version) for i in store.list_secrets()) + [
            (e.action, e.target) for e in store.audit()
        ]


def versions(preview: stacks.DryRun) -> list[tuple[str, str, int, bool]]:
    return [(p.service, p.store_name, p.version, p.new) for p in preview.files]


def test_first_dry_run_would_create_everything_and_changes_nothing(
    project: Path,
    engine: FakeDocker,
) -> None:
    before, stored = snapshot(engine), store_state(project)
    preview = stacks.dry_run("shop", options(project))
    assert preview.result.created == ("shop_web_1",)
    assert preview.result.networks_created == ("shop_default",)
    assert versions(preview) == [
        ("web", "shop_pw", 1, True),
        ("web", "shop_site", 1, True),
        ("web", "shop_site", 1, True),
        ("web", "app", 1, False),
    ]
    assert snapshot(engine) == before and store_state(project) == stored


def test_dry_run_after_a_change_names_the_new_version_and_the_recreated(
    project: Path,
    engine: FakeDocker,
) -> None:
    stacks.deploy("shop", options(project), progress)
    same = stacks.dry_run("shop", options(project))
    assert same.result.unchanged == ("shop_web_1",) and not same.result.created
    assert not any(p.new for p in same.files)
    (project / "site.conf").write_bytes(b"server { listen 8080; }\n")
    text = COMPOSE.replace("services:\n", "services:\n  extra:\n    image: busybox:test\n")
    (project / "compose.yaml").write_text(text)
    before, stored = snapshot(engine), store_state(project)
    preview = stacks.dry_run("shop", options(project))
    assert preview.result.recreated == ("shop_web_1",)
    assert preview.result.created == ("shop_extra_1",)
    assert ("web", "shop_site", 2, True) in versions(preview)
    assert ("web", "shop_pw", 1, False) in versions(preview)
    assert snapshot(engine) == before and store_state(project) == stored
    with opener(project) as store:
        assert store.inspect("shop_site").info.version == 1
    # a removed service
    (project / "compose.yaml").write_text(text.replace("  web:\n", "  gone:\n", 1))
    assert "shop_web_1" in stacks.dry_run("shop", options(project)).result.removed


def test_dry_run_on_swarm(project: Path, swarm: FakeDocker) -> None:
    opts = options(project)
    opts.backend = "swarm"
    assert stacks.dry_run("shop", opts).result.created == ("web",)
    stacks.deploy("shop", opts, progress)
    assert stacks.dry_run("shop", opts).result.unchanged == ("web",)
    (project / "site.conf").write_bytes(b"other\n")
    before = snapshot(swarm)
    assert stacks.dry_run("shop", opts).result.recreated == ("web",)
    assert snapshot(swarm) == before


def test_dry_run_refuses_a_missing_external(project: Path, engine: FakeDocker) -> None:
    with opener(project) as store:
        store.remove("app")
    with pytest.raises(NotFoundError, match="config app"):
        stacks.dry_run("shop", options(project))


@pytest.fixture
def cli_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COMPOSESECRETS_HOME", str(project / "store"))
    monkeypatch.setenv("COMPOSESECRETS_KEY", KEY)
    monkeypatch.chdir(project)
    return project


def test_cli_dry_run_prints_the_plan_and_exits_0(
    cli_env: Path,
    engine: FakeDocker,
) -> None:
    result = run_main(["stack", "deploy", "shop", "-c", "compose.yaml", "--dry-run"])
    assert result.code == 0, result.output
    assert "created    shop_web_1" in result.stdout
    assert (
        "files      web: config shop_site@1 (new) -> /etc/nginx/conf.d/site.conf" in result.stdout
    )
    assert "files      web: secret shop_pw@1 (new) -> /run/secrets/pw" in result.stdout
    assert "nothing was changed" in result.stdout
    assert "CANARY" not in result.output
    assert engine.container_names() == []


def test_cli_dry_run_invalid_input_exits_1(cli_env: Path, engine: FakeDocker) -> None:
    (cli_env / "compose.yaml").write_text(COMPOSE.replace("image: busybox:test", "image: [1]"))
    result = run_main(["stack", "deploy", "shop", "-c", "compose.yaml", "--dry-run"])
    assert result.code == 1
    (cli_env / "compose.yaml").write_text(COMPOSE.replace("    image:", "    build: .\n    image:"))
    result = run_main(["stack", "deploy", "shop", "-c", "compose.yaml", "--dry-run"])
    assert result.code == 1 and "--allow-unapplied" in result.output
    assert engine.container_names() == []


def test_dry_run_without_a_store_creates_none(
    project: Path, engine: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPOSESECRETS_KEY", KEY)
    opts = options(project)
    opts.store_opener = None
    opts.store_dir = tmp_path / "no-store-here"
    (project / "compose.yaml").write_text(COMPOSE.replace("  app:\n    external: true\n", "")
                                          .replace("      - source: app\n        target: app.ini\n",
                                                   ""))  # fmt: skip
    preview = stacks.dry_run("shop", opts)
    assert preview.result.created == ("shop_web_1",)
    assert all(p.new and p.version == 1 for p in preview.files)
    assert not opts.store_dir.exists()
