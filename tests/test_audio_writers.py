"""Writers: WAV/FLAC/OGG/MP3 files that read back, chapters an independent reader finds, atomic output."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess

import numpy as np
import pytest
import soundfile

from coach.audio.writers import Marker, WavWriter, format_for, write_audio
from coach.fsutil import atomic_path as atomic_output
from coach.errors import OutputError, UsageError

RATE = 44100


def signal(seconds: float = 3.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    x[RATE // 2 : RATE] = 0.0  # a stretch of digital silence
    return np.stack([x] * channels, axis=1).astype(np.float32)


def blocks_of(x: np.ndarray, n: int = 10000):
    for i in range(0, len(x), n):
        yield x[i : i + n]


MARKERS = [Marker(0, "Intro"), Marker(44100, "Cat–cow ✓"), Marker(100000, "Bird-dog")]


def parse_riff(data: bytes) -> dict:
    """A minimal independent RIFF reader: chunk ids and bodies, cue points, labl labels."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8, "RIFF size must cover the whole file"
    chunks, pos = {}, 12
    while pos < len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks[cid] = data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size % 2)
    assert pos == len(data), "chunks must tile the file exactly"
    out = {"chunks": chunks, "cues": {}, "labels": {}}
    if b"cue " in chunks:
        body = chunks[b"cue "]
        (count,) = struct.unpack("<I", body[:4])
        for i in range(count):
            ident, position, fcc, _, _, offset = struct.unpack("<II4sIII", body[4 + 24 * i : 28 + 24 * i])
            assert fcc == b"data" and position == offset
            out["cues"][ident] = offset
    if b"LIST" in chunks and chunks[b"LIST"][:4] == b"adtl":
        body, p = chunks[b"LIST"], 4
        while p < len(body):
            sid, size = body[p : p + 4], struct.unpack("<I", body[p + 4 : p + 8])[0]
            if sid == b"labl":
                ident = struct.unpack("<I", body[p + 8 : p + 12])[0]
                out["labels"][ident] = body[p + 12 : p + 8 + size].rstrip(b"\x00").decode("utf-8")
            p += 8 + size + (size % 2)
    return out


