"""Music to play under the coach's voice: find the tracks, analyse each once, remember it.

    sources (folder, .m3u/.m3u8, files) --open_music--> Playlist --schedule(timeline)--> MusicBed
                                                                   (coach.audio.music_bed)

``open_music(sources, shuffle=, seed=, warn=, cache_dir=, sample_rate_hz=)`` returns a
``Playlist``. A source is a folder (its audio files, by extension, in natural name
order: "2 b" before "10 a"; hidden files and subfolders are not read), an
``.m3u``/``.m3u8`` playlist (one path per line, relative to the playlist's folder;
``#`` lines are comments; URLs are skipped with a warning) or an audio file.
Formats are whatever python-soundfile decodes (WAV, FLAC, OGG/Vorbis, Opus, MP3...).

Every track is analysed once, in one streaming pass at the session's sample rate
(decoded block by block, made stereo, resampled with ``soxr.ResampleStream``):

- its real length, read to the end of the file (``sf.info().frames`` is wrong for
  MP3s without a LAME/Info header);
- its BS.1770 integrated loudness (``lufs``), as ``LoudnessMeter`` would measure it;
- its K-weighted power per 100 ms step (``step_powers``: sum over both channels of
  the squared K-weighted samples of the resampled stereo signal), from which
  ``MusicBed.power_steps`` builds the session's music loudness without rendering.

The results are cached on disk (``$COACH_CACHE_DIR/music`` or the user cache folder),
keyed by the file's absolute path, size and mtime and the sample rate, written
atomically through ``coach.fsutil``; a cache that cannot be written only costs time.

Bad music never stops a workout: an unreadable, empty, truncated or non-audio file is
skipped with one warning line naming it (``warn``). A missing path, or a folder or
playlist with no playable track, raises ``InputFileError`` (exit 3) naming it.
Shuffling is reproducible: ``Playlist.seed`` is the seed used (drawn at random when
none is given), so a resumed session can ask for the same order again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from coach.audio.loudness import ABSOLUTE_GATE_LUFS, RELATIVE_GATE_LU, STEP_S, k_weighting_sos
from coach.errors import InputFileError, OutputError
from coach.fsutil import atomic_output

if TYPE_CHECKING:
    from coach.audio.music_bed import MusicBed
    from coach.timeline import Timeline

AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .w64 .caf".split()
)
"""Files of a music folder that are tried; others (cover art, notes) are ignored."""
PLAYLIST_EXTENSIONS = (".m3u", ".m3u8")
DEFAULT_SAMPLE_RATE_HZ = 44100
DEFAULT_MUSIC_LEVEL_DB = -14.0
"""The music's loudness relative to the speech's (``TARGET_LUFS``), before ducking."""
RESAMPLE_QUALITY = "HQ"
READ_BLOCK_FRAMES = 65536
TRUNCATION_TOLERANCE_FRAMES = 4096
"""A non-MP3 file decoding this many frames fewer than its header promises is truncated."""
CACHE_VERSION = 1
MP3_SEEK_PREROLL_FRAMES = 16384

Warn = Callable[[str], None]


def _ignore(message: str) -> None:
    return None


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
    edges = np.array([int(round(i * STEP_S * sample_rate_hz)) for i in range(steps + 1)], dtype=np.int64)
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
    import soundfile as sf

    class _Sequential(sf.SoundFile):
        def seekable(self) -> bool:
            return False

    return _Sequential(str(path))


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
    from scipy.signal import sosfilt

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


class Playlist:
    """The playable tracks, in play order, each analysed at the rates asked for."""

    def __init__(self, tracks: Sequence[Track], seed: int | None, warn: Warn, cache: AnalysisCache) -> None:
        self.tracks: tuple[Track, ...] = tuple(tracks)
        self.seed = seed
        """The shuffle seed used (None when not shuffled): pass it again to get the same order."""
        self._warn = warn
        self._cache = cache
        self._analyses: dict[tuple[int, int], TrackAnalysis] = {}

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def paths(self) -> list[Path]:
        return [t.path for t in self.tracks]

    def analysis(self, index: int, sample_rate_hz: int) -> TrackAnalysis | None:
        """The track's analysis at ``sample_rate_hz`` (cached); None if it turned out unplayable."""
        key = (index, sample_rate_hz)
        if key in self._analyses:
            return self._analyses[key]
        track = self.tracks[index]
        found = self._cache.get(track, sample_rate_hz)
        if found is None:
            try:
                found = analyse(track, sample_rate_hz)
            except TrackDecodeError as exc:
                self._warn(f"{track.path}: skipped: {exc}")
                self._analyses[key] = None  # type: ignore[assignment]
                return None
            problem = _problem(track, found)
            if problem:
                self._warn(f"{track.path}: skipped: {problem}")
                self._analyses[key] = None  # type: ignore[assignment]
                return None
            self._cache.put(track, found)
        self._analyses[key] = found
        return found

    def analysed(self, sample_rate_hz: int) -> list[tuple[Track, TrackAnalysis]]:
        """Every playable track with its analysis at ``sample_rate_hz``, in play order."""
        out = []
        for i, track in enumerate(self.tracks):
            a = self.analysis(i, sample_rate_hz)
            if a is not None:
                out.append((track, a))
        return out

    def schedule(
        self,
        timeline: Timeline,
        sample_rate_hz: int,
        *,
        level_lufs: float,
        duck_db: float = 12.0,
        crossfade_s: float = 0.0,
        fade_out_s: float = 5.0,
    ) -> MusicBed:
        """Lay the playlist out under ``timeline``: see ``coach.audio.music_bed.MusicBed``."""
        from coach.audio.music_bed import MusicBed

        return MusicBed(
            self, timeline, sample_rate_hz, level_lufs=level_lufs, duck_db=duck_db,
            crossfade_s=crossfade_s, fade_out_s=fade_out_s, warn=self._warn,
        )


