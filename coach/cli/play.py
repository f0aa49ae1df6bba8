"""`coach play` (coach a session aloud, live) and `coach history` (the sessions played)."""

from __future__ import annotations

import json
import os
import select
import shlex
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

import typer

from coach.cli.app import RateOpt, VoiceOpt, VolumeOpt, app
from coach.errors import AudioDeviceError, CoachError, Interrupted, UsageError

SCRIPT_SUFFIXES = (".vtt", ".srt")
SLOW_ENGINES = ("piper",)
"""Engines whose synthesis of a whole session takes seconds: play starts with the intro.
Other engines do so only when the intro was not in the clip cache."""
HISTORY_EVERY_S = 5.0
"""How often the position of a playing session is saved (also at every step and pause)."""


@app.command("play")
def play_cmd(
    routine: Optional[str] = typer.Argument(
        None,
        help="A built-in routine, a routine file, or a cue script from `coach plan` (.json, .vtt, .srt). "
        "Default: lower-back, or with --resume the last unfinished session.",
        show_default=False,
    ),
    level: Optional[str] = typer.Option(None, "--level", "-l", help="easier, standard or harder. [default: standard]"),
    voice: Optional[str] = VoiceOpt,
    rate: Optional[int] = RateOpt,
    volume: Optional[float] = VolumeOpt,
    engine: Optional[str] = typer.Option(
        None, "--engine", help="pyttsx3 (espeak-ng), piper (natural, needs the neural extra) or estimate "
        "(silent speech). Default: the routine's."),
    start_from: Optional[str] = typer.Option(
        None, "--from", help="Start at an exercise (id, name or number) or a time (M:SS)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the last unfinished session from the start of its step."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No status line on stderr."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Synthesize speech again instead of using the clip cache."),
) -> None:
    """Coach a session aloud, live: keys pause, skip, go back, repeat and quit."""
    from coach.history import resume_record
    from coach.playback import SimpleaudioSink

    _warm_up_rendering()
    voices_ready = _warm_up_voices(engine)
    history = _open_history(quiet)
    record = None
    if resume:
        if history is None:
            raise UsageError("--resume: the session history cannot be opened")
        record = resume_record(history, _source_of(routine) if routine else None)
        routine = record.source
        settings = record.settings
        level = level or record.level
        engine, voice = engine or settings.get("engine"), voice or settings.get("voice")
        rate = rate if rate is not None else settings.get("rate_wpm")
        volume = volume if volume is not None else settings.get("volume")
    ref = routine or "lower-back"

    sink = SimpleaudioSink()
    # Fail before planning when there is no device, and keep it awake (Bluetooth) until the session starts.
    held = sink.hold()
    voices_ready.join()
    from coach.cli.export import ProgressLine

    # A cold cache takes seconds with Piper: show the synthesis on a terminal.
    synthesizing = ProgressLine(sys.stderr) if not quiet and sys.stderr.isatty() else None
    progress = (lambda done, total: synthesizing("synth", done, total)) if synthesizing else None
    try:
        try:
            session = prepare_session(ref, level or "standard", engine=engine, voice=voice, rate=rate,
                                      volume=volume, use_cache=not no_cache, progress=progress,
                                      early_start=start_from is None and record is None)
        finally:
            if synthesizing:
                synthesizing.close()
        try:
            _play(session, sink, held, history, record, start_from, quiet)
        finally:
            session.close()
    finally:
        held.stop()
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


# -- preparing a session -----------------------------------------------------------


