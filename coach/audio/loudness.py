"""Loudness (ITU-R BS.1770-4) and true peak, measured while the audio streams past.

``LoudnessMeter`` keeps one number per 100 ms of audio (the power of each
400 ms gating block), so a 2-hour session costs about 0.6 MB whatever the
sample rate. ``TruePeakMeter`` oversamples 4x with a polyphase FIR, as Annex 2
of the recommendation describes. Both take float blocks shaped (frames, channels).
"""

from __future__ import annotations

import math
from array import array

import numpy as np

TARGET_LUFS = -16.0
"""Integrated loudness of an exported session (a common level for spoken audio on headphones)."""
MAX_TRUE_PEAK_DBTP = -1.0
"""Highest true peak allowed in an exported session."""

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
BLOCK_S = 0.4
STEP_S = 0.1  # 75 % overlap: a new 400 ms block every 100 ms

OVERSAMPLING = 4
_FIR_TAPS = 97  # odd, so the interpolation delay is a whole number of input samples (12)
_FIR_DELAY = (_FIR_TAPS - 1) // 2 // OVERSAMPLING


def k_weighting_sos(sample_rate_hz: float) -> np.ndarray:
    """The two K-weighting biquads (high shelf, then high pass) for any sample rate, as scipy SOS.

    The analogue prototypes are those behind the 48 kHz coefficients of BS.1770
    (as derived for libebur128), mapped with the bilinear transform, so other
    rates get the same curve.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate_hz)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2 * (k * k - 1) / a0,
        (1 - k / q + k * k) / a0,
    ]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate_hz)
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def _lufs(power: float) -> float:
    return -0.691 + 10 * math.log10(power) if power > 0 else -math.inf


def gated_lufs(block_powers: np.ndarray) -> float:
    """Integrated loudness of 400 ms blocks given by their mean power (summed over channels), gated
    by BS.1770-4: blocks under -70 LUFS, then those 10 LU under the rest, are left out. -inf if none pass."""
    powers = np.asarray(block_powers, dtype=np.float64)
    if len(powers) == 0:
        return -math.inf
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(powers)
    above_absolute = powers[loudness > ABSOLUTE_GATE_LUFS]
    if len(above_absolute) == 0:
        return -math.inf
    relative_gate = _lufs(float(above_absolute.mean())) + RELATIVE_GATE_LU
    gated = powers[(loudness > ABSOLUTE_GATE_LUFS) & (loudness > relative_gate)]
    return _lufs(float(gated.mean()))


def _identical_channels(block: np.ndarray) -> bool:
    """True when every channel equals the first (a mono render spread to stereo): measure one."""
    return block.shape[1] > 1 and bool((block == block[:, :1]).all())


class LoudnessMeter:
    """Integrated loudness (LUFS) of everything fed to it, with BS.1770-4 gating."""

    def __init__(self, sample_rate_hz: int, channels: int) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self._sos = k_weighting_sos(sample_rate_hz)
        # Filter state per channel, starting from rest (silence before the first sample).
        self._zi = np.zeros((channels, self._sos.shape[0], 2))
        self._frames = 0  # frames seen so far
        self._step_index = 0  # index of the 100 ms step being filled
        self._step_power = 0.0  # sum over channels of squared K-weighted samples in this step
        self._steps: list[tuple[float, int]] = []  # the last 3 finished steps: (power sum, frames)
        self._blocks = array("d")  # mean power of every 400 ms block

    def _step_end(self, index: int) -> int:
        return int(round(index * STEP_S * self.sample_rate_hz))

    def add(self, block: np.ndarray) -> None:
        """Feed the next frames, shaped (frames, channels)."""
        from coach.audio.iir import sosfilt

        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected blocks shaped (frames, {self.channels})")
        if len(block) == 0:
            return
        if not block.any() and np.abs(self._zi).max() < 1e-12:
            # Silence into a filter at rest (what is left rings 240 dB down) stays silence:
            # skip the filtering, since sessions are mostly rests.
            self._zi[:] = 0.0
            power = np.zeros(len(block))
        elif _identical_channels(block):
            weighted, self._zi[0] = sosfilt(self._sos, block[:, 0], zi=self._zi[0])
            self._zi[1:] = self._zi[0]
            power = weighted**2 * self.channels
        else:
            power = np.zeros(len(block))
            for ch in range(self.channels):
                weighted, self._zi[ch] = sosfilt(self._sos, block[:, ch], zi=self._zi[ch])
                power += weighted**2  # channel weights are 1.0 for left, right and centre
        start = self._frames
        self._frames += len(block)
        pos = 0
        while pos < len(power):
            step_end = self._step_end(self._step_index + 1)
            take = min(len(power), step_end - start)
            self._step_power += float(power[pos:take].sum())
            pos = take
            if start + take == step_end:
                self._finish_step()

    def _finish_step(self) -> None:
        frames = self._step_end(self._step_index + 1) - self._step_end(self._step_index)
        self._steps.append((self._step_power, frames))
        self._step_power = 0.0
        self._step_index += 1
        if len(self._steps) == 4:
            total = sum(p for p, _ in self._steps)
            self._blocks.append(total / sum(n for _, n in self._steps))
            self._steps.pop(0)

    @property
    def block_count(self) -> int:
        return len(self._blocks)

    def integrated_lufs(self) -> float:
        """Gated integrated loudness so far; -inf if nothing passed the absolute gate."""
        return gated_lufs(np.frombuffer(self._blocks, dtype=np.float64))

    def max_momentary_lufs(self) -> float:
        """Loudness of the loudest 400 ms block (momentary loudness), -inf if silent."""
        powers = np.frombuffer(self._blocks, dtype=np.float64)
        return _lufs(float(powers.max())) if len(powers) else -math.inf


def oversampling_filter() -> np.ndarray:
    """The 4x interpolation FIR (linear phase, flat within 0.05 dB to 16 kHz at 44.1 kHz), as 4 phases.

    A Kaiser-windowed sinc (beta 8, cutoff 0.245 of Nyquist at the 4x rate), normalized to
    unity gain at DC: what scipy's firwin designs, built with numpy alone so that using the
    meter or the limiter does not import scipy.signal (half a second at start-up).
    """
    m = np.arange(_FIR_TAPS) - (_FIR_TAPS - 1) / 2
    h = 0.245 * np.sinc(0.245 * m) * np.kaiser(_FIR_TAPS, 8.0)
    h = h / h.sum() * OVERSAMPLING
    phases = np.zeros((OVERSAMPLING, (_FIR_TAPS + OVERSAMPLING - 1) // OVERSAMPLING))
    for p in range(OVERSAMPLING):
        taps = h[p::OVERSAMPLING]
        phases[p, : len(taps)] = taps
    return phases


_PHASES: np.ndarray | None = None


def _phases() -> np.ndarray:
    global _PHASES
    if _PHASES is None:
        _PHASES = oversampling_filter()
    return _PHASES


def peak_envelope(x: np.ndarray) -> np.ndarray:
    """Per input sample, the largest absolute value of the 4x-interpolated signal nearby.

    ``x`` is mono float64 with ``context_frames()`` extra samples of context at
    each end; the result has ``len(x) - 2 * context_frames()`` values, one per
    inner sample n, covering the interpolated points between n and n+1.
    """
    phases = _phases()
    taps = phases.shape[1]
    c = context_frames()
    n_out = max(0, len(x) - 2 * c)
    env = np.zeros(n_out)
    # Full convolution of phase p at index m, sum_k h[4k+p] x[m-k], is the signal at time
    # m - _FIR_DELAY + p/4; "valid" output index j is full index j + taps - 1 and reads
    # x[j : j + taps]. Output n reads valid index first + n.
    first = c + _FIR_DELAY - (taps - 1)
    loud = np.flatnonzero(x)
    if n_out == 0 or len(loud) == 0:
        return env
    # Sessions are mostly silence: only the samples whose window reaches a non-zero input
    # can be non-zero, so convolve just that stretch.
    lo = max(0, int(loud[0]) - first - taps + 1)
    hi = min(n_out, int(loud[-1]) - first + 1)
    if lo >= hi:
        return env
    part = x[first + lo : first + hi + taps - 1]
    out = None
    for p in range(OVERSAMPLING):
        # np.convolve (direct) beats FFT convolution for these 25-tap phases by ~2.5x.
        y = np.abs(np.convolve(part, phases[p], mode="valid"))
        out = y if out is None else np.maximum(out, y)
    # The samples themselves count too: the filter's centre tap is a little under 1.
    env[lo:hi] = np.maximum(out, np.abs(x[c + lo : c + hi]))
    return env


def peak_envelope_near(x: np.ndarray, threshold: float) -> np.ndarray:
    """``peak_envelope(x)`` wherever it can reach ``threshold``; elsewhere the samples' own level.

    A point's interpolated value is at most the filter's largest phase sum |h| times the
    largest sample in its window, so only the points whose window holds a sample at or
    above ``threshold / |h|`` can reach the threshold: those get the exact envelope (the
    same numbers as ``peak_envelope``), the others ``|x|``, which is below the threshold
    too (a limiter needs no gain there either way).
    """
    phases = _phases()
    taps = phases.shape[1]
    c = context_frames()
    n_out = max(0, len(x) - 2 * c)
    level = np.abs(x)
    env = level[c : c + n_out].copy()
    if n_out == 0:
        return env
    gain = float(np.abs(phases).sum(axis=1).max())
    hot = level * gain >= threshold
    if not hot.any():
        return env
    # Output n reads x[first + n : first + n + taps].
    first = c + _FIR_DELAY - (taps - 1)
    count = np.concatenate([[0], np.cumsum(hot)])
    n = np.arange(n_out)
    near = count[np.minimum(len(x), first + n + taps)] - count[np.maximum(0, first + n)] > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[False], near, [False]]).astype(np.int8)))
    runs = edges.reshape(-1, 2)
    # Runs under 8 filter lengths apart are computed as one: fewer, longer convolutions (~4% less time
    # normalizing speech; the points between get their exact envelope, which is under the threshold too).
    merged: list[list[int]] = []
    for lo, hi in runs:
        if merged and lo - merged[-1][1] < 8 * taps:
            merged[-1][1] = int(hi)
        else:
            merged.append([int(lo), int(hi)])
    for lo, hi in merged:
        env[lo:hi] = peak_envelope(x[lo : hi + 2 * c])
    return env


def context_frames() -> int:
    """Samples of context ``peak_envelope`` needs on each side of the samples it describes."""
    return _phases().shape[1]


class TruePeakMeter:
    """The highest true peak (4x oversampled) of everything fed to it, in linear units."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._context = context_frames()
        self._tail = np.zeros((2 * self._context, channels))  # last samples seen, for the FIR
        self.peak = 0.0

    def add(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float64)
        if len(block) == 0:
            return
        joined = np.concatenate([self._tail, block])
        chans = [0] if _identical_channels(joined) else range(self.channels)
        for ch in chans:
            env = peak_envelope(joined[:, ch])
            self.peak = max(self.peak, float(env.max()) if len(env) else 0.0)
        self._tail = joined[-2 * self._context :]

    def finish(self) -> float:
        """Flush the last samples (as if silence followed) and return the peak."""
        self.add(np.zeros((2 * self._context, self.channels)))
        return self.peak

    @property
    def peak_dbtp(self) -> float:
        return 20 * math.log10(self.peak) if self.peak > 0 else -math.inf


