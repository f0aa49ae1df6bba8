"""The speech engines Coach knows, by name: list their voices, resolve a voice, create an engine.

    "auto" --default_engine()--> "piper" (the neural extra is installed) | "pyttsx3"
    name --BACKENDS[name]--> Backend: voices(), resolve(voice), create(spec), defaults

This is the one place that maps an engine name to code; everything else asks
here (``--engine`` checks, ``coach voices``, ``validate_voice``, ``open_voice``).
Engine modules are imported only when their engine is used: choosing ``auto``
only looks up whether the extra is installed, it imports nothing heavy.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Callable

from coach.errors import UsageError
from coach.timeline import AUTO_ENGINE, VoiceSpec
from coach.voice.engine import EstimateEngine, SpeechEngine, VoiceInfo
from coach.voice.specs import check_rate, check_volume, resolve_voice, speaking


@dataclass(frozen=True)
class Backend:
    """One speech engine as Coach sees it."""

    name: str
    """As in ``VoiceSpec.engine`` and ``--engine``."""
    summary: str
    """One line for ``coach voices`` and help texts."""
    voices: Callable[[], list[VoiceInfo]]
    """Every voice it offers, the preferred one for a language first."""
    resolve: Callable[[str], str]
    """A voice name, id, language or file as typed -> the id the engine uses (UsageError if unknown)."""
    create: Callable[[VoiceSpec], SpeechEngine]
    """An engine for an already validated spec."""
    best_rate_wpm: int = 170
    """The rate this engine is best understood at, for a routine that names none (see ``best_rate_wpm``)."""


# -- pyttsx3 (espeak-ng) ------------------------------------------------------------

ESPEAK_BEST_RATE_WPM = 160
"""scripts/bench-speech --sweep, first two chapters of the built-in session, word error rate:
en-us 0.844 at 140 wpm, 0.805 at 160, 0.841 at 180; en-gb-x-rp 0.953 at 140, 0.923 at 160.
So en-us (already the default voice) at 160."""


def _pyttsx3_voices() -> list[VoiceInfo]:
    from coach.voice.pyttsx3_engine import engine_info

    return sorted(engine_info().voices, key=lambda v: (v.languages[:1], v.id))


def _pyttsx3_create(spec: VoiceSpec) -> SpeechEngine:
    from coach.voice.pyttsx3_engine import Pyttsx3Engine

    return Pyttsx3Engine(spec.voice, spec.rate_wpm, spec.volume)


# -- piper ----------------------------------------------------------------------------


def _piper_voices() -> list[VoiceInfo]:
    from coach.voice.piper_engine import piper_voices

    # The packaged voice stays first: resolving a language such as en-us picks it.
    return [v.info() for v in piper_voices()]


def _piper_resolve(name: str) -> str:
    from coach.voice.piper_engine import find_piper_voice

    return find_piper_voice(name).id


def _piper_create(spec: VoiceSpec) -> SpeechEngine:
    from coach.voice.piper_engine import PiperEngine, find_piper_voice

    return PiperEngine(find_piper_voice(spec.voice), spec.rate_wpm, spec.volume)


def piper_installed() -> bool:
    """Whether the neural extra (piper-tts, onnxruntime, a voice) is installed; nothing is imported."""
    from coach.voice.piper_engine import piper_installed as installed

    return installed()


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("pyttsx3", "espeak-ng through pyttsx3 (always installed)", _pyttsx3_voices,
                lambda name: resolve_voice(name, _pyttsx3_voices()).id, _pyttsx3_create,
                best_rate_wpm=ESPEAK_BEST_RATE_WPM),
        Backend("piper", "natural neural speech (the neural extra: piper-tts and the Joe voice)", _piper_voices,
                _piper_resolve, _piper_create),
        Backend("estimate", "silence as long as the words would take (plans without speech)", lambda: [],
                lambda name: name, lambda spec: EstimateEngine(rate_wpm=spec.rate_wpm)),
    )
}

ENGINES: tuple[str, ...] = (AUTO_ENGINE, *BACKENDS)
"""What ``--engine`` and a routine's ``voice: engine:`` accept."""


def default_engine() -> str:
    """What ``auto`` means on this machine: Piper when the neural extra is installed, else pyttsx3."""
    return "piper" if piper_installed() else "pyttsx3"


def resolve_engine(engine: str) -> str:
    """The real engine ``engine`` names (``auto`` resolved); a UsageError naming the known ones otherwise."""
    if engine == AUTO_ENGINE:
        return default_engine()
    if engine in BACKENDS:
        return engine
    close = difflib.get_close_matches(engine, ENGINES, n=1, cutoff=0.5)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"unknown speech engine {engine!r}: {suggestion}known engines: {', '.join(ENGINES)}")


def best_rate_wpm(engine: str) -> int:
    """The rate to speak at when neither the command line nor the routine gives one."""
    return backend(engine).best_rate_wpm


def backend(engine: str) -> Backend:
    """The backend of ``engine`` (``auto`` resolved)."""
    return BACKENDS[resolve_engine(engine)]


def list_voices(engine: str = AUTO_ENGINE, language: str | None = None) -> list[VoiceInfo]:
    """The voices of ``engine``, optionally only those speaking ``language`` (``en`` matches ``en-us``)."""
    return speaking(backend(engine).voices(), language)


def validate_voice(spec: VoiceSpec) -> VoiceSpec:
    """``spec`` with its engine resolved (no ``auto`` left), its voice resolved to an engine id, ranges checked.

    The estimate engine keeps any voice name (it has no voices to check). A Piper voice resolves to its id, or to the
    absolute path of a ``.onnx`` file. UsageError if anything is wrong.
    """
    chosen = backend(spec.engine)
    rate = check_rate(spec.rate_wpm)
    volume = check_volume(spec.volume)
    voice = chosen.resolve(spec.voice)
    return replace(spec, engine=chosen.name, voice=voice, rate_wpm=rate, volume=volume)


def make_engine(spec: VoiceSpec) -> SpeechEngine:
    """The engine for an already validated ``spec``."""
    return backend(spec.engine).create(spec)
