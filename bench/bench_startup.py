#!/usr/bin/env python3
"""Start-up time of everyday commands against the smallest typer CLI, in one run.

Byte-compiles the composesecrets package first (as pip and pipx do when they install it), then
times, each in fresh processes with this Python:

* the peer: a typer app with one no-op command (``python noop_cli.py``), the floor any typer
  CLI pays;
* ``composesecrets --version``;
* ``composesecrets secret ls`` on a store of 10 secrets (unlocked by a random
  ``COMPOSESECRETS_KEY``; listing needs no key);
* ``composesecrets stack ls`` (asks the Docker Engine; skipped with a line when the engine is
  not reachable);
* ``composesecrets validate -c compose.yml`` of a 1-service file.

The commands are run in turn, round after round (one untimed warm-up round first), so that
the page cache and the machine's load are shared. It prints each command's median and best
time and the ratio of medians to the peer against the goal (issue 14: at most 1.5x), then the
heaviest imports of ``validate`` (``python -X importtime``). Reports only: exits 1 only when a
command fails.

Usage: ``python bench/bench_startup.py [--quick] [--rounds N]``
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 1.5

NOOP_CLI = """\
import typer

app = typer.Typer()


@app.command()
def noop() -> None:
    pass


app()
"""

COMPOSE = """\
version: "3.8"
services:
  web:
    image: nginx:alpine
    secrets: [pw]
secrets:
  pw:
    file: ./pw.txt
"""


def _ours() -> list[str]:
    script = Path(sys.executable).with_name("composesecrets")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "composesecrets"]


def _time(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-300:]
        raise RuntimeError(f"{' '.join(cmd[-3:])} exited {proc.returncode}: {tail}")
    return elapsed


def _engine_reachable() -> str | None:
    """None when the engine answers, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    return None


def _import_profile(cmd: list[str], env: dict[str, str], cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "composesecrets", *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith("   ") and not name.startswith("     "):  # top-level imports
            rows.append((int(cumulative), name.strip()))
    rows.sort(reverse=True)
    shown = ", ".join(f"{name} {us / 1000:.1f} ms" for us, name in rows[:6])
    print(f"  heaviest imports of `{' '.join(cmd)}`: {shown}")


def _compile_package() -> None:
    """Byte-compile composesecrets as an install does (pip and pipx compile what they
    install; typer's files are compiled). An editable checkout under
    ``PYTHONDONTWRITEBYTECODE=1`` would otherwise recompile our modules from source in every
    timed process and not in the peer's."""
    import compileall

    import composesecrets

    package = Path(composesecrets.__file__).parent
    ok = compileall.compile_dir(package, quiet=1)
    state = "compiled" if ok else "compiled with errors"
    print(f"  {package}: byte-{state} first, as an install does")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 15; --quick: 5)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 15)
    ours = _ours()
    print("start-up benchmark (fresh processes; ratio = median / median of the no-op typer CLI)")
    print(f"  python {sys.version.split()[0]}, {os.cpu_count()} CPUs; ours: {' '.join(ours)}")
    _compile_package()

    with tempfile.TemporaryDirectory(prefix="cs-bench-startup-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o700)
        (root / "noop_cli.py").write_text(NOOP_CLI)
        (root / "compose.yml").write_text(COMPOSE)
        (root / "pw.txt").write_text("not a real secret")
        key = base64.b64encode(os.urandom(32)).decode()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSESECRETS_")}
        env.update(
            HOME=str(root / "home"), COMPOSESECRETS_HOME=str(root / "store"), COMPOSESECRETS_KEY=key
        )
        from composesecrets.store import EnvKeyUnlock, Store

        with Store.open(
            root / "store", unlock=EnvKeyUnlock(key=key), environ={"HOME": env["HOME"]}
        ) as store:
            store.import_many((f"bench_{i:02d}", os.urandom(64), {}) for i in range(10))

        commands: dict[str, list[str]] = {
            "typer no-op CLI (peer)": [sys.executable, str(root / "noop_cli.py")],
            "--version": [*ours, "--version"],
            "secret ls (10 secrets)": [*ours, "secret", "ls"],
            "stack ls": [*ours, "stack", "ls"],
            "validate (1 service)": [*ours, "validate", "-c", "compose.yml"],
        }
        engine = _engine_reachable()
        if engine is not None:
            del commands["stack ls"]
        times: dict[str, list[float]] = {name: [] for name in commands}
        try:
            for round_ in range(rounds + 1):
                for name, cmd in commands.items():
                    elapsed = _time(cmd, env, root)
                    if round_:  # round 0 warms the page cache
                        times[name].append(elapsed)
        except RuntimeError as exc:
            print(f"  FAILED: {exc}")
            return 1

        peer = statistics.median(times["typer no-op CLI (peer)"])
        print(f"\n  {'command':<26} {'median':>9} {'best':>9} {'ratio':>7}   goal <= {GOAL}x")
        for name, samples in times.items():
            median = statistics.median(samples)
            ratio = median / peer
            verdict = "" if name.endswith("(peer)") else ("ok" if ratio <= GOAL else "MISSED")
            print(
                f"  {name:<26} {median * 1000:7.1f} ms {min(samples) * 1000:7.1f} ms"
                f" {ratio:6.2f}x   {verdict}"
            )
        if engine is not None:
            print(f"  stack ls                   skipped: engine not reachable ({engine})")
        print()
        _import_profile(["validate", "-c", "compose.yml"], env, root)
        _import_profile(["secret", "ls"], env, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
