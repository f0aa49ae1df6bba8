"""`coach export` end to end with real speech: timing to 10 ms, silence, loudness, chapters, VTT round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyloudnorm
import pytest
import soundfile

from coach.audio.loudness import true_peak_dbtp
from coach.audio.render import resample
from coach.timeline import Timeline

from test_audio_writers import parse_riff

pytestmark = pytest.mark.slow  # exports the whole built-in session with real speech

TOLERANCE_S = 0.010


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("coach-env")
    env = dict(os.environ)
    env["COACH_DATA_DIR"] = str(folder / "data")
    env["COACH_CACHE_DIR"] = str(folder / "cache")  # shared by the module: plan and export use the same clips
    env.pop("COACH_TRACEBACK", None)
    return env


def coach(env, *args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "coach", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def lower_back(env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lower-back")
    planned = coach(env, "plan", "--format", "json", "-o", "plan.json", cwd=folder)
    assert planned.returncode == 0, planned.stderr
    done = coach(env, "export", "-o", "lower-back.wav", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    timeline = Timeline.from_dict(json.loads((folder / "plan.json").read_text()))
    audio, rate = soundfile.read(folder / "lower-back.wav", dtype="float64")
    return timeline, audio, rate, folder


def voice_for(timeline: Timeline, env):
    os.environ.setdefault("COACH_CACHE_DIR", env["COACH_CACHE_DIR"])
    from coach.voice import open_voice

    return open_voice(timeline.voice)


def located_lag_s(audio: np.ndarray, clip: np.ndarray, start_s: float, rate: int, search_s: float = 0.05) -> float:
    """Where ``clip`` best matches the audio near ``start_s``, as an offset from ``start_s`` in seconds."""
    first = round((start_s - search_s) * rate)
    span = audio[max(0, first) : first + len(clip) + 2 * round(search_s * rate), 0]
    scores = np.correlate(span, clip[: len(span) - 2 * round(search_s * rate)], mode="valid")
    return (int(np.argmax(scores)) + max(0, first) - round(start_s * rate)) / rate


def test_every_speech_cue_starts_within_10_ms_of_its_planned_time(lower_back, env):
    timeline, audio, rate, _ = lower_back
    assert len(audio) == round(timeline.duration_s * rate)
    with voice_for(timeline, env) as voice:
        lags = []
        for cue in timeline.speech:
            clip = resample(voice.clip(cue.text).samples, voice.sample_rate_hz, rate)
            lags.append(located_lag_s(audio, clip[: round(0.5 * rate)], cue.start_s, rate))
    worst = max(map(abs, lags))
    assert worst <= TOLERANCE_S, f"worst speech offset {worst * 1000:.1f} ms"


def assert_speech_after_silence_starts_on_its_sample(timeline, audio, rate) -> None:
    """Independent of any clip: the first non-zero sample after a silent gap is the cue's start."""
    checked = 0
    for cue in timeline.speech:
        before = [c for c in timeline.cues if c.start_s < cue.start_s]
        if before and max(c.end_s for c in before) > cue.start_s - 0.1:
            continue
        first = round(cue.start_s * rate)
        lo = max(0, first - round(0.05 * rate))
        window = audio[lo : first + round(0.1 * rate), 0]
        onset = (np.flatnonzero(np.abs(window) > 1e-4)[0] + lo - first) / rate
        assert 0 <= onset <= TOLERANCE_S, (cue.text, onset)
        checked += 1
    assert checked > 20


def test_speech_after_silence_begins_on_its_start_sample(lower_back):
    timeline, audio, rate, _ = lower_back
    assert_speech_after_silence_starts_on_its_sample(timeline, audio, rate)


def test_gaps_between_cues_are_digital_silence(lower_back):
    timeline, audio, rate, _ = lower_back
    sounding = np.zeros(len(audio), dtype=bool)
    for cue in timeline.cues:
        # 2 ms of slack for millisecond rounding of end_s and the resampler's last samples.
        sounding[max(0, round(cue.start_s * rate)) : round((cue.end_s + 0.002) * rate)] = True
    assert (~sounding).sum() > 0.4 * len(audio), "much of a session is rests and gaps"
    assert not audio[~sounding].any()


def test_the_session_is_at_minus_16_lufs_with_peaks_below_minus_1_dbtp(lower_back):
    _, audio, rate, _ = lower_back
    loudness = pyloudnorm.Meter(rate).integrated_loudness(audio)
    print(f"lower-back.wav: {loudness:.2f} LUFS (pyloudnorm), true peak {true_peak_dbtp(audio):.2f} dBTP")
    assert abs(loudness - -16.0) <= 1.0
    assert true_peak_dbtp(audio) <= -1.0


