"""The ``composesecrets`` command line: thin typer commands over the library API.

This package is the only place that imports typer. Each command group lives in its own
module (``compose_cmds``, ``secret_cmds``, ``store_cmds``, ``stack_cmds``) and registers
itself on the root app from :mod:`composesecrets.cli.app`. Commands call the library, print
its result objects, and exit with the code each :mod:`composesecrets.errors` class carries.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import typer

from composesecrets.cli import compose_cmds, restore_cmds, secret_cmds, stack_cmds, store_cmds
from composesecrets.cli.app import app
from composesecrets.errors import ComposeSecretsError, InternalError

__all__ = [
    "app",
    "compose_cmds",
    "main",
    "restore_cmds",
    "secret_cmds",
    "stack_cmds",
    "store_cmds",
]


def _fail(exc: ComposeSecretsError) -> NoReturn:
    typer.echo(f"composesecrets: error: {exc.message}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def main() -> None:
    """Console-script entry point: no traceback reaches a user for bad input."""
    try:
        app()
    except ComposeSecretsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo("composesecrets: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, details only on request
        if os.environ.get("COMPOSESECRETS_DEBUG"):
            traceback.print_exc()
        _fail(
            InternalError(
                f"internal error ({type(exc).__name__}); this is a bug in composesecrets",
                hint="set COMPOSESECRETS_DEBUG=1 for the traceback and report it",
            )
        )
