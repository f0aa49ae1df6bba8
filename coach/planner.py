"""The session planner: from a routine to an exact timeline of cues.

Pure: a Routine, PlanSettings and a *meter* (text -> spoken seconds) go in, a
Timeline comes out. No clock, no environment, no I/O: the same inputs give the
same timeline, and tests can plan with the words-per-minute estimate.

This module decides what a session says, like a trainer who cannot be seen:
intro, advice, each exercise's name, purpose, warning and setup steps, the work
(tempo cues, counts, holds), rests with "next up", countdowns and an outro.
``coach.schedule`` decides exactly when each cue fits.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from coach.errors import UsageError
from coach.model import LEVELS, SIDE_WORDS, Dose, Exercise, Routine, step_at, step_text
from coach.schedule import FOREVER_MS, Builder, Meta, Want, Window, countdown_word, number_words
from coach.timeline import Chapter, Cue, Timeline, VoiceSpec
from coach.voice.engine import estimate_speech_s  # the estimate engine's own formula: one source of truth

try:  # one source of truth for earcon lengths; the planner only needs the numbers
    from coach.audio.earcons import SOUND_LENGTHS_S as DEFAULT_SOUND_LENGTHS_S
except ImportError:  # pragma: no cover - coach.audio ships with coach; kept so planning never needs numpy
    DEFAULT_SOUND_LENGTHS_S = {"start": 0.22, "tick": 0.1, "rest": 0.52, "switch": 0.36, "finish": 0.58}

__all__ = ["PlanSettings", "plan", "estimate_speech_s", "find_exercise", "number_words", "room_warnings",
           "spoken_duration"]

Meter = Callable[[str], float]
"""Spoken length of a text in seconds (trimmed speech, as the voice layer measures it)."""

SECTION_GAP_MS = 1500
"""Silence after the intro and around an exercise's instructions."""
STEP_FLOOR_MS = 3000
"""Least silence after a setup step: even a short step takes time to do."""
STEP_MS_PER_WORD = 300
"""Silence after a setup step per word of the step: longer steps ask more."""
STEP_MAX_MS = 20000
FETCH_EQUIPMENT_MS = 3000
"""Silence after naming the equipment, to go and fetch it."""
WARN_AHEAD_MS = 2000
"""The rest's "get ready" comes this long before its countdown."""
SKIP_PAUSE_MS = 6000
"""Silence after a warning that tells how to skip an exercise: time to reach for the key or the headphones."""
SKIP_HOW = "press n, or the next button on your headphones"
SKIP_WORDS = "skip this exercise"
"""In a warning, these words offer to skip the exercise: "next" then goes to the next exercise."""
BRIEF_NOTICE = ("You have finished this session before, so this is the brief version: reminders instead of the "
                "full steps, and every safety tip. For the full version, play it with verbosity full.")

PACE_RANGE = (0.5, 3.0)
REST_SCALE_RANGE = (0.0, 5.0)
COUNTDOWN_RANGE = (0, 10)

# Ranks inside a timed window: higher is placed first, lower fits around it or is dropped.
RANK_RELEASE_NUMBERS = 90
RANK_HOLD_START = 85
RANK_SAFETY = 80
RANK_REST_TEXT = 70
RANK_NEXT_UP = 66
RANK_REMINDER = 65
RANK_TEN_LEFT = 60
RANK_HALFWAY = 50
# A count is never cut (a listener doing slow reps keeps their place by it): counts outrank movement cues.
RANK_COUNT = 47
RANK_SIDE = 45
RANK_MOVE = 40
RANK_GET_READY = 40
RANK_QUIET = 10
"""A long text placed in a hold only where it displaces nothing."""


def spoken_duration(seconds: float) -> str:
    """'45 seconds', '1 minute', '2 minutes and 5 seconds' (rounded to the second)."""
    total = max(0, int(round(seconds)))
    minutes, secs = divmod(total, 60)
    parts = []
    if minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    if secs or not minutes:
        parts.append(f"{secs} second{'s' if secs != 1 else ''}")
    return " and ".join(parts)


