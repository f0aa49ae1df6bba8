"""Fuzzing load -> plan: whatever the routine and the settings, only a CoachError can come out.

tests/test_plan_invariants.py checks the rules a valid plan keeps; this file
throws the whole range of what a user can write or type at the pipeline
(extreme doses, any Unicode text, settings in and out of range, odd voices)
and only asks that it either plans or says what is wrong.
"""

from __future__ import annotations

import math
import zlib

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from coach.errors import CoachError
from coach.loader import validate_document
from coach.planner import PlanSettings, estimate_speech_s, plan
from coach.timeline import Timeline, VoiceSpec

# Spoken texts a user might write, odd ones included; "wild" examples add any Unicode at all.
TEXTS = ["Lie on your back.", "Stand tall, breathe out.", "כושר 💪 שלום", "a" * 2000, "-x", "--help", "Go",
         "<break time='3s'/>", "[[h@loU]]", "1e9", "ｗｉｄｅ", "e\u0301", "T-spine 90-degree rotation, 3x."]
SECONDS_OK = [0, 0.5, 1, 3, 3.5, 17.25, 30, 59.9, 600]
WHOLE_OK = [1, 2, 3, 20, 100]


class Draw:
    """Values for one example: all in range, or (wild) anything at all."""

    def __init__(self, draw, wild: bool) -> None:
        self.draw = draw
        self.wild = wild

    def text(self) -> str:
        if self.wild and self.draw(st.booleans()):
            return self.draw(st.text(max_size=40))
        return self.draw(st.sampled_from(TEXTS))

    def seconds(self, low: float = 0, high: float = 600) -> float:
        if self.wild:
            return self.draw(st.one_of(st.sampled_from(SECONDS_OK + [-1, 601, 1e12]), st.floats()))
        return self.draw(st.one_of(st.sampled_from([x for x in SECONDS_OK if low <= x <= high]),
                                   st.floats(low, high)))

    def whole(self, high: int) -> int:
        if self.wild:
            return self.draw(st.one_of(st.sampled_from([0, -3, high + 1]), st.integers(-10**12, 10**12)))
        return self.draw(st.one_of(st.sampled_from([x for x in WHOLE_OK if x <= high]), st.integers(1, high)))

    def choice(self, valid: list, wrong: str):
        return self.draw(st.sampled_from(valid + ([wrong] if self.wild else [])))


def dose(d: Draw) -> dict:
    out: dict = {"sets": d.whole(20)}
    if d.draw(st.booleans()):
        out["reps"] = d.whole(100)
        if d.draw(st.booleans()):
            out["tempo"] = [{"seconds": d.seconds(0.5, 30), "cue": d.draw(st.one_of(st.none(), st.just(d.text()[:40])))}
                            for _ in range(d.draw(st.integers(1, 3)))]
    else:
        out["hold_s"] = d.seconds(3, 600)
    for key in ("setup_s", "switch_s", "rest_between_sets_s", "rest_after_s"):
        if d.draw(st.booleans()):
            out[key] = d.seconds(0, 600 if key.startswith("rest") else 60)
    if d.draw(st.booleans()):
        out["sides"] = d.choice(["none", "each", "alternating"], "both")
    return out


@st.composite
def routine_document(draw) -> dict:
    d = Draw(draw, wild=draw(st.booleans()))
    exercises = []
    for k in range(draw(st.integers(0 if d.wild else 1, 4))):
        ex = {"name": f"Move {k} {d.text()[:30]}", "steps": [d.text() for _ in range(draw(st.integers(1, 3)))],
              "dose": dose(d)}
        for key in ("purpose", "prerequisites", "safety", "reminder"):
            if draw(st.booleans()):
                ex[key] = d.text()
        if draw(st.booleans()):
            ex["role"] = d.choice(["warm-up", "main", "cool-down"], "cooldown")
        levels = draw(st.lists(st.sampled_from(["easier", "harder"]), unique=True))
        if levels:
            ex["variants"] = {level: {"text": d.text(), "dose": {"sets": d.whole(20)}} for level in levels}
        exercises.append(ex)
    doc = {"name": "fuzz", "title": d.text()[:100], "description": d.text(), "exercises": exercises}
    for key in ("background", "advice"):
        if draw(st.booleans()):
            doc[key] = [d.text() for _ in range(draw(st.integers(0, 2)))]
    return doc


