"""Rewrite cue text for the ear: what is spoken, never what is displayed.

The written form of coaching cues often reads badly through espeak-ng
("10-12 reps" is "ten dash twelve reps", "30s" is "thirty z", "vs." is
"v s"). ``normalize_for_speech`` returns the text to synthesize; the cue keeps
its written text. It also makes sure the text is spoken literally: nothing
an engine could take as markup (SSML-like ``<tags>``, ``[[phonemes]]``) or as
a command-line option (a leading ``-``) survives.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Order matters: markup first, then numbers with units, then words.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MARKUP_CHARS = re.compile(r"</|/>|[<>\[\]{}\\|^`~]+")
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2212"  # hyphen variants, en/em dash, minus sign
_DASH_CLASS = "\\-" + _DASHES

_ABBREVIATIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), spoken)
    for pattern, spoken in (
        (r"\be\.\s?g\.(?=\s|,|$)", "for example"),
        (r"\bi\.\s?e\.(?=\s|,|$)", "that is"),
        (r"\betc\.(?=\s|,|$)", "et cetera"),
        (r"\bvs\.?(?=\s)", "versus"),
        (r"\bapprox\.(?=\s)", "approximately"),
        (r"\bw/(?=\s)", "with"),
        (r"\bw/o(?=\s)", "without"),
    )
)

_NUMBER = r"\d+(?:[.,]\d+)?"
_UNITS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), spoken)
    for pattern, spoken in (
        # "3 x 10", "3x10" -> "3 by 10"; "3x" -> "3 times"
        (rf"\b({_NUMBER})\s*[x×]\s*({_NUMBER})\b", r"\1 by \2"),
        (rf"\b({_NUMBER})\s*[x×](?![\w])", r"\1 times"),
        # ranges: "10-12", "10 – 12" -> "10 to 12"
        (rf"\b({_NUMBER})\s*[{_DASH_CLASS}]\s*({_NUMBER})\b", r"\1 to \2"),
        # "90°", "90 deg", "90-deg" -> "90 degrees"
        (rf"\b({_NUMBER})\s*(?:°|[{_DASH_CLASS}]?degs?\b\.?)", r"\1 degrees"),
        (rf"\b({_NUMBER})\s*(?:secs?|seconds?)\b\.?", r"\1 seconds"),
        (rf"\b({_NUMBER})\s*s\b(?!['’])", r"\1 seconds"),
        (rf"\b({_NUMBER})\s*(?:mins?|minutes?)\b\.?", r"\1 minutes"),
        (rf"\b({_NUMBER})\s*%", r"\1 percent"),
    )
)
_ONE_UNIT = re.compile(r"(?<![\d.,])1 (second|minute|degree)s\b")

# "T-spine", "hip-width", "90-degree", "warm-up": a hyphen between word
# characters is read as a pause at best and "hyphen" at worst; a space reads right.
_COMPOUND = re.compile(rf"(?<=[^\W_])[{_DASH_CLASS}](?=[^\W_])")
_PER = re.compile(r"(?<=[^\W_])\s*/\s*(side|leg|arm|rep|set|round|minute|min|second|sec)\b", re.IGNORECASE)
_SLASH = re.compile(r"(?<=[^\W_])\s*/\s*(?=[^\W_])")
_LEADING = re.compile(rf"^[\s{_DASH_CLASS}+*#=_.:;,/]+")
_LEADING_MINUS_NUMBER = re.compile(rf"^\s*[{_DASH_CLASS}](?=\d)")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=4096)  # a session repeats the same few hundred cue texts thousands of times
def normalize_for_speech(text: str) -> str:
    """The text to synthesize for the written cue ``text`` (idempotent; may be empty)."""
    spoken = unicodedata.normalize("NFC", text)
    spoken = _CONTROL.sub(" ", spoken)
    # Markup and option-like text are spoken literally: drop the brackets and
    # the leading dashes, keep the words inside.
    spoken = _MARKUP_CHARS.sub(" ", spoken)
    spoken = spoken.replace("&", " and ")
    spoken = _LEADING_MINUS_NUMBER.sub("minus ", spoken)
    for pattern, replacement in _ABBREVIATIONS:
        spoken = pattern.sub(replacement, spoken)
    for pattern, replacement in _UNITS:
        spoken = pattern.sub(replacement, spoken)
    spoken = _ONE_UNIT.sub(r"1 \1", spoken)
    spoken = _PER.sub(lambda m: " per " + m.group(1), spoken)
    spoken = spoken.replace("and/or", "and or")
    spoken = _SLASH.sub(" or ", spoken)
    spoken = _COMPOUND.sub(" ", spoken)
    spoken = _SPACES.sub(" ", spoken).strip()
    spoken = _LEADING.sub("", spoken)
    return spoken
