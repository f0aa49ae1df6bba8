"""The CLI as a user meets it: help everywhere, one-line errors, exit codes, clean stdout."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coach.cli.app import app
from coach.errors import ExitStatus

REPO = Path(__file__).resolve().parent.parent


def command_names() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_core_commands_exist():
    assert {"routines", "show", "validate", "import", "schema"} <= set(command_names())


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help(run_coach, name):
    result = run_coach(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: coach {name}")
    assert len(result.stdout.splitlines()) > 3


@pytest.mark.parametrize("name", command_names())
def test_every_command_is_documented_in_the_readme(name):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"coach {name}\b", readme), f"README does not mention `coach {name}`"


def test_version_and_python_dash_m(run_coach):
    from coach import __version__

    result = run_coach("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"coach {__version__}")


def test_show_prints_all_four_exercises_with_every_step(run_coach):
    result = run_coach("show", "lower-back")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    from coach.loader import builtin_routine

    for ex in builtin_routine("lower-back").exercises:
        assert ex.name in out
        for step in ex.step_texts:
            assert " ".join(step.split()) in out


def test_show_at_another_level_uses_the_variant(run_coach):
    out = " ".join(run_coach("show", "--level", "harder").stdout.split())
    assert "At the harder level: If you really want to work your entire back" in out
    assert "3 sets of 6 reps per side" in out


def test_a_bad_level_is_a_usage_error(run_coach):
    result = run_coach("show", "--level", "extreme")
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr.strip() == "coach: error: --level: expected one of easier, standard, harder, got 'extreme'"


def test_an_unknown_routine_is_one_line_with_a_suggestion(run_coach):
    result = run_coach("show", "lower-bak")
    assert result.returncode == ExitStatus.USAGE
    assert len(result.stderr.strip().splitlines()) == 1
    assert "did you mean 'lower-back'?" in result.stderr


BROKEN = {
    "bad-yaml.yaml": b"name: legs\ntitle: [oops\n",
    "wrong-types.yaml": b"name: legs\ntitle: Legs\ndescription: d\nexercises:\n  - name: S\n    steps: [x]\n"
                        b"    dose: {sets: many, reps: 5}\n",
    "unknown-key.yaml": b"name: legs\ntitle: Legs\ndescription: d\nexcercises: []\n",
    "missing-steps.yaml": b"name: legs\ntitle: Legs\ndescription: d\nexercises:\n  - name: S\n    dose: {reps: 5}\n",
    "negative.yaml": b"name: legs\ntitle: Legs\ndescription: d\nexercises:\n  - name: S\n    steps: [x]\n"
                     b"    dose: {reps: 5, rest_after_s: -10}\n",
    "binary.yaml": bytes(range(256)) * 4,
    "empty.yaml": b"",
    "bad.json": b'{"name": "legs", "title": "Legs",\n "description": "d", "exercises": [}\n',
}


def test_validate_reports_every_broken_file_with_a_location_and_no_traceback(run_coach, tmp_path):
    for name, content in BROKEN.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "huge.yaml").write_bytes(b"#" * 10_000_000)
    files = sorted(BROKEN) + ["huge.yaml"]
    result = run_coach("validate", *files)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for name in files:
        assert re.search(rf"^coach: error: {re.escape(name)}(:\d+(:\d+)?)?: ", result.stderr, re.MULTILINE), name
    assert f"{len(files)} of {len(files)} file(s) invalid" in result.stderr
    assert result.stdout == ""


def test_validate_exits_zero_for_valid_files(run_coach):
    result = run_coach("validate", str(REPO / "coach" / "routines" / "lower-back.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok (lower-back, 4 exercises)")
    assert "warning" not in result.stderr, "the built-in routine leaves room for every cue at every level"


def test_validate_warns_naming_an_exercise_whose_tempo_has_no_room_for_its_cues(run_coach, tmp_path):
    path = tmp_path / "tight.yaml"
    path.write_text("name: tight\ntitle: Tight\ndescription: d\nexercises:\n  - name: Quick Squat\n"
                    "    steps: [Stand tall.]\n"
                    "    dose: {reps: 4, tempo: [{cue: down, seconds: 0.5}, {cue: up, seconds: 0.5}]}\n")
    result = run_coach("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert re.search(r"^coach: warning: .*tight\.yaml: Quick Squat \(standard\): \d+ cue\(s\) do not fit",
                     result.stderr, re.MULTILINE), result.stderr


def test_routines_lists_built_ins_and_user_routines(run_coach, coach_env, tmp_path):
    folder = Path(coach_env["COACH_DATA_DIR"]) / "routines"
    folder.mkdir(parents=True)
    (folder / "legs.yaml").write_text(
        "name: legs\ntitle: Leg Day\ndescription: d\nexercises:\n  - {name: Squat, steps: [Stand.], dose: {reps: 5}}\n")
    (folder / "broken.yaml").write_text("name: [\n")
    result = run_coach("routines")
    assert result.returncode == 0
    assert re.search(r"^lower-back\s+4\s+\d+:\d\d\s+Training Your Lower Back \(built-in\)", result.stdout, re.M)
    assert re.search(r"^legs\s+1\s+", result.stdout, re.M)
    assert "broken.yaml:" in result.stderr
    rows = json.loads(run_coach("routines", "--format", "json").stdout)
    assert {r["name"] for r in rows} == {"lower-back", "legs"}


def test_schema_is_a_json_schema_the_built_in_routine_satisfies(run_coach):
    jsonschema = pytest.importorskip("jsonschema")
    from ruamel.yaml import YAML

    result = run_coach("schema")
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    data = YAML(typ="safe").load((REPO / "coach" / "routines" / "lower-back.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    assert "exercises" in schema["properties"]


def test_import_writes_a_routine_that_validates_and_refuses_to_overwrite(run_coach, seed_article, tmp_path):
    out = tmp_path / "imported.yaml"
    result = run_coach("import", str(seed_article), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert run_coach("validate", str(out)).returncode == 0
    again = run_coach("import", str(seed_article), "-o", str(out))
    assert again.returncode == ExitStatus.OUTPUT
    assert "already exists (use --force to overwrite it)" in again.stderr
    assert run_coach("import", str(seed_article), "-o", str(out), "--force").returncode == 0
    assert not list(tmp_path.glob(".imported.yaml.*")), "no temporary files left behind"


def test_import_to_stdout_is_just_the_yaml(run_coach, seed_article):
    result = run_coach("import", str(seed_article))
    assert result.returncode == 0
    assert result.stdout.startswith("# Imported from training-your-lower-back.txt")
    assert result.stderr == ""


def test_traceback_flag_shows_the_trace_for_debugging(run_coach):
    result = run_coach("--traceback", "show", "no-such-routine")
    assert "Traceback" in result.stderr
    assert "UsageError" in result.stderr


def test_the_readme_example_routine_is_valid(tmp_path):
    from coach.loader import load_file

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = re.findall(r"```yaml\n(.*?)```", readme, re.S)[0]
    path = tmp_path / "legs.yaml"
    path.write_text(example, encoding="utf-8")
    routine = load_file(path)
    assert [e.key for e in routine.exercises] == ["chair-squat", "calf-stretch"]
