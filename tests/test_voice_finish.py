"""espeak-ng clips are trimmed and normalized in the speech workers: the same clip, to the bit, as in this process."""

from __future__ import annotations

import numpy as np
import pytest

from coach.audio.level import SPEECH_LUFS
from coach.timeline import VoiceSpec
from coach.voice import finish, open_voice
from coach.voice.trim import DEFAULT_TRIM, TrimSettings

TEXTS = ("Rest.", "Lift your right arm and your left leg, then hold still.", "Three! Two! One!")


def assert_same_clip(a, b) -> None:
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.sample_rate_hz == b.sample_rate_hz
    assert a.level.loudness_lufs == b.level.loudness_lufs and a.level.true_peak == b.level.true_peak
    np.testing.assert_array_equal(a.level.energy, b.level.energy)


def test_a_worker_finishes_a_clip_exactly_as_this_process_would():
    with open_voice(VoiceSpec(engine="pyttsx3", volume=0.8), use_cache=False) as voice:
        target = SPEECH_LUFS + 20 * np.log10(0.8)
        for text in TEXTS:
            raw = voice.engine.synthesize(text)
            here = finish.finish(raw, DEFAULT_TRIM, target)
            there = voice.engine.finish(raw, DEFAULT_TRIM, target)
            assert_same_clip(there, here)
            assert abs(there.level.loudness_lufs - target) < 1.5  # normalized (a limited word may sit lower)
        other = TrimSettings(threshold_db=-30.0, keep_s=0.05)
        raw = voice.engine.synthesize(TEXTS[1])
        assert_same_clip(voice.engine.finish(raw, other, target), finish.finish(raw, other, target))
        assert voice.engine.finish(raw, other, target).duration_s != voice.engine.finish(raw, DEFAULT_TRIM,
                                                                                          target).duration_s


def test_a_voice_clip_is_the_finished_take_and_silence_stays_silent():
    with open_voice(VoiceSpec(engine="pyttsx3"), use_cache=False) as voice:
        clip = voice.clip("Hold still.")
        assert clip.level is not None and abs(clip.level.loudness_lufs - SPEECH_LUFS) < 1.5
        silent = voice.engine.finish(type(clip)(np.zeros(2205, np.float32), clip.sample_rate_hz), DEFAULT_TRIM,
                                     SPEECH_LUFS)
        assert not silent.samples.any() and silent.level.loudness_lufs == -np.inf


def test_a_worker_that_dies_while_finishing_leaves_the_clip_to_this_process(monkeypatch):
    with open_voice(VoiceSpec(engine="pyttsx3"), use_cache=False) as voice:
        raw = voice.engine.synthesize(TEXTS[0])
        real = finish.request

        def request_that_kills_the_worker(*args):
            message = real(*args)
            message["samples"] = None  # the worker fails on it and answers "failed"
            return message

        monkeypatch.setattr(finish, "request", request_that_kills_the_worker)
        clip = voice.engine.finish(raw, DEFAULT_TRIM, SPEECH_LUFS)
        monkeypatch.undo()
        assert_same_clip(clip, finish.finish(raw, DEFAULT_TRIM, SPEECH_LUFS))
        assert voice.engine.synthesize(TEXTS[0]).duration_s > 0.1  # the pool goes on with a fresh worker

