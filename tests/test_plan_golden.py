"""Golden files pin the built-in routine's plan at each level (regenerate: scripts/update-golden)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.session import plan_with_voice, voice_spec
from coach.cuescript import read_script, write_script
from coach.loader import load_routine
from coach.planner import PlanSettings
from plan_checks import check_timeline

GOLDEN = Path(__file__).resolve().parent / "golden"
HOW = "the plan changed: run scripts/update-golden and review `git diff tests/golden`"


@pytest.fixture(scope="module")
def routine():
    return load_routine("lower-back")


def golden_plan(routine, level: str):
    spec = voice_spec(routine, engine="estimate")
    return plan_with_voice(routine, PlanSettings(level=level, voice=spec))


@pytest.mark.parametrize("level", ["easier", "standard", "harder"])
def test_the_built_in_plan_matches_its_golden_file(routine, level):
    expected = (GOLDEN / f"lower-back-{level}.json").read_text(encoding="utf-8")
    assert write_script(golden_plan(routine, level), "json") == expected, HOW


@pytest.mark.parametrize("level", ["easier", "standard", "harder"])
def test_the_golden_plans_keep_every_timing_rule(routine, level):
    timeline = read_script(GOLDEN / f"lower-back-{level}.json")
    settings = PlanSettings(level=level, voice=timeline.voice)
    check_timeline(timeline, routine, settings)


@pytest.mark.parametrize("level, low_min, high_min", [("easier", 14, 24), ("standard", 16, 26), ("harder", 19, 30)])
def test_the_golden_plans_have_plausible_lengths(level, low_min, high_min):
    timeline = read_script(GOLDEN / f"lower-back-{level}.json")
    assert low_min * 60 < timeline.duration_s < high_min * 60


@pytest.mark.parametrize("fmt", ["vtt", "txt", "table"])
def test_the_standard_plan_prints_as_its_golden_scripts(routine, fmt):
    expected = (GOLDEN / f"lower-back-standard.{fmt}").read_text(encoding="utf-8")
    assert write_script(golden_plan(routine, "standard"), fmt) == expected, HOW
