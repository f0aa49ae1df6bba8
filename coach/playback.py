"""The speaker: the only module that talks to simpleaudio (imported only when playing).

simpleaudio opens a new ALSA/CoreAudio/WinMM stream for every ``play_buffer``
call, with a fixed ~100 ms device buffer, and drains and closes it at the end.
Chaining one ``play_buffer`` per block therefore leaves a gap at every joint
(~50 ms measured with ``wait_done``), lets the output go idle (Bluetooth then
clips the next syllable) and, on a device that cannot mix, fails with "Device
or resource busy" if two overlap.

What it does give us: it reads the caller's buffer *lazily*, in ~100 ms steps,
through the buffer protocol, without copying it first (true of the ALSA, macOS
and Windows back ends). So a ``Stream`` here is one ``play_buffer`` over a
large, zero-initialised memory map that the player fills block by block a
little ahead of the device: one continuous stream, sample-exact, with the
output never idling between cues. Pages behind the device are handed back to
the system so memory stays small however long the stream is; unwritten pages
read as digital silence.
"""

from __future__ import annotations

import atexit
import contextlib
import mmap
import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from coach.errors import AudioDeviceError

NO_DEVICE = "no audio output device found"
EXPORT_HINT = "connect speakers or headphones, or write the session to a file with `coach export`"

KEEP_BEHIND_S = 30.0
"""Audio kept in memory behind the newest block written; older pages are released."""

LINUX = sys.platform.startswith("linux")
MAX_STREAM_S = 1800.0 if LINUX else 600.0
"""Longest stream to ask the player for. Only Linux gives written pages back (MADV_DONTNEED
zeroes private pages there, not on macOS), so elsewhere a stream's memory grows to its length."""

EXIT_WAIT_S = 2.0
"""At exit, how long to wait for stopped streams to drain (see ``_wait_for_playback_threads``)."""

_live: list[Any] = []  # play objects that may still have a playback thread


@atexit.register
def _wait_for_playback_threads() -> None:
    """Let simpleaudio's playback threads end before the interpreter does.

    A stopped stream still drains the device's buffer (~0.1 s) on its own C
    thread, which then calls back into Python to release our buffer; if the
    interpreter is already finalizing, that crashes the process (segfault after
    Ctrl-C). Waiting here, before finalization, avoids it.
    """
    deadline = time.monotonic() + EXIT_WAIT_S
    while any(play.is_playing() for play in _live) and time.monotonic() < deadline:
        time.sleep(0.01)


class DeviceBusy(AudioDeviceError):
    """The output device is held by another stream (a device that cannot mix)."""


class Stream(Protocol):
    """One continuous run of audio on the device, ``frames`` long, written ahead of playing."""

    frames: int

    def write(self, offset_frames: int, block: np.ndarray) -> None:
        """Place ``block`` (float32, shape (n, channels)) at ``offset_frames``; before it is heard."""

    def start(self, skip_frames: int = 0) -> None:
        """Start playing now from ``skip_frames``; raises AudioDeviceError (DeviceBusy) on failure."""

    def stop(self) -> None:
        """Silence it now (within the ~0.1 s the device already holds)."""

    def is_playing(self) -> bool:
        """True from start until the device has played the end (or the stream stopped or failed)."""


class AudioSink(Protocol):
    """An output that plays streams."""

    sample_rate_hz: int
    channels: int

    def open_stream(self, frames: int) -> Stream:
        """A new silent stream of ``frames`` frames, not started."""


