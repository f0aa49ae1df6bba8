"""A session's opening, kept from the last time the same command played it, and started at once.

A warm ``coach play`` needs ~0.3 s before its first block is mastered (Python,
the option parser, loading and planning the routine), and a sample written into
a stream already playing is heard a device buffer later (~0.2-0.3 s). So the
first sound of a session prepared on the spot comes ~0.6 s after launch at best.

When the same command line has played before, its first ``OPENING_S`` seconds
of mastered audio are in the cache. ``python -m coach`` (``start_early``) opens
the device with them before anything heavy is imported: ``PREROLL_S`` of
silence (the wake-up every new stream gets), then the opening. The session is
then prepared as always, and the live layer (``coach.live``) carries on in the
same stream only if the session's own first ``OPENING_S`` seconds are those
samples exactly; otherwise the opening is cut off and the session starts over
on a new stream, and the new opening is kept. Play therefore equals export
either way; the opening is a head start, never a source of what is played.

The key is the command line as typed (arguments, working folder, the
environment variables Coach reads) plus the size and time of every file it
names and of the built-in routines: cheap to compute before any import. What
it cannot see (a clip replaced in the cache, an installed voice, the history's
choice of the brief version) the sample comparison catches. A command whose
opening differed twice in a row (shuffled music) is not started early again
until it stops differing. Standard library only: this runs before numpy loads.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import mmap
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coach import __version__

OPENING_S = 3.0
"""How much of a session is kept: covers preparing a warm session with seconds to spare."""
PREROLL_S = 0.4
"""Silence before the opening: the wake-up a new stream gets (``PlayerOptions.preroll_s``)."""
RATE_HZ = 44100
CHANNELS = 2
KEEP = 16
"""Openings kept (the most recently played commands); older ones are removed."""
MAX_MISSES = 2
"""An opening that differed from its session this many times in a row is not started early."""
STREAM_S = 1800.0
"""Length of the early stream (``coach.playback.MAX_STREAM_S`` on Linux): the session carries on in it."""

_NOT_KEYED = {"--from", "--resume", "--no-cache", "--shuffle", "--help", "-h"}
"""Options after which a command does not start the same way twice (or does not play at all)."""
_ENV = ("COACH_CACHE_DIR", "COACH_DATA_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME", "HOME")


def cache_folder() -> Path | None:
    """Where openings are kept: ``$COACH_CACHE_DIR/openings``, else the user cache (Linux only, as platformdirs)."""
    override = os.environ.get("COACH_CACHE_DIR")
    if override:
        return Path(override) / "openings"
    if not sys.platform.startswith("linux"):
        return None
    return _user_folder("XDG_CACHE_HOME", ".cache") / "openings"


def _user_folder(variable: str, fallback: str) -> Path:
    """Coach's folder under ``$XDG_...`` (else ``~/fallback``), as platformdirs has it on Linux."""
    xdg = os.environ.get(variable, "").strip()
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / fallback) / "coach"


def command_key(argv: list[str]) -> str | None:
    """The key of ``coach play ARGS`` (``argv`` = ARGS), or None for a command not started early."""
    if any(arg.split("=", 1)[0] in _NOT_KEYED for arg in argv) or "-" in argv:
        return None
    files: list[Any] = []
    builtin = Path(__file__).parent / "routines"
    data = os.environ.get("COACH_DATA_DIR")  # coach.loader.user_routine_dir, without platformdirs
    imported = (Path(data) if data else _user_folder("XDG_DATA_HOME", ".local/share")) / "routines"
    named = [Path(arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg) for arg in argv
             if not arg.startswith("-") or (arg.startswith("--") and "=" in arg)]
    for path in [*sorted(builtin.glob("*")), *sorted(imported.glob("*")), *named]:
        with contextlib.suppress(OSError, ValueError):
            st = path.stat()
            files.append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    parts = {"version": __version__, "argv": argv, "cwd": os.getcwd(), "files": files,
             "env": {name: os.environ.get(name) for name in _ENV}, "rate": RATE_HZ, "channels": CHANNELS,
             "preroll_s": PREROLL_S, "opening_s": OPENING_S}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass
class Opening:
    """The opening kept for one command."""

    key: str
    samples: bytes
    """int16, interleaved: RATE_HZ, CHANNELS, OPENING_S long (shorter for a shorter session)."""
    misses: int = 0


