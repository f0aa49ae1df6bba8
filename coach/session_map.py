"""Where things are in a session: steps to skip to, phases, cue positions, --from values.

Pure functions of a Timeline, shared by the player (skip, back, repeat,
status) and the CLI (--from, --resume, the history's step labels).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from coach.errors import UsageError
from coach.planner import SKIP_WORDS
from coach.timeline import Cue, Timeline


@dataclass(frozen=True)
class Step:
    """A place to skip to: a chapter (intro, outro) or one set of an exercise."""

    start_s: float
    title: str
    exercise: str | None = None
    set: int | None = None
    sets: int | None = None

    @property
    def label(self) -> str:
        if self.set is not None and self.sets and self.sets > 1:
            return f"{self.title}, set {self.set} of {self.sets}"
        return self.title


class SessionMap:
    """Steps, phases and cue positions of a Timeline, for navigation and the status line."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.cues = sorted(timeline.cues, key=lambda c: c.start_s)
        self._starts = [c.start_s for c in self.cues]
        self.names = {ch.exercise: ch.title for ch in timeline.chapters if ch.exercise}
        self.steps = self._find_steps()
        self._step_starts = [s.start_s for s in self.steps]
        self._phases = self._find_phases()
        self._phase_starts = [p[0] for p in self._phases]

    def _find_steps(self) -> tuple[Step, ...]:
        """Chapters, the start of each later set, and each switch of sides (a "switch" sound)."""
        sets: dict[str, int] = {}
        for cue in self.cues:
            if cue.exercise is not None and cue.set is not None:
                sets[cue.exercise] = max(sets.get(cue.exercise, 0), cue.set)
        found: dict[float, Step] = {}
        for ch in sorted(self.timeline.chapters, key=lambda c: c.start_s):
            found.setdefault(ch.start_s, Step(ch.start_s, ch.title, ch.exercise, 1 if ch.exercise else None,
                                              sets.get(ch.exercise or "")))
        seen: set[tuple[str, int]] = set()
        for i, cue in enumerate(self.cues):
            if cue.exercise is None or cue.set is None:
                continue
            name = self.names.get(cue.exercise, cue.exercise)
            if cue.set > 1 and (cue.exercise, cue.set) not in seen:
                found.setdefault(cue.start_s, Step(cue.start_s, name, cue.exercise, cue.set, sets.get(cue.exercise)))
            seen.add((cue.exercise, cue.set))
            if cue.kind == "sound" and cue.sound == "switch":
                side = next((c.side for c in self.cues[i + 1 : i + 4] if c.side and c.side != cue.side), None)
                title = f"{name}, {side} side" if side else name
                found.setdefault(cue.start_s, Step(cue.start_s, title, cue.exercise, cue.set, sets.get(cue.exercise)))
        if not found or min(found) > 0:
            found.setdefault(0.0, Step(0.0, self.timeline.title or "start"))
        return tuple(found[k] for k in sorted(found))

    def _find_phases(self) -> list[tuple[float, float, str]]:
        """(start_s, end_s, phase): runs of cues of one phase, each lasting until the next run.

        A rest lasts until the countdown or the work: the reminder of the next set
        and "get ready" spoken during it do not end it.
        """
        runs: list[list] = []
        for cue in self.cues:
            if runs and runs[-1][2] == cue.phase:
                continue
            if runs and runs[-1][2] == "rest" and cue.phase in ("instruction", "transition") \
                    and cue.exercise == runs[-1][3]:
                continue
            runs.append([cue.start_s, None, cue.phase, cue.exercise])
        for i, run in enumerate(runs):
            run[1] = runs[i + 1][0] if i + 1 < len(runs) else self.timeline.duration_s
        return [(start, end, phase) for start, end, phase, _ in runs]

    def side_at(self, position_s: float) -> str | None:
        """The side being worked at ``position_s`` (from the last cue that named one in this set)."""
        i = bisect.bisect_right(self._starts, position_s + 1e-6)
        for cue in reversed(self.cues[max(0, i - 12) : i]):
            if cue.side:
                return cue.side
            if cue.phase in ("rest", "instruction", "intro", "outro"):
                return None
        return None

    def next_start(self, position_s: float) -> float | None:
        """Where "next" goes from ``position_s``: the next step; but after a warning that offers to
        skip the exercise, and before its first work starts, the next exercise, so that "press n
        to skip this exercise" skips all of it."""
        step = self.step_at(position_s)
        offered = step.exercise is not None and any(
            c.exercise == step.exercise and c.text and SKIP_WORDS in c.text and c.start_s <= position_s + 1e-6
            for c in self.cues)
        if offered:
            first_work = next((c.start_s for c in self.cues if c.exercise == step.exercise and c.sound == "start"),
                              None)
            if first_work is not None and position_s < first_work:
                later = [ch.start_s for ch in self.timeline.chapters if ch.start_s > position_s + 1e-6]
                if later:
                    return min(later)
        i = self.step_index(position_s)
        return self.steps[i + 1].start_s if i + 1 < len(self.steps) else None

    def step_index(self, position_s: float) -> int:
        return max(0, bisect.bisect_right(self._step_starts, position_s + 1e-6) - 1)

    def step_at(self, position_s: float) -> Step:
        return self.steps[self.step_index(position_s)]

    def phase_at(self, position_s: float) -> tuple[str | None, float | None]:
        i = bisect.bisect_right(self._phase_starts, position_s + 1e-6) - 1
        if i < 0:
            return None, None
        _, end, phase = self._phases[i]
        return phase, max(0.0, end - position_s)

    def resume_point(self, position_s: float) -> float:
        """Where to carry on from ``position_s``: the start of a cue heard only in part."""
        i = bisect.bisect_right(self._starts, position_s + 1e-6)
        best = position_s
        for cue in self.cues[max(0, i - 8) : i]:
            if cue.start_s < position_s < cue.end_s:
                best = min(best, cue.start_s)
        return best

    def last_spoken(self, position_s: float) -> Cue | None:
        """The last real sentence heard: counts and countdown numbers are not worth repeating."""
        i = bisect.bisect_right(self._starts, position_s + 1e-6)
        fallback = None
        for cue in reversed(self.cues[:i]):
            if cue.kind != "speech":
                continue
            fallback = fallback or cue
            if not cue.optional and cue.phase != "countdown" and cue.rep is None:
                return cue
        return fallback

    def describe(self, position_s: float) -> str:
        """'12:03 (Bird-Dog, set 2 of 3)'."""
        return f"{clock(position_s)} ({self.step_at(position_s).label})"

    def resolve_from(self, spec: str) -> float:
        """A --from value: a time (M:SS or H:MM:SS), or an exercise id, name or number (as `coach plan --from`)."""
        text = spec.strip()
        exercises = [ch for ch in self.timeline.chapters if ch.exercise]
        if text.isdigit():
            if not 1 <= int(text) <= len(exercises):
                raise UsageError(f"--from: there is no exercise {text}; this session has {len(exercises)}",
                                 hint="give an exercise number, id or name, or a time as M:SS")
            return exercises[int(text) - 1].start_s
        if re.fullmatch(r"\d+:\d{1,2}(\.\d+)?|\d+:\d{1,2}:\d{1,2}(\.\d+)?", text):
            seconds = 0.0
            for part in text.split(":"):
                seconds = seconds * 60 + float(part)
            if seconds >= self.timeline.duration_s:
                raise UsageError(f"--from: {text} is past the end of the session ({clock(self.timeline.duration_s)})")
            return self.resume_point(seconds)
        wanted = text.lower()
        for ch in self.timeline.chapters:
            if wanted in ((ch.exercise or "").lower(), ch.title.lower()):
                return ch.start_s
        matches = [ch for ch in self.timeline.chapters if wanted in ch.title.lower()]
        if len(matches) == 1:
            return matches[0].start_s
        choices = ", ".join(ch.exercise or ch.title for ch in self.timeline.chapters)
        raise UsageError(f"--from: no exercise {spec!r} in this session", hint=f"choose one of: {choices}, or M:SS")


def clock(seconds: float) -> str:
    """12:05 or 1:02:05."""
    total = int(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
