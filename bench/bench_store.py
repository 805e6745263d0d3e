#!/usr/bin/env python3
"""Benchmark the secret store through its library API (no typer, no Docker).

Measures, in throw-away temporary stores:

* ``import_many`` of 1,000 secrets of 1 KiB in one call (goal: < 1 s);
* 100 single ``create`` calls of 1 KiB (for reference: one commit each);
* ``list_secrets`` on a store of 10,000 secrets, cold: a fresh Python process that imports
  the store, opens it and lists it (goal: < 400 ms), and warm, in this process;
* ``verify`` of those 10,000 versions (every MAC, ciphertext and digest; goal: < 1 s).

Prints the results; asserts nothing. Usage: ``python bench/bench_store.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from composesecrets.store import KeyFileUnlock, Store

KIB = 1024
IMPORT_GOAL_S = 1.0
LIST_GOAL_S = 0.4
VERIFY_GOAL_S = 1.0

_COLD_LIST = """
import sys, time
t0 = time.perf_counter()
from composesecrets.store import Store
t1 = time.perf_counter()
with Store.open(sys.argv[1], create=False, environ={}) as store:
    rows = store.list_secrets()
t2 = time.perf_counter()
print(len(rows), t1 - t0, t2 - t1, time.process_time())
"""


def _open(directory: Path, key: Path) -> Store:
    return Store.open(directory, unlock=KeyFileUnlock(key, notice=lambda _m: None), environ={})


def _items(prefix: str, count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    return [(f"{prefix}{i:05d}", os.urandom(KIB), {"bench": prefix}) for i in range(count)]


def _verdict(measured: float, goal: float) -> str:
    return "ok" if measured < goal else "MISSED"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
        root = Path(tmp)
        key = root / "master.key"

        store_dir = root / "import"
        items = _items("imp", 1000)
        with _open(store_dir, key) as store:
            store.unlock()
            t0 = time.perf_counter()
            store.import_many(items)
            import_s = time.perf_counter() - t0
            singles = _items("one", 100)
            t0 = time.perf_counter()
            for name, value, labels in singles:
                store.create(name, value, labels)
            create_s = time.perf_counter() - t0

        big_dir = root / "big"
        with _open(big_dir, key) as store:
            t0 = time.perf_counter()
            for batch in range(10):
                store.import_many(_items(f"b{batch}-", 1000))
            build_s = time.perf_counter() - t0
        cold_runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", _COLD_LIST, str(big_dir)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            wall = time.perf_counter() - t0
            cold_runs.append((int(out[0]), float(out[1]), float(out[2]), wall, float(out[3])))
        with _open(big_dir, key) as store:
            t0 = time.perf_counter()
            count = len(store.list_secrets())
            warm_s = time.perf_counter() - t0
            store.unlock()
            t0, c0 = time.perf_counter(), time.process_time()
            report = store.verify()
            verify_s, verify_cpu = time.perf_counter() - t0, time.process_time() - c0
            assert report.ok and report.checked == 10_000, report

    rows, import_time, open_list, wall, cpu = min(cold_runs, key=lambda r: r[2])
    print("composesecrets store benchmark (library API)")
    print(
        f"  python {sys.version.split()[0]}, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.1f} (wall times grow with it; CPU times less)"
    )
    print(
        f"  import_many 1000 x 1 KiB        {import_s * 1000:8.1f} ms"
        f"   goal < {IMPORT_GOAL_S * 1000:.0f} ms  {_verdict(import_s, IMPORT_GOAL_S)}"
    )
    print(
        f"  create 100 x 1 KiB (1 call each) {create_s * 1000:8.1f} ms"
        f"   ({create_s * 10:.2f} ms per secret; reference only)"
    )
    print(f"  building 10,000 secrets          {build_s * 1000:8.1f} ms   (setup)")
    print(
        f"  ls on {rows} secrets, cold        {open_list * 1000:8.1f} ms"
        f"   goal < {LIST_GOAL_S * 1000:.0f} ms  {_verdict(open_list, LIST_GOAL_S)}"
        "   (open + list in a fresh process)"
    )
    print(
        f"    + importing the store module   {import_time * 1000:8.1f} ms"
        f"   (whole process: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU)"
    )
    print(f"  ls on {count} secrets, warm        {warm_s * 1000:8.1f} ms")
    print(
        f"  verify {report.checked} versions           {verify_s * 1000:8.1f} ms"
        f"   goal < {VERIFY_GOAL_S * 1000:.0f} ms  {_verdict(verify_s, VERIFY_GOAL_S)}"
        f"   ({verify_cpu * 1000:.0f} ms CPU; state, row MACs, ciphertexts, digests)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
