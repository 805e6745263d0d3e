#!/usr/bin/env python3
"""Benchmark ``composesecrets stack restore``: from the command to every container running.

On the local Docker Engine (run it under the shared engine lock): a stack of N services
(default 10) with two file secrets each (the compose file of bench_deploy.py) is deployed with
the engine backend; then what a reboot leaves is reproduced without stopping the daemon: every
container stopped (their restart policy is the stack default, ``always``) and the stack's
secret directory removed from the tmpfs, and the machine left to settle (the network namespaces
of the stopped containers destroyed: see bench_deploy.settle). ``stack restore STACK`` is timed
from its start until the engine shows all N containers running, ``--repeat`` times (default 3),
next to the floor (the same stopped containers started by the SDK from 16 threads); the goal
(< 2 s for 10 containers) is printed, never asserted. The full reboot (dockerd stopped, tmpfs
unmounted) is what tests/integration/engine/test_stack_day2.py checks.

Usage: ``python bench/bench_restore.py [--services N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_deploy import (
    IMAGE,
    OUR_LABEL,
    BenchFailed,
    _count,
    _ensure_image,
    _ours,
    _run,
    _wait,
    settle,
    write_stack,
)

TMPFS_ROOT = Path("/run/composesecrets")
GOAL_S = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=10, help="services (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="timed restores (default 3)")
    args = parser.parse_args(argv)
    import docker as docker_sdk

    client = docker_sdk.from_env(timeout=120)
    stack = f"csbenchrs{uuid.uuid4().hex[:8]}"
    label = f"{OUR_LABEL}={stack}"
    ours = _ours()
    print(f"stack restore benchmark: {args.services} containers x 2 secrets, image {IMAGE}")
    with tempfile.TemporaryDirectory(prefix="cs-bench-restore-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSESECRETS_")}
        env.update(HOME=str(root / "home"), COMPOSESECRETS_HOME=str(root / "store"),
                   COMPOSESECRETS_KEY=base64.b64encode(os.urandom(32)).decode())  # fmt: skip
        times: list[float] = []
        floor: list[float] = []
        try:
            _ensure_image(client)
            compose = write_stack(root, args.services)
            _run([*ours, "stack", "deploy", "-q", "-c", str(compose), stack], env, root)
            _wait("the stack running", lambda: _count(client, label, running=True)
                  == args.services)  # fmt: skip
            shutil.rmtree(root / "secret-files")  # not needed by restore
            for _ in range(args.repeat):
                containers = client.containers.list(filters={"label": label})
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda c: c.stop(timeout=1), containers))
                shutil.rmtree(TMPFS_ROOT / stack)  # what a reboot does to the tmpfs
                settle(client)
                start = time.perf_counter()
                _run([*ours, "stack", "restore", "-q", stack], env)
                _wait("every container running", lambda: _count(client, label, running=True)
                      == args.services)  # fmt: skip
                times.append(time.perf_counter() - start)
            for _ in range(args.repeat):  # the floor: the same containers started by the SDK
                containers = client.containers.list(filters={"label": label})
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda c: c.stop(timeout=1), containers))
                settle(client)
                start = time.perf_counter()
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda c: c.start(), containers))
                _wait("every container running", lambda: _count(client, label, running=True)
                      == args.services)  # fmt: skip
                floor.append(time.perf_counter() - start)
        except BenchFailed as exc:
            print(f"  FAILED: {exc}")
            return 1
        finally:
            _run([*ours, "stack", "rm", "-q", stack], env)
    median = statistics.median(times)
    verdict = "PASS" if median < GOAL_S else "MISS"
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(f"  restore until all running, median {median:.2f}s   goal < {GOAL_S}s   {verdict}"
          f"   (runs: {runs} s)")  # fmt: skip
    if floor:
        base = statistics.median(floor)
        print(f"  SDK floor: the same containers started from 16 threads, median {base:.2f}s"
              f"   (restore = {median / base:.2f}x the floor)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
