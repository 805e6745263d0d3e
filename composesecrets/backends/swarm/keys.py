"""The service keys the Swarm backend does not apply, with the reason (its translation,
``validate --backend swarm`` and README's supported keys table read them from here)."""

from __future__ import annotations

__all__ = ["NOT_APPLIED"]

# Keys a service may carry that the Swarm backend does not apply, with the reason.
NOT_APPLIED: dict[str, str] = {
    "build": "images are not built; the service must name an existing image",
    "container_name": "task containers are named by Swarm",
    "depends_on": "Swarm starts services without ordering",
    "links": "use the service name on a shared network instead",
    "external_links": "use a shared external network instead",
    "network_mode": "tasks join the stack's networks",
    "privileged": "Swarm services cannot be privileged",
    "devices": "Swarm services cannot map devices",
    "cgroup_parent": "not a Swarm service setting",
    "cgroupns_mode": "not a Swarm service setting",
    "userns_mode": "not a Swarm service setting",
    "ipc": "not a Swarm service setting",
    "pid": "not a Swarm service setting",
    "security_opt": "not a Swarm service setting",
    "shm_size": "not a Swarm service setting",
    "mac_address": "replicas would share one address",
    "expose": "container ports are reachable on the stack's networks without it",
    "domainname": "not a Swarm service setting",
    "credential_spec": "Windows-only",
    "isolation": "Windows-only",
}