@st.composite
def plan_settings(draw) -> dict:
    d = Draw(draw, wild=draw(st.integers(0, 3)) == 0)
    return {
        "level": d.choice(["easier", "standard", "harder"], "medium"),
        "rest_scale": d.seconds(0, 5),
        "pace": d.seconds(0.5, 3),
        "verbosity": d.choice(["full", "brief"], "loud"),
        "countdown_s": d.whole(10) - 1 if not d.wild else d.whole(10),
        "start_at": None if draw(st.integers(0, 2)) else draw(st.one_of(
            st.sampled_from(["1", "2", "0", "99", "move-1", "Move 0"]), st.just(d.text()))),
        "voice": VoiceSpec(engine="estimate", rate_wpm=draw(st.sampled_from([80, 165, 450]))),
    }


def meter_for(kind: str, rate_wpm: int):
    if kind == "estimate":
        return lambda text: estimate_speech_s(text, rate_wpm)
    if kind == "instant":
        return lambda text: 0.0  # an engine that returns nothing at all
    # Irregular lengths, some far longer than the text: a slow or odd voice.
    return lambda text: (zlib.crc32(text.encode("utf-8", "surrogatepass")) % 5000) / 1000 + len(text) * 0.2


def plan_or_coach_error(doc: dict, raw_settings: dict, meter_kind: str) -> Timeline | None:
    stage = "routine refused"
    try:
        routine = validate_document(doc, "fuzz.yaml")
        stage = "settings refused"
        s = PlanSettings(**raw_settings)
        stage = "plan refused"
        timeline = plan(routine, s, meter_for(meter_kind, s.voice.rate_wpm))
    except CoachError:
        event(stage)  # --hypothesis-show-statistics shows how far the examples get
        return None
    event("planned")
    return timeline


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(routine_document(), plan_settings(), st.sampled_from(["estimate", "instant", "odd"]))
def test_any_routine_and_settings_plan_or_raise_a_coach_error(doc, raw_settings, meter_kind):
    timeline = plan_or_coach_error(doc, raw_settings, meter_kind)
    if timeline is not None:
        assert timeline.cues and math.isfinite(timeline.duration_s) and timeline.duration_s > 0
        assert all(0 <= c.start_s <= c.end_s <= timeline.duration_s for c in timeline.cues)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_valid_routines_plan_at_every_setting_in_range(data):
    """Only in-range values: here a CoachError would be a planner bug too."""
    doc = {"name": "fuzz", "title": "Fuzz", "description": "A fuzzed routine.", "exercises": [
        {"name": f"Move {k}", "steps": ["Lie on your back.", "Breathe."],
         "dose": data.draw(st.one_of(
             st.fixed_dictionaries({"sets": st.integers(1, 20), "reps": st.integers(1, 100),
                                    "sides": st.sampled_from(["none", "each", "alternating"]),
                                    "rest_between_sets_s": st.sampled_from([0, 5, 600])}),
             st.fixed_dictionaries({"sets": st.integers(1, 5), "hold_s": st.floats(3, 600),
                                    "sides": st.sampled_from(["none", "each", "alternating"]),
                                    "rest_after_s": st.floats(0, 600)})))}
        for k in range(data.draw(st.integers(1, 3)))]}
    try:
        routine = validate_document(doc, "fuzz.yaml")
    except CoachError:
        assume(False)  # e.g. longer than a day: a valid refusal, not the point of this test
    s = PlanSettings(level=data.draw(st.sampled_from(["easier", "standard", "harder"])),
                     rest_scale=data.draw(st.floats(0, 5)), pace=data.draw(st.floats(0.5, 3)),
                     verbosity=data.draw(st.sampled_from(["full", "brief"])),
                     countdown_s=data.draw(st.integers(0, 10)),
                     start_at=data.draw(st.one_of(st.none(), st.sampled_from(["1", "move-0"]))),
                     voice=VoiceSpec(engine="estimate", rate_wpm=data.draw(st.integers(80, 450))))
    timeline = plan(routine, s, meter_for(data.draw(st.sampled_from(["estimate", "instant", "odd"])), s.voice.rate_wpm))
    assert timeline.duration_s > 0
