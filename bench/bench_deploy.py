#!/usr/bin/env python3
"""Benchmark ``composesecrets stack deploy``/``stack rm`` against Docker on the same daemon.

In one run, on the local Docker Engine, with one generated compose file of N services
(default 50; ``--quick``: 10), each ``sleep 3600`` on the local busybox test image with
``stop_grace_period: 1s`` and two file secrets of its own (one short syntax, one long syntax
with uid/gid 1000 and mode 0440), no published ports (no ingress routing mesh here):

* ``composesecrets stack deploy`` until every container runs, then redeploying the unchanged
  stack (``--redeploys`` times, default 3; the container IDs must not change), then
  ``composesecrets stack rm`` until no container or network of the stack is left;
* ``docker stack deploy --resolve-image never`` until every task's container runs, then
  ``docker stack rm`` until no service, container, network or secret of the stack is left
  (skipped, with a line saying why, when this node is not a swarm manager);
* ``composesecrets stack deploy --backend swarm`` and ``stack rm`` the same way as docker
  stack (skipped with ``--no-swarm`` or on a non-manager);
* the floor: the same N containers (image, command, labels, one bridge network) created and
  started with the docker SDK from a thread pool, then stopped (1 s grace) and removed the
  same way. The floor mounts no secrets; its teardown is reported for scale, with no goal.

Each timed step is measured from the start of the command to the moment the engine shows the
wanted state. Before each contender the machine is left to settle (:func:`settle`): dockerd
destroys the network namespaces of removed containers up to a minute later, and that burst of
kernel work would otherwise land in whichever contender runs next. Secret files hold random
filler (not real secrets), are written 0600 in a 0700 temporary directory, and are deleted at
the end with the temporary store. Reports only: the goals are printed, never asserted; exits 1
only when a command fails or times out.

Usage: ``python bench/bench_deploy.py [--quick] [--services N] [--redeploys R]
[--workers W] [--docker PATH]``
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_IMAGES = REPO_ROOT / "scripts" / "build-test-images.sh"
IMAGE = "composesecrets-test/busybox:latest"
OUR_LABEL = "io.composesecrets.stack"
SWARM_LABEL = "com.docker.stack.namespace"
FLOOR_LABEL = "io.composesecrets.bench-floor"
WAIT_TIMEOUT_S = 300.0
POLL_S = 0.1

GOAL_DEPLOY_VS_DOCKER = 0.6
GOAL_DEPLOY_VS_FLOOR = 1.1
GOAL_RM_VS_DOCKER = 0.35
GOAL_REDEPLOY_S = 1.0
GOAL_SWARM_DEPLOY_VS_DOCKER = 0.9
GOAL_SWARM_RM_VS_DOCKER = 0.7


class BenchFailed(Exception):
    pass


NETNS = Path("/var/run/docker/netns")  # dockerd's network namespaces, one per sandbox
SETTLE_TIMEOUT_S = 180.0


def _container_namespaces() -> int | None:
    """Network namespaces of container sandboxes (12 hex digits; not Swarm's own) that are
    still mounted: a dockerd that was killed leaves empty files there that nothing removes."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    netns = NETNS.resolve()  # mounted at /run/docker/netns/...
    points = [Path(fields[4]) for fields in map(str.split, mounts) if len(fields) > 4]
    return sum(1 for p in points if p.parent == netns and re.fullmatch(r"[0-9a-f]{12}", p.name))


def _own_namespaces(client: Any) -> int:
    """Running containers that have a network namespace of their own."""
    running = client.containers.list(filters={"status": "running"}, ignore_removed=True)
    shared = ("host", "none")
    return sum(
        1
        for c in running
        if (mode := str(c.attrs.get("HostConfig", {}).get("NetworkMode", ""))) not in shared
        and not mode.startswith("container:")
    )


def settle(client: Any) -> None:
    """Wait until dockerd has destroyed the network namespaces of stopped containers.

    dockerd removes a stopped container's network namespace in a garbage collection that runs
    every 60 s, and the kernel's teardown of tens of namespaces keeps both cores busy for
    seconds: it must not land in the next contender's measurement. Waits until no more
    container namespaces exist than running containers need, then a moment for the kernel."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        found = _container_namespaces()
        if found is None or found <= _own_namespaces(client):
            break
        time.sleep(1.0)
    time.sleep(5.0)


def _ours() -> list[str]:
    script = Path(sys.executable).with_name("composesecrets")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "composesecrets"]


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=600
    )
    if proc.returncode != 0:
        shown = " ".join(cmd[:4])
        detail = (proc.stderr.strip() or proc.stdout.strip())[-600:]
        raise BenchFailed(f"{shown} ... exited {proc.returncode}: {detail}")
    return proc.stdout


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise BenchFailed(f"timed out after {WAIT_TIMEOUT_S:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def _write_private(path: Path, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(data)


def write_stack(directory: Path, services: int) -> Path:
    """compose.yaml with ``services`` services of two file secrets each, plus the files."""
    files = directory / "secret-files"
    files.mkdir(mode=0o700)
    lines = ['version: "3.8"', "services:"]
    definitions = ["secrets:"]
    for i in range(services):
        a, b = f"s{i:03d}_a", f"s{i:03d}_b"
        lines += [
            f"  svc{i:03d}:",
            f"    image: {IMAGE}",
            '    command: ["sleep", "3600"]',
            "    stop_grace_period: 1s",
            "    secrets:",
            f"      - {a}",
            f"      - source: {b}",
            "        target: app.key",
            '        uid: "1000"',
            '        gid: "1000"',
            "        mode: 0440",
        ]
        for key in (a, b):
            _write_private(files / f"{key}.txt", os.urandom(24).hex())
            definitions += [f"  {key}:", f"    file: ./secret-files/{key}.txt"]
    compose = directory / "compose.yaml"
    compose.write_text("\n".join(lines + definitions) + "\n", encoding="utf-8")
    return compose


def _count(client: Any, label: str, *, running: bool) -> int:
    filters: dict[str, Any] = {"label": label}
    if running:
        filters["status"] = "running"
    return len(client.containers.list(all=not running, filters=filters, ignore_removed=True))


def _networks(client: Any, label: str) -> int:
    return len(client.networks.list(filters={"label": label}))


def _ids(client: Any, label: str) -> dict[str, str]:
    found = client.containers.list(all=True, filters={"label": label}, ignore_removed=True)
    return {c.name: c.id for c in found}


def _swarm_reason(client: Any) -> str | None:
    info = client.info().get("Swarm") or {}
    if info.get("LocalNodeState") != "active" or not info.get("ControlAvailable"):
        return f"this node is not a swarm manager (state {info.get('LocalNodeState')!r})"
    return None


def _ensure_image(client: Any) -> None:
    try:
        client.images.get(IMAGE)
        return
    except Exception:  # docker.errors.ImageNotFound, without importing docker here
        pass
    _run([str(BUILD_IMAGES)])
    client.images.get(IMAGE)


# ---------------------------------------------------------------- the three contenders


def bench_ours(
    client: Any, compose: Path, env: dict[str, str], services: int, redeploys: int
) -> dict[str, Any]:
    stack = f"csbench{uuid.uuid4().hex[:8]}"
    label = f"{OUR_LABEL}={stack}"
    ours = _ours()
    result: dict[str, Any] = {}
    try:
        start = time.perf_counter()
        _run([*ours, "stack", "deploy", "-q", "-c", str(compose), stack], env, compose.parent)
        returned = time.perf_counter() - start
        _wait(
            f"{services} running containers of {stack}",
            lambda: _count(client, label, running=True) == services,
        )
        result["deploy"] = time.perf_counter() - start
        result["deploy_returned"] = returned
        before = _ids(client, label)

        times = []
        for _ in range(redeploys):
            start = time.perf_counter()
            _run([*ours, "stack", "deploy", "-q", "-c", str(compose), stack], env, compose.parent)
            times.append(time.perf_counter() - start)
        result["redeploy"] = times
        result["redeploy_same_ids"] = _ids(client, label) == before

        start = time.perf_counter()
        _run([*ours, "stack", "rm", "-q", stack], env)
        returned = time.perf_counter() - start
        _wait(
            f"the removal of {stack}",
            lambda: _count(client, label, running=False) == 0 and _networks(client, label) == 0,
        )
        result["rm"] = time.perf_counter() - start
        result["rm_returned"] = returned
        return result
    finally:
        subprocess.run([*ours, "stack", "rm", "-q", stack], env=env, capture_output=True)


def bench_docker(
    client: Any,
    docker: str,
    compose: Path,
    services: int,
    ours: tuple[list[str], dict[str, str]] | None = None,
) -> dict[str, float]:
    """``docker stack deploy``/``rm``; with ``ours`` (command, environment): the same with
    ``composesecrets stack deploy --backend swarm``/``stack rm``."""
    stack = f"csbench{'sw' if ours else 'dk'}{uuid.uuid4().hex[:8]}"
    label = f"{SWARM_LABEL}={stack}"
    env = ours[1] if ours else None
    if ours:
        deploy = [*ours[0], "stack", "deploy", "-q", "--backend", "swarm", "-c", str(compose)]
        remove = [*ours[0], "stack", "rm", "-q"]
    else:
        deploy = [docker, "stack", "deploy", "--resolve-image", "never", "-c", str(compose)]
        remove = [docker, "stack", "rm"]

    def gone() -> bool:
        return (
            not client.services.list(filters={"label": label})
            and _count(client, label, running=False) == 0
            and _networks(client, label) == 0
            and not client.secrets.list(filters={"label": label})
        )

    result: dict[str, float] = {}
    try:
        start = time.perf_counter()
        _run([*deploy, stack], env, cwd=compose.parent)
        result["deploy_returned"] = time.perf_counter() - start
        _wait(
            f"{services} running task containers of {stack}",
            lambda: _count(client, label, running=True) == services,
        )
        result["deploy"] = time.perf_counter() - start

        start = time.perf_counter()
        _run([*remove, stack], env)
        result["rm_returned"] = time.perf_counter() - start
        _wait(f"the removal of {stack}", gone)
        result["rm"] = time.perf_counter() - start
        return result
    finally:
        subprocess.run([*remove, stack], env=env, capture_output=True)
        try:
            _wait(f"the removal of {stack}", gone)
        except BenchFailed as exc:
            print(f"  WARNING: {exc}")


def _remove_network(network: Any) -> None:
    """Remove a network, retrying while the engine still counts endpoints being released."""
    deadline = time.monotonic() + 30
    while True:
        try:
            network.remove()
            return
        except Exception as exc:  # docker.errors.APIError: "has active endpoints"
            if "active endpoints" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(POLL_S)


def bench_floor(client: Any, services: int, workers: int) -> dict[str, float]:
    run = f"floor{uuid.uuid4().hex[:8]}"
    label = f"{FLOOR_LABEL}={run}"
    network_name = f"{run}_default"
    result: dict[str, float] = {}

    def create_and_start(i: int) -> Any:
        container = client.containers.create(
            IMAGE,
            ["sleep", "3600"],
            name=f"{run}_svc{i:03d}_1",
            labels={FLOOR_LABEL: run, "com.docker.compose.service": f"svc{i:03d}"},
            network=network_name,
            detach=True,
        )
        container.start()
        return container

    def remove(container: Any) -> None:
        # Stop with the same 1 s grace as the stacks (`sleep` as PID 1 ignores SIGTERM), then
        # remove. Force-removing running containers in parallel can leave stale endpoints
        # on Docker 20.10 that block the network's removal until the daemon restarts.
        container.stop(timeout=1)
        container.remove()

    network = None
    containers: list[Any] = []
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            start = time.perf_counter()
            network = client.networks.create(
                network_name, driver="bridge", labels={FLOOR_LABEL: run}
            )
            containers = list(pool.map(create_and_start, range(services)))
            _wait(
                f"{services} running floor containers",
                lambda: _count(client, label, running=True) == services,
            )
            result["deploy"] = time.perf_counter() - start

            start = time.perf_counter()
            list(pool.map(remove, containers))
            _remove_network(network)
            network = None
            result["rm"] = time.perf_counter() - start
        return result
    finally:
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        if network is not None:
            _remove_network(network)


# ---------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _ratio_line(what: str, ours: float, theirs: float | None, goal: float, name: str) -> str:
    if theirs is None:
        return f"  {what:<34} n/a (no {name} measurement)"
    ratio = ours / theirs
    return f"  {what:<34} {ratio:5.2f}x   goal <= {goal:.2f}x   {_verdict(ratio <= goal)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 services instead of 50")
    parser.add_argument("--services", type=int, help="services in the stack (default 50)")
    parser.add_argument("--redeploys", type=int, default=3, help="unchanged redeploys to time")
    parser.add_argument("--workers", type=int, default=16, help="SDK floor thread pool size")
    parser.add_argument("--docker", default="docker", help="docker CLI for docker stack")
    parser.add_argument(
        "--no-swarm", action="store_true", help="skip composesecrets --backend swarm"
    )
    args = parser.parse_args(argv)
    services = args.services or (10 if args.quick else 50)

    try:
        import docker as docker_sdk

        client = docker_sdk.from_env(timeout=120, max_pool_size=max(10, args.workers))
        client.ping()
    except Exception as exc:  # ImportError, DockerException, transport errors
        print(f"  no Docker Engine: {str(exc).splitlines()[0] if str(exc) else exc!r}")
        return 1

    failed = False
    print(f"stack deploy benchmark: {services} services x 2 secrets, image {IMAGE}")
    info = client.info()
    print(
        f"  python {sys.version.split()[0]}, {os.cpu_count()} CPUs; engine"
        f" {info.get('ServerVersion')}, storage driver {info.get('Driver')};"
        f" ours: {' '.join(_ours())}"
    )
    ours: dict[str, Any] | None = None
    theirs: dict[str, float] | None = None
    floor: dict[str, float] | None = None
    swarm: dict[str, float] | None = None
    with tempfile.TemporaryDirectory(prefix="cs-bench-deploy-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o700)
        try:
            _ensure_image(client)
            compose = write_stack(root, services)
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith("COMPOSESECRETS_") or k == "COMPOSESECRETS_DEBUG"
            }
            env.update(
                HOME=str(root / "home"),
                COMPOSESECRETS_HOME=str(root / "store"),
                COMPOSESECRETS_KEY=base64.b64encode(os.urandom(32)).decode(),
            )
            # One untimed container start and removal, so nobody pays for a cold cache.
            client.containers.run(IMAGE, ["true"], remove=True, network_mode="none")
        except BenchFailed as exc:
            print(f"  setup FAILED: {exc}")
            return 1
        if _container_namespaces() is None:
            print(f"  note: {NETNS} unreadable: phases may feel dockerd's deferred cleanup")

        try:
            settle(client)
            ours = bench_ours(client, compose, env, services, args.redeploys)
        except BenchFailed as exc:
            print(f"  composesecrets FAILED: {exc}")
            failed = True

        if shutil.which(args.docker) is None:
            reason: str | None = f"no docker CLI ({args.docker})"
        else:
            reason = _swarm_reason(client)
        if reason:
            print(f"  docker stack deploy skipped: {reason}")
        else:
            try:
                settle(client)
                theirs = bench_docker(client, args.docker, compose, services)
            except BenchFailed as exc:
                print(f"  docker stack FAILED: {exc}")
                failed = True

        if not reason and not args.no_swarm:
            try:
                settle(client)
                swarm = bench_docker(client, args.docker, compose, services, (_ours(), env))
            except BenchFailed as exc:
                print(f"  composesecrets --backend swarm FAILED: {exc}")
                failed = True

        try:
            settle(client)
            floor = bench_floor(client, services, args.workers)
        except Exception as exc:  # docker SDK errors
            print(f"  SDK floor FAILED: {exc}")
            failed = True

    print(f"\n  {'':<34} {'deploy':>8} {'(cmd)':>8} {'teardown':>9} {'(cmd)':>8}")
    if ours:
        print(
            f"  {'composesecrets stack':<34} {ours['deploy']:7.2f}s {ours['deploy_returned']:7.2f}s"
            f" {ours['rm']:8.2f}s {ours['rm_returned']:7.2f}s"
        )
    if theirs:
        print(
            f"  {'docker stack (swarm)':<34} {theirs['deploy']:7.2f}s"
            f" {theirs['deploy_returned']:7.2f}s {theirs['rm']:8.2f}s"
            f" {theirs['rm_returned']:7.2f}s"
        )
    if swarm:
        print(
            f"  {'composesecrets --backend swarm':<34} {swarm['deploy']:7.2f}s"
            f" {swarm['deploy_returned']:7.2f}s {swarm['rm']:8.2f}s"
            f" {swarm['rm_returned']:7.2f}s"
        )
    if floor:
        print(
            f"  {f'SDK floor ({args.workers} threads)':<34} {floor['deploy']:7.2f}s {'':>8}"
            f" {floor['rm']:8.2f}s   (stop with 1 s grace, remove)"
        )
    print("  (deploy/teardown: until the engine shows it; (cmd): until the command returned)")

    print("\n  goals:")
    if ours:
        deploy_docker = theirs["deploy"] if theirs else None
        rm_docker = theirs["rm"] if theirs else None
        deploy_floor = floor["deploy"] if floor else None
        print(
            _ratio_line(
                "deploy vs docker stack deploy",
                ours["deploy"],
                deploy_docker,
                GOAL_DEPLOY_VS_DOCKER,
                "docker stack",
            )
        )
        print(
            _ratio_line(
                "deploy vs SDK floor",
                ours["deploy"],
                deploy_floor,
                GOAL_DEPLOY_VS_FLOOR,
                "SDK floor",
            )
        )
        print(
            _ratio_line(
                "teardown vs docker stack rm",
                ours["rm"],
                rm_docker,
                GOAL_RM_VS_DOCKER,
                "docker stack",
            )
        )
        if ours["redeploy"]:
            median = statistics.median(ours["redeploy"])
            runs = ", ".join(f"{t:.2f}" for t in ours["redeploy"])
            print(
                f"  {'unchanged redeploy, median':<34} {median:5.2f}s   goal < {GOAL_REDEPLOY_S}s"
                f"   {_verdict(median < GOAL_REDEPLOY_S)}   (runs: {runs} s)"
            )
            same = "yes" if ours["redeploy_same_ids"] else "NO (containers were recreated)"
            print(f"  {'same container IDs after redeploy':<34} {same}")
    else:
        print("  n/a: composesecrets did not complete")
    if swarm:
        deploy_docker = theirs["deploy"] if theirs else None
        rm_docker = theirs["rm"] if theirs else None
        print(_ratio_line("swarm backend deploy vs docker", swarm["deploy"], deploy_docker,
                          GOAL_SWARM_DEPLOY_VS_DOCKER, "docker stack"))  # fmt: skip
        print(_ratio_line("swarm backend rm vs docker", swarm["rm"], rm_docker,
                          GOAL_SWARM_RM_VS_DOCKER, "docker stack"))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
