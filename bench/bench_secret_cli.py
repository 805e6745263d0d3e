#!/usr/bin/env python3
"""Benchmark ``composesecrets secret create`` against ``docker secret create``, and ``secret ls``.

In one run:

* creates N secrets of 1 KiB (default 100; ``--quick``: 20) one command each with
  ``composesecrets secret create NAME FILE`` in a fresh temporary store (unlocked by a random
  ``COMPOSESECRETS_KEY``, so no key file), then the same values with
  ``docker secret create NAME FILE`` on the local swarm (unique name prefix; every secret it
  made is removed with ``docker secret rm`` afterwards). Docker's side is skipped, with a line
  saying why, when ``docker info`` fails or this node is not a swarm manager;
* times ``composesecrets secret ls`` in fresh processes on a store of 10,000 secrets (filled
  through the library's ``import_many``) against the 400 ms goal.

Every timed command is a fresh process; wall time covers spawn to exit. Values are random,
written 0600 in a 0700 temporary directory that is deleted at the end, with the stores.
Reports only: exits 1 only when a command fails.

Usage: ``python bench/bench_secret_cli.py [--quick] [--count N] [--docker PATH]``
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from composesecrets.store import EnvKeyUnlock, Store

KIB = 1024
LS_GOAL_S = 0.4
LS_SIZE = 10_000


class CommandFailed(Exception):
    pass


def _ours() -> list[str]:
    script = Path(sys.executable).with_name("composesecrets")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "composesecrets"]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        shown = " ".join(cmd[:4])
        raise CommandFailed(f"{shown} ... exited {proc.returncode}: {proc.stderr.strip()[:300]}")
    return elapsed, proc.stdout


def _docker_swarm(docker: str) -> str | None:
    """None when Docker's side can run, else the reason it cannot."""
    if shutil.which(docker) is None:
        return f"no docker CLI ({docker})"
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if proc.returncode != 0:
        return f"`docker info` failed: {proc.stderr.strip()[:200]}"
    state = proc.stdout.split()
    if state != ["active", "true"]:
        return f"this node is not a swarm manager (state: {' '.join(state) or 'unknown'})"
    return None


def _write_values(directory: Path, count: int) -> list[Path]:
    files = []
    for i in range(count):
        path = directory / f"value-{i:05d}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(os.urandom(KIB))
        files.append(path)
    return files


def _summary(label: str, times: list[float]) -> str:
    total = sum(times)
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"  {label:<28} total {total:7.2f} s   per secret: mean {total / len(times) * 1000:6.1f}"
        f" ms, median {statistics.median(times) * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms,"
        f" min {ordered[0] * 1000:6.1f} ms"
    )


