"""export(): a whole session to a file, normalized, chaptered, split, atomic (synthetic voice)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile

from coach.audio.loudness import LoudnessMeter, true_peak_dbtp
from coach.audio.render import render_blocks
from coach.errors import OutputError, UsageError
from coach.export import export

from audio_helpers import SyntheticVoice, clip_for_session, session
from test_audio_writers import parse_riff

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    timeline = session(180.0)
    stages = []
    result = export(timeline, SyntheticVoice(), folder / "s.wav",
                    progress=lambda stage, done, total: stages.append((stage, done, total)))
    audio, rate = soundfile.read(folder / "s.wav", dtype="float64")
    return timeline, result, audio, rate, stages, folder / "s.wav"


@pytest.mark.slow  # exports the whole built-in session
def test_the_session_is_at_minus_16_lufs_and_pyloudnorm_agrees(exported):
    _, result, audio, rate, _, _ = exported
    theirs = pyloudnorm.Meter(rate).integrated_loudness(audio)
    assert abs(theirs - -16.0) <= 1.0
    assert abs(result.loudness_lufs - theirs) < 0.5
    assert abs(result.loudness_lufs - -16.0) < 0.3


@pytest.mark.slow  # exports the whole built-in session
def test_true_peaks_stay_at_or_below_minus_1_dbtp(exported):
    _, result, audio, _, _, _ = exported
    assert result.peak_bound_dbtp <= -1.0
    assert true_peak_dbtp(audio) <= -1.0


@pytest.mark.slow  # exports the whole built-in session
def test_every_clip_sits_where_the_plain_render_puts_it_and_gaps_are_silent(exported):
    timeline, result, audio, rate, _, _ = exported
    reference = np.concatenate(list(render_blocks(timeline, clip_for_session(SyntheticVoice()), rate, 2)))
    assert audio.shape == reference.shape == (round(timeline.duration_s * rate), 2)
    # Gaps stay digital silence: the exporter only scales, never moves or smears.
    assert not audio[reference == 0].any()
    for cue in timeline.cues:
        first = round(cue.start_s * rate)
        assert not audio[first - 200 : first].any(), "silence right before each cue"
        assert audio[first : first + round(0.3 * rate)].any()  # speech-like bursts come every 0.25 s


@pytest.mark.slow  # exports the whole built-in session
def test_earcons_are_not_louder_than_the_speech(exported):
    timeline, result, audio, rate, _, _ = exported

    def loudest(kind):
        meter = LoudnessMeter(rate, 2)
        for cue in timeline.cues:
            if cue.kind == kind:
                first = round(cue.start_s * rate)
                meter.add(audio[first : first + round(0.4 * rate)])
        return meter.max_momentary_lufs()

    assert loudest("sound") <= loudest("speech")


@pytest.mark.slow  # exports the whole built-in session
def test_the_wav_carries_every_chapter(exported):
    timeline, _, _, rate, _, path = exported
    riff = parse_riff(path.read_bytes())
    assert list(riff["labels"].values()) == [c.title for c in timeline.chapters]
    assert list(riff["cues"].values()) == [round(c.start_s * rate) for c in timeline.chapters]


def test_progress_reports_synthesis_then_writing_in_one_pass(exported):
    timeline, _, _, rate, stages, _ = exported
    names = [s for s, _, _ in stages]
    assert set(names) == {"synth", "write"}
    assert names.index("synth") < names.index("write") and "synth" not in names[names.index("write"):]
    last_write = [s for s in stages if s[0] == "write"][-1]
    assert last_write[1] == last_write[2] == round(timeline.duration_s * rate)


@pytest.mark.slow  # exports whole sessions
def test_mono_mp3_and_other_rates_are_normalized_too(tmp_path):
    timeline = session(60.0)
    result = export(timeline, SyntheticVoice(), tmp_path / "s.mp3", mono=True, sample_rate_hz=22050)
    from mutagen.id3 import ID3
    from mutagen.mp3 import MP3

    info = MP3(tmp_path / "s.mp3").info
    assert (info.channels, info.sample_rate) == (1, 22050)
    assert len(ID3(tmp_path / "s.mp3").getall("CHAP")) == len(timeline.chapters)
    assert abs(result.loudness_lufs - -16.0) < 0.5 and result.peak_bound_dbtp <= -1.0


@pytest.mark.slow  # exports whole sessions
def test_split_writes_one_file_per_chapter_and_a_playlist(tmp_path):
    timeline = session(150.0)
    result = export(timeline, SyntheticVoice(), None, split_dir=tmp_path / "parts")
    files = sorted((tmp_path / "parts").glob("*.wav"))
    assert [f.name for f in files] == ["01 Part 1.wav", "02 Part 2.wav", "03 Part 3.wav"]
    lengths = [soundfile.info(f).frames for f in files]
    assert lengths == [60 * 44100, 60 * 44100, 30 * 44100]
    playlist = (tmp_path / "parts" / "synthetic.m3u").read_text().splitlines()
    assert playlist[0] == "#EXTM3U"
    assert [line for line in playlist if not line.startswith("#")] == [f.name for f in files]
    assert "#EXTINF:60,Part 1" in playlist
    # Together the parts are the session, at the same level.
    joined = np.concatenate([soundfile.read(f)[0] for f in files])
    assert abs(pyloudnorm.Meter(44100).integrated_loudness(joined) - -16.0) < 1.0
    assert result.peak_bound_dbtp <= -1.0


def test_an_existing_output_is_refused_before_any_work(tmp_path):
    (tmp_path / "s.wav").write_bytes(b"keep")
    voice = SyntheticVoice()
    with pytest.raises(OutputError, match="exists"):
        export(session(30.0), voice, tmp_path / "s.wav")
    assert voice.prefetched == [] and (tmp_path / "s.wav").read_bytes() == b"keep"
    export(session(30.0), voice, tmp_path / "s.wav", force=True)
    assert soundfile.info(tmp_path / "s.wav").frames == 30 * 44100


def test_bad_formats_and_rates_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="extension"):
        export(session(10.0), SyntheticVoice(), tmp_path / "s.aiff")
    with pytest.raises(UsageError, match="MP3"):
        export(session(10.0), SyntheticVoice(), tmp_path / "s.mp3", sample_rate_hz=17000)
    with pytest.raises(UsageError, match="script"):
        export(session(10.0), SyntheticVoice(), tmp_path / "s.wav", script_path=tmp_path / "s.doc")
    assert list(tmp_path.iterdir()) == []


def test_the_cue_script_is_written_next_to_the_audio(tmp_path):
    pytest.importorskip("coach.cuescript")
    timeline = session(30.0)
    export(timeline, SyntheticVoice(), tmp_path / "s.wav", script_path=tmp_path / "s.json")
    data = json.loads((tmp_path / "s.json").read_text())
    assert len(data["cues"]) == len(timeline.cues)


@pytest.mark.slow  # exports whole sessions
def test_ctrl_c_during_an_export_leaves_no_file(tmp_path):
    calls = []

    def progress(stage, done, total):
        calls.append(stage)
        if stage == "write" and done > 10 * 44100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(session(60.0), SyntheticVoice(), tmp_path / "s.flac", progress=progress)
    assert list(tmp_path.iterdir()) == []


PEAK_RSS = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, {tests!r})
    from audio_helpers import SyntheticVoice, session
    from coach.export import export
    started = time.monotonic()
    export(session(float(sys.argv[1])), SyntheticVoice(), sys.argv[2], sample_rate_hz=int(sys.argv[3]), mono=True)
    # VmHWM is this process's own peak; ru_maxrss would include the parent's (pytest's) RSS,
    # which Linux carries over fork and exec.
    try:
        with open("/proc/self/status") as f:
            hwm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except OSError:
        hwm_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"rss_mb": hwm_kb / 1024, "seconds": time.monotonic() - started}}))
    """
)


def peak_rss(duration_s: float, path: Path, rate_hz: int) -> dict:
    code = PEAK_RSS.format(tests=str(ROOT / "tests"))
    out = subprocess.run([sys.executable, "-c", code, str(duration_s), str(path), str(rate_hz)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow  # exports a 2-hour session
def test_peak_memory_does_not_grow_with_the_session_length(tmp_path):
    # 8 kHz mono keeps this test short; scripts measure the full 44.1 kHz stereo case for the notes.
    short = peak_rss(600.0, tmp_path / "short.flac", 8000)
    long = peak_rss(7200.0, tmp_path / "long.flac", 8000)
    print(f"peak RSS: 10 min {short['rss_mb']:.0f} MB in {short['seconds']:.1f} s, "
          f"2 h {long['rss_mb']:.0f} MB in {long['seconds']:.1f} s")
    # A 2-hour session held in memory would need 2 h * 8000 * 4 B = 230 MB for one float32 copy. The bound
    # is the (within 10 MB of a 10-minute export); measured here: +3 MB (46 -> 49 MB).
    assert long["rss_mb"] < short["rss_mb"] + 10
