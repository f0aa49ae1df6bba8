"""Voice: speech engines, text normalization, trimming and the clip cache.

    cue text --normalize--> spoken text --engine--> raw speech --trim--> Clip (cached on disk)

Public API (the contract with the planner, exporter and player):

- ``open_voice(spec, use_cache=True) -> Voice`` with ``.spec``,
  ``.sample_rate_hz``, ``.clip(text)``, ``.measure_s(text)`` and
  ``.prefetch(texts, progress=None)``;
- ``list_voices(engine="auto", language=None) -> list[VoiceInfo]``;
- ``validate_voice(spec) -> VoiceSpec`` (engine and voice resolved, ranges checked);
- ``default_engine()``, ``resolve_engine(name)``, ``BACKENDS``: the engine registry
  (``registry.py``), the one place that maps an engine name to its code;
- ``normalize_for_speech(text)``, ``trim_silence(clip)``.

Engines (``VoiceSpec.engine``): ``auto`` (the default: ``piper`` when the neural
extra is installed, else ``pyttsx3``), ``pyttsx3`` (espeak-ng), ``piper``
(natural neural speech from the optional ``neural`` extra, ``piper_engine.py``)
and ``estimate`` (silence as long as the words would take).

Errors: ``SpeechEngineError`` (no libespeak-ng, no piper-tts, engine failure) and
``UsageError`` (unknown voice with close matches, rate/volume out of range).
"""

from coach.voice.clips import Voice, open_voice
from coach.voice.engine import (
    RATE_MAX_WPM,
    RATE_MIN_WPM,
    VOLUME_MAX,
    VOLUME_MIN,
    EstimateEngine,
    SpeechEngine,
    VoiceInfo,
    estimate_speech_s,
)
from coach.voice.normalize import normalize_for_speech
from coach.voice.registry import (
    BACKENDS,
    ENGINES,
    default_engine,
    list_voices,
    make_engine,
    resolve_engine,
    validate_voice,
)
from coach.voice.specs import resolve_voice
from coach.voice.trim import DEFAULT_TRIM, TrimSettings, trim_silence

__all__ = [
    "BACKENDS",
    "DEFAULT_TRIM",
    "ENGINES",
    "RATE_MAX_WPM",
    "RATE_MIN_WPM",
    "VOLUME_MAX",
    "VOLUME_MIN",
    "EstimateEngine",
    "SpeechEngine",
    "TrimSettings",
    "Voice",
    "VoiceInfo",
    "default_engine",
    "estimate_speech_s",
    "list_voices",
    "make_engine",
    "normalize_for_speech",
    "open_voice",
    "resolve_engine",
    "resolve_voice",
    "trim_silence",
    "validate_voice",
]
