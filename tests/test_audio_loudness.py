"""Loudness (BS.1770-4) and true peak meters, and the true-peak limiter."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from coach.audio.limiter import Limiter, limit_blocks
from coach.audio.loudness import LoudnessMeter, TruePeakMeter, integrated_lufs, true_peak_dbtp

from audio_helpers import speechlike


def speech_with_pauses(rate_hz: int, seconds: float = 20.0, seed: int = 0) -> np.ndarray:
    """Speech-like bursts separated by digital silence, as in a session."""
    out = np.zeros(int(seconds * rate_hz))
    rng = np.random.default_rng(seed)
    pos = 0
    while pos < len(out):
        clip = speechlike(rng.uniform(0.5, 3.0), seed=int(rng.integers(1000)), rate_hz=rate_hz).samples
        end = min(len(out), pos + len(clip))
        out[pos:end] = clip[: end - pos] * rng.uniform(0.3, 1.0)
        pos = end + int(rng.uniform(0.2, 4.0) * rate_hz)
    return out


@pytest.mark.parametrize("rate_hz", [44100, 48000, 22050])
@pytest.mark.parametrize("stereo", [False, True])
def test_integrated_loudness_agrees_with_pyloudnorm(rate_hz, stereo):
    x = speech_with_pauses(rate_hz)
    if stereo:
        x = np.stack([x, 0.6 * np.roll(x, 100)], axis=1)
    ours = integrated_lufs(x, rate_hz)
    theirs = pyloudnorm.Meter(rate_hz).integrated_loudness(x)
    assert abs(ours - theirs) < 0.1, (ours, theirs)


def test_a_997_hz_sine_at_full_scale_reads_minus_3_lufs_per_channel():
    # The calibration point of BS.1770: a 0 dBFS 997 Hz sine in one channel is -3.01 LUFS.
    t = np.arange(10 * 48000) / 48000
    assert integrated_lufs(np.sin(2 * np.pi * 997 * t), 48000) == pytest.approx(-3.01, abs=0.05)


def test_streaming_in_any_block_size_gives_the_same_loudness():
    x = speech_with_pauses(44100)[:, None]
    whole = integrated_lufs(x, 44100)
    for size in (1, 4410, 12345):
        meter = LoudnessMeter(44100, 1)
        step = size if size > 1 else 1000  # one-frame blocks are too slow in Python; 1000 still splits steps
        for i in range(0, len(x), step):
            meter.add(x[i : i + step])
        assert meter.integrated_lufs() == pytest.approx(whole, abs=1e-9)


def test_silence_is_gated_out_and_all_silence_is_minus_infinity():
    x = speech_with_pauses(44100)
    padded = np.concatenate([np.zeros(44100 * 60), x, np.zeros(44100 * 60)])
    # Not identical: the padding completes the last gating blocks, which the bare signal leaves out.
    assert integrated_lufs(padded, 44100) == pytest.approx(integrated_lufs(x, 44100), abs=0.1)
    assert integrated_lufs(np.zeros(44100 * 5), 44100) == -np.inf


def test_true_peak_finds_the_peak_between_samples():
    n = np.arange(44100)
    x = np.sin(2 * np.pi * 11025 / 44100 * n + np.pi / 4)  # samples at +-0.707, real peak 1.0
    assert 20 * np.log10(np.max(np.abs(x))) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.2)
    t = np.arange(44100) / 44100
    assert true_peak_dbtp(0.5 * np.sin(2 * np.pi * 997 * t)) == pytest.approx(-6.02, abs=0.05)


def test_true_peak_meter_streams_across_block_edges():
    x = np.zeros((1000, 2))
    x[499, 1] = 0.9  # an impulse right at a block edge
    meter = TruePeakMeter(2)
    meter.add(x[:500])
    meter.add(x[500:])
    assert 20 * np.log10(meter.finish()) == pytest.approx(true_peak_dbtp(x), abs=1e-9)
    assert meter.peak >= 0.9


def limited(x: np.ndarray, block: int = 30000, **kwargs) -> np.ndarray:
    blocks = (x[i : i + block] for i in range(0, len(x), block))
    return np.concatenate(list(limit_blocks(blocks, 44100, x.shape[1], **kwargs)))


def test_the_limiter_holds_true_peaks_at_the_ceiling_whatever_the_block_size():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((44100 * 5, 2)) * 0.3
    x[44100 * 2 : 44100 * 2 + 50] *= 6
    for block in (30000, 777):
        y = limited(x, block, ceiling_dbtp=-1.5)
        assert y.shape == x.shape
        assert true_peak_dbtp(y) <= -1.5 + 1e-3


def test_the_limiter_leaves_quiet_audio_untouched_and_delays_nothing():
    x = np.stack([speech_with_pauses(44100, 5.0) * 0.2] * 2, axis=1)
    y = limited(x, ceiling_dbtp=-1.0)
    np.testing.assert_array_equal(y, x.astype(np.float32))


def test_the_limiter_changes_gain_smoothly_so_it_never_clicks():
    x = np.stack([speech_with_pauses(44100, 10.0) * 3.0] * 2, axis=1)
    y = limited(x, ceiling_dbtp=-1.5)
    loud = np.abs(x[:, 0]) > 0.05
    gain = y[loud, 0] / x[loud, 0]
    assert gain.min() < 0.5, "the test signal must actually be limited"
    # Consecutive loud samples: the gain moves by well under 1 % per sample (5 ms ramps, 150 ms release).
    idx = np.flatnonzero(loud)
    consecutive = np.diff(idx) == 1
    assert np.max(np.abs(np.diff(gain))[consecutive]) < 0.01
    assert np.all(gain <= 1.0 + 1e-6)


def test_several_pre_gains_share_one_analysis_and_each_holds_the_ceiling():
    x = speech_with_pauses(44100, 8.0)[:, None]
    limiter = Limiter(44100, 1, -1.5, pre_gains_db=(-6.0, 0.0, 6.0))
    outs = [[], [], []]
    for i in range(0, len(x), 44100):
        for k, out in enumerate(limiter.process_all(x[i : i + 44100])):
            outs[k].append(out)
    for k, out in enumerate(limiter.flush_all()):
        outs[k].append(out)
    ys = [np.concatenate(o) for o in outs]
    assert all(len(y) == len(x) for y in ys)
    assert all(true_peak_dbtp(y) <= -1.5 + 1e-3 for y in ys)
    single = limited(x * 10 ** (6 / 20), 44100, ceiling_dbtp=-1.5)
    np.testing.assert_allclose(ys[2], single, atol=1e-6)


def test_the_k_weighting_filter_gives_scipys_bits_without_importing_scipy_signal():
    import subprocess
    import sys

    # In a fresh process: does measuring loudness import scipy.signal (75 MB of RSS)?
    code = ("import sys, numpy as np; from coach.audio.loudness import LoudnessMeter; "
            "m = LoudnessMeter(44100, 2); m.add(np.random.default_rng(0).standard_normal((44100, 2)) * 0.1); "
            "print('scipy.signal' in sys.modules, 'scipy.ndimage' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False", "False"]
    from scipy.signal import sosfilt as scipy_sosfilt

    from coach.audio.iir import sosfilt
    from coach.audio.loudness import k_weighting_sos

    rng = np.random.default_rng(5)
    for rate in (8000, 22050, 44100, 48000):
        sos = k_weighting_sos(rate)
        x, zi = rng.standard_normal(10_000), rng.standard_normal((2, 2))
        y, zf = sosfilt(sos, x, zi)
        want_y, want_zf = scipy_sosfilt(sos, x, zi=zi)
        assert np.array_equal(y, want_y) and np.array_equal(zf, want_zf)
        assert np.array_equal(sosfilt(sos, x[::2].astype(np.float32)), scipy_sosfilt(sos, x[::2].astype(np.float32)))


def test_the_limiters_sliding_minimum_is_scipy_ndimages():
    from scipy.ndimage import minimum_filter1d

    from coach.audio.limiter import _sliding_min

    rng = np.random.default_rng(9)
    for _ in range(500):
        values = np.round(rng.random(int(rng.integers(0, 400))), int(rng.integers(1, 4)))
        width = int(rng.integers(1, 120))
        half = width // 2
        want = minimum_filter1d(values, size=width, mode="nearest")[half : len(values) - (width - 1 - half)]
        assert np.array_equal(_sliding_min(values, width), want)


@pytest.mark.parametrize("kind", ["noise", "short", "square", "clicks", "silence", "speech-like"])
def test_the_sparse_true_peak_reads_what_the_meter_reads(kind):
    """`true_peak` interpolates only near the loudest samples; it must agree with the streaming meter."""
    from coach.audio.loudness import TruePeakMeter, true_peak

    rng = np.random.default_rng(7)
    x = {
        "noise": rng.standard_normal(20000) * 0.2,
        "short": np.array([0.0, 0.9, -0.9, 0.0]),
        "square": np.sign(np.sin(np.arange(5000) * 0.9)) * 0.5,  # every sample at the peak
        "clicks": np.where(rng.random(30000) < 0.001, 0.8, 0.0) * rng.choice([-1, 1], 30000),
        "silence": np.zeros(1000),
        "speech-like": np.sin(np.arange(40000) * 0.05) * np.sin(np.arange(40000) * 0.0011) ** 8 * 0.7,
    }[kind]
    meter = TruePeakMeter(1)
    meter.add(x[:, None])
    assert true_peak(x) == pytest.approx(meter.finish(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.6, 0.9, 2.0])
def test_the_envelope_near_a_threshold_is_exact_where_it_can_reach_it(threshold):
    """What the limiter analyses: the exact envelope wherever it reaches the threshold, a lower one elsewhere."""
    from coach.audio.loudness import context_frames, peak_envelope, peak_envelope_near

    rng = np.random.default_rng(3)
    n = 30000
    x = rng.standard_normal(n) * 0.15 * np.sin(np.arange(n) * 0.0007) ** 4  # loud bursts and quiet gaps
    x[5000:5004] = [0.95, -0.95, 0.95, -0.95]
    c = context_frames()
    x[:c] = x[-c:] = 0.0
    dense, near = peak_envelope(x), peak_envelope_near(x, threshold)
    reaches = dense >= threshold
    assert np.array_equal(near[reaches], dense[reaches])
    assert (near[~reaches] < threshold).all() and (near <= dense).all()
