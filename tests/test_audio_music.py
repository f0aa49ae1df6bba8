"""Music under the voice: playlists, analysis, scheduled ducking, joins, seeking, loudness by construction.

Every track is generated here (tone chords plus noise) and written as FLAC (22.05 kHz
mono), OGG/Vorbis (44.1 kHz stereo) and MP3 (48 kHz stereo, by libsndfile, with a LAME
header; and one without, by lameenc). The music is rendered on its own so it can be
measured; its gain over time is read off the audio by comparing a ducked render with an
unducked one of the same bed.
"""

from __future__ import annotations

import math
import os
import tracemalloc
from pathlib import Path

import lameenc
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import sosfilt

from coach.audio import music as music_mod
from coach.audio.loudness import TARGET_LUFS, LoudnessMeter, k_weighting_sos
from coach.audio.music import integrated_from_steps, natural_key, open_music, resolve_music_path
from coach.audio.music_bed import DUCK_ATTACK_S, speech_over_music_lu
from coach.errors import ExitStatus, InputFileError
from coach.timeline import Cue, Timeline, VoiceSpec

from audio_helpers import speechlike

RATE = 44100
LEVEL_LUFS = TARGET_LUFS - 14


def music_signal(seconds: float, rate_hz: int, channels: int, base_hz: float, seed: int) -> np.ndarray:
    """A chord with a slow tremolo plus noise, cut off wherever it ends (no fades: joins must cope)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate_hz))) / rate_hz
    chord = sum(np.sin(2 * np.pi * base_hz * r * t + k) for k, r in enumerate((1.0, 1.25, 1.5)))
    tremolo = 0.8 + 0.2 * np.sin(2 * np.pi * 0.7 * t)
    x = 0.2 * chord * tremolo
    out = np.stack([x * (1 + 0.1 * c) for c in range(channels)], axis=1)
    out += 0.03 * rng.standard_normal(out.shape)
    return out.astype(np.float32)


def write_headerless_mp3(path: Path, x: np.ndarray, rate_hz: int) -> None:
    enc = lameenc.Encoder()
    enc.set_bit_rate(160)
    enc.set_in_sample_rate(rate_hz)
    enc.set_channels(x.shape[1])
    enc.set_quality(2)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    path.write_bytes(enc.encode(pcm) + enc.flush())


@pytest.fixture(scope="module")
def music_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("music")
    sf.write(folder / "01 intro.flac", music_signal(6.3, 22050, 1, 220, 1), 22050)
    sf.write(folder / "02 groove.ogg", music_signal(5.7, 44100, 2, 330, 2), 44100)
    sf.write(folder / "03 outro.mp3", music_signal(6.1, 48000, 2, 262, 3), 48000)
    write_headerless_mp3(folder / "10 bonus.mp3", music_signal(4.9, 44100, 2, 196, 4), 44100)
    (folder / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a real jpeg")
    (folder / "notes.txt").write_text("liner notes\n")
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def timeline(duration_s: float, cues: list[tuple[float, float]] = (), sounds: list[float] = ()) -> Timeline:
    cs = [Cue(start_s=a, end_s=b, kind="speech", phase="instruction", text=f"cue {i}") for i, (a, b) in enumerate(cues)]
    cs += [Cue(start_s=s, end_s=round(s + 0.1, 3), kind="sound", phase="countdown", sound="tick") for s in sounds]
    return Timeline(
        routine="synthetic", title="Synthetic", level="standard", voice=VoiceSpec(engine="estimate"),
        duration_s=duration_s, chapters=(), cues=tuple(sorted(cs, key=lambda c: c.start_s)),
    )


def render(bed, start: int = 0, end: int | None = None, block: int = 4410) -> np.ndarray:
    end = bed.frames if end is None else end
    return np.concatenate(list(bed.blocks(start, end, block)))


def power_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(np.asarray(x, dtype=np.float64) ** 2)) + 1e-30)


def gain_db_at(ducked: np.ndarray, plain: np.ndarray, t_s: float, window_s: float = 0.02) -> float:
    """The duck's gain at ``t_s``, read from the audio: power of the ducked render over the unducked one."""
    a = int(round(t_s * RATE))
    n = int(round(window_s * RATE))
    return power_db(ducked[a : a + n]) - power_db(plain[a : a + n])


