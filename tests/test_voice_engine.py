"""Real speech through pyttsx3 + espeak-ng: every pitfall in shared/notes/pitfalls.md, tested.

These tests synthesize for real (espeak-ng is installed on CI). Faults that
cannot be provoked on demand (a hang, a lost file, a dead worker) are injected
by a worker script that wraps the real worker and breaks it once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from coach.errors import SpeechEngineError, UsageError
from coach.timeline import VoiceSpec
from coach.voice import list_voices, open_voice, trim_silence, validate_voice
from coach.voice.pyttsx3_engine import Pyttsx3Engine
from coach.voice.trim import speech_bounds

REPO = Path(__file__).resolve().parent.parent
RATE_HZ = 22050


def voice(rate_wpm: int = 170, name: str = "en-us", volume: float = 1.0):
    """A Voice without disk cache, so every clip is really synthesized."""
    return open_voice(VoiceSpec(engine="pyttsx3", voice=name, rate_wpm=rate_wpm, volume=volume), use_cache=False)


def loud_s(samples: np.ndarray) -> float:
    """Seconds from the first to the last sample within 40 dB of the peak."""
    bounds = speech_bounds(samples, -40.0)
    assert bounds is not None, "no speech in the clip"
    return (bounds[1] - bounds[0]) / RATE_HZ


# -- many cues in a row ----------------------------------------------------


@pytest.mark.slow  # 300 syntheses
def test_three_hundred_cues_in_a_row_give_three_hundred_right_clips():
    v = voice(rate_wpm=220)
    durations: list[float] = []
    for i in range(150):
        # Short and long cues alternate: a stale or lost file would show as a
        # short cue as long as a long one (or the other way round).
        short = v.clip(f"Set {i}")
        long = v.clip(f"Keep breathing slowly and steadily all through set number {i}")
        for clip in (short, long):
            assert clip.sample_rate_hz == RATE_HZ
            assert np.isfinite(clip.samples).all()
            assert np.abs(clip.samples).max() > 0.05, "an empty clip"
        assert loud_s(long.samples) > 2.0 * loud_s(short.samples), i
        durations += [short.duration_s, long.duration_s]
    assert len(durations) == 300
    assert v.synthesized == 300
    assert v.engine.retries == 0, "a file was lost or an utterance never finished"
    # Nothing drifts over hundreds of runAndWait loops: the first cues come out the same again.
    for i in range(3):
        again = v.clip(f"Keep breathing slowly and steadily all through set number {i}.")
        assert again.duration_s == pytest.approx(durations[2 * i + 1], abs=0.03)


# -- rate, voice and volume changes -----------------------------------------


def test_rate_changes_between_syntheses_take_effect():
    text = "Keep your back flat and breathe out as you lift"
    slow, fast = voice(rate_wpm=120), voice(rate_wpm=300)
    first_slow = slow.clip(text).duration_s
    fast_s = fast.clip(text).duration_s
    again_slow = slow.clip(text + ".").duration_s
    assert fast_s < 0.55 * first_slow
    assert again_slow == pytest.approx(first_slow, rel=0.05)
    # Speech length falls with the rate, roughly in proportion.
    ratio = first_slow / fast_s
    assert 1.8 < ratio < 3.2


def test_voice_changes_between_syntheses_take_effect():
    text = "Three, two, one, go"
    english, french = voice(name="en-us"), voice(name="roa/fr")
    en_s = english.clip(text).duration_s
    fr_s = french.clip(text).duration_s
    en_again_s = english.clip(text + "!").duration_s
    assert abs(en_again_s - en_s) < 0.03
    assert abs(fr_s - en_s) > 0.1
    assert english.spec.voice == "gmw/en-us"
    assert french.spec.voice == "roa/fr"


def test_volume_scales_the_speech():
    text = "Hold it there"
    loud = voice(volume=1.0).clip(text).samples
    quiet = voice(volume=0.5).clip(text).samples
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert 0.35 < rms(quiet) / rms(loud) < 0.65


# -- empty and odd text ----------------------------------------------------


def test_empty_and_blank_text_gives_an_empty_clip_without_asking_the_engine():
    v = voice()
    for text in ("", "   ", "\n\t", "[[ ]]", "<>", "--"):
        assert len(v.clip(text).samples) == 0
        assert v.measure_s(text) == 0.0
    assert v.synthesized == 0


ODD_TEXTS = [
    "💪 Stay strong 😀",
    "שלום עולם",
    "مرحبا بالعالم",
    "[[h@loU]]",
    "<break time='3s'/>",
    "-x",
    "--help",
    "Don’t “lock” your knees — ‘soft’ knees…",
    "😀",
    "...",
    "a" * 400,
    "Line one\nline two\x00\x07",
]


def test_odd_text_is_spoken_literally_and_never_breaks_the_engine():
    v = voice()
    for text in ODD_TEXTS:
        clip = v.clip(text)
        assert np.isfinite(clip.samples).all(), text
        assert clip.duration_s < 60, text
    # Markup is read, not obeyed: the break tag does not become 3 s of silence,
    # the phoneme brackets are words, and "-x"/"--help" are spoken.
    assert 0.3 < v.measure_s("<break time='3s'/>") < 3.0
    assert v.measure_s("[[h@loU]]") > 0.2
    assert v.measure_s("-x") > 0.1
    assert v.measure_s("--help") > 0.1
    assert v.measure_s("Don’t “lock” your knees — ‘soft’ knees…") > 1.0
    assert v.engine.retries == 0


# -- nothing on stdout -----------------------------------------------------

_CLIPS_TO_JSON = textwrap.dedent(
    """
    import json, sys
    from coach.timeline import VoiceSpec
    from coach.voice import open_voice
    texts = json.loads(sys.argv[1])
    voice = open_voice(VoiceSpec(engine="pyttsx3", rate_wpm=200), use_cache=False)
    durations = [round(voice.clip(t).duration_s, 3) for t in texts]
    voice.prefetch(["Prefetched one", "Prefetched two", "Prefetched three"])
    print(json.dumps(durations))
    """
)


def test_synthesis_prints_nothing_on_stdout(tmp_path):
    texts = ["Three", "Two", "One", "Go", *ODD_TEXTS[:6]]
    result = subprocess.run(
        [sys.executable, "-c", _CLIPS_TO_JSON, json.dumps(texts)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "COACH_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    # stdout is exactly the one JSON line: no "Audio saved to ..." anywhere.
    assert result.stdout.count("\n") == 1
    durations = json.loads(result.stdout)
    assert len(durations) == len(texts) and all(d > 0 for d in durations[:4])
    assert "Audio saved" not in result.stderr


def test_pyttsx3_alone_does_print_on_stdout(tmp_path):
    # The control for the test above: the hazard is real, so that test can fail.
    script = textwrap.dedent(
        """
        import threading, pyttsx3
        done = threading.Event()
        engine = pyttsx3.init("espeak")
        engine.connect("finished-utterance", lambda name, completed: done.set())
        engine.save_to_file("Go", "go.wav")
        engine.runAndWait()
        done.wait(10)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert "Audio saved to go.wav" in result.stdout