def test_the_wav_has_a_labelled_marker_at_every_chapter_of_the_plan(lower_back):
    timeline, _, rate, folder = lower_back
    riff = parse_riff((folder / "lower-back.wav").read_bytes())
    assert list(riff["labels"].values()) == [c.title for c in timeline.chapters]
    assert list(riff["cues"].values()) == [round(c.start_s * rate) for c in timeline.chapters]


def test_an_edited_vtt_line_is_spoken_at_its_time(env, tmp_path):
    planned = coach(env, "plan", "--format", "vtt", "-o", "s.vtt", cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    text = (tmp_path / "s.vtt").read_text()
    timeline = Timeline.from_dict(json.loads(coach(env, "plan", "--format", "json", cwd=tmp_path).stdout))
    target = next(c for c in timeline.speech if c.start_s > 120 and len(c.text) > 30)
    edited_line = "Slowly now, breathe out and let your lower back sink into the floor."
    assert text.count(target.text) >= 1
    (tmp_path / "s.vtt").write_text(text.replace(target.text, edited_line, 1))
    done = coach(env, "export", "s.vtt", "-o", "s.wav", "--mono", "--sample-rate", "22050", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    audio, rate = soundfile.read(tmp_path / "s.wav", dtype="float64", always_2d=True)
    with voice_for(timeline, env) as voice:
        new = resample(voice.clip(edited_line).samples, voice.sample_rate_hz, rate)
        old = resample(voice.clip(target.text).samples, voice.sample_rate_hz, rate)
    first = round(target.start_s * rate)
    heard = audio[first : first + len(new), 0]
    assert abs(located_lag_s(audio, new[: round(0.5 * rate)], target.start_s, rate)) <= TOLERANCE_S

    def similarity(a, b):
        n = min(len(a), len(b))
        return float(np.dot(a[:n], b[:n]) / (np.linalg.norm(a[:n]) * np.linalg.norm(b[:n]) + 1e-12))

    assert similarity(heard, new) > 0.9 > 0.5 > similarity(heard, old)


def test_exporting_over_an_existing_file_needs_force(env, tmp_path):
    (tmp_path / "s.wav").write_bytes(b"keep")
    refused = coach(env, "export", "--engine", "estimate", "-o", "s.wav", cwd=tmp_path)
    assert refused.returncode == 4 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert (tmp_path / "s.wav").read_bytes() == b"keep"


def test_export_without_an_output_is_a_usage_error(env, tmp_path):
    done = coach(env, "export", "--engine", "estimate", cwd=tmp_path)
    assert done.returncode == 2 and "-o FILE" in done.stderr


def test_export_to_stdout_writes_a_wav_and_nothing_else(env, tmp_path):
    done = subprocess.run([sys.executable, "-m", "coach", "export", "--engine", "estimate", "-q", "--mono",
                           "--sample-rate", "8000", "-o", "-"], capture_output=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    riff = parse_riff(done.stdout)
    assert riff["labels"] and len(riff["chunks"][b"data"]) > 8000 * 2 * 600
    assert done.stderr == b""


def test_split_and_script_from_the_command_line_and_no_progress_bar_off_a_terminal(env, tmp_path):
    done = coach(env, "export", "--engine", "estimate", "--mono", "--sample-rate", "8000", "-o", "s.flac",
                 "--split", "parts", "--script", "s.srt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and done.stderr.startswith("coach: wrote s.flac, parts/01 ")
    parts = sorted((tmp_path / "parts").glob("*.flac"))
    playlist = [line for line in (tmp_path / "parts" / "lower-back.m3u").read_text().splitlines()
                if not line.startswith("#")]
    assert playlist == [p.name for p in parts] and len(parts) >= 3
    assert sum(soundfile.info(p).frames for p in parts) == soundfile.info(tmp_path / "s.flac").frames
    assert (tmp_path / "s.srt").read_text().startswith("1\n00:00:00,000 --> ")


def test_the_progress_line_shows_stage_bar_and_percent():
    import io

    from coach.cli.export import ProgressLine

    stream = io.StringIO()
    line = ProgressLine(stream, width=10)
    line("synth", 3, 3)
    line("write", 50, 100)
    line("write", 100, 100)
    line.close()
    text = stream.getvalue()
    assert "synthesizing [##########] 100% 3/3" in text
    assert "writing      [##########] 100%" in text
    assert text.endswith("\r\x1b[K")
