"""A fixed announced length makes the intro independent of the rest: play can start early."""

from __future__ import annotations

from dataclasses import replace

from coach.loader import builtin_routine
from coach.planner import PlanSettings, estimate_speech_s, plan


def first_exercise_start(timeline) -> float:
    return next(c.start_s for c in timeline.chapters if c.exercise is not None)


def test_with_the_length_fixed_the_intro_does_not_depend_on_later_speech():
    routine = builtin_routine("lower-back")
    settings = replace(PlanSettings(), session_minutes=20)
    intro_texts: set[str] = set()
    first = plan(routine, settings, lambda t: estimate_speech_s(t, 165))
    boundary = first_exercise_start(first)
    intro_texts = {c.text for c in first.cues if c.kind == "speech" and c.start_s < boundary}

    def slower_body(text: str) -> float:  # real lengths known for the intro only, the rest differs
        return estimate_speech_s(text, 165) * (1.0 if text in intro_texts else 1.3)

    second = plan(routine, settings, slower_body)
    assert first_exercise_start(second) == boundary
    assert [c for c in first.cues if c.start_s < boundary] == [c for c in second.cues if c.start_s < boundary]
    assert second.duration_s > first.duration_s
    assert any("about 20 minutes" in (c.text or "") for c in second.cues)


def test_without_a_fixed_length_the_intro_announces_the_planned_length():
    routine = builtin_routine("lower-back")
    timeline = plan(routine, PlanSettings(), lambda t: estimate_speech_s(t, 165))
    minutes = round(timeline.duration_s / 60)
    assert any(f"about {minutes} minutes" in (c.text or "") for c in timeline.cues)


def test_an_absurd_fixed_length_is_refused():
    import pytest

    from coach.errors import UsageError

    with pytest.raises(UsageError):
        PlanSettings(session_minutes=0)