class PreparedSession:
    """A timeline ready to play, with its voice and sounds."""

    def __init__(self, timeline: Any, voice: Any, source: str, name: str, level: str,
                 sounds: dict[str, str] | None, base_dir: Path | None, rest: Any = None,
                 expected_duration_s: float | None = None) -> None:
        self.timeline = timeline
        self.voice = voice
        self.source = source
        self.name = name
        self.level = level
        self.sounds = sounds
        self.base_dir = base_dir
        self.rest = rest
        """A Future of the whole session when only the introduction is in ``timeline`` (early start)."""
        self.duration_s = expected_duration_s or timeline.duration_s
        """The session's length (with an early start: the estimate until the whole plan is ready)."""
        self._sound_clips: dict[str, Any] = {}

    def clip_for(self, cue: Any) -> Any:
        if cue.kind == "speech":
            return self.voice.clip(cue.text or "")
        from coach.audio.earcons import load_sound

        name = cue.sound or ""
        if name not in self._sound_clips:
            self._sound_clips[name] = load_sound(name, self.sounds, self.base_dir)
        return self._sound_clips[name]

    def settings(self) -> dict[str, Any]:
        spec = self.voice.spec
        return {"engine": spec.engine, "voice": spec.voice, "rate_wpm": spec.rate_wpm, "volume": spec.volume}

    def warm(self, start_s: float) -> None:
        """Synthesize what is not ready yet in the background, in time order from ``start_s``.

        The player asks ``clip_for`` as it renders; a clip not ready by then is
        synthesized on the spot, so a failure here shows up there too.
        """
        texts = [c.text for c in sorted(self.timeline.cues, key=lambda c: c.start_s)
                 if c.kind == "speech" and c.text and c.end_s >= start_s]

        def work() -> None:
            try:
                self.voice.prefetch(texts)
            except Exception:  # noqa: BLE001 - reported by clip_for when the clip is needed
                pass

        threading.Thread(target=work, name="coach-warm", daemon=True).start()

    def close(self) -> None:
        self.voice.close()


def _source_of(ref: str) -> str:
    """What to store in the history to load ``ref`` again from anywhere: a name or an absolute path."""
    from coach.loader import resolve

    where = resolve(ref)
    return str(Path(where).resolve()) if isinstance(where, Path) else where


def _is_script(ref: str) -> bool:
    if ref == "-":
        from coach.cuescript import stdin_is_script

        return stdin_is_script()
    path = Path(ref)
    suffix = path.suffix.lower()
    if suffix in SCRIPT_SUFFIXES:
        return True
    if suffix == ".json" and path.is_file():
        try:
            with path.open("rb") as f:
                head = json.loads(f.read(2_000_000) or b"null")
        except (OSError, ValueError, RecursionError):
            return False  # let the routine loader report it with a location
        return isinstance(head, dict) and "cues" in head and "exercises" not in head
    return False


def prepare_session(ref: str, level: str, *, engine: str | None, voice: str | None, rate: int | None,
             volume: float | None, use_cache: bool,
             progress: Callable[[int, int], None] | None = None,
             early_start: bool = False) -> PreparedSession:
    """Load ``ref`` and plan it (a routine) or read it (a cue script), with its voice open.

    ``progress(done, total)`` follows the synthesis of the routine's cues (Piper takes seconds).
    ``early_start``: for a slow engine, plan only the introduction now and the rest in the
    background (``PreparedSession.rest``), so that playing can start at once.
    """
    from coach.timeline import VoiceSpec
    from coach.voice import open_voice

    if _is_script(ref):
        from coach.cuescript import read_script

        timeline = read_script(ref)
        base = timeline.voice
        spec = VoiceSpec(engine=engine or base.engine, voice=voice or base.voice,
                         rate_wpm=rate if rate is not None else base.rate_wpm,
                         volume=volume if volume is not None else base.volume)
        session = PreparedSession(timeline, open_voice(spec, use_cache=use_cache), _source_of(ref),
                           timeline.routine or Path(ref).stem, timeline.level, None, None)
        return session

    from coach.cli.plan import plan_measured, routine_sound_lengths, voice_spec
    from coach.loader import load_routine, resolve, user_routine_dir
    from coach.planner import PlanSettings

    routine = load_routine(ref)
    spec = voice_spec(routine, engine=engine, voice=voice, rate=rate, volume=volume)
    opened = open_voice(spec, use_cache=use_cache)
    try:
        settings = PlanSettings(level=level, voice=opened.spec)
        sound_lengths = routine_sound_lengths(routine, ref)
        if early_start and opened.spec.engine != "estimate":
            early = _plan_intro_first(routine, settings, opened, sound_lengths,
                                      only_if_cold=opened.spec.engine not in SLOW_ENGINES)
            if early is not None:
                intro, rest, expected_s = early
                where = resolve(ref)
                base_dir = Path(where).parent if isinstance(where, Path) else user_routine_dir()
                return PreparedSession(intro, opened, _source_of(ref), routine.name, level,
                                       dict(routine.sounds) or None, base_dir, rest=rest,
                                       expected_duration_s=expected_s)
        timeline = plan_measured(routine, settings, opened, sound_lengths_s=sound_lengths, progress=progress)
    except BaseException:
        opened.close()
        raise
    where = resolve(ref)
    base_dir = Path(where).parent if isinstance(where, Path) else user_routine_dir()
    return PreparedSession(timeline, opened, _source_of(ref), routine.name, level,
                    dict(routine.sounds) or None, base_dir)