def to_int16(block: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16, the only place audio leaves float32."""
    return np.round(np.clip(block, -1.0, 1.0) * 32767.0).astype(np.int16)


class SimpleaudioSink:
    """The computer's default audio output, through simpleaudio."""

    def __init__(self, sample_rate_hz: int = 44100, channels: int = 2) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self.max_stream_s = MAX_STREAM_S

    def open_stream(self, frames: int) -> SimpleaudioStream:
        return SimpleaudioStream(frames, self.sample_rate_hz, self.channels)

    def hold(self, max_s: float = 120.0) -> SimpleaudioStream:
        """Open the device now and keep it playing silence (for at most ``max_s``); stop it when done.

        Raises AudioDeviceError at once rather than after the session is prepared,
        and keeps the output awake meanwhile, so a Bluetooth headset is ready when
        the first cue comes. Untouched pages of the stream cost no memory.
        """
        stream = self.open_stream(int(max_s * self.sample_rate_hz))
        stream.start()
        return stream


class SimpleaudioStream:
    """One ``play_buffer`` over a lazily filled memory map (see the module docstring)."""

    def __init__(self, frames: int, sample_rate_hz: int, channels: int, *, buffer: mmap.mmap | None = None) -> None:
        self.frames = max(1, int(frames))
        self.sample_rate_hz = sample_rate_hz
        self.channels = channels
        self._frame_bytes = 2 * channels
        size = self.frames * self._frame_bytes
        if buffer is not None:
            self._map = buffer  # made the same way, by coach.opening
        elif not LINUX:
            self._map = mmap.mmap(-1, size)
        else:
            # Private anonymous pages: untouched ones cost nothing and read as zeros;
            # MADV_DONTNEED returns written ones to the system (and, on Linux, they read as zeros again).
            self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            if hasattr(mmap, "MADV_NOHUGEPAGE"):
                # Page by page: what the device has read is then known to a page (see untouched_from).
                self._map.madvise(mmap.MADV_NOHUGEPAGE)
        self._samples = np.frombuffer(self._map, dtype=np.int16).reshape(self.frames, channels)
        self._released_to = 0  # bytes before this offset have been handed back
        self._written_from: int | None = None
        self._written_to = 0
        self._play: Any = None
        self.started_s: float | None = None
        """time.monotonic() when the device started on this stream."""

    @classmethod
    def playing(cls, buffer: mmap.mmap, play: Any, started_s: float, sample_rate_hz: int,
                channels: int) -> SimpleaudioStream:
        """The stream ``coach.opening`` started over ``buffer`` before Coach was loaded, to carry on in."""
        stream = cls(len(buffer) // (2 * channels), sample_rate_hz, channels, buffer=buffer)
        stream._play, stream.started_s = play, started_s
        _mute_alsa_lib()  # as start() does: alsa-lib's lines from the playback thread stay off the terminal
        _live.append(play)
        return stream

    def write(self, offset_frames: int, block: np.ndarray) -> None:
        end = min(self.frames, offset_frames + len(block))
        if end <= offset_frames:
            return
        self._samples[offset_frames:end] = to_int16(block[: end - offset_frames])
        if self._written_from is None:
            self._written_from = offset_frames
        self._written_to = max(self._written_to, end)
        self._release_before((offset_frames - int(KEEP_BEHIND_S * self.sample_rate_hz)) * self._frame_bytes)

    def start(self, skip_frames: int = 0) -> None:
        sa_module, sa_error = _simpleaudio()
        view = memoryview(self._map)[max(0, skip_frames) * self._frame_bytes :]
        try:
            with _alsa_quiet():
                self._play = sa_module.play_buffer(view, self.channels, 2, self.sample_rate_hz)
        except sa_error as exc:
            raise device_error(exc) from None
        self.started_s = time.monotonic()
        _live[:] = [play for play in _live if play.is_playing()]
        _live.append(self._play)

    def stop(self) -> None:
        if self._play is not None:
            self._play.stop()
        # What simpleaudio has not yet copied to the device becomes silence at once;
        # stop() alone lets up to ~0.2 s more through.
        self._silence_all()

    def is_playing(self) -> bool:
        return self._play is not None and self._play.is_playing()

    def wait_done(self, timeout_s: float) -> None:
        """Wait until the device has let go of this stream (after ``stop()``: ~0.1 s), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.is_playing() and time.monotonic() < deadline:
            time.sleep(0.005)

    def untouched_from(self, frame: int = 0) -> int | None:
        """The first frame at or after ``frame`` in a page neither the device nor ``write`` has touched yet.

        simpleaudio copies the buffer to the device sequentially, a device buffer
        (~0.1 s) ahead of what is heard, and reading an untouched page of a private
        anonymous map makes it resident; mincore(2) tells which pages are. So on a
        stream nothing was written into past ``frame``, this is how far the device
        has taken it (to a page, 1024 stereo frames). None where that cannot be
        known (not Linux, mincore unavailable).
        """
        if not LINUX:
            return None
        page = mmap.PAGESIZE
        first = max(0, frame) * self._frame_bytes // page
        pages = (len(self._map) + page - 1) // page
        step = 4096  # pages asked at a time: 16 MB, ~90 s of stereo
        while first < pages:
            count = min(step, pages - first)
            resident = _mincore(self._samples.ctypes.data + first * page, count * page, count)
            if resident is None:
                return None
            free = np.flatnonzero((resident & 1) == 0)
            if len(free):
                return min(self.frames, (first + int(free[0])) * page // self._frame_bytes)
            first += count
        return self.frames

    def _release_before(self, byte_offset: int) -> None:
        page = mmap.PAGESIZE
        end = (byte_offset // page) * page
        if end > self._released_to and LINUX:
            self._map.madvise(mmap.MADV_DONTNEED, self._released_to, end - self._released_to)
            self._released_to = end

    def _silence_all(self) -> None:
        if LINUX:
            self._map.madvise(mmap.MADV_DONTNEED, 0, len(self._map))
        elif self._written_from is not None:
            self._samples[self._written_from : self._written_to] = 0


_libc: Any = None


def _mincore(address: int, length: int, pages: int) -> np.ndarray | None:
    """mincore(2) over ``pages`` pages at ``address``: one byte a page, bit 0 set if resident; None if unavailable."""
    global _libc
    import ctypes

    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
            _libc.mincore.restype = ctypes.c_int
        except (OSError, AttributeError):
            _libc = False
    if _libc is False:
        return None
    vec = np.zeros(pages, dtype=np.uint8)
    if _libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_void_p(vec.ctypes.data)) != 0:
        return None
    return vec


_alsa_handler: Any = None


def _mute_alsa_lib() -> None:
    """Route alsa-lib's error printouts ("ALSA lib pcm_file.c: write failed") to a no-op.

    alsa-lib prints them on stderr from simpleaudio's playback thread too, so
    redirecting stderr around our own calls cannot catch them all; the errors
    that matter reach us as exceptions (or as a stream that stops early) and
    are reported once, clearly. Best effort: without libasound nothing changes.
    """
    global _alsa_handler
    if _alsa_handler is not None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("asound") or "libasound.so.2"
        asound = ctypes.CDLL(name)
        # The C handler is variadic; the extra arguments are simply not read.
        handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                        ctypes.c_char_p)
        _alsa_handler = handler_type(lambda *args: None)
        asound.snd_lib_error_set_handler(_alsa_handler)
    except (OSError, AttributeError):
        _alsa_handler = False


@contextlib.contextmanager
def _alsa_quiet() -> Iterator[None]:
    """Keep alsa-lib's own "ALSA lib ... cannot find card" lines off the user's terminal.

    They go straight to file descriptor 2 while the device is opened; the error
    that matters comes back as an exception and is reported once, clearly.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    from coach.opening import quiet_stderr

    _mute_alsa_lib()
    with quiet_stderr():
        yield


def _simpleaudio() -> tuple[Any, type[BaseException]]:
    """simpleaudio and its error class (not exported at its top level)."""
    try:
        import simpleaudio
        from simpleaudio import _simpleaudio as native
    except ImportError as exc:  # the C extension failed to build or load
        raise AudioDeviceError(
            f"{NO_DEVICE}: the simpleaudio module cannot be loaded ({exc})",
            hint="reinstall coach (simpleaudio needs a C compiler and libasound2-dev on Linux), or use `coach export`",
        ) from None
    return simpleaudio, native.SimpleaudioError


def device_error(exc: BaseException) -> AudioDeviceError:
    """A clear AudioDeviceError for simpleaudio's 'Error opening PCM device. -- CODE: -2 -- MSG: ...'."""
    text = str(exc)
    detail = text.split("MSG:", 1)[1].strip() if "MSG:" in text else text
    if "busy" in text.lower():
        return DeviceBusy(f"the audio output device is busy ({detail})",
                          hint="close the program using it, or use `coach export`")
    return AudioDeviceError(f"{NO_DEVICE} ({detail})" if detail else NO_DEVICE, hint=EXPORT_HINT)
