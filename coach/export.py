"""Export a session to audio files: the master's blocks, written to a file (or one per chapter).

    PreparedSession --voice.prefetch--> clips --Master.blocks (one gain, one limiter)--> writers

The master (``coach.audio.master``) is the same one the player plays: the loudness
follows from the clips (each normalized when it was made), so the session is
rendered once, straight into the file, at -16 LUFS with true peaks at or below
-1 dBTP, and earcons kept below the speech level.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from coach.audio.master import CEILING_DBTP, Master
from coach.audio.writers import Marker, check_mp3_rate, format_for, write_audio
from coach.errors import OutputError, UsageError
from coach.fsutil import check_target
from coach.timeline import Timeline

if TYPE_CHECKING:
    from coach.audio.master import MusicSource

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "synth" (clips) or "write" (frames)."""

BLOCK_S = 1.0
SCRIPT_FORMATS = ("json", "vtt", "srt", "txt", "labels", "table")
SCRIPT_EXTENSIONS = {".json": "json", ".vtt": "vtt", ".srt": "srt", ".txt": "txt", ".labels": "labels"}


@dataclass
class ExportResult:
    """What an export wrote and what it knows of its level."""

    outputs: list[Path] = field(default_factory=list)
    duration_s: float = 0.0
    sample_rate_hz: int = 44100
    channels: int = 2
    gain_db: float = 0.0
    """The master's gain (from the session's loudness, computed from its clips)."""
    loudness_lufs: float = -math.inf
    """Integrated loudness of what was written (of the whole session, even with --split)."""
    peak_bound_dbtp: float = -math.inf
    """What the true peak of what was written is at most (the limiter's ceiling where it acted)."""
    limited_s: float = 0.0
    """Seconds of audio the limiter had to analyse (where the clips' peaks alone did not rule it out)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock time of each stage."""


def export(
    timeline: Timeline,
    voice,
    output: str | Path | BinaryIO | None,
    *,
    sample_rate_hz: int = 44100,
    mono: bool = False,
    force: bool = False,
    split_dir: str | Path | None = None,
    script_path: str | Path | None = None,
    script_format: str | None = None,
    progress: Progress | None = None,
    sounds: Mapping[str, str] | None = None,
    music: Callable[[float], MusicSource] | None = None,
) -> ExportResult:
    """Render ``timeline`` with ``voice`` to ``output`` (a path, or a binary stream for a WAV).

    ``split_dir`` also (or instead, when ``output`` is None) writes one file per
    chapter plus an .m3u playlist; ``script_path`` writes the cue script too, in
    the format its extension names unless ``script_format`` is given. ``sounds``
    replaces built-in earcons (default: the timeline's own); ``music(voice_lufs)`` lays
    music out under the voice (``PreparedSession.music.bed_for``).
    Raises OutputError, UsageError, SpeechEngineError, InputFileError.
    """
    from coach.session import CueClips

    if output is None and split_dir is None:
        raise UsageError("nothing to write: give an output file or a folder to split into")
    if not 8000 <= sample_rate_hz <= 192000:
        raise UsageError(f"sample rate must be between 8000 and 192000 Hz, got {sample_rate_hz}")
    channels = 1 if mono else 2
    if music is not None and mono:
        raise UsageError("--mono: music is mixed in stereo; leave out --mono or --music")
    fmt = "wav" if output is None or not isinstance(output, (str, Path)) else format_for(output)
    # Refuse bad outputs before minutes of synthesis, not after.
    if isinstance(output, (str, Path)):
        check_target(Path(output), force)
    if fmt == "mp3":
        check_mp3_rate(sample_rate_hz)
    script_fmt = None
    if script_path is not None:
        script_fmt = script_format or SCRIPT_EXTENSIONS.get(Path(script_path).suffix.lower())
        if script_fmt not in SCRIPT_FORMATS:
            raise UsageError(
                f"{script_path}: cannot tell the cue script format from the extension",
                hint="use .json, .vtt, .srt or .txt, or give the format",
            )
        check_target(Path(script_path), force)
    report = progress or (lambda stage, done, total: None)
    result = ExportResult(duration_s=timeline.duration_s, sample_rate_hz=sample_rate_hz, channels=channels)

    started = time.monotonic()
    texts = [c.text for c in timeline.cues if c.kind == "speech" and c.text]
    voice.prefetch(texts, progress=lambda done, total: report("synth", done, total))
    clips = CueClips(voice, timeline.sounds if sounds is None else sounds)
    master = Master(timeline, clips, level_for=clips.level,
                    sample_rate_hz=sample_rate_hz, channels=channels, ceiling_dbtp=CEILING_DBTP[fmt], music=music)
    result.gain_db = master.gain_db
    result.seconds["synth"] = time.monotonic() - started

    started = time.monotonic()
    total_frames = master.total_frames
    progress_done = [0]

    def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            progress_done[0] += len(block)
            report("write", progress_done[0], total_frames)
            yield block

    markers = chapter_markers(timeline, sample_rate_hz, total_frames)
    if output is not None:
        write_audio(
            counted(master.blocks(block_s=BLOCK_S)),
            output,
            sample_rate_hz=sample_rate_hz,
            channels=channels,
            total_frames=total_frames,
            markers=markers,
            title=timeline.title,
            force=force,
        )
        if isinstance(output, (str, Path)):
            result.outputs.append(Path(output))
    if split_dir is not None:
        # Progress is reported once: here only when there is no main file.
        wrap = counted if output is None else iter
        result.outputs += write_split(
            timeline, Path(split_dir), fmt, markers, sample_rate_hz, channels, force,
            lambda start_s, end_s: wrap(master.blocks(start_s, end_s, BLOCK_S)),
        )
    result.loudness_lufs = master.output_lufs
    result.peak_bound_dbtp = master.peak_bound_dbtp
    result.limited_s = master.limited_frames / sample_rate_hz
    if script_path is not None:
        result.outputs.append(write_script_file(timeline, Path(script_path), script_fmt, force))
    result.seconds["write"] = time.monotonic() - started
    return result


