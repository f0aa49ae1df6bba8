"""Streaming audio file writers, chosen by extension, and atomic output files.

Every writer takes float blocks shaped (frames, channels) in [-1, 1] and
converts them at the edge: 16-bit PCM for WAV and FLAC, Vorbis for OGG, LAME
for MP3. Chapters go where players look for them: ``cue `` + ``LIST/adtl``
chunks in WAV, ID3 CHAP/CTOC frames in MP3, CHAPTERnnn comments in FLAC/OGG.

``atomic_output`` makes a file appear under its name only when complete: the
writer fills a temporary file in the same folder, which is synced and renamed
over the target; on any error or Ctrl-C the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from coach.errors import OutputError, UsageError
from coach.fsutil import atomic_path, output_error, wrap_write_errors

FORMATS = ("wav", "flac", "ogg", "mp3")
MP3_BIT_RATE_KBPS = 128
MP3_SAMPLE_RATES_HZ = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MP3_ENCODER_GAIN_DB = -0.446
"""LAME (as lameenc builds it) comes out 0.446 dB quieter than its input, even on a plain sine;
the MP3 writer makes up for it so the file keeps the loudness it was normalized to (a test checks)."""
MAX_WAV_DATA_BYTES = 0xFFFFFFFF - 1024  # RIFF sizes are 32-bit; leave room for the other chunks


@dataclass(frozen=True)
class Marker:
    """A chapter in frames from the start of the file."""

    frame: int
    title: str


class Writer(Protocol):
    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


def format_for(path: str | Path) -> str:
    """The output format named by a file's extension (wav, flac, ogg, mp3)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "oga":
        suffix = "ogg"
    if suffix not in FORMATS:
        raise UsageError(
            f"{path}: cannot tell the audio format from the extension {Path(path).suffix or '(none)'!r}",
            hint="use .wav, .flac, .ogg or .mp3",
        )
    return suffix


def to_int16(block: np.ndarray) -> np.ndarray:
    """Float [-1, 1] to int16, rounding to nearest (no dither: silence stays exactly zero)."""
    return np.clip(np.round(np.asarray(block, dtype=np.float32) * 32767.0), -32768, 32767).astype("<i2")


# ---------------------------------------------------------------- WAV


def _wav_chapter_chunks(markers: Sequence[Marker]) -> bytes:
    """The ``cue `` chunk and the ``LIST``/``adtl`` chunk of ``labl`` labels, as audio editors read them."""
    if not markers:
        return b""
    points = b"".join(
        struct.pack("<II4sIII", i + 1, m.frame, b"data", 0, 0, m.frame) for i, m in enumerate(markers)
    )
    cue = b"cue " + struct.pack("<II", 4 + len(points), len(markers)) + points
    labels = b""
    for i, m in enumerate(markers):
        text = m.title.encode("utf-8") + b"\x00"
        body = struct.pack("<I", i + 1) + text
        labels += b"labl" + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    adtl = b"LIST" + struct.pack("<I", 4 + len(labels)) + b"adtl" + labels
    return cue + adtl


class WavWriter:
    """16-bit PCM WAV, written straight through: sizes are known from ``total_frames`` up front.

    Knowing the length in advance lets the same writer stream to a pipe (stdout),
    where nothing can be patched afterwards. On a seekable file the sizes are
    checked and patched at close in case fewer frames arrived.
    """

    def __init__(
        self, file: BinaryIO, sample_rate_hz: int, channels: int, total_frames: int, markers: Sequence[Marker] = ()
    ) -> None:
        self.file = file
        self.channels = channels
        self.frames_written = 0
        self._total_frames = total_frames
        self._tail = _wav_chapter_chunks(markers)
        data_bytes = total_frames * channels * 2
        if data_bytes > MAX_WAV_DATA_BYTES:
            raise OutputError(
                f"a WAV file holds at most 4 GiB; this session needs {data_bytes / 2**30:.1f} GiB",
                hint="write .flac, .ogg or .mp3, or lower --sample-rate / use --mono",
            )
        fmt = struct.pack("<HHIIHH", 1, channels, sample_rate_hz, sample_rate_hz * channels * 2, channels * 2, 16)
        self._header_for = lambda data_len: (
            b"RIFF"
            + struct.pack("<I", 4 + (8 + len(fmt)) + (8 + data_len + data_len % 2) + len(self._tail))
            + b"WAVE"
            + b"fmt "
            + struct.pack("<I", len(fmt))
            + fmt
            + b"data"
            + struct.pack("<I", data_len)
        )
        self.file.write(self._header_for(data_bytes))

    def write(self, block: np.ndarray) -> None:
        self.file.write(to_int16(block).tobytes())
        self.frames_written += len(block)

    def close(self) -> None:
        data_len = self.frames_written * self.channels * 2  # always even: no pad byte after data
        self.file.write(self._tail)
        if self.frames_written != self._total_frames:
            try:
                self.file.seek(0)
            except (OSError, ValueError):
                raise OutputError(
                    f"expected {self._total_frames} frames, got {self.frames_written}, and the output cannot seek"
                ) from None
            self.file.write(self._header_for(data_len))
            self.file.seek(0, os.SEEK_END)
        self.file.flush()


