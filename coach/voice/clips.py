"""Voice: cue text in, trimmed and cached speech clip out.

One path for every consumer (planner's meter, exporter, player):

    text --normalize--> spoken text --cache?--> engine.synthesize --trim--> level --> cache.keep --> Clip

Each clip is brought to one loudness when it is made (``coach.audio.level``), so a
session's loudness follows from its clips and the master only applies one gain.

``Voice.measure_s(text)`` is exactly ``Voice.clip(text).duration_s``: the
planner times the same clip that is later rendered.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable

import numpy as np

from coach.audio.clip import Clip
from coach.audio.level import CLIP_CEILING_DBTP, MAKE_UP_LU, SPEECH_LUFS, ClipLevel, normalize_speech
from coach.timeline import VoiceSpec
from coach.voice.cache import CacheStats, ClipCache, cache_key
from coach.voice.engine import SpeechEngine
from coach.voice.normalize import normalize_for_speech
from coach.voice.registry import make_engine, validate_voice
from coach.voice.trim import DEFAULT_TRIM, TrimSettings, trim_silence

Progress = Callable[[int, int], None]

MEMORY_LIMIT_FRAMES = 2_000_000
"""Clips kept in memory when a disk cache backs them (~8 MB, ~90 s of speech at 22050 Hz): a long
session reads the rest back from the disk cache as it goes, so its memory stays that of a short one."""


class Voice:
    """Speech clips for one validated voice spec."""

    def __init__(
        self,
        spec: VoiceSpec,
        engine: SpeechEngine,
        *,
        cache: ClipCache | None = None,
        trim: TrimSettings = DEFAULT_TRIM,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.sample_rate_hz = engine.sample_rate_hz
        self.trim = trim
        # Estimates are free to recompute and carry no speech to trim or cache.
        self.cache = cache if engine.exact else None
        self.synthesized = 0
        """How many clips this Voice asked the engine for (cache misses)."""
        self._memory: OrderedDict[str, Clip] = OrderedDict()
        self._memory_frames = 0
        # Without a disk cache, memory is the only place a prefetched clip can
        # live, and measure_s/clip must agree: keep everything.
        self._memory_limit = MEMORY_LIMIT_FRAMES if self.cache is not None else None
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[Clip]] = {}

    @property
    def stats(self) -> CacheStats:
        """Hits, misses and corrupt entries seen by this Voice's cache (zeros without one)."""
        return self.cache.stats if self.cache is not None else CacheStats()

    def key_for(self, spoken: str) -> str:
        """Cache key of the clip for already-normalized ``spoken`` text."""
        return cache_key(
            {
                "engine": self.engine.name,
                "engine_version": self.engine.version,
                "sample_rate_hz": self.engine.sample_rate_hz,
                "voice": self.spec.voice,
                "rate_wpm": self.spec.rate_wpm,
                "volume": self.spec.volume,
                "text": spoken,
                "trim": self.trim.key(),
                "speech_lufs": SPEECH_LUFS,
                "ceiling_dbtp": CLIP_CEILING_DBTP,
                "make_up_lu": MAKE_UP_LU,
            }
        )

    def clip(self, text: str) -> Clip:
        """Trimmed speech for the cue text ``text`` (an empty clip for blank text)."""
        spoken = normalize_for_speech(text)
        if not spoken:
            # Never ask the engine for nothing: pyttsx3's runAndWait would hang.
            return Clip(np.zeros(0, dtype=np.float32), self.sample_rate_hz)
        if not self.engine.exact:
            return self._synthesize_and_store(spoken)  # an estimate: cheaper to compute than to keep
        remembered = self._recall(spoken)
        if remembered is not None:
            return remembered
        clip = self._load_or_synthesize(spoken)
        self._remember(spoken, clip)
        return clip

    def measure_s(self, text: str) -> float:
        """Spoken length of ``text`` in seconds: ``clip(text).duration_s``.

        A clip on disk is measured from its entry's header, without reading the
        audio: planning a session from a warm cache then reads almost nothing
        (the player starts sooner). The audio's checksum is checked when the clip
        is used; if it fails, the clip is synthesized again (a few ms may differ).
        """
        spoken = normalize_for_speech(text)
        if spoken and self.engine.exact and self.cache is not None and self._recall(spoken) is None:
            measured = self.cache.duration_s(self.key_for(spoken))
            if measured is not None:
                return measured
        return self.clip(text).duration_s

    def level(self, text: str) -> ClipLevel | None:
        """The level of ``clip(text)`` (``coach.audio.level``), from the cache entry when it is on disk."""
        spoken = normalize_for_speech(text)
        if not spoken:
            return None
        remembered = self._recall(spoken)
        if remembered is not None:
            return remembered.level
        if self.engine.exact and self.cache is not None:
            level = self.cache.level(self.key_for(spoken))
            if level is not None:
                return level
        return self.clip(text).level

    def is_ready(self, text: str) -> bool:
        """Whether the clip of ``text`` needs no synthesis (in memory or in the disk cache, or no speech)."""
        spoken = normalize_for_speech(text)
        return not spoken or not self.engine.exact or self._ready(spoken)

    def _ready(self, spoken: str) -> bool:
        """In memory, or on disk (checked in full when used: no need to read the audio now)."""
        if self._recall(spoken) is not None:
            return True
        return self.cache is not None and self.cache.duration_s(self.key_for(spoken)) is not None

    def prefetch(self, texts: Iterable[str], progress: Progress | None = None) -> None:
        """Make every clip of ``texts`` ready, synthesizing misses in parallel (one per core).

        ``progress(done, total)`` counts distinct spoken texts and is called
        from this thread.
        """
        spoken_texts = list(dict.fromkeys(s for s in map(normalize_for_speech, texts) if s))
        total = len(spoken_texts)
        if not self.engine.exact:
            # Estimates are computed on demand; there is nothing to get ready.
            for done in range(1, total + 1):
                if progress:
                    progress(done, total)
            return
        done = 0
        missing: list[str] = []
        for spoken in spoken_texts:
            if not self._ready(spoken):
                missing.append(spoken)
                continue
            done += 1
            if progress:
                progress(done, total)
        workers = min(self.engine.parallelism, len(missing))
        if workers <= 1:
            for spoken in missing:
                self._prefetched(spoken, self._synthesize_and_store(spoken))
                done += 1
                if progress:
                    progress(done, total)
            return
        # Finished futures come back through a queue, not concurrent.futures.wait(): that
        # takes the lock of every pending future on each call, and a Ctrl-C landing while it
        # holds some of thousands leaves them held, so the pool threads (and the exit) hang.
        finished: queue.SimpleQueue[Future[Clip]] = queue.SimpleQueue()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="coach-voice") as pool:
            pending: dict[Future[Clip], str] = {}
            try:
                # Submitting thousands of texts takes a while on a busy machine: a Ctrl-C while
                # it goes on must cancel them too, or leaving the pool waits for every one.
                for spoken in missing:
                    future = pool.submit(self._synthesize_and_store, spoken)
                    pending[future] = spoken
                    future.add_done_callback(finished.put)
                while pending:
                    future = finished.get()
                    spoken = pending.pop(future)
                    self._prefetched(spoken, future.result())
                    done += 1
                    if progress:
                        progress(done, total)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise

    def close(self) -> None:
        self.engine.close()
        with self._lock:
            self._memory.clear()
            self._memory_frames = 0

    def __enter__(self) -> Voice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------

    def _lookup(self, spoken: str) -> Clip | None:
        if self.cache is None:
            return None
        clip, _outcome = self.cache.lookup(self.key_for(spoken))
        return clip

    def _load_or_synthesize(self, spoken: str) -> Clip:
        cached = self._lookup(spoken)
        if cached is not None:
            return cached
        return self._synthesize_and_store(spoken)

    def _synthesize_and_store(self, spoken: str) -> Clip:
        """The clip of ``spoken``, synthesized once however many threads ask for it at the same time.

        Two takes of one text differ by a few milliseconds: the player (rendering)
        and the background prefetch must end up with the same one, the one cached.
        """
        if not self.engine.exact:
            return self._make(spoken)
        with self._lock:
            pending = self._inflight.get(spoken)
            owner = pending is None
            if owner:
                pending = self._inflight[spoken] = Future()
        if not owner:
            return pending.result()
        try:
            # Another thread may have finished this text between our miss and now: it left it in
            # memory (bounded) before letting go of it.
            clip = self._recall(spoken)
            if clip is None:
                clip = self._make(spoken)
                self._remember(spoken, clip)
            pending.set_result(clip)
            return clip
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._inflight[spoken]

    def _make(self, spoken: str) -> Clip:
        raw = self.engine.synthesize(spoken)
        with self._lock:
            self.synthesized += 1
        if not self.engine.exact:
            return raw
        # --volume keeps its meaning after normalization: the speech sits that much lower (against
        # earcons and music; the master then brings the whole session to its target).
        target_lufs = SPEECH_LUFS + 20 * math.log10(self.spec.volume)
        in_worker = getattr(self.engine, "finish", None)  # an engine with worker processes (coach.voice.finish)
        if in_worker is not None:
            clip = in_worker(raw, self.trim, target_lufs)
        else:
            clip = normalize_speech(trim_silence(raw, self.trim), target_lufs)
        if self.cache is not None:
            # Another process may have cached its own take of this text first: use that one.
            clip = self.cache.keep(self.key_for(spoken), clip)
        return clip

    def _prefetched(self, spoken: str, clip: Clip) -> None:
        # With a disk cache the clip is safe there; memory stays flat however many cues.
        if self.cache is None:
            self._remember(spoken, clip)

    def _recall(self, spoken: str) -> Clip | None:
        with self._lock:
            clip = self._memory.get(spoken)
            if clip is not None:
                self._memory.move_to_end(spoken)
            return clip

    def _remember(self, spoken: str, clip: Clip) -> None:
        with self._lock:
            if spoken in self._memory:
                return
            self._memory[spoken] = clip
            self._memory_frames += len(clip.samples)
            if self._memory_limit is None:
                return
            while self._memory_frames > self._memory_limit and len(self._memory) > 1:
                _, dropped = self._memory.popitem(last=False)
                self._memory_frames -= len(dropped.samples)


def open_voice(
    spec: VoiceSpec,
    *,
    use_cache: bool = True,
    cache: ClipCache | None = None,
    trim: TrimSettings = DEFAULT_TRIM,
) -> Voice:
    """A ``Voice`` for ``spec`` after validating it (UsageError, SpeechEngineError).

    ``engine: auto`` is resolved here: ``Voice.spec`` names the engine that speaks.

    ``use_cache=False`` bypasses the disk cache (``--no-cache``); ``cache``
    picks another cache folder than the default.
    """
    resolved = validate_voice(spec)
    engine = make_engine(resolved)
    clip_cache = (cache or ClipCache()) if use_cache else None
    return Voice(resolved, engine, cache=clip_cache, trim=trim)
