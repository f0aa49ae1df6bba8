"""The planner's timing rules as one checker, shared by the property, golden and CLI tests.

Expected lengths are computed here from the routine and the settings, not taken
from the planner, so a planner that stretches a work window or a rest fails.
"""

from __future__ import annotations

import re

from coach.model import Exercise, Routine
from coach.planner import PlanSettings, find_exercise, number_words
from coach.schedule import countdown_word
from coach.timeline import Cue, Timeline


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def planned_exercises(routine: Routine, settings: PlanSettings) -> list[tuple[Exercise, bool]]:
    """The exercises a plan does, at its level: (exercise, optional finisher?), in order."""
    first = find_exercise(routine, settings.start_at) if settings.start_at else 0
    out = []
    for ex in routine.exercises[first:]:
        out.append((ex.at_level(settings.level), False))
        finisher = ex.finisher_at(settings.level)
        if finisher is not None:
            out.append((finisher, True))
    return out


def runs(routine: Routine, settings: PlanSettings):
    """(exercise, set, side, work_ms, rest_before_ms, switch_before_ms) for every work window, in order."""
    out = []
    for ex, _ in planned_exercises(routine, settings):
        dose = ex.dose
        alternating_reps = dose.sides == "alternating" and dose.reps is not None
        sides = ("right", "left") if dose.sides != "none" and not alternating_reps else (None,)
        if dose.reps is not None:
            rep_ms = sum(ms(p.seconds * settings.pace) for p in dose.effective_tempo)
            work = dose.reps * (2 if alternating_reps else 1) * rep_ms
        else:
            work = ms(dose.hold_s)
        for set_no in range(1, dose.sets + 1):
            for j, side in enumerate(sides):
                out.append({
                    "exercise": ex.key, "set": set_no, "side": "right" if alternating_reps else side,
                    "work_ms": work,
                    "rest_ms": ms(dose.rest_between_sets_s * settings.rest_scale) if set_no > 1 and j == 0 else None,
                    "switch_ms": ms(dose.switch_s) if j > 0 else None,
                    "rest_after_ms": ms(dose.rest_after_s * settings.rest_scale),
                    "last_of_exercise": set_no == dose.sets and j == len(sides) - 1,
                })
    return out


def spans(cues) -> list[tuple[int, int, Cue]]:
    return [(ms(c.start_s), ms(c.end_s), c) for c in cues]


