"""The `coach plan` command: show or write the planned session (table, json, vtt, srt, txt, labels)."""

from __future__ import annotations

import sys
from pathlib import Path
from dataclasses import replace
from typing import Optional

import typer

from coach.cli.app import (
    CountdownOpt, EngineOpt, FromExerciseOpt, LevelOpt, OutputOpt, PaceOpt, RateOpt, RestScaleOpt, RoutineArg,
    VerbosityOpt, VoiceOpt, VolumeOpt, app, output_is_stdout,
)
from coach.cuescript import FORMATS
from coach.errors import UsageError


@app.command("plan")
def plan_cmd(
    routine: str = RoutineArg,
    level: str = LevelOpt,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, vtt, srt, txt or labels."),
    rest_scale: float = RestScaleOpt,
    pace: float = PaceOpt,
    verbosity: str = VerbosityOpt,
    countdown: int = CountdownOpt,
    start_from: Optional[str] = FromExerciseOpt,
    voice: Optional[str] = VoiceOpt,
    rate: Optional[int] = RateOpt,
    volume: Optional[float] = VolumeOpt,
    engine: Optional[str] = EngineOpt,
    output: Optional[Path] = OutputOpt,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Plan a session and print it: a table, or a cue script (json, vtt, srt, txt, labels) for -o FILE."""
    from coach.cuescript import clock, write_script
    from coach.fsutil import write_text
    from coach.loader import load_routine
    from coach.session import SessionOptions, plan_with_voice, routine_sound_files, sound_lengths, voice_spec

    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if not output_is_stdout(output):
        from coach.fsutil import check_target

        check_target(output, force)  # before planning, which synthesizes every cue
    loaded = load_routine(routine)
    options = SessionOptions(level=level, rest_scale=rest_scale, pace=pace, verbosity=verbosity,
                             countdown_s=countdown, start_at=start_from)
    settings = options.plan_settings(voice_spec(loaded, engine=engine, voice=voice, rate=rate, volume=volume))
    sounds = routine_sound_files(loaded, routine)
    timeline = replace(plan_with_voice(loaded, settings, sound_lengths_s=sound_lengths(sounds)), sounds=sounds)
    text = write_script(timeline, fmt)
    write_text(None if output_is_stdout(output) else output, text, force=force)
    if not output_is_stdout(output):
        print(f"coach: wrote {output} ({fmt}, {len(timeline.cues)} cues, {clock(timeline.duration_s)})",
              file=sys.stderr)
