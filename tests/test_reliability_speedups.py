"""Speed-ups found by scripts/bench keep the results they replaced exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import oaconvolve

from coach.audio.loudness import _FIR_DELAY, OVERSAMPLING, _phases, context_frames, peak_envelope


def reference_envelope(x: np.ndarray) -> np.ndarray:
    """The envelope as first written: every phase convolved over the whole input with FFT convolution."""
    phases = _phases()
    taps = phases.shape[1]
    out = None
    for p in range(OVERSAMPLING):
        y = np.abs(oaconvolve(x, phases[p], mode="valid"))
        out = y if out is None else np.maximum(out, y)
    c = context_frames()
    first = c + _FIR_DELAY - (taps - 1)
    return np.maximum(out[first : first + len(x) - 2 * c], np.abs(x[c : len(x) - c]))


@st.composite
def mostly_silent(draw) -> np.ndarray:
    """Audio shaped like a session: digital silence with bursts anywhere, including at the very ends."""
    n = 2 * context_frames() + draw(st.integers(1, 400))
    x = np.zeros(n)
    for _ in range(draw(st.integers(0, 4))):
        a = draw(st.integers(0, n - 1))
        b = min(n, a + draw(st.integers(1, 60)))
        seed = draw(st.integers(0, 2**32 - 1))
        x[a:b] = np.random.default_rng(seed).uniform(-1, 1, b - a)
    return x


@settings(max_examples=300, deadline=None)
@given(mostly_silent())
def test_the_peak_envelope_skips_silence_without_changing_a_value(x):
    fast, slow = peak_envelope(x), reference_envelope(x)
    assert fast.shape == slow.shape
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_planning_from_a_warm_cache_reads_clip_headers_not_audio(tmp_path, monkeypatch):
    """`coach play` plans before its first sound: measuring cached clips must not read and hash their audio."""
    from coach.timeline import VoiceSpec
    from coach.voice import open_voice
    from coach.voice.cache import ClipCache

    texts = ["Lie on your back.", "Lift your hips.", "Hold it there, breathing slowly."]
    cache = ClipCache(tmp_path / "voice")
    with open_voice(VoiceSpec(engine="pyttsx3"), cache=cache) as first:
        lengths = {t: first.clip(t).duration_s for t in texts}

    reads = []
    real_lookup = ClipCache.lookup
    monkeypatch.setattr(ClipCache, "lookup", lambda self, key: reads.append(key) or real_lookup(self, key))
    with open_voice(VoiceSpec(engine="pyttsx3"), cache=ClipCache(tmp_path / "voice")) as voice:
        voice.prefetch(texts)
        measured = {t: voice.measure_s(t) for t in texts}
        assert reads == [] and voice.synthesized == 0
        assert measured == lengths
        # The audio itself is read (and its checksum checked) when it is used.
        assert {t: voice.clip(t).duration_s for t in texts} == lengths
        assert len(reads) == len(texts)


def test_resampled_clips_kept_for_reuse_stay_within_their_memory_bound():
    from coach.audio import render
    from coach.audio.clip import Clip

    resampler = render._Resampler(44100)
    long_clips = [Clip(np.full(22050 * 40, 0.1 + k / 1000, dtype=np.float32), 22050) for k in range(12)]
    for clip in long_clips:  # twelve different 40-second paragraphs
        assert len(resampler(clip)) == 44100 * 40
        assert resampler._frames == sum(len(out) for _, out in resampler._cache.values())
        assert resampler._frames <= max(render.RESAMPLED_CACHE_FRAMES, 44100 * 40)
    assert resampler(long_clips[-1]) is resampler(long_clips[-1])  # the latest is still reused
