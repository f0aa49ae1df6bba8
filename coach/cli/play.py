"""`coach play` (coach a session aloud, live) and `coach history` (the sessions played)."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import replace
from typing import Any, Optional

import typer

from coach.cli.app import (
    CountdownOpt, EngineOpt, LevelOpt, NoCacheOpt, PaceOpt, RateOpt, RestScaleOpt, VoiceOpt,
    VolumeOpt, app,
    CrossfadeOpt, MusicLevelOpt, MusicList, MusicOpt, NoMusicOpt, ShuffleOpt, music_options, warn_line,
)
from coach.errors import AudioDeviceError, CoachError, Interrupted, UsageError


@app.command("play")
def play_cmd(
    routine: Optional[str] = typer.Argument(
        None,
        help="A built-in routine, a routine file, or a cue script from `coach plan` (.json, .vtt, .srt). "
        "Default: lower-back, or with --resume the last unfinished session.",
        show_default=False,
    ),
    level: str = LevelOpt,
    rest_scale: float = RestScaleOpt,
    pace: float = PaceOpt,
    verbosity: Optional[str] = typer.Option(
        None, "--verbosity", help="full, or brief (reminders for steps, no background). "
        "Default: brief once you have finished this routine before, else full."),
    countdown: int = CountdownOpt,
    voice: Optional[str] = VoiceOpt,
    rate: Optional[int] = RateOpt,
    volume: Optional[float] = VolumeOpt,
    engine: Optional[str] = EngineOpt,
    music: MusicList = MusicOpt,
    shuffle: bool = ShuffleOpt,
    music_level: Optional[float] = MusicLevelOpt,
    crossfade: float = CrossfadeOpt,
    no_music: bool = NoMusicOpt,
    start_from: Optional[str] = typer.Option(
        None, "--from", help="Start at an exercise (id, name or number) or a time (M:SS)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the last unfinished session from the start of its step."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status line on stderr."),
    no_cache: bool = NoCacheOpt,
    no_media_keys: bool = typer.Option(
        False, "--no-media-keys", help="Do not register as a desktop media player (MPRIS): media keys, "
        "media widgets and headset buttons then do nothing."),
    verbose: bool = typer.Option(False, "--verbose", help="Say whether media keys are on, and if not why."),
) -> None:
    """Coach a session aloud, live: keys, media keys and headset buttons pause, skip, go back and quit."""
    from coach.cli.export import ProgressLine
    from coach.history import resume_record
    from coach.media import start_media_controls
    from coach.player import MonotonicClock, QueueInbox
    from coach.opening import command as command_key, take as take_early
    from coach.playback import SimpleaudioSink, SimpleaudioStream
    from coach.session import SessionOptions, prepare_session, source_of, warm_up

    from coach.history import default_verbosity
    from coach.session import is_script

    voices_ready = warm_up(engine)
    history = _open_history(quiet)
    record = None
    if resume:
        if history is None:
            raise UsageError("--resume: the session history cannot be opened")
        record = resume_record(history, source_of(routine) if routine else None)
        routine = record.source
        verbosity = verbosity or record.settings.get("verbosity")
    ref = routine or "lower-back"
    # A returning listener gets the brief version unless --verbosity says otherwise.
    verbosity, returning = ("full", False) if is_script(ref) else default_verbosity(history, source_of(ref), verbosity)
    options = SessionOptions(level=level, rest_scale=rest_scale, pace=pace, verbosity=verbosity,
                             countdown_s=countdown, engine=engine, voice=voice, rate_wpm=rate, volume=volume,
                             use_cache=not no_cache, returning=returning and record is None,
                             **music_options(music, shuffle, music_level, crossfade, no_music))
    if record is not None:
        options = options.with_recorded(record.settings)
        if level == "standard":
            options = replace(options, level=record.level)

    sink = SimpleaudioSink()
    # Fail before planning when there is no device, and keep it awake (Bluetooth) until the session starts;
    # a command played before is already playing its opening (coach.opening).
    early = take_early()
    held = (SimpleaudioStream.playing(early.map, early.play, early.started_s, sink.sample_rate_hz, sink.channels)
            if early is not None else sink.hold())
    opening_key = command_key() if start_from is None and record is None else None
    # Media keys and headset buttons (MPRIS): commands into the same inbox as the keys.
    inbox = QueueInbox(MonotonicClock())
    notice = (lambda line: print(f"coach: {line}", file=sys.stderr)) if verbose else None
    media = None if no_media_keys else start_media_controls(inbox.put, notice=notice)
    voices_ready.join()
    # A cold cache takes seconds with Piper: show the synthesis on a terminal.
    synthesizing = ProgressLine(sys.stderr) if not quiet and sys.stderr.isatty() else None
    try:
        try:
            session = prepare_session(
                ref, options, early_start=start_from is None and record is None, warn=warn_line,
                progress=(lambda done, total: synthesizing("synth", done, total)) if synthesizing else None,
                music_progress=(lambda done, total: synthesizing("music", done, total)) if synthesizing else None)
        finally:
            if synthesizing:
                synthesizing.close()
        try:
            _play(session, sink, held, history, record, start_from, quiet, inbox, media,
                  opening=(opening_key, early))
        finally:
            session.close()
    finally:
        held.stop()
        if media is not None:
            media.close()
        if history is not None:
            history.close()


@app.command("history")
def history_cmd(
    limit: int = typer.Option(20, "--limit", "-n", help="How many sessions to list, newest first."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List the sessions played, newest first, and how far each got."""
    from coach.history import History, history_path
    from coach.session_map import clock

    if fmt not in ("table", "json"):
        raise UsageError(f"--format: expected table or json, got {fmt!r}")
    if not history_path().exists():
        records = []
    else:
        with History() as h:
            records = h.recent(limit)
    if fmt == "json":
        print(json.dumps([r.to_dict() for r in records], indent=2, ensure_ascii=False))
        return
    if not records:
        print(f"No sessions yet ({history_path()}).", file=sys.stderr)
        return
    print(f"{'ID':>4}  {'STARTED':<16}  {'ROUTINE':<20} {'LEVEL':<8}  {'PLAYED':>15}  RESULT")
    for r in records:
        started = r.started_at.replace("T", " ")[:16]
        played = f"{clock(r.position_s)}/{clock(r.duration_s)}"
        if r.finished:
            result = "finished"
        elif r.outcome == "playing":
            result = f"stopped at {r.step or clock(r.position_s)} (player did not exit cleanly)"
        else:
            result = f"{r.outcome} at {r.step or clock(r.position_s)}"
        print(f"{r.id:>4}  {started:<16}  {r.routine[:20]:<20} {r.level:<8}  {played:>15}  {result}")