def _plan_intro_first(routine: Any, settings: Any, opened: Any, sound_lengths: Any, *,
                      only_if_cold: bool = False) -> tuple[Any, Any, float] | None:
    """The introduction, planned with real speech now, and the whole session planned in the background.

    The intro announces the session's length; fixing that number (from the estimate,
    corrected by how this voice's intro compares with it) makes the intro depend only
    on its own texts, so the full plan made later starts with exactly the same intro.

    ``only_if_cold``: give up (None) when the intro's clips were all in the cache, a
    sign that the rest is too and planning everything now costs only a few tenths
    of a second (pyttsx3: ~1 s of synthesis for the built-in session when cold).
    """
    from concurrent.futures import Future
    from dataclasses import replace as dc_replace

    from coach.cli.plan import plan_measured
    from coach.planner import plan
    from coach.timeline import Timeline
    from coach.voice import estimate_speech_s

    rate = opened.spec.rate_wpm

    def estimate(text: str) -> float:
        return estimate_speech_s(text, rate)

    rough = plan(routine, settings, estimate, sound_lengths_s=sound_lengths)
    boundary = _body_start(rough)
    intro_texts = [c.text for c in rough.cues if c.kind == "speech" and c.text and c.start_s < boundary]
    synthesized = opened.synthesized
    opened.prefetch(intro_texts)
    if only_if_cold and opened.synthesized == synthesized:
        return None
    real = sum(opened.measure_s(t) for t in intro_texts)
    guessed = sum(estimate(t) for t in intro_texts) or 1.0
    ratio = real / guessed if real > 0 else 1.0
    fixed = dc_replace(settings, session_minutes=max(1, round(rough.duration_s * ratio / 60)))
    known = set(intro_texts)
    provisional = plan(routine, fixed, lambda t: opened.measure_s(t) if t in known else estimate(t) * ratio,
                       sound_lengths_s=sound_lengths)
    end = _body_start(provisional)
    intro = Timeline(
        routine=provisional.routine, title=provisional.title, level=provisional.level, voice=provisional.voice,
        duration_s=end, chapters=tuple(c for c in provisional.chapters if c.start_s < end),
        cues=tuple(c for c in provisional.cues if c.start_s < end),
    )
    rest: Future[Any] = Future()

    def work() -> None:
        try:
            rest.set_result(plan_measured(routine, fixed, opened, sound_lengths_s=sound_lengths))
        except BaseException as exc:  # noqa: BLE001 - handed to the player's thread
            rest.set_exception(exc)

    threading.Thread(target=work, name="coach-plan-rest", daemon=True).start()
    return intro, rest, provisional.duration_s


def _body_start(timeline: Any) -> float:
    """Where the first exercise starts (the end of the introduction)."""
    return next((c.start_s for c in timeline.chapters if c.exercise is not None), timeline.duration_s)


def _warm_up_rendering() -> None:
    """Load the resampler in the background while the routine loads and plans.

    Its first use costs ~0.5 s (importing scipy.signal) and would otherwise fall
    between planning and the first sound.
    """

    def work() -> None:
        import numpy as np

        from coach.audio.render import resample

        resample(np.zeros(4, np.float32), 22050, 44100)

    threading.Thread(target=work, name="coach-warm-up", daemon=True).start()


