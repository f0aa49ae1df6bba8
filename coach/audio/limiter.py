"""A look-ahead true-peak limiter that streams: smooth gain changes, no clicks, no overshoot.

The gain needed at each sample is ``ceiling / true peak`` (never above 1). It
is held as a minimum over a look-ahead window, recovers with an exponential
release, and is then smoothed by a Hann-weighted average over the same window.
Because every sample's gain is an average of values that were each already low
enough for it, the smoothed gain never lets a peak through, and it reaches
that level gradually (over ``lookahead_s``) instead of jumping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from coach.audio.loudness import _identical_channels, context_frames, peak_envelope


class Limiter:
    """Limit the true peak of a stream of (frames, channels) blocks to ``ceiling_dbtp``.

    Output lags input by ``delay_frames``; ``process`` returns whatever is ready and
    ``flush`` returns the rest, so the total number of frames out equals frames in.
    """

    def __init__(
        self,
        sample_rate_hz: int,
        channels: int,
        ceiling_dbtp: float = -1.5,
        lookahead_s: float = 0.005,
        release_s: float = 0.150,
    ) -> None:
        self.channels = channels
        self.ceiling = 10 ** (ceiling_dbtp / 20)
        self._look = max(2, int(round(lookahead_s * sample_rate_hz)))
        self._back = 2  # the peak envelope is accurate to about a sample: widen the hold window
        self._context = context_frames()
        self._log_release = -1.0 / (release_s * sample_rate_hz)  # ln of the per-sample recovery factor
        window = np.hanning(self._look + 3)[1:-1]  # Hann without its zero ends, look + 1 taps
        self._smooth = window / window.sum()
        self.delay_frames = self._look + self._context
        # Input not yet output, with past samples in front for the filter and the hold window.
        self._past = self._back + self._context
        # The stream is primed with `look` frames of silence whose output is dropped, so the
        # gain can already be falling before the first real frame if that frame is loud.
        self._buf = np.zeros((self._past + self._look, channels))
        self._discard = self._look
        self._release_depth = 0.0  # 1 - gain after the release stage, at the last output sample
        self._gain_history = np.ones(self._look)  # released gain of the last samples, for smoothing
        self.min_gain = 1.0
        """The deepest gain reduction applied so far (linear)."""

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take the next input frames; return the frames that are ready (may be fewer)."""
        block = np.asarray(block, dtype=np.float64)
        self._buf = np.concatenate([self._buf, block])
        ready = len(self._buf) - self._past - self._look - self._context
        if ready <= 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        out = self._limit(ready)
        self._buf = self._buf[ready:]
        return self._drop_primer(out)

    def _drop_primer(self, out: np.ndarray) -> np.ndarray:
        if self._discard:
            dropped = min(self._discard, len(out))
            self._discard -= dropped
            out = out[dropped:]
        return out

    def flush(self) -> np.ndarray:
        """Return the last frames (as if silence followed them)."""
        pending = len(self._buf) - self._past
        if pending <= 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        self._buf = np.concatenate([self._buf, np.zeros((self._look + self._context, self.channels))])
        out = self._limit(pending)
        self._buf = self._buf[:0]
        return self._drop_primer(out)

    def _limit(self, ready: int) -> np.ndarray:
        """Output frames [past, past + ready) of the buffer, which holds enough context around them."""
        p, look, back, c = self._past, self._look, self._back, self._context
        # Gain needed from n - back to n + look, for every n being output.
        segment = self._buf[p - back - c : p + ready + look + c]
        x = self._buf[p : p + ready]
        if np.max(np.abs(segment)) * 2 <= self.ceiling and self._release_depth == 0.0:
            # Far below the ceiling: inter-sample peaks cannot reach it (they stay well within +6 dB).
            self._gain_history = np.ones(look)
            return x.astype(np.float32)
        chans = [0] if _identical_channels(segment) else range(self.channels)
        env = np.max([peak_envelope(segment[:, ch]) for ch in chans], axis=0)
        with np.errstate(divide="ignore"):
            need = np.minimum(1.0, self.ceiling / env)
        held = _sliding_min(need, back + look + 1)  # held[i] = min over [n - back, n + look]
        depth = self._release(1.0 - held)
        released = 1.0 - depth
        history = np.concatenate([self._gain_history, released])
        gain = np.convolve(history, self._smooth, mode="valid")[-ready:]
        self._gain_history = history[-look:]
        self.min_gain = min(self.min_gain, float(gain.min()))
        return (x * gain[:, None]).astype(np.float32)

    def _release(self, depth: np.ndarray) -> np.ndarray:
        """depth_out[n] = max(depth[n], r * depth_out[n-1]): instant attack, exponential recovery.

        Computed without a Python loop: log depth_out[n] = n ln r + max_k (log depth[k] - k ln r).
        """
        n = np.arange(len(depth) + 1)
        with np.errstate(divide="ignore"):
            logs = np.log(np.concatenate([[self._release_depth], depth]))
        shifted = logs - n * self._log_release
        out = np.exp(np.maximum.accumulate(shifted) + n * self._log_release)[1:]
        out = np.maximum(out, depth)  # exact where the input itself is the maximum
        self._release_depth = float(out[-1]) if out[-1] > 1e-9 else 0.0
        return out


def _sliding_min(values: np.ndarray, width: int) -> np.ndarray:
    """Minimum of every window of ``width`` consecutive values (len(values) - width + 1 results)."""
    from scipy.ndimage import minimum_filter1d

    centred = minimum_filter1d(values, size=width, mode="nearest")
    half = width // 2
    return centred[half : len(values) - (width - 1 - half)]


def limit_blocks(
    blocks: Iterable[np.ndarray], sample_rate_hz: int, channels: int, ceiling_dbtp: float = -1.5
) -> Iterator[np.ndarray]:
    """Stream ``blocks`` through a Limiter; yields the same total number of frames."""
    limiter = Limiter(sample_rate_hz, channels, ceiling_dbtp)
    for block in blocks:
        out = limiter.process(block)
        if len(out):
            yield out
    tail = limiter.flush()
    if len(tail):
        yield tail


def db_to_gain(gain_db: float) -> float:
    return 10 ** (gain_db / 20)


def gain_to_db(gain: float) -> float:
    return 20 * math.log10(gain) if gain > 0 else -math.inf