# ---------------------------------------------------------------- FLAC / OGG


class SoundFileWriter:
    """FLAC (16-bit) or OGG Vorbis through libsndfile, written block by block."""

    def __init__(self, path: Path, fmt: str, sample_rate_hz: int, channels: int, display: Path | None = None) -> None:
        """Write to ``path``; errors name ``display`` (the target, when ``path`` is its temporary file)."""
        import soundfile

        self.display = display or path
        subtype = "PCM_16" if fmt == "flac" else "VORBIS"
        try:
            self._sf = soundfile.SoundFile(
                str(path), "w", samplerate=sample_rate_hz, channels=channels, format=fmt.upper(), subtype=subtype
            )
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise _sndfile_error(self.display, exc) from None
        self.path = path
        self.frames_written = 0

    def write(self, block: np.ndarray) -> None:
        import soundfile

        try:
            self._sf.write(np.asarray(block, dtype=np.float32))
        except (soundfile.LibsndfileError, RuntimeError, AssertionError) as exc:
            # libsndfile reports a short write (full disk) only as a frame count soundfile asserts on.
            raise _sndfile_error(self.display, exc, self.path) from None
        self.frames_written += len(block)

    def close(self) -> None:
        import soundfile

        try:
            self._sf.close()
            # The encoder buffers; a full disk may only show as a short file. Read back the length.
            frames = soundfile.info(str(self.path)).frames
        except (soundfile.LibsndfileError, RuntimeError, AssertionError) as exc:
            raise _sndfile_error(self.display, exc, self.path) from None
        if frames != self.frames_written:
            raise _sndfile_error(self.display, RuntimeError(f"{frames} of {self.frames_written} frames were written"),
                                 self.path)

    def abort(self) -> None:
        """Close after a failure, without checks (the file is about to be deleted)."""
        with contextlib.suppress(Exception):
            self._sf.close()


def _sndfile_error(path: Path, exc: BaseException, written: Path | None = None) -> OutputError:
    """libsndfile says only "System error." when a write fails: find out why from the file system."""
    with contextlib.suppress(OSError):
        if os.statvfs(path.parent).f_bavail == 0:
            return output_error(path, OSError(errno.ENOSPC, "No space left on device"))
    with contextlib.suppress(OSError, ValueError, AttributeError):
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if written is not None and limit != resource.RLIM_INFINITY and os.path.getsize(written) >= limit:
            return output_error(path, OSError(errno.EFBIG, "File too large"))
    return OutputError(f"{path}: cannot write: {exc or type(exc).__name__}")


def tag_vorbis_chapters(path: Path, fmt: str, markers: Sequence[Marker], sample_rate_hz: int, title: str) -> None:
    """Add the title and CHAPTERnnn / CHAPTERnnnNAME comments (the Vorbis chapter convention)."""
    from mutagen.flac import FLAC
    from mutagen.oggvorbis import OggVorbis

    audio = FLAC(str(path)) if fmt == "flac" else OggVorbis(str(path))  # the file we just wrote
    if title:
        audio["TITLE"] = title
    for i, m in enumerate(markers, 1):
        audio[f"CHAPTER{i:03d}"] = _timestamp(m.frame / sample_rate_hz)
        audio[f"CHAPTER{i:03d}NAME"] = m.title
    _save_tags(audio, path)


def _save_tags(tags, path: Path, **kwargs) -> None:
    from mutagen import MutagenError

    try:
        tags.save(str(path), **kwargs)
    except MutagenError as exc:
        cause = exc.__cause__ or exc.__context__
        raise output_error(path, cause if isinstance(cause, OSError) else exc) from None


def _timestamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


# ---------------------------------------------------------------- MP3


