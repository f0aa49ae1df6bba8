"""The word error rate behind scripts/bench-speech (the computation, not the whole benchmark)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from speech_wer import match_compounds, number_words, reference_words, wer, word_errors, words  # noqa: E402


def test_numbers_are_compared_as_the_words_a_recognizer_writes():
    assert number_words(4) == ["four"]
    assert number_words(45) == ["forty", "five"]
    assert number_words(180) == ["one", "hundred", "eighty"]
    assert number_words(2026) == ["two", "thousand", "twenty", "six"]
    with pytest.raises(ValueError):
        number_words(-1)


def test_case_punctuation_hyphens_and_curly_apostrophes_do_not_count():
    assert words("Exercise 2 of 4: Bird-Dog.") == ["exercise", "two", "of", "four", "bird", "dog"]
    assert words("You’re doing well, it's done!") == ["you're", "doing", "well", "it's", "done"]
    # The reference is what the engine was asked to say: "3x10" is spoken "3 by 10".
    assert reference_words("3x10 reps") == ["three", "by", "ten", "reps"]


def test_substitutions_deletions_and_insertions_each_count_one():
    ref = "hold it there for five seconds".split()
    assert word_errors(ref, ref) == 0
    assert word_errors(ref, "hold it there for nine seconds".split()) == 1  # substitution
    assert word_errors(ref, "hold it for five seconds".split()) == 1  # deletion
    assert word_errors(ref, "hold it right there for five seconds".split()) == 1  # insertion
    assert word_errors(ref, []) == len(ref)
    assert word_errors([], ["noise"]) == 1
    assert wer(word_errors(ref, "all it there for five".split()), len(ref)) == pytest.approx(2 / 6)
    assert wer(0, 0) == 0.0


def test_a_compound_written_open_or_closed_is_spelled_as_the_cue_spells_it():
    ref = words("a pull-up bar to your doorframe, head, mid back and tailbone")
    assert match_compounds(ref, "a pull up bar to your door frame".split())[-1] == "doorframe"
    assert match_compounds(ref, "mid back and tail bone".split())[-1] == "tailbone"
    assert match_compounds(ref, "a pullup bar".split()) == ["a", "pull", "up", "bar"]
    # Only compounds of the cue, of real words: the reference is never touched, "a t" is not "at".
    assert match_compounds(words("a T-spine"), ["at", "spine"]) == ["at", "spine"]
    assert match_compounds(ref, "door frames".split()) == ["door", "frames"]
    assert match_compounds(ref, ref) == ref
