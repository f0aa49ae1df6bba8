"""Shared pieces of the reliability tests: a short routine, a private environment, audio checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import soundfile

REPO = Path(__file__).resolve().parent.parent

SHORT_ROUTINE = """\
name: short
title: Short Session
description: A short session for the tests.
voice: {engine: pyttsx3, voice: en-us, rate_wpm: 200}
exercises:
  - name: Bridge
    steps: [Lie on your back., Lift your hips.]
    dose: {reps: 2, tempo: [{cue: up, seconds: 1}, {cue: down, seconds: 1}], rest_after_s: 3}
  - name: Plank
    steps: [Hold a straight line.]
    dose: {hold_s: 5}
"""


def write_short_routine(folder: Path, extra_steps: list[str] | None = None) -> Path:
    """The short routine as a file; ``extra_steps`` are appended to the first exercise's steps."""
    text = SHORT_ROUTINE
    if extra_steps:
        import json

        quoted = ", ".join(json.dumps(s, ensure_ascii=False) for s in extra_steps)
        text = text.replace("steps: [Lie on your back., Lift your hips.]",
                            f"steps: [Lie on your back., Lift your hips., {quoted}]")
    path = folder / "short.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def coach_env(folder: Path, cache: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a coach subprocess with its own data, cache and temporary folders."""
    env = {**os.environ, "COACH_DATA_DIR": str(folder / "data"), "COACH_CACHE_DIR": str(cache or folder / "cache"),
           **extra}
    env.pop("COACH_TRACEBACK", None)
    return env


def coach_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "coach", *args]


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


def audio_frames(path: Path) -> tuple[int, int, int]:
    """(frames, sample rate, channels) of a complete audio file, reading every sample (fails on damage)."""
    with soundfile.SoundFile(str(path)) as f:
        info = (f.frames, f.samplerate, f.channels)
        total = sum(len(block) for block in f.blocks(blocksize=65536))
    if path.suffix.lower() != ".mp3":  # MP3 frame counts are estimates: only decoding matters there
        assert total == info[0], f"{path}: header says {info[0]} frames, {total} decoded"
    return total, info[1], info[2]


def stray_temporaries(folder: Path) -> list[Path]:
    """The writers' temporary files (.NAME.XXXX.part) left in ``folder``."""
    return sorted(folder.glob(".*.part"))