def test_wav_has_16_bit_pcm_and_a_labelled_cue_at_every_chapter(tmp_path):
    x = signal()
    path = tmp_path / "s.wav"
    write_audio(blocks_of(x), path, sample_rate_hz=RATE, channels=2, total_frames=len(x), markers=MARKERS, title="T")
    riff = parse_riff(path.read_bytes())
    channels, rate, bits = struct.unpack("<HI", riff["chunks"][b"fmt "][2:8]) + struct.unpack("<H", riff["chunks"][b"fmt "][14:16])
    assert (channels, rate, bits) == (2, RATE, 16)
    assert len(riff["chunks"][b"data"]) == len(x) * 4
    assert riff["cues"] == {1: 0, 2: 44100, 3: 100000}
    assert riff["labels"] == {1: "Intro", 2: "Cat–cow ✓", 3: "Bird-dog"}
    back, rate = soundfile.read(path, dtype="float32")
    assert rate == RATE
    np.testing.assert_allclose(back, x, atol=1 / 32767)
    assert not back[RATE // 2 : RATE].any(), "silence stays digital silence"


def test_other_tools_read_the_wav_chapters_too(tmp_path):
    x = signal(channels=1)
    path = tmp_path / "m.wav"
    write_audio(blocks_of(x), path, sample_rate_hz=RATE, channels=1, total_frames=len(x), markers=MARKERS)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "csv", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr  # ffprobe comes with scripts/setup (scripts/tools.txt)
    assert "Bird-dog" in out.stdout and "Intro" in out.stdout


def test_mp3_chapters_are_stored_in_time_order_for_readers_that_go_by_file_order(tmp_path):
    # Titles of very different lengths: mutagen on its own orders frames by size.
    titles = ["Introduction", "Cat-cow", "Bird-dog, both sides, slowly", "Rest", "Good morning", "Finish"]
    markers = [Marker(i * RATE // 2, title) for i, title in enumerate(titles)]
    x = signal()
    path = tmp_path / "s.mp3"
    write_audio(blocks_of(x), path, sample_rate_hz=RATE, channels=2, total_frames=len(x), markers=markers,
                title="Back")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    chapters = json.loads(out.stdout)["chapters"]
    assert [c["tags"]["title"] for c in chapters] == titles
    assert [float(c["start_time"]) for c in chapters] == [i * 0.5 for i in range(len(titles))]
    # The raw tag, frame after frame: CHAP frames come in time order, then the CTOC.
    tag = path.read_bytes()[: 10 + int.from_bytes(bytes(b & 0x7F for b in path.read_bytes()[6:10]), "big")]
    ids = [tag[i : i + 4] for i in range(10, len(tag) - 4) if tag[i : i + 4] in (b"CHAP", b"CTOC")]
    assert ids == [b"CHAP"] * len(titles) + [b"CTOC"]
    starts = [int.from_bytes(tag[m.end() + 6 + len(f"chp{k}") + 1 :][:4], "big")
              for k, m in enumerate(re.finditer(rb"CHAP", tag))]
    assert starts == [i * 500 for i in range(len(titles))]


def test_a_wav_to_a_pipe_gets_correct_sizes_up_front():
    x = signal(1.0)
    sink = io.BytesIO()

    class Pipe(io.RawIOBase):  # not seekable, like stdout
        def writable(self):
            return True

        def write(self, b):
            return sink.write(b)

    write_audio(blocks_of(x), Pipe(), sample_rate_hz=RATE, channels=2, total_frames=len(x), markers=MARKERS)
    riff = parse_riff(sink.getvalue())
    assert len(riff["chunks"][b"data"]) == len(x) * 4 and riff["labels"][3] == "Bird-dog"


def test_a_wav_that_got_fewer_frames_than_announced_is_patched(tmp_path):
    x = signal(1.0)
    with open(tmp_path / "short.wav", "wb") as f:
        w = WavWriter(f, RATE, 2, len(x) + 500, MARKERS[:1])
        w.write(x)
        w.close()
    riff = parse_riff((tmp_path / "short.wav").read_bytes())
    assert len(riff["chunks"][b"data"]) == len(x) * 4


def test_mp3_carries_id3_chapters_and_a_table_of_contents(tmp_path):
    from mutagen.id3 import ID3
    from mutagen.mp3 import MP3

    x = signal()
    path = tmp_path / "s.mp3"
    write_audio(blocks_of(x), path, sample_rate_hz=RATE, channels=2, total_frames=len(x), markers=MARKERS, title="Back")
    tags = ID3(path)
    chaps = sorted(tags.getall("CHAP"), key=lambda c: c.start_time)
    assert [(c.start_time, c.end_time, c.sub_frames["TIT2"].text[0]) for c in chaps] == [
        (0, 1000, "Intro"), (1000, 2268, "Cat–cow ✓"), (2268, 3000, "Bird-dog")]
    (toc,) = tags.getall("CTOC")
    assert toc.child_element_ids == [c.element_id for c in chaps]
    assert tags["TIT2"].text == ["Back"]
    info = MP3(path).info
    assert info.sample_rate == RATE and info.channels == 2 and abs(info.length - 3.0) < 0.1


def test_mp3_keeps_the_level_it_was_given(tmp_path):
    t = np.arange(3 * RATE) / RATE
    x = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t)] * 2, axis=1).astype(np.float32)
    write_audio(blocks_of(x), tmp_path / "s.mp3", sample_rate_hz=RATE, channels=2, total_frames=len(x))
    back, _ = soundfile.read(tmp_path / "s.mp3", dtype="float64")  # libsndfile decodes MP3 itself
    rms_db = 20 * np.log10(np.sqrt(np.mean(back[RATE // 2 : -RATE // 2, 0] ** 2)) / np.sqrt(np.mean(x[:, 0] ** 2.0)))
    assert abs(rms_db) < 0.05


def test_flac_and_ogg_read_back_with_soundfile_and_carry_chapter_comments(tmp_path):
    from mutagen.flac import FLAC
    from mutagen.oggvorbis import OggVorbis

    x = signal()
    for ext, opener in (("flac", FLAC), ("ogg", OggVorbis)):
        path = tmp_path / f"s.{ext}"
        write_audio(blocks_of(x), path, sample_rate_hz=RATE, channels=2, total_frames=len(x), markers=MARKERS, title="T")
        back, rate = soundfile.read(path, dtype="float32")
        assert rate == RATE and back.shape == x.shape
        if ext == "flac":
            np.testing.assert_allclose(back, x, atol=1 / 32767)
        else:
            assert np.corrcoef(back[:, 0], x[:, 0])[0, 1] > 0.99
        tags = opener(path)
        assert tags["CHAPTER002"] == ["00:00:01.000"] and tags["CHAPTER003NAME"] == ["Bird-dog"]


def test_the_format_comes_from_the_extension():
    assert [format_for(p) for p in ("a.WAV", "b.flac", "c.ogg", "d.mp3")] == ["wav", "flac", "ogg", "mp3"]
    with pytest.raises(UsageError, match="extension"):
        format_for("x.aiff")


def test_mp3_refuses_a_sample_rate_it_does_not_have(tmp_path):
    with pytest.raises(UsageError, match="MP3"):
        write_audio(iter(()), tmp_path / "x.mp3", sample_rate_hz=17000, channels=1, total_frames=0)
    assert list(tmp_path.iterdir()) == []


def test_an_error_in_the_middle_leaves_neither_target_nor_temporary_file(tmp_path):
    def failing():
        yield signal(0.5)
        raise RuntimeError("boom")

    for ext in ("wav", "flac", "mp3"):
        with pytest.raises(RuntimeError, match="boom"):
            write_audio(failing(), tmp_path / f"s.{ext}", sample_rate_hz=RATE, channels=2, total_frames=RATE)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_the_middle_leaves_neither_target_nor_temporary_file(tmp_path):
    def interrupted():
        yield signal(0.5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_audio(interrupted(), tmp_path / "s.ogg", sample_rate_hz=RATE, channels=2, total_frames=RATE)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_kept_unless_forced(tmp_path):
    path = tmp_path / "s.wav"
    path.write_bytes(b"precious")
    x = signal(0.2)
    with pytest.raises(OutputError, match="exists"):
        write_audio(blocks_of(x), path, sample_rate_hz=RATE, channels=2, total_frames=len(x))
    assert path.read_bytes() == b"precious"
    write_audio(blocks_of(x), path, sample_rate_hz=RATE, channels=2, total_frames=len(x), force=True)
    assert soundfile.info(path).frames == len(x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.wav"]


def test_output_files_get_the_usual_permissions_not_the_temporary_files_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        x = signal(0.1)
        write_audio(blocks_of(x), tmp_path / "s.wav", sample_rate_hz=RATE, channels=2, total_frames=len(x))
    finally:
        os.umask(old)
    assert (tmp_path / "s.wav").stat().st_mode & 0o777 == 0o644


def test_a_missing_folder_is_an_output_error_naming_it(tmp_path):
    with pytest.raises(OutputError, match="nowhere"):
        with atomic_output(tmp_path / "nowhere" / "s.wav"):
            pass


@pytest.fixture
def tiny_mount(tmp_path):
    """A 256 KiB tmpfs (needs root, as on the CI machine); yields its path."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_a_full_disk_is_an_output_error_naming_the_file_and_leaves_nothing(tiny_mount, ext):
    x = signal(30.0)
    path = tiny_mount / f"big.{ext}"
    noise = (np.random.default_rng(0).standard_normal(x.shape) * 0.3).astype(np.float32)  # does not compress
    with pytest.raises(OutputError, match=r"/big\.%s: cannot write: the disk is full" % ext):
        write_audio(blocks_of(noise), path, sample_rate_hz=RATE, channels=2, total_frames=len(x))
    assert list(tiny_mount.iterdir()) == []


def test_a_read_only_folder_is_an_output_error(tiny_mount):
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_mount)], check=True)
    with pytest.raises(OutputError, match="read-only"):
        write_audio(blocks_of(signal(0.1)), tiny_mount / "s.wav", sample_rate_hz=RATE, channels=2, total_frames=4410)
