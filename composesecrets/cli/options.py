"""Options shared by the compose-reading commands (validate, config, stack deploy)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ComposeFiles = Annotated[
    list[str] | None,
    typer.Option(
        "-c",
        "--compose-file",
        "-f",
        metavar="FILE",
        help="Compose file (repeat to merge overrides; - for standard input; -f as in "
        "docker compose). "
        "Default: compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml here.",
        show_default=False,
    ),
]
EnvFile = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        metavar="FILE",
        help="Variables for interpolation (default: .env beside the first compose file).",
        show_default=False,
    ),
]
StackName = Annotated[
    str | None,
    typer.Option(
        "--stack",
        metavar="STACK",
        help="Stack name: secret names are checked as <STACK>_<key>.",
        show_default=False,
    ),
]
Compat = Annotated[
    bool,
    typer.Option(
        "--compat", help="Give exactly Docker's verdict (docker stack config); no strict checks."
    ),
]
