"""Trim the silence around speech so a cue's clip starts and ends where its words do.

espeak-ng adds 0-45 ms before the first sound and ~235-410 ms of digital
silence after the last; left in, a 3-2-1 countdown drifts off the beat.
``trim_silence`` keeps exactly ``keep_s`` (10 ms) before the first and after
the last sample louder than ``threshold_db`` below the clip's peak (padding
with silence where the engine left less, as espeak does for "One"), so every
clip's speech starts ``keep_s`` into it. The new edges are faded over
``fade_s``: a cut through a quiet tail or noise floor never clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coach.audio.clip import Clip


@dataclass(frozen=True)
class TrimSettings:
    """How speech clips are trimmed (part of the cache key: changing these re-synthesizes)."""

    threshold_db: float = -40.0
    """Samples quieter than this, relative to the clip's peak, count as silence."""
    keep_s: float = 0.010
    """Silence kept (or padded) before the first and after the last loud sample."""
    fade_s: float = 0.005
    """Raised-cosine fade at each new edge, within the kept silence where there is room."""

    def key(self) -> str:
        return f"trim(threshold_db={self.threshold_db:g},keep_s={self.keep_s:g},fade_s={self.fade_s:g})"


DEFAULT_TRIM = TrimSettings()


def speech_bounds(samples: np.ndarray, threshold_db: float) -> tuple[int, int] | None:
    """Index of the first loud sample and one past the last, or None if all is silence."""
    if samples.size == 0:
        return None
    magnitude = np.abs(samples)
    peak = float(magnitude.max())
    if peak <= 0.0:
        return None
    loud = np.flatnonzero(magnitude > peak * 10.0 ** (threshold_db / 20.0))
    return int(loud[0]), int(loud[-1]) + 1


def trim_silence(clip: Clip, settings: TrimSettings = DEFAULT_TRIM) -> Clip:
    """``clip`` without its leading and trailing silence (an empty clip if it is all silence)."""
    bounds = speech_bounds(clip.samples, settings.threshold_db)
    if bounds is None:
        return Clip(np.zeros(0, dtype=np.float32), clip.sample_rate_hz)
    keep = int(round(settings.keep_s * clip.sample_rate_hz))
    start, end = bounds[0] - keep, bounds[1] + keep
    samples = np.zeros(end - start, dtype=np.float32)
    source_start, source_end = max(0, start), min(len(clip.samples), end)
    samples[source_start - start : source_end - start] = clip.samples[source_start:source_end]
    fade = min(int(round(settings.fade_s * clip.sample_rate_hz)), len(samples) // 2)
    if fade > 0:
        # Half a cosine from 0 to 1: no step at the edge and no kink where it meets the speech.
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade + 2)[1:-1])).astype(np.float32)
        samples[:fade] *= ramp
        samples[-fade:] *= ramp[::-1]
    return Clip(samples, clip.sample_rate_hz)
