"""A routine of many exercises made from the built-in one, for the planner's speed test and benchmark."""

from __future__ import annotations

from coach.loader import load_routine
from coach.model import Routine


def big_routine(n: int = 500) -> Routine:
    """``n`` exercises cycling through lower-back's four, with small doses so the session stays under 24 h."""
    base = load_routine("lower-back").model_dump(exclude_none=True)
    exercises = []
    for i in range(n):
        ex = dict(base["exercises"][i % len(base["exercises"])])
        ex["id"] = f"{ex['id']}-{i + 1}"
        ex["name"] = f"{ex['name']} {i + 1}"
        dose = dict(ex["dose"])
        dose.update(sets=1, rest_after_s=10, setup_s=5)
        if "reps" in dose:
            dose["reps"] = 4
        else:
            dose["hold_s"] = 20
        ex["dose"] = dose
        ex.pop("variants", None)
        exercises.append(ex)
    return Routine.model_validate({**base, "name": "big", "title": "Big", "exercises": exercises})