def _warm_up_voices(engine: str | None) -> threading.Thread:
    """Start the speech engine (and list its voices) while the routine loads.

    Opening a voice validates it against the engine's voice list, which costs a
    worker process start (~0.2 s); the list is kept for the process and the
    worker is reused for synthesis. Failures are left for open_voice to report.
    """

    def work() -> None:
        if engine == "estimate":
            return
        from coach.voice import list_voices

        try:
            list_voices("pyttsx3")
        except Exception:  # noqa: BLE001 - open_voice reports it properly
            pass

    thread = threading.Thread(target=work, name="coach-voices", daemon=True)
    thread.start()
    return thread


def _open_history(quiet: bool) -> Any:
    from coach.history import History

    try:
        return History()
    except CoachError as exc:
        # A session without a history is better than no session.
        if not quiet:
            print(f"coach: warning: {exc.message}; this session will not be recorded", file=sys.stderr)
        return None


# -- playing -------------------------------------------------------------------------


def _play(session: PreparedSession, sink: Any, held: Any, history: Any, record: Any, start_from: str | None,
          quiet: bool) -> None:
    from coach.player import KEYS_HELP, MonotonicClock, Player, PlayerOptions, QueueInbox
    from coach.session_map import SessionMap

    timeline = session.timeline
    smap = SessionMap(timeline)
    if start_from is not None:
        start_s = smap.resolve_from(start_from)
    elif record is not None:
        start_s = smap.step_at(record.position_s).start_s
    else:
        start_s = 0.0
    session.warm(start_s)

    resume_cmd = f"coach play {shlex.quote(session.source)} --resume"
    session_id = None
    if history is not None:
        step = smap.step_at(start_s).label
        if record is not None:
            session_id = record.id
            history.reopen(session_id, duration_s=timeline.duration_s, position_s=start_s, step=step)
        else:
            session_id = history.start(routine=session.name, source=session.source, level=session.level,
                                       settings=session.settings(), duration_s=session.duration_s,
                                       position_s=start_s, step=step)

    clock = MonotonicClock()
    inbox = QueueInbox(clock)
    status = _StatusLine(sys.stderr, quiet)
    saver = _Saver(history, session_id)
    interactive = sys.stdin.isatty()

    def on_status(st: Any) -> None:
        if st.duration_s < session.duration_s:  # the intro of an early start: count the whole session
            st = replace(st, duration_s=session.duration_s)
        status(st)
        saver(st)

    player = Player(timeline, session.clip_for, sink, clock, inbox, say=session.voice.clip, on_status=on_status,
                    options=PlayerOptions(max_stream_s=sink.max_stream_s))
    if interactive and not quiet:
        print(f"coach: {KEYS_HELP}", file=sys.stderr)
    if start_s > 0 and not quiet:
        print(f"coach: starting at {smap.describe(start_s)}", file=sys.stderr)
    keyboard = _Keyboard(sys.stdin, inbox.put) if interactive else None
    try:
        if keyboard is not None:
            keyboard.start()
        # The held device hands over to the session: if it is still playing, it is awake. Waiting
        # for it to let go keeps a device that neither mixes nor refuses from interleaving the two.
        awake = held.is_playing()
        held.stop()
        held.wait_done(0.3)
        outcome = player.run(start_s, device_awake=awake)
        if outcome.finished and session.rest is not None:
            # Only the introduction was ready: carry on with the whole session, planned meanwhile.
            timeline = _wait_for_rest(session, quiet)
            session.duration_s = timeline.duration_s
            smap = SessionMap(timeline)
            body_s = _body_start(timeline)
            if history is not None and session_id is not None:
                history.reopen(session_id, duration_s=timeline.duration_s, position_s=body_s,
                               step=smap.step_at(body_s).label)
            player = Player(timeline, session.clip_for, sink, clock, inbox, say=session.voice.clip,
                            on_status=on_status, options=PlayerOptions(max_stream_s=sink.max_stream_s))
            outcome = player.run(body_s, device_awake=True)
    except Interrupted as exc:
        position = getattr(exc, "position_s", 0.0)
        status.close()
        saver.end(position, smap.step_at(position).label, "interrupted")
        raise Interrupted(exc.message, hint=f"resume with: {resume_cmd}") from None
    except AudioDeviceError as exc:
        position = getattr(exc, "position_s", 0.0)
        status.close()
        saver.end(position, smap.step_at(position).label, "device-error")
        hint = f"{exc.hint}; resume with: {resume_cmd}" if exc.hint else f"resume with: {resume_cmd}"
        raise AudioDeviceError(f"{exc.message} at {smap.describe(position)}", hint=hint) from None
    finally:
        if keyboard is not None:
            keyboard.stop()
        status.close()
    step = smap.step_at(outcome.position_s).label
    if outcome.finished:
        saver.end(timeline.duration_s, step, "finished")
        if not quiet:
            print(f"coach: session finished ({_clock(timeline.duration_s)})", file=sys.stderr)
    else:
        saver.end(outcome.position_s, step, "quit")
        print(f"coach: stopped at {smap.describe(outcome.position_s)}; resume with: {resume_cmd}", file=sys.stderr)


