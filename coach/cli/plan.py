"""The `coach plan` command: show or write the planned session (table, json, vtt, srt, txt, labels)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer

from coach.cli.app import LevelOpt, OutputOpt, RateOpt, RoutineArg, VoiceOpt, VolumeOpt, app, output_is_stdout
from coach.cuescript import FORMATS
from coach.errors import UsageError
from coach.timeline import Timeline, VoiceSpec

if TYPE_CHECKING:  # heavy imports wait until the command runs, so `coach --help` stays quick
    from coach.model import Routine
    from coach.planner import PlanSettings
    from coach.voice import Voice


@app.command("plan")
def plan_cmd(
    routine: str = RoutineArg,
    level: str = LevelOpt,
    fmt: str = typer.Option("table", "--format", "-f", help="table, json, vtt, srt, txt or labels."),
    rest_scale: float = typer.Option(1.0, "--rest-scale", help="Multiply every rest by this (0..5)."),
    pace: float = typer.Option(1.0, "--pace", help="Tempo scale: 1.5 makes every rep 50% slower (0.5..3)."),
    verbosity: str = typer.Option("full", "--verbosity", help="full, or brief (no background, reminders for steps)."),
    countdown: int = typer.Option(3, "--countdown", help="Seconds counted down before each timed start (0..10)."),
    start_from: Optional[str] = typer.Option(None, "--from", help="Start at this exercise (id, name or number)."),
    voice: Optional[str] = VoiceOpt,
    rate: Optional[int] = RateOpt,
    volume: Optional[float] = VolumeOpt,
    engine: Optional[str] = typer.Option(
        None, "--engine", help="pyttsx3 or piper (measure real speech; piper needs the neural extra) or estimate "
        "(words per minute). Default: the routine's."
    ),
    output: Optional[Path] = OutputOpt,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Plan a session and print it: a table, or a cue script (json, vtt, srt, txt, labels) for -o FILE."""
    from coach.cuescript import clock, write_script
    from coach.fsutil import write_text
    from coach.loader import load_routine
    from coach.planner import PlanSettings

    if fmt not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if not output_is_stdout(output):
        from coach.fsutil import check_target

        check_target(output, force)  # before planning, which synthesizes every cue
    loaded = load_routine(routine)
    spec = voice_spec(loaded, engine=engine, voice=voice, rate=rate, volume=volume)
    settings = PlanSettings(level=level, rest_scale=rest_scale, pace=pace, verbosity=verbosity,
                            countdown_s=countdown, start_at=start_from, voice=spec)
    timeline = plan_with_voice(loaded, settings, sound_lengths_s=routine_sound_lengths(loaded, routine))
    text = write_script(timeline, fmt)
    write_text(None if output_is_stdout(output) else output, text, force=force)
    if not output_is_stdout(output):
        print(f"coach: wrote {output} ({fmt}, {len(timeline.cues)} cues, {clock(timeline.duration_s)})",
              file=sys.stderr)


def voice_spec(routine: Routine, *, engine: str | None = None, voice: str | None = None, rate: int | None = None,
               volume: float | None = None) -> VoiceSpec:
    """The voice to plan with: the routine's defaults, each overridden by the command line."""
    base = VoiceSpec()
    defaults = routine.voice
    return VoiceSpec(
        engine=engine or defaults.engine or base.engine,
        voice=voice or defaults.voice or base.voice,
        rate_wpm=rate if rate is not None else (defaults.rate_wpm or base.rate_wpm),
        volume=volume if volume is not None else (defaults.volume or base.volume),
    )


def plan_with_voice(routine: Routine, settings: PlanSettings, *,
                    sound_lengths_s: dict[str, float] | None = None) -> Timeline:
    """Open the settings' voice, plan with it (see ``plan_measured``) and close it."""
    from coach.voice import open_voice

    voice = open_voice(settings.voice)
    try:
        return plan_measured(routine, settings, voice, sound_lengths_s=sound_lengths_s)
    finally:
        voice.close()


def plan_measured(routine: Routine, settings: PlanSettings, voice: Voice, *,
                  sound_lengths_s: dict[str, float] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Timeline:
    """Plan with cue lengths measured in ``voice`` (the very clips later rendered); the voice stays open.

    With a real engine, a first plan from the estimate lists the texts, which
    are then synthesized in parallel; the real plan mostly finds them ready.
    """
    from dataclasses import replace

    from coach.planner import plan
    from coach.voice import estimate_speech_s

    settings = replace(settings, voice=voice.spec)  # the voice as resolved, e.g. en-us -> gmw/en-us
    if voice.spec.engine != "estimate":
        texts: list[str] = []

        def listing(text: str) -> float:
            texts.append(text)
            return estimate_speech_s(text, voice.spec.rate_wpm)

        plan(routine, settings, listing, sound_lengths_s=sound_lengths_s)
        voice.prefetch(texts, progress=progress)
    return plan(routine, settings, voice.measure_s, sound_lengths_s=sound_lengths_s)


def routine_sound_lengths(routine: Routine, ref: str) -> dict[str, float] | None:
    """Lengths of the routine's own replacement sounds (they are read relative to its file)."""
    if not routine.sounds:
        return None
    from coach.audio.earcons import load_sound
    from coach.loader import resolve, user_routine_dir

    where = resolve(ref)
    base_dir = where.parent if isinstance(where, Path) else user_routine_dir()
    return {name: load_sound(name, routine.sounds, base_dir).duration_s for name in routine.sounds}
