"""The level of one clip: its loudness profile and true peak, and a clip brought to a fixed loudness.

Loudness by construction. Every cue of a session is known before its first
sample is heard, so the session's loudness need not be measured by rendering it:
each clip is analysed once (when it is cached, for speech) into

- its K-weighted power every 10 ms (``ClipLevel.energy``), from which the
  master sums the session's 100 ms steps and gates them as BS.1770 does;
- its true peak, from which the master knows where its limiter has nothing to do.

Speech clips are normalized once to ``SPEECH_LUFS``; earcons are balanced once
``EARCON_BELOW_SPEECH_LU`` under it. The master then applies one gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from coach.audio.clip import Clip
from coach.audio.loudness import BLOCK_S, STEP_S, TARGET_LUFS, LoudnessMeter, gated_lufs, k_weighting_sos

PROFILE_STEP_S = 0.01
"""Resolution of a clip's loudness profile: where a clip lands inside a 100 ms gating step."""
SPEECH_LUFS = TARGET_LUFS - 3.0
"""Integrated loudness (one channel) every speech clip is normalized to: spread to two channels
a meter reads 3 dB more, so a stereo session needs almost no gain to sit at the target."""
CLIP_CEILING_DBTP = -3.0
"""A normalized clip whose true peak would pass this (16 dB over its loudness: espeak-ng and Piper speech
peaks 16-22 dB over it, so most long clips are limited by a few dB; at -16 LUFS that is unavoidable) is
limited to it, once, when it is cached. Limiting takes up to about 1 LU off such a clip, which the master's
gain gives back; this ceiling leaves that gain room under the master's (-1.5 dBTP), so for a speech session
the master's limiter has nothing to do and no measuring render is needed before the first sample plays."""
MAKE_UP_LU = 1.0
"""A limited clip more than this under its target loudness is brought up once more (and limited again)."""
EARCON_BELOW_SPEECH_LU = 3.0
"""An earcon's loudest 400 ms stays this far below the speech's loudness."""
RING_S = 0.05
"""The K-weighting filter rings on after a clip ends; the profile includes this much."""


@dataclass(frozen=True, eq=False)
class ClipLevel:
    """What the master needs to know about a clip's level, measured once."""

    loudness_lufs: float
    """Integrated loudness of the clip alone (one channel; -inf for silence)."""
    true_peak: float
    """Highest 4x-oversampled absolute value (linear)."""
    energy: np.ndarray
    """K-weighted mean square of each 10 ms from the clip's first sample (float32)."""

    def __post_init__(self) -> None:
        energy = np.asarray(self.energy, dtype=np.float32)
        energy.setflags(write=False)
        object.__setattr__(self, "energy", energy)


