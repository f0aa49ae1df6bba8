"""Music to play under the coach's voice: find the tracks, analyse each once, lay them out.

    sources (folder, .m3u/.m3u8, files) --open_music--> Playlist --schedule(timeline)--> MusicBed
                      (each track: coach.audio.music_tracks)          (coach.audio.music_bed)

The interface, for the master (the one mix) and the CLI:

- ``open_music(sources, *, shuffle=False, seed=None, warn=..., cache_dir=None,
  sample_rate_hz=44100, progress=None) -> Playlist``.
- ``Playlist.tracks`` / ``.paths`` (play order), ``.seed`` (the shuffle seed, to store
  for ``--resume``), ``.schedule(timeline, sample_rate_hz, *, level_lufs, duck_db=12.0,
  crossfade_s=0.0, fade_out_s=5.0) -> MusicBed``. The master passes
  ``level_lufs = TARGET_LUFS + level_db`` (``DEFAULT_MUSIC_LEVEL_DB`` = -14, from
  ``--music-level`` or the routine's ``music.level_db``).
- ``MusicBed.blocks(start_frame, end_frame, block_frames)`` -> float32 (n, 2) blocks, a
  pure function of the session frame; ``MusicBed.power_steps()`` (with
  ``.step_edges()``) -> the music's K-weighted power per 100 ms step, for loudness by
  construction; ``MusicBed.now_playing(frame)`` -> the Track heard there.
- ``coach.audio.music_bed.speech_over_music_lu(speech, music, rate, timeline)``: how far
  the speech sits above the music in each speech cue.
- ``resolve_music_path(path, base_dir)``: a routine's ``music.path`` from its folder.

A source is a folder (its audio files, by extension, in natural name order: "2 b"
before "10 a"; hidden files and subfolders are not read), an ``.m3u``/``.m3u8``
playlist (one path per line, relative to the playlist's folder; ``#`` lines are
comments; URLs are skipped with a warning) or an audio file. Formats are whatever
python-soundfile decodes (WAV, FLAC, OGG/Vorbis, Opus, MP3...).

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

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from coach.audio.music_bed import DEFAULT_DUCK_DB, DEFAULT_FADE_OUT_S, MusicBed, speech_over_music_lu
from coach.audio.music_tracks import (
    AnalysisCache,
    Track,
    TrackAnalysis,
    TrackDecodeError,
    analyse,
    decoded_blocks,
    default_cache_dir,
    integrated_from_steps,
    probe,
    problem as problem_with,
    step_edges,
)
from coach.errors import InputFileError

__all__ = [
    "DEFAULT_DUCK_DB", "DEFAULT_FADE_OUT_S", "DEFAULT_MUSIC_LEVEL_DB", "MusicBed", "Playlist", "Track", "TrackAnalysis", "TrackDecodeError", "analyse",
    "decoded_blocks", "default_cache_dir", "integrated_from_steps", "natural_key", "open_music",
    "probe", "resolve_music_path", "speech_over_music_lu", "step_edges",
]

if TYPE_CHECKING:
    from coach.timeline import Timeline

AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .w64 .caf".split()
)
"""Files of a music folder that are tried; others (cover art, notes) are ignored."""
PLAYLIST_EXTENSIONS = (".m3u", ".m3u8")
DEFAULT_SAMPLE_RATE_HZ = 44100
DEFAULT_MUSIC_LEVEL_DB = -14.0
"""The music's loudness relative to the speech's (``TARGET_LUFS``), before ducking."""
Warn = Callable[[str], None]


def _ignore(message: str) -> None:
    return None


class Playlist:
    """The playable tracks, in play order, each analysed at the rates asked for."""

    def __init__(
        self,
        tracks: Sequence[Track],
        seed: int | None,
        warn: Warn,
        cache: AnalysisCache,
        analyses: dict[tuple[Track, int], TrackAnalysis | None] | None = None,
    ) -> None:
        self.tracks: tuple[Track, ...] = tuple(tracks)
        self.seed = seed
        """The shuffle seed used (None when not shuffled): pass it again to get the same order."""
        self._warn = warn
        self._cache = cache
        self._analyses: dict[tuple[Track, int], TrackAnalysis | None] = dict(analyses or {})

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def paths(self) -> list[Path]:
        return [t.path for t in self.tracks]

    def analysis(self, index: int, sample_rate_hz: int) -> TrackAnalysis | None:
        """The track's analysis at ``sample_rate_hz`` (cached); None if it turned out unplayable."""
        track = self.tracks[index]
        key = (track, sample_rate_hz)
        if key in self._analyses:
            return self._analyses[key]
        found = self._cache.get(track, sample_rate_hz)
        if found is None:
            try:
                found = analyse(track, sample_rate_hz)
                problem = problem_with(track, found)
            except TrackDecodeError as exc:
                problem = str(exc)
            if problem:
                self._warn(f"{track.path}: skipped: {problem}")
                self._analyses[key] = None
                return None
            self._cache.put(track, found)
        self._analyses[key] = found
        return found

    def analysed(
        self, sample_rate_hz: int, progress: Callable[[int, int], None] | None = None
    ) -> list[tuple[Track, TrackAnalysis]]:
        """Every playable track with its analysis at ``sample_rate_hz``, in play order.

        ``progress(done, total)`` is called after each track (analysing takes a while
        the first time: a decoding pass over every file).
        """
        out = []
        for i, track in enumerate(self.tracks):
            a = self.analysis(i, sample_rate_hz)
            if a is not None:
                out.append((track, a))
            if progress is not None:
                progress(i + 1, len(self.tracks))
        return out

    def schedule(
        self,
        timeline: Timeline,
        sample_rate_hz: int,
        *,
        level_lufs: float,
        duck_db: float = DEFAULT_DUCK_DB,
        crossfade_s: float = 0.0,
        fade_out_s: float = DEFAULT_FADE_OUT_S,
    ) -> MusicBed:
        """Lay the playlist out under ``timeline`` at ``sample_rate_hz``: see ``coach.audio.music_bed``.

        ``level_lufs`` is each track's loudness before ducking, ``duck_db`` how far the
        music goes down under cues, ``crossfade_s`` the overlap of consecutive tracks,
        ``fade_out_s`` the fade at the session's end.
        """
        return MusicBed(
            self, timeline, sample_rate_hz, level_lufs=level_lufs, duck_db=duck_db,
            crossfade_s=crossfade_s, fade_out_s=fade_out_s, warn=self._warn,
        )


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
    progress: Callable[[int, int], None] | None = None,
) -> Playlist:
    """The playlist made of ``sources``, each track analysed at ``sample_rate_hz`` (see the module doc).

    Give the session's sample rate: ``schedule`` at another rate analyses the tracks
    again (once, cached). ``progress(done, total)`` follows the analysis, track by
    track. Raises InputFileError for a missing path, a folder or playlist without a
    playable track, or no playable track at all; warns (one line each) about skipped files.
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
            candidates = _folder_files(path)
        elif path.suffix.lower() in PLAYLIST_EXTENSIONS:
            candidates = _playlist_files(path, warn)
        else:
            candidates = [path]
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
    playable = {t.path for t, _ in playlist.analysed(sample_rate_hz, progress)}
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
    return Playlist(tracks, seed if shuffle else None, warn, cache, playlist._analyses)


def resolve_music_path(path: str | Path, base_dir: str | Path | None) -> Path:
    """A routine's ``music.path``, taken relative to the routine file's folder ``base_dir``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p