# --- finding and reading the tracks ---------------------------------------------------------


def test_a_folder_plays_its_audio_files_in_natural_name_order(music_dir: Path, cache: Path) -> None:
    warnings: list[str] = []
    playlist = open_music([music_dir], warn=warnings.append, cache_dir=cache)
    assert [p.name for p in playlist.paths] == ["01 intro.flac", "02 groove.ogg", "03 outro.mp3", "10 bonus.mp3"]
    assert warnings == []  # cover art and notes are not music and are not warned about
    assert sorted(["track 10", "Track 2", "track 1"], key=natural_key) == ["track 1", "Track 2", "track 10"]


def test_every_track_is_measured_to_its_real_end_at_the_session_rate(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    headerless = playlist.tracks[3]
    assert headerless.path.name == "10 bonus.mp3"
    # lameenc writes no LAME/Info header: the header's frame count is only an estimate.
    assert sf.info(str(headerless.path)).frames != len(sf.read(str(headerless.path))[0])
    for i, track in enumerate(playlist.tracks):
        decoded = len(sf.read(str(track.path))[0])  # read to the end of the file, not the header's count
        a = playlist.analysis(i, RATE)
        assert abs(a.frames - decoded * RATE / track.native_rate_hz) <= 2, track.path.name
        # The analysis's loudness is what a LoudnessMeter measures on the resampled stereo track.
        stereo = np.concatenate(list(music_mod.decoded_blocks(track, RATE)))
        meter = LoudnessMeter(RATE, 2)
        meter.add(stereo)
        assert a.lufs == pytest.approx(meter.integrated_lufs(), abs=0.01), track.path.name


def test_the_analysis_is_cached_and_redone_when_the_file_changes(music_dir: Path, tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    real = music_mod.analyse
    monkeypatch.setattr(music_mod, "analyse", lambda track, rate: calls.append(track.path.name) or real(track, rate))
    song = tmp_path / "song.flac"
    sf.write(song, music_signal(2.0, 22050, 1, 300, 9), 22050)
    open_music([song], cache_dir=tmp_path / "c")
    open_music([song], cache_dir=tmp_path / "c")
    assert calls == ["song.flac"]
    assert len(list((tmp_path / "c").glob("*.json"))) == 1
    sf.write(song, music_signal(3.0, 22050, 1, 300, 9), 22050)
    os.utime(song, ns=(os.stat(song).st_atime_ns, os.stat(song).st_mtime_ns + 10**9))
    again = open_music([song], cache_dir=tmp_path / "c")
    assert calls == ["song.flac", "song.flac"]
    assert again.analysis(0, RATE).frames == 3 * RATE


def test_shuffle_is_reproducible_from_its_seed(tmp_path: Path, cache: Path) -> None:
    for i in range(8):
        sf.write(tmp_path / f"{i} t.flac", music_signal(0.6, 22050, 1, 200 + 20 * i, i), 22050)
    first = open_music([tmp_path], shuffle=True, cache_dir=cache)
    assert first.seed is not None
    again = open_music([tmp_path], shuffle=True, seed=first.seed, cache_dir=cache)
    other = open_music([tmp_path], shuffle=True, seed=first.seed + 1, cache_dir=cache)
    plain = open_music([tmp_path], cache_dir=cache)
    assert again.paths == first.paths
    assert sorted(first.paths) == plain.paths
    assert {tuple(first.paths), tuple(other.paths), tuple(plain.paths)} != {tuple(plain.paths)}
    assert plain.seed is None


def test_a_playlist_reads_relative_paths_and_skips_comments(music_dir: Path, tmp_path: Path, cache: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    rel = os.path.relpath(music_dir, lists)
    (lists / "mix.m3u8").write_text(
        f"#EXTM3U\n#EXTINF:6,Outro\n{rel}/03 outro.mp3\n\n{music_dir / '01 intro.flac'}\n# a comment\n", encoding="utf-8"
    )
    playlist = open_music([lists / "mix.m3u8"], cache_dir=cache)
    assert [p.name for p in playlist.paths] == ["03 outro.mp3", "01 intro.flac"]


# --- broken inputs -------------------------------------------------------------------------


def test_broken_files_are_skipped_with_one_warning_each(music_dir: Path, tmp_path: Path, cache: Path, capfd) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = folder / "b good.flac"
    sf.write(good, music_signal(20.0, 22050, 1, 220, 5), 22050)
    (folder / "a junk.mp3").write_bytes(b"this is not an mp3 file at all\n" * 200)
    (folder / "c empty.ogg").write_bytes(b"")
    data = good.read_bytes()
    (folder / "d truncated.flac").write_bytes(data[: len(data) // 2])
    warnings: list[str] = []
    playlist = open_music([folder], warn=warnings.append, cache_dir=cache)
    assert playlist.paths == [good]
    assert len(warnings) == 3
    for name in ("a junk.mp3", "c empty.ogg", "d truncated.flac"):
        assert sum(name in w for w in warnings) == 1, warnings
    assert all("\n" not in w for w in warnings)
    assert capfd.readouterr().err == ""  # and nothing else on the terminal (libsndfile's MP3 decoder is chatty)


def test_a_folder_without_playable_music_is_an_input_error_naming_it(tmp_path: Path, cache: Path) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("hello\n")
    (folder / "b.md").write_text("# not music\n")
    with pytest.raises(InputFileError) as err:
        open_music([folder], cache_dir=cache)
    assert str(folder) in str(err.value) and err.value.exit_status == ExitStatus.INPUT == 3
    (folder / "fake.flac").write_text("not flac\n")
    warnings: list[str] = []
    with pytest.raises(InputFileError, match="texts"):
        open_music([folder], warn=warnings.append, cache_dir=cache)
    assert len(warnings) == 1 and "fake.flac" in warnings[0]


def test_a_playlist_naming_missing_files_warns_and_then_fails(tmp_path: Path, cache: Path) -> None:
    m3u = tmp_path / "gone.m3u"
    m3u.write_text("#EXTM3U\nmissing one.mp3\nsub/missing two.flac\nhttp://radio.example/stream\n")
    warnings: list[str] = []
    with pytest.raises(InputFileError) as err:
        open_music([m3u], warn=warnings.append, cache_dir=cache)
    assert str(m3u) in str(err.value) and err.value.exit_status == 3
    assert len(warnings) == 3
    assert "missing one.mp3" in warnings[0] and f"{m3u}:2:" in warnings[0]
    assert "missing two.flac" in warnings[1] and "radio.example" in warnings[2]


def test_a_missing_music_path_is_an_input_error(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(InputFileError, match="no such music file or folder") as err:
        open_music([tmp_path / "nowhere"], cache_dir=cache)
    assert str(tmp_path / "nowhere") in str(err.value)


def test_a_track_that_vanishes_mid_session_goes_silent_with_a_warning(tmp_path: Path, cache: Path) -> None:
    song = tmp_path / "song.flac"
    sf.write(song, music_signal(4.0, 44100, 2, 300, 3), 44100)
    warnings: list[str] = []
    playlist = open_music([song], warn=warnings.append, cache_dir=cache)
    bed = playlist.schedule(timeline(6.0), RATE, level_lufs=LEVEL_LUFS)
    song.unlink()
    out = render(bed)
    assert len(out) == bed.frames and not out.any()
    assert len(warnings) == 1 and str(song) in warnings[0]


# --- the bed: level, ducking, joins, loops -----------------------------------------------------


def test_each_track_plays_at_the_music_level(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    bed = playlist.schedule(timeline(30.0), RATE, level_lufs=LEVEL_LUFS, fade_out_s=0)
    out = render(bed)
    for p in bed.placements[:4]:
        a, b = p.start + RATE // 2, min(p.end, bed.frames) - RATE // 2
        meter = LoudnessMeter(RATE, 2)
        meter.add(out[a:b])
        assert meter.integrated_lufs() == pytest.approx(LEVEL_LUFS, abs=0.5), p.track.path.name


DUCK_CUES = [(3.0, 4.5), (5.0, 6.0), (6.4, 7.2), (11.0, 12.5), (16.0, 16.8)]
DUCK_SOUNDS = [9.0, 20.0]


@pytest.fixture(scope="module")
def ducked(music_dir: Path, tmp_path_factory) -> tuple:
    playlist = open_music([music_dir], cache_dir=tmp_path_factory.mktemp("c"))
    tl = timeline(26.0, DUCK_CUES, DUCK_SOUNDS)
    bed = playlist.schedule(tl, RATE, level_lufs=LEVEL_LUFS, duck_db=12.0, fade_out_s=3.0)
    plain = playlist.schedule(tl, RATE, level_lufs=LEVEL_LUFS, duck_db=0.0, fade_out_s=3.0)
    return tl, bed, render(bed), render(plain)


def test_the_music_is_fully_ducked_when_each_cue_starts(ducked) -> None:
    tl, bed, out, plain = ducked
    previous_end_s = -10.0
    for cue in tl.cues:
        assert gain_db_at(out, plain, cue.start_s) == pytest.approx(-12.0, abs=1.0), cue
        starts_a_stretch = cue.start_s - previous_end_s > 1.5
        previous_end_s = cue.end_s
        if not starts_a_stretch:
            continue
        # ... and had started going down about 200 ms before, not after.
        assert gain_db_at(out, plain, cue.start_s - DUCK_ATTACK_S - 0.05) == pytest.approx(0.0, abs=1.0), cue
        assert gain_db_at(out, plain, cue.start_s - DUCK_ATTACK_S / 2, 0.005) < -3.0, cue


def test_the_music_stays_ducked_through_short_gaps_and_comes_back_in_long_ones(ducked) -> None:
    tl, bed, out, plain = ducked
    # 4.5-5.0 and 6.0-6.4: gaps under a second stay down.
    for t_s in (4.7, 6.15):
        assert gain_db_at(out, plain, t_s) == pytest.approx(-12.0, abs=1.0)
    # Every gap longer than 2 s is back at full level once the ~600 ms release is over.
    spans = sorted((c.start_s, c.end_s) for c in tl.cues)
    long_gaps = [(b, a2) for (_, b), (a2, _) in zip(spans, spans[1:]) if a2 - b > 2.0]
    assert len(long_gaps) >= 2
    for b, a2 in long_gaps:
        for t_s in np.arange(b + 0.65, a2 - DUCK_ATTACK_S - 0.05, 0.1):
            assert gain_db_at(out, plain, t_s) == pytest.approx(0.0, abs=1.0), (b, a2, t_s)


def test_the_duck_has_no_clicks(ducked) -> None:
    tl, bed, out, plain = ducked
    g = 20 * np.log10(bed.envelope(np.arange(bed.frames - 3 * RATE, dtype=np.float64)))
    # A 12 dB ramp over 200 ms in raised-cosine shape moves at most ~0.0022 dB per sample.
    assert np.abs(np.diff(g)).max() < 12 * math.pi / 2 / (DUCK_ATTACK_S * RATE) * 1.01


def test_track_joins_have_no_jump_beyond_the_music_itself(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    bed = playlist.schedule(timeline(60.0), RATE, level_lufs=LEVEL_LUFS, fade_out_s=0)
    out = render(bed)
    jumps = np.abs(np.diff(out, axis=0)).max(axis=1)
    near_joins = np.zeros(len(jumps), dtype=bool)
    for p in bed.placements[1:]:
        near_joins[max(0, p.start - 441) : p.start + 441] = True
    inside = jumps[~near_joins & (np.arange(len(jumps)) > 441)]
    assert len(bed.placements) >= 9  # the playlist looped twice: joins between every pair, and last to first
    assert jumps[near_joins].max() <= inside.max()
    # The tracks themselves end on non-zero samples, so without the join fades this would click.
    raw_end = sf.read(str(music_dir / "02 groove.ogg"))[0][-1]
    assert np.abs(raw_end).max() > 0.01


def test_crossfades_overlap_the_tracks_at_constant_power(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    bed = playlist.schedule(timeline(30.0), RATE, level_lufs=LEVEL_LUFS, crossfade_s=2.0, fade_out_s=0)
    out = render(bed)
    first, second = bed.placements[0], bed.placements[1]
    assert second.start == first.end - 2 * RATE
    mid = out[second.start + RATE - 4096 : second.start + RATE + 4096, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    freqs = np.fft.rfftfreq(len(mid), 1 / RATE)

    def level(f_hz: float) -> float:
        return float(spectrum[np.argmin(np.abs(freqs - f_hz))])

    noise_floor = float(np.median(spectrum))
    assert level(220) > 20 * noise_floor and level(330) > 20 * noise_floor  # both tracks sound
    # Loudness through the crossfade stays at the music level (equal-power fades).
    for a, b in [(second.start, first.end), (second.start, second.start + RATE), (first.end - RATE, first.end)]:
        meter = LoudnessMeter(RATE, 2)
        meter.add(out[a:b])
        assert meter.integrated_lufs() == pytest.approx(LEVEL_LUFS, abs=1.0)


def test_the_playlist_loops_when_the_session_is_longer(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    bed = playlist.schedule(timeline(70.0), RATE, level_lufs=LEVEL_LUFS, fade_out_s=0)
    names = [p.track.path.name for p in bed.placements]
    assert names[:8] == [p.name for p in playlist.paths] * 2
    assert bed.placements[-1].end >= bed.frames
    out = render(bed)
    one, two = bed.placements[1], bed.placements[5]
    assert one.track == two.track
    np.testing.assert_allclose(out[one.start : one.end], out[two.start : two.end], atol=1e-6)


def test_the_music_fades_out_at_the_end_of_the_session(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    bed = playlist.schedule(timeline(20.0), RATE, level_lufs=LEVEL_LUFS, fade_out_s=4.0)
    plain = playlist.schedule(timeline(20.0), RATE, level_lufs=LEVEL_LUFS, fade_out_s=0.0)
    out, ref = render(bed), render(plain)
    assert gain_db_at(out, ref, 15.5, 0.2) == pytest.approx(0.0, abs=0.2)
    assert gain_db_at(out, ref, 18.0, 0.02) == pytest.approx(20 * math.log10(0.5), abs=0.5)
    assert np.abs(out[-int(0.01 * RATE) :]).max() < 1e-3


# --- seeking and streaming -------------------------------------------------------------------


def test_rendering_from_a_later_frame_gives_the_same_music(ducked) -> None:
    tl, bed, out, plain = ducked
    # Inside the resampled FLAC, the OGG, the MP3 read from its start, across a join, and odd block sizes.
    for start in (1, 54321, 3 * RATE + 17, bed.placements[2].start + 12345, bed.placements[3].start - 100, 23 * RATE):
        later = render(bed, start, min(bed.frames, start + 3 * RATE), block=1777)
        np.testing.assert_allclose(later, out[start : start + len(later)], atol=2e-5, err_msg=f"from frame {start}")


@pytest.mark.parametrize("rate_hz", [44100, 48000])
def test_a_seek_into_an_mp3_gives_the_samples_a_read_from_its_start_gives(tmp_path: Path, rate_hz: int) -> None:
    # A pure tone leans on the MP3 bit reservoir: right after a plain seek, ~5000 samples decode wrong.
    t = np.arange(6 * 44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "tone.mp3", np.stack([tone, tone], axis=1).astype(np.float32), 44100)
    track = music_mod.probe(tmp_path / "tone.mp3")
    whole = np.concatenate(list(music_mod.decoded_blocks(track, rate_hz)))
    # Read block by block, it is the file read in one go (python-soundfile's seek after each
    # read would corrupt ~4500 samples after every block boundary of this file).
    in_one_go = sf.read(str(tmp_path / "tone.mp3"), dtype="float32")[0]
    if rate_hz == 44100:
        np.testing.assert_array_equal(whole, in_one_go)
    for start in (11520, 50000, 100000, 150000):
        later = np.concatenate(list(music_mod.decoded_blocks(track, rate_hz, start)))
        assert len(later) == len(whole) - start
        np.testing.assert_allclose(later[:20000], whole[start : start + 20000], atol=2e-5, err_msg=f"from {start}")


def test_another_sample_rate_gets_its_own_analysis(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    bed = playlist.schedule(timeline(15.0), 48000, level_lufs=LEVEL_LUFS, fade_out_s=0)
    assert bed.placements[0].analysis.sample_rate_hz == 48000
    assert bed.placements[0].frames == pytest.approx(6.3 * 48000, abs=2)
    out = render(bed)
    meter = LoudnessMeter(48000, 2)
    meter.add(out[48000 : bed.placements[0].end - 48000])
    assert meter.integrated_lufs() == pytest.approx(LEVEL_LUFS, abs=0.5)


def test_memory_stays_flat_with_an_hour_of_music(tmp_path: Path, cache: Path) -> None:
    long = tmp_path / "hour.flac"
    rate = 8000  # an hour at a low rate: quick to write, and it still goes through decode + resample
    with sf.SoundFile(long, "w", rate, 1, format="FLAC") as f:
        for minute in range(60):
            f.write(music_signal(60.0, rate, 1, 220 + minute, minute))
    tracemalloc.start()
    try:
        playlist = open_music([long], cache_dir=cache)  # the analysis pass decodes the whole hour
        analysis_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert playlist.analysis(0, RATE).frames == 3600 * RATE
    assert analysis_peak < 60e6, analysis_peak
    bed = playlist.schedule(timeline(3600.0, [(s, s + 2.0) for s in range(5, 3600, 30)]), RATE, level_lufs=LEVEL_LUFS)
    tracemalloc.start()
    try:
        frames = 0
        for block in bed.blocks(0, bed.frames, RATE):
            frames += len(block)
            if frames == 60 * RATE:
                after_a_minute = tracemalloc.get_traced_memory()[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames == bed.frames
    # A whole-file load would be 115 MB (the decoded hour) or 1.3 GB (resampled stereo).
    assert peak < 40e6 and peak < after_a_minute + 5e6, (after_a_minute, peak)


# --- loudness by construction, and speech over music -------------------------------------------


def test_power_steps_agree_with_a_loudness_meter_render(music_dir: Path, cache: Path) -> None:
    playlist = open_music([music_dir], cache_dir=cache)
    tl = timeline(47.35, DUCK_CUES + [(30.0, 33.0), (40.0, 41.0)], DUCK_SOUNDS)
    bed = playlist.schedule(tl, RATE, level_lufs=LEVEL_LUFS, crossfade_s=1.5, fade_out_s=5.0)
    out = render(bed)
    meter = LoudnessMeter(RATE, 2)
    meter.add(out)
    steps = bed.power_steps()
    edges = bed.step_edges()
    assert len(steps) == len(edges) - 1 == math.ceil(47.35 / 0.1 - 1e-9)
    whole = len(steps) - 1  # the session ends mid-step; the meter never finishes that one
    estimate = integrated_from_steps(steps[:whole], np.diff(edges)[:whole])
    assert estimate == pytest.approx(meter.integrated_lufs(), abs=0.1)
    # Step by step: the real K-weighted power of each 100 ms of the render.
    sos = k_weighting_sos(RATE)
    real = np.zeros(len(out))
    for ch in range(2):
        real += sosfilt(sos, out[:, ch].astype(np.float64)) ** 2
    real_steps = np.add.reduceat(real, edges[:-1])
    loud = real_steps > real_steps.max() * 1e-3
    ratio_db = 10 * np.log10(steps[loud] / real_steps[loud])
    assert np.median(np.abs(ratio_db)) < 0.3 and np.percentile(np.abs(ratio_db), 95) < 1.5


def test_speech_at_the_target_sits_at_least_10_lu_above_the_ducked_music(ducked) -> None:
    tl, bed, out, plain = ducked
    speech = np.zeros(bed.frames, dtype=np.float64)
    for i, cue in enumerate(tl.speech):
        clip = speechlike(cue.end_s - cue.start_s, seed=i, rate_hz=RATE).samples
        a = int(round(cue.start_s * RATE))
        speech[a : a + len(clip)] += clip
    meter = LoudnessMeter(RATE, 2)
    meter.add(np.repeat(speech[:, None], 2, axis=1))
    speech *= 10 ** ((TARGET_LUFS - meter.integrated_lufs()) / 20)  # the speech at the session's target
    stereo_speech = np.repeat(speech[:, None], 2, axis=1)
    margins = speech_over_music_lu(stereo_speech, out, RATE, tl)
    assert len(margins) == len(tl.speech)
    assert min(margins) >= 10.0, margins
    # Unducked music 6 dB under the speech fails the same check: the helper can tell.
    loud = speech_over_music_lu(stereo_speech, plain * 10 ** (8 / 20), RATE, tl)
    assert max(loud) < 10.0, loud


# --- the routine field -----------------------------------------------------------------------


ROUTINE = """\
name: tiny
title: Tiny
description: A tiny routine.
music:
  path: {path}
  level_db: {level}
exercises:
  - name: Plank
    steps: [Hold it.]
    dose: {{hold_s: 10}}
"""


def test_a_routine_names_its_music_relative_to_its_file(tmp_path: Path, music_dir: Path, cache: Path) -> None:
    from coach.loader import load_file

    routine_file = tmp_path / "tiny.yaml"
    rel = os.path.relpath(music_dir, tmp_path)
    routine_file.write_text(ROUTINE.format(path=rel, level=-18))
    routine = load_file(routine_file)
    assert routine.music is not None and routine.music.level_db == -18
    path = resolve_music_path(routine.music.path, routine_file.parent)
    assert open_music([path], cache_dir=cache).paths[0].name == "01 intro.flac"
    assert routine.model_json_schema()["properties"]["music"]


def test_a_bad_music_field_is_reported_where_it_is(tmp_path: Path) -> None:
    from coach.errors import RoutineInvalid
    from coach.loader import load_file

    routine_file = tmp_path / "tiny.yaml"
    routine_file.write_text(ROUTINE.format(path="tunes", level=6).replace("  level_db", "  shuffle: yes\n  level_db"))
    with pytest.raises(RoutineInvalid) as err:
        load_file(routine_file)
    problems = err.value.problems
    assert f"{routine_file}:7:13: music.level_db: expected a number <= 0, got 6" in problems
    assert any(p.startswith(f"{routine_file}:6:3: music: unknown key 'shuffle'") for p in problems), problems


def test_opus_and_many_channel_files_play_as_stereo_at_the_music_level(tmp_path: Path, cache: Path) -> None:
    sf.write(tmp_path / "a quad.flac", music_signal(4.0, 32000, 4, 250, 7), 32000)
    sf.write(tmp_path / "b voice.opus", music_signal(4.0, 48000, 1, 180, 8), 48000, format="OGG", subtype="OPUS")
    playlist = open_music([tmp_path], cache_dir=cache)
    assert [t.channels for t in playlist.tracks] == [4, 1]
    bed = playlist.schedule(timeline(8.0), RATE, level_lufs=LEVEL_LUFS, fade_out_s=0)
    out = render(bed)
    assert out.shape == (8 * RATE, 2)
    for p in bed.placements[:2]:
        meter = LoudnessMeter(RATE, 2)
        meter.add(out[p.start + RATE // 2 : min(p.end, bed.frames) - RATE // 2])
        assert meter.integrated_lufs() == pytest.approx(LEVEL_LUFS, abs=0.5), p.track.path.name
    assert bed.now_playing(RATE).path.name == "a quad.flac"
    assert bed.now_playing(bed.placements[1].start + 10).path.name == "b voice.opus"
    assert bed.now_playing(bed.frames) is None
