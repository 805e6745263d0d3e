"""Docker's command grammar on top of typer: aliases, help on a bare group, near-miss hints.

``DockerGroup`` is the click group class of the root app and of every command group:

* the aliases Docker users type (``stack up``, ``stack remove``/``down``, ``stack list``,
  ``secret list``, ``secret remove``) resolve to the command they name and show beside it in
  the help;
* a group given no command prints its help and exits 0, as ``docker`` and ``docker stack`` do;
* an unknown command suggests the nearest command or alias (difflib, cutoff 0.75), or nothing
  when nothing is close (``stack logs`` is not close to ``ls``).

Start-up: typer builds the click object of every registered command on each start, which is
most of a short command's start-up. When :func:`select` names the one command a process runs,
``DockerTyper.command()`` registers only that one and defers the others;
:func:`register_deferred` adds them back (help, completion, a misspelt command's suggestion).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any, ClassVar

import typer
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType

# group -> alias -> command, as Docker (and compose, for `down`) name them
ALIASES: dict[str, dict[str, str]] = {
    "stack": {"up": "deploy", "remove": "rm", "down": "rm", "list": "ls"},
    "secret": {"list": "ls", "remove": "rm"},
}
SUGGEST_CUTOFF = 0.75
_BRACED = re.compile(r"\{([^{}]+)\}")


class _Selection:
    """The (group, command) this process runs ("" is the root group), or None for all; the
    registrations deferred meanwhile, and the order in which every command was declared."""

    wanted: tuple[str, str] | None = None
    found = False
    deferred: ClassVar[list[tuple[typer.Typer, Callable[[], object]]]] = []
    order: ClassVar[dict[tuple[int, Callable[..., Any] | None], int]] = {}
    declared = 0  # commands declared so far: the place of the next one in its group's help


def _declare() -> int:
    _Selection.declared += 1
    return _Selection.declared


def select(group: str, command: str) -> None:
    """Register only ``command`` (or the command it is an alias of) of ``group`` from now on,
    until :func:`end_selection` or :func:`register_deferred`."""
    _Selection.wanted = (group, ALIASES.get(group, {}).get(command, command))
    _Selection.found = False


def selected_found() -> bool:
    """Whether a selection is on and its command was registered (False: none selected, or
    an unknown or misspelt command)."""
    return _Selection.wanted is not None and _Selection.found


def end_selection() -> None:
    """Register normally from now on; what was deferred stays so until register_deferred."""
    _Selection.wanted = None


def register_deferred() -> None:
    """Register every command deferred so far, each group in its declared order again."""
    end_selection()
    pending, _Selection.deferred = _Selection.deferred, []
    for _typer, register in pending:
        register()
    for app in {id(t): t for t, _ in pending}.values():
        key = id(app)
        app.registered_commands.sort(
            key=lambda info: _Selection.order.get((key, info.callback), 0)
        )


def suggestion(typo: str, names: list[str]) -> str | None:
    """The nearest of ``names`` to ``typo``, or None when none is close enough."""
    found = difflib.get_close_matches(typo, names, n=1, cutoff=SUGGEST_CUTOFF)
    return found[0] if found else None


class DockerGroup(TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.suggest_commands = False  # replaced by the stricter suggestion below

    def aliases(self) -> dict[str, str]:
        aliases = ALIASES.get(self.name or "", {})
        return {a: c for a, c in aliases.items() if c in self.commands and a not in self.commands}

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = self.commands.get(cmd_name)
        if found is None and cmd_name in self.aliases():
            found = self.commands.get(self.aliases()[cmd_name])
        return found

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except ClickUsageError as exc:
            if not args or not exc.message.startswith("No such command"):
                raise
            names = [n for n, c in self.commands.items() if not c.hidden] + list(self.aliases())
            near = suggestion(args[0], names)
            path = ctx.command_path
            exc.message = f"'{path} {args[0]}' is not a command" + (
                f". Did you mean '{path} {near}'?" if near else f"; see '{path} --help'"
            )
            raise

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        by_command: dict[str, list[str]] = {}
        for alias, command in self.aliases().items():
            by_command.setdefault(command, []).append(alias)
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is None or cmd.hidden:
                continue
            shown = ", ".join([name, *by_command.get(name, [])])
            rows.append((shown, cmd.get_short_help_str(formatter.width - 6 - len(shown))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class DockerCommand(TyperCommand):
    """A command whose usage line names its arguments plainly (``NAME FILE|-``), as Docker's."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [_BRACED.sub(r"\1", piece) for piece in super().collect_usage_pieces(ctx)]


class DockerTyper(typer.Typer):
    """A typer app whose groups and commands follow Docker's grammar (see module doc);
    ``group_name`` is the word that runs it ("" for the root app)."""

    def __init__(self, *, group_name: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.group_name = group_name

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        register = super().command(name, cls=cls or DockerCommand, **kwargs)

        def register_if_selected(function: CommandFunctionType) -> CommandFunctionType:
            _Selection.order.setdefault((id(self), function), _declare())
            command_name = name or function.__name__.lower().replace("_", "-")  # typer's rule
            wanted = _Selection.wanted
            if wanted is None or (self.group_name, command_name) == wanted:
                _Selection.found = wanted is not None
                return register(function)
            _Selection.deferred.append((self, lambda: register(function)))
            return function

        return register_if_selected

    def command_from(
        self, name: str, load: Callable[[], Callable[..., Any]], **kwargs: Any
    ) -> None:
        """Register command ``name`` made by the function ``load()`` returns (from another
        module), importing that module only when the command is registered."""
        declared = _declare()

        def register() -> None:
            function = load()
            _Selection.order.setdefault((id(self), function), declared)  # its place in help
            self.command(name, **kwargs)(function)

        if _Selection.wanted is None or (self.group_name, name) == _Selection.wanted:
            register()
        else:
            _Selection.deferred.append((self, register))
