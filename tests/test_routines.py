"""The routine format, the loader's located errors and the built-in routine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coach.errors import InputFileError, RoutineInvalid, UsageError
from coach.importer import article_to_routine, parse_article
from coach.loader import builtin_routine, load_file, load_routine
from coach.model import LEVELS, Routine

MINIMAL = """\
name: legs
title: Legs
description: A short leg session.
exercises:
  - name: Squat
    steps: [Stand tall.]
    dose: {reps: 10}
"""


def write(tmp_path: Path, text: str | bytes, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputFileError) as info:
        load_file(path)
    exc = info.value
    return exc.problems if isinstance(exc, RoutineInvalid) else [exc.message]


def test_a_minimal_routine_loads_with_sensible_defaults(tmp_path):
    routine = load_file(write(tmp_path, MINIMAL))
    ex = routine.exercises[0]
    assert (ex.key, ex.role, ex.dose.sets, ex.dose.sides) == ("squat", "main", 1, "none")
    assert ex.dose.rep_s == 3.0


def test_json_routines_are_accepted_and_located(tmp_path):
    data = {"name": "legs", "title": "Legs", "description": "d",
            "exercises": [{"name": "Squat", "steps": ["Stand."], "dose": {"reps": "ten"}}]}
    text = json.dumps(data, indent=2)
    assert load_file(write(tmp_path, json.dumps({**data, "exercises": [
        {"name": "Squat", "steps": ["Stand."], "dose": {"reps": 10}}]}), "r.json")).name == "legs"
    [problem] = problems_of(write(tmp_path, text, "bad.json"))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"ten"' in ln)
    assert re.match(rf".*bad\.json:{line}:\d+: exercises\[0\]\.dose\.reps: expected a whole number, got 'ten'$", problem)


def test_every_problem_of_a_file_is_reported_at_once_with_line_and_column(tmp_path):
    path = write(tmp_path, """\
name: legs
title: Legs
descripton: typo
exercises:
  - name: Squat
    steps: [Stand.]
    dose:
      sets: three
      reps: 0
      rest_after_s: -5