class Mp3Writer:
    """MP3 (LAME, constant bit rate) encoded block by block."""

    def __init__(self, file: BinaryIO, sample_rate_hz: int, channels: int) -> None:
        import lameenc

        check_mp3_rate(sample_rate_hz)
        self.file = file
        self._encoder = lameenc.Encoder()
        self._encoder.set_bit_rate(MP3_BIT_RATE_KBPS if channels > 1 else MP3_BIT_RATE_KBPS // 2)
        self._encoder.set_in_sample_rate(sample_rate_hz)
        self._encoder.set_channels(channels)
        self._encoder.set_quality(2)  # 2 = high quality, slower search; still far faster than real time

    def write(self, block: np.ndarray) -> None:
        scaled = np.asarray(block, dtype=np.float32) * np.float32(10 ** (-MP3_ENCODER_GAIN_DB / 20))
        self.file.write(bytes(self._encoder.encode(to_int16(scaled).tobytes())))

    def close(self) -> None:
        self.file.write(bytes(self._encoder.flush()))
        self.file.flush()


def check_mp3_rate(sample_rate_hz: int) -> None:
    """Refuse a sample rate MP3 does not have (before any rendering work is done)."""
    if sample_rate_hz not in MP3_SAMPLE_RATES_HZ:
        raise UsageError(
            f"MP3 cannot use a sample rate of {sample_rate_hz} Hz",
            hint="use one of " + ", ".join(map(str, MP3_SAMPLE_RATES_HZ)),
        )


def _frames_in_order_id3():
    """An empty ID3 tag that writes its frames in the order they were added.

    mutagen sorts frames by size, which scrambles the CHAP frames; the CTOC is
    ordered, but players that read chapters in file order (ffprobe does) would show
    "Finish" first. mutagen has no option for this, so ``_write`` is replaced with
    its own loop minus the sort (``tests/test_audio_writers.py`` reads the order back).
    """
    from mutagen.id3 import ID3
    from mutagen.id3._tags import save_frame

    class InOrder(ID3):
        def _write(self, config):
            return bytearray().join(save_frame(frame, config=config) for frame in self.values())

    return InOrder()


def tag_mp3_chapters(path: Path, markers: Sequence[Marker], sample_rate_hz: int, total_frames: int, title: str) -> None:
    """Add ID3v2.4 CHAP frames (one per chapter) and a top-level ordered CTOC listing them."""
    from mutagen.id3 import CHAP, CTOC, TIT2, CTOCFlags

    tags = _frames_in_order_id3()
    if title:
        tags.add(TIT2(encoding=3, text=title))
    ends = [m.frame for m in markers[1:]] + [total_frames]
    ids = []
    for i, (m, end) in enumerate(zip(markers, ends)):
        element_id = f"chp{i}"
        ids.append(element_id)
        tags.add(
            CHAP(
                element_id=element_id,
                start_time=int(round(m.frame * 1000 / sample_rate_hz)),
                end_time=int(round(end * 1000 / sample_rate_hz)),
                sub_frames=[TIT2(encoding=3, text=m.title)],
            )
        )
    if ids:
        tags.add(
            CTOC(
                element_id="toc",
                flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                child_element_ids=ids,
                sub_frames=[TIT2(encoding=3, text=title or "Chapters")],
            )
        )
    _save_tags(tags, path, v2_version=4)


# ---------------------------------------------------------------- one call


def write_audio(
    blocks: Iterator[np.ndarray],
    output: str | Path | BinaryIO,
    *,
    sample_rate_hz: int,
    channels: int,
    total_frames: int,
    markers: Sequence[Marker] = (),
    title: str = "",
    force: bool = False,
) -> None:
    """Write ``blocks`` to ``output`` in the format its extension names, with chapters, atomically.

    ``output`` may also be a binary stream (stdout): it then gets a WAV without
    chapters' atomicity (a pipe cannot be renamed), written straight through.
    """
    if not isinstance(output, (str, Path)):
        writer = WavWriter(output, sample_rate_hz, channels, total_frames, markers)
        for block in blocks:
            writer.write(block)
        writer.close()
        return
    target = Path(output)
    fmt = format_for(target)
    if fmt == "mp3":
        check_mp3_rate(sample_rate_hz)
    with atomic_path(target, force=force) as temp, wrap_write_errors(target):
        if fmt in ("wav", "mp3"):
            with open(temp, "wb") as f:
                writer: Writer
                if fmt == "wav":
                    writer = WavWriter(f, sample_rate_hz, channels, total_frames, markers)
                else:
                    writer = Mp3Writer(f, sample_rate_hz, channels)
                for block in blocks:
                    writer.write(block)
                writer.close()
            if fmt == "mp3":
                tag_mp3_chapters(temp, markers, sample_rate_hz, total_frames, title)
        else:
            writer = SoundFileWriter(temp, fmt, sample_rate_hz, channels, display=target)
            try:
                for block in blocks:
                    writer.write(block)
            except BaseException:
                writer.abort()
                raise
            writer.close()
            tag_vorbis_chapters(temp, fmt, markers, sample_rate_hz, title)
