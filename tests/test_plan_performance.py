"""Planning stays fast on very long routines (the timing itself is a benchmark: scripts/bench-plan)."""

from __future__ import annotations

import time

from coach.planner import PlanSettings, estimate_speech_s, plan
from plan_big import big_routine

GENEROUS_BOUND_S = 5.0
"""Far above the ~0.2 s measured: this catches quadratic blow-ups, not slow machines."""


def test_a_routine_of_500_exercises_plans_completely_and_without_blowing_up():
    routine = big_routine(500)
    t0 = time.perf_counter()
    timeline = plan(routine, PlanSettings(), lambda text: estimate_speech_s(text, 170))
    elapsed = time.perf_counter() - t0
    print(f"planned 500 exercises ({len(timeline.cues)} cues) in {elapsed * 1000:.0f} ms")
    assert len(timeline.chapters) == 502
    assert sum(c.sound == "start" for c in timeline.cues) == sum(
        ex.dose.sets * (2 if ex.dose.sides != "none" and not (ex.dose.sides == "alternating" and ex.dose.reps) else 1)
        for ex in routine.exercises)
    ends = [c.end_s for c in timeline.cues]
    starts = [c.start_s for c in timeline.cues]
    assert all(a <= b for a, b in zip(ends, starts[1:])), "cues overlap"
    assert timeline.duration_s == max(ends)
    assert elapsed < GENEROUS_BOUND_S
