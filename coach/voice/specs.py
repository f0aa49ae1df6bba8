"""Checks shared by every engine: find a voice by name among an engine's voices, check rate and volume.

``coach.voice.registry.validate_voice`` applies them to every value a user
types (``--voice``, ``--rate``, ``--volume``) before anything is synthesized:
an unknown voice is a ``UsageError`` naming the close matches, never a silent
fallback, and out-of-range numbers are refused here because the engines do not
clamp them. This module knows no engine (engines import it, not the reverse).
"""

from __future__ import annotations

import difflib
import math

from coach.errors import UsageError
from coach.voice.engine import RATE_MAX_WPM, RATE_MIN_WPM, VOLUME_MAX, VOLUME_MIN, VoiceInfo


def speaking(voices: list[VoiceInfo], language: str | None) -> list[VoiceInfo]:
    """``voices`` that speak ``language`` (all of them for None)."""
    if language:
        wanted = language.strip().lower().replace("_", "-")
        voices = [
            v
            for v in voices
            if any(lang.lower() == wanted or lang.lower().startswith(wanted + "-") for lang in v.languages)
        ]
    return voices


def _fold(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").split())


def resolve_voice(name: str, voices: list[VoiceInfo]) -> VoiceInfo:
    """The voice called ``name``: an id (``gmw/en-us``), its last part (``en-us``), a name or a language.

    Raises UsageError naming the closest voices when nothing matches.
    """
    wanted = _fold(name)
    if not wanted:
        raise UsageError("the voice is empty: give a voice id or name (see `coach voices`)")
    matchers = (
        lambda v: _fold(v.id) == wanted,
        lambda v: _fold(v.id.rsplit("/", 1)[-1]) == wanted,
        lambda v: _fold(v.name) == wanted,
        lambda v: any(_fold(lang) == wanted for lang in v.languages),
    )
    for matches in matchers:
        found = [v for v in voices if matches(v)]
        if found:
            return found[0]
    # Compare against every way a voice can be named; report each match by id and name.
    by_label: dict[str, VoiceInfo] = {}
    for v in voices:
        for label in (v.id, v.id.rsplit("/", 1)[-1], v.name, *v.languages):
            by_label.setdefault(_fold(label), v)
    close: list[VoiceInfo] = []
    for label in difflib.get_close_matches(wanted, list(by_label), n=8, cutoff=0.6):
        if by_label[label] not in close:
            close.append(by_label[label])
    if close:
        listed = ", ".join(f"{v.id} ({v.name})" for v in close[:5])
        raise UsageError(f"unknown voice {name!r}: close matches: {listed}", hint="see `coach voices`")
    raise UsageError(f"unknown voice {name!r}: no voice has a similar name", hint="see `coach voices`")


def check_rate(rate_wpm: object) -> int:
    if isinstance(rate_wpm, bool) or not isinstance(rate_wpm, (int, float)) or not float(rate_wpm).is_integer():
        raise UsageError(f"rate must be a whole number of words per minute, got {rate_wpm!r}")
    rate = int(rate_wpm)
    if not RATE_MIN_WPM <= rate <= RATE_MAX_WPM:
        raise UsageError(f"rate {rate} wpm is out of range: give {RATE_MIN_WPM}..{RATE_MAX_WPM} words per minute")
    return rate


def check_volume(volume: object) -> float:
    if isinstance(volume, bool) or not isinstance(volume, (int, float)) or math.isnan(float(volume)):
        raise UsageError(f"volume must be a number, got {volume!r}")
    value = float(volume)
    if not VOLUME_MIN <= value <= VOLUME_MAX:
        raise UsageError(f"volume {value:g} is out of range: give {VOLUME_MIN:g}..{VOLUME_MAX:g}")
    return value
