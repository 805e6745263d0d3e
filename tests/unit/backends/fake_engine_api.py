"""The one-method transport of the listings and of restore (``request(method, path, query)``),
answered from the state of a :class:`FakeDocker`, so that the real listing and restore code
(``stack ls/ps/services/restore``) runs in unit tests against the same in-memory engine the
backends deployed to.

``FakeEngineApi(engine)`` answers the endpoints they use: ``/containers/json``,
``/containers/{id}/json``, ``POST /containers/{id}/start`` (304 when it runs already),
``/networks``, ``/info``, and, when the engine is a swarm manager,
``/services``, ``/tasks`` and ``/nodes`` (503 otherwise, as the engine answers). A second fake
(``swarm=``) answers the swarm calls when a test deployed the two backends to two fakes.
``paths`` records each call's path. :func:`serve` installs it in place of the real transport.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from unit.backends.fake_docker import FakeDocker, _label_match

from composesecrets.backends import engine_reader
from composesecrets.errors import EngineApiError

__all__ = ["FakeEngineApi", "serve"]

HOSTNAME = "fake-node"


class FakeEngineApi(engine_reader.BaseTransport):
    def __init__(self, engine: FakeDocker, swarm: FakeDocker | None = None) -> None:
        self.engine = engine
        self.swarm = swarm or engine
        self.paths: list[str] = []

    def request(self, method: str, path: str, query: Mapping[str, Any] | None = None) -> Any:
        self.paths.append(path if method == "GET" else f"{method} {path}")
        if method == "POST" and path.startswith("/containers/") and path.endswith("/start"):
            found = self.engine.containers_by_id.get(path.split("/")[2])
            if found is None:
                raise EngineApiError(f"No such container: {path.split('/')[2]}", status=404)
            if found.status != "running":
                found.start()  # a start that fails raises the SDK error FakeDocker injects
            return None
        if method != "GET":
            raise EngineApiError(f"page not found: {method} {path}", status=404)
        filters = dict((query or {}).get("filters") or {})
        if path == "/containers/json":
            return self._containers(filters, all=(query or {}).get("all") == "1")
        if path.startswith("/containers/") and path.endswith("/json"):
            return self._inspect(path.split("/")[2])
        if path == "/networks":
            nets = self.engine.networks_by_id.values()
            return [n.attrs for n in nets if _label_match(n.labels, filters.get("label", []))]
        if path == "/info":
            return {"Name": HOSTNAME, **self.engine.info()}
        if path in ("/services", "/tasks", "/nodes"):
            return self._swarm(path, filters)
        raise EngineApiError(f"page not found: {path}", status=404)

    def _containers(self, filters: dict[str, Any], *, all: bool) -> list[dict[str, Any]]:
        found = [c for c in self.engine.containers_by_id.values() if all or c.status == "running"]
        found = [c for c in found if _label_match(c.labels, filters.get("label", []))]
        out = []
        for c in found:
            ports = []
            if c.status == "running":  # docker ps shows the bindings of running containers
                for target, bindings in (c.kwargs.get("ports") or {}).items():
                    private, _, kind = str(target).partition("/")
                    for b in bindings or [{}]:
                        entry = {"PrivatePort": int(private), "Type": kind or "tcp"}
                        if b.get("HostPort"):
                            entry |= {"IP": b.get("HostIp") or "0.0.0.0",
                                      "PublicPort": int(b["HostPort"])}  # fmt: skip
                        ports.append(entry)
            out.append({"Id": c.id, "Names": [f"/{c.name}"], "Image": c.image,
                        "Labels": dict(c.labels), "State": c.status, "Ports": ports})  # fmt: skip
        return out

    def _inspect(self, container_id: str) -> dict[str, Any]:
        found = self.engine.containers_by_id.get(container_id)
        if found is None:
            raise EngineApiError(f"No such container: {container_id}", status=404)
        return {"Id": found.id, "Name": f"/{found.name}", **found.attrs}

    def _swarm(self, path: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.swarm.swarm:
            raise EngineApiError(
                "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm "
                "join\" to connect this node to swarm and try again.", status=503,
            )  # fmt: skip
        if path == "/nodes":
            return [{"ID": "node1", "Description": {"Hostname": HOSTNAME}}]
        if path == "/services":
            found = list(self.swarm.service_store.values())
            found = [s for s in found if _label_match(s["Spec"].get("Labels"),
                                                      filters.get("label", []))]  # fmt: skip
            return copy.deepcopy(found)
        tasks = [t for t in self.swarm.tasks if t["ServiceID"] in filters.get("service", [])]
        wanted = filters.get("desired-state")
        tasks = [t for t in tasks if not wanted or t["DesiredState"] in wanted]
        return [{"NodeID": "node1", **copy.deepcopy(t)} for t in tasks]


def serve(
    monkeypatch: pytest.MonkeyPatch,
    engine: FakeDocker | None = None,
    swarm: FakeDocker | None = None,
) -> FakeEngineApi:
    """The listings read ``engine`` (containers, networks) and ``swarm`` (services, tasks)
    instead of a real engine; a second call (another fixture) sets the other side."""
    api = getattr(engine_reader.connect, "fake_api", None)
    if not isinstance(api, FakeEngineApi):
        first = engine or swarm
        assert first is not None
        api = FakeEngineApi(first)

        def connect(environ: Mapping[str, str] | None = None) -> FakeEngineApi:
            return api

        connect.fake_api = api  # type: ignore[attr-defined]
        monkeypatch.setattr(engine_reader, "connect", connect)
    if engine is not None:
        api.engine = engine
    if swarm is not None:
        api.swarm = swarm
    return api
