"""Which image reference a Swarm service spec names.

Before a task starts, the swarm agent pulls the service's image unless the reference is an
image ID, or a digest that is present locally. With a tag (what ``docker stack deploy
--resolve-image never`` leaves, and what it falls back to when no registry answers), every task
tries the registry first. For an image built or imported on this machine that is a pull that
can never succeed: it costs a DNS lookup or a timeout per task, and fills the daemon's log with
"pulling image failed".

So, on a single-node swarm, an image that exists on this engine and has no registry digest
(it was never pulled from or pushed to a registry) is named by its ID: its tasks start without
a pull, and a rebuilt image (a new ID) rolls the service on the next deploy. Everything else
keeps its tag, as Docker does: an image from a registry is pulled by its tasks (mutable tags
get their newest version), and on a multi-node swarm each node resolves the tag itself, since
other nodes may hold their own build under the same name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from composesecrets.backends.docker_api import docker, translated

__all__ = ["pinned_images", "single_node"]


def single_node(info: Mapping[str, Any]) -> bool:
    """Whether ``docker info`` says the swarm has this one node."""
    return (info.get("Swarm") or {}).get("Nodes") == 1


def _pinnable(image: str) -> bool:
    return "@" not in image and not image.startswith("sha256:")


def pinned_images(api: Any, images: Iterable[str], *, single: bool) -> dict[str, str]:
    """Each image name of a stack -> the reference its service spec names (see above)."""
    out = {image: image for image in images}
    if not single:
        return out
    missing = docker().errors.NotFound  # ImageNotFound included
    for image in sorted(out):
        if not _pinnable(image):
            continue
        with translated(f"inspecting image {image}"):
            try:
                found = api.inspect_image(image)
            except missing:  # not on this node: Swarm pulls it and reports per task
                continue
        if not found.get("RepoDigests") and found.get("Id"):
            out[image] = str(found["Id"])
    return out
