"""A look-ahead true-peak limiter that streams: smooth gain changes, no clicks, no overshoot.

The gain needed at each sample is ``ceiling / true peak`` (never above 1). It
is held as a minimum over a look-ahead window, recovers with an exponential
release, and is then smoothed by a triangle-weighted average over the same window.
Because every sample's gain is an average of values that were each already low
enough for it, the smoothed gain never lets a peak through, and it reaches
that level gradually (over ``lookahead_s``) instead of jumping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

from coach.audio.loudness import _identical_channels, _phases, context_frames, peak_envelope_near


class Limiter:
    """Limit the true peak of a stream of (frames, channels) blocks to ``ceiling_dbtp``.

    Output lags input by ``delay_frames``; ``process`` returns whatever is ready and
    ``flush`` returns the rest, so the total number of frames out equals frames in.
    ``pre_gains_db`` runs several limiters at once on the input scaled by each gain,
    sharing the costly true-peak analysis: ``process_all``/``flush_all`` return one
    output per gain (the loudness pass uses this to see the limiter at several levels).
    """

    def __init__(
        self,
        sample_rate_hz: int,
        channels: int,
        ceiling_dbtp: float = -1.5,
        lookahead_s: float = 0.005,
        release_s: float = 0.150,
        pre_gains_db: tuple[float, ...] = (0.0,),
    ) -> None:
        self.channels = channels
        self.ceiling = 10 ** (ceiling_dbtp / 20)
        self._look = max(2, int(round(lookahead_s * sample_rate_hz)))
        self._back = 2  # the peak envelope is accurate to about a sample: widen the hold window
        self._context = context_frames()
        log_release = -1.0 / (release_s * sample_rate_hz)  # ln of the per-sample recovery factor
        self._stages = [_GainStage(10 ** (g / 20), self.ceiling, self._look, log_release) for g in pre_gains_db]
        self.delay_frames = self._look + self._context
        # Input not yet output, with past samples in front for the filter and the hold window.
        # The stream is primed with `look` frames of silence whose output is dropped, so the
        # gain can already be falling before the first real frame if that frame is loud.
        self._past = self._back + self._context
        self._buf = np.zeros((self._past + self._look, channels))
        self._discard = self._look
        self.peak_out = 0.0
        """At least the true peak of everything output so far by the first limiter (linear)."""
        self.analysed_frames = 0
        """Frames whose true-peak envelope had to be computed (the bounds did not rule them out)."""
        # The caller's bound on each chunk's true peak (None: unknown), as [frames, bound] in buffer order.
        self._bounds: list[list] = [[len(self._buf), 0.0]]

    @property
    def min_gain(self) -> float:
        """The deepest gain reduction applied so far (linear), by the first limiter."""
        return self._stages[0].min_gain

    def process(self, block: np.ndarray, peak_bound: float | None = None) -> np.ndarray:
        """Take the next input frames; return the frames that are ready (may be fewer).

        ``peak_bound``, when given, is at least the true peak of ``block`` (linear):
        where every bound around a stretch keeps it under the ceiling, the limiter
        passes it through without analysing it (the master knows its clips' peaks).
        """
        return self.process_all(block, peak_bound)[0]

    def flush(self) -> np.ndarray:
        """Return the last frames (as if silence followed them)."""
        return self.flush_all()[0]

    def process_all(self, block: np.ndarray, peak_bound: float | None = None) -> list[np.ndarray]:
        block = np.asarray(block, dtype=np.float64)
        self._buf = np.concatenate([self._buf, block])
        self._bounds.append([len(block), peak_bound])
        ready = len(self._buf) - self._past - self._look - self._context
        if ready <= 0:
            return [np.zeros((0, self.channels), dtype=np.float32) for _ in self._stages]
        outs = self._limit(ready)
        self._consume(ready)
        return self._drop_primer(outs)

    def flush_all(self) -> list[np.ndarray]:
        pending = len(self._buf) - self._past
        if pending <= 0:
            return [np.zeros((0, self.channels), dtype=np.float32) for _ in self._stages]
        pad = self._look + self._context
        self._buf = np.concatenate([self._buf, np.zeros((pad, self.channels))])
        self._bounds.append([pad, 0.0])
        outs = self._limit(pending)
        self._buf = self._buf[:0]
        self._bounds = [[0, 0.0]]
        return self._drop_primer(outs)

    def _consume(self, frames: int) -> None:
        self._buf = self._buf[frames:]
        while frames > 0 and self._bounds:
            take = min(frames, self._bounds[0][0])
            self._bounds[0][0] -= take
            frames -= take
            if self._bounds[0][0] == 0:
                self._bounds.pop(0)

    def _bound(self, first: int, last: int) -> float | None:
        """The largest caller bound over buffer frames [first, last), None if any is unknown."""
        out, pos = 0.0, 0
        for frames, bound in self._bounds:
            if pos >= last:
                break
            if pos + frames > first and frames:
                if bound is None:
                    return None
                out = max(out, bound)
            pos += frames
        return out

    def _drop_primer(self, outs: list[np.ndarray]) -> list[np.ndarray]:
        if self._discard:
            dropped = min(self._discard, len(outs[0]))
            self._discard -= dropped
            outs = [out[dropped:] for out in outs]
        return outs

    def _limit(self, ready: int) -> list[np.ndarray]:
        """Output frames [past, past + ready) of the buffer, which holds enough context around them."""
        p, look, back, c = self._past, self._look, self._back, self._context
        # Gain needed from n - back to n + look, for every n being output.
        segment = self._buf[p - back - c : p + ready + look + c]
        x = self._buf[p : p + ready]
        bound = self._bound(p - back - c, p + ready + look + c)
        first = self._stages[0]
        if bound is not None and all(bound * st.pre_gain <= self.ceiling and st.idle for st in self._stages):
            self.peak_out = max(self.peak_out, bound * first.pre_gain)
            return [(x * st.pre_gain).astype(np.float32) for st in self._stages]
        peak = float(np.max(np.abs(segment)))
        env = None
        outs = []
        for stage in self._stages:
            # Far below the ceiling, inter-sample peaks cannot reach it (they stay well within +6 dB).
            if peak * stage.pre_gain * 2 <= self.ceiling and stage.idle:
                if stage is first:
                    self.peak_out = max(self.peak_out, peak * stage.pre_gain * 2)
                outs.append((x * stage.pre_gain).astype(np.float32))
                continue
            if env is None:
                chans = [0] if _identical_channels(segment) else range(self.channels)
                # Exact only where some stage could need gain: below that a stage leaves it at 1.
                threshold = self.ceiling / max(st.pre_gain for st in self._stages)
                env = np.max([peak_envelope_near(segment[:, ch], threshold) for ch in chans], axis=0)
                env_peak = float(env.max())
                if env_peak < threshold:
                    # Nowhere near: the true peak is under the threshold, and under |h| times the samples'.
                    env_peak = min(threshold, peak * _phase_gain())
                self.analysed_frames += ready
            if stage is first:
                self.peak_out = max(self.peak_out, min(self.ceiling, env_peak * stage.pre_gain))
            if env_peak * stage.pre_gain <= self.ceiling and stage.idle:
                outs.append((x * stage.pre_gain).astype(np.float32))
                continue
            gain = stage.gains(env, ready, back + look + 1)
            outs.append((x * (gain * stage.pre_gain)[:, None]).astype(np.float32))
        return outs


def _phase_gain() -> float:
    """The interpolation filter's largest phase sum |h|: no interpolated point exceeds it times its samples."""
    return float(np.abs(_phases()).sum(axis=1).max())


class _GainStage:
    """The gain computer of one limiter: hold the needed gain, release it slowly, smooth it."""

    def __init__(self, pre_gain: float, ceiling: float, look: int, log_release: float) -> None:
        self.pre_gain = pre_gain
        self.ceiling = ceiling
        self.look = look
        self.log_release = log_release
        # Two running means whose lengths add up to look + 1 taps: a triangular window, in O(n).
        self.box_lengths = ((look + 2) // 2, look + 2 - (look + 2) // 2)
        self.release_depth = 0.0  # 1 - gain after the release stage, at the last output sample
        self.history = np.ones(look)  # released gain of the last samples, for smoothing
        self.min_gain = 1.0

    @property
    def idle(self) -> bool:
        return self.release_depth == 0.0 and bool(self.history.min() == 1.0)

    def gains(self, env: np.ndarray, ready: int, hold: int) -> np.ndarray:
        """The smoothed gain for ``ready`` samples, from the true-peak envelope around them."""
        with np.errstate(divide="ignore"):
            need = np.minimum(1.0, self.ceiling / (env * self.pre_gain))
        held = _sliding_min(need, hold)  # held[i] = min over [n - back, n + look]
        released = 1.0 - self._release(1.0 - held)
        history = np.concatenate([self.history, released])
        # Each gain is a triangle-weighted mean of the last look + 1 released gains, all low enough for it.
        smoothed = _running_mean(_running_mean(history, self.box_lengths[0]), self.box_lengths[1])
        gain = np.minimum(1.0, smoothed[-ready:])
        self.history = history[-self.look :]
        self.min_gain = min(self.min_gain, float(gain.min()))
        return gain

    def _release(self, depth: np.ndarray) -> np.ndarray:
        """depth_out[n] = max(depth[n], r * depth_out[n-1]): instant attack, exponential recovery.

        Computed without a Python loop: log depth_out[n] = n ln r + max_k (log depth[k] - k ln r).
        """
        n = np.arange(len(depth) + 1)
        with np.errstate(divide="ignore"):
            logs = np.log(np.concatenate([[self.release_depth], depth]))
        shifted = logs - n * self.log_release
        out = np.exp(np.maximum.accumulate(shifted) + n * self.log_release)[1:]
        out = np.maximum(out, depth)  # exact where the input itself is the maximum
        self.release_depth = float(out[-1]) if out[-1] > 1e-9 else 0.0
        return out


def _running_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Mean of every window of ``width`` consecutive values (len(values) - width + 1 results)."""
    sums = np.cumsum(np.concatenate([[0.0], values]))
    return (sums[width:] - sums[:-width]) / width


def _sliding_min(values: np.ndarray, width: int) -> np.ndarray:
    """Minimum of every window of ``width`` consecutive values (len(values) - width + 1 results).

    The van Herk / Gil-Werman scheme in numpy (a running minimum from each block's start
    and from its end, blocks of ``width``): the same minima as ``scipy.ndimage.minimum_filter1d``,
    without importing scipy.ndimage (26 MB of resident memory).
    """
    values = np.asarray(values)
    count = len(values) - width + 1
    if count <= 0:
        return values[:0].copy()
    if width <= 1:
        return values.copy()
    blocks = -(-len(values) // width)
    padded = np.full(blocks * width, np.inf, dtype=values.dtype)
    padded[: len(values)] = values
    grid = padded.reshape(blocks, width)
    from_start = np.minimum.accumulate(grid, axis=1).ravel()
    from_end = np.minimum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()
    # The window [i, i + width) runs from inside one block to inside the next (or is one block).
    return np.minimum(from_end[:count], from_start[width - 1 : width - 1 + count])


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
