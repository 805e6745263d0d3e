"""The Swarm backend's plan: the request translated once (:mod:`.translate`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from composesecrets.backends import DeployRequest, Plan
from composesecrets.backends.swarm.translate import SwarmNetwork, SwarmService, stack_specs

__all__ = ["SwarmPlan", "make_plan"]


@dataclass(frozen=True, kw_only=True)
class SwarmPlan(Plan):
    services: Mapping[str, SwarmService]  # by compose service name
    networks: Mapping[str, SwarmNetwork]  # by compose network key


def make_plan(request: DeployRequest) -> SwarmPlan:
    services, networks = stack_specs(request.model, request.stack)
    warnings = [w for s in services.values() for w in s.warnings]
    warnings += [w for n in networks.values() for w in n.warnings]
    return SwarmPlan(
        request=request, warnings=tuple(warnings), services=services, networks=networks
    )