@dataclass(frozen=True)
class PlanSettings:
    """How to plan a routine: level, rest and tempo scales, verbosity, countdown, start point, voice."""

    level: str = "standard"
    """easier, standard or harder: which variant text and dose each exercise uses."""
    rest_scale: float = 1.0
    """Every rest is multiplied by this (0..5; 0 removes rests)."""
    pace: float = 1.0
    """Tempo scale: each movement of a rep lasts this many times its written seconds (0.5..3)."""
    verbosity: str = "full"
    """full: everything; brief: no background, purposes or options, the reminder instead of the steps."""
    countdown_s: int = 3
    """Numbers spoken before each timed start (3: three, two, one); 0 for none."""
    start_at: str | None = None
    """Start at this exercise (id, name or number from 1); the ones before it are left out."""
    voice: VoiceSpec = field(default_factory=VoiceSpec)
    session_minutes: int | None = None
    """The length the intro announces; None: the planned length. Fixing it makes the intro
    depend on its own texts only, so a player can start it before the rest is synthesized."""
    returning: bool = False
    """The listener has finished this routine before: a brief session says so in one sentence."""
    skip_how: str = SKIP_HOW
    """How to skip an exercise hands-free, said after a warning: 'press n, or the next button ...'."""

    def __post_init__(self) -> None:
        if self.session_minutes is not None and not 1 <= self.session_minutes <= 24 * 60:
            raise UsageError(f"session minutes must be between 1 and 1440, got {self.session_minutes}")
        if self.level not in LEVELS:
            raise UsageError(f"unknown level {self.level!r}; the levels are {', '.join(LEVELS)}")
        if self.verbosity not in ("full", "brief"):
            raise UsageError(f"unknown verbosity {self.verbosity!r}; use full or brief")
        for name, value, (lo, hi) in (
            ("rest scale", self.rest_scale, REST_SCALE_RANGE),
            ("pace", self.pace, PACE_RANGE),
            ("countdown", self.countdown_s, COUNTDOWN_RANGE),
        ):
            if not lo <= value <= hi:
                raise UsageError(f"{name} must be between {lo:g} and {hi:g}, got {value:g}")


def find_exercise(routine: Routine, ref: str) -> int:
    """Index of the exercise ``ref`` names: its id, its name or its number (from 1)."""
    text = ref.strip()
    if text.isdigit() and 1 <= int(text) <= len(routine.exercises):
        return int(text) - 1
    for i, ex in enumerate(routine.exercises):
        if text.lower() in (ex.key, ex.name.lower()):
            return i
    keys = [ex.key for ex in routine.exercises]
    close = difflib.get_close_matches(text.lower(), keys, n=3, cutoff=0.5)
    raise UsageError(
        f"no exercise {ref!r} in {routine.name}; give an id ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''}),"
        f" a name or a number from 1 to {len(keys)}",
        hint=("did you mean " + " or ".join(repr(c) for c in close) + "?") if close else None,
    )


