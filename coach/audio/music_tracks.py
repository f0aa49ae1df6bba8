"""One music track: open it, decode it as a stream, measure it once, remember the measurement.

``decoded_blocks`` turns any file python-soundfile reads into stereo float32 blocks at
the session's rate (``soxr.ResampleStream``), from any output frame; ``analyse`` makes
one pass over it for its real length, BS.1770 loudness and K-weighted power per 100 ms;
``AnalysisCache`` keeps those results on disk. ``coach.audio.music`` builds playlists
from these.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coach.audio.loudness import ABSOLUTE_GATE_LUFS, RELATIVE_GATE_LU, STEP_S, k_weighting_sos
from coach.errors import OutputError
from coach.fsutil import atomic_output
from coach.interrupts import held

RESAMPLE_QUALITY = "HQ"
READ_BLOCK_FRAMES = 65536
TRUNCATION_TOLERANCE_FRAMES = 4096
"""A non-MP3 file decoding this many frames fewer than its header promises is truncated."""
CACHE_VERSION = 1
MP3_SEEK_PREROLL_FRAMES = 16384


@dataclass(frozen=True)
class TrackAnalysis:
    """What one pass over a track measured, at one output sample rate."""

    sample_rate_hz: int
    frames: int
    """Length in frames at ``sample_rate_hz`` (after resampling)."""
    lufs: float
    """Integrated loudness (BS.1770-4, gated) of the stereo track at ``sample_rate_hz``; -inf if silent."""
    step_powers: np.ndarray = field(repr=False)
    """Per 100 ms step from the track's start: summed squared K-weighted samples, both channels."""

    @property
    def step_edges(self) -> np.ndarray:
        """Frame where each step starts (and, last, where the final step ends), from the track's start."""
        return step_edges(len(self.step_powers), self.sample_rate_hz, self.frames)


@dataclass(frozen=True)
class Track:
    """One playable audio file, as the first look at it found it."""

    path: Path
    native_rate_hz: int
    channels: int
    format: str
    """libsndfile's major format name (``MP3``, ``FLAC``, ``OGG``...)."""

    @property
    def seek_preroll_frames(self) -> int:
        """Frames to decode and drop before a seek point so the samples after it are exact.

        After an MP3 seek the first few frames decode wrong (up to ~5000 samples measured
        on a tone): they need the bit reservoir of the frames before them.
        """
        return MP3_SEEK_PREROLL_FRAMES if self.format == "MP3" else 0


def step_edges(steps: int, sample_rate_hz: int, frames: int) -> np.ndarray:
    """Step boundaries as ``LoudnessMeter`` places them; the last one is cut at ``frames``."""
    # Same arithmetic and rounding (half to even) as LoudnessMeter's int(round(i * STEP_S * rate)).
    edges = np.round(np.arange(steps + 1) * STEP_S * sample_rate_hz).astype(np.int64)
    if steps:
        edges[-1] = min(edges[-1], frames)
    return edges


def integrated_from_steps(step_powers: np.ndarray, step_frames: np.ndarray) -> float:
    """Gated integrated loudness from whole 100 ms steps' power sums, gated as ``LoudnessMeter`` gates.

    A 400 ms block is every run of four consecutive steps; pass whole steps only
    (LoudnessMeter never finishes a last partial one either).
    """
    p = np.asarray(step_powers, dtype=np.float64)
    f = np.asarray(step_frames, dtype=np.float64)
    if len(p) < 4:
        return -math.inf
    block_power = (p[:-3] + p[1:-2] + p[2:-1] + p[3:]) / (f[:-3] + f[1:-2] + f[2:-1] + f[3:])
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(block_power)
    above = block_power[loudness > ABSOLUTE_GATE_LUFS]
    if len(above) == 0:
        return -math.inf
    gate = -0.691 + 10 * math.log10(float(above.mean())) + RELATIVE_GATE_LU
    gated = block_power[(loudness > ABSOLUTE_GATE_LUFS) & (loudness > gate)]
    return -0.691 + 10 * math.log10(float(gated.mean()))


def to_stereo(block: np.ndarray) -> np.ndarray:
    """(frames, channels) float -> (frames, 2) float32: mono to both sides, extra channels at -3 dB into both."""
    block = np.asarray(block, dtype=np.float32)
    if block.shape[1] == 2:
        return block
    if block.shape[1] == 1:
        return np.repeat(block, 2, axis=1)
    out = block[:, :2].copy()
    out += (block[:, 2:].sum(axis=1, keepdims=True) * np.float32(math.sqrt(0.5))).astype(np.float32)
    return out


