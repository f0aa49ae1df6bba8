"""Export a Timeline to an audio file: synthesize, render, normalize, write.

    Timeline --voice.prefetch--> clips --render_blocks--> measure --render_blocks + gain + limiter--> file

Two passes over ``render_blocks`` keep memory flat however long the session:
the first measures the integrated loudness (through the same limiter, at a gain
estimated from the speech clips), the second renders again with the corrected
gain and writes. The result sits at -16 LUFS with true peaks at or below
-1 dBTP, and earcons are kept below the speech level.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from coach.audio.clip import Clip
from coach.audio.earcons import load_sound
from coach.audio.limiter import Limiter
from coach.audio.loudness import MAX_TRUE_PEAK_DBTP, TARGET_LUFS, LoudnessMeter, TruePeakMeter
from coach.audio.render import render_blocks
from coach.audio.writers import Marker, check_mp3_rate, format_for, write_audio
from coach.fsutil import check_target
from coach.errors import OutputError, UsageError
from coach.timeline import Cue, Timeline

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "synth" (clips), "measure" or "write" (frames)."""

LIMITER_CEILING_DBTP = {"wav": -1.5, "flac": -1.5, "ogg": -2.5, "mp3": -2.5}
"""Where the limiter holds true peaks: below -1 dBTP, with room for lossy encoders' overshoot."""
EARCON_BELOW_SPEECH_LU = 3.0
"""An earcon's loudest 400 ms stays this far below the speech's integrated loudness."""
MAX_GAIN_DB = 40.0
"""Normalization never amplifies more than this (a nearly silent session stays quiet)."""
BLOCK_S = 1.0
GAIN_SEARCH_DB = (-4.0, -2.0, 0.0, 2.0, 4.0)
"""Gains around the first guess at which the loudness pass measures the limited session."""
SCRIPT_FORMATS = ("json", "vtt", "srt", "txt", "labels", "table")
SCRIPT_EXTENSIONS = {".json": "json", ".vtt": "vtt", ".srt": "srt", ".txt": "txt", ".labels": "labels"}


