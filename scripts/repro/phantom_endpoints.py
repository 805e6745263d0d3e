#!/usr/bin/env python3
"""Reproduce Docker's phantom network endpoint after a deploy that recreates many containers
(found in session 4, fixed in session 5: composesecrets/backends/engine/endpoints.py).

For each case, a stack of N busybox services (bench/bench_rotate.py's compose file: each a
shell loop that reads one shared secret) is deployed with the engine backend, its secret file
changes, and the stack is deployed again; in the two "recreate" cases every container is
replaced. Then the stack's containers are removed one at a time by hand and the network
removal is tried. "PHANTOM" means dockerd answers "has active endpoints" for a network that
shows no container: only a dockerd restart clears it, and a later `stack rm` exits 8 on it.

The cause: each replacement runs as ``<name>-next`` and is renamed once the old container is
gone, while it runs; Docker's rename rewrites the network's endpoint count from a copy read
when it began, so a container started or stopped meanwhile on that network is lost from the
count. Seen before the fix on this project's test machine: 3 of 4 recreate cases, 0 of 2
in-place cases. With each rename alone (the fix): none.

Usage (real engine, under the shared engine lock): python scripts/repro/phantom_endpoints.py
[--services N] [--rounds R]. Leftover phantom networks are printed; restart dockerd
(scripts/ensure-engine.sh after stopping it) and `docker network rm` them afterwards.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_rotate  # (its compose writer and command)
import docker

CASES = [("in-place", True, None), ("recreate, 10 s grace", False, None),
         ("recreate, 1 s grace", False, "1s")]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    client = docker.from_env()
    phantoms = []
    with tempfile.TemporaryDirectory(prefix="cs-phantom-") as tmp:
        for name, in_place, grace in CASES * args.rounds:
            directory = Path(tmp) / uuid.uuid4().hex[:8]
            directory.mkdir(mode=0o700)
            compose = bench_rotate.write_stack(
                directory, args.services, in_place=in_place, grace=grace
            )
            secret = directory / "shared.txt"
            bench_rotate._write_value(secret, os.urandom(32).hex().encode())
            env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSESECRETS_")}
            env["COMPOSESECRETS_HOME"] = str(directory / "store")
            env["HOME"] = str(directory / "home")  # unlock pins and high-water marks too
            env["COMPOSESECRETS_KEY"] = base64.b64encode(os.urandom(32)).decode()
            stack = f"csph{uuid.uuid4().hex[:8]}"
            deploy = [*bench_rotate._ours(), "stack", "deploy", "-q", "-c", str(compose), stack]
            subprocess.run(deploy, env=env, cwd=directory, check=True, capture_output=True)
            secret.unlink()
            bench_rotate._write_value(secret, os.urandom(32).hex().encode())
            subprocess.run(deploy, env=env, cwd=directory, check=True, capture_output=True)
            label = f"io.composesecrets.stack={stack}"
            for container in client.containers.list(all=True, filters={"label": label}):
                container.remove(force=True)  # one at a time: no concurrency of our own
            try:
                client.networks.get(f"{stack}_default").remove()
                verdict = "network removed"
            except docker.errors.APIError as exc:
                verdict = f"PHANTOM: {exc.explanation}"
                phantoms.append(f"{stack}_default")
            print(f"{name:<22} {verdict}", flush=True)
            rm = [*bench_rotate._ours(), "stack", "rm", "-q", stack]
            subprocess.run(rm, env=env, capture_output=True, check=False)
    if phantoms:
        print("phantom networks left (restart dockerd, then docker network rm):", *phantoms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
