"""render_blocks: clips land on their sample, silence between, blocks stream."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from coach.audio.clip import Clip
from coach.audio.render import render_blocks, resample
from coach.timeline import Cue, Timeline, VoiceSpec


def timeline_of(cues, duration_s):
    return Timeline(routine="t", title="t", level="standard", voice=VoiceSpec(engine="estimate"),
                    duration_s=duration_s, chapters=(), cues=tuple(cues))


def marker(k: int, rate_hz: int = 44100) -> Clip:
    """A recognisable clip: a first sample of 1.0, then k-dependent values, then a few zeros-free samples."""
    return Clip(np.array([1.0, -0.5, 0.25 + k / 1000, -0.125], dtype=np.float32), rate_hz)


def render_all(timeline, clip_for, **kwargs):
    blocks = list(render_blocks(timeline, clip_for, **kwargs))
    return np.concatenate(blocks), blocks


def speech(start_s, text, end_s=None):
    return Cue(start_s=start_s, end_s=end_s if end_s is not None else start_s + 0.1, kind="speech",
               phase="instruction", text=text)


def test_every_clip_starts_exactly_at_its_start_sample_and_everything_else_is_zero():
    starts = [0.0, 0.5, 0.999977, 1.0, 2.4567, 3.0001, 4.99]
    cues = [speech(s, str(k)) for k, s in enumerate(starts)]
    clips = {str(k): marker(k) for k in range(len(starts))}
    audio, blocks = render_all(timeline_of(cues, 5.0), lambda c: clips[c.text], block_s=0.37)
    assert audio.shape == (5 * 44100, 2) and audio.dtype == np.float32
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])
    expected = np.zeros(5 * 44100, dtype=np.float32)
    for k, s in enumerate(starts):
        first = round(s * 44100)
        n = min(4, len(expected) - first)
        expected[first:first + n] += clips[str(k)].samples[:n]
    # Exact equality: placement to the sample, overlaps summed, gaps digital silence.
    np.testing.assert_array_equal(audio[:, 0], expected)
    assert all(len(b) == round(0.37 * 44100) for b in blocks[:-1])


@settings(max_examples=40, deadline=None)
@given(
    starts=st.lists(st.integers(min_value=0, max_value=3 * 8000 - 1), min_size=1, max_size=12),
    block_frames=st.integers(min_value=1, max_value=9000),
    start_frame=st.integers(min_value=0, max_value=8000),
)
def test_any_block_size_and_start_gives_the_same_samples(starts, block_frames, start_frame):
    rate = 8000
    cues = [speech(f / rate, str(k)) for k, f in enumerate(starts)]
    clips = {str(k): Clip(np.linspace(1, 2, 50 + k, dtype=np.float32), rate) for k in range(len(starts))}
    whole, _ = render_all(timeline_of(cues, 3.0), lambda c: clips[c.text], sample_rate_hz=rate, channels=1)
    part, _ = render_all(timeline_of(cues, 3.0), lambda c: clips[c.text], sample_rate_hz=rate, channels=1,
                         block_s=block_frames / rate, start_s=start_frame / rate)
    np.testing.assert_array_equal(part, whole[start_frame:])


def test_clips_at_another_rate_are_resampled_and_still_start_on_their_sample():
    # A 22.05 kHz impulse lands on the 44.1 kHz sample of its start time.
    impulse = np.zeros(64, dtype=np.float32)
    impulse[0] = 1.0
    clip = Clip(impulse, 22050)
    starts = [0.25, 1.2345, 2.0]
    audio, _ = render_all(timeline_of([speech(s, "x") for s in starts], 3.0), lambda c: clip, channels=1)
    peaks = sorted(np.argsort(audio[:, 0])[-3:])
    assert peaks == [round(s * 44100) for s in starts]


def test_resampling_keeps_a_tone_clean():
    rate = 22050
    t = np.arange(rate) / rate
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    y = resample(x, 22050, 44100)
    assert len(y) == 44100
    ref = np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100)
    # Away from the ends, the resampled tone matches the ideal one to better than -80 dB.
    err = y[2000:-2000] - ref[2000:-2000]
    assert 20 * np.log10(np.sqrt(np.mean(err**2)) / np.sqrt(0.5)) < -80


def test_gain_and_channels_apply_to_every_sample():
    clip = Clip(np.full(10, 0.5, dtype=np.float32), 44100)
    audio, _ = render_all(timeline_of([speech(0.0, "x")], 0.001), lambda c: clip, channels=3, gain_db=-6.0)
    assert audio.shape == (44, 3)
    np.testing.assert_allclose(audio[:10], 0.5 * 10 ** (-6 / 20), rtol=1e-6)
    assert not audio[10:].any()


def test_a_clip_running_past_the_end_is_cut_at_the_end():
    clip = Clip(np.ones(1000, dtype=np.float32), 1000)
    audio, _ = render_all(timeline_of([speech(0.5, "x")], 1.0), lambda c: clip, sample_rate_hz=1000, channels=1)
    assert len(audio) == 1000 and audio[:500].sum() == 0 and audio[500:].sum() == 500


def test_rendering_from_the_middle_only_asks_for_clips_that_can_still_sound():
    asked = []

    def clip_for(cue):
        asked.append(cue.start_s)
        return Clip(np.ones(100, dtype=np.float32), 1000)

    cues = [speech(float(s), "x") for s in range(0, 600, 10)]
    list(render_blocks(timeline_of(cues, 600.0), clip_for, sample_rate_hz=1000, start_s=300.0, end_s=320.0))
    assert min(asked) >= 300.0 - 61 and max(asked) < 320.0


def test_blocks_are_produced_lazily():
    asked = []

    def clip_for(cue):
        asked.append(cue.start_s)
        return Clip(np.ones(10, dtype=np.float32), 1000)

    cues = [speech(float(s), "x") for s in range(100)]
    blocks = render_blocks(timeline_of(cues, 100.0), clip_for, sample_rate_hz=1000)
    next(blocks)
    assert asked == [0.0]


@pytest.mark.parametrize("bad", [dict(sample_rate_hz=0), dict(channels=0), dict(block_s=0)])
def test_nonsense_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        next(render_blocks(timeline_of([], 1.0), lambda c: None, **bad))
