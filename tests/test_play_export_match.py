"""`coach play` sounds exactly like `coach export`: the same master, captured from a real-time device.

A cue script of over a minute, with real speech, built-in earcons and a sound file
of its own, is played into the pacing capture device (scripts/alsa-pacer) and
exported to a WAV; what the device received must be the WAV, sample for sample.
"""

from __future__ import annotations

import json

import numpy as np
import pyloudnorm
import pytest
import soundfile

from coach.audio.loudness import true_peak_dbtp

from test_play_real import RATE, cache_dir, coach, device, env  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

TEXTS = ["Welcome to the check.", "Lie on your right side.", "Reach up with your top arm.",
         "Three.", "Two.", "One.", "Hold it there.", "Ten seconds left.", "And release.",
         "Rest for twenty seconds.", "Next up: the bird dog.", "Well done."]


def script(bell: str) -> dict:
    """About 66 s: speech every 4 s, a countdown on whole seconds, ticks, the script's own start sound."""
    cues = []
    t = 0.0
    for i, text in enumerate(TEXTS):
        cues.append({"start_s": round(t, 3), "end_s": round(t + 2.5, 3), "kind": "speech", "text": text,
                     "phase": "work" if i > 2 else "intro"})
        if text == "One.":
            cues.append({"start_s": round(t + 1.0, 3), "end_s": round(t + 1.5, 3), "kind": "sound",
                         "sound": "start", "phase": "work"})
        cues.append({"start_s": round(t + 3.0, 3), "end_s": round(t + 3.1, 3), "kind": "sound", "sound": "tick",
                     "phase": "work"})
        t += 5.5
    cues.append({"start_s": round(t, 3), "end_s": round(t + 0.58, 3), "kind": "sound", "sound": "finish",
                 "phase": "outro"})
    return {
        "routine": "match", "title": "Match", "level": "standard", "duration_s": round(t + 1.0, 3),
        "voice": {"engine": "pyttsx3", "voice": "en-us", "rate_wpm": 170, "volume": 1.0},
        "sounds": {"start": bell},
        "chapters": [{"start_s": 0.0, "title": "Introduction"}, {"start_s": 16.5, "title": "Work", "exercise": "w"}],
        "cues": cues,
    }


def heard_session(device, wav: np.ndarray) -> np.ndarray:  # noqa: F811
    """What the device received of the session, aligned with ``wav`` on the first sample that is not silence;
    asserts it came whole and nothing followed it."""
    # On a busy machine the pacer may see a pause in the stream and start a new segment: joined,
    # they are what the player wrote.
    heard = np.concatenate([c.frames for c in device.captures()])
    start = int(np.flatnonzero(np.any(heard != 0, axis=1))[0]) - int(np.flatnonzero(np.any(wav != 0, axis=1))[0])
    assert start >= 0
    session = heard[start : start + len(wav)]
    assert len(session) == len(wav), "the whole session reached the device"
    assert not np.any(heard[start + len(wav) :]), "nothing after the session"
    return session


def within_one_lsb(a: np.ndarray, b: np.ndarray) -> bool:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return int(diff.max()) <= 1


def write_bell(path) -> None:
    """A loud two-tone bell (louder than speech: the master must balance it down)."""
    t = np.arange(int(0.5 * 48000)) / 48000
    bell = 0.95 * np.exp(-6 * t) * (np.sin(2 * np.pi * 880 * t) + 0.5 * np.sin(2 * np.pi * 1320 * t)) / 1.5
    soundfile.write(path, bell.astype(np.float32), 48000, subtype="FLOAT")


def test_play_captured_from_the_device_equals_the_export_of_the_same_script(device, env, tmp_path):  # noqa: F811
    write_bell(tmp_path / "bell.wav")
    path = tmp_path / "match.json"
    path.write_text(json.dumps(script("bell.wav")))  # relative: read from the script's folder

    exported = coach("export", str(path), "-o", str(tmp_path / "match.wav"), "--quiet", env=env, timeout_s=300)
    assert exported.returncode == 0, exported.stderr
    wav, rate = soundfile.read(tmp_path / "match.wav", dtype="int16")
    assert rate == RATE and wav.shape[1] == 2

    played = coach("play", str(path), "--quiet", env=env, timeout_s=300)
    assert played.returncode == 0, played.stderr
    assert "Traceback" not in played.stderr

    session = heard_session(device, wav)
    assert within_one_lsb(session, wav)

    # The script's own bell was used (not the built-in start sound), balanced under the speech.
    bell_at = int(round((TEXTS.index("One.") * 5.5 + 1.0) * RATE))
    bell = wav[bell_at : bell_at + int(0.3 * RATE)].astype(np.float64) / 32768
    spectrum = np.abs(np.fft.rfft(bell[:, 0]))
    assert abs(np.argmax(spectrum) * RATE / len(bell) - 880) < 20

    for audio in (wav, session):
        x = audio.astype(np.float64) / 32768
        assert abs(pyloudnorm.Meter(RATE).integrated_loudness(x) - -16.0) <= 0.5
        assert true_peak_dbtp(x) <= -1.0


