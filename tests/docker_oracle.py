"""Find the docker CLI that serves as the oracle for Docker's verdicts (no daemon needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

PROBE = 'version: "3.1"\nservices:\n  probe:\n    image: busybox\n'


@cache
def find_docker() -> str | None:
    """First `docker` on PATH whose CLI has a working `stack config` (Debian's 20.10 build,
    which the engine install puts in /usr/bin, lacks it)."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("docker", path=directory or ".")
        if candidate is None:
            continue
        try:
            probe = subprocess.run(
                [candidate, "stack", "config", "-c", "-"],
                input=PROBE,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and "probe" in probe.stdout:
            return candidate
    return None
