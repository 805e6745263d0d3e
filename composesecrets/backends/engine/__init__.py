"""The engine backend: a stack as labelled containers on one Docker Engine, secrets as
tmpfs files (:mod:`.tmpfs`); :mod:`.translate` turns compose services into container specs,
:mod:`.plan` is one deploy's translation, :mod:`.backend` converges the engine to it."""
