"""The voice layer's pure parts: normalization, trimming, the cache file format, estimates, ranges.

No speech engine here; the real-speech tests are in test_voice_engine.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.audio.clip import Clip
from coach.errors import UsageError
from coach.timeline import VoiceSpec
from coach.voice import (
    EstimateEngine,
    SpeechEngine,
    TrimSettings,
    estimate_speech_s,
    normalize_for_speech,
    open_voice,
    trim_silence,
    validate_voice,
)
from coach.voice.cache import cache_key, decode_entry, encode_entry
from coach.voice.trim import speech_bounds

# -- normalization ---------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("90-degree turn", "90 degree turn"),
        ("T-spine rotation", "T spine rotation"),
        ("Feet hip-width apart", "Feet hip width apart"),
        ("Bend the knees, e.g. like this", "Bend the knees, for example like this"),
        ("Slowly, i.e. over 3 counts", "Slowly, that is over 3 counts"),
        ("Left vs. right", "Left versus right"),
        ("Arms, legs, etc.", "Arms, legs, et cetera"),
        ("Turn 180°", "Turn 180 degrees"),
        ("Turn 180 degrees", "Turn 180 degrees"),
        ("10-12 reps", "10 to 12 reps"),
        ("10–12 reps", "10 to 12 reps"),
        ("Hold 30s", "Hold 30 seconds"),
        ("Hold 1s", "Hold 1 second"),
        ("30 sec. rest", "30 seconds rest"),
        ("2 mins easy", "2 minutes easy"),
        ("3 x 10", "3 by 10"),
        ("Repeat 3x", "Repeat 3 times"),
        ("8 reps/side", "8 reps per side"),
        ("left/right", "left or right"),
        ("With a towel & a mat", "With a towel and a mat"),
        ("50% effort", "50 percent effort"),
        ("warm-up", "warm up"),
        ("Don’t “lock” your knees", "Don’t “lock” your knees"),
        ("3 sets of 10", "3 sets of 10"),
    ],
)
def test_written_forms_that_read_badly_are_rewritten_for_the_ear(written, spoken):
    assert normalize_for_speech(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("[[h@loU]]", "h@loU"),
        ("<break time='3s'/>", "break time='3s'"),
        ("<speak>Hi</speak>", "speak Hi speak"),
        ("-x", "x"),
        ("--help", "help"),
        ("-5 degrees", "minus 5 degrees"),
        ("  \t\n ", ""),
        ("", ""),
    ],
)
def test_markup_and_option_like_text_is_neutralized(written, spoken):
    assert normalize_for_speech(written) == spoken


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_normalized_text_never_carries_markup_or_a_leading_dash(text):
    spoken = normalize_for_speech(text)
    assert not set(spoken) & set("<>[]{}")
    assert not spoken.startswith(("-", "\u2013", "\u2014", " "))
    assert spoken == spoken.strip()
    assert normalize_for_speech(spoken) == spoken, "normalization must be idempotent"


def test_normalization_leaves_the_cue_text_itself_alone():
    cue_text = "T-spine: 10-12 reps/side"
    normalize_for_speech(cue_text)
    assert cue_text == "T-spine: 10-12 reps/side"


# -- trimming --------------------------------------------------------------


def _burst(lead_s: float, speech_s: float, tail_s: float, rate_hz: int = 22050, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    speech = (0.5 * rng.uniform(-1, 1, int(speech_s * rate_hz))).astype(np.float32)
    return np.concatenate(
        [np.zeros(int(lead_s * rate_hz), np.float32), speech, np.zeros(int(tail_s * rate_hz), np.float32)]
    )


@given(
    lead_s=st.floats(0.0, 0.5),
    speech_s=st.floats(0.03, 1.0),
    tail_s=st.floats(0.0, 0.5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=60, deadline=None)
def test_trimming_keeps_exactly_ten_ms_of_silence_around_the_speech(lead_s, speech_s, tail_s, seed):
    raw = _burst(lead_s, speech_s, tail_s, seed=seed)
    trimmed = trim_silence(Clip(raw, 22050))
    bounds = speech_bounds(trimmed.samples, -40.0)
    assert bounds is not None
    keep = int(round(0.010 * 22050))
    assert bounds[0] == keep
    assert len(trimmed.samples) - bounds[1] == keep
    # Nothing loud was cut: the loud stretch has the same length before and after.
    raw_bounds = speech_bounds(raw, -40.0)
    assert raw_bounds is not None
    assert bounds[1] - bounds[0] == raw_bounds[1] - raw_bounds[0]


def test_trimmed_edges_start_and_end_at_zero_so_they_never_click():
    # A noise floor just under the threshold: the cut lands inside it, and the fade must bring it to 0.
    rng = np.random.default_rng(1)
    floor = (0.004 * rng.uniform(-1, 1, 22050)).astype(np.float32)
    floor[8000:12000] += (0.8 * rng.uniform(-1, 1, 4000)).astype(np.float32)
    trimmed = trim_silence(Clip(floor, 22050))
    assert trimmed.samples[0] == pytest.approx(0.0, abs=1e-4)
    assert trimmed.samples[-1] == pytest.approx(0.0, abs=1e-4)
    steps = np.abs(np.diff(trimmed.samples[:110]))
    assert steps.max() < 0.01


def test_an_all_silent_clip_trims_to_nothing():
    assert len(trim_silence(Clip(np.zeros(5000, np.float32), 22050)).samples) == 0
    assert len(trim_silence(Clip(np.zeros(0, np.float32), 22050)).samples) == 0


def test_trim_settings_are_part_of_their_key():
    assert TrimSettings().key() != TrimSettings(keep_s=0.02).key()


# -- cache file format -----------------------------------------------------


def test_a_cache_entry_round_trips_sample_for_sample():
    clip = Clip(np.linspace(-1, 1, 999, dtype=np.float32), 22050)
    back = decode_entry(encode_entry(clip))
    assert back is not None
    assert back.sample_rate_hz == 22050
    np.testing.assert_array_equal(back.samples, clip.samples)


def test_a_damaged_cache_entry_decodes_to_nothing():
    data = encode_entry(Clip(np.linspace(-1, 1, 999, dtype=np.float32), 22050))
    flipped = bytearray(data)
    flipped[-10] ^= 0x40
    assert decode_entry(bytes(flipped)) is None
    assert decode_entry(data[: len(data) // 2]) is None
    assert decode_entry(data[:5]) is None
    assert decode_entry(b"") is None
    assert decode_entry(b"RIFF" + data[4:]) is None


def test_cache_keys_change_with_every_input():
    base = {"engine": "pyttsx3", "engine_version": "pyttsx3 2.99; espeak 1.51", "voice": "gmw/en-us",
            "rate_wpm": 170, "volume": 1.0, "text": "Go", "trim": TrimSettings().key()}
    keys = {cache_key(base)}
    for field, other in [("engine_version", "pyttsx3 2.99; espeak 1.52"), ("voice", "gmw/en"),
                         ("rate_wpm", 171), ("volume", 0.9), ("text", "Go!"),
                         ("trim", TrimSettings(threshold_db=-50).key())]:
        keys.add(cache_key({**base, field: other}))
    assert len(keys) == 7
    assert cache_key(dict(base)) == cache_key(base)


# -- the estimate engine ---------------------------------------------------


def test_the_estimate_engine_is_a_speech_engine_of_silent_clips():
    engine = EstimateEngine(rate_wpm=120)
    assert isinstance(engine, SpeechEngine)
    clip = engine.synthesize("one two three four")
    assert clip.duration_s == pytest.approx(2.0, abs=1e-4)
    assert not clip.samples.any()


def test_estimates_grow_with_words_and_shrink_with_rate():
    assert estimate_speech_s("", 170) == 0.0
    assert estimate_speech_s("Go", 170) == pytest.approx(60 / 170)
    assert estimate_speech_s("Keep your back flat", 170) > estimate_speech_s("Go", 170)
    assert estimate_speech_s("Keep your back flat", 300) < estimate_speech_s("Keep your back flat", 150)
    assert estimate_speech_s("Breathe in. Breathe out.", 170) == pytest.approx(4 * 60 / 170 + 0.12)


def test_an_estimate_voice_measures_normalized_text_without_a_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_CACHE_DIR", str(tmp_path))
    voice = open_voice(VoiceSpec(engine="estimate", voice="anything", rate_wpm=120))
    assert voice.spec.voice == "anything"
    # "e.g." is spoken as two words.
    assert voice.measure_s("e.g. now") == pytest.approx(3 * 0.5, abs=1e-4)
    assert voice.measure_s("   ") == 0.0
    voice.prefetch(["a b", "c d e"])
    assert not list(tmp_path.rglob("*.clip"))


# -- validation of numbers (no engine needed) ------------------------------


@pytest.mark.parametrize("rate", [79, 451, 0, -170, 170.5, True, "fast"])
def test_a_rate_outside_80_to_450_wpm_is_a_usage_error(rate):
    with pytest.raises(UsageError, match="rate"):
        validate_voice(VoiceSpec(engine="estimate", rate_wpm=rate))


@pytest.mark.parametrize("volume", [0.0, 0.09, 1.01, 3.0, -1.0, math.nan, "loud"])
def test_a_volume_outside_0_1_to_1_is_a_usage_error(volume):
    with pytest.raises(UsageError, match="volume"):
        validate_voice(VoiceSpec(engine="estimate", volume=volume))


@pytest.mark.parametrize(("rate", "volume"), [(80, 0.1), (450, 1.0), (170.0, 1)])
def test_the_range_ends_are_accepted(rate, volume):
    spec = validate_voice(VoiceSpec(engine="estimate", rate_wpm=rate, volume=volume))
    assert (spec.rate_wpm, spec.volume) == (int(rate), float(volume))


def test_an_unknown_engine_is_a_usage_error_with_a_suggestion():
    with pytest.raises(UsageError, match="'pyttsx3'"):
        validate_voice(VoiceSpec(engine="pyttsx"))