ROUTINE = """\
name: paced
title: Paced
description: A short check of the plan options.
exercises:
  - name: Bridge
    steps:
      - Lie on your back with your knees bent.
    reminder: Knees bent, lift the hips.
    dose:
      sets: 2
      reps: 3
      tempo:
        - {cue: up, seconds: 1}
        - {cue: down, seconds: 1}
      setup_s: 2
      rest_between_sets_s: 10
      rest_after_s: 0
"""

OPTIONS = ("--pace", "1.5", "--rest-scale", "0.5", "--verbosity", "brief")


def test_play_and_export_take_the_plan_options_and_make_the_session_plan_prints(device, env, tmp_path):  # noqa: F811
    routine = tmp_path / "paced.yaml"
    routine.write_text(ROUTINE)
    planned = coach("plan", str(routine), *OPTIONS, "--format", "json", "-o", str(tmp_path / "plan.json"), env=env)
    assert planned.returncode == 0, planned.stderr
    exported = coach("export", str(routine), *OPTIONS, "-o", str(tmp_path / "e.wav"), "--script",
                     str(tmp_path / "e.json"), "--quiet", env=env, timeout_s=300)
    assert exported.returncode == 0, exported.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    script = json.loads((tmp_path / "e.json").read_text())
    assert script["cues"] == plan["cues"] and script["duration_s"] == plan["duration_s"]
    # The options matter: the default plan is another session.
    default = json.loads(coach("plan", str(routine), "--format", "json", env=env).stdout)
    assert default["duration_s"] != plan["duration_s"]

    # Export of the printed plan = export of the routine with the options, sample for sample.
    again = coach("export", str(tmp_path / "plan.json"), "-o", str(tmp_path / "p.wav"), "--quiet", env=env)
    assert again.returncode == 0, again.stderr
    wav, _ = soundfile.read(tmp_path / "e.wav", dtype="int16")
    assert np.array_equal(wav, soundfile.read(tmp_path / "p.wav", dtype="int16")[0])

    played = coach("play", str(routine), *OPTIONS, "--quiet", env=env, timeout_s=300)
    assert played.returncode == 0, played.stderr
    assert within_one_lsb(heard_session(device, wav), wav)


def write_music(folder) -> None:
    """Two short tracks at other rates and channel counts than the session's (resampled, made stereo)."""
    folder.mkdir()
    for name, rate, channels, freq in (("01 one.flac", 48000, 2, 330.0), ("02 two.wav", 22050, 1, 247.0)):
        t = np.arange(int(25 * rate)) / rate
        tone = 0.4 * np.sin(2 * np.pi * freq * t) * (0.75 + 0.25 * np.sin(2 * np.pi * 0.3 * t))
        data = np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone
        soundfile.write(folder / name, data.astype(np.float32), rate)


def test_play_with_music_captured_from_the_device_equals_the_export_with_the_same_music(device, env, tmp_path):  # noqa: F811
    write_bell(tmp_path / "bell.wav")
    write_music(tmp_path / "music")
    path = tmp_path / "match.json"
    path.write_text(json.dumps(script("bell.wav")))
    music = ("--music", str(tmp_path / "music"), "--crossfade", "2")

    exported = coach("export", str(path), *music, "-o", str(tmp_path / "m.wav"), "--quiet", env=env, timeout_s=300)
    assert exported.returncode == 0, exported.stderr
    wav, _ = soundfile.read(tmp_path / "m.wav", dtype="int16")
    played = coach("play", str(path), *music, "--quiet", env=env, timeout_s=300)
    assert played.returncode == 0, played.stderr

    assert within_one_lsb(heard_session(device, wav), wav)
    # Music is there in the gaps (not silence), and the whole still meets the headphone targets.
    gap = wav[int(2.7 * RATE) : int(3.9 * RATE)]
    assert np.abs(gap).max() > 20
    x = wav.astype(np.float64) / 32768
    assert abs(pyloudnorm.Meter(RATE).integrated_loudness(x) - -16.0) <= 0.5
    assert true_peak_dbtp(x) <= -1.0
