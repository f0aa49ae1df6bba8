"""An immutable piece of mono audio, float32 in [-1, 1] (int16 only at the edges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from coach.audio.level import ClipLevel


@dataclass(frozen=True, eq=False)
class Clip:
    """Mono samples in [-1, 1] at ``sample_rate_hz``."""

    samples: np.ndarray
    sample_rate_hz: int
    level: ClipLevel | None = None
    """Loudness profile and true peak, when measured (``coach.audio.level``)."""

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError("a Clip is mono: samples must be one-dimensional")
        samples.setflags(write=False)
        object.__setattr__(self, "samples", samples)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @classmethod
    def silence(cls, duration_s: float, sample_rate_hz: int) -> Clip:
        return cls(np.zeros(int(round(duration_s * sample_rate_hz)), dtype=np.float32), sample_rate_hz)
