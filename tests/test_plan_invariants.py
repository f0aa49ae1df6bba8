"""Property tests: random routines, settings and voices always give a timeline that keeps the rules."""

from __future__ import annotations

import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coach.model import Routine
from coach.planner import PlanSettings, estimate_speech_s, plan
from coach.timeline import VoiceSpec
from plan_checks import check_timeline

WORDS = "reach lift open hold press and back squeeze up down breathe slowly your hips knees arms".split()
SENTENCES = [
    "Lie on your back.",
    "Bend your knees so that your feet are flat on the floor, hip-width apart, and rest your arms by your sides.",
    "Keep your core engaged while you lift your hips toward the ceiling until your body forms a straight line "
    "from your shoulders to your knees; squeeze your glutes at the top and breathe out slowly.",
    "Return slowly.",
]

cue_word = st.one_of(st.none(), st.sampled_from(WORDS), st.just("squeeze your glutes and hold it there"))
tempo = st.lists(st.fixed_dictionaries({"cue": cue_word, "seconds": st.sampled_from([0.5, 1, 1.5, 2, 3, 4.5])}),
                 min_size=1, max_size=4)


roomy_tempo = st.lists(st.fixed_dictionaries({"cue": cue_word, "seconds": st.sampled_from([4.5, 6])}),
                      min_size=1, max_size=3)


@st.composite
def doses(draw, hold: bool | None = None, roomy: bool = False):
    hold = draw(st.booleans()) if hold is None else hold
    dose = {
        "sets": draw(st.integers(1, 3)),
        "sides": draw(st.sampled_from(["none", "each", "alternating"])),
        "side_words": draw(st.sampled_from(["side", "lying", "arm", "leg", "cross"])),
        "setup_s": draw(st.sampled_from([0, 1, 5, 12])),
        "switch_s": draw(st.sampled_from([0, 2, 5, 10])),
        "rest_between_sets_s": draw(st.sampled_from([0, 30, 45] if roomy else [0, 1, 3, 8, 30])),
        "rest_after_s": draw(st.sampled_from([0, 10, 40] if roomy else [0, 2, 10, 40])),
    }
    if hold:
        dose["hold_s"] = draw(st.sampled_from([25, 45, 61.5] if roomy else [3, 4, 9, 10, 20, 25, 45, 61.5]))
    else:
        dose["reps"] = draw(st.integers(1, 6))
        if roomy or draw(st.booleans()):
            dose["tempo"] = draw(roomy_tempo if roomy else tempo)
    return dose


step = st.one_of(st.sampled_from(SENTENCES), st.builds(lambda at, text: {at: text}, st.sampled_from(["switch", "exit"]),
                                                       st.sampled_from(SENTENCES)))


@st.composite
def exercises(draw, index: int, roomy: bool = False):
    hold = draw(st.booleans())
    ex = {
        "name": f"Move {index} {draw(st.sampled_from(WORDS))}",
        "steps": [draw(st.sampled_from(SENTENCES)), *draw(st.lists(step, max_size=3))],
        "dose": draw(doses(hold, roomy)),
    }
    if draw(st.booleans()):
        ex["position"] = draw(st.sampled_from(["on your back", "standing tall, feet apart"]))
    for key in ("purpose", "prerequisites", "safety", "reminder"):
        if draw(st.booleans()):
            ex[key] = draw(st.sampled_from(SENTENCES))
    variants = {}
    for level in ("easier", "harder"):
        if draw(st.booleans()):
            change = {}
            if draw(st.booleans()):
                change["sets"] = draw(st.integers(1, 3))
            if not hold and draw(st.booleans()):
                change["reps"] = draw(st.integers(1, 6))
            variants[level] = {"text": draw(st.sampled_from(SENTENCES)), **({"dose": change} if change else {})}
            words = draw(st.sampled_from(["none", "steps", "finisher", "replace"]))
            if words == "steps":
                variants[level].update(name=f"Move {index} {level}", replace_steps={1: draw(st.sampled_from(SENTENCES))},
                                       equipment=[], reminder="Back flat.")
            elif words in ("finisher", "replace"):
                added = {"name": f"Added {index} {level}", "steps": [draw(st.sampled_from(SENTENCES))],
                         "dose": draw(doses(roomy=roomy))}
                variants[level]["finisher" if words == "finisher" else "replace_with"] = added
    if variants:
        ex["variants"] = variants
    return ex


