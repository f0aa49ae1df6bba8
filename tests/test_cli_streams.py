"""Standard streams as a shell user meets them: `-` for stdin, a closed stdout, a reader that stops early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROUTINE = REPO / "coach" / "routines" / "lower-back.yaml"
TINY = """\
name: tiny
title: Tiny
description: A tiny session.
exercises:
  - name: Squat
    steps: [Stand tall.]
    dose: {reps: 2}
"""


def coach(env, *args, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-m", "coach", *args], text=True, env=env, timeout=300, **kwargs)


# -- `-` reads standard input ------------------------------------------------------------


def test_validate_dash_reads_the_routine_from_stdin(coach_env, tmp_path):
    ok = coach(coach_env, "validate", "-", input=ROUTINE.read_text(), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "<stdin>: ok (lower-back, 4 exercises)\n"
    bad = coach(coach_env, "validate", "-", input=TINY.replace("reps: 2", "reps: two"), cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.splitlines()[0] == "coach: error: <stdin>:7:18: exercises[0].dose.reps: " \
                                         "expected a whole number, got 'two'"


def test_plan_dash_plans_the_routine_on_stdin_and_errors_say_stdin(coach_env, tmp_path):
    result = coach(coach_env, "plan", "-", "--format", "json", "--engine", "estimate", input=TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["routine"] == "tiny"
    broken = coach(coach_env, "plan", "-", "--engine", "estimate", input="name: [tiny\n", cwd=tmp_path)
    assert broken.returncode == 3 and broken.stdout == ""
    assert broken.stderr.startswith("coach: error: <stdin>:2:1: invalid YAML/JSON"), broken.stderr


def test_a_cue_script_on_stdin_is_read_as_a_script(coach_env, tmp_path):
    planned = coach(coach_env, "plan", "-", "--format", "vtt", "--engine", "estimate", input=TINY, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    exported = coach(coach_env, "export", "-", "--engine", "estimate", "-o", "s.wav", "-q", "--mono",
                     "--sample-rate", "16000", input=planned.stdout, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "s.wav").stat().st_size > 16000


def test_a_closed_stdin_is_a_clear_error(coach_env, tmp_path):
    result = coach(coach_env, "validate", "-", stdin=subprocess.DEVNULL, cwd=tmp_path,
                   preexec_fn=lambda: os.close(0))
    assert result.returncode == 1
    assert "coach: error: <stdin>: standard input is closed" in result.stderr


# -- a closed stdout, a reader that goes away --------------------------------------------


def test_plan_with_stdout_closed_says_so_and_exits_4(coach_env, tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    # The real speech engine: its worker's pipe must not take the closed stdout's place.
    result = subprocess.run([sys.executable, "-m", "coach", "plan", "tiny.yaml"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=coach_env, cwd=tmp_path, timeout=300,
                            preexec_fn=lambda: os.close(1))
    assert result.returncode == 4, result.stderr
    assert result.stderr.splitlines() == [
        "coach: error: standard output is closed (run the command without closing it, or give -o FILE)"]


def test_with_stdout_closed_an_output_file_still_works(coach_env, tmp_path):
    result = subprocess.run([sys.executable, "-m", "coach", "plan", "--engine", "estimate", "-f", "json",
                             "-o", "p.json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=coach_env, cwd=tmp_path, timeout=300, preexec_fn=lambda: os.close(1))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "p.json").read_text())["routine"] == "lower-back"


def test_export_to_a_pipe_closed_early_exits_quietly(coach_env, tmp_path):
    """`coach export -o - | head -c 100`: like `yes | head`, no traceback and no error status."""
    (tmp_path / "tiny.yaml").write_text(TINY)  # still megabytes of WAV: far more than a pipe holds
    proc = subprocess.Popen([sys.executable, "-m", "coach", "export", "tiny.yaml", "--engine", "estimate", "-q",
                             "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=coach_env, cwd=tmp_path)
    head = proc.stdout.read(100)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) in (0, 141), stderr
    assert head.startswith(b"RIFF") and stderr == ""