@dataclass
class ExportResult:
    """What an export wrote and what it measured."""

    outputs: list[Path] = field(default_factory=list)
    duration_s: float = 0.0
    sample_rate_hz: int = 44100
    channels: int = 2
    gain_db: float = 0.0
    """Normalization gain applied to the rendered session."""
    loudness_lufs: float = -math.inf
    """Integrated loudness of what was written (of the whole session, even with --split)."""
    true_peak_dbtp: float = -math.inf
    """True peak of what was written (before any lossy encoding)."""
    limiter_gain_db: float = 0.0
    """Deepest gain reduction the limiter applied (0 if it never acted)."""
    speech_lufs: float = -math.inf
    earcon_gain_db: dict[str, float] = field(default_factory=dict)
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
    routine_base_dir: str | Path | None = None,
    routine_sounds: Mapping[str, str] | None = None,
) -> ExportResult:
    """Render ``timeline`` with ``voice`` to ``output`` (a path, or a binary stream for a WAV).

    ``split_dir`` also (or instead, when ``output`` is None) writes one file per
    chapter plus an .m3u playlist; ``script_path`` writes the cue script too, in
    the format its extension names unless ``script_format`` is given.
    Raises OutputError, UsageError, SpeechEngineError, InputFileError.
    """
    if output is None and split_dir is None:
        raise UsageError("nothing to write: give an output file or a folder to split into")
    if not 8000 <= sample_rate_hz <= 192000:
        raise UsageError(f"sample rate must be between 8000 and 192000 Hz, got {sample_rate_hz}")
    channels = 1 if mono else 2
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
    result.speech_lufs = speech_loudness(voice, texts)
    sounds = {name for name in (c.sound for c in timeline.cues if c.kind == "sound") if name}
    earcons = balanced_earcons(sounds, result.speech_lufs, routine_sounds, routine_base_dir)
    result.earcon_gain_db = {name: gain for name, (_, gain) in earcons.items()}
    result.seconds["synth"] = time.monotonic() - started

    def clip_for(cue: Cue) -> Clip:
        if cue.kind == "speech":
            return voice.clip(cue.text or "")
        return earcons[cue.sound][0]

    ceiling_dbtp = LIMITER_CEILING_DBTP[fmt]
    total_frames = int(round(timeline.duration_s * sample_rate_hz))

    def limited(gain_db: float, start_s: float = 0.0, end_s: float | None = None) -> Iterator[np.ndarray]:
        # Rendered and limited as one mono mix, spread to the output channels at the end (half the work).
        limiter = Limiter(sample_rate_hz, 1, ceiling_dbtp, pre_gains_db=(gain_db,))
        for block in render_blocks(timeline, clip_for, sample_rate_hz, 1, BLOCK_S, start_s=start_s, end_s=end_s):
            out = limiter.process(block)
            if len(out):
                yield np.repeat(out, channels, axis=1)
        tail = limiter.flush()
        if len(tail):
            yield np.repeat(tail, channels, axis=1)
        result.limiter_gain_db = min(result.limiter_gain_db, 20 * math.log10(max(limiter.min_gain, 1e-9)))

    # Pass 1: the loudness the limited session would have at a range of gains around a guess
    # made from the speech alone; the gain that lands on the target is read off that curve.
    started = time.monotonic()
    guess_db = _clamp_gain(TARGET_LUFS - result.speech_lufs)
    # Every output channel carries the same mono mix: measure one and add 3.01 dB per doubling.
    result.gain_db = measure_gain(
        render_blocks(timeline, clip_for, sample_rate_hz, 1, BLOCK_S),
        sample_rate_hz, 1, ceiling_dbtp, guess_db,
        lambda done: report("measure", done, total_frames),
        target_lufs=TARGET_LUFS - 10 * math.log10(channels),
    )
    result.seconds["measure"] = time.monotonic() - started

    # Pass 2: render again with the corrected gain, measure what goes out, write.
    started = time.monotonic()
    out_meter = LoudnessMeter(sample_rate_hz, channels)
    peak_meter = TruePeakMeter(channels)
    progress_done = [0]

    def measured_blocks(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            out_meter.add(block)
            peak_meter.add(block)
            progress_done[0] += len(block)
            report("write", progress_done[0], total_frames)
            yield block

    markers = chapter_markers(timeline, sample_rate_hz, total_frames)
    if output is not None:
        write_audio(
            measured_blocks(limited(result.gain_db)),
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
        # Measured (and reported) once: here only when there is no main file.
        wrap = measured_blocks if output is None else iter
        result.outputs += write_split(
            timeline, Path(split_dir), fmt, markers, sample_rate_hz, channels, force,
            lambda start_s, end_s: wrap(limited(result.gain_db, start_s, end_s)),
        )
    result.loudness_lufs = out_meter.integrated_lufs()
    result.true_peak_dbtp = 20 * math.log10(peak_meter.finish()) if peak_meter.peak > 0 else -math.inf
    if result.true_peak_dbtp > MAX_TRUE_PEAK_DBTP + 1e-6:  # the limiter guarantees this; keep it honest
        raise RuntimeError(f"true peak {result.true_peak_dbtp:.2f} dBTP above {MAX_TRUE_PEAK_DBTP} dBTP")
    if script_path is not None:
        result.outputs.append(write_script_file(timeline, Path(script_path), script_fmt, force))
    result.seconds["write"] = time.monotonic() - started
    return result


def measure_gain(
    blocks: Iterator[np.ndarray],
    sample_rate_hz: int,
    channels: int,
    ceiling_dbtp: float,
    guess_db: float,
    progress: Callable[[int], None] = lambda done: None,
    target_lufs: float = TARGET_LUFS,
) -> float:
    """The gain (dB) that brings ``blocks``, limited to ``ceiling_dbtp``, to ``target_lufs``.

    Limiting lowers loudness by an amount that depends on the gain, so one
    measurement cannot predict it: the stream is limited at several gains around
    ``guess_db`` at once (sharing the true-peak analysis), each measured, and the
    target is interpolated between the two gains that bracket it.
    """
    gains = tuple(guess_db + offset for offset in GAIN_SEARCH_DB)
    limiter = Limiter(sample_rate_hz, channels, ceiling_dbtp, pre_gains_db=gains)
    meters = [LoudnessMeter(sample_rate_hz, channels) for _ in gains]
    done = 0
    for block in blocks:
        for meter, out in zip(meters, limiter.process_all(block)):
            meter.add(out)
        done += len(block)
        progress(done)
    for meter, out in zip(meters, limiter.flush_all()):
        meter.add(out)
    loudness = [m.integrated_lufs() for m in meters]
    if not all(math.isfinite(x) for x in loudness):
        return guess_db  # silence: nothing to normalize
    for (g0, l0), (g1, l1) in zip(zip(gains, loudness), zip(gains[1:], loudness[1:])):
        if l0 <= target_lufs <= l1 and l1 > l0:
            return _clamp_gain(g0 + (g1 - g0) * (target_lufs - l0) / (l1 - l0))
    # Outside the searched range: extend the line through the two nearest measured points.
    k = 0 if target_lufs < loudness[0] else len(gains) - 2
    slope = (loudness[k + 1] - loudness[k]) / (gains[k + 1] - gains[k])
    if slope <= 0.05:  # flat (all limiting) or odd: step from the nearest point as if linear
        nearest = min(range(len(gains)), key=lambda i: abs(loudness[i] - target_lufs))
        return _clamp_gain(gains[nearest] + target_lufs - loudness[nearest])
    return _clamp_gain(gains[k] + (target_lufs - loudness[k]) / slope)


def _clamp_gain(gain_db: float) -> float:
    return min(MAX_GAIN_DB, gain_db) if math.isfinite(gain_db) else 0.0


def speech_loudness(voice, texts: list[str]) -> float:
    """Integrated loudness of the distinct speech clips played one after another (-inf if silent)."""
    meter: LoudnessMeter | None = None
    for text in dict.fromkeys(texts):
        clip = voice.clip(text)
        if meter is None or meter.sample_rate_hz != clip.sample_rate_hz:
            if meter is not None:
                break  # clips of one voice share a rate; stop rather than mix rates
            meter = LoudnessMeter(clip.sample_rate_hz, 1)
        meter.add(clip.samples[:, None])
    return meter.integrated_lufs() if meter is not None else -math.inf


def balanced_earcons(
    names: set[str],
    speech_lufs: float,
    routine_sounds: Mapping[str, str] | None,
    base_dir: str | Path | None,
) -> dict[str, tuple[Clip, float]]:
    """Each earcon, turned down if needed so it is not louder than the speech; with its gain in dB."""
    out: dict[str, tuple[Clip, float]] = {}
    for name in sorted(names):
        clip = load_sound(name, routine_sounds, base_dir)
        meter = LoudnessMeter(clip.sample_rate_hz, 1)
        # Pad to a whole 400 ms block so even a 100 ms tick gets a momentary loudness.
        pad = np.zeros(int(0.4 * clip.sample_rate_hz), dtype=np.float32)
        meter.add(np.concatenate([clip.samples, pad])[:, None])
        loudest = meter.max_momentary_lufs()
        gain_db = 0.0
        if math.isfinite(speech_lufs) and math.isfinite(loudest):
            gain_db = min(0.0, speech_lufs - EARCON_BELOW_SPEECH_LU - loudest)
        if gain_db < 0:
            clip = Clip(clip.samples * np.float32(10 ** (gain_db / 20)), clip.sample_rate_hz)
        out[name] = (clip, gain_db)
    return out


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