# -- trimming on real speech -----------------------------------------------


@pytest.mark.parametrize("text", ["Three", "Two", "One", "Go", "Keep your back straight"])
def test_trimmed_speech_has_at_most_15_ms_of_silence_at_either_end(text):
    engine = voice().engine
    raw = engine.synthesize(text)
    clip = trim_silence(raw)
    bounds = speech_bounds(clip.samples, -40.0)
    assert bounds is not None
    lead_s = bounds[0] / RATE_HZ
    tail_s = (len(clip.samples) - bounds[1]) / RATE_HZ
    assert 0.005 <= lead_s <= 0.015
    assert 0.005 <= tail_s <= 0.015
    # espeak's own padding was much longer, and no speech energy was lost.
    assert raw.duration_s - clip.duration_s > 0.2
    energy = lambda x: float(np.sum(x.astype(np.float64) ** 2))  # noqa: E731
    assert energy(clip.samples) >= 0.999 * energy(raw.samples)
    assert abs(clip.samples[0]) < 1e-3 and abs(clip.samples[-1]) < 1e-3


def test_countdown_words_are_short_after_trimming():
    v = voice()
    for word in ("Three", "Two", "One", "Go"):
        assert 0.2 < v.measure_s(word) < 0.5, word


# -- voices and their errors -----------------------------------------------


