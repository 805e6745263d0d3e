"""engine/restore.py against a minimal transport: what a boot-time restore loads and the
errors of its inspect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from composesecrets.backends.engine import restore, tmpfs
from composesecrets.backends.engine_reader import BaseTransport
from composesecrets.docker_rules import LABEL_DIR, LABEL_FILES, LABEL_SERVICE, LABEL_STACK
from composesecrets.errors import BackendError, EngineApiError

# a stopped container whose files a reboot lost: ``always`` restarts it
SCRIPT = """
import json, os, sys
from pathlib import Path
from composesecrets.backends.engine import restore, tmpfs
from composesecrets.backends.engine_reader import BaseTransport
from composesecrets.docker_rules import LABEL_DIR, LABEL_FILES, LABEL_SERVICE, LABEL_STACK

class Api(BaseTransport):
    def __init__(self): self.calls = []
    def request(self, method, path, query=None):
        self.calls.append(f"{method} {path}")
        if method == "GET":
            return {"Id": "c1", "State": {"Running": False, "Error": "no such file"},
                    "HostConfig": {"RestartPolicy": {"Name": "always"}}}
        return None

root = Path(sys.argv[1])
restore.tmpfs.runtime_root = lambda: root
record = ["s_pw", 1, "pw", "/run/secrets/pw", os.getuid(), os.getgid(), 0o400]
labels = {LABEL_STACK: "s", LABEL_SERVICE: "web", LABEL_DIR: "d1",
          LABEL_FILES: json.dumps([record])}
api = Api()
entry = {"Id": "c1", "Names": ["/s_web_1"], "Labels": labels, "State": "exited"}
result = restore.restore_containers("s", [restore.ApiContainer(api, entry)],
                                    {("s_pw", 1): b"v"}, lambda service, r: r.version,
                                    lambda name, what: None)
print(json.dumps({"started": list(result.started), "files": result.files, "calls": api.calls,
                  "loaded": sorted(m for m in ("docker", "requests", "urllib3", "ssl")
                                   if m in sys.modules)}))
"""


def test_a_restore_starts_a_container_without_loading_the_docker_sdk(tmp_path: Path) -> None:
    """At boot the restore reads, writes and starts through the light transport only: the
    SDK (requests, urllib3, ssl: ~150 ms) stays unloaded, its error mapping included."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["started"] == ["s_web_1"] and found["files"] == 1
    assert found["calls"] == ["GET /containers/c1/json", "POST /containers/c1/start"]
    assert found["loaded"] == []
    written = next((tmp_path / "s" / "d1").iterdir())
    assert written.read_bytes() == b"v" and oct(written.stat().st_mode & 0o777) == "0o400"


def _quiet(name: str, what: str) -> None:
    """A progress that shows nothing."""


class _Failing(BaseTransport):
    def request(self, method: str, path: str, query: Mapping[str, Any] | None = None) -> Any:
        raise EngineApiError("No such container: c1", status=404)


def test_an_inspect_that_fails_names_the_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tmpfs, "runtime_root", lambda: tmp_path)
    record = ["s_pw", 1, "pw", "/run/secrets/pw", os.getuid(), os.getgid(), 0o400]
    labels = {LABEL_STACK: "s", LABEL_SERVICE: "web", LABEL_DIR: "d1",
              LABEL_FILES: json.dumps([record])}  # fmt: skip
    entry = {"Id": "c1", "Names": ["/s_web_1"], "Labels": labels, "State": "exited"}
    container = restore.ApiContainer(_Failing(), entry)
    with pytest.raises(BackendError, match=r"^inspecting s_web_1: No such container: c1$"):
        restore.restore_containers(
            "s", [container], {("s_pw", 1): b"v"}, lambda service, r: r.version, _quiet
        )
