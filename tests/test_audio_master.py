"""The master's loudness by construction, and when it has to measure what its limiter took.

The clips are speech-like: noise shaped into syllables with a few sharp peaks,
normalized the way speech clips are when they are cached.
"""

from __future__ import annotations

import numpy as np

from coach.audio.clip import Clip
from coach.audio.level import CLIP_CEILING_DBTP, SPEECH_LUFS, normalize_speech
from coach.audio.loudness import LoudnessMeter, TruePeakMeter
from coach.audio.master import CEILING_DBTP, LIMITER_TOLERANCE_LU, Master
from coach.timeline import Chapter, Cue, Timeline, VoiceSpec

RATE = 22050


def syllables(seconds: float, seed: int, peak_boost: float = 1.0) -> np.ndarray:
    """Vowel-like tones (harmonics of a wandering pitch) in 200 ms syllables, with a sharp peak each second."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 120 + 30 * rng.random() + 10 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase + rng.random() * 6.28) / k for k in range(1, 25))
    x = 0.05 * x * (np.sin(np.pi * t / 0.2) > 0)
    for k in range(0, n - 20, RATE):
        x[k + 10 : k + 14] += 0.6 * peak_boost * np.array([1.0, -1.0, 1.0, -1.0])
    return x.astype(np.float32)


def session(clips: list[Clip], gap_s: float = 1.0) -> tuple[Timeline, dict[str, Clip]]:
    cues, by_text, t = [], {}, 0.0
    for i, clip in enumerate(clips):
        length = len(clip.samples) / clip.sample_rate_hz
        text = f"cue {i}"
        cues.append(Cue(t, t + length, "speech", "instruction", text=text))
        by_text[text] = clip
        t += length + gap_s
    timeline = Timeline(routine="t", title="T", level="standard", voice=VoiceSpec(engine="estimate"),
                        duration_s=t, chapters=(Chapter(0.0, "All"),), cues=tuple(cues))
    return timeline, by_text


def rendered(master: Master) -> tuple[float, float]:
    meter, peak = LoudnessMeter(master.sample_rate_hz, 2), TruePeakMeter(2)
    for block in master.blocks():
        meter.add(block)
        peak.add(block)
    return meter.integrated_lufs(), 20 * np.log10(peak.finish())


def test_normalized_speech_needs_no_measuring_render_and_lands_on_the_target():
    clips = [normalize_speech(Clip(syllables(3 + i % 4, seed=i), RATE)) for i in range(12)]
    assert all(c.level.true_peak <= 10 ** ((CLIP_CEILING_DBTP + 0.05) / 20) for c in clips)
    timeline, by_text = session(clips)
    master = Master(timeline, lambda cue: by_text[cue.text], ceiling_dbtp=CEILING_DBTP["wav"])
    assert master.measured_passes == 0
    lufs, peak = rendered(master)
    assert abs(lufs - -16.0) <= 0.2 and abs(master.output_lufs - lufs) <= 0.2
    assert peak <= -1.0


def test_peaks_a_hair_over_the_ceiling_cost_no_render_and_no_loudness():
    clips = [normalize_speech(Clip(syllables(4, seed=i), RATE)) for i in range(10)]
    timeline, by_text = session(clips, gap_s=0.5)
    free = Master(timeline, lambda cue: by_text[cue.text], ceiling_dbtp=0.0)
    loudest_db = 20 * np.log10(max(c.level.true_peak for c in clips)) + free.gain_db
    # A ceiling 0.05 dB under where the loudest clip's peak (with resampling's margin) lands: the limiter acts.
    master = Master(timeline, lambda cue: by_text[cue.text], ceiling_dbtp=loudest_db + 0.1 - 0.05)
    assert master.measured_passes == 0  # the bound: it cannot take more than the tolerance
    lufs, peak = rendered(master)
    assert abs(lufs - master.output_lufs) <= LIMITER_TOLERANCE_LU and abs(lufs - -16.0) <= 0.2
    assert peak <= master.ceiling_dbtp + 0.01


def test_peaks_far_over_the_ceiling_are_measured_and_the_gain_corrected():
    # Unnormalized clips with peaks 20 dB over their loudness and more: the limiter takes real loudness off.
    clips = [Clip(syllables(4, seed=i, peak_boost=3.0), RATE) for i in range(8)]
    timeline, by_text = session(clips, gap_s=0.3)
    master = Master(timeline, lambda cue: by_text[cue.text], ceiling_dbtp=-1.5)
    assert master.measured_passes >= 2
    lufs, peak = rendered(master)
    assert abs(lufs - -16.0) <= 0.5 and abs(lufs - master.output_lufs) <= 0.01
    assert peak <= -1.5 + 0.01


def test_a_target_the_limiter_cannot_reach_leaves_the_gain_where_it_came_closest():
    # Peaks far over full scale: past some gain the limiter gives nothing back.
    clips = [Clip(syllables(4, seed=i, peak_boost=4.0) * np.float32(3.0), RATE) for i in range(8)]
    timeline, by_text = session(clips, gap_s=0.3)
    master = Master(timeline, lambda cue: by_text[cue.text], ceiling_dbtp=-6.0, target_lufs=-12.0)
    assert master.measured_passes >= 2
    assert master.gain_db < 20.0  # not run away to the 40 dB cap
    lufs, peak = rendered(master)
    assert abs(lufs - master.output_lufs) <= 0.01  # what it says is what it renders
    assert peak <= -6.0 + 0.01


def test_the_bound_is_never_looser_than_what_the_limiter_takes():
    """Whenever the master skips measuring, rendering agrees with its prediction within the tolerance."""
    for ceiling in (-1.0, -1.5, -2.0, -2.5, -3.0):
        clips = [normalize_speech(Clip(syllables(2 + i % 3, seed=10 + i), RATE), ceiling_dbtp=ceiling)
                 for i in range(8)]
        timeline, by_text = session(clips, gap_s=0.4)
        master = Master(timeline, lambda cue: by_text[cue.text], ceiling_dbtp=-1.5)
        lufs, peak = rendered(master)
        assert peak <= -1.4
        if master.measured_passes == 0:
            assert abs(lufs - master.output_lufs) <= LIMITER_TOLERANCE_LU + 0.1, ceiling
        assert abs(lufs - -16.0) <= 0.5, ceiling
