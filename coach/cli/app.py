"""The typer application object and the options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="coach",
    help="A hands-free voice coach for home workouts: plan, play and export spoken sessions.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

DEFAULT_ROUTINE = "lower-back"

RoutineArg = typer.Argument(
    DEFAULT_ROUTINE,
    help="A built-in routine name (see `coach routines`) or a routine file (.yaml, .yml, .json).",
    show_default=True,
)
LevelOpt = typer.Option("standard", "--level", "-l", help="easier, standard or harder.")
VoiceOpt = typer.Option(None, "--voice", help="Voice id or name (see `coach voices`). Default: the routine's.")
RateOpt = typer.Option(None, "--rate", help="Speaking rate in words per minute (80..450).")
VolumeOpt = typer.Option(None, "--volume", help="Speech volume, 0.1..1.0.")
OutputOpt = typer.Option(None, "--output", "-o", help="Output file; `-` (or none) for stdout.")


def output_is_stdout(path: Optional[Path]) -> bool:
    return path is None or str(path) == "-"
