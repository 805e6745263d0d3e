"""Store crash safety (SIGKILL at random moments) and concurrency (8 writer processes)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from unit.store_worker import WORKER_RETENTION, expected_value, open_keyfile_store

WORKER = Path(__file__).resolve().parents[1] / "store_worker.py"


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("COMPOSESECRETS_KEY", None)
    env.pop("COMPOSESECRETS_PASSPHRASE", None)
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    store_dir, key = tmp_path / "store", tmp_path / "master.key"
    rng = random.Random(1234)
    kills = 0
    for run in range(15):
        proc = _spawn("crash", str(store_dir), str(key), f"r{run}")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"worker failed to start: {line!r} {err}")
        time.sleep(rng.uniform(0.0, 0.12))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "the worker exited before it was killed"
        kills += 1
    assert kills == 15
    with open_keyfile_store(store_dir, key, create=False, retention=WORKER_RETENTION) as s:
        report = s.verify()
        assert report.ok, report.failures
        infos = s.list_secrets()
        assert len(infos) > 15, "the workers wrote too little to test anything"
        for info in infos:
            versions = [v.version for v in s.inspect(info.name).versions]
            assert versions == list(range(1, info.version + 1))
            for v in versions:
                assert s.get(info.name, v, audit=False) == expected_value(info.name, v)
        # Batches from import_many are all-or-nothing.
        batches: dict[str, int] = {}
        for info in infos:
            if "batch" in info.labels:
                batches[info.labels["batch"]] = batches.get(info.labels["batch"], 0) + 1
        assert all(count == 5 for count in batches.values()), batches
        # The store still accepts writes.
        s.create("after-crash", b"fine")
        assert s.get("after-crash") == b"fine"


def test_eight_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store_dir, key = tmp_path / "store", tmp_path / "master.key"
    count = 6
    procs = [_spawn("concurrent", str(store_dir), str(key), f"w{i}", str(count)) for i in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "locked" not in out
        assert err == ""
    with open_keyfile_store(store_dir, key, create=False, retention=WORKER_RETENTION) as s:
        infos = {i.name: i for i in s.list_secrets()}
        assert len(infos) == 8 * count + 1
        for w in range(8):
            for i in range(count):
                name = f"w{w}-{i}"
                assert infos[name].version == 3
                for v in (1, 2, 3):
                    assert s.get(name, v, audit=False) == expected_value(name, v)
        shared = infos["shared"]
        assert shared.version == 1 + 8 * count
        assert [v.version for v in s.inspect("shared").versions] == list(range(1, 2 + 8 * count))
        assert s.verify().ok
        assert len(s.audit(action="rotate", target="shared")) == 8 * count
        assert len(s.audit(action="init")) == 1


def test_sigkill_during_secret_rotate_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """SIGKILL at random points of `secret rotate` (30 times): after each, the store opens with
    the user's key, `verify` passes (rollback check included), and every version the worker
    acknowledged is there with its value."""
    store_dir, key = tmp_path / "store", tmp_path / "master.key"
    rng = random.Random(4321)
    acked = 0
    for _run in range(30):
        proc = _spawn("rotate", str(store_dir), str(key), "db")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(proc.pid, signal.SIGKILL)
        out, _err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        versions = [int(part.split()[1]) for part in out.splitlines() if part.startswith("ack ")]
        acked = max([acked, *versions])
        with open_keyfile_store(store_dir, key, create=False, retention=WORKER_RETENTION) as s:
            report = s.verify()
            assert report.ok, report.failures
            current = s.inspect("db").info.version
            assert current >= acked, f"acknowledged version {acked} lost (store has {current})"
            assert s.get("db", audit=False) == expected_value("db", current)
            acked = current
    assert acked > 30, "the workers rotated too little to test anything"
    with open_keyfile_store(store_dir, key, create=False, retention=WORKER_RETENTION) as s:
        for v in range(1, acked + 1):
            assert s.get("db", v, audit=False) == expected_value("db", v)