def chapter_markers(timeline: Timeline, sample_rate_hz: int, total_frames: int) -> list[Marker]:
    """The timeline's chapters as frame markers inside the file, in order, one per frame."""
    markers: list[Marker] = []
    for chapter in sorted(timeline.chapters, key=lambda c: c.start_s):
        frame = min(max(0, int(round(chapter.start_s * sample_rate_hz))), max(0, total_frames - 1))
        if markers and markers[-1].frame == frame:
            markers[-1] = Marker(frame, chapter.title)  # the later title wins for one position
        else:
            markers.append(Marker(frame, chapter.title))
    return markers


def safe_file_name(title: str) -> str:
    """A chapter title as a file name that every file system accepts."""
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", title).strip(" .")
    return re.sub(r"\s+", " ", name)[:80] or "chapter"


def write_split(
    timeline: Timeline,
    folder: Path,
    fmt: str,
    markers: list[Marker],
    sample_rate_hz: int,
    channels: int,
    force: bool,
    blocks_between: Callable[[float, float], Iterator[np.ndarray]],
) -> list[Path]:
    """One file per chapter in ``folder`` (created if needed) and an .m3u playlist of them."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder: {exc.strerror or exc}") from None
    total_frames = int(round(timeline.duration_s * sample_rate_hz))
    spans = markers or [Marker(0, timeline.title or "Session")]
    bounds = [0] + [m.frame for m in spans[1:]] + [total_frames]  # audio before the first chapter joins it
    names = [f"{i:02d} {safe_file_name(m.title)}.{fmt}" for i, m in enumerate(spans, 1)]
    playlist = folder / f"{safe_file_name(timeline.routine or 'session')}.m3u"
    for path in [folder / n for n in names] + [playlist]:
        check_target(path, force)
    written = []
    for marker, name, first, last in zip(spans, names, bounds[:-1], bounds[1:]):
        path = folder / name
        write_audio(
            blocks_between(first / sample_rate_hz, last / sample_rate_hz),
            path,
            sample_rate_hz=sample_rate_hz,
            channels=channels,
            total_frames=last - first,
            markers=[Marker(0, marker.title)],
            title=f"{timeline.title}: {marker.title}" if timeline.title else marker.title,
            force=force,
        )
        written.append(path)
    lines = ["#EXTM3U", f"#PLAYLIST:{timeline.title}"]
    for marker, name, first, last in zip(spans, names, bounds[:-1], bounds[1:]):
        lines += [f"#EXTINF:{round((last - first) / sample_rate_hz)},{marker.title}", name]
    _write_text(playlist, "\n".join(lines) + "\n", force)
    return written + [playlist]


def write_script_file(timeline: Timeline, path: Path, fmt: str | None, force: bool) -> Path:
    """Write the cue script (coach.cuescript) next to the audio, atomically."""
    from coach.cuescript import write_script

    _write_text(path, write_script(timeline, fmt or "json"), force)
    return path


def _write_text(path: Path, text: str, force: bool) -> None:
    from coach.fsutil import atomic_path, wrap_write_errors

    with atomic_path(path, force=force) as temp, wrap_write_errors(path):
        temp.write_text(text, encoding="utf-8")
