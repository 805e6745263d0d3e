"""The Swarm backend's plan: the request translated once (:mod:`.translate`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from composesecrets.backends import DeployRequest, Plan
from composesecrets.backends.swarm.translate import SwarmNetwork, SwarmService, stack_specs
from composesecrets.docker_rules import LABEL_ROTATE
from composesecrets.model import labels_dict

__all__ = ["SwarmPlan", "make_plan"]


@dataclass(frozen=True, kw_only=True)
class SwarmPlan(Plan):
    services: Mapping[str, SwarmService]  # by compose service name
    networks: Mapping[str, SwarmNetwork]  # by compose network key


def make_plan(request: DeployRequest) -> SwarmPlan:
    services, networks = stack_specs(request.model, request.stack)
    warnings = [w for s in services.values() for w in s.warnings]
    warnings += [w for n in networks.values() for w in n.warnings]
    for name, service in request.model.services.items():
        deploy_labels = (service.config.get("deploy") or {}).get("labels")
        if LABEL_ROTATE in {
            **labels_dict(service.config.get("labels")),
            **labels_dict(deploy_labels),
        }:
            warnings.append(
                f'service "{name}": {LABEL_ROTATE} is not applied on Swarm (its secrets are '
                "immutable): a new secret version rolls the service's tasks instead"
            )
    return SwarmPlan(
        request=request, warnings=tuple(warnings), services=services, networks=networks
    )