def _open_for_reading(path: Path):
    """A SoundFile that reads sequentially, to the real end of the file.

    python-soundfile (0.14) seeks back to "where it was + frames read" after every
    read, and caps each read at the header's frame count. On MP3s that seek throws
    away the decoder's bit reservoir: ~4500 wrong samples after every block boundary
    of a tonal track (measured: errors of 0.5 on a 0.5 sine), and the cap cuts
    header-less MP3s short. Declaring the file not seekable turns both off; explicit
    ``seek`` calls still work.
    """
    return _sequential_class()(str(path))


@functools.cache
def _sequential_class() -> type:
    import soundfile as sf

    class SequentialSoundFile(sf.SoundFile):
        def seekable(self) -> bool:
            return False

    return SequentialSoundFile


class TrackDecodeError(Exception):
    """A track cannot be decoded (any further); the message says why, for a warning."""


def decoded_blocks(track: Track, sample_rate_hz: int, start_frame: int = 0) -> Iterator[np.ndarray]:
    """The track as stereo float32 blocks at ``sample_rate_hz``, from output frame ``start_frame``.

    Streams: one file block and the resampler's state in memory. Starting later
    seeks (MP3s a little earlier, decoding and dropping the frames in between) and,
    when resampling, starts the
    resampler a little earlier on a frame where the two rates line up, so what comes
    out matches a pass from the start to within ~1e-6 (soxr's state is rebuilt).
    Raises TrackDecodeError when the file cannot be read.
    """
    import soundfile as sf

    native = track.native_rate_hz
    if native == sample_rate_hz:
        in_start, discard = start_frame, 0
    else:
        g = math.gcd(native, sample_rate_hz)
        unit_in, unit_out = native // g, sample_rate_hz // g
        k = max(0, start_frame - 2048) // unit_out
        in_start, discard = k * unit_in, start_frame - k * unit_out
    try:
        handle = _open_for_reading(track.path)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise TrackDecodeError(_why(exc)) from None
    with handle:
        try:
            left = in_start
            if in_start:
                seek_to = max(0, in_start - track.seek_preroll_frames)
                try:
                    handle.seek(seek_to)
                    left = in_start - seek_to
                except (sf.LibsndfileError, RuntimeError):
                    handle.seek(0)  # a file that cannot seek there is read from the start
            while left > 0:
                got = len(handle.read(min(left, READ_BLOCK_FRAMES), dtype="float32", always_2d=True))
                if got == 0:
                    return
                left -= got
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise TrackDecodeError(_why(exc)) from None
        stream = None
        if native != sample_rate_hz:
            with held():  # a Ctrl-C inside soxr's (nanobind) import would abort the process
                import soxr

            stream = soxr.ResampleStream(native, sample_rate_hz, 2, dtype="float32", quality=RESAMPLE_QUALITY)
        while True:
            try:
                raw = handle.read(READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise TrackDecodeError(_why(exc)) from None
            last = len(raw) < READ_BLOCK_FRAMES
            block = to_stereo(raw) if len(raw) else np.zeros((0, 2), dtype=np.float32)
            if stream is not None:
                block = stream.resample_chunk(block, last=last)
            if discard:
                cut = min(discard, len(block))
                block, discard = block[cut:], discard - cut
            if len(block):
                yield np.ascontiguousarray(block, dtype=np.float32)
            if last:
                return


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libsndfile names the path in its own words; ours already leads the line.
    text = re.sub(r"^Error opening '.*?': ", "", text)
    return text.rstrip(".")


def analyse(track: Track, sample_rate_hz: int) -> TrackAnalysis:
    """Decode the whole track once (streaming) and measure its length, loudness and step powers."""
    from coach.audio.iir import sosfilt

    sos = k_weighting_sos(sample_rate_hz)
    zi = np.zeros((2, sos.shape[0], 2))
    steps: list[float] = []
    step_power = 0.0
    frames = 0
    next_edge = int(round(STEP_S * sample_rate_hz))
    for block in decoded_blocks(track, sample_rate_hz):
        power = np.zeros(len(block))
        for ch in range(2):
            weighted, zi[ch] = sosfilt(sos, block[:, ch].astype(np.float64), zi=zi[ch])
            power += weighted**2
        start, pos = frames, 0
        frames += len(block)
        while pos < len(power):
            take = min(len(power), next_edge - start)
            step_power += float(power[pos:take].sum())
            pos = take
            if start + take == next_edge:
                steps.append(step_power)
                step_power = 0.0
                next_edge = int(round((len(steps) + 1) * STEP_S * sample_rate_hz))
    whole = len(steps)
    if frames > int(round(whole * STEP_S * sample_rate_hz)):
        steps.append(step_power)
    powers = np.array(steps, dtype=np.float64)
    lufs = integrated_from_steps(powers[:whole], np.diff(step_edges(whole, sample_rate_hz, frames)))
    return TrackAnalysis(sample_rate_hz=sample_rate_hz, frames=frames, lufs=lufs, step_powers=powers)


def probe(path: Path) -> Track:
    """A first look at an audio file: can libsndfile open it, and what is it. Raises TrackDecodeError."""
    import soundfile as sf

    try:
        if path.stat().st_size == 0:
            raise TrackDecodeError("the file is empty")
        with open(path, "rb") as handle:
            head = handle.read(4)
        if not _looks_like_audio(head):
            # Checked before libsndfile: it hands anything it does not recognise to its
            # MP3 decoder, which prints "Illegal Audio-MPEG-Header" notes on stderr.
            raise TrackDecodeError("not an audio file python-soundfile can decode")
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise TrackDecodeError(f"not an audio file python-soundfile can decode ({_why(exc)})") from None
    except OSError as exc:
        raise TrackDecodeError(exc.strerror or str(exc)) from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise TrackDecodeError("not an audio file python-soundfile can decode")
    return Track(path=path, native_rate_hz=int(info.samplerate), channels=int(info.channels), format=str(info.format))


_MAGIC = (b"RIFF", b"RF64", b"BW64", b"riff", b"fLaC", b"OggS", b"ID3", b"FORM", b".snd", b"caff")


def _looks_like_audio(head: bytes) -> bool:
    """True if a file's first bytes start a container libsndfile reads, or an MPEG audio frame."""
    if head.startswith(_MAGIC):
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def _header_frames(path: Path) -> int | None:
    import soundfile as sf

    try:
        return int(sf.info(str(path)).frames)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None


def default_cache_dir() -> Path:
    """Where track analyses are cached: ``$COACH_CACHE_DIR/music`` or the user cache folder."""
    override = os.environ.get("COACH_CACHE_DIR")
    if override:
        return Path(override) / "music"
    import platformdirs

    return Path(platformdirs.user_cache_dir("coach")) / "music"


class AnalysisCache:
    """Track analyses on disk, one small JSON file per (path, size, mtime, rate)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def _path(self, track: Track, sample_rate_hz: int) -> Path | None:
        try:
            st = track.path.stat()
        except OSError:
            return None
        key = json.dumps(
            [CACHE_VERSION, str(track.path.resolve()), st.st_size, st.st_mtime_ns, sample_rate_hz, RESAMPLE_QUALITY]
        )
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def get(self, track: Track, sample_rate_hz: int) -> TrackAnalysis | None:
        path = self._path(track, sample_rate_hz)
        if path is None:
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            powers = np.frombuffer(base64.b64decode(entry["steps"]), dtype="<f8").copy()
            lufs = -math.inf if entry["lufs"] is None else float(entry["lufs"])
            if entry["rate"] != sample_rate_hz or len(powers) != entry["n"]:
                return None
            return TrackAnalysis(sample_rate_hz, int(entry["frames"]), lufs, powers)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: analyse again

    def put(self, track: Track, analysis: TrackAnalysis) -> None:
        path = self._path(track, analysis.sample_rate_hz)
        if path is None:
            return
        entry = {
            "rate": analysis.sample_rate_hz,
            "frames": analysis.frames,
            "lufs": None if math.isinf(analysis.lufs) else analysis.lufs,
            "n": len(analysis.step_powers),
            "steps": base64.b64encode(np.asarray(analysis.step_powers, dtype="<f8").tobytes()).decode("ascii"),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path, force=True, binary=False) as handle:
                handle.write(json.dumps(entry))
        except (OSError, OutputError):
            pass  # a cache that cannot be written only costs the analysis next time


def problem(track: Track, analysis: TrackAnalysis) -> str | None:
    if analysis.frames == 0:
        return "it holds no audio"
    if track.format != "MP3":
        promised = _header_frames(track.path)
        got_native = analysis.frames * track.native_rate_hz / analysis.sample_rate_hz
        if promised is not None and got_native < promised - TRUNCATION_TOLERANCE_FRAMES:
            return f"truncated (decodes {got_native / track.native_rate_hz:.1f} s of {promised / track.native_rate_hz:.1f} s)"
    return None
