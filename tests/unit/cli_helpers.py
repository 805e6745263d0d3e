"""Run ``composesecrets.cli.main`` in-process as the console script would, for the unit
tests of the command line (imported as ``cli_helpers``: pytest puts this directory on
sys.path)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from typer.testing import CliRunner

from composesecrets import cli


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_main(args: list[str], stdin: bytes | str | None = None) -> Run:
    """Call cli.main() with ``args`` as its argv; the exit code is the one a user sees."""
    runner = CliRunner()
    saved = sys.argv
    with runner.isolation(input=stdin) as (out, err, _mixed):
        sys.argv = ["composesecrets", *args]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved
            sys.stdout.flush()
            sys.stderr.flush()
        return Run(code, out.getvalue().decode(), err.getvalue().decode())