def load(key: str) -> Opening | None:
    folder = cache_folder()
    if folder is None:
        return None
    try:
        data = (folder / f"{key}.raw").read_bytes()
        misses = int((folder / f"{key}.misses").read_text()) if (folder / f"{key}.misses").exists() else 0
    except (OSError, ValueError):
        return None
    if not data or len(data) % (2 * CHANNELS):
        return None
    return Opening(key, data, misses)


def save(key: str, samples: bytes, misses: int = 0) -> None:
    """Keep ``samples`` as the opening of ``key`` (atomically; best effort: a cache that cannot be written is no error)."""
    folder = cache_folder()
    if folder is None:
        return
    target = folder / f"{key}.raw"
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(samples)
        os.replace(tmp, target)
        counter = folder / f"{key}.misses"
        if misses:
            counter.write_text(str(misses))
        else:
            counter.unlink(missing_ok=True)
        kept = sorted(folder.glob("*.raw"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[KEEP:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".misses").unlink(missing_ok=True)
        for stale in folder.glob(".*.tmp"):  # left by a process that ended while writing
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink(missing_ok=True)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def touch(key: str) -> None:
    """Mark the opening of ``key`` as just used (the least recently used ones are removed first)."""
    folder = cache_folder()
    if folder is not None:
        with contextlib.suppress(OSError):
            os.utime(folder / f"{key}.raw")


@dataclass
class EarlyStart:
    """The device, opened by ``start_early`` and playing the preroll and the opening."""

    opening: Opening
    map: mmap.mmap
    play: Any
    """simpleaudio's PlayObject."""
    started_s: float
    """time.monotonic() when it started."""
    taken: bool = False

    @property
    def preroll_frames(self) -> int:
        return int(round(PREROLL_S * RATE_HZ))

    @property
    def opening_frames(self) -> int:
        return len(self.opening.samples) // (2 * CHANNELS)


_command: list[str | None] = [None]
"""The key of the command being run (set by ``start_early``; None when Coach was not started as a command)."""
_early: list[EarlyStart | None] = [None]


def start_early(argv: list[str]) -> None:
    """For ``coach play``: start its kept opening on the device now, if it has one. Never raises.

    Anything that goes wrong here (no opening, no device, no simpleaudio) leaves
    the command to open the device the usual way, and to report what is wrong.
    """
    try:
        if len(argv) < 1 or argv[0] != "play" or not sys.platform.startswith("linux"):
            return  # elsewhere a stream's pages are not given back (coach.playback.MAX_STREAM_S)
        key = command_key(argv[1:])
        _command[0] = key
        if key is None:
            return
        opening = load(key)
        if opening is None or opening.misses >= MAX_MISSES:
            return
        frame = 2 * CHANNELS
        size = int(STREAM_S * RATE_HZ) * frame
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # as coach.playback's
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            buffer.madvise(mmap.MADV_NOHUGEPAGE)
        at = int(round(PREROLL_S * RATE_HZ)) * frame
        buffer[at : at + len(opening.samples)] = opening.samples
        import simpleaudio

        with quiet_stderr():
            play = simpleaudio.play_buffer(memoryview(buffer), CHANNELS, 2, RATE_HZ)
        _early[0] = EarlyStart(opening, buffer, play, time.monotonic())
    except Exception:  # noqa: BLE001 - a head start only: the command does it properly
        _early[0] = None


def command() -> str | None:
    """The key of this command line (None when not run as ``coach play`` or not started early by design)."""
    return _command[0]


def take() -> EarlyStart | None:
    """The early start, for the command to carry on with (once)."""
    early = _early[0]
    if early is None or early.taken:
        return None
    early.taken = True
    return early


@atexit.register
def _stop_untaken() -> None:
    """An early start the command never took (it failed before playing): silence it before Python ends."""
    early = _early[0]
    if early is not None and not early.taken:
        with contextlib.suppress(Exception):
            early.play.stop()
            deadline = time.monotonic() + 1.0
            while early.play.is_playing() and time.monotonic() < deadline:
                time.sleep(0.01)


@contextlib.contextmanager
def quiet_stderr():  # type: ignore[no-untyped-def]
    """File descriptor 2 to /dev/null meanwhile: alsa-lib's "ALSA lib ..." lines go straight to it while a
    device opens (``coach.playback`` uses this too; here, before it can be imported)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