def test_english_voices_are_listed_with_ids_names_and_languages():
    voices = list_voices("pyttsx3", language="en")
    ids = {v.id for v in voices}
    assert {"gmw/en-us", "gmw/en"} <= ids
    assert all(any(lang.startswith("en") for lang in v.languages) for v in voices)
    assert len(list_voices("pyttsx3")) > len(voices)
    us = next(v for v in voices if v.id == "gmw/en-us")
    assert us.name == "English (America)" and us.languages == ("en-us",)


@pytest.mark.parametrize("name", ["gmw/en-us", "en-us", "EN-US", "English (America)", "english_(america)"])
def test_a_voice_can_be_named_by_id_short_id_name_or_language(name):
    assert validate_voice(VoiceSpec(engine="pyttsx3", voice=name)).voice == "gmw/en-us"


@pytest.mark.parametrize(("name", "expected"), [("en-usa", "gmw/en-us"), ("Englsh (America)", "gmw/en-us"),
                                                ("frenc", "roa/fr"), ("gmw/de-de", "gmw/de")])
def test_an_unknown_voice_is_an_error_naming_close_matches(name, expected):
    with pytest.raises(UsageError) as caught:
        validate_voice(VoiceSpec(engine="pyttsx3", voice=name))
    assert "close matches" in str(caught.value)
    assert expected in str(caught.value)
    assert caught.value.hint and "coach voices" in caught.value.hint


def test_a_voice_unlike_any_other_is_an_error_too():
    with pytest.raises(UsageError, match="unknown voice 'zzzzqqq'"):
        validate_voice(VoiceSpec(engine="pyttsx3", voice="zzzzqqq"))


def test_a_bad_rate_is_refused_before_the_engine_sees_it():
    with pytest.raises(UsageError, match="80..450"):
        open_voice(VoiceSpec(engine="pyttsx3", rate_wpm=500))


# -- a missing engine ------------------------------------------------------