def _open_history(quiet: bool) -> Any:
    from coach.history import History

    try:
        return History()
    except CoachError as exc:
        # A session without a history is better than no session.
        if not quiet:
            print(f"coach: warning: {exc.message}; this session will not be recorded", file=sys.stderr)
        return None


def _play(session: Any, sink: Any, held: Any, history: Any, record: Any, start_from: str | None,
          quiet: bool, inbox: Any, media: Any, opening: tuple[Any, Any] = (None, None)) -> None:
    """Run the session live with the terminal's keys, the media controls and the status line."""
    from coach.cli.terminal import Keyboard, StatusLine, keyboard_is_ours
    from coach.live import coach_live, start_position
    from coach.player import KEYS_HELP
    from coach.session_map import SessionMap, clock

    start_s = start_position(session, start_from, record)
    resume_cmd = f"coach play {shlex.quote(session.source)} --resume"
    line = StatusLine(sys.stderr, quiet)
    title = session.timeline.title or session.name

    def status(st: Any) -> None:
        line(st)
        if media is not None:
            media.update(st, title=title)

    interactive = keyboard_is_ours(sys.stdin)
    if interactive and not quiet:
        print(f"coach: {KEYS_HELP}", file=sys.stderr)
    if start_s > 0 and not quiet:
        print(f"coach: starting at {SessionMap(session.timeline).describe(start_s)}", file=sys.stderr)
    keyboard = Keyboard(sys.stdin, inbox.put) if interactive else None

    def preparing_rest() -> None:
        line.close()
        if not quiet:
            print("coach: preparing the rest of the session...", file=sys.stderr)

    try:
        if keyboard is not None:
            keyboard.start()
        ending = coach_live(session, sink, inbox, held=held, history=history, record=record, start_s=start_s,
                            on_status=status, on_rest=preparing_rest, opening_key=opening[0], early=opening[1])
    except Interrupted as exc:
        line.close()
        raise Interrupted(exc.message, hint=f"resume with: {resume_cmd}") from None
    except AudioDeviceError as exc:
        line.close()
        hint = f"{exc.hint}; resume with: {resume_cmd}" if exc.hint else f"resume with: {resume_cmd}"
        raise AudioDeviceError(exc.message, hint=hint) from None
    finally:
        if keyboard is not None:
            keyboard.stop()
        line.close()
    if ending.finished:
        if not quiet:
            print(f"coach: session finished ({clock(ending.duration_s)})", file=sys.stderr)
    else:
        print(f"coach: stopped at {ending.where}; resume with: {resume_cmd}", file=sys.stderr)
