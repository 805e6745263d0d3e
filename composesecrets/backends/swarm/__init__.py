"""The Swarm backend: a stack as Swarm services, secrets as Swarm secrets
(:mod:`.swarm_secrets`); :mod:`.translate` turns compose services into ServiceSpecs, :mod:`.plan`
is one deploy's translation, :mod:`.backend` converges the swarm to it, :mod:`.tasks` waits
for tasks."""
