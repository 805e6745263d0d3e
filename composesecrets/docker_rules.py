"""Docker's own rules in one place: name patterns, size limits, defaults and label names.

Everything that checks a name, a size or a default against what Docker does imports it
from here (compose checks, the store, both backends), so that the rules cannot drift.
Sources: moby/swarmkit (name pattern and limits), docker/cli (stack naming, compose v3
loader defaults), measured behaviour in ``shared/docker-secrets-behaviour.md``.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------- names
# swarmkit: secret and config names; matched with fullmatch (``$`` would accept "abc\n").
SECRET_NAME_RE = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?")
NAME_MAX = 64  # swarmkit's limit on object names
# docker/cli: a stack name (the namespace of every object of the stack).
STACK_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")

# --------------------------------------------------------------------------- Engine API
# The API version the docker SDK asks for by default (docker.constants.
# DEFAULT_DOCKER_API_VERSION; a unit test keeps them equal): the read-only listing path
# (backends/engine_reader.py) uses it, capped at what the engine supports, without the SDK.
DOCKER_API_VERSION = "1.45"

# --------------------------------------------------------------------------- limits
SECRET_VALUE_MAX = 511_999  # swarmkit refuses len >= 500 * 1024
LABEL_KEY_MAX = 255
LABEL_VALUE_MAX = 4096

# --------------------------------------------------------------------------- defaults
SECRETS_DIR = "/run/secrets"
DEFAULT_UID = "0"
DEFAULT_GID = "0"
DEFAULT_MODE = 0o444
# docker stack deploy: a service without restart_policy restarts on any exit
DEFAULT_RESTART_CONDITION = "any"

# --------------------------------------------------------------------------- labels
# Docker's stack namespace label (docker stack ls/ps/services read it).
LABEL_NAMESPACE = "com.docker.stack.namespace"
LABEL_IMAGE = "com.docker.stack.image"
# docker compose's labels (set on engine-backend objects so that compose tools see them).
LABEL_COMPOSE_PROJECT = "com.docker.compose.project"
LABEL_COMPOSE_SERVICE = "com.docker.compose.service"
LABEL_COMPOSE_NETWORK = "com.docker.compose.network"
LABEL_COMPOSE_VOLUME = "com.docker.compose.volume"
LABEL_CONTAINER_NUMBER = "com.docker.compose.container-number"
# composesecrets' own labels on the objects it creates.
LABEL_STACK = "io.composesecrets.stack"
LABEL_SERVICE = "io.composesecrets.service"
LABEL_BACKEND = "io.composesecrets.backend"
LABEL_HASH = "io.composesecrets.config-hash"
LABEL_DIR = "io.composesecrets.secret-dir"
LABEL_TARGETS = "io.composesecrets.secrets"
# per container, its secret files (store name, version, key, target, uid, gid, mode): what
# `stack restore` re-creates after a reboot without a compose file
LABEL_FILES = "io.composesecrets.secret-files"
LABEL_REPLICAS = "io.composesecrets.replicas"
LABEL_STOP = "io.composesecrets.stop-timeout"
LABEL_SECRET = "io.composesecrets.secret"
LABEL_VERSION = "io.composesecrets.version"
LABEL_DIGEST = "io.composesecrets.digest"
LABEL_VERSIONS = "io.composesecrets.secret-versions"  # store name@version, at create time
# Service labels a user sets (compose ``labels:``): in-place rotation (engine backend only).
LABEL_ROTATE = "io.composesecrets.rotate"
ROTATE_IN_PLACE = "in-place"  # the one value: new versions are written into running containers
LABEL_RELOAD_SIGNAL = "io.composesecrets.reload-signal"  # e.g. SIGHUP, sent after a rotation
# Where an in-place service's secret directory is mounted inside its containers; each
# target is a symlink to ``ROTATE_MOUNT/..data/<file>``.
ROTATE_MOUNT = "/run/composesecrets"
LABEL_KIND = "io.composesecrets.kind"  # "config" on store entries and Swarm objects of configs


def is_secret_name(name: str) -> bool:
    """True when Docker accepts ``name`` as a secret (or config) name."""
    return len(name) <= NAME_MAX and SECRET_NAME_RE.fullmatch(name) is not None


def is_signal_name(name: str) -> bool:
    """True for a signal the engine's kill API takes by name: SIGHUP, HUP, SIGUSR1, 10."""
    if name.isdigit():
        return 0 < int(name) < 65
    bare = name.upper().removeprefix("SIG")
    return bare in _SIGNALS or re.fullmatch(r"RTMIN\+\d+|RTMAX-\d+", bare) is not None


_SIGNALS = frozenset(
    ("ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
     "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
     "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ")
)  # fmt: skip


def is_stack_name(name: str) -> bool:
    return STACK_NAME_RE.fullmatch(name) is not None
