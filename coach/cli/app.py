"""The typer application object and the options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

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
# The plan and voice options of plan, play and export: declared once here, used by all three.
LevelOpt = typer.Option("standard", "--level", "-l", help="easier, standard or harder.")
RestScaleOpt = typer.Option(1.0, "--rest-scale", help="Multiply every rest by this (0..5).")
PaceOpt = typer.Option(1.0, "--pace", help="Tempo scale: 1.5 makes every rep 50% slower (0.5..3).")
VerbosityOpt = typer.Option("full", "--verbosity", help="full, or brief (no background, reminders for steps).")
CountdownOpt = typer.Option(3, "--countdown", help="Seconds counted down before each timed start (0..10).")
FromExerciseOpt = typer.Option(None, "--from", help="Start at this exercise (id, name or number).")
EngineOpt = typer.Option(
    None, "--engine", help="auto (piper if the neural extra is installed, else pyttsx3), pyttsx3 (espeak-ng), "
    "piper (natural) or estimate (silent speech, timed by words per minute). Default: the routine's.")
VoiceOpt = typer.Option(None, "--voice", help="Voice id or name (see `coach voices`). Default: the routine's.")
RateOpt = typer.Option(None, "--rate", help="Speaking rate in words per minute (80..450).")
VolumeOpt = typer.Option(None, "--volume", help="Speech volume, 0.1..1.0.")
NoCacheOpt = typer.Option(False, "--no-cache", help="Synthesize every cue again (bypass the clip cache).")
OutputOpt = typer.Option(None, "--output", "-o", help="Output file; `-` (or none) for stdout.")

# Music under the voice (play and export).
MusicOpt = typer.Option(
    None, "--music", help="Music under the voice: a folder, an .m3u/.m3u8 playlist or an audio file "
    "(repeat for more). Default: the routine's music, if it names any.")
ShuffleOpt = typer.Option(False, "--shuffle", help="Play the music in a random order (--resume keeps it).")
MusicLevelOpt = typer.Option(
    None, "--music-level", help="Music loudness against the speech in dB, before ducking (-40..0). [default: -14]")
CrossfadeOpt = typer.Option(0.0, "--crossfade", help="Seconds of overlap between tracks (0: gapless).")
NoMusicOpt = typer.Option(False, "--no-music", help="No music, even if the routine names some.")

MusicList = Optional[List[str]]


def warn_line(line: str) -> None:
    """One warning line on stderr (a skipped music file, ...)."""
    import sys

    print(f"coach: warning: {line}", file=sys.stderr)


def music_options(music: MusicList, shuffle: bool, music_level: Optional[float], crossfade: float,
                  no_music: bool) -> dict[str, Any]:
    """The music options as SessionOptions fields."""
    return {"music": tuple(music or ()), "shuffle": shuffle, "music_level_db": music_level,
            "crossfade_s": crossfade, "no_music": no_music}



def output_is_stdout(path: Optional[Path]) -> bool:
    return path is None or str(path) == "-"
