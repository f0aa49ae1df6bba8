"""Word error rate of a recognizer's transcript against the cue texts (used by scripts/bench-speech).

    cue text --normalize_for_speech--> spoken text --words()--> reference words
    recognizer hypothesis --words()--> hypothesis words
    word_errors(reference, hypothesis) = substitutions + deletions + insertions

WER = errors / reference words, summed over cues (a chapter's WER weighs each
cue by its length). Numbers are compared as words ("4" is "four"), case and
punctuation are ignored, hyphens split words ("Bird-Dog" is "bird dog") and
curly apostrophes are straight ones (the recognizer's dictionary spells
"you're"). A compound spelled open or closed is one spelling: where the
recognizer writes "door frame" for the cue's "doorframe" (or "tailbone" for
"tail bone"), ``match_compounds`` spells the hypothesis as the reference does
before counting; the reference itself is never changed.
"""

from __future__ import annotations

import re

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> list[str]:
    """``n`` (0..999999) as spoken words: 45 -> ["forty", "five"], 180 -> ["one", "hundred", "eighty"]."""
    if n < 0 or n > 999_999:
        raise ValueError(f"{n} is outside 0..999999")
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (number_words(n % 10) if n % 10 else [])
    if n < 1000:
        return number_words(n // 100) + ["hundred"] + (number_words(n % 100) if n % 100 else [])
    return number_words(n // 1000) + ["thousand"] + (number_words(n % 1000) if n % 1000 else [])


_TOKEN = re.compile(r"\d+|[a-z]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """The words of ``text`` as a recognizer spells them: lowercase, numbers spelled out, no punctuation."""
    folded = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    out: list[str] = []
    for token in _TOKEN.findall(folded):
        out.extend(number_words(int(token)) if token.isdigit() else [token])
    return out


def reference_words(cue_text: str) -> list[str]:
    """What a listener should hear for a cue: the text Coach sends to the engine, as words."""
    from coach.voice.normalize import normalize_for_speech

    return words(normalize_for_speech(cue_text))


def match_compounds(reference: list[str], hypothesis: list[str]) -> list[str]:
    """``hypothesis`` with compounds spelled as in ``reference``: two heard words whose concatenation is a
    reference word are joined ("door frame" -> "doorframe"), a heard word that is two adjacent reference
    words run together is split ("tailbone" -> "tail bone"). Each part has two letters or more: "a t" is not
    a compound of "at". Nothing else changes.
    """
    closed = {w for w in reference if len(w) >= 4}
    open_pairs = {a + b: (a, b) for a, b in zip(reference, reference[1:]) if len(a) >= 2 and len(b) >= 2}
    out: list[str] = []
    i = 0
    while i < len(hypothesis):
        word = hypothesis[i]
        if (i + 1 < len(hypothesis) and word not in closed and len(word) >= 2 and len(hypothesis[i + 1]) >= 2
                and word + hypothesis[i + 1] in closed):
            out.append(word + hypothesis[i + 1])
            i += 2
            continue
        out.extend(open_pairs[word] if word not in closed and word in open_pairs else (word,))
        i += 1
    return out


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Fewest substitutions, deletions and insertions turning ``reference`` into ``hypothesis`` (Levenshtein)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(errors: int, reference_count: int) -> float:
    """Errors per reference word (0 for an empty reference with no errors)."""
    if reference_count == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / reference_count
