"""Steps that look like markup or options are spoken as words and change nothing else.

espeak-ng reads `[[...]]` as phonemes and, in SSML mode, `<break/>` as a pause;
a text starting with '-' is an option to its CLI. In a routine they are just
things a trainer wrote: the plan shows them as written, the voice speaks them
(no 3-second pause, no phonemes), and every other cue stays as it was.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from coach.timeline import VoiceSpec
from coach.voice import open_voice
from reliability_helpers import audio_frames, coach_command, coach_env, run, write_short_routine

TRICKY = ["<break time='3s'/>", "[[h@loU]]", "-x", "--help", "$(touch pwned); echo `id`"]
PLAIN = ["Step three.", "Step four.", "Step five.", "Step six.", "Step seven."]


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    env = coach_env(folder)
    out = {}
    for label, steps in (("tricky", TRICKY), ("plain", PLAIN)):
        sub = folder / label
        sub.mkdir()
        routine = write_short_routine(sub, steps)
        done = run(coach_command("plan", str(routine), "--format", "json"), env, sub)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        out[label] = (routine, json.loads(done.stdout))
    return folder, env, out


def texts(plan: dict) -> list[str]:
    # How long the session took depends on how long the steps take to say: not compared.
    return [re.sub(r"took .*\.$", "took ...", c.get("text") or f"[{c['sound']}]") for c in plan["cues"]]


def test_the_plan_shows_each_tricky_step_exactly_as_written(plans):
    _, _, out = plans
    spoken = texts(out["tricky"][1])
    for step in TRICKY:
        assert step in spoken, step


def test_nothing_but_those_steps_changes(plans):
    _, _, out = plans
    tricky, plain = texts(out["tricky"][1]), texts(out["plain"][1])
    swap = dict(zip(TRICKY, PLAIN))
    assert [swap.get(t, t) for t in tricky] == plain
    kinds = [(c["kind"], c["phase"]) for c in out["tricky"][1]["cues"]]
    assert kinds == [(c["kind"], c["phase"]) for c in out["plain"][1]["cues"]]
    assert out["tricky"][1]["chapters"] == [
        {**ch, "start_s": ch2["start_s"]} for ch, ch2 in zip(out["plain"][1]["chapters"], out["tricky"][1]["chapters"])
    ]


def silent_runs_s(samples: np.ndarray, rate_hz: int) -> float:
    """The longest stretch of near-silence inside a clip."""
    frame = rate_hz // 100
    n = len(samples) // frame * frame
    quiet = np.sqrt((samples[:n].reshape(-1, frame) ** 2).mean(axis=1)) < 1e-3
    longest = run_length = 0
    for q in quiet:
        run_length = run_length + 1 if q else 0
        longest = max(longest, run_length)
    return longest * frame / rate_hz


def test_markup_is_read_out_not_obeyed():
    with open_voice(VoiceSpec(engine="pyttsx3", voice="en-us", rate_wpm=200), use_cache=False) as voice:
        brk = voice.clip("<break time='3s'/>")
        phonemes, hello = voice.clip("[[h@loU]]"), voice.clip("hello")
        options = [voice.clip(t) for t in ("-x", "--help")]
    # Obeyed, <break/> would be 3 s of silence, trimmed to nothing; read out, it is words with short gaps.
    assert brk.duration_s > 0.8 and silent_runs_s(brk.samples, brk.sample_rate_hz) < 0.5
    # Obeyed, [[h@loU]] is the word "hello"; read out, it is letters, much longer.
    assert phonemes.duration_s > 1.5 * hello.duration_s
    for clip in options:
        assert clip.duration_s > 0.2 and np.abs(clip.samples).max() > 0.05


@pytest.mark.slow  # exports a session with real speech
def test_a_routine_with_them_exports_and_the_cues_keep_their_lengths(plans, tmp_path):
    folder, env, out = plans
    routine, plan = out["tricky"]
    target = tmp_path / "tricky.wav"
    done = run(coach_command("export", str(routine), "-o", str(target), "--sample-rate", "8000", "-q"), env, folder)
    assert done.returncode == 0 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    frames, _, _ = audio_frames(target)
    assert frames == round(plan["duration_s"] * 8000)
    assert not (folder / "pwned").exists() and not (tmp_path / "pwned").exists()
