"""The default speech engine: pyttsx3 2.99 (espeak-ng on Linux), run in worker processes.

pyttsx3 keeps one engine per process, drops property changes after its first
loop, prints to stdout and can hang (see ``shared/notes/pitfalls.md``). So the
engine never runs in our process: each worker (``coach.voice._worker``) owns
one pyttsx3 engine configured once for one voice spec, and this module

- starts workers with stdout on /dev/null and talks to them over two pipes;
- keeps a small pool of them (one per core) so ``Voice.prefetch`` runs two
  syntheses at once, and reuses a worker only for the spec it was made for;
- enforces a timeout on every request, kills a stuck worker and retries in a
  fresh one; a lost, empty or unreadable file is retried the same way;
- turns a missing libespeak-ng into a ``SpeechEngineError`` that says how to
  install it.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from coach.audio.clip import Clip
from coach.errors import SpeechEngineError
from coach.voice import finish
from coach.voice.engine import VoiceInfo
from coach.voice.workers import Worker, WorkerGone, usable_cores

if TYPE_CHECKING:
    from coach.voice.trim import TrimSettings

ENGINE_NAME = "pyttsx3"
SAMPLE_RATE_HZ = 22050
"""What pyttsx3's espeak driver writes (mono 16-bit 22050 Hz)."""

INSTALL_HINT = "install it: `sudo apt-get install espeak-ng` on Debian/Ubuntu, or run `scripts/setup`"

DEFAULT_WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "coach.voice._worker")
START_TIMEOUT_S = 30.0
"""Cold start of a worker (imports, espeak_Initialize): ~0.1 s normally."""
SYNTH_TIMEOUT_BASE_S = 10.0
SYNTH_TIMEOUT_PER_CHAR_S = 0.02
"""espeak-ng speaks ~100x faster than real time; these bounds only catch hangs."""
ATTEMPTS = 3


@dataclass(frozen=True)
class _Config:
    voice: str
    rate_wpm: int
    volume: float


def _raise_worker_failure(reply: dict[str, Any]) -> None:
    kind = reply.get("kind")
    message = str(reply.get("message", "unknown failure"))
    if kind == "missing-library":
        # pyttsx3's own wording ("This means you probably do not have eSpeak...") adds nothing.
        detail = "" if "not have eSpeak" in message else f" ({message})"
        raise SpeechEngineError(f"no speech engine: libespeak-ng cannot be loaded{detail}", hint=INSTALL_HINT)
    if kind == "missing-module":
        raise SpeechEngineError(
            f"the pyttsx3 speech engine is not installed ({message})",
            hint="reinstall coach: `pip install coach` pulls pyttsx3==2.99",
        )
    raise SpeechEngineError(f"the speech worker failed: {message}")


class _Pool:
    """Idle workers shared by every engine using the same worker command."""

    def __init__(self, command: tuple[str, ...], size: int, start_timeout_s: float) -> None:
        self.command = command
        self.size = size
        self.start_timeout_s = start_timeout_s
        self._idle: list[Worker] = []
        self._lock = threading.Lock()

    def acquire(self, config: _Config | None) -> Worker:
        """A worker made for ``config`` (or still unconfigured); None: any worker."""
        with self._lock:
            for wanted in ([config] if config is not None else []) + [None]:
                for i, worker in enumerate(self._idle):
                    if config is None or worker.config == wanted:
                        return self._idle.pop(i)
        return Worker(self.command, self.start_timeout_s, _raise_worker_failure)

    def release(self, worker: Worker) -> None:
        surplus: list[Worker] = []
        with self._lock:
            self._idle.append(worker)
            # Keep the most recently used few; the longest idle worker goes first.
            while len(self._idle) > self.size:
                surplus.append(self._idle.pop(0))
        for extra in surplus:
            extra.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_pools: dict[tuple[str, ...], _Pool] = {}
_pools_lock = threading.Lock()


def _pool(command: tuple[str, ...], start_timeout_s: float) -> _Pool:
    with _pools_lock:
        pool = _pools.get(command)
        if pool is None:
            pool = _pools[command] = _Pool(command, min(2, usable_cores()), start_timeout_s)
        return pool


