"""Placing cues in time: untimed stretches that grow, timed windows that do not.

The planner (``coach.planner``) decides *what* is said; this module decides
*when*, knowing nothing about routines. Untimed stretches (intro,
instructions, transitions) grow to fit their speech. Timed windows (work,
rests, switches, countdowns) have an exact length; their cues are placed by
priority (``Want.rank``), each as close to its moment as the cues already
placed allow, in its full or a shorter form, or dropped and reported. Times
are whole milliseconds, so exact lengths stay exact.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PAD_MS = 120
"""Silence kept between two cues inside a timed window, so words never run together."""
GAP_MS = 500
"""Silence after a sentence in an untimed stretch."""
MAX_STRETCH_MS = 60000
"""A switch or setup window grows at most this much to fit its speech."""
FOREVER_MS = 10**12

Meta = tuple[str | None, int | None, str | None, int | None]
"""exercise, set, side, rep of a cue."""
NO_META: Meta = (None, None, None, None)

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0..999 in words, as a count is spoken: 42 -> 'forty-two'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("-" + _ONES[ones] if ones else "")
    hundreds, rest = divmod(n, 100)
    return _ONES[hundreds] + " hundred" + (" and " + number_words(rest) if rest else "")


def countdown_word(n: int) -> str:
    """A countdown number as it is called out: 3 -> "Three!" (Joe lets a bare "Two." fade out; "Two!" keeps its level)."""
    return number_words(n).capitalize() + "!"


@dataclass(slots=True)
class Want:
    """A cue a window would like to hold, and how flexible it is."""

    lo: int
    """Earliest start, ms into the window."""
    hi: int
    """Latest end."""
    slack: int
    """How far it may move from its ideal moment (``lo``, or ``hi`` when ``late``)."""
    rank: int
    """Higher ranks are placed first; lower ones fit around them or are dropped."""
    phase: str
    meta: Meta
    forms: tuple[str, ...] = ()
    """Texts from full to shortest (speech); empty for a sound."""
    sound: str | None = None
    late: bool = False
    """Place it to end at ``hi`` (counts), not to start at ``lo``."""
    optional: bool = True
    """Marked optional in the timeline: the planner could have left it out."""
    mandatory: bool = False
    """Must not be dropped: the caller says it elsewhere if it does not fit."""


@dataclass
class Window:
    """A planned timed stretch: its cues in window time, and what did not fit."""

    length: int
    placed: list[tuple[int, int, Want, str | None]] = field(default_factory=list)
    dropped: list[Want] = field(default_factory=list)
    failed: list[Want] = field(default_factory=list)
    """Mandatory wants that did not fit."""
    meta: Meta = NO_META
    """What the window is (exercise, set, side) when it is a work window."""

    @property
    def ok(self) -> bool:
        return not self.failed


def _fit(starts: list[int], ends: list[int], want: Want, length: int, size: int) -> int | None:
    """Start of a free slot of ``size`` ms for ``want``, or None; busy spans keep PAD_MS around them."""
    hi = min(want.hi, length)
    if want.late:
        s = hi - size
        floor = max(want.lo, hi - size - want.slack)
        j = bisect.bisect_left(starts, s + size + PAD_MS) - 1
        while j >= 0 and ends[j] + PAD_MS > s:
            s = min(s, starts[j] - PAD_MS - size)
            j -= 1
        return s if s >= floor else None
    s = max(0, want.lo)
    ceiling = min(want.lo + want.slack, hi - size)
    i = bisect.bisect_right(ends, s - PAD_MS)
    while i < len(starts) and starts[i] - PAD_MS < s + size:
        s = max(s, ends[i] + PAD_MS)
        i += 1
    return s if s <= ceiling else None


class Builder:
    """Builds one stretch of a session (intro, body or outro) from time 0, in whole milliseconds."""

    def __init__(self, measure: Callable[[str], int], sound_ms: Mapping[str, int], countdown_s: int) -> None:
        self.ms = measure
        self.sound_ms = sound_ms
        self.cues: list[tuple] = []
        self.chapters: list[tuple[int, str, str | None]] = []
        self.dropped: list[dict[str, Any]] = []
        self.t = 0
        self.last_end = -PAD_MS
        self.pending_release: Meta | None = None
        self.release_words: tuple[str, ...] = ("Release.",)
        """What the release of the pending hold says, from full to shortest."""
        self.countdown_s = countdown_s
        # A number longer than a second would run into the next one: count with ticks instead.
        self.countdown_ticks = any(self.ms(countdown_word(n)) > 1000 - PAD_MS for n in range(1, countdown_s + 1))

    @property
    def end(self) -> int:
        """Where the next stretch may begin."""
        return max(self.t, self.last_end + PAD_MS)

    # untimed ---------------------------------------------------------------------------
    def add(self, start: int, end: int, kind: str, phase: str, text: str | None, sound: str | None,
            meta: Meta, optional: bool = False) -> None:
        self.cues.append((start, end, kind, phase, text, sound, *meta, optional))
        if end > self.last_end:
            self.last_end = end

    def say(self, text: str, phase: str, meta: Meta = NO_META, gap: int = GAP_MS) -> None:
        """Speak ``text`` as soon as the previous cue is done; the stretch grows to fit it."""
        self.flush_release()
        start = self.end
        end = start + self.ms(text)
        self.add(start, end, "speech", phase, text, None, meta)
        self.t = end + gap

    def play(self, sound: str, phase: str, meta: Meta = NO_META) -> None:
        start = self.end
        self.add(start, start + self.sound_ms[sound], "sound", phase, None, sound, meta)
        self.t = start + self.sound_ms[sound]

    def pause(self, ms: int) -> None:
        self.t += ms

    def chapter(self, title: str, exercise: str | None) -> None:
        self.flush_release()
        self.t = self.end
        self.chapters.append((self.t, title, exercise))

    def flush_release(self) -> None:
        """Say the 'release' of a finished hold that no rest or switch window took."""
        if self.pending_release is not None:
            meta, self.pending_release = self.pending_release, None
            self.say(self.release_words[0], "transition", meta)

    # timed -----------------------------------------------------------------------------
    def window(self, length: int, wants: list[Want]) -> Window:
        """Place ``wants`` into a window of ``length`` ms, highest rank first."""
        win = Window(length)
        starts: list[int] = []
        ends: list[int] = []
        for want in sorted(wants, key=lambda w: -w.rank):
            spot = None
            for text in want.forms or (None,):
                size = self.sound_ms[want.sound] if text is None else self.ms(text)
                start = _fit(starts, ends, want, length, size)
                if start is not None:
                    spot = (start, start + size, want, text)
                    break
            if spot is None:
                (win.failed if want.mandatory else win.dropped).append(want)
                continue
            i = bisect.bisect_left(starts, spot[0])
            starts.insert(i, spot[0])
            ends.insert(i, spot[1])
            win.placed.append(spot)
        return win

    def commit(self, win: Window) -> None:
        """Put a planned window at the current time and move past it."""
        self.flush_release()
        # Timed windows follow each other exactly: a rest starts where the work ends.
        t0 = self.t = max(self.t, self.last_end)
        for start, end, want, text in win.placed:
            kind = "sound" if text is None else "speech"
            self.add(t0 + start, t0 + end, kind, want.phase, text, want.sound, want.meta, want.optional)
        for want in win.dropped:  # failed mandatory wants are said elsewhere by the caller
            exercise, set_, side, rep = want.meta
            self.dropped.append({
                "start_s": (t0 + max(0, want.lo)) / 1000,
                "text": want.forms[0] if want.forms else f"[{want.sound} sound]",
                "phase": want.phase, "exercise": exercise, "set": set_, "side": side, "rep": rep,
                "reason": "no room in its timed window",
            })
        self.t = t0 + win.length

    def countdown(self, length: int, meta: Meta) -> list[Want]:
        """Three, two, one: each number starting on a whole second before the end of the window."""
        wants = []
        for n in range(self.countdown_s, 0, -1):
            at = length - n * 1000
            if self.countdown_ticks:
                wants.append(Want(at, at + 1000, 0, 100, "countdown", meta, sound="tick", optional=False,
                                  mandatory=True))
            else:
                wants.append(Want(at, at + 1000, 0, 100, "countdown", meta, (countdown_word(n),), optional=False,
                                  mandatory=True))
        return wants

    def sound(self, sound: str, phase: str, meta: Meta, at: int = 0, rank: int = 200) -> Want:
        return Want(at, FOREVER_MS, 0, rank, phase, meta, sound=sound, optional=False)

    def release(self) -> list[Want]:
        """The 'release' after a hold, as the first words of the window that follows it."""
        if self.pending_release is None:
            return []
        meta, self.pending_release = self.pending_release, None
        return [Want(0, FOREVER_MS, 1000, 95, "transition", meta, self.release_words, optional=False)]

    def before_work(self, kind: str, base_ms: int, head: list[Want], must: list[Want], meta: Meta) -> None:
        """The stretch before a work window (setup, switch or rest), ending in the countdown.

        A rest lasts exactly ``base_ms``: if what must be said (a reminder) does not
        fit in it beside the countdown, it is said after the rest, followed by a
        countdown of its own. Setup and switch windows grow to fit instead.
        """
        cd = self.countdown_s * 1000
        if kind == "rest":
            if base_ms >= cd:
                win = self.window(base_ms, head + must + self.countdown(base_ms, meta))
                if win.ok:
                    self.commit(win)
                    return
            if base_ms > 0:
                self.commit(self.window(base_ms, head))
            for want in must:
                self.say(want.forms[0], want.phase, want.meta)
            if cd:
                self.commit(self.window(cd, self.countdown(cd, meta)))
            return
        start_len = length = max(base_ms, cd)
        while True:
            win = self.window(length, head + must + self.countdown(length, meta))
            if win.ok or length >= start_len + MAX_STRETCH_MS:
                break
            length += 500
        if not win.ok:  # speech longer than any sensible window: say it first, then count down
            for want in must:
                self.say(want.forms[0], want.phase, want.meta)
            win = self.window(start_len, head + self.countdown(start_len, meta))
        self.commit(win)