def test_a_missing_libespeak_ng_is_a_speech_error_saying_how_to_install_it(tmp_path):
    # Unloadable stand-ins shadow the real library for the loader in the subprocess.
    fake = tmp_path / "lib"
    fake.mkdir()
    for name in ("libespeak-ng.so.1", "libespeak.so.1"):
        (fake / name).write_text("not a shared library\n")
    env = {**os.environ, "LD_LIBRARY_PATH": str(fake), "COACH_CACHE_DIR": str(tmp_path / "cache")}
    script = textwrap.dedent(
        """
        from coach.errors import SpeechEngineError
        from coach.timeline import VoiceSpec
        from coach.voice import open_voice
        try:
            open_voice(VoiceSpec(engine="pyttsx3")).clip("Go")
        except SpeechEngineError as exc:
            print(exc.exit_status.value, exc.message, "|", exc.hint)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("5 no speech engine: libespeak-ng cannot be loaded")
    assert "sudo apt-get install espeak-ng" in result.stdout
    assert "scripts/setup" in result.stdout


# -- faults: hangs, lost files, dead workers, dropped settings -------------

_FAULTY_WORKER = textwrap.dedent(
    """
    import os, sys, time
    import pyttsx3.engine
    from pyttsx3.drivers import espeak

    fault, marker = os.environ["COACH_TEST_FAULT"], os.environ["COACH_TEST_MARKER"]

    def first_time():
        if fault.startswith("always"):
            return True
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            return False

    real_run, real_connect, real_save = (
        pyttsx3.engine.Engine.runAndWait, pyttsx3.engine.Engine.connect, espeak.EspeakDriver.save_to_file)

    def run(self):
        if fault == "hang" and first_time():
            time.sleep(3600)
        if fault == "crash" and first_time():
            os._exit(3)
        return real_run(self)

    def connect(self, topic, cb):
        if fault == "silent" and topic == "finished-utterance" and first_time():
            return {"topic": topic, "cb": cb}  # the utterance never reports it finished
        return real_connect(self, topic, cb)

    def save(self, text, filename):
        if fault.endswith("lost") and first_time():
            filename = filename + ".elsewhere"
        return real_save(self, text, filename)

    real_set = pyttsx3.engine.Engine.setProperty

    def set_property(self, name, value):
        if fault == "dropped-setting" and name == "rate" and first_time():
            return None  # as when the driver's cancel swallows a queued setProperty
        return real_set(self, name, value)

    pyttsx3.engine.Engine.runAndWait = run
    pyttsx3.engine.Engine.connect = connect
    pyttsx3.engine.Engine.setProperty = set_property
    espeak.EspeakDriver.save_to_file = save

    from coach.voice._worker import main
    main()
    """
)


@pytest.fixture
def faulty_engine(tmp_path, monkeypatch):
    script = tmp_path / "faulty_worker.py"
    script.write_text(_FAULTY_WORKER)

    def make(fault: str) -> Pyttsx3Engine:
        monkeypatch.setenv("COACH_TEST_FAULT", fault)
        monkeypatch.setenv("COACH_TEST_MARKER", str(tmp_path / f"{fault}.done"))
        # Each fault gets its own command, hence its own worker pool.
        # A short timeout keeps a hang quick to cut; 3 s is still ~100x what the phrase takes.
        return Pyttsx3Engine("gmw/en-us", 170, 1.0, worker_command=[sys.executable, str(script)],
                             timeout_base_s=3.0)

    return make


@pytest.mark.parametrize("fault", ["hang", "silent", "lost", "crash", "dropped-setting"])
def test_a_stuck_lost_or_dead_utterance_is_retried_in_a_fresh_worker(faulty_engine, fault):
    engine = faulty_engine(fault)
    started = time.perf_counter()
    clip = engine.synthesize("Hold it there")
    elapsed_s = time.perf_counter() - started
    # The fault happened (once: the marker) and a retry caught it. How many retries it took is
    # not checked: on a loaded machine a fresh worker can also miss the short timeout used here.
    assert Path(os.environ["COACH_TEST_MARKER"]).exists() and engine.retries >= 1
    assert 0.5 < loud_s(clip.samples) < 2.0
    assert elapsed_s < 600, "the hung worker (it sleeps an hour) was waited for, not replaced"
    # Spoken at the rate asked for (170 wpm), not the driver's default of 200.
    reference = voice(rate_wpm=170).engine.synthesize("Hold it there")
    assert loud_s(clip.samples) == pytest.approx(loud_s(reference.samples), abs=0.03)
    # The replacement worker keeps working, and the fault (injected once) does not come back.
    assert loud_s(engine.synthesize("Go").samples) > 0.1
    assert loud_s(engine.synthesize("Hold it there").samples) == pytest.approx(loud_s(clip.samples), abs=0.03)


def test_an_engine_that_always_loses_files_fails_with_a_clear_error(faulty_engine):
    engine = faulty_engine("always-lost")
    with pytest.raises(SpeechEngineError, match=r"failed 3 times.*lost: the engine wrote no file"):
        engine.synthesize("Go")


@pytest.mark.slow  # synthesizes for seconds
def test_ctrl_c_during_prefetch_stops_quickly_and_leaves_no_worker_behind(tmp_path):
    import signal

    script = textwrap.dedent(
        """
        import signal, sys
        # As the coach command does: Ctrl-C raises KeyboardInterrupt even when this process was
        # started with SIGINT ignored (a background job of a non-interactive shell, some CI runners).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from coach.timeline import VoiceSpec
        from coach.voice import open_voice
        voice = open_voice(VoiceSpec(engine="pyttsx3"), use_cache=False)
        print("ready", flush=True)
        try:
            voice.prefetch([f"Cue number {i}, keep going" for i in range(5000)])
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, cwd=tmp_path)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # a hung prefetch must not outlive the test
        proc.communicate()
        raise
    assert (proc.returncode, out) == (130, "interrupted\n"), err
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert left == [], "worker processes outlived their parent"