@st.composite
def routines(draw, roomy: bool = False):
    n = draw(st.integers(1, 4))
    data = {
        "name": "random",
        "title": "Random Routine",
        "description": draw(st.sampled_from(SENTENCES)),
        "background": draw(st.lists(st.sampled_from(SENTENCES), max_size=2)),
        "advice": draw(st.lists(st.sampled_from(SENTENCES), max_size=2)),
        "equipment": draw(st.lists(st.sampled_from(["a mat", "a chair", "a towel"]), max_size=2, unique=True)),
        "exercises": [draw(exercises(i, roomy)) for i in range(n)],
    }
    return Routine.model_validate(data)


def odd_meter(scale: float):
    """A voice whose lengths depend on the text in an irregular way (some short words take over a second)."""

    def meter(text: str) -> float:
        jitter = (zlib.crc32(text.encode()) % 1000) / 1000
        return (len(text) * 0.06 + 0.1 + jitter) * scale

    return meter


@st.composite
def plan_settings(draw, routine: Routine):
    start_at = None
    if draw(st.booleans()) and len(routine.exercises) > 1:
        start_at = str(draw(st.integers(1, len(routine.exercises))))
    return PlanSettings(
        level=draw(st.sampled_from(["easier", "standard", "harder"])),
        rest_scale=draw(st.sampled_from([0.0, 0.3, 1.0, 2.5])),
        pace=draw(st.sampled_from([0.5, 0.8, 1.0, 1.7, 3.0])),
        verbosity=draw(st.sampled_from(["full", "brief"])),
        countdown_s=draw(st.sampled_from([0, 1, 3, 5])),
        start_at=start_at,
        voice=VoiceSpec(engine="estimate", rate_wpm=draw(st.sampled_from([80, 165, 450]))),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_routines_keep_every_timing_rule(data):
    routine = data.draw(routines())
    s = data.draw(plan_settings(routine))
    use_estimate = data.draw(st.booleans())
    meter = (lambda text: estimate_speech_s(text, s.voice.rate_wpm)) if use_estimate else odd_meter(
        data.draw(st.sampled_from([0.3, 1.0, 2.5])))
    timeline = plan(routine, s, meter)
    check_timeline(timeline, routine, s)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_planning_is_deterministic(data):
    routine = data.draw(routines())
    s = data.draw(plan_settings(routine))
    meter = odd_meter(1.0)
    assert plan(routine, s, meter) == plan(routine, s, meter)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_speech_cue_lasts_exactly_its_measured_length(data):
    routine = data.draw(routines())
    s = data.draw(plan_settings(routine))
    meter = odd_meter(data.draw(st.sampled_from([0.5, 1.5])))
    for cue in plan(routine, s, meter).speech:
        assert round((cue.end_s - cue.start_s) * 1000) == round(meter(cue.text) * 1000), cue


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_with_room_in_the_dose_nothing_is_dropped_and_every_count_is_spoken(data):
    """Issue 12: counts and movement cues complete for every rep of every set when the tempo leaves room."""
    routine = data.draw(routines(roomy=True))
    s = data.draw(plan_settings(routine))
    s = PlanSettings(**{**s.__dict__, "pace": data.draw(st.sampled_from([1.0, 1.7])),
                        "rest_scale": data.draw(st.sampled_from([1.0, 2.5])),
                        "voice": VoiceSpec(engine="estimate", rate_wpm=data.draw(st.sampled_from([165, 200])))})
    timeline = plan(routine, s, lambda text: estimate_speech_s(text, s.voice.rate_wpm))
    check_timeline(timeline, routine, s)  # with nothing dropped, it checks that every count is spoken, 1..N
    assert timeline.dropped == (), timeline.dropped
