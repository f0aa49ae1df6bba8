"""Command-line interface: thin commands over the library, one error handler.

Each command module registers itself on ``app``; ``main`` maps every
``CoachError`` to one line on stderr and its exit code. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

from coach import __version__
from coach.cli.app import app
from coach.errors import CoachError, ExitStatus, Interrupted, RoutineInvalid

# Command modules register on import; they keep heavy imports inside the commands.
from coach.cli import routines as _routines  # noqa: E402,F401

for _optional in ("plan", "voices", "export", "play"):
    try:
        __import__(f"coach.cli.{_optional}")
    except ModuleNotFoundError as _exc:  # a command module not written yet
        if _exc.name != f"coach.cli.{_optional}":
            raise


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coach {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    traceback: bool = typer.Option(
        False, "--traceback", help="Show the full traceback of an error (also: COACH_TRACEBACK=1)."
    ),
) -> None:
    """A hands-free voice coach for home workouts: plan, play and export spoken sessions."""
    if traceback:
        os.environ["COACH_TRACEBACK"] = "1"


def error_lines(exc: CoachError) -> list[str]:
    """What the user sees for an error: one line (one per problem for invalid routines)."""
    if isinstance(exc, RoutineInvalid) and exc.problems:
        return [f"coach: error: {p}" for p in exc.problems]
    line = f"coach: error: {exc.message}"
    if exc.hint:
        line += f" ({exc.hint})"
    return [line]


def _interrupt(signum: int, _frame: object) -> None:
    name = "interrupted" if signum == signal.SIGINT else "terminated"
    raise Interrupted(name)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the right status."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="coach", standalone_mode=True)
    except CoachError as exc:
        if os.environ.get("COACH_TRACEBACK") == "1":
            raise
        for line in error_lines(exc):
            print(line, file=sys.stderr)
        sys.exit(exc.exit_status)
    except BrokenPipeError:
        # stdout closed early (`coach plan | head`): not an error worth a trace.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(ExitStatus.OK)
