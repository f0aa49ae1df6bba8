"""The `coach export` command: render a routine or an edited cue script to an audio file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, TextIO

import typer

from coach.cli.app import LevelOpt, RateOpt, VoiceOpt, VolumeOpt, app
from coach.errors import UsageError


@app.command("export")
def export_cmd(
    source: str = typer.Argument(
        "lower-back",
        help="A built-in routine name, a routine file, or a cue script from `coach plan` (.json, .vtt, .srt).",
    ),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="Audio file: .wav, .flac, .ogg or .mp3; `-` writes a WAV to stdout."
    ),
    level: str = LevelOpt,
    voice: Optional[str] = VoiceOpt,
    rate: Optional[int] = RateOpt,
    volume: Optional[float] = VolumeOpt,
    engine: Optional[str] = typer.Option(
        None, "--engine",
        help="auto (piper if the neural extra is installed, else pyttsx3), pyttsx3 (espeak-ng), piper (natural) "
        "or estimate (silence). "
        "Default: the routine's.",
    ),
    sample_rate: int = typer.Option(44100, "--sample-rate", help="Output sample rate in Hz."),
    mono: bool = typer.Option(False, "--mono", help="One channel instead of two."),
    split: Optional[Path] = typer.Option(
        None, "--split", help="Also write one file per chapter into this folder, with an .m3u playlist."
    ),
    script: Optional[Path] = typer.Option(
        None, "--script", help="Also write the cue script (format from the extension: json, vtt, srt, txt)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Synthesize every cue again (bypass the clip cache)."),
) -> None:
    """Render a whole session to an audio file, loudness-normalized, with chapter markers."""
    from coach.cli.play import prepare_session
    from coach.cuescript import clock
    from coach.export import export

    if output is None and split is None:
        raise UsageError("give an output file with -o FILE (or a folder with --split DIR)")
    to_stdout = output == "-"
    if to_stdout and sys.stdout.isatty():
        raise UsageError("-o -: refusing to write audio to a terminal", hint="redirect stdout to a file or a pipe")
    progress = ProgressLine(sys.stderr) if not quiet and sys.stderr.isatty() else None
    # Refuse an output that cannot be written before planning, which synthesizes every cue.
    from coach.audio.writers import format_for
    from coach.fsutil import check_target

    if output is not None and not to_stdout:
        format_for(output)
        check_target(Path(output), force)
    if script is not None:
        check_target(script, force)
    session = prepare_session(
        source, level, engine=engine, voice=voice, rate=rate, volume=volume, use_cache=not no_cache,
        # Planning synthesizes every cue (export's own "synth" stage then finds them ready): show it.
        progress=(lambda done, total: progress("synth", done, total)) if progress else None,
    )
    try:
        result = export(
            session.timeline,
            session.voice,
            sys.stdout.buffer if to_stdout else output,
            sample_rate_hz=sample_rate,
            mono=mono,
            force=force,
            split_dir=split,
            script_path=script,
            progress=progress,
            routine_base_dir=session.base_dir,
            routine_sounds=session.sounds,
        )
    finally:
        if progress:
            progress.close()
        session.close()
    if not quiet:
        where = ", ".join(str(p) for p in result.outputs) or "stdout"
        print(
            f"coach: wrote {where} ({clock(result.duration_s)}, {result.loudness_lufs:.1f} LUFS, "
            f"true peak {result.true_peak_dbtp:.1f} dBTP)",
            file=sys.stderr,
        )


class ProgressLine:
    """A one-line progress display on a terminal: stage, bar, percent; redrawn at most 10 times a second."""

    LABELS = {"synth": "synthesizing", "measure": "measuring", "write": "writing"}

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._last = 0.0
        self._shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        fraction = done / total if total else 1.0
        filled = int(round(fraction * self.width))
        label = self.LABELS.get(stage, stage)
        count = f" {done}/{total}" if stage == "synth" else ""
        self.stream.write(f"\r{label:<13}[{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%}{count}\x1b[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
