"""The master: the one mix of a session, shared by the player and the exporter.

    cues --clip_for--> clips (speech normalized, earcons balanced) --render--> voice mix
         + music (ducked on schedule)  --one gain--> true-peak limiter --> blocks

Loudness by construction: every clip carries its level (``coach.audio.level``),
so the session's integrated loudness is computed from the cues before a single
sample is rendered, and one gain brings it to the target. The limiter is told
each block's peak bound (the sum of the clips' true peaks under it), so it only
analyses the rare stretches that could pass the ceiling. Rendering from any
position gives the samples a render from the start has there (the limiter is
primed with the audio before it), which is what makes `coach play` sound
exactly like `coach export`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from coach.audio.clip import Clip
from coach.audio.level import PROFILE_STEP_S, ClipLevel, analyse, predict_steps, steps_lufs
from coach.audio.limiter import Limiter
from coach.audio.loudness import TARGET_LUFS
from coach.audio.render import render_mono, resample
from coach.timeline import Cue, Timeline

CEILING_DBTP = {"wav": -1.5, "flac": -1.5, "ogg": -2.5, "mp3": -2.5, "play": -1.5}
"""Where the limiter holds true peaks: below -1 dBTP, with room for lossy encoders' overshoot."""
MAX_GAIN_DB = 40.0
"""The master never amplifies more than this (a nearly silent session stays quiet)."""
MEASURE_PASSES = 6
"""At most this many measuring renders when the limiter takes loudness off (secant steps on the gain)."""
MIN_SLOPE = 0.2
"""Below this many LU per dB of gain the limiter is holding the loudness down: more gain is not tried."""
MAX_STEP_DB = 6.0
"""The largest gain change between two measuring renders."""
MUSIC_BLOCK_FRAMES = 16384
"""The size of the pieces the music is decoded and resampled in (the same for every sink)."""
LIMITER_TOLERANCE_LU = 0.1
"""How much loudness the limiter may at most take off before the master measures and corrects its gain."""
RELEASE_SPILL_S = 1.0
"""How long after a clip the limiter's release may still hold some of its reduction (150 ms time constant)."""
PRIME_S = 3.0
"""Audio rendered before a start position, so the limiter is in the state a render from 0 has there:
its only long memory is the release (150 ms time constant), which forgets all but e**-20 in 3 s."""


class MusicSource(Protocol):
    """Music under the voice (``coach.audio.music``): stereo, already ducked and levelled."""

    def blocks(self, start_frame: int, end_frame: int, block_frames: int) -> Iterator[np.ndarray]: ...

    def power_steps(self) -> np.ndarray:
        """Per 100 ms session step: the K-weighted power summed over both channels and the step's frames."""

    def step_edges(self) -> np.ndarray:
        """The frames where the 100 ms steps begin and end (one more than there are steps)."""