""")
    problems = problems_of(path)
    assert f"{path}:1:1: description: required field is missing" in problems
    assert f"{path}:3:1: (top level): unknown key 'descripton'; did you mean 'description'?" in problems
    assert f"{path}:8:13: exercises[0].dose.sets: expected a whole number, got 'three'" in problems
    assert f"{path}:9:13: exercises[0].dose.reps: expected a number >= 1, got 0" in problems
    assert f"{path}:10:21: exercises[0].dose.rest_after_s: expected a number >= 0, got -5" in problems
    assert len(problems) == 5


def test_unknown_keys_deep_inside_suggest_the_closest_field(tmp_path):
    text = MINIMAL.replace("dose: {reps: 10}", "dose: {reps: 10, rest_aftr_s: 3}")
    [problem] = problems_of(write(tmp_path, text))
    assert "exercises[0].dose: unknown key 'rest_aftr_s'; did you mean 'rest_after_s'" in problem
    assert re.match(r".*r\.yaml:7:\d+:", problem)


def test_reps_and_hold_cannot_be_given_together_and_tempo_needs_reps(tmp_path):
    both = problems_of(write(tmp_path, MINIMAL.replace("{reps: 10}", "{reps: 10, hold_s: 30}")))
    assert "give either reps or hold_s" in both[0]
    tempo = problems_of(write(tmp_path, MINIMAL.replace("{reps: 10}", "{hold_s: 30, tempo: [{seconds: 2}]}")))
    assert "tempo goes with reps" in tempo[0]


def test_a_session_longer_than_a_day_is_refused(tmp_path):
    text = MINIMAL.replace("dose: {reps: 10}", "dose: {sets: 20, hold_s: 600, rest_between_sets_s: 600}")
    exercises = "\n".join(["exercises:"] + [
        f"  - {{name: Hold {i}, steps: [Hold.], dose: {{sets: 20, hold_s: 600, rest_between_sets_s: 600}}}}"
        for i in range(8)])
    text = text.split("exercises:")[0] + exercises + "\n"
    [problem] = problems_of(write(tmp_path, text))
    assert "a session is at most 24 h" in problem


def test_duplicate_exercise_ids_are_refused(tmp_path):
    text = MINIMAL + "  - name: squat\n    steps: [Again.]\n    dose: {reps: 5}\n"
    [problem] = problems_of(write(tmp_path, text))
    assert "duplicate exercise id 'squat'" in problem


def test_a_variant_dose_that_makes_no_sense_is_refused_at_load_time(tmp_path):
    text = MINIMAL.replace(
        "dose: {reps: 10}",
        "dose: {reps: 10}\n    variants:\n      harder: {text: Go slower., dose: {tempo: [{seconds: 1}], hold_s: 30}}",
    )
    [problem] = problems_of(write(tmp_path, text))
    assert "variants.harder.dose: makes an invalid dose" in problem


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: [unclosed\n", r"r\.yaml:\d+:\d+: invalid YAML/JSON"),
        ("a: 1\na: 2\n", r"r\.yaml:2:1: invalid YAML/JSON: found duplicate key"),
        ("", r"r\.yaml: file is empty"),
        ("   \n\n", r"r\.yaml: file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"r\.yaml:3: this is binary data"),
        (b"name: caf\xe9\n", r"r\.yaml:1:10: not valid UTF-8"),
        ("- just\n- a list\n", r"r\.yaml:1:1: a routine file must be a mapping"),
        ("42\n", r"r\.yaml:1:1: a routine file must be a mapping"),
        ("---\na: 1\n---\nb: 2\n", r"r\.yaml: expected one document, found 2"),
        ("x: " + "[" * 200 + "]" * 200 + "\n", r"r\.yaml"),
        ("name: legs\ntitle: Legs\ndescription: 'bell \x07 here'\nexercises: []\n", r"r\.yaml:\d+:\d+:"),
    ],
    ids=["bad-yaml", "duplicate-key", "empty", "blank", "binary", "latin-1", "list", "scalar", "two-docs",
         "deep-nesting", "control-character"],
)
def test_broken_files_give_a_located_message(tmp_path, content, expected):
    problems = problems_of(write(tmp_path, content))
    assert re.search(expected, problems[0]), problems


def test_a_ten_megabyte_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# padding\n" * 1_000_000)
    [problem] = problems_of(path)
    assert "file is too large (10.0 MB)" in problem


def test_a_missing_file_and_a_folder_are_clear_errors(tmp_path):
    assert "no such file" in problems_of(tmp_path / "nope.yaml")[0]
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    assert "is a folder" in problems_of(folder)[0]


def test_an_unknown_routine_name_suggests_a_close_one():
    with pytest.raises(UsageError) as info:
        load_routine("lower-bak")
    assert "did you mean 'lower-back'" in (info.value.hint or "")


def test_user_routines_are_found_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path))
    (tmp_path / "routines").mkdir()
    write(tmp_path / "routines", MINIMAL, "legs.yaml")
    assert load_routine("legs").title == "Legs"


# --- the built-in routine ------------------------------------------------------------------


def test_the_built_in_routine_has_the_four_exercises_of_the_article_in_order():
    routine = builtin_routine("lower-back")
    assert [(e.key, e.role, e.dose.sides) for e in routine.exercises] == [
        ("t-spine-rotation", "warm-up", "each"),
        ("bird-dog", "main", "alternating"),
        ("good-morning", "main", "none"),
        ("childs-pose", "cool-down", "none"),
    ]
    good_morning = routine.exercise("good-morning")
    assert "mastered the Deadlift hip-hinge" in good_morning.prerequisites
    assert "lower back injury" in good_morning.prerequisites
    assert routine.exercise("childs-pose").dose.hold_s is not None
    assert all(ex.dose_note for ex in routine.exercises), "every dose says why it was chosen"


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_of_the_built_in_routine_is_a_plausible_length(level):
    minutes = builtin_routine("lower-back").estimated_s(level) / 60
    assert 8 < minutes < 25


def test_every_step_and_tip_of_the_seed_article_is_in_the_built_in_routine(seed_article):
    routine = builtin_routine("lower-back")
    article = parse_article(seed_article.read_text(encoding="utf-8"))
    assert len(article.exercises) == 4
    for drafted, ex in zip(article.exercises, routine.exercises):
        assert list(ex.step_texts) == drafted.steps
        assert ex.safety == drafted.safety
        assert (ex.variants.easier.text if ex.variants.easier else None) == drafted.easier
        assert (ex.variants.harder.text if ex.variants.harder else None) == drafted.harder
    numbered = re.findall(r"^\s*\d+\.\s+(.*\S)", seed_article.read_text(encoding="utf-8"), re.MULTILINE)
    all_steps = [s for ex in routine.exercises for s in ex.step_texts]
    assert numbered == all_steps
    tips = re.findall(r"^(?:Lift Safely|Make It Easier|Make It Harder): (.*\S)", seed_article.read_text(encoding="utf-8"),
                      re.MULTILINE)
    spoken = [t for ex in routine.exercises for t in
              (ex.safety, ex.variants.easier and ex.variants.easier.text, ex.variants.harder and ex.variants.harder.text)
              if t]
    assert sorted(tips) == sorted(spoken)
    advice = " ".join(routine.advice)
    assert "keep your core engaged while executing the movements" in advice
    assert "in front of a mirror, or record yourself, to double-check your form" in advice


# --- import ------------------------------------------------------------------------------------


def test_importing_the_seed_article_gives_a_valid_routine_equal_to_the_built_in_one(seed_article):
    data = article_to_routine(seed_article.read_text(encoding="utf-8"))
    imported = Routine.model_validate(data)
    builtin = builtin_routine("lower-back")
    assert len(imported.exercises) == 4
    for got, want in zip(imported.exercises, builtin.exercises):
        assert got.step_texts == want.step_texts
        assert got.safety == want.safety
        assert (got.variants.easier.text if got.variants.easier else None) == (
            want.variants.easier.text if want.variants.easier else None)
    names = [e.name for e in imported.exercises]
    assert names[1] == "Bird-Dog", "the name the text gives is inferred"
    assert all("NAME ME" in n for i, n in enumerate(names) if i != 1), "others are marked placeholders"
    assert imported.exercises[2].prerequisites.startswith("It is recommended for people who have already mastered")
    assert [e.role for e in imported.exercises] == ["warm-up", "main", "main", "cool-down"]
    assert len(imported.advice) == 2


def test_an_article_without_numbered_steps_is_a_clear_error():
    with pytest.raises(InputFileError, match="no exercises found"):
        article_to_routine("Title\n\nJust some prose about backs.\n", "a.txt")
