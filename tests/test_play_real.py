"""Real playback through simpleaudio into an ALSA capture device (no sound card needed).

Each test runs the player in a subprocess whose HOME holds an ``.asoundrc``
sending the default device to ``scripts/alsa-pacer``, which consumes the audio
in real time and logs when each byte was taken (see shared/notes/pitfalls.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
PACER = REPO / "scripts" / "alsa-pacer"
RATE = 44100
BYTES_PER_S = RATE * 2 * 2

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the ALSA capture device is Linux only")


@dataclass
class Captured:
    """One segment the pacer received (a burst with no underrun): int16 frames and when each read happened."""

    frames: np.ndarray  # (n, 2) int16
    reads: np.ndarray  # rows: monotonic time, byte offset, byte count

    @property
    def first_s(self) -> float:
        return float(self.reads[0, 0])

    def time_of_frame(self, frame: int) -> float:
        """When the pacer took ``frame`` (interpolated inside a read)."""
        offset = frame * 4
        i = int(np.searchsorted(self.reads[:, 1], offset, side="right") - 1)
        return float(self.reads[i, 0] + (offset - self.reads[i, 1]) / BYTES_PER_S)


@dataclass
class CaptureDevice:
    """A HOME whose default ALSA device is scripts/alsa-pacer behind a FIFO."""

    home: Path
    prefix: Path
    process: subprocess.Popen

    def captures(self) -> list[Captured]:
        self.stop()
        log = Path(str(self.prefix) + ".log")
        rows = np.loadtxt(log, ndmin=2) if log.stat().st_size else np.zeros((0, 4))
        out = []
        for seg in range(int(rows[:, 1].max()) + 1 if len(rows) else 0):
            data = np.frombuffer(Path(f"{self.prefix}.{seg}.raw").read_bytes(), dtype="<i2")
            reads = rows[rows[:, 1] == seg][:, [0, 2, 3]]
            out.append(Captured(data[: len(data) // 2 * 2].reshape(-1, 2), reads))
        return out

    def stop(self) -> None:
        """Stop the pacer once it has taken everything (its log stops growing)."""
        log = Path(str(self.prefix) + ".log")
        size, quiet_since = -1, time.monotonic()
        while self.process.poll() is None and time.monotonic() - quiet_since < 0.15:
            time.sleep(0.02)
            now_size = log.stat().st_size
            if now_size != size:
                size, quiet_since = now_size, time.monotonic()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)


@pytest.fixture
def device(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    folder = tmp_path / "capture"
    folder.mkdir()
    fifo = folder / "dev.fifo"
    (home / ".asoundrc").write_text(textwrap.dedent(f"""\
        pcm.!default {{
          type file
          slave.pcm "null"
          file "{fifo}"
          format "raw"
        }}
        """))
    process = subprocess.Popen([sys.executable, str(PACER), str(fifo), str(BYTES_PER_S), str(folder / "out")],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    dev = CaptureDevice(home, folder / "out", process)
    yield dev
    dev.stop()


def run_python(code: str, home: Path, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def tone(freq_hz: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    mono = (amp * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.repeat(mono[:, None], 2, axis=1)


def test_a_stream_written_while_it_plays_reaches_the_device_whole_and_in_one_piece(device):
    result = run_python(f"""
        import time, numpy as np
        from coach.playback import SimpleaudioSink
        rate = {RATE}
        def tone(f, s):
            t = np.arange(int(s * rate)) / rate
            return np.repeat((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)[:, None], 2, axis=1)
        sink = SimpleaudioSink(rate, 2)
        stream = sink.open_stream(int(2.0 * rate))
        stream.write(0, tone(440, 0.5))
        t0 = time.monotonic()
        stream.start()
        for k, f in enumerate((660, 880, 1100), start=1):
            time.sleep(max(0, t0 + 0.5 * k - 0.25 - time.monotonic()))  # each block 0.25 s before it is due
            stream.write(int(0.5 * k * rate), tone(f, 0.5))
        while stream.is_playing():
            time.sleep(0.01)
        print(time.monotonic() - t0)
    """, device.home)
    assert result.returncode == 0, result.stderr
    (cap,) = device.captures()  # one segment: no gap, no underrun
    from coach.playback import to_int16

    expected = np.concatenate([to_int16(tone(f, 0.5)) for f in (440, 660, 880, 1100)])
    assert cap.frames.shape == expected.shape
    assert np.array_equal(cap.frames, expected)
    # Taken at the device's pace, with no gap: the last byte 2 s after the first.
    assert abs(cap.time_of_frame(len(expected) - 1) - cap.first_s - 2.0) < 0.02


def test_stop_silences_the_device_at_once(device):
    # simpleaudio cannot drop what the device holds (~0.1 s); zeroing what it has not
    # yet copied is what we control. Measured here 170-200 ms (270 ms without the
    # zeroing): this capture chain buffers a little more than a sound card does.
    result = run_python(f"""
        import time
        import numpy as np
        from coach.playback import SimpleaudioSink
        rate = {RATE}
        sink = SimpleaudioSink(rate, 2)
        stream = sink.open_stream(3 * rate)
        t = np.arange(3 * rate) / rate
        stream.write(0, np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], 2, axis=1))
        stream.start()
        time.sleep(1.0)
        print(time.monotonic())
        stream.stop()
        time.sleep(0.5)
    """, device.home)
    assert result.returncode == 0, result.stderr
    stopped_s = float(result.stdout.split()[0])
    (cap,) = device.captures()
    loud = np.flatnonzero(np.abs(cap.frames[:, 0]) > 0)
    last_sound_s = cap.time_of_frame(int(loud[-1]))
    assert last_sound_s - stopped_s < 0.25


def test_no_device_is_a_clear_error_that_suggests_export(tmp_path):
    home = tmp_path / "empty-home"
    home.mkdir()
    result = run_python("""
        from coach.errors import AudioDeviceError, ExitStatus
        from coach.playback import SimpleaudioSink
        stream = SimpleaudioSink().open_stream(44100)
        try:
            stream.start()
        except AudioDeviceError as exc:
            assert exc.exit_status == ExitStatus.AUDIO_DEVICE
            print(exc.message)
            print(exc.hint)
    """, home)
    assert result.returncode == 0, result.stderr
    message, hint = result.stdout.splitlines()
    assert message.startswith("no audio output device found")
    assert "coach export" in hint