class Master:
    """The mastered session at one sample rate and channel count."""

    def __init__(
        self,
        timeline: Timeline,
        clip_for: Callable[[Cue], Clip],
        *,
        sample_rate_hz: int = 44100,
        channels: int = 2,
        ceiling_dbtp: float = CEILING_DBTP["wav"],
        target_lufs: float = TARGET_LUFS,
        level_for: Callable[[Cue], ClipLevel | None] | None = None,
        music: Callable[[float], MusicSource] | None = None,
        gain_db: float | None = None,
    ) -> None:
        """``music(voice_lufs)`` lays the music out given the voice's loudness (before the gain).

        ``gain_db`` fixes the gain instead of computing it from the clips (timing tests at odd rates).
        """
        if sample_rate_hz <= 0 or channels < 1:
            raise ValueError("sample_rate_hz and channels must be positive")
        if music is not None and channels != 2:
            raise ValueError("music is mixed in stereo")
        self.timeline = timeline
        self.clip_for = clip_for
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.ceiling_dbtp = ceiling_dbtp
        self._level_for = level_for
        self._levels: dict[int, tuple[Clip, ClipLevel]] = {}
        self._levels_of_cues: list[ClipLevel] | None = None
        voice_steps = self._voice_steps() if gain_db is None or music is not None else None
        self.voice_lufs = steps_lufs(voice_steps) if voice_steps is not None else math.nan
        """The voice's (speech and earcons) integrated loudness before the gain, all channels."""
        # A session with no speech at all still gets its music at the usual level.
        speech_lufs = self.voice_lufs if math.isfinite(self.voice_lufs) else TARGET_LUFS + 10 * math.log10(channels)
        self.music = music(speech_lufs) if music is not None else None
        self.loudness_lufs = self._predict(voice_steps) if gain_db is None else math.nan
        """The session's integrated loudness before the gain (all channels), from its clips."""
        if gain_db is not None:
            self.gain_db = gain_db
        elif math.isfinite(self.loudness_lufs):
            self.gain_db = min(MAX_GAIN_DB, target_lufs - self.loudness_lufs)
        else:
            self.gain_db = 0.0
        self.output_lufs = self.loudness_lufs + self.gain_db
        """The loudness of what ``blocks`` yields."""
        self.peak_bound = 0.0
        """At least the true peak of everything yielded so far (linear); the limiter keeps it at the ceiling."""
        self.limited_frames = 0
        """Frames the limiter had to analyse (where the clips' peaks alone did not keep them under the ceiling)."""
        self.measured_passes = 0
        """Measuring renders made because the limiter takes loudness off (none for most sessions)."""
        self.min_limiter_gain = 1.0
        """The deepest gain reduction the limiter applied in what was rendered (linear)."""
        if gain_db is None and math.isfinite(self.loudness_lufs) and self._limiter_may_act():
            self._correct_for_the_limiter(target_lufs)

    def _limiter_may_act(self) -> bool:
        """Whether the limiter could take enough loudness off, at this gain, to move the session off its target.

        Without music this is decided from the clips: a clip whose true peak (plus
        those of the clips sounding with it) passes the ceiling is turned down by
        at most that excess, and the limiter's release carries it at most
        ``RELEASE_SPILL_S`` on. If the session's loudness with every such clip (and
        what follows it) turned down by its whole excess is still within
        ``LIMITER_TOLERANCE_LU`` of the prediction, no measuring render is needed.
        """
        from coach.audio.render import RESAMPLE_MARGIN

        gain = 10 ** (self.gain_db / 20)
        if self.music is not None:
            # Music adds peaks of its own that the clips do not tell: with any gain up, measure.
            return gain > 1.0
        if not self.timeline.cues:
            return False
        order = sorted(range(len(self.timeline.cues)), key=lambda i: self.timeline.cues[i].start_s)
        cues = [self.timeline.cues[i] for i in order]
        levels = [self._cue_levels()[i] for i in order]
        ceiling = 10 ** (self.ceiling_dbtp / 20)
        starts = np.array([cue.start_s for cue in cues])
        ends = np.array([cue.start_s + len(level.energy) * PROFILE_STEP_S for cue, level in zip(cues, levels)])
        peaks = np.array([level.true_peak for level in levels])
        # Each clip's peak bound: its own peak plus the peaks of every clip that overlaps it.
        bounds = np.array([peaks[(starts < ends[i]) & (ends > starts[i])].sum() for i in range(len(cues))])
        excess = np.maximum(1.0, bounds * RESAMPLE_MARGIN * gain / ceiling)
        if not (excess > 1.0).any():
            return False
        worst = np.ones(len(cues))
        for i in np.flatnonzero(excess > 1.0):
            hit = (starts < ends[i] + RELEASE_SPILL_S) & (ends > starts[i])
            worst[hit] = np.minimum(worst[hit], 1.0 / excess[i])
        placed = [(cue.start_s, level, float(w)) for cue, level, w in zip(cues, levels, worst)]
        worst_lufs = steps_lufs(predict_steps(placed, self.timeline.duration_s) * self.channels)
        return self.loudness_lufs - worst_lufs > LIMITER_TOLERANCE_LU

    def _correct_for_the_limiter(self, target_lufs: float) -> None:
        """Where the limiter acts, loudness cannot follow from the clips alone: render the session through
        it, measure, and correct the gain (each pass is one streaming render; most sessions need none)."""
        from coach.audio.loudness import LoudnessMeter

        tried: list[tuple[float, float]] = []  # (gain, measured loudness)
        predicted = self.output_lufs
        for attempt in range(MEASURE_PASSES):
            meter = LoudnessMeter(self.sample_rate_hz, self.channels)
            self.min_limiter_gain = 1.0
            for block in self.blocks(block_s=1.0):
                meter.add(block)
            self.measured_passes += 1
            if attempt == 0 and self.min_limiter_gain > 10 ** (-0.01 / 20):
                self.output_lufs = predicted  # the limiter took (almost) nothing off: as the clips say
                break
            measured = meter.integrated_lufs()
            if not math.isfinite(measured):
                self.output_lufs = measured
                break
            tried.append((self.gain_db, measured))
            if abs(measured - target_lufs) < 0.1:
                break
            slope = 1.0
            if len(tried) >= 2:  # the limiter gives back less than each dB of gain: follow the measured slope
                (g0, l0), (g1, l1) = tried[-2], tried[-1]
                if g1 != g0:
                    slope = (l1 - l0) / (g1 - g0)
                    if slope < MIN_SLOPE and measured < target_lufs:
                        break  # more gain buys (almost) no loudness: the limiter holds it down
                    slope = min(1.0, max(MIN_SLOPE, slope))
            if attempt == MEASURE_PASSES - 1:
                break
            step = max(-MAX_STEP_DB, min(MAX_STEP_DB, (target_lufs - measured) / slope))
            self.gain_db = min(MAX_GAIN_DB, self.gain_db + step)
        if tried:
            # The gain whose measured loudness came closest (a limiter that holds it down may leave it short).
            self.gain_db, self.output_lufs = min(tried, key=lambda tried_: abs(tried_[1] - target_lufs))
        self.peak_bound = 0.0
        self.limited_frames = 0
        self.min_limiter_gain = 1.0

    # -- loudness by construction -------------------------------------------

    def _level(self, cue: Cue) -> ClipLevel:
        if self._level_for is not None:
            level = self._level_for(cue)
            if level is not None:
                return level
        clip = self.clip_for(cue)
        if clip.level is not None:
            return clip.level
        # Keyed by the clip object, kept alive with its level so that its id cannot be reused.
        hit = self._levels.get(id(clip))
        if hit is None or hit[0] is not clip:
            hit = self._levels[id(clip)] = (clip, analyse(clip.samples, clip.sample_rate_hz))
        return hit[1]

    def _cue_levels(self) -> list[ClipLevel]:
        """The level of each of the timeline's cues, in its order (looked up once)."""
        if self._levels_of_cues is None:
            self._levels_of_cues = [self._level(cue) for cue in self.timeline.cues]
        return self._levels_of_cues

    def _voice_steps(self) -> np.ndarray:
        placed = [(cue.start_s, level, 1.0) for cue, level in zip(self.timeline.cues, self._cue_levels())]
        # The voice is one channel spread to all: a meter sums them.
        return predict_steps(placed, self.timeline.duration_s) * self.channels

    def _predict(self, voice_steps: np.ndarray) -> float:
        if self.music is None:
            return steps_lufs(voice_steps)
        # Music brings its own power per 100 ms (summed over its channels); uncorrelated, they add.
        steps = voice_steps.copy()
        # The bed gives each 100 ms step's power summed over its frames: make it a mean.
        frames = np.maximum(np.diff(np.asarray(self.music.step_edges(), dtype=np.float64)), 1.0)
        music = np.asarray(self.music.power_steps(), dtype=np.float64) / frames
        n = min(len(steps), len(music))
        steps[:n] += music[:n]
        return steps_lufs(steps)

    # -- rendering ------------------------------------------------------------

    @property
    def total_frames(self) -> int:
        return int(round(self.timeline.duration_s * self.sample_rate_hz))

    def blocks(self, start_s: float = 0.0, end_s: float | None = None, block_s: float = 1.0) -> Iterator[np.ndarray]:
        """The mastered session from ``start_s`` to ``end_s`` as float32 blocks shaped (frames, channels).

        Exactly ``round(end_s * rate) - round(start_s * rate)`` frames in all, whatever
        ``block_s``; the same samples a render from the start has at those frames.
        """
        rate = self.sample_rate_hz
        first = int(round(start_s * rate))
        last = self.total_frames if end_s is None else int(round(end_s * rate))
        if last <= first:
            return
        block_frames = max(1, int(round(block_s * rate)))
        primed = max(0, first - int(round(PRIME_S * rate)))
        mix_channels = 2 if self.music is not None else 1
        limiter = Limiter(rate, mix_channels, self.ceiling_dbtp)
        gain = 10 ** (self.gain_db / 20)
        # Input runs past `last` by the limiter's delay so what is yielded saw its look-ahead.
        input_last = min(self.total_frames, last + limiter.delay_frames)
        out_pos = primed  # session frame of the next limiter output frame

        def mixed() -> Iterator[tuple[np.ndarray, float | None]]:
            voice = render_mono(self.timeline, self.clip_for, rate, block_frames, primed, input_last)
            if self.music is None:
                for block, bound in voice:
                    yield (block * np.float32(gain))[:, None], None if bound is None else bound * gain
                return
            # Pulled in fixed pieces, whatever the caller's block size: the player's 0.5 s blocks and
            # the exporter's 1 s blocks then get the very same resampled music.
            music = _Frames(self.music.blocks(primed, input_last, MUSIC_BLOCK_FRAMES))
            for block, bound in voice:
                bed = music.take(len(block))
                mix = (bed + block[:, None]) * np.float32(gain)
                # Between samples a band-limited signal stays well within twice its sample peak.
                bed_peak = 2.0 * float(np.max(np.abs(bed))) if len(bed) else 0.0
                yield mix, None if bound is None else (bound + bed_peak) * gain

        def spread(out: np.ndarray) -> np.ndarray:
            return np.repeat(out, self.channels, axis=1) if out.shape[1] != self.channels else out

        def take(out: np.ndarray) -> np.ndarray | None:
            nonlocal out_pos
            a, b = out_pos, out_pos + len(out)
            out_pos = b
            lo, hi = max(a, first), min(b, last)
            if lo >= hi:
                return None
            return spread(out[lo - a : hi - a])

        def note() -> None:
            self.peak_bound = max(self.peak_bound, limiter.peak_out)
            self.limited_frames = analysed[0] + limiter.analysed_frames
            self.min_limiter_gain = min(self.min_limiter_gain, limiter.min_gain)

        analysed = [self.limited_frames]
        for block, bound in mixed():
            piece = take(limiter.process(block, bound))
            if piece is not None:
                yield piece
            if out_pos >= last:
                note()
                return
        piece = take(limiter.flush())
        note()
        if piece is not None:
            yield piece
        if out_pos < last:  # past the session's end: silence
            yield np.zeros((last - max(out_pos, first), self.channels), dtype=np.float32)

    def one_off(self, clip: Clip) -> np.ndarray:
        """A clip heard outside the session ("Paused.", a repeated cue), mastered like the session: mono."""
        samples = resample(clip.samples, clip.sample_rate_hz, self.sample_rate_hz) * np.float32(10 ** (self.gain_db / 20))
        limiter = Limiter(self.sample_rate_hz, 1, self.ceiling_dbtp)
        out = [limiter.process(samples[:, None]), limiter.flush()]
        return np.concatenate(out)[:, 0].astype(np.float32)

    @property
    def peak_bound_dbtp(self) -> float:
        return 20 * math.log10(self.peak_bound) if self.peak_bound > 0 else -math.inf


class _Frames:
    """Exactly n frames at a time from an iterator of (frames, 2) blocks of any size (silence past its end)."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self._blocks = blocks
        self._pending = np.zeros((0, 2), dtype=np.float32)

    def take(self, n: int) -> np.ndarray:
        parts, have = [self._pending], len(self._pending)
        while have < n:
            block = next(self._blocks, None)
            if block is None:
                parts.append(np.zeros((n - have, 2), dtype=np.float32))
                break
            parts.append(block)
            have += len(block)
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._pending = joined[n:]
        return joined[:n]
