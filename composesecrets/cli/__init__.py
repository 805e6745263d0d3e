"""The ``composesecrets`` command line: thin typer commands over the library API.

This package is the only place that imports typer. Each command group lives in its own
module (``compose_cmds``, ``secret_cmds``, ``store_cmds``, ``stack_cmds``, ``doctor``) and
registers itself on the root app from :mod:`composesecrets.cli.app` when imported.
:func:`load_commands` imports only the module of the command being run and registers only
that command (typer builds every registered command on each start, which is most of a short
command's start-up; see :mod:`composesecrets.cli.grammar`); help, completion and unknown
commands get all of them. Commands call the library, print its result
objects, and exit with the code each :mod:`composesecrets.errors` class carries.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

import composesecrets
from composesecrets.cli.app import app
from composesecrets.cli.grammar import end_selection, register_deferred, select, selected_found
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


# command groups: a word after them names one of their commands
GROUPS = ("secret", "stack", "store")


def _command_words(args: Sequence[str]) -> list[str]:
    """The words before the first option after the command word (``stack ls`` -> both)."""
    words: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--store" and not words:
            next(items, None)  # its value
        elif arg.startswith("-"):
            if words:
                break
        else:
            words.append(arg)
            if len(words) == 2:
                break
    return words


def _command_word(args: Sequence[str]) -> str | None:
    words = _command_words(args)
    return words[0] if words else None


def load_commands(args: Sequence[str] | None = None) -> None:
    """Register the commands ``args`` (default: all) can run; idempotent."""
    words = _command_words(args) if args is not None else []
    word = words[0] if words else None
    if word in COMMAND_MODULES and "_COMPOSESECRETS_COMPLETE" not in os.environ:
        wanted = [COMMAND_MODULES[word]]
        if word not in GROUPS:
            select("", word)
        elif len(words) == 2:
            select(word, words[1])
    elif args is not None and word is None and "--version" in args:
        wanted = []  # answered by an eager option before any command
    else:
        wanted = list(dict.fromkeys(COMMAND_MODULES.values()))
    try:
        for name in wanted:
            importlib.import_module(f"composesecrets.cli.{name}")
    finally:
        if selected_found():
            end_selection()  # the others stay unregistered: this process runs one command
        else:
            register_deferred()  # all of them: help, or a misspelt command's suggestion


def _fail(exc: ComposeSecretsError) -> NoReturn:
    typer.echo(f"composesecrets: error: {exc.message}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def main() -> None:
    """Console-script entry point: no traceback reaches a user for bad input."""
    composesecrets._command_line = True
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
