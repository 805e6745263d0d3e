"""The ``composesecrets`` command line: thin typer commands over the library API.

This package is the only place that imports typer. Each command group lives in its own
module (``compose_cmds``, ``secret_cmds``, ``store_cmds``, ``stack_cmds``, ``doctor``) and
registers itself on the root app from :mod:`composesecrets.cli.app` when imported.
:func:`load_commands` imports only the module of the command being run (typer builds every
registered command on each start, which is most of a short command's start-up); help,
completion and unknown commands get all of them. Commands call the library, print its result
objects, and exit with the code each :mod:`composesecrets.errors` class carries.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

from composesecrets.cli.app import app
from composesecrets.errors import ComposeSecretsError, InternalError

__all__ = ["app", "load_commands", "main"]

# command word -> the module that registers it; the order is the order of the root help
COMMAND_MODULES = {
    "validate": "compose_cmds",
    "config": "compose_cmds",
    "schema": "compose_cmds",
    "secret": "secret_cmds",
    "stack": "stack_cmds",
    "store": "store_cmds",
    "doctor": "doctor",
}


def _command_word(args: Sequence[str]) -> str | None:
    words = iter(args)
    for arg in words:
        if arg == "--store":
            next(words, None)  # its value
        elif not arg.startswith("-"):
            return arg
    return None


def load_commands(args: Sequence[str] | None = None) -> None:
    """Register the commands ``args`` (default: all) can run; idempotent."""
    word = _command_word(args) if args is not None else None
    if word in COMMAND_MODULES and "_COMPOSESECRETS_COMPLETE" not in os.environ:
        wanted = [COMMAND_MODULES[word]]
    elif args is not None and word is None and "--version" in args:
        wanted = []  # answered by an eager option before any command
    else:
        wanted = list(dict.fromkeys(COMMAND_MODULES.values()))
    for name in wanted:
        importlib.import_module(f"composesecrets.cli.{name}")


def _fail(exc: ComposeSecretsError) -> NoReturn:
    typer.echo(f"composesecrets: error: {exc.message}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def main() -> None:
    """Console-script entry point: no traceback reaches a user for bad input."""
    try:
        load_commands(sys.argv[1:])
        app(prog_name="composesecrets")
    except ComposeSecretsError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo("composesecrets: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, details only on request
        if os.environ.get("COMPOSESECRETS_DEBUG"):
            import traceback

            traceback.print_exc()
        _fail(
            InternalError(
                f"internal error ({type(exc).__name__}); this is a bug in composesecrets",
                hint="set COMPOSESECRETS_DEBUG=1 for the traceback and report it",
            )
        )
