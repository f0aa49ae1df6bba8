"""Synthetic timelines and clips for the audio and export tests (no speech engine needed)."""

from __future__ import annotations

import numpy as np

from coach.audio.clip import Clip
from coach.audio.earcons import load_sound
from coach.timeline import Chapter, Cue, Timeline, VoiceSpec


def tone(duration_s: float, freq_hz: float, rate_hz: int = 22050, amplitude: float = 0.5) -> Clip:
    """A sine with 5 ms raised-cosine ends (a stand-in for a trimmed speech clip)."""
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    x = amplitude * np.sin(2 * np.pi * freq_hz * t)
    ramp = int(0.005 * rate_hz)
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    x[:ramp] *= fade
    x[-ramp:] *= fade[::-1]
    return Clip(x.astype(np.float32), rate_hz)


def speechlike(duration_s: float, seed: int, rate_hz: int = 22050) -> Clip:
    """Noise shaped like speech: syllable-rate amplitude bursts, band-limited, a high crest factor."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * rate_hz))
    t = np.arange(n) / rate_hz
    voiced = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) / k for k, f in enumerate((140, 280, 420, 700, 1100), 1))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.3)), 0, None) ** 2
    x = 0.9 * voiced * envelope + 0.02 * rng.standard_normal(n) * envelope
    ramp = int(0.01 * rate_hz)
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    x[:ramp] *= fade
    x[-ramp:] *= fade[::-1]
    x *= 0.7 / np.max(np.abs(x))
    return Clip(x.astype(np.float32), rate_hz)


def session(duration_s: float, *, cue_every_s: float = 6.0, chapter_every_s: float = 60.0) -> Timeline:
    """A synthetic session: a speech cue every cue_every_s seconds, a tick after each, chapters every minute."""
    cues = []
    t = 1.0
    k = 0
    while t + 3.0 < duration_s:
        cues.append(Cue(start_s=round(t, 3), end_s=round(t + 2.0, 3), kind="speech", phase="instruction", text=f"line {k % 7}"))
        cues.append(Cue(start_s=round(t + 2.5, 3), end_s=round(t + 2.6, 3), kind="sound", phase="countdown", sound="tick"))
        t += cue_every_s
        k += 1
    chapters = tuple(
        Chapter(start_s=float(s), title=f"Part {i + 1}") for i, s in enumerate(np.arange(0.0, duration_s, chapter_every_s))
    )
    return Timeline(
        routine="synthetic", title="Synthetic", level="standard", voice=VoiceSpec(engine="estimate"),
        duration_s=duration_s, chapters=chapters, cues=tuple(cues),
    )


class SyntheticVoice:
    """Speech-like clips whose length is fixed per text; counts what it was asked for."""

    sample_rate_hz = 22050

    def __init__(self) -> None:
        self.spec = VoiceSpec(engine="estimate")
        self._clips: dict[str, Clip] = {}
        self.prefetched: list[str] = []

    def clip(self, text: str) -> Clip:
        if text not in self._clips:
            self._clips[text] = speechlike(2.0, seed=sum(map(ord, text)))
        return self._clips[text]

    def measure_s(self, text: str) -> float:
        return self.clip(text).duration_s

    def level(self, text: str):
        return self.clip(text).level

    def prefetch(self, texts, progress=None) -> None:
        texts = list(texts)
        for done, text in enumerate(texts, 1):
            self.clip(text)
            self.prefetched.append(text)
            if progress:
                progress(done, len(texts))


def clip_for_session(voice: SyntheticVoice):
    def clip_for(cue: Cue) -> Clip:
        return voice.clip(cue.text) if cue.kind == "speech" else load_sound(cue.sound)

    return clip_for
