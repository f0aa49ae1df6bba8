"""What a planned session says and when: the built-in routine and small hand-made ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coach.errors import UsageError
from coach.loader import load_routine
from coach.model import Routine
from coach.planner import BRIEF_NOTICE, PlanSettings, estimate_speech_s, find_exercise, plan, room_warnings, spoken_duration
from coach.timeline import Timeline, VoiceSpec
from plan_checks import check_timeline, ms

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "training-your-lower-back.txt"
VOICE = VoiceSpec(engine="estimate", voice="en-us", rate_wpm=165)


def meter(text: str) -> float:
    return estimate_speech_s(text, 165)


@pytest.fixture(scope="module")
def lower_back() -> Routine:
    return load_routine("lower-back")


def planned(routine: Routine, **settings) -> Timeline:
    s = PlanSettings(voice=VOICE, **settings)
    timeline = plan(routine, s, meter)
    check_timeline(timeline, routine, s)
    return timeline


def spoken(t: Timeline) -> str:
    return "\n".join(c.text for c in t.speech)


def texts(t: Timeline, **where) -> list:
    return [c for c in t.cues if all(getattr(c, k) == v for k, v in where.items())]


def small(**dose) -> Routine:
    ex = {"name": "Bridge", "steps": ["Lie on your back."], "dose": dose}
    return Routine.model_validate({"name": "small", "title": "Small", "description": "A test.", "exercises": [ex]})


def start_sounds(t: Timeline, exercise: str | None = None) -> list:
    return [c for c in t.cues if c.sound == "start" and (exercise is None or c.exercise == exercise)]


def norm(text: str) -> str:
    return " ".join(text.split())


def test_the_standard_plan_speaks_every_instruction_of_the_routine(lower_back):
    said = norm(spoken(planned(lower_back)))
    parts = [lower_back.description, *lower_back.background, *lower_back.advice]
    for ex in lower_back.exercises:
        parts += [ex.name, *ex.step_texts]
        parts += [p for p in (ex.purpose, ex.prerequisites, ex.safety) if p]
        parts += [v.text for v in (ex.variants.easier, ex.variants.harder) if v]
    for part in parts:
        assert norm(part) in said, part


def test_every_numbered_step_and_tip_of_the_seed_article_is_spoken_at_its_level(lower_back):
    if not SEED.is_file():
        pytest.skip("the seed article is not beside this checkout")
    article = SEED.read_text(encoding="utf-8")
    steps = re.findall(r"^\s+\d+\.\s+(.+)$", article, flags=re.M)
    safety = re.findall(r"^Lift Safely: (.+)$", article, flags=re.M)
    easier = re.findall(r"^Make It Easier: (.+)$", article, flags=re.M)
    harder = re.findall(r"^Make It Harder: (.+)$", article, flags=re.M)
    assert (len(steps), len(safety), len(easier), len(harder)) == (18, 2, 2, 2)
    said = {level: norm(spoken(planned(lower_back, level=level))) for level in ("easier", "standard", "harder")}
    for text in steps + safety:
        assert norm(text) in said["standard"], text
    for text in safety:
        assert all(norm(text) in said[level] for level in said), text
    for text in easier:
        assert f"The easier version: {norm(text)}" in said["easier"], text
    for text in harder:
        assert f"The harder version: {norm(text)}" in said["harder"], text


def test_the_intro_says_what_the_session_is_for_how_long_it_takes_and_what_to_fetch(lower_back):
    t = planned(lower_back)
    intro = [c.text for c in t.cues if c.phase == "intro"]
    assert intro[0] == "Welcome to Training Your Lower Back."
    assert intro[1] == lower_back.description
    minutes = round(t.duration_s / 60)
    assert f"This session takes about {minutes} minutes." in intro
    assert "You will need an exercise mat and a light dumbbell. Get them ready now." in intro
    advice = [c.text for c in t.cues if c.phase == "advice"]
    assert advice == ["Before you start.", *lower_back.advice]
    assert t.chapters[0].title == "Introduction" and t.chapters[-1].title == "Finish"


def test_the_outro_gives_the_total_time_and_a_cool_down_reminder(lower_back):
    t = planned(lower_back)
    outro = [c for c in t.cues if c.phase == "outro"]
    assert outro[0].sound == "finish"
    took = outro[2].text
    assert took == f"The session took {spoken_duration(t.chapters[-1].start_s)}."
    assert re.fullmatch(r"The session took \d+ minutes( and \d+ seconds?)?\.", took)
    assert "cool down" in outro[-1].text
    assert outro[-1].end_s == t.duration_s


def test_each_setup_step_is_followed_by_silence_that_grows_with_the_step(lower_back):
    t = planned(lower_back)
    bird = lower_back.exercise("bird-dog")
    gaps = {}
    for step in bird.steps:
        cue = next(c for c in t.speech if c.text == step)
        following = next(c for c in t.cues if c.start_s > cue.start_s)
        gaps[step] = following.start_s - cue.end_s
    assert all(gap >= 3.0 for gap in gaps.values())
    longest = max(bird.steps, key=len)
    shortest = min(bird.steps, key=len)
    assert gaps[longest] > gaps[shortest] + 5


def test_full_steps_come_on_the_first_set_and_a_reminder_on_later_sets(lower_back):
    t = planned(lower_back)
    bird = lower_back.exercise("bird-dog")
    for step in bird.steps:
        assert sum(c.text == step for c in t.speech) == 1
    reminder = [c for c in t.speech if c.text == f"Remember: {bird.reminder}"]
    assert len(reminder) == 1 and reminder[0].set == 2
    second = start_sounds(t, "bird-dog")[1]
    first_end = start_sounds(t, "bird-dog")[0].start_s + 60
    assert first_end <= reminder[0].start_s < second.start_s


def test_reps_follow_the_tempo_with_movement_cues_counts_and_a_last_one(lower_back):
    t = planned(lower_back)
    start = start_sounds(t, "good-morning")[1]  # the second set: no safety tip in it
    ws = ms(start.start_s)
    work = [c for c in t.cues if c.exercise == "good-morning" and c.set == 2 and c.phase == "work" and c.kind == "speech"]
    for rep in range(8):
        rep_start = ws + rep * 6000
        cues = {c.text: ms(c.start_s) for c in work if c.rep == rep + 1}
        hinge = "Hinge, last one." if rep == 7 else "Hinge."  # the last rep says so, on its first movement
        assert rep_start <= cues[hinge] <= rep_start + 400  # after the start sound on the first rep
        assert cues["Stretch."] == rep_start + 3000
        assert cues["Squeeze to stand up."] == rep_start + 4000
    counts = [c for c in work if c.text in ("One.", "Two.", "Three.", "Four.", "Five.", "Six.", "Seven.", "Eight.")]
    assert [c.rep for c in counts] == [1, 2, 3, 4, 5, 6, 7, 8]
    for c in counts:
        assert ms(c.end_s) <= ws + c.rep * 6000
        assert ms(c.start_s) >= ws + c.rep * 6000 - 2000  # in the last movement of the rep
    last = [c for c in work if "last one" in c.text.lower()]
    assert len(last) == 1 and last[0].rep == 8 and last[0].text == "Hinge, last one."


def test_alternating_reps_name_the_arm_and_the_leg_of_each_rep(lower_back):
    t = planned(lower_back)
    sides = [c.text for c in t.speech if c.exercise == "bird-dog" and c.set == 2 and c.rep is not None
             and "arm" in c.text]
    assert sides[1:] == ["Left arm, right leg, reach.", *["Right arm, left leg, reach.",
                                                          "Left arm, right leg, reach."] * 4]
    assert sides[0] in ("Right arm, left leg, reach.", "Right arm, left leg.")  # right after the start sound
    assert "Start with your right arm and left leg, then alternate." in spoken(t)


def test_sides_are_announced_and_switched_with_time_to_reposition(lower_back):
    t = planned(lower_back)
    right, left = start_sounds(t, "t-spine-rotation")
    assert (right.side, left.side) == ("right", "left")
    assert "Lie on your right side." in spoken(t)
    switch = next(c for c in t.cues if c.sound == "switch")
    assert switch.start_s == pytest.approx(right.start_s + 48, abs=1e-6)  # 6 reps of 8 s
    said = next(c for c in t.speech if c.text == "Switch sides: lie on your left side.")
    ending = next(c for c in t.speech if c.text.startswith("Slowly return to the starting position"))
    assert switch.end_s <= ending.start_s < said.start_s, "the step that ends the first side comes at the switch"
    assert switch.end_s <= said.start_s < left.start_s
    assert left.start_s - switch.start_s >= 10  # the routine's switch_s
    assert [c.text for c in t.cues if c.phase == "countdown" and c.side == "left"] == ["Three!", "Two!", "One!"]


def test_holds_call_their_length_halfway_ten_seconds_left_and_count_down_to_the_release(lower_back):
    t = planned(lower_back)
    start = start_sounds(t, "childs-pose")[0]
    ws = start.start_s
    hold = {c.text: c.start_s - ws for c in t.speech if c.exercise == "childs-pose" and c.set == 1 and c.phase == "work"}
    assert 0 < hold["Hold for 45 seconds."] < 1.5
    assert 22.5 <= hold["Halfway."] <= 24
    assert 35 <= hold["Ten seconds left."] <= 36
    assert (hold["Three!"], hold["Two!"], hold["One!"]) == pytest.approx((42, 43, 44), abs=1e-6)
    release = next(c for c in t.speech if c.text.startswith("Release") and c.set == 1)
    assert ws + 45 <= release.start_s < ws + 46
    assert release.text == "Release, and come back onto your hands and knees."  # says where to


@pytest.mark.parametrize("level", ["easier", "standard", "harder"])
def test_the_safety_tip_is_said_before_the_first_countdown_never_over_the_reps(lower_back, level):
    t = planned(lower_back, level=level)
    assert t.dropped == ()
    for key in ("bird-dog", "good-morning"):
        ex = lower_back.exercise(key)
        safety = [c for c in t.speech if ex.safety in c.text]
        first = start_sounds(t, key)[0]
        assert len(safety) == 1 and safety[0].phase == "instruction" and safety[0].end_s < first.start_s - 3
        reminder = next(c for c in t.speech if c.text.startswith("Remember:") and c.exercise == key)
        assert reminder.set == 2  # the short form, in the first rest


def test_a_safety_tip_too_long_for_its_set_is_said_before_the_set_never_dropped():
    routine = Routine.model_validate({
        "name": "tiny", "title": "Tiny", "description": "A test.",
        "exercises": [{"name": "Plank", "steps": ["Get on your forearms."], "dose": {"hold_s": 5},
                       "safety": "Keep your back flat and stop at once if your lower back hurts in any way at all."}],
    })
    t = planned(routine)
    safety = next(c for c in t.speech if c.text.startswith("Safety tip:"))
    assert safety.phase == "instruction"
    assert safety.end_s < start_sounds(t)[0].start_s
    assert not any("Safety" in d["text"] for d in t.dropped)


def test_rests_say_their_length_what_comes_next_a_warning_and_the_countdown(lower_back):
    t = planned(lower_back)
    end_of_set_1 = start_sounds(t, "bird-dog")[0].start_s + 60
    rest = [c for c in t.cues if end_of_set_1 <= c.start_s < end_of_set_1 + 30]
    said = [c.text for c in rest if c.kind == "speech"]
    assert rest[0].sound == "rest" and rest[0].start_s == pytest.approx(end_of_set_1, abs=1e-6)
    assert said[0] == "Rest for 30 seconds."
    assert "Next up: Bird-Dog, set 2 of 2." in said
    assert said[-4:] == ["Get ready.", "Three!", "Two!", "One!"]
    assert start_sounds(t, "bird-dog")[1].start_s == pytest.approx(end_of_set_1 + 30, abs=1e-6)
    between = [c.text for c in t.speech if c.phase == "rest" and c.exercise == "bird-dog" and c.set == 2]
    assert "Next up: exercise 3 of 4, Dumbbell Good Morning, standing, feet hip-width apart, the dumbbell at your " \
           "chest." in between
    assert not any("of rest left" in c.text for c in t.speech), "a rest before instructions makes no time call"


def test_a_tight_tempo_loses_movement_cues_before_counts_and_validate_names_the_exercise():
    routine = small(reps=4, tempo=[{"cue": "up", "seconds": 0.5}, {"cue": "down", "seconds": 0.5}])
    t = planned(routine, level="standard")
    counts = [c.text for c in t.speech if c.rep is not None and c.text not in ("Up.", "Down.", "Up, last one.")]
    assert counts == ["One.", "Two.", "Three.", "Four."]
    assert t.dropped and all(d["text"] in ("Up.", "Down.") for d in t.dropped)
    warnings = room_warnings(routine, meter)
    assert warnings and all("Bridge" in w for w in warnings)
    assert room_warnings(small(reps=4, tempo=[{"cue": "up", "seconds": 3}, {"cue": "down", "seconds": 3}]),
                         meter) == []


def test_a_voice_too_slow_for_a_spoken_countdown_counts_with_ticks():
    routine = small(hold_s=20)
    s = PlanSettings(voice=VOICE)
    t = plan(routine, s, lambda text: 1.5 if len(text) < 8 else estimate_speech_s(text, 165))
    check_timeline(t, routine, s)
    ticks = [c for c in t.cues if c.sound == "tick"]
    assert len(ticks) == 3 and all(c.phase == "countdown" for c in ticks)
    assert t.dropped[0]["text"] == "spoken countdown numbers"


def test_levels_use_the_variant_text_and_dose(lower_back):
    easier, harder = planned(lower_back, level="easier"), planned(lower_back, level="harder")
    bird = lower_back.exercise("bird-dog")
    assert f"The easier version: {bird.variants.easier.text}" in spoken(easier)
    assert f"The harder version: {bird.variants.harder.text}" in spoken(harder)
    pull = next(c for c in harder.speech if c.text == f"The harder version: {bird.variants.harder.text}")
    assert pull.exercise == "pull-ups", "the pull-up text introduces the pull-ups, not the Bird-Dog reps"
    assert "To make it easier" not in spoken(easier) + spoken(harder)
    assert len(start_sounds(easier, "bird-dog")) == 2 and len(start_sounds(harder, "bird-dog")) == 3
    assert max(c.rep or 0 for c in easier.cues if c.exercise == "bird-dog") == 4
    assert max(c.rep or 0 for c in harder.cues if c.exercise == "good-morning") == 10
    standard = planned(lower_back)
    assert easier.duration_s < standard.duration_s < harder.duration_s


def test_the_easier_good_morning_never_mentions_a_dumbbell(lower_back):
    t = planned(lower_back, level="easier")
    said = [c.text for c in t.speech if c.exercise == "good-morning"]
    assert said and not any("dumbbell" in text.lower() for text in said)
    assert "Exercise 3 of 4: Good Morning." in said
    assert not any("dumbbell" in c.text.lower() for c in t.speech), "easier is done without any weight"


def test_the_harder_bird_dog_is_followed_by_an_optional_pull_up_finisher_with_its_own_dose(lower_back):
    t = planned(lower_back, level="harder")
    titles = [c.title for c in t.chapters]
    assert titles[2:4] == ["Bird-Dog", "Pull-Ups (optional)"]
    pulls = start_sounds(t, "pull-ups")
    assert len(pulls) == 2
    bird_said = [c.text for c in t.speech if c.exercise == "bird-dog" and not c.text.startswith("Next up")]
    assert not any("pull-up" in text.lower() for text in bird_said)
    skip = next(c for c in t.speech if c.exercise == "pull-ups" and "press n" in c.text)
    after = next(c for c in t.cues if c.start_s > skip.start_s)
    assert after.start_s - skip.end_s >= 5, "time to press the key"
    assert "You will need an exercise mat, a light dumbbell, a pull-up bar and a barbell." in spoken(t)


def test_the_child_pose_exit_step_is_said_at_the_release_of_the_last_hold(lower_back):
    t = planned(lower_back)
    exit_text = lower_back.exercise("childs-pose").step_texts[3]
    said = next(c for c in t.speech if c.text == exit_text)
    last_hold = start_sounds(t, "childs-pose")[-1]
    assert said.start_s >= last_hold.start_s + 45
    assert said.set == 2


def test_a_prerequisite_says_how_to_skip_hands_free_and_leaves_time_to_do_it(lower_back):
    t = planned(lower_back)
    warning = next(c for c in t.speech if c.text.startswith("A word of caution.") and c.exercise == "good-morning")
    assert warning.text.endswith("skip this exercise: press n, or the next button on your headphones.")
    after = next(c for c in t.cues if c.start_s > warning.start_s)
    assert after.start_s - warning.end_s >= 5
    chapter = next(ch for ch in t.chapters if ch.exercise == "good-morning")
    assert warning.start_s - chapter.start_s < 5, "said first, before the rest of the briefing"


def test_the_advice_has_a_stop_rule(lower_back):
    assert any("Stop at once if you feel sharp pain" in tip for tip in lower_back.advice)


def test_a_returning_listener_hears_in_one_sentence_that_this_is_the_brief_version(lower_back):
    brief = planned(lower_back, verbosity="brief", returning=True)
    assert BRIEF_NOTICE in spoken(brief)
    assert BRIEF_NOTICE not in spoken(planned(lower_back, verbosity="brief"))
    assert BRIEF_NOTICE not in spoken(planned(lower_back, returning=True))  # full: nothing to announce
    said = spoken(brief)
    for ex in lower_back.exercises:
        for text in (ex.safety, ex.prerequisites):
            if text:
                assert text in said
    assert all(tip in said for tip in lower_back.advice)


def test_brief_verbosity_leaves_out_background_and_purposes_and_uses_reminders(lower_back):
    brief = planned(lower_back, verbosity="brief")
    said = spoken(brief)
    assert lower_back.background[0] not in said
    bird = lower_back.exercise("bird-dog")
    assert bird.purpose not in said and bird.steps[0] not in said
    assert bird.reminder in said and bird.safety in said
    assert brief.duration_s < planned(lower_back).duration_s - 120


def test_starting_at_an_exercise_leaves_out_the_ones_before(lower_back):
    t = planned(lower_back, start_at="bird-dog")
    assert [c.title for c in t.chapters] == ["Introduction", "Bird-Dog", "Dumbbell Good Morning", "Child's Pose",
                                             "Finish"]
    assert not any(c.exercise == "t-spine-rotation" for c in t.cues)
    assert "Today we start at exercise 2 of 4: Bird-Dog." in spoken(t)
    assert planned(lower_back, start_at="2") == t == planned(lower_back, start_at="Bird-Dog")


def test_rest_scale_and_pace_stretch_rests_and_reps_exactly(lower_back):
    t = planned(lower_back, rest_scale=0.5, pace=1.5)
    first, second = start_sounds(t, "good-morning")
    assert second.start_s - first.start_s == pytest.approx(8 * 6 * 1.5 + 45 * 0.5, abs=1e-6)


@pytest.mark.parametrize("countdown", [0, 1, 5])
def test_the_countdown_length_is_a_setting(lower_back, countdown):
    t = planned(lower_back, countdown_s=countdown)
    words = [c.text for c in t.cues if c.phase == "countdown"][:countdown]
    assert words == ["Five!", "Four!", "Three!", "Two!", "One!"][5 - countdown:]
    assert sum(c.phase == "countdown" for c in t.cues) == countdown * len(start_sounds(t))


@pytest.mark.parametrize("bad", [
    {"level": "hardest"}, {"verbosity": "chatty"}, {"pace": 0.1}, {"rest_scale": -1}, {"countdown_s": 11},
])
def test_bad_settings_are_usage_errors(bad):
    with pytest.raises(UsageError):
        PlanSettings(**bad)


def test_an_exercise_is_found_by_id_name_or_number_with_suggestions(lower_back):
    assert find_exercise(lower_back, "good-morning") == find_exercise(lower_back, "dumbbell good morning") == 2
    assert find_exercise(lower_back, "4") == 3
    with pytest.raises(UsageError) as err:
        find_exercise(lower_back, "bird-dgo")
    assert "bird-dog" in (err.value.hint or "")


def test_the_meter_is_asked_once_per_distinct_text(lower_back):
    asked: list[str] = []

    def counting(text: str) -> float:
        asked.append(text)
        return meter(text)

    plan(lower_back, PlanSettings(voice=VOICE), counting)
    assert len(asked) == len(set(asked))


def test_a_routine_with_longer_sounds_gets_room_for_them(lower_back):
    s = PlanSettings(voice=VOICE)
    t = plan(lower_back, s, meter, sound_lengths_s={"start": 1.0, "rest": 2.0})
    check_timeline(t, lower_back, s)
    for start in start_sounds(t):
        assert start.end_s - start.start_s == pytest.approx(1.0)
        after = next(c for c in t.cues if c.start_s > start.start_s)
        assert after.start_s >= start.end_s


def test_next_after_a_skip_warning_skips_the_whole_exercise(lower_back):
    from coach.session_map import SessionMap

    t = planned(lower_back)
    smap = SessionMap(t)
    warning = next(c for c in t.speech if c.exercise == "good-morning" and "press n" in c.text)
    child = next(ch for ch in t.chapters if ch.exercise == "childs-pose")
    assert smap.next_start(warning.end_s + 1) == child.start_s
    bird = next(ch for ch in t.chapters if ch.exercise == "bird-dog")
    assert smap.next_start(bird.start_s + 1) == smap.steps[smap.step_index(bird.start_s) + 1].start_s, \
        "without a warning, next goes to the next step as before"
