"""`coach plan` run as a user runs it: a real process, real speech where asked, clean stdout."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import srt
import webvtt

from coach.cuescript import read_script
from coach.loader import load_routine
from coach.planner import PlanSettings
from plan_checks import check_timeline

REPO = Path(__file__).resolve().parent.parent
COACH = REPO / ".venv" / "bin" / "coach"
GOLDEN = REPO / "tests" / "golden"


@pytest.fixture
def coach(tmp_path: Path):
    if not COACH.exists():
        pytest.skip(".venv/bin/coach is not installed (run scripts/setup)")
    env = {**os.environ, "COACH_DATA_DIR": str(tmp_path / "data"), "COACH_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("COACH_TRACEBACK", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(COACH), "plan", *args], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=env)

    return run


def one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coach: error: "), result.stderr
    return lines[0]


def test_json_on_stdout_is_clean_and_matches_the_golden_plan(coach):
    result = coach("lower-back", "--engine", "estimate", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["routine"] == "lower-back"
    assert result.stdout == (GOLDEN / "lower-back-standard.json").read_text(encoding="utf-8")


@pytest.mark.slow  # synthesizes the whole session
def test_real_speech_plans_a_valid_session_with_clean_json_on_stdout(coach, tmp_path):
    result = coach("--format", "json", "--level", "easier", "--engine", "pyttsx3")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # nothing but the JSON on stdout, even with the speech engine running
    assert data["voice"]["engine"] == "pyttsx3"
    assert data["voice"]["voice"].endswith("en-us") and data["voice"]["rate_wpm"] == 165
    path = tmp_path / "real.json"
    path.write_text(result.stdout, encoding="utf-8")
    timeline = read_script(path)
    check_timeline(timeline, load_routine("lower-back"), PlanSettings(level="easier", voice=timeline.voice))
    three = next(c for c in timeline.speech if c.text == "Three!")
    assert 0.2 < three.end_s - three.start_s < 0.6  # measured trimmed speech, not an estimate of a word


def test_the_default_table_shows_exercises_and_the_total(coach):
    result = coach("--engine", "estimate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (GOLDEN / "lower-back-standard.table").read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["vtt", "srt", "txt", "labels", "json"])
def test_output_files_are_written_whole_and_stdout_stays_empty(coach, tmp_path, fmt):
    target = tmp_path / f"plan.{fmt}"
    target.write_text("old contents\n", encoding="utf-8")  # overwritten with --force
    result = coach("--engine", "estimate", "-f", fmt, "-o", str(target), "--force")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"coach: wrote {target}" in result.stderr
    text = target.read_text(encoding="utf-8")
    if fmt == "vtt":
        assert len(webvtt.from_string(text).captions) > 200
    elif fmt == "srt":
        assert len(list(srt.parse(text))) > 200
    elif fmt == "json":
        assert read_script(target).routine == "lower-back"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".plan.")], "a temporary file was left behind"


def test_an_existing_output_is_refused_without_force_and_left_alone(coach, tmp_path):
    target = tmp_path / "plan.json"
    target.write_text("my edits\n", encoding="utf-8")
    result = coach("--engine", "estimate", "-f", "json", "-o", str(target))
    assert one_line_error(result, 4) == f"coach: error: {target}: already exists (use --force to overwrite it)"
    assert target.read_text(encoding="utf-8") == "my edits\n"


def test_dash_means_stdout(coach):
    result = coach("--engine", "estimate", "-f", "srt", "-o", "-")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("1\n00:00:00,000 --> ")


def test_settings_reach_the_plan(coach):
    result = coach("--engine", "estimate", "-f", "json", "--from", "good-morning", "--countdown", "5",
                   "--rest-scale", "0.5", "--pace", "1.5", "--verbosity", "brief", "--rate", "200", "--level", "harder")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["level"] == "harder" and data["voice"]["rate_wpm"] == 200
    assert [c["title"] for c in data["chapters"]] == ["Introduction", "Barbell Good Morning", "Child's Pose", "Finish"]
    assert [c["text"] for c in data["cues"] if c["phase"] == "countdown"][:5] == ["Five!", "Four!", "Three!", "Two!",
                                                                                   "One!"]


def test_a_routine_file_can_be_planned(coach, tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\ntitle: Mine\ndescription: A short one.\nexercises:\n"
        "  - name: Plank\n    steps: [Get on your forearms.]\n    dose: {hold_s: 20}\n", encoding="utf-8")
    result = coach("mine.yaml", "--engine", "estimate", "-f", "txt")
    assert result.returncode == 0, result.stderr
    assert "Hold for 20 seconds." in result.stdout


@pytest.mark.parametrize("args, status, words", [
    (["--level", "hardest"], 2, "unknown level 'hardest'"),
    (["--format", "xml"], 2, "--format"),
    (["--from", "bird-dgo"], 2, "did you mean 'bird-dog'?"),
    (["--pace", "9"], 2, "pace must be between"),
    (["--rate", "20"], 2, "rate"),
    (["no-such-routine"], 2, "no routine named 'no-such-routine'"),
    (["--engine", "festival"], 2, "unknown speech engine"),
    (["-o", "missing/dir/plan.json"], 4, "missing/dir/plan.json"),
])
def test_mistakes_are_one_line_errors_without_a_traceback(coach, args, status, words):
    line = one_line_error(coach("--engine", "estimate", *args) if "--engine" not in args else coach(*args), status)
    assert words in line


def test_a_broken_routine_file_is_reported_at_its_line(coach, tmp_path):
    (tmp_path / "broken.yaml").write_text("name: broken\ntitle: [\n", encoding="utf-8")
    result = coach("broken.yaml", "--engine", "estimate")
    assert result.returncode in (1, 3)
    assert "Traceback" not in result.stderr and "broken.yaml:" in result.stderr and result.stdout == ""


def test_plan_has_help(coach):
    result = coach("--help")
    assert result.returncode == 0
    for option in ("--level", "--format", "--rest-scale", "--pace", "--verbosity", "--countdown", "--from",
                   "--voice", "--rate", "--volume", "--engine", "--output"):
        assert option in result.stdout