def close_all_workers() -> None:
    """Stop every idle worker of every pool (also done at interpreter exit)."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.close()


import atexit  # noqa: E402 - registered next to what it cleans up

atexit.register(close_all_workers)


@dataclass(frozen=True)
class EngineInfo:
    """What a worker reports: versions and voices."""

    pyttsx3_version: str
    espeak_version: str
    driver: str
    voices: tuple[VoiceInfo, ...]

    @property
    def version(self) -> str:
        return f"pyttsx3 {self.pyttsx3_version}; {self.driver} {self.espeak_version}".strip()


_info_cache: dict[tuple[str, ...], EngineInfo] = {}


def engine_info(command: Sequence[str] = DEFAULT_WORKER_COMMAND, *, start_timeout_s: float = START_TIMEOUT_S) -> EngineInfo:
    """Versions and voices of the pyttsx3 engine (asked once per process)."""
    key = tuple(command)
    cached = _info_cache.get(key)
    if cached is not None:
        return cached
    pool = _pool(key, start_timeout_s)
    last: WorkerGone | None = None
    for _ in range(ATTEMPTS):
        try:
            worker = pool.acquire(None)
            reply = worker.request({"op": "info"}, start_timeout_s)
        except WorkerGone as exc:
            last = exc
            continue
        pool.release(worker)
        if not reply.get("ok"):
            _raise_worker_failure(reply)
        info = EngineInfo(
            pyttsx3_version=str(reply["pyttsx3"]),
            espeak_version=str(reply["espeak"]),
            driver=str(reply["driver"]),
            voices=tuple(
                VoiceInfo(id=v["id"], name=v["name"], languages=tuple(v["languages"])) for v in reply["voices"]
            ),
        )
        _info_cache[key] = info
        return info
    raise SpeechEngineError(f"the pyttsx3 speech engine does not answer: {last}")


class Pyttsx3Engine:
    """pyttsx3 speech for one voice, rate and volume; thread-safe, parallel up to the pool size.

    ``voice`` must be a voice id from ``engine_info().voices`` and rate/volume
    in range: ``coach.voice.validate_voice`` checks all of that first.
    """

    name = ENGINE_NAME
    sample_rate_hz = SAMPLE_RATE_HZ
    exact = True

    def __init__(
        self,
        voice: str,
        rate_wpm: int,
        volume: float,
        *,
        worker_command: Sequence[str] = DEFAULT_WORKER_COMMAND,
        timeout_base_s: float = SYNTH_TIMEOUT_BASE_S,
        start_timeout_s: float = START_TIMEOUT_S,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._command = tuple(worker_command)
        self._config = _Config(voice=voice, rate_wpm=int(rate_wpm), volume=float(volume))
        self._timeout_base_s = timeout_base_s
        self._attempts = attempts
        self._pool = _pool(self._command, start_timeout_s)
        self._info = engine_info(self._command, start_timeout_s=start_timeout_s)
        self.version = self._info.version
        self.parallelism = self._pool.size
        self.retries = 0
        """How many times a synthesis was retried in a fresh worker (for tests and reports)."""

    def list_voices(self) -> list[VoiceInfo]:
        return list(self._info.voices)

    def synthesize(self, text: str) -> Clip:
        if not text.strip():
            # runAndWait with nothing queued hangs forever: never send blank text.
            return Clip(np.zeros(0, dtype=np.float32), self.sample_rate_hz)
        message = {
            "op": "synth",
            "voice": self._config.voice,
            "rate_wpm": self._config.rate_wpm,
            "volume": self._config.volume,
            "text": text,
            "timeout_s": self._timeout_base_s + SYNTH_TIMEOUT_PER_CHAR_S * len(text),
        }
        # The parent waits longer than the worker, so a worker-side timeout is
        # reported as such; a runAndWait that never returns is caught here.
        timeout_s = message["timeout_s"] * 1.5 + 1.0
        problems: list[str] = []
        for attempt in range(self._attempts):
            if attempt:
                self.retries += 1
            try:
                worker = self._pool.acquire(self._config)
            except WorkerGone as exc:
                problems.append(str(exc))
                continue
            worker.config = self._config
            try:
                reply = worker.request(message, timeout_s)
            except WorkerGone as exc:
                problems.append(str(exc))
                continue
            except BaseException:
                # Ctrl-C (or any surprise) mid-request: the reply would arrive for
                # nobody and desynchronize the pipe. This worker must go.
                worker.kill()
                raise
            if not reply.get("ok"):
                # Whatever went wrong (timeout, lost file, dropped setting), the
                # worker's pyttsx3 state is suspect: never reuse it.
                worker.kill()
                problems.append(f"{reply.get('kind')}: {reply.get('message')}")
                continue
            self._pool.release(worker)
            # espeak always writes 22050 Hz; other platforms' drivers may not, and a
            # Clip carries its own rate (the renderer resamples), so take what came.
            return Clip(np.frombuffer(reply["samples"], dtype=np.float32), int(reply["sample_rate_hz"]))
        raise SpeechEngineError(
            f"pyttsx3 failed {self._attempts} times to speak {text[:60]!r}: " + " | ".join(problems)
        )

    def finish(self, raw: Clip, trim: TrimSettings, target_lufs: float) -> Clip:
        """``coach.voice.finish.finish`` in a worker (see that module); in this process if none can."""
        try:
            worker = self._pool.acquire(self._config)
        except (WorkerGone, SpeechEngineError):
            return finish.finish(raw, trim, target_lufs)
        try:
            reply = worker.request(finish.request(raw, trim, target_lufs), finish.FINISH_TIMEOUT_S)
        except WorkerGone:
            return finish.finish(raw, trim, target_lufs)
        except BaseException:
            worker.kill()  # mid-request: its reply would desynchronize the pipe
            raise
        if not reply.get("ok"):
            worker.kill()
            return finish.finish(raw, trim, target_lufs)
        self._pool.release(worker)
        return finish.clip_of(reply)

    def close(self) -> None:
        """Nothing of its own to release: workers belong to the shared pool."""
        return None
