"""Command-line interface: thin commands over the library, one error handler.

Each command module registers itself on ``app``; ``main`` maps every
``CoachError`` to one line on stderr and its exit code. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from coach import __version__
from coach.cli.app import app
from coach.errors import CoachError, ExitStatus

# Command modules register on import; keep them light (heavy imports inside commands).
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


def error_line(exc: CoachError) -> str:
    line = f"coach: error: {exc.message}"
    if exc.hint:
        line += f" ({exc.hint})"
    return line


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the right status."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="coach", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitStatus.USAGE if exc.exit_code == 2 else exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        if os.environ.get("COACH_TRACEBACK") == "1" and not isinstance(exc, click.exceptions.Abort):
            raise
        msg = getattr(exc, "message", None) or "interrupted"
        print(f"coach: {msg}", file=sys.stderr)
        sys.exit(ExitStatus.INTERRUPTED)
    except CoachError as exc:
        if os.environ.get("COACH_TRACEBACK") == "1":
            raise
        print(error_line(exc), file=sys.stderr)
        if getattr(exc, "problems", None) and len(exc.problems) > 1:
            for problem in exc.problems[1:]:
                print(f"coach: error: {problem}", file=sys.stderr)
        sys.exit(exc.exit_status)
    except BrokenPipeError:
        # stdout closed early (`coach plan | head`): not an error worth a trace.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(ExitStatus.OK)
    sys.exit(ExitStatus.OK)