def _wait_for_rest(session: PreparedSession, quiet: bool) -> Any:
    """The whole session's timeline, saying so on stderr if it is not ready yet."""
    rest = session.rest
    if not rest.done() and not quiet:
        print("coach: preparing the rest of the session...", file=sys.stderr)
    return rest.result()


def _clock(seconds: float) -> str:
    from coach.session_map import clock

    return clock(seconds)


class _Saver:
    """Writes the position to the history at each step, pause and every few seconds."""

    def __init__(self, history: Any, session_id: int | None) -> None:
        self.history = history
        self.session_id = session_id
        self._last_s = 0.0
        self._last_step: str | None = None

    def __call__(self, st: Any) -> None:
        if self.history is None or self.session_id is None:
            return
        now = time.monotonic()
        label = st.step.label
        if st.event != "tick" or label != self._last_step or now - self._last_s >= HISTORY_EVERY_S:
            self.history.update(self.session_id, position_s=st.position_s, step=label)
            self._last_s, self._last_step = now, label

    def end(self, position_s: float, step: str, outcome: str) -> None:
        if self.history is not None and self.session_id is not None:
            self.history.end(self.session_id, position_s=position_s, step=step, outcome=outcome)


class _StatusLine:
    """One line on stderr, rewritten in place on a terminal; elsewhere a line per event or step."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._shown = False
        self._last_step: str | None = None

    def __call__(self, st: Any) -> None:
        if self.quiet:
            return
        text = format_status(st)
        if self.tty:
            width = max(20, _terminal_width() - 1)
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()
            self._shown = True
        elif st.event != "tick" or st.step.label != self._last_step:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last_step = st.step.label

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def format_status(st: Any) -> str:
    """'12:03 Bird-Dog, set 2 of 3 · right · work 0:23 left · 6:40 left in session'."""
    parts = [f"{_clock(st.position_s)} {st.step.label}"]
    if st.side:
        parts.append(st.side)
    if st.phase and st.phase_left_s is not None:
        parts.append(f"{st.phase} {_clock(st.phase_left_s + 0.999)} left")
    parts.append(f"{_clock(st.left_s + 0.999)} left in session")
    text = " · ".join(parts)
    if st.paused:
        text = "paused · " + text
    elif st.event not in ("tick", "start"):
        text = f"{st.event} · " + text
    return text


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 80


class _Keyboard:
    """Single key presses from the terminal (cbreak mode: Ctrl-C still interrupts), restored on exit."""

    def __init__(self, stream: TextIO, put: Callable[[Any], None]) -> None:
        self.fd = stream.fileno()
        self.put = put
        self._saved: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="coach-keys", daemon=True)

    def start(self) -> None:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSADRAIN, attrs)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(0.5)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _read(self) -> None:
        from coach.player import decode_keys

        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:
                return
            for command in decode_keys(data):
                self.put(command)
