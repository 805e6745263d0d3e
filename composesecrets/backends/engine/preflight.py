"""The engine backend's preflight: what a deploy checks on the engine before anything
changes (no store write, no container, no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from composesecrets.backends.docker_api import (
    docker,
    is_local_daemon,
    list_containers,
    reason,
    translated,
)
from composesecrets.backends.engine.plan import EnginePlan
from composesecrets.docker_rules import LABEL_STACK
from composesecrets.errors import BackendError, ConflictError, UsageError

__all__ = ["check"]


def check(connect: Callable[[], Any], plan: EnginePlan) -> None:
    """Refuse, before the store or the engine change, what the deploy could not do: a remote
    engine with tmpfs delivery (said before connecting to it), images that are neither here
    nor pullable, names taken by containers or networks of something else, missing external
    networks. ``connect`` gives the client."""
    request = plan.request
    if request.delivery == "tmpfs" and not is_local_daemon():
        raise UsageError(
            "the Docker Engine is not local (DOCKER_HOST points elsewhere), so secret files "
            "on this machine's tmpfs cannot be mounted into its containers",
            hint="use the Swarm backend for remote engines, or --secret-delivery copy "
            "(plaintext then sits in each container's writable layer on that host)",
        )
    client = connect()
    images = {spec.image: name for name, spec in plan.services.items() if spec.replicas}
    sdk = docker()
    for image, service in images.items():
        try:
            client.images.get(image)
        except sdk.errors.ImageNotFound:
            _pull(client, image, service)
        except sdk.errors.APIError as exc:
            raise BackendError(f'service "{service}": image {image}: {reason(exc)}') from None
    with translated("checking names on the engine"):
        by_name = {c.name: c for c in list_containers(client, None)}  # one call for all names
        for want in plan.replicas():
            other = by_name.get(want.name)
            if other is None:
                continue
            owner = (other.labels or {}).get(LABEL_STACK)
            if owner != request.stack:
                where = f'stack "{owner}"' if owner else "no composesecrets stack"
                raise ConflictError(
                    f"a container named {want.name} already exists and belongs to {where}",
                    hint="remove or rename it, or deploy under another stack name",
                )
        for net in plan.networks.values():
            if net.external:
                try:
                    client.networks.get(net.name)
                except sdk.errors.NotFound:
                    raise BackendError(
                        f"external network {net.name} does not exist",
                        hint=f"create it first: docker network create {net.name}",
                    ) from None
                continue
            for found in client.networks.list(names=[net.name]):
                owner = (found.attrs.get("Labels") or {}).get(LABEL_STACK)
                if found.name == net.name and owner != request.stack:
                    raise ConflictError(
                        f"a network named {net.name} already exists outside this stack",
                        hint="remove it, or deploy under another stack name",
                    )


def _pull(client: Any, image: str, service: str) -> None:
    sdk = docker()
    try:
        client.images.pull(image)
    except sdk.errors.DockerException as exc:
        raise BackendError(
            f'service "{service}": image {image} is not on this engine and cannot be '
            f"pulled: {reason(exc)}",
            hint="build or load the image first (docker build / docker load / docker import)",
        ) from None