def _sentence(text: str) -> str:
    """A short cue as a sentence: 'and back' -> 'And back.'."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text[-1:] in ".!?" else text + "."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _step_silence_ms(text: str) -> int:
    words = len(text.split())
    return min(STEP_MAX_MS, max(STEP_FLOOR_MS, words * STEP_MS_PER_WORD))


class _Session:
    """The words of one session and their order, laid out with a Builder."""

    def __init__(self, routine: Routine, settings: PlanSettings, b: Builder, first: int) -> None:
        self.routine = routine
        self.s = settings
        self.b = b
        self.first = first
        self.full = settings.verbosity == "full"
        self.exercises = routine.exercises[first:]

    # intro and outro -------------------------------------------------------------------
    def intro(self, minutes: int) -> None:
        b, r = self.b, self.routine
        b.chapter("Introduction", None)
        b.say(f"Welcome to {r.title}.", "intro")
        b.say(r.description, "intro")
        if self.first:
            ex = self.exercises[0].at_level(self.s.level)
            b.say(f"Today we start at exercise {self.first + 1} of {len(r.exercises)}: {ex.name}.", "intro")
        b.say(f"This session takes about {_plural(minutes, 'minute')}.", "intro")
        if not self.full and self.s.returning:
            b.say(BRIEF_NOTICE, "intro")
        equipment = r.equipment_at(self.s.level, self.first)
        if equipment:
            b.say(f"You will need {_join(equipment)}. Get {'it' if len(equipment) == 1 else 'them'} ready now.",
                  "intro", gap=FETCH_EQUIPMENT_MS)
        else:
            b.say("You need no equipment.", "intro")
        if self.full and not self.first:
            for paragraph in r.background:
                b.say(paragraph, "intro")
        if r.advice:
            b.say("Before you start.", "advice")
            for tip in r.advice:
                b.say(tip, "advice")
        b.pause(SECTION_GAP_MS)

    def outro(self, elapsed_s: float) -> None:
        b = self.b
        b.chapter("Finish", None)
        b.play("finish", "outro")
        b.say(f"That's it, you have finished {self.routine.title}. Well done!", "outro")
        b.say(f"The session took {spoken_duration(elapsed_s)}.", "outro")
        b.say("Now cool down: walk around for a minute or two, breathe slowly and drink some water.", "outro",
              gap=0)

    # exercises -------------------------------------------------------------------------
    def blocks(self) -> list[tuple[Exercise, int | None, Exercise]]:
        """(exercise at the level, its number or None for an optional finisher, the routine's exercise)."""
        out = []
        for i, ex in enumerate(self.exercises):
            out.append((ex.at_level(self.s.level), self.first + i + 1, ex))
            finisher = ex.finisher_at(self.s.level)
            if finisher is not None:
                out.append((finisher, None, ex))
        return out

    def body(self) -> None:
        blocks = self.blocks()
        for i, block in enumerate(blocks):
            self.exercise(*block, blocks[i + 1] if i + 1 < len(blocks) else None)
        self.b.flush_release()

    def exercise(self, ex: Exercise, number: int | None, source: Exercise,
                 nxt: tuple[Exercise, int | None, Exercise] | None) -> None:
        b, s = self.b, self.s
        dose = ex.dose
        meta: Meta = (ex.key, None, None, None)
        runs = self.side_runs(dose)
        b.chapter(ex.name if number is not None else f"{ex.name} (optional)", ex.key)
        first = self.work_window(ex, dose, 1, runs[0], first=True)
        # A safety tip is said before the set, unless a hold has a quiet stretch for it.
        self.instructions(number, ex, source, dose,
                          safety_before=bool(ex.safety) and (dose.hold_s is None or not first.ok))
        if dose.sides == "each":
            b.say(self.side_text(dose, "start", "right") + ".", "instruction", meta)
        position = f"Get into position: {ex.position}." if ex.position else "Get into position."
        get_ready = Want(0, FOREVER_MS, 500, RANK_GET_READY, "transition", meta, (position,), optional=False,
                         mandatory=True)
        b.before_work("setup", round(dose.setup_s * 1000), [], [get_ready], (ex.key, 1, runs[0], None))
        self.commit_work(first, dose, ex)

        switch_steps = [step_text(st) for st in ex.steps if step_at(st) == "switch"]
        for set_no in range(1, dose.sets + 1):
            for j, side in enumerate(runs):
                if set_no == 1 and j == 0:
                    continue
                win = self.work_window(ex, dose, set_no, side, first=False)
                next_meta: Meta = (ex.key, set_no, side, None)
                if j > 0:
                    self.switch(ex, dose, side, next_meta, switch_steps if set_no == 1 else [])
                else:
                    self.rest_between_sets(ex, dose, set_no, next_meta)
                self.commit_work(win, dose, ex)
        exits = [step_text(st) for st in ex.steps if step_at(st) == "exit"]
        if exits:
            last = (ex.key, dose.sets, runs[-1] if dose.sides != "alternating" or dose.hold_s is not None else None,
                    None)
            if b.pending_release is not None:
                b.pending_release = None
                b.say("Release.", "transition", last)
            for text in exits:
                b.say(text, "instruction", last, gap=_step_silence_ms(text))
        if nxt is not None:
            self.rest_after(ex, dose, nxt)

    def side_text(self, dose: Dose, what: str, side: str) -> str:
        """'Lie on your right side', 'Start with your right arm and left leg', ... (see model.SIDE_WORDS)."""
        other = "left" if side == "right" else "right"
        return SIDE_WORDS[dose.side_words][what].format(side=side, Side=side.capitalize(), other=other)

    def side_runs(self, dose: Dose) -> tuple[str | None, ...]:
        """One work window per entry: both sides in one window only for alternating reps."""
        if dose.sides == "each" or (dose.sides == "alternating" and dose.hold_s is not None):
            return ("right", "left")
        return (None,)

    def instructions(self, number: int | None, ex: Exercise, source: Exercise, dose: Dose, *,
                     safety_before: bool) -> None:
        """What is said before the first set, while the listener is still: the long texts first,
        then the steps (the listener follows them into position), the position last."""
        b, level = self.b, self.s.level
        meta: Meta = (ex.key, None, None, None)
        variant = source.variant(level)
        if number is None:
            b.say(f"An optional finisher: {ex.name}.", "instruction", meta)
        else:
            b.say(f"Exercise {number} of {len(self.routine.exercises)}: {ex.name}.", "instruction", meta)
        skip = f"{SKIP_WORDS}: {self.s.skip_how}."
        if ex.prerequisites:  # first, so that skipping it saves the whole briefing
            b.say(f"A word of caution. {ex.prerequisites} If that is not you, {skip}", "instruction", meta,
                  gap=SKIP_PAUSE_MS)
        elif number is None:
            b.say(f"It is optional. If you want to {SKIP_WORDS}, {self.s.skip_how}.", "instruction", meta,
                  gap=SKIP_PAUSE_MS)
        if self.full and ex.purpose:
            b.say(ex.purpose, "instruction", meta)
        if variant is not None and (number is None) == (variant.finisher is not None):
            b.say(f"The {level} version: {variant.text}", "instruction", meta)
        if self.full and level == "standard" and number is not None:
            for name, option in (("easier", source.variants.easier), ("harder", source.variants.harder)):
                if option is not None:
                    b.say(f"To make it {name}: {option.text}", "instruction", meta)
        if ex.equipment:
            b.say(f"You need {_join(list(ex.equipment))}.", "instruction", meta)
        b.say(self.dose_text(dose), "instruction", meta)
        if safety_before:
            b.say(self.safety_text(ex), "instruction", meta)
        if dose.sides == "alternating":
            b.say(self.side_text(dose, "start", "right") + ", then alternate.", "instruction", meta)
        setup = [step_text(st) for st in ex.steps if step_at(st) == "setup"]
        steps = (ex.reminder,) if (not self.full and ex.reminder) else setup
        for step in steps:
            b.say(step, "instruction", meta, gap=_step_silence_ms(step))

    def dose_text(self, dose: Dose) -> str:
        sets = number_words(dose.sets).capitalize()
        if dose.reps is not None:
            text = f"{sets} set{'s' if dose.sets != 1 else ''} of {_plural(dose.reps, 'rep')}"
        else:
            text = f"{sets} hold{'s' if dose.sets != 1 else ''} of {spoken_duration(dose.hold_s or 0)}"
        if dose.sides == "each" or (dose.sides == "alternating" and dose.reps is None):
            text += " on each side"
        elif dose.sides == "alternating":
            text += " on each side, alternating sides"
        return text + "."

    def safety_text(self, ex: Exercise) -> str:
        return f"Safety tip: {ex.safety}"

    def reminder_text(self, ex: Exercise) -> str:
        return f"Remember: {ex.reminder or step_text(ex.steps[0])}"

    # timed windows ---------------------------------------------------------------------
    def work_window(self, ex: Exercise, dose: Dose, set_no: int, side: str | None, first: bool) -> Window:
        """The exact work of one set (and side), its cues placed but not yet put in time."""
        meta: Meta = (ex.key, set_no, side if dose.sides != "alternating" or dose.reps is None else "right", None)
        wants = [self.b.sound("start", "work", meta)]
        if dose.reps is not None:
            length = self.rep_wants(wants, ex, dose, set_no, side)
        else:
            length = self.hold_wants(wants, ex, dose, set_no, side)
        if first and ex.safety and dose.hold_s is not None:
            # Never over reps; in a hold only in its quiet stretch, displacing no call: else said before.
            safety = Want(0, length, length, RANK_QUIET, "work", meta, (self.safety_text(ex),), optional=False,
                          mandatory=True)
            wants.append(safety)
        win = self.b.window(length, wants)
        win.meta = meta
        return win

    def commit_work(self, win: Window, dose: Dose, ex: Exercise) -> None:
        self.b.commit(win)
        if dose.hold_s is not None:
            self.b.pending_release = win.meta
            self.b.release_words = (_sentence(ex.release), "Release.") if ex.release else ("Release.",)

    def rep_wants(self, wants: list[Want], ex: Exercise, dose: Dose, set_no: int, side: str | None) -> int:
        """Tempo cues at each movement, the count at the end of each rep, 'last one' before the last."""
        phases = [(p.cue, max(1, round(p.seconds * self.s.pace * 1000))) for p in dose.effective_tempo]
        rep_ms = sum(ms for _, ms in phases)
        alternating = dose.sides == "alternating"
        reps = dose.reps or 1
        total_reps = reps * (2 if alternating else 1)
        last_ms = phases[-1][1]
        for r in range(total_reps):
            rep_start = r * rep_ms
            rep_side = ("right", "left")[r % 2] if alternating else side
            count = r // 2 + 1 if alternating else r + 1
            meta: Meta = (ex.key, set_no, rep_side, count)
            at = rep_start
            # The first rep of the last count (alternating: its right side) says "last one".
            last_rep = reps > 1 and count == reps and (not alternating or r % 2 == 0)
            for i, (cue, ms) in enumerate(phases):
                slack = min(ms // 2, 1000)
                if alternating and i == 0:
                    label = self.side_text(dose, "cue", rep_side)
                    forms = (f"{label}, {cue}.", f"{label}.") if cue else (f"{label}.",)
                    if "," in label:  # "Right arm, left leg": the leading limb alone is still unambiguous
                        forms += (label.split(",")[0] + ".",)
                    wants.append(Want(at, at + ms, slack, RANK_SIDE, "work", meta, self.last_one(forms, last_rep)))
                elif cue:
                    forms = self.last_one((_sentence(cue),), last_rep and i == 0)
                    wants.append(Want(at, at + ms, slack, RANK_MOVE, "work", meta, forms))
                at += ms
            if alternating and r % 2 == 0:
                continue  # alternating reps are counted in pairs, after the left side
            end = rep_start + rep_ms
            lo = end - last_ms  # after the last movement cue of the rep, never before it
            forms = (_sentence(number_words(count)),)
            wants.append(Want(lo, end, end - lo, RANK_COUNT, "work", meta, forms, late=True))
        return total_reps * rep_ms

    @staticmethod
    def last_one(forms: tuple[str, ...], last_rep: bool) -> tuple[str, ...]:
        """The first movement cue of the last rep says so ("Hinge, last one."), where it has room.

        It rides on the movement cue rather than on the count before it: a long "Seven, last
        one." took the room of the movement cue after it. Where it does not fit, the plain cue.
        """
        if not last_rep:
            return forms
        return (forms[0].rstrip(".") + ", last one.", *forms)

    def hold_wants(self, wants: list[Want], ex: Exercise, dose: Dose, set_no: int, side: str | None) -> int:
        """'Hold for N seconds', halfway, ten seconds left, and three-two-one to the release."""
        hold_ms = round((dose.hold_s or 0) * 1000)
        meta: Meta = (ex.key, set_no, side, None)
        hold_words = f"Hold for {spoken_duration(dose.hold_s or 0)}."
        wants.append(Want(0, hold_ms, 1500, RANK_HOLD_START, "work", meta, (hold_words, "Hold.")))
        if hold_ms >= 10000:
            wants.append(Want(hold_ms // 2, hold_ms, 1500, RANK_HALFWAY, "work", meta, ("Halfway.",)))
        if hold_ms >= 25000:
            wants.append(Want(hold_ms - 10000, hold_ms, 1000, RANK_TEN_LEFT, "work", meta,
                              ("Ten seconds left.", "Ten seconds.")))
        for n in range(self.s.countdown_s, 0, -1):
            at = hold_ms - n * 1000
            if at >= 0 and not self.b.countdown_ticks:
                wants.append(Want(at, at + 1000, 0, RANK_RELEASE_NUMBERS, "work", meta, (countdown_word(n),)))
        return hold_ms

    def rest_ms(self, seconds: float) -> int:
        return round(seconds * self.s.rest_scale * 1000)

    def rest_head(self, rest_ms: int, meta: Meta, next_forms: tuple[str, ...], *, countdown: bool) -> list[Want]:
        """Rest sound, its length, what comes next, and a warning before the end (or before its countdown)."""
        b = self.b
        words = f"Rest for {spoken_duration(rest_ms / 1000)}."
        head = [b.sound("rest", "rest", meta), *b.release(),
                Want(0, rest_ms, 5000, RANK_REST_TEXT, "rest", meta, (words, "Rest.")),  # after a release
                Want(0, rest_ms, rest_ms, RANK_NEXT_UP, "rest", meta, next_forms)]
        # Only a rest that ends in a countdown warns: after the others come instructions, not work,
        # and "five seconds of rest left" would not be true.
        if countdown:  # "get ready", then the countdown to the next set
            warn_at = rest_ms - self.s.countdown_s * 1000 - WARN_AHEAD_MS
            if warn_at > 0:
                head.append(Want(warn_at, rest_ms, 1000, RANK_GET_READY, "rest", meta, ("Get ready.",)))
        return head

    def rest_between_sets(self, ex: Exercise, dose: Dose, set_no: int, meta: Meta) -> None:
        rest_ms = self.rest_ms(dose.rest_between_sets_s)
        done: Meta = (ex.key, set_no - 1, None, None)
        side = f", starting on your {meta[2]} side" if dose.sides == "each" else ""
        next_forms = (f"Next up: {ex.name}, set {set_no} of {dose.sets}{side}.", f"Next: set {set_no}.")
        reminder = Want(0, rest_ms, rest_ms, RANK_REMINDER, "instruction", meta, (self.reminder_text(ex),),
                        optional=False, mandatory=True)
        head = self.rest_head(rest_ms, done, next_forms, countdown=True) if rest_ms else []
        self.b.before_work("rest", rest_ms, head, [reminder], meta)

    def switch(self, ex: Exercise, dose: Dose, side: str | None, meta: Meta, steps: list[str]) -> None:
        """The switch of sides: the steps that end the first side (``{switch: ...}``), then the new side."""
        b = self.b
        done: Meta = (meta[0], meta[1], "right" if side == "left" else "left", None)
        head = [b.sound("switch", "transition", done), *b.release()]
        must = [Want(0, FOREVER_MS, FOREVER_MS, RANK_SAFETY + len(steps) - i, "instruction", meta, (step,),
                     optional=False, mandatory=True) for i, step in enumerate(steps)]
        must.append(Want(0, FOREVER_MS, FOREVER_MS, RANK_SAFETY - 1, "transition", meta,
                         (self.side_text(dose, "switch", side or "left"),), optional=False,
                         mandatory=True))
        b.before_work("switch", round(dose.switch_s * 1000), head, must, meta)

    def rest_after(self, ex: Exercise, dose: Dose, nxt: tuple[Exercise, int | None, Exercise]) -> None:
        rest_ms = self.rest_ms(dose.rest_after_s)
        if rest_ms <= 0:
            return
        meta: Meta = (ex.key, dose.sets, None, None)
        nxt_ex, next_number, _ = nxt
        where = f", {nxt_ex.position}" if nxt_ex.position else ""
        if next_number is None:
            first = f"Next up: an optional finisher, {nxt_ex.name}{where}."
        else:
            first = f"Next up: exercise {next_number} of {len(self.routine.exercises)}, {nxt_ex.name}{where}."
        next_forms = (first, f"Next: {nxt_ex.name}.")
        self.b.commit(self.b.window(rest_ms, self.rest_head(rest_ms, meta, next_forms, countdown=False)))


def plan(routine: Routine, settings: PlanSettings, meter: Meter, *,
         sound_lengths_s: Mapping[str, float] | None = None) -> Timeline:
    """Plan ``routine`` into a Timeline; ``meter(text)`` gives each text's spoken seconds.

    ``sound_lengths_s`` overrides earcon lengths (for a routine's own sounds).
    """
    lengths = {**DEFAULT_SOUND_LENGTHS_S, **(sound_lengths_s or {})}
    sound_ms = {name: max(1, round(s * 1000)) for name, s in lengths.items()}
    cache: dict[str, int] = {}

    def measure(text: str) -> int:
        ms = cache.get(text)
        if ms is None:
            ms = cache[text] = max(1, round(float(meter(text)) * 1000))
        return ms

    def builder() -> Builder:
        return Builder(measure, sound_ms, settings.countdown_s)

    first = find_exercise(routine, settings.start_at) if settings.start_at else 0
    body = builder()
    _Session(routine, settings, body, first).body()
    body_ms = body.end
    # The intro says how long the session takes, which includes the intro: let it settle.
    minutes = settings.session_minutes or max(1, round(body_ms / 60000))
    for _ in range(4):
        intro, outro = builder(), builder()
        _Session(routine, settings, intro, first).intro(minutes)
        _Session(routine, settings, outro, first).outro((intro.end + body_ms) / 1000)
        settled = max(1, round((intro.end + body_ms + outro.last_end) / 60000))
        if settled == minutes or settings.session_minutes:
            break
        minutes = settled
    timeline = _assemble(routine, settings, [(intro, 0), (body, intro.end), (outro, intro.end + body_ms)])
    if body.countdown_ticks:
        note = {"start_s": 0.0, "text": "spoken countdown numbers", "phase": "countdown",
                "reason": "a number takes more than a second in this voice: ticks instead"}
        timeline = replace(timeline, dropped=(note, *timeline.dropped))
    return timeline


def _assemble(routine: Routine, settings: PlanSettings, parts: list[tuple[Builder, int]]) -> Timeline:
    cues: list[Cue] = []
    chapters: list[Chapter] = []
    dropped: list[dict[str, Any]] = []
    for part, offset in parts:
        for start, end, kind, phase, text, sound, exercise, set_, side, rep, optional in part.cues:
            cues.append(Cue(start_s=(offset + start) / 1000, end_s=(offset + end) / 1000, kind=kind, phase=phase,
                            text=text, sound=sound, exercise=exercise, set=set_, side=side, rep=rep,
                            optional=optional))
        chapters += [Chapter((offset + at) / 1000, title, ex) for at, title, ex in part.chapters]
        dropped += [{**d, "start_s": round(d["start_s"] + offset / 1000, 3)} for d in part.dropped]
    cues.sort(key=lambda c: (c.start_s, c.end_s))
    dropped.sort(key=lambda d: d["start_s"])
    return Timeline(routine=routine.name, title=routine.title, level=settings.level, voice=settings.voice,
                    duration_s=max(c.end_s for c in cues), chapters=tuple(chapters), cues=tuple(cues),
                    dropped=tuple(dropped))


def room_warnings(routine: Routine, meter: Meter, *, pace: float = 1.0) -> list[str]:
    """What ``coach validate`` warns about: exercises whose own dose leaves no room for a cue, per level.

    Planned with ``meter`` (the routine's voice estimate); a planner that had to leave a
    cue out (a movement cue in a tempo too quick for it, a rest too short for its words)
    reports it in ``Timeline.dropped``, and this names the exercise.
    """
    out = []
    for level in LEVELS:
        timeline = plan(routine, PlanSettings(level=level, pace=pace), meter)
        names = {}
        for ex in routine.exercises:
            names[ex.key] = ex.at_level(level).name
            finisher = ex.finisher_at(level)
            if finisher is not None:
                names[finisher.key] = finisher.name
        by_exercise: dict[str, list[str]] = {}
        for d in timeline.dropped:
            if d.get("exercise"):
                by_exercise.setdefault(d["exercise"], []).append(d["text"])
        for key, texts in by_exercise.items():
            shown = ", ".join(repr(t) for t in list(dict.fromkeys(texts))[:3])
            out.append(f"{names.get(key, key)} ({level}): {len(texts)} cue(s) do not fit ({shown}); give its "
                       "movements or rests more seconds")
    return out
