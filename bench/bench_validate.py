"""Benchmark `composesecrets validate` against `docker stack config`.

For each size N (default 1, 100, 1000, 5000) a compose file is generated in a temporary
directory (see gen_compose.py) and both commands run on it, alternately, R times each
(`--repeat`, default 5) after one untimed warm-up run each. Every run is a fresh
process: its wall time is measured around spawn and exit, and its peak RSS is read from
os.wait4(). Nothing from composesecrets is imported into this process.

Printed: a table of medians with the ratio ours/docker against the goals (N=5000 at
most 0.7x, N=1000 at most 1.0x), peak RSS at the largest N against Docker's, the time
of a 1-service file against the 300 ms cold-start goal, and an import-time profile of
the validate path (python -X importtime).

This is a report, not a test: missed goals print MISS but the exit status is 0. It is
1 only when a command fails (non-zero exit) or the setup is broken.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gen_compose import generate

SIZES = (1, 100, 1000, 5000)
QUICK_SIZES = (1, 100, 1000)
# N -> max ratio ours/docker
RATIO_GOALS = {1000: 1.0, 5000: 0.7}
COLD_GOAL_S = 0.300
MEMORY_GOAL_N = 5000
# Modules that must stay off the validate path.
FORBIDDEN_IMPORTS = ("docker", "cryptography")


@dataclass
class Run:
    seconds: float
    maxrss_kib: int
    returncode: int
    stderr_tail: str


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)
    failure: Run | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(r.seconds for r in self.runs) if self.runs else None

    @property
    def peak_rss_kib(self) -> int | None:
        return max(r.maxrss_kib for r in self.runs) if self.runs else None


def run_once(cmd: list[str], cwd: Path) -> Run:
    """Run cmd in a fresh process; return wall time and the child's own peak RSS."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return Run(elapsed, rss, proc.returncode, tail)


def our_command() -> list[str]:
    script = Path(sys.executable).parent / "composesecrets"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "composesecrets"]


