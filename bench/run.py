"""Run every bench/bench_*.py script in turn with this Python interpreter.

Usage: python bench/run.py [--quick]

Each script gets a header. A failing script does not stop the others, but the exit
status is 1 at the end if any failed. --quick is passed on to the scripts that accept
it (those whose source mentions "--quick"); the others run unchanged.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def supports_quick(script: Path) -> bool:
    try:
        return "--quick" in script.read_text(encoding="utf-8")
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run all bench/bench_*.py scripts")
    parser.add_argument(
        "--quick", action="store_true", help="pass --quick to the scripts that support it"
    )
    args = parser.parse_args(argv)

    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if not scripts:
        print(f"no bench_*.py scripts in {BENCH_DIR}", file=sys.stderr)
        return 1

    failed: list[str] = []
    for script in scripts:
        cmd = [sys.executable, str(script)]
        if args.quick and supports_quick(script):
            cmd.append("--quick")
        title = f" {script.name}{' --quick' if '--quick' in cmd else ''} "
        print(f"\n{title:=^78}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=BENCH_DIR.parent, check=False).returncode
        elapsed = time.perf_counter() - start
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"--- {script.name}: {status} in {elapsed:.1f} s", flush=True)
        if rc != 0:
            failed.append(script.name)

    print()
    if failed:
        print(f"{len(failed)} of {len(scripts)} benchmark(s) failed: {', '.join(failed)}")
        return 1
    print(f"all {len(scripts)} benchmark(s) completed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
