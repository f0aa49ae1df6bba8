"""The session engine: a routine or a cue script, with its settings and voice, ready to play or export.

    routine file ──load──> Routine ──plan (measured in the voice)──> Timeline ─┐
    cue script ──read────────────────────────────────────────────> Timeline ─┤
                                                       voice + sounds ──> CueClips ──> Master

``prepare_session`` does everything `coach play` and `coach export` share: load,
open the voice, plan with every plan setting, warm the clip cache, and (for
play) start with the introduction while the rest is planned. Both then pull
their audio from ``PreparedSession.master``: one mix, one gain, one limiter.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from coach.audio.clip import Clip
from coach.errors import UsageError
from coach.timeline import Cue, Timeline, VoiceSpec

if TYPE_CHECKING:
    from coach.audio.level import ClipLevel
    from coach.audio.master import Master, MusicSource
    from coach.model import Routine
    from coach.planner import PlanSettings
    from coach.voice import Voice

Progress = Callable[[int, int], None]
SCRIPT_SUFFIXES = (".vtt", ".srt")


@dataclass(frozen=True)
class SessionOptions:
    """What a person chooses about a session: the plan settings and the voice (None: the routine's)."""

    level: str = "standard"
    rest_scale: float = 1.0
    pace: float = 1.0
    verbosity: str = "full"
    countdown_s: int = 3
    start_at: str | None = None
    """Plan from this exercise (id, name or number); the ones before it are left out."""
    engine: str | None = None
    voice: str | None = None
    rate_wpm: int | None = None
    volume: float | None = None
    use_cache: bool = True
    returning: bool = False
    """The listener finished this routine before: a brief plan says it is the brief version."""
    skip_how: str | None = None
    """How the listener skips an exercise hands-free (None: the planner's words for `coach play`)."""
    music: tuple[str, ...] = ()
    """Music under the voice: folders, playlists or files (empty: the routine's ``music:``, if any)."""
    shuffle: bool = False
    shuffle_seed: int | None = None
    """The shuffle's seed (recorded, so that --resume hears the same order)."""
    music_level_db: float | None = None
    """The music's loudness against the speech, before ducking (None: the routine's, or -14)."""
    crossfade_s: float = 0.0
    no_music: bool = False

    def plan_settings(self, voice: VoiceSpec) -> PlanSettings:
        from coach.planner import PlanSettings

        extra = {"skip_how": self.skip_how} if self.skip_how is not None else {}
        return PlanSettings(level=self.level, rest_scale=self.rest_scale, pace=self.pace,
                            verbosity=self.verbosity, countdown_s=self.countdown_s,
                            start_at=self.start_at, voice=voice, returning=self.returning, **extra)

    def plan_changes(self) -> list[str]:
        """The plan options set away from their defaults (a cue script is already planned)."""
        default = SessionOptions()
        names = {"rest_scale": "--rest-scale", "pace": "--pace", "verbosity": "--verbosity",
                 "countdown_s": "--countdown", "start_at": "--from"}
        return [flag for field, flag in names.items() if getattr(self, field) != getattr(default, field)]

    def to_dict(self) -> dict[str, Any]:
        """The options as the session history stores them (``from_dict`` reads them back)."""
        return {"level": self.level, "rest_scale": self.rest_scale, "pace": self.pace,
                "verbosity": self.verbosity, "countdown_s": self.countdown_s, "start_at": self.start_at,
                "returning": self.returning, "music": list(self.music), "shuffle": self.shuffle,
                "shuffle_seed": self.shuffle_seed, "music_level_db": self.music_level_db,
                "crossfade_s": self.crossfade_s, "no_music": self.no_music}

    def with_recorded(self, recorded: Mapping[str, Any]) -> SessionOptions:
        """These options, with what a recorded session used wherever these are at their default."""
        default = SessionOptions()
        changes = {}
        for key in ("rest_scale", "pace", "verbosity", "countdown_s", "start_at", "returning", "music", "shuffle",
                    "shuffle_seed", "music_level_db", "crossfade_s", "no_music"):
            if key in recorded and getattr(self, key) == getattr(default, key):
                changes[key] = tuple(recorded[key]) if key == "music" else recorded[key]
        engine_keys = {"engine": "engine", "voice": "voice", "rate_wpm": "rate_wpm", "volume": "volume"}
        for mine, theirs in engine_keys.items():
            if getattr(self, mine) is None and recorded.get(theirs) is not None:
                changes[mine] = recorded[theirs]
        return replace(self, **changes)


class CueClips:
    """The clip of every cue: speech from the voice (normalized when made), sounds balanced once.

    A timeline's own sounds (``Timeline.sounds``: a routine's ``sounds:``, or a cue
    script's) replace the built-in earcons.
    """

    def __init__(self, voice: Voice, sounds: Mapping[str, str] | None = None) -> None:
        self.voice = voice
        self.sounds = dict(sounds or {})
        self._sounds: dict[str, Clip] = {}
        self._speech_levels: dict[str, ClipLevel] = {}
        self._lock = threading.Lock()

    def __call__(self, cue: Cue) -> Clip:
        if cue.kind == "speech":
            return self.voice.clip(cue.text or "")
        return self.sound(cue.sound or "")

    def sound(self, name: str) -> Clip:
        with self._lock:
            clip = self._sounds.get(name)
        if clip is None:
            clip = self._balanced(name)
            with self._lock:
                self._sounds[name] = clip
        return clip

    def _balanced(self, name: str) -> Clip:
        """The earcon balanced under the speech, from the clip cache when it was balanced before."""
        from coach.audio.earcons import load_sound, sounds_dir
        from coach.audio.level import EARCON_BELOW_SPEECH_LU, SPEECH_LUFS, balance_earcon
        from coach.voice.cache import cache_key

        cache = getattr(self.voice, "cache", None)
        key = None
        if cache is not None:
            path = Path(self.sounds.get(name) or sounds_dir() / f"{name}.wav").expanduser()
            try:
                stat = path.stat()
            except OSError:
                stat = None  # load_sound says what is wrong with it
            if stat is not None:
                key = cache_key({"earcon": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                 "speech_lufs": SPEECH_LUFS, "below_lu": EARCON_BELOW_SPEECH_LU})
                cached = cache.get(key)
                if cached is not None and cached.level is not None:
                    return cached
        clip = balance_earcon(load_sound(name, self.sounds))
        if key is not None:
            cache.put(key, clip)
        return clip

    def level(self, cue: Cue) -> ClipLevel | None:
        """The cue's clip level without reading its audio when the cache has it.

        Kept per text: a session says the same few hundred texts thousands of times, and one
        level object each (not one per cue, read from disk each time) keeps a long session's
        loudness prediction small."""
        if cue.kind == "speech":
            text = cue.text or ""
            with self._lock:
                level = self._speech_levels.get(text)
            if level is None:
                level = self.voice.level(text)
                if level is not None:
                    with self._lock:
                        self._speech_levels[text] = level
            return level
        return self.sound(cue.sound or "").level


class PreparedSession:
    """A timeline ready to play or export, with its voice and sounds."""

    def __init__(self, timeline: Timeline, voice: Voice, source: str, name: str, options: SessionOptions,
                 rest: Future[Timeline] | None = None, expected_duration_s: float | None = None,
                 music: MusicChoice | None = None, intro_rest: Future[Timeline] | None = None) -> None:
        self.timeline = timeline
        self.music = music
        """The music under the voice, if any (its tracks already analysed)."""
        self.voice = voice
        self.source = source
        self.name = name
        self.options = options
        self.level = timeline.level
        self.clips = CueClips(voice, timeline.sounds)
        self.rest = rest
        """With an early start: the whole session's Timeline, being planned while the intro plays."""
        self.intro_rest = intro_rest
        """With an early start that begins before the whole introduction is ready: the introduction
        (its first part, then the rest of it), ready long before the whole session."""
        self.duration_s = expected_duration_s or timeline.duration_s
        """The session's length (with an early start: the estimate until the whole plan is ready)."""

    def clip_for(self, cue: Cue) -> Clip:
        return self.clips(cue)

    def later_parts(self) -> list[Future[Timeline]]:
        """What plays after ``timeline`` with an early start, in order: each starts with what came before."""
        return [part for part in (self.intro_rest, self.rest) if part is not None]

    def master(self, timeline: Timeline | None = None, *, sample_rate_hz: int = 44100, channels: int = 2,
               ceiling_dbtp: float | None = None, music: MusicSource | None = None) -> Master:
        """The one mix of ``timeline`` (default: this session's) for a player or a file."""
        from coach.audio.master import CEILING_DBTP, Master

        timeline = timeline or self.timeline
        if music is None and self.music is not None:
            music = self.music.bed_for(timeline, sample_rate_hz, self.duration_s)
        return Master(timeline, self.clips, level_for=self.clips.level,
                      sample_rate_hz=sample_rate_hz, channels=channels,
                      ceiling_dbtp=CEILING_DBTP["play"] if ceiling_dbtp is None else ceiling_dbtp, music=music)

    def settings(self) -> dict[str, Any]:
        """What the history records to play this session again the same way."""
        spec = self.voice.spec
        options = self.options
        if self.music is not None:
            options = replace(options, shuffle_seed=self.music.playlist.seed)
        return {"engine": spec.engine, "voice": spec.voice, "rate_wpm": spec.rate_wpm, "volume": spec.volume,
                **options.to_dict()}

    def warm(self, start_s: float, also: tuple[str, ...] = ()) -> None:
        """Synthesize what is not ready yet in the background, in time order from ``start_s``.

        ``also``: texts said at any moment (the player's "Paused."), made ready right after the
        first missing cue, when the engine has work to do anyway (with every cue cached, a Piper
        model is never loaded for them). The player asks for clips as it renders; a clip not ready
        by then is synthesized on the spot, so a failure here shows up there too.
        """
        texts = [c.text for c in sorted(self.timeline.cues, key=lambda c: c.start_s)
                 if c.kind == "speech" and c.text and c.end_s >= start_s]

        def work() -> None:
            try:
                missing = [t for t in texts if not self.voice.is_ready(t)]
                if missing:
                    missing[1:1] = also
                self.voice.prefetch(missing)
            except Exception:  # noqa: BLE001 - reported when the clip is needed
                pass

        threading.Thread(target=work, name="coach-warm", daemon=True).start()

    def close(self) -> None:
        self.voice.close()


@dataclass
class MusicChoice:
    """A playlist and how it sits under the voice; scheduled for each timeline a master mixes."""

    playlist: Any
    level_db: float
    crossfade_s: float = 0.0

    def bed_for(self, timeline: Timeline, sample_rate_hz: int, duration_s: float) -> Callable[[float], MusicSource]:
        """A factory the master calls with the voice's loudness: the music goes ``level_db`` under it.

        Music time is session time, so the introduction of an early start and the whole
        session lay the same music out; the intro's bed runs on to the session's end
        (no fade-out when the intro is over).
        """
        whole = timeline if timeline.duration_s >= duration_s else replace(timeline, duration_s=duration_s)

        def schedule(voice_lufs: float) -> MusicSource:
            return self.playlist.schedule(whole, sample_rate_hz, level_lufs=voice_lufs + self.level_db,
                                          crossfade_s=self.crossfade_s)

        return schedule


def open_session_music(options: SessionOptions, routine: Routine | None, ref: str, *,
                       warn: Callable[[str], None], sample_rate_hz: int = 44100,
                       progress: Progress | None = None) -> MusicChoice | None:
    """The music the options (or else the routine) name, analysed; None for none."""
    if options.no_music or not options.music and (routine is None or routine.music is None):
        return None  # without importing the music modules (soundfile, soxr): a warm start is quicker
    from coach.audio.music import DEFAULT_MUSIC_LEVEL_DB, open_music, resolve_music_path

    sources: list[str | Path] = list(options.music)
    level_db = options.music_level_db
    if not sources and routine is not None and routine.music is not None:
        from coach.loader import resolve, user_routine_dir

        where = resolve(ref)
        base_dir = where.parent if isinstance(where, Path) else user_routine_dir()
        sources = [resolve_music_path(routine.music.path, base_dir)]
        if level_db is None:
            level_db = routine.music.level_db
    if not sources:
        return None
    if not 0 <= options.crossfade_s <= 30:
        raise UsageError(f"--crossfade: expected seconds between 0 and 30, got {options.crossfade_s:g}")
    if level_db is not None and not -40 <= level_db <= 0:
        raise UsageError(f"--music-level: expected dB between -40 and 0, got {level_db:g}")
    playlist = open_music(sources, shuffle=options.shuffle, seed=options.shuffle_seed, warn=warn,
                          sample_rate_hz=sample_rate_hz, progress=progress)
    return MusicChoice(playlist, DEFAULT_MUSIC_LEVEL_DB if level_db is None else level_db, options.crossfade_s)


# -- preparing --------------------------------------------------------------------


def source_of(ref: str) -> str:
    """What to store in the history to load ``ref`` again from anywhere: a name or an absolute path."""
    from coach.loader import resolve

    where = resolve(ref)
    return str(Path(where).resolve()) if isinstance(where, Path) else where


def is_script(ref: str) -> bool:
    """Whether ``ref`` names a cue script (from `coach plan`) rather than a routine (``-``: standard input)."""
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


def prepare_session(ref: str, options: SessionOptions = SessionOptions(), *,
                    progress: Progress | None = None, early_start: bool | str = False,
                    warn: Callable[[str], None] = lambda line: None, sample_rate_hz: int = 44100,
                    music_progress: Progress | None = None) -> PreparedSession:
    """Load ``ref`` and plan it (a routine) or read it (a cue script), with its voice open.

    ``progress(done, total)`` follows the synthesis of the routine's cues.
    ``early_start``: when the introduction's speech is not in the clip cache yet, plan
    only the introduction now and the rest in the background (``PreparedSession.rest``),
    so that playing can start at once (``"always"``: even when it is cached, to see what a cold
    start played). ``warn`` gets one line for each music file skipped;
    ``music_progress`` follows the first analysis of the music.
    """
    from coach.voice import open_voice

    if is_script(ref):
        from coach.cuescript import read_script

        changed = options.plan_changes()
        if changed:
            raise UsageError(f"{', '.join(changed)}: a cue script is already planned; plan options apply to routines",
                             hint="plan the routine again with `coach plan ... --format json`")
        timeline = read_script(ref)
        music = open_session_music(options, None, ref, warn=warn, sample_rate_hz=sample_rate_hz,
                                   progress=music_progress)
        base = timeline.voice
        spec = VoiceSpec(engine=options.engine or base.engine, voice=options.voice or base.voice,
                         rate_wpm=options.rate_wpm if options.rate_wpm is not None else base.rate_wpm,
                         volume=options.volume if options.volume is not None else base.volume)
        voice = open_voice(spec, use_cache=options.use_cache)
        return PreparedSession(timeline, voice, source_of(ref), timeline.routine or Path(ref).stem, options,
                               music=music)

    from coach.loader import load_routine

    routine = load_routine(ref)
    music = open_session_music(options, routine, ref, warn=warn, sample_rate_hz=sample_rate_hz,
                               progress=music_progress)
    spec = voice_spec(routine, engine=options.engine, voice=options.voice, rate=options.rate_wpm,
                      volume=options.volume)
    voice = open_voice(spec, use_cache=options.use_cache)
    try:
        settings = options.plan_settings(voice.spec)
        sounds = routine_sound_files(routine, ref)
        lengths = sound_lengths(sounds)
        if early_start and voice.spec.engine != "estimate":
            early = _plan_intro_first(routine, settings, voice, lengths, only_if_cold=early_start != "always")
            if early is not None:
                intro, intro_rest, rest, expected_s = early
                intro = replace(intro, sounds=sounds)
                return PreparedSession(intro, voice, source_of(ref), routine.name, options,
                                       rest=_with_sounds(rest, sounds), expected_duration_s=expected_s, music=music,
                                       intro_rest=_with_sounds(intro_rest, sounds) if intro_rest else None)
        timeline = plan_measured(routine, settings, voice, sound_lengths_s=lengths, progress=progress)
    except BaseException:
        voice.close()
        raise
    return PreparedSession(replace(timeline, sounds=sounds), voice, source_of(ref), routine.name, options,
                           music=music)


def _with_sounds(rest: Future[Timeline], sounds: dict[str, str]) -> Future[Timeline]:
    out: Future[Timeline] = Future()

    def done(f: Future[Timeline]) -> None:
        try:
            out.set_result(replace(f.result(), sounds=sounds))
        except BaseException as exc:  # noqa: BLE001 - handed to the player's thread
            out.set_exception(exc)

    rest.add_done_callback(done)
    return out


def voice_spec(routine: Routine, *, engine: str | None = None, voice: str | None = None, rate: int | None = None,
               volume: float | None = None) -> VoiceSpec:
    """The voice to plan with: the routine's defaults, each overridden by the command line.

    With no rate given, the engine's best (espeak-ng is best understood a little slower).
    """
    from coach.voice.registry import best_rate_wpm

    base = VoiceSpec()
    defaults = routine.voice
    chosen = engine or defaults.engine or base.engine
    return VoiceSpec(
        engine=chosen,
        voice=voice or defaults.voice or base.voice,
        rate_wpm=rate if rate is not None else (defaults.rate_wpm or best_rate_wpm(chosen)),
        volume=volume if volume is not None else (defaults.volume or base.volume),
    )


def plan_with_voice(routine: Routine, settings: PlanSettings, *,
                    sound_lengths_s: dict[str, float] | None = None, use_cache: bool = True) -> Timeline:
    """Open the settings' voice, plan with it (see ``plan_measured``) and close it."""
    from coach.voice import open_voice

    voice = open_voice(settings.voice, use_cache=use_cache)
    try:
        return plan_measured(routine, settings, voice, sound_lengths_s=sound_lengths_s)
    finally:
        voice.close()


def plan_measured(routine: Routine, settings: PlanSettings, voice: Voice, *,
                  sound_lengths_s: dict[str, float] | None = None, progress: Progress | None = None) -> Timeline:
    """Plan with cue lengths measured in ``voice`` (the very clips later rendered); the voice stays open.

    With a real engine, a first plan from the estimate lists the texts, which
    are then synthesized in parallel; the real plan mostly finds them ready.
    """
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


def routine_sound_files(routine: Routine, ref: str) -> dict[str, str]:
    """The routine's own sounds as absolute paths (relative ones are read from the routine's folder)."""
    if not routine.sounds:
        return {}
    from coach.loader import resolve, user_routine_dir

    where = resolve(ref)
    base_dir = where.parent if isinstance(where, Path) else user_routine_dir()
    out = {}
    for name, file in routine.sounds.items():
        path = Path(file).expanduser()
        out[name] = str((path if path.is_absolute() else base_dir / path).resolve())
    return out


def sound_lengths(sounds: Mapping[str, str]) -> dict[str, float] | None:
    """Lengths of a routine's own sounds, for the planner (None: the built-in earcons)."""
    if not sounds:
        return None
    from coach.audio.earcons import load_sound

    return {name: load_sound(name, sounds).duration_s for name in sounds}


def body_start(timeline: Timeline) -> float:
    """Where the first exercise starts (the end of the introduction)."""
    return next((c.start_s for c in timeline.chapters if c.exercise is not None), timeline.duration_s)


FIRST_PART_S = 10.0
"""An early start plays as soon as this much of the introduction's speech is ready (or all of it,
if it is shorter); the rest of the introduction is synthesized while that plays."""


def _plan_intro_first(routine: Routine, settings: PlanSettings, voice: Voice, lengths: dict[str, float] | None,
                      *, only_if_cold: bool = True
                      ) -> tuple[Timeline, Future[Timeline] | None, Future[Timeline], float] | None:
    """The start of the introduction, planned with real speech now; the rest planned in the background.

    Returns ``(first, intro, whole, expected_s)``: ``first`` is the introduction's
    first cues (at least ``FIRST_PART_S`` of speech), ready to play; ``intro`` (None
    when ``first`` is the whole introduction) the whole introduction, and ``whole``
    the whole session, both being planned. Each starts with exactly what the one
    before it holds, so the player hands over at its end.

    The intro announces the session's length; fixing that number (from the estimate,
    corrected by how this voice's first cues compare with it) makes the intro depend
    only on its own texts, so the full plan made later starts with exactly the same intro.
    None when the intro's clips were all in the cache: a sign that the rest is too, and
    planning everything now costs only a few tenths of a second.
    """
    from coach.planner import plan
    from coach.voice import estimate_speech_s

    rate = voice.spec.rate_wpm

    def estimate(text: str) -> float:
        return estimate_speech_s(text, rate)

    def intro_texts_of(timeline: Timeline) -> list[str]:
        end = body_start(timeline)
        return [c.text for c in timeline.cues if c.kind == "speech" and c.text and c.start_s < end]

    rough = plan(routine, settings, estimate, sound_lengths_s=lengths)
    intro_texts = intro_texts_of(rough)
    if only_if_cold and all(voice.is_ready(t) for t in intro_texts):
        return None
    first_n = next((n for n in range(1, len(intro_texts) + 1)
                    if sum(estimate(t) for t in intro_texts[:n]) >= FIRST_PART_S), len(intro_texts))
    voice.prefetch(intro_texts[:first_n])
    real = sum(voice.measure_s(t) for t in intro_texts[:first_n])
    guessed = sum(estimate(t) for t in intro_texts[:first_n]) or 1.0
    ratio = real / guessed if real > 0 else 1.0
    fixed = replace(settings, session_minutes=max(1, round(rough.duration_s * ratio / 60)))

    def provisional(known: set[str]) -> Timeline:
        return plan(routine, fixed, lambda t: voice.measure_s(t) if t in known else estimate(t) * ratio,
                    sound_lengths_s=lengths)

    # The texts as they will be spoken: the announced length may have changed one of them.
    intro_texts = intro_texts_of(provisional(set()))
    first_texts = intro_texts[:first_n]
    voice.prefetch(first_texts)

    def part(timeline: Timeline, end_s: float) -> Timeline:
        return Timeline(
            routine=timeline.routine, title=timeline.title, level=timeline.level, voice=timeline.voice,
            duration_s=end_s, chapters=tuple(c for c in timeline.chapters if c.start_s < end_s),
            cues=tuple(c for c in timeline.cues if c.start_s < end_s),
        )

    guess = provisional(set(first_texts))
    body_s = body_start(guess)
    speech = [c for c in guess.cues if c.kind == "speech" and c.text and c.start_s < body_s]
    whole_intro = len(first_texts) >= min(len(intro_texts), len(speech))
    # The first part ends where the first cue it does not hold begins (its silence before it included).
    first_end = body_s if whole_intro else speech[len(first_texts)].start_s
    first = part(guess, first_end)
    intro: Future[Timeline] | None = None if whole_intro else Future()
    whole: Future[Timeline] = Future()

    def work() -> None:
        if intro is not None:
            try:
                known = set(intro_texts)
                voice.prefetch(intro_texts)
                planned = provisional(known)
                for _ in range(3):  # a text that only real lengths bring into the intro: measure it too
                    unknown = [t for t in intro_texts_of(planned) if t not in known]
                    if not unknown:
                        break
                    voice.prefetch(unknown)
                    known.update(unknown)
                    planned = provisional(known)
                intro.set_result(part(planned, body_start(planned)))
            except BaseException as exc:  # noqa: BLE001 - handed to the player's thread
                intro.set_exception(exc)
                whole.set_exception(exc)
                return
        try:
            whole.set_result(plan_measured(routine, fixed, voice, sound_lengths_s=lengths))
        except BaseException as exc:  # noqa: BLE001 - handed to the player's thread
            whole.set_exception(exc)

    threading.Thread(target=work, name="coach-plan-rest", daemon=True).start()
    return first, intro, whole, guess.duration_s


def warm_up(engine: str | None) -> threading.Thread:
    """Start what the first sound needs while the routine loads: the speech engine and the resampler.

    Opening a voice validates it against the engine's voice list, which costs a
    worker process start (~0.2 s); the list is kept for the process and the worker
    is reused for synthesis. The resampler's first use costs ~0.5 s (imports).
    Failures are left for open_voice to report. Join the thread before opening the voice.
    """

    def rendering() -> None:
        import numpy as np

        from coach.audio.render import resample

        resample(np.zeros(4, np.float32), 22050, 44100)

    def voices() -> None:
        from coach.voice import list_voices, resolve_engine

        try:
            # Only pyttsx3 needs it (a worker lists its voices); Piper's are files, read when opened.
            if resolve_engine(engine or "auto") == "pyttsx3":
                list_voices("pyttsx3")
        except Exception:  # noqa: BLE001 - open_voice reports it properly
            pass

    warming = threading.Thread(target=rendering, name="coach-warm-up", daemon=True)
    warming.start()
    at_exit_wait_for(warming)
    thread = threading.Thread(target=voices, name="coach-voices", daemon=True)
    thread.start()
    return thread


def at_exit_wait_for(thread: threading.Thread, timeout_s: float = 5.0) -> None:
    """Let ``thread`` finish before Python finalizes (a command that fails at once exits within ~50 ms).

    A daemon thread still inside a C++ extension (soxr, while the warm-up resamples) when the
    interpreter finalizes is ended by a forced unwind that C++ turns into std::terminate: the
    process aborts ("terminate called without an active exception", exit -6) after its error line.
    """
    import atexit

    atexit.register(thread.join, timeout_s)