def analyse(samples: np.ndarray, sample_rate_hz: int, true_peak: float | None = None) -> ClipLevel:
    """The level of mono ``samples``, as if silence surrounded them.

    ``true_peak``, when the caller knows it (a limiter's output), is taken instead of measured.
    """
    from coach.audio.iir import sosfilt

    from coach.audio.loudness import true_peak as measure_true_peak

    x = np.asarray(samples, dtype=np.float64)
    step = max(1, int(round(PROFILE_STEP_S * sample_rate_hz)))
    if len(x) == 0 or not x.any():
        return ClipLevel(-math.inf, 0.0, np.zeros(0, np.float32))
    # One K-weighting pass serves both: the 10 ms profile (with the filter's ring) and the integrated
    # loudness as a meter would read the clip in silence (a short word still fills a 400 ms block).
    ring = int(RING_S * sample_rate_hz)
    tail = max(ring, int(BLOCK_S * sample_rate_hz))
    power = sosfilt(k_weighting_sos(sample_rate_hz), np.concatenate([x, np.zeros(tail)])) ** 2
    weighted = power[: len(x) + ring]
    steps = -(-len(weighted) // step)
    weighted = np.concatenate([weighted, np.zeros(steps * step - len(weighted))])
    energy = weighted.reshape(steps, step).mean(axis=1)
    if true_peak is None:
        true_peak = measure_true_peak(x)
    return ClipLevel(_integrated_lufs(power, sample_rate_hz), true_peak, energy.astype(np.float32))


def _integrated_lufs(power: np.ndarray, sample_rate_hz: int) -> float:
    """What ``LoudnessMeter`` reads from mono K-weighted ``power``: 400 ms blocks of four 100 ms steps, gated."""
    per_block = int(round(BLOCK_S / STEP_S))
    edges = np.round(np.arange(len(power) / (STEP_S * sample_rate_hz) + 1) * STEP_S * sample_rate_hz).astype(np.int64)
    edges = edges[edges <= len(power)]  # whole steps only, as the meter finishes them
    if len(edges) < per_block + 1:
        return -math.inf
    total = np.concatenate([[0.0], np.cumsum(power)])
    sums = total[edges[1:]] - total[edges[:-1]]
    block_sums = np.convolve(sums, np.ones(per_block), mode="valid")
    block_frames = edges[per_block:] - edges[:-per_block]
    return gated_lufs(block_sums / block_frames)


def leveled(clip: Clip, gain_db: float = 0.0) -> Clip:
    """``clip`` scaled by ``gain_db``, carrying its level."""
    samples = clip.samples if gain_db == 0 else clip.samples * np.float32(10 ** (gain_db / 20))
    return Clip(samples, clip.sample_rate_hz, level=analyse(samples, clip.sample_rate_hz))


def normalize_speech(clip: Clip, target_lufs: float = SPEECH_LUFS, ceiling_dbtp: float = CLIP_CEILING_DBTP) -> Clip:
    """``clip`` brought to ``target_lufs``, true peaks held at ``ceiling_dbtp``, with its level.

    A silent clip stays silent. Normalization never amplifies by more than 30 dB
    (a whisper of noise is not speech).
    """
    if not len(clip.samples) or not clip.samples.any():
        return Clip(clip.samples, clip.sample_rate_hz, level=ClipLevel(-math.inf, 0.0, np.zeros(0, np.float32)))
    level = clip.level
    exact_peak = level is not None
    if level is None:
        # The sample peak for now, a lower bound of the true peak: a clip whose samples alone pass the
        # ceiling is limited, and the limiter knows its output's true peak (most clips: no
        # interpolation of the input at all). Measured exactly only where it decides.
        level = analyse(clip.samples, clip.sample_rate_hz, true_peak=float(np.max(np.abs(clip.samples))))
    from coach.audio.loudness import true_peak

    source = clip.samples.astype(np.float64)
    if not math.isfinite(level.loudness_lufs):
        if not exact_peak:
            level = replace(level, true_peak=true_peak(source))
        return Clip(clip.samples, clip.sample_rate_hz, level=level)
    ceiling = 10 ** (ceiling_dbtp / 20)
    gain_db = min(30.0, target_lufs - level.loudness_lufs)
    for round_ in range(2):
        gain = 10 ** (gain_db / 20)
        samples = source * gain
        if level.true_peak * gain <= ceiling and not exact_peak:
            level = replace(level, true_peak=true_peak(source))
            exact_peak = True
        if level.true_peak * gain <= ceiling:
            # Only scaled: its level is the original's, scaled (the filter is linear), no second analysis.
            samples = samples.astype(np.float32)
            made = ClipLevel(level.loudness_lufs + gain_db, level.true_peak * gain,
                             level.energy.astype(np.float64) * gain * gain)
            break
        from coach.audio.limiter import Limiter

        limiter = Limiter(clip.sample_rate_hz, 1, ceiling_dbtp)
        samples = np.concatenate([limiter.process(samples[:, None]), limiter.flush()])[:, 0].astype(np.float32)
        # The limiter knows the true peak it let through (at most the ceiling): no second measurement.
        made = analyse(samples, clip.sample_rate_hz, true_peak=limiter.peak_out)
        short = target_lufs - made.loudness_lufs
        # A short, peaky word can lose a few LU to the limiter: give it back once, so every cue
        # sits within about MAKE_UP_LU of the others (most clips lose less and need no second round).
        if round_ or not math.isfinite(short) or short <= MAKE_UP_LU or gain_db >= 30.0:
            break
        gain_db = min(30.0, gain_db + short)
    return Clip(samples, clip.sample_rate_hz, level=made)


def balance_earcon(clip: Clip, speech_lufs: float = SPEECH_LUFS) -> Clip:
    """An earcon turned down, if needed, so its loudest 400 ms stays under the speech; with its level."""
    meter = LoudnessMeter(clip.sample_rate_hz, 1)
    pad = np.zeros(int(BLOCK_S * clip.sample_rate_hz), dtype=np.float32)
    meter.add(np.concatenate([clip.samples, pad])[:, None])
    loudest = meter.max_momentary_lufs()
    gain_db = min(0.0, speech_lufs - EARCON_BELOW_SPEECH_LU - loudest) if math.isfinite(loudest) else 0.0
    return leveled(clip, gain_db)


PREDICT_CHUNK_STEPS = 1500
"""``predict_steps`` works out this many 100 ms steps at a time (150 s: 120 kB of 10 ms cells), so its
memory does not grow with the session (a 2-hour session's cells at once would be 5.8 MB)."""


def predict_steps(placed: list[tuple[float, ClipLevel, float]], duration_s: float) -> np.ndarray:
    """The K-weighted power of each 100 ms of a session of ``(start_s, level, gain)`` clips (one channel).

    Each clip's 10 ms energies, scaled by ``gain`` squared, are added where the clip
    starts (uncorrelated sounds add in power), then averaged into 100 ms steps.
    The 10 ms cells are summed a chunk of steps at a time, each clip's energies
    added in the order of ``placed``: the same sums, to the bit, as all cells at once.
    """
    per_step = int(round(STEP_S / PROFILE_STEP_S))
    cells = int(math.ceil(duration_s / PROFILE_STEP_S)) + per_step
    steps = cells // per_step
    out = np.zeros(steps, dtype=np.float64)
    if not placed or not steps:
        return out
    firsts = np.array([int(round(start_s / PROFILE_STEP_S)) for start_s, _, _ in placed], dtype=np.int64)
    ends = np.minimum(cells, firsts + np.array([len(level.energy) for _, level, _ in placed], dtype=np.int64))
    sounding = (ends > firsts) & (firsts >= 0)
    for step0 in range(0, steps, PREDICT_CHUNK_STEPS):
        step1 = min(steps, step0 + PREDICT_CHUNK_STEPS)
        lo, hi = step0 * per_step, step1 * per_step
        fine = np.zeros(hi - lo, dtype=np.float64)
        for k in np.flatnonzero(sounding & (firsts < hi) & (ends > lo)):  # in the order of ``placed``
            _, level, gain = placed[k]
            first = int(firsts[k])
            a, b = max(first, lo), min(int(ends[k]), hi)
            fine[a - lo : b - lo] += level.energy[a - first : b - first].astype(np.float64) * gain * gain
        out[step0:step1] = fine.reshape(-1, per_step).mean(axis=1)
    return out


def steps_lufs(step_powers: np.ndarray) -> float:
    """Integrated loudness of 100 ms step powers, in 400 ms blocks every 100 ms, gated as BS.1770 gates."""
    per_block = int(round(BLOCK_S / STEP_S))
    if len(step_powers) < per_block:
        return -math.inf
    return gated_lufs(np.convolve(step_powers, np.ones(per_block), mode="valid") / per_block)


def predict_lufs(placed: list[tuple[float, ClipLevel, float]], duration_s: float, channels: int = 1) -> float:
    """Integrated loudness of a session of ``(start_s, level, gain)`` clips, without rendering it.

    ``channels`` identical channels add 10 log10(channels) dB, as a meter sums them.
    """
    return steps_lufs(predict_steps(placed, duration_s) * channels)