def check_timeline(t: Timeline, routine: Routine, settings: PlanSettings) -> None:
    """Assert every timing rule of issue 3 on ``t``."""
    cues = spans(t.cues)
    assert cues, "no cues"
    # Sorted; inside the session; duration is the end of the last cue.
    assert [s for s, _, _ in cues] == sorted(s for s, _, _ in cues), "cues are not sorted"
    assert all(0 <= s <= e for s, e, _ in cues), "a cue ends before it starts or starts before 0"
    assert ms(t.duration_s) == max(e for _, e, _ in cues), "duration is not the end of the last cue"
    # No speech overlaps speech or a sound (unless that sound sits under speech).
    solid = [(s, e, c) for s, e, c in cues if not c.under_speech]
    for (s1, e1, c1), (s2, e2, c2) in zip(solid, solid[1:]):
        assert e1 <= s2, f"overlap: {c1} and {c2}"
    for c in t.cues:
        if c.kind == "speech":
            assert c.text and c.text.strip(), c
        else:
            assert c.sound in ("start", "tick", "rest", "switch", "finish"), c

    starts = [(s, c) for s, _, c in cues if c.kind == "sound" and c.sound == "start"]
    expected = runs(routine, settings)
    assert len(starts) == len(expected), f"{len(starts)} start sounds for {len(expected)} work windows"
    countdown = settings.countdown_s
    by_start = {s: c for s, _, c in cues}
    for i, ((ws, sound), run) in enumerate(zip(starts, expected)):
        assert (sound.exercise, sound.set, sound.side) == (run["exercise"], run["set"], run["side"]), (sound, run)
        we = ws + run["work_ms"]
        # The work window is exact and holds only its own work cues.
        for s, e, c in cues:
            if s < we and e > ws:
                assert c.phase == "work" and c.exercise == run["exercise"] and c.set == run["set"], (c, run)
                assert ws <= s and e <= we, f"{c} sticks out of its work window {ws}..{we} ms"
        # The countdown: each number starts on a whole second before the start.
        for n in range(countdown, 0, -1):
            c = by_start.get(ws - n * 1000)
            assert c is not None and c.phase == "countdown", f"no countdown {n} at {ws - n * 1000} ms before {run}"
            if c.kind == "speech":
                assert c.text == countdown_word(n), c
                assert ms(c.end_s) <= ws - (n - 1) * 1000, f"{c} runs into the next beat"
            else:
                assert c.sound == "tick", c
        if i + 1 >= len(expected):
            continue
        nxt_start, nxt = starts[i + 1][0], expected[i + 1]
        between = [(s, e, c) for s, e, c in cues if we <= s < nxt_start]
        if nxt["switch_ms"] is not None:
            assert nxt_start - we >= nxt["switch_ms"], "switch shorter than switch_s"
        elif nxt["rest_ms"] is not None:
            rest = nxt["rest_ms"]
            rest_cues = [(s, e, c) for s, e, c in between if c.phase == "rest"]
            assert all(e <= we + rest for s, e, c in rest_cues), "a rest cue outside its rest"
            rest_sounds = [s for s, e, c in rest_cues if c.kind == "sound"]
            if rest_sounds:
                assert rest_sounds[0] == we, "the rest does not start where the work ends"
            said_after = any(c.phase == "instruction" and s >= we + rest for s, e, c in between)
            if said_after:  # the reminder did not fit: the rest stays exact and the next start comes later
                assert nxt_start >= we + rest
            else:
                assert nxt_start == we + rest, f"rest of {rest} ms lasted {nxt_start - we} ms"
        elif run["rest_after_ms"]:
            rest = run["rest_after_ms"]
            rest_cues = [(s, e, c) for s, e, c in between if c.phase == "rest"]
            rest_sounds = [s for s, e, c in rest_cues if c.kind == "sound"]
            exit_said = [e for s, e, c in between if c.phase in ("instruction", "transition")
                         and (not rest_sounds or s < rest_sounds[0])]
            rest_at = max([we, *(e for e in exit_said)])  # exit steps are said first, then the rest begins
            if rest_sounds:
                assert rest_sounds[0] == we or (exit_said and rest_sounds[0] >= rest_at), \
                    "the rest does not start where the work ends (or after the exit steps)"
                rest_at = rest_sounds[0]
            assert all(e <= rest_at + rest for s, e, c in rest_cues)
            chapter = next(ch for ch in t.chapters if ch.exercise == nxt["exercise"])
            assert ms(chapter.start_s) >= rest_at + rest, "the next exercise starts inside the rest"

    # Every work cue lies inside a work window of its own exercise and set.
    windows = [(ws, ws + run["work_ms"], run) for (ws, _), run in zip(starts, expected)]
    for s, e, c in cues:
        if c.phase == "work":
            assert any(a <= s and e <= b and r["exercise"] == c.exercise and r["set"] == c.set
                       for a, b, r in windows), f"{c} is outside every work window"

    # Chapters: introduction, each planned exercise in order, finish.
    titles = [c.title for c in t.chapters]
    done = planned_exercises(routine, settings)
    names = [f"{ex.name} (optional)" if optional else ex.name for ex, optional in done]
    assert titles == ["Introduction", *names, "Finish"], titles
    assert t.chapters[0].start_s == 0.0
    assert [c.start_s for c in t.chapters] == sorted(c.start_s for c in t.chapters)
    # Safety tips and warnings are never dropped.
    spoken = " ".join(c.text or "" for c in t.cues)
    for ex, _ in done:
        if ex.safety:
            assert ex.safety in spoken, f"safety tip of {ex.key} missing"
        if ex.prerequisites:
            assert ex.prerequisites in spoken, f"prerequisites of {ex.key} missing"
    for d in t.dropped:
        assert "Safety" not in d["text"] and d["phase"] not in ("instruction",), d

    check_spoken_order(t, routine, settings)


def check_spoken_order(t: Timeline, routine: Routine, settings: PlanSettings) -> None:
    """Issue 12: nothing long over reps, counts whole, true time calls, the position last before the countdown."""
    done = [ex for ex, _ in planned_exercises(routine, settings)]
    dropped_of = {d.get("exercise") for d in t.dropped}
    starts = [c for c in t.cues if c.kind == "sound" and c.sound == "start"]
    expected = runs(routine, settings)
    by_key = {ex.key: ex for ex in done}
    for sound, run in zip(starts, expected):
        ws, we = ms(sound.start_s), ms(sound.start_s) + run["work_ms"]
        dose = by_key[run["exercise"]].dose
        inside = [c for c in t.cues if c.kind == "speech" and ws <= ms(c.start_s) < we]
        if dose.reps is None:
            continue
        # No long text over reps: only movement cues and counts, each short.
        for c in inside:
            assert not c.text.startswith(("Safety tip", "Remember", "A word of caution", "The ")), c
        # Every rep's number, in order, no gap (unless the planner reported what it could not fit).
        counts = [c.rep for c in inside if c.rep is not None and re.fullmatch(r"[A-Z][a-z-]+\.", c.text)
                  and c.text.rstrip(".").lower() == number_words(c.rep)]
        if run["exercise"] not in dropped_of:
            assert counts == list(range(1, dose.reps + 1)), (run, counts)
            assert not any("Last one" == c.text.rstrip(".") for c in inside)
    # "N seconds of rest left": work starts N seconds later.
    for c in t.speech:
        m = re.match(r"(\w+) seconds? of rest left", c.text)
        if m:
            n = next(k for k in range(0, 601) if number_words(k) == m.group(1).lower())
            nxt = next((s for s in starts if s.start_s > c.start_s), None)
            assert nxt is not None and abs(nxt.start_s - c.start_s - n) <= 1.0, (c, nxt)
    # The last words before the first countdown of an exercise are the position to take.
    for ex in done:
        first = next((s for s in starts if s.exercise == ex.key), None)
        if first is None:
            continue
        before = [c for c in t.speech if c.end_s <= first.start_s and c.phase not in ("countdown",)]
        if before:
            assert before[-1].text.startswith("Get into position"), (ex.key, before[-1])
