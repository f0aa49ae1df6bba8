"""The built-in routine planned in the real voices (not the estimate): nothing dropped at any level.

Real speech is longer or shorter than the words-per-minute estimate, so a rep's movement
cue and its count can crowd each other in one voice and not in another.
"""

from __future__ import annotations

import pytest

from coach.loader import load_routine
from coach.planner import PlanSettings
from coach.session import plan_with_voice
from coach.timeline import VoiceSpec

from plan_checks import check_timeline

pytestmark = pytest.mark.slow


def engines() -> list[str]:
    try:
        import piper  # noqa: F401
    except ImportError:
        return ["pyttsx3"]
    return ["pyttsx3", "piper"]


@pytest.fixture(scope="module", autouse=True)
def clip_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COACH_CACHE_DIR", str(tmp_path_factory.mktemp("clips")))
    yield
    mp.undo()


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("level", ["easier", "standard", "harder"])
def test_no_cue_of_the_built_in_routine_is_dropped_in_a_real_voice(engine, level):
    routine = load_routine("lower-back")
    settings = PlanSettings(level=level, voice=VoiceSpec(engine=engine, voice="en-us"))
    timeline = plan_with_voice(routine, settings)
    assert timeline.dropped == (), [(d["exercise"], d["text"]) for d in timeline.dropped]
    check_timeline(timeline, routine, settings)