def _docker_cleanup(docker: str, prefix: str) -> int:
    """Remove every secret whose name starts with ``prefix``; returns how many were left over."""
    listed = subprocess.run(
        [docker, "secret", "ls", "-q", "--filter", f"name={prefix}"],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = listed.stdout.split()
    for start in range(0, len(ids), 50):
        subprocess.run(
            [docker, "secret", "rm", *ids[start : start + 50]], capture_output=True, check=False
        )
    again = subprocess.run(
        [docker, "secret", "ls", "-q", "--filter", f"name={prefix}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return len(again.stdout.split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20 secrets, fewer ls runs")
    parser.add_argument("--count", type=int, help="secrets to create (default 100)")
    parser.add_argument("--docker", default="docker", help="docker CLI to use")
    args = parser.parse_args(argv)
    count = args.count or (20 if args.quick else 100)
    ls_runs = 3 if args.quick else 5

    ours = _ours()
    key = base64.b64encode(os.urandom(32)).decode()
    failed = False
    print("composesecrets secret CLI benchmark")
    print(f"  python {sys.version.split()[0]}, {os.cpu_count()} CPUs; ours: {' '.join(ours)}")

    with tempfile.TemporaryDirectory(prefix="cs-bench-cli-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o700)
        values = root / "values"
        values.mkdir(mode=0o700)
        files = _write_values(values, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSESECRETS_")}
        env.update(
            HOME=str(root / "home"),
            COMPOSESECRETS_HOME=str(root / "store"),
            COMPOSESECRETS_KEY=key,
        )

        # ---------------------------------------------------------------- create x N
        our_times: list[float] = []
        try:
            for i, path in enumerate(files):
                elapsed, out = _run([*ours, "secret", "create", f"bench-{i:05d}", str(path)], env)
                if len(out.strip()) != 25:
                    raise CommandFailed(f"secret create printed {out.strip()!r}, not an ID")
                our_times.append(elapsed)
            _, listed = _run([*ours, "secret", "ls", "-q"], env)
            if len(listed.split()) != count:
                raise CommandFailed(f"secret ls lists {len(listed.split())} of {count} secrets")
        except CommandFailed as exc:
            print(f"  composesecrets secret create FAILED: {exc}")
            failed = True

        docker_times: list[float] = []
        reason = _docker_swarm(args.docker)
        if reason is None:
            prefix = f"csbench-{uuid.uuid4().hex[:10]}-"
            try:
                for i, path in enumerate(files):
                    elapsed, _ = _run(
                        [args.docker, "secret", "create", f"{prefix}{i:05d}", str(path)]
                    )
                    docker_times.append(elapsed)
                _, made = _run([args.docker, "secret", "ls", "-q", "--filter", f"name={prefix}"])
                if len(made.split()) != count:
                    raise CommandFailed(f"docker lists {len(made.split())} of {count} secrets")
            except CommandFailed as exc:
                print(f"  docker secret create FAILED: {exc}")
                failed = True
            finally:
                left = _docker_cleanup(args.docker, prefix)
                if left:
                    print(f"  WARNING: {left} docker secrets named {prefix}* could not be removed")
                    failed = True

        print(f"\n  create {count} secrets of 1 KiB, one command each:")
        if our_times:
            print(_summary("composesecrets secret create", our_times))
        if reason is not None:
            print(f"  docker secret create         skipped: {reason}")
        elif docker_times:
            print(_summary("docker secret create", docker_times))
        if our_times and docker_times and len(our_times) == len(docker_times):
            ratio = sum(our_times) / sum(docker_times)
            print(f"  ratio (composesecrets / docker, total time): {ratio:.2f}x")
        else:
            print("  ratio (composesecrets / docker): n/a")

        # ---------------------------------------------------------------- ls on 10,000
        big = root / "big"
        big_env = {**env, "COMPOSESECRETS_HOME": str(big)}
        t0 = time.perf_counter()
        with Store.open(big, unlock=EnvKeyUnlock(key=key), environ={"HOME": env["HOME"]}) as store:
            for batch in range(LS_SIZE // 1000):
                store.import_many(
                    (f"big-{batch:02d}-{i:04d}", os.urandom(KIB), {"bench": "ls"})
                    for i in range(1000)
                )
        build_s = time.perf_counter() - t0
        try:
            _run([*ours, "secret", "ls", "-q"], big_env)  # one untimed run (page cache)
            ls_times = []
            for _ in range(ls_runs):
                elapsed, out = _run([*ours, "secret", "ls"], big_env)
                rows = len(out.splitlines()) - 1
                if rows != LS_SIZE:
                    raise CommandFailed(f"secret ls printed {rows} rows, not {LS_SIZE}")
                ls_times.append(elapsed)
            version_s = min(_run([*ours, "--version"], big_env)[0] for _ in range(3))
        except CommandFailed as exc:
            print(f"  composesecrets secret ls FAILED: {exc}")
            return 1
        median = statistics.median(ls_times)
        verdict = "ok" if median < LS_GOAL_S else "MISSED"
        print(
            f"\n  secret ls on {LS_SIZE:,} secrets"
            f" (store built via import_many in {build_s:.1f} s):"
        )
        print(
            f"  fresh process, {ls_runs} runs       median {median * 1000:6.1f} ms,"
            f" best {min(ls_times) * 1000:6.1f} ms   goal < {LS_GOAL_S * 1000:.0f} ms  {verdict}"
        )
        print(
            f"  (for scale: `composesecrets --version` takes {version_s * 1000:.1f} ms;"
            " the OS page cache is warm)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