def _problem(track: Track, analysis: TrackAnalysis) -> str | None:
    if analysis.frames == 0:
        return "it holds no audio"
    if track.format != "MP3":
        promised = _header_frames(track.path)
        got_native = analysis.frames * track.native_rate_hz / analysis.sample_rate_hz
        if promised is not None and got_native < promised - TRUNCATION_TOLERANCE_FRAMES:
            return f"truncated (decodes {got_native / track.native_rate_hz:.1f} s of {promised / track.native_rate_hz:.1f} s)"
    return None


def natural_key(name: str) -> list[object]:
    """Sort key putting "track 2" before "track 10" (numbers compared as numbers, case ignored)."""
    parts = [(0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in re.split(r"(\d+)", name)]
    return [*parts, (2, 0, name)]  # exact name last: the order never depends on the listing's order


def _folder_files(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputFileError(f"{folder}: cannot read the music folder: {exc.strerror or exc}") from None
    files = [p for p in entries if not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


def _playlist_files(playlist: Path, warn: Warn) -> list[Path]:
    try:
        data = playlist.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{playlist}: cannot read the playlist: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # plain .m3u files are often in the system's old code page
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.lower().startswith("file://"):
            from urllib.parse import unquote, urlparse

            entry = unquote(urlparse(entry).path)
        elif re.match(r"^[a-z][a-z0-9+.-]*://", entry, re.I):
            warn(f"{playlist}:{number}: skipped {entry}: only local files can be played")
            continue
        path = Path(entry).expanduser()
        path = path if path.is_absolute() else playlist.parent / path
        if path.is_file():
            out.append(path)
        else:
            warn(f"{playlist}:{number}: skipped {path}: no such file")
    return out


def open_music(
    sources: Sequence[str | Path],
    *,
    shuffle: bool = False,
    seed: int | None = None,
    warn: Warn = _ignore,
    cache_dir: Path | None = None,
    sample_rate_hz: int = DEFAULT_SAMPLE_RATE_HZ,
) -> Playlist:
    """The playlist made of ``sources``, each track analysed at ``sample_rate_hz`` (see the module doc).

    Raises InputFileError for a missing path, a folder or playlist without a playable
    track, or no playable track at all; warns (one line each) about skipped files.
    """
    if not sources:
        raise InputFileError("no music given")
    cache = AnalysisCache(cache_dir)
    groups: list[tuple[Path, list[Track]]] = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise InputFileError(f"{path}: no such music file or folder")
        if path.is_dir():
            candidates, what = _folder_files(path), "folder"
        elif path.suffix.lower() in PLAYLIST_EXTENSIONS:
            candidates, what = _playlist_files(path, warn), "playlist"
        else:
            candidates, what = [path], "file"
        tracks = []
        for candidate in candidates:
            try:
                tracks.append(probe(candidate))
            except TrackDecodeError as exc:
                warn(f"{candidate}: skipped: {exc}")
        groups.append((path, tracks))
    # Analyse now, at the rate the session will most likely use: a file that opens but
    # does not decode (a junk .mp3, a truncated FLAC) is found before the session starts.
    playlist = Playlist([t for _, ts in groups for t in ts], None, warn, cache)
    playable = {t.path for t, _ in playlist.analysed(sample_rate_hz)}
    for path, tracks in groups:
        if not any(t.path in playable for t in tracks) and path.is_dir():
            raise InputFileError(f"{path}: the music folder holds no playable audio file")
        if not any(t.path in playable for t in tracks) and path.suffix.lower() in PLAYLIST_EXTENSIONS:
            raise InputFileError(f"{path}: the playlist names no playable audio file")
    tracks = [t for t in playlist.tracks if t.path in playable]
    if not tracks:
        names = ", ".join(str(s) for s in sources)
        raise InputFileError(f"{names}: no playable music")
    if shuffle:
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        random.Random(seed).shuffle(tracks)
    result = Playlist(tracks, seed if shuffle else None, warn, cache)
    result._analyses = {
        (i, rate): a
        for i, t in enumerate(tracks)
        for (j, rate), a in playlist._analyses.items()
        if playlist.tracks[j] is t and a is not None
    }
    return result


def resolve_music_path(path: str | Path, base_dir: str | Path | None) -> Path:
    """A routine's ``music.path``, taken relative to the routine file's folder ``base_dir``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p