def find_docker(requested: str | None) -> str | None:
    """Return a docker CLI that has `stack config`, or None (with a line saying why)."""
    docker = shutil.which(requested or "docker")
    if docker is None:
        print(
            f"docker CLI not found ({requested or 'docker on PATH'}): "
            "skipping Docker's side (no ratios, no memory comparison)"
        )
        return None
    # Old CLIs (e.g. Debian's docker.io 20.10) have no `stack config`.
    probe = subprocess.run(
        [docker, "stack", "config", "-c", "-"],
        capture_output=True,
        input='version: "3.8"\nservices:\n  probe:\n    image: busybox\n',
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        print(
            f"{docker} has no working `docker stack config` (try --docker PATH): "
            "skipping Docker's side (no ratios, no memory comparison)"
        )
        return None
    ver = subprocess.run([docker, "--version"], capture_output=True, text=True, check=False)
    print(f"docker: {docker} stack config -c FILE   ({ver.stdout.strip()})")
    return docker


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def fmt_mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def bench_size(
    n: int, workdir: Path, ours: list[str], docker: str | None, repeat: int
) -> tuple[Series, Series | None]:
    compose = generate(n, workdir)
    cmds: dict[str, list[str]] = {"ours": [*ours, "validate", "-c", str(compose)]}
    if docker:
        cmds["docker"] = [docker, "stack", "config", "-c", str(compose)]
    result = {name: Series() for name in cmds}
    live = dict(cmds)
    # Warm-up (page cache, .pyc files): not timed, but a failure counts.
    for name, cmd in list(live.items()):
        r = run_once(cmd, workdir)
        if r.returncode != 0:
            result[name].failure = r
            del live[name]
    # Alternate the commands so drift in machine load hits both alike.
    for _ in range(repeat):
        for name, cmd in list(live.items()):
            r = run_once(cmd, workdir)
            if r.returncode != 0:
                result[name].failure = r
                del live[name]
            else:
                result[name].runs.append(r)
    return result["ours"], result.get("docker")


def import_profile(compose: Path, cwd: Path) -> None:
    """Print where validate spends its import time (python -X importtime, subprocess)."""
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "composesecrets",
        "validate",
        "-c",
        str(compose),
    ]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    top: dict[str, int] = {}
    seen: set[str] = set()
    cli_us: int | None = None
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        try:
            _, cumulative, name = line[len("import time:") :].split("|", 2)
            cum_us = int(cumulative)
        except ValueError:
            continue
        module = name.strip()
        seen.add(module)
        if module == "composesecrets.cli":
            cli_us = cum_us if cli_us is None else max(cli_us, cum_us)
        if not name.startswith("  "):  # depth 0: imported directly, not by another module
            top[module] = top.get(module, 0) + cum_us
    print(
        "\nImport profile of `python -X importtime -m composesecrets validate -c compose-1.yml`"
        f" (exit {proc.returncode}):"
    )
    if not seen:
        print("  no import data (command failed before importing?)")
        return
    complete = proc.returncode in (0, 1) and "Traceback (most recent call last)" not in proc.stderr
    if not complete:
        print("  validate did not complete (crashed or usage error): profile incomplete")
    cli_text = "not imported" if cli_us is None else f"{cli_us / 1000:.1f} ms"
    print(f"  composesecrets.cli cumulative: {cli_text}")
    print(f"  all imports in the run:        {sum(top.values()) / 1000:.1f} ms")
    print("  heaviest top-level imports:")
    for module, us in sorted(top.items(), key=lambda kv: kv[1], reverse=True)[:10]:
        print(f"    {us / 1000:8.1f} ms  {module}")
    for forbidden in FORBIDDEN_IMPORTS:
        hits = sorted(m for m in seen if m == forbidden or m.startswith(forbidden + "."))
        if hits:
            state = f"IMPORTED ({len(hits)} modules) - MISS"
        elif not complete:
            state = "not imported, but the run did not complete - n/a"
        else:
            state = "not imported - PASS"
        print(f"  {forbidden}: {state}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed runs per command and size (default 5, 1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 1, 100, 1000 only and 1 repeat unless --repeat is given",
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated sizes (default 1,100,1000,5000)"
    )
    parser.add_argument(
        "--docker",
        default=None,
        metavar="PATH",
        help="docker CLI to compare with (default: docker on PATH)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated files (prints their directory)"
    )
    args = parser.parse_args(argv)

    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.sizes:
        try:
            sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
        except ValueError:
            parser.error("--sizes takes integers, e.g. 1,100,1000")
    else:
        sizes = QUICK_SIZES if args.quick else SIZES

    ours = our_command()
    print(f"composesecrets: {' '.join(ours)} validate -c FILE")
    print(f"python: {sys.version.split()[0]}   repeat: {repeat}   sizes: {sizes}")
    docker = find_docker(args.docker)

    failed = False
    results: dict[int, tuple[Series, Series | None]] = {}
    tmp = tempfile.mkdtemp(prefix="composesecrets-bench-")
    workdir = Path(tmp)
    try:
        for n in sizes:
            print(f"  N={n} ...", end="", flush=True)
            t0 = time.perf_counter()
            results[n] = bench_size(n, workdir, ours, docker, repeat)
            print(f" {time.perf_counter() - t0:.1f} s")

        print()
        header = (
            f"{'N':>6}  {'ours median':>12}  {'docker median':>13}  {'ratio':>7}"
            f"  {'goal':>7}  result"
        )
        print(header)
        print("-" * len(header))
        for n, (ours_s, docker_s) in results.items():
            om = ours_s.median
            dm = docker_s.median if docker_s else None
            ratio = om / dm if om is not None and dm else None
            goal = RATIO_GOALS.get(n)
            if goal is None:
                verdict = "-"
            elif ratio is None:
                verdict = "n/a"
            else:
                verdict = "PASS" if ratio <= goal else "MISS"
            print(
                f"{n:>6}  {fmt_s(om):>12}  {fmt_s(dm):>13}"
                f"  {'-' if ratio is None else f'{ratio:.2f}x':>7}"
                f"  {'-' if goal is None else f'<={goal}x':>7}  {verdict}"
            )

        for n, (ours_s, docker_s) in results.items():
            for name, s in (("composesecrets", ours_s), ("docker", docker_s)):
                if s is not None and s.failure is not None:
                    failed = True
                    print(f"\nFAILED: {name} at N={n} exited {s.failure.returncode}; stderr tail:")
                    print("  " + "\n  ".join(s.failure.stderr_tail.strip().splitlines()[-10:]))

        if MEMORY_GOAL_N in results:
            ours_s, docker_s = results[MEMORY_GOAL_N]
            orss = ours_s.peak_rss_kib
            drss = docker_s.peak_rss_kib if docker_s else None
            verdict = "n/a" if orss is None or drss is None else ("PASS" if orss < drss else "MISS")
            print(
                f"\nPeak RSS at N={MEMORY_GOAL_N} (max over runs): ours {fmt_mib(orss)}, "
                f"docker {fmt_mib(drss)}; goal: ours below docker -> {verdict}"
            )
        else:
            print(f"\nPeak RSS at N={MEMORY_GOAL_N}: not measured (size not run)")

        if 1 in results:
            ours_s, _ = results[1]
            med = ours_s.median
            verdict = "n/a" if med is None else ("PASS" if med < COLD_GOAL_S else "MISS")
            fastest = min((r.seconds for r in ours_s.runs), default=None)
            print(
                f"Cold start, 1-service file (fresh process each run): median {fmt_s(med)}, "
                f"best {fmt_s(fastest)}; goal < {COLD_GOAL_S * 1000:.0f} ms -> {verdict}"
            )
            import_profile(workdir / "compose-1.yml", workdir)
        else:
            print("Cold start: not measured (size 1 not run)")
    finally:
        if args.keep:
            print(f"\ngenerated files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