def true_peak(samples: np.ndarray) -> float:
    """What ``TruePeakMeter`` reads from mono ``samples`` surrounded by silence (linear), faster.

    The 4x-interpolated signal at a point is a sum over the FIR's window, so it is at most
    the filter's largest phase sum |h| times the window's largest sample: where that stays
    under the sample peak, no point between samples can pass it. Only the points whose
    window holds a sample within that factor of the peak are interpolated (for speech a
    few percent of them), in pieces so that memory stays small.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.asarray(samples, dtype=np.float64).ravel()
    level = np.abs(x)
    if not len(x) or not level.any():
        return 0.0
    phases = _phases()
    taps = phases.shape[1]
    peak = float(level.max())
    gain = float(np.abs(phases).sum(axis=1).max())
    # In padded coordinates point m (the points between m and m+1) reads samples m+D-taps+1 .. m+D.
    pad = taps + _FIR_DELAY
    padded = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    hot = np.zeros(len(padded) + 1, dtype=np.int64)
    hot[pad + 1 : pad + 1 + len(x)] = level * gain >= peak
    count = np.cumsum(hot)  # count[i]: hot samples before padded index i
    m = np.arange(taps - 1 - _FIR_DELAY, len(padded) - _FIR_DELAY)  # points whose window lies inside
    points = m[count[m + _FIR_DELAY + 1] - count[m + _FIR_DELAY - taps + 1] > 0]
    windows = sliding_window_view(padded, taps)
    reversed_phases = phases[:, ::-1].T  # (taps, 4): y_p(m) = window(m) . reversed phase p
    for start in range(0, len(points), TRUE_PEAK_PIECE):
        chunk = points[start : start + TRUE_PEAK_PIECE]
        interpolated = windows[chunk + _FIR_DELAY - taps + 1] @ reversed_phases
        peak = max(peak, float(np.abs(interpolated).max()))
    return peak


TRUE_PEAK_PIECE = 4096
"""Interpolation points computed at once by ``true_peak`` (4096 x taps floats: 3 MB)."""


def true_peak_dbtp(samples: np.ndarray) -> float:
    """True peak of a whole array shaped (frames,) or (frames, channels), in dBTP."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    meter = TruePeakMeter(samples.shape[1])
    meter.add(samples)
    meter.finish()
    return meter.peak_dbtp


def integrated_lufs(samples: np.ndarray, sample_rate_hz: int) -> float:
    """Integrated loudness of a whole array shaped (frames,) or (frames, channels)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    meter = LoudnessMeter(sample_rate_hz, samples.shape[1])
    meter.add(samples)
    return meter.integrated_lufs()
