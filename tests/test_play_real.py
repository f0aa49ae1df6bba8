"""Real playback through simpleaudio into an ALSA capture device (no sound card needed).

Each test runs the player in a subprocess whose HOME holds an ``.asoundrc``
sending the default device to ``scripts/alsa-pacer``, which consumes the audio
in real time and logs when each byte was taken (see shared/notes/pitfalls.md).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
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

pytestmark = [pytest.mark.slow,  # plays sessions in real time into the pacing capture device
              pytest.mark.skipif(sys.platform != "linux", reason="the ALSA capture device is Linux only")]


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


def near(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, every sample within 1 LSB.

    Where the master's limiter works, a stream that starts mid-session (after a pause or a
    skip) can round a sample the other way than a render from the start: play equals export
    to within 1 LSB, exactly elsewhere.
    """
    return a.shape == b.shape and (len(a) == 0 or int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) <= 1)


def find_near(heard: np.ndarray, needle: np.ndarray, start: int = 0) -> list[int]:
    """Every frame of ``heard`` from ``start`` where ``needle`` begins, each sample within 1 LSB."""
    h = heard[start:].astype(np.int32)
    n = needle.astype(np.int32)
    if len(n) == 0 or len(h) < len(n):
        return []
    k = int(np.argmax(np.abs(n).max(axis=1)))  # anchor on the loudest frame: few places match it
    span = h[k : len(h) - len(n) + k + 1]
    candidates = np.flatnonzero(np.all(np.abs(span - n[k]) <= 1, axis=1))
    return [start + int(c) for c in candidates if np.abs(h[c : c + len(n)] - n).max() <= 1]


def agreement(heard: np.ndarray, expected: np.ndarray) -> int:
    """How many frames from the start of both agree (within 1 LSB)."""
    n = min(len(heard), len(expected))
    differ = np.flatnonzero(np.any(np.abs(heard[:n].astype(np.int32) - expected[:n].astype(np.int32)) > 1, axis=1))
    return int(differ[0]) if len(differ) else n


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
            # Each block while the one before plays, as early as that allows (0.45 s before it is
            # due): a writer woken late on a busy machine still beats the device.
            time.sleep(max(0, t0 + 0.5 * (k - 1) + 0.05 - time.monotonic()))
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
    # Taken at the device's pace, with no gap (a gap would be a whole block): the last byte 2 s
    # after the first, within what a busy machine adds to the pacer's clock readings.
    assert abs(cap.time_of_frame(len(expected) - 1) - cap.first_s - 2.0) < 0.1


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


# -- coach play, end to end -----------------------------------------------------------

SCRIPT = {
    "routine": "short", "title": "Short", "level": "standard", "duration_s": 6.0,
    "voice": {"engine": "pyttsx3", "voice": "en-us", "rate_wpm": 170, "volume": 1.0},
    "chapters": [{"start_s": 0.0, "title": "Introduction"}, {"start_s": 3.0, "title": "Plank", "exercise": "plank"}],
    "cues": [
        {"start_s": 0.0, "end_s": 1.2, "kind": "speech", "text": "Welcome to a short test.", "phase": "intro"},
        {"start_s": 3.0, "end_s": 3.22, "kind": "sound", "sound": "start", "phase": "work",
         "exercise": "plank", "set": 1},
        {"start_s": 3.5, "end_s": 4.5, "kind": "speech", "text": "Hold it.", "phase": "work",
         "exercise": "plank", "set": 1},
        {"start_s": 5.0, "end_s": 5.58, "kind": "sound", "sound": "finish", "phase": "outro"},
    ],
}

TINY = """\
name: tiny
title: Tiny
description: A tiny test.
voice: {engine: pyttsx3}
exercises:
  - name: Plank
    steps:
      - Hold a plank.
    dose:
      hold_s: 3
      setup_s: 0
      rest_after_s: 0
"""

PREROLL = int(0.4 * RATE)
AWAKE_PREROLL = int(0.1 * RATE)
"""`coach play` keeps the device playing silence while it prepares, so its first stream has a short preroll."""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clip-cache")


@pytest.fixture
def env(device, cache_dir, tmp_path, monkeypatch):
    """Environment of a `coach play` subprocess: the capture HOME, a shared clip cache, its own history."""
    monkeypatch.setenv("COACH_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path / "data"))
    return {**os.environ, "HOME": str(device.home), "COACH_CACHE_DIR": str(cache_dir),
            "COACH_DATA_DIR": str(tmp_path / "data")}


def coach(*args: str, env: dict, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coach", *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def expected_audio(ref: str, start_s: float = 0.0) -> np.ndarray:
    """What `coach play ref` should send to the device after its preroll: the same plan, rendered here."""
    from coach.session import prepare_session
    from coach.playback import to_int16

    session = prepare_session(ref)
    try:
        blocks = session.master().blocks(start_s, None, 0.5)
        return np.concatenate([to_int16(b) for b in blocks])
    finally:
        session.close()


def find_session(device: CaptureDevice, expected: np.ndarray) -> tuple[Captured, int]:
    """The segment holding the session's audio and the frame where it begins.

    Before it the device got only silence: what `coach play` plays while it
    prepares the session, then the preroll.
    """
    caps = device.captures()
    # On a busy machine the pacer may find the FIFO empty for a moment and start a new segment
    # (the stream itself goes on): the segments of one run, joined, are what the player wrote.
    joined = Captured(np.concatenate([c.frames for c in caps]), np.concatenate([c.reads for c in caps])) \
        if len(caps) > 1 else (caps[0] if caps else None)
    for cap in ([joined] if joined is not None else []):
        found = find_near(cap.frames, expected[: RATE // 10])
        if found:
            return cap, found[0]
    raise AssertionError("the session's audio never reached the device")


def heard_frames(device: CaptureDevice) -> np.ndarray:
    """Everything the pacer has taken so far (while it runs), segments joined."""
    parts = sorted(device.prefix.parent.glob(device.prefix.name + ".*.raw"), key=lambda p: int(p.name.split(".")[1]))
    data = b"".join(p.read_bytes() for p in parts)
    return np.frombuffer(data[: len(data) // 4 * 4], dtype="<i2").reshape(-1, 2)


def wait_for_sound(device: CaptureDevice, seconds: float, timeout_s: float = 30.0) -> None:
    """Wait until the device has taken ``seconds`` of audio since the first sound."""
    deadline = time.monotonic() + timeout_s
    while True:
        frames = heard_frames(device)
        loud = np.flatnonzero(np.any(frames != 0, axis=1))
        if len(loud) and len(frames) - loud[0] >= seconds * RATE:
            return
        assert time.monotonic() < deadline, f"the device never got {seconds} s of sound"
        time.sleep(0.02)


def history(env: dict) -> list[dict]:
    result = coach("history", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_play_sends_exactly_the_sessions_audio_in_order_and_records_it(device, env, tmp_path):
    script = tmp_path / "short.json"
    script.write_text(json.dumps(SCRIPT))
    result = coach("play", str(script), env=env)
    assert result.returncode == 0, result.stderr
    assert "session finished" in result.stderr and "Traceback" not in result.stderr
    expected = expected_audio(str(script))
    cap, at = find_session(device, expected)
    assert at >= AWAKE_PREROLL and not np.any(cap.frames[:at])  # silence until the session
    assert len(cap.frames) == at + len(expected)  # then the session, whole, in one piece
    assert near(cap.frames[at:], expected)
    (rec,) = history(env)
    assert rec["finished"] and rec["outcome"] == "finished" and rec["source"] == str(script)


def test_without_a_device_play_says_so_suggests_export_and_exits_6(tmp_path, cache_dir):
    home = tmp_path / "no-sound-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "COACH_CACHE_DIR": str(cache_dir), "COACH_DATA_DIR": str(tmp_path)}
    result = coach("play", env=env, timeout_s=30)
    assert result.returncode == 6
    assert result.stderr.startswith("coach: error: no audio output device found")
    assert "coach export" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_stops_the_sound_says_where_and_how_to_resume_and_records_it(device, env, tmp_path):
    routine = tmp_path / "tiny.yaml"
    routine.write_text(TINY)
    expected = expected_audio(str(routine))
    proc = subprocess.Popen([sys.executable, "-m", "coach", "play", str(routine)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_sound(device, 3.0)
    sent_s = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("coach: error: interrupted at 0:0")
    assert last.endswith(f"(resume with: coach play {routine} --resume)")
    cap, at = find_session(device, expected)
    loud = np.flatnonzero(np.any(cap.frames != 0, axis=1))
    assert cap.time_of_frame(int(loud[-1])) - sent_s < 0.25  # silent within a quarter second
    heard = cap.frames[at:]
    before_signal = int(np.searchsorted(cap.reads[:, 0], sent_s))  # reads taken before SIGINT was sent
    cut = int(cap.reads[before_signal - 1, 1] // 4) - at
    assert cut > 2 * RATE
    assert near(heard[:cut], expected[:cut])
    (rec,) = history(env)
    assert rec["outcome"] == "interrupted" and not rec["finished"] and rec["ended_at"]
    played_s = sent_s - cap.time_of_frame(at)
    assert abs(rec["position_s"] - played_s) < 0.3


def test_resume_carries_on_from_the_start_of_the_step_where_it_stopped(device, env, tmp_path):
    script = tmp_path / "short.json"
    script.write_text(json.dumps(SCRIPT))
    from coach.history import History

    with History(tmp_path / "data" / "history.sqlite3") as h:  # a session killed at 4.2 s, inside "Plank"
        sid = h.start(routine="short", source=str(script), level="standard", settings={}, duration_s=6.0)
        h.update(sid, position_s=4.2, step="Plank")
    result = coach("play", "--resume", env=env)
    assert result.returncode == 0, result.stderr
    assert "starting at 0:03 (Plank)" in result.stderr
    expected = expected_audio(str(script), start_s=3.0)
    cap, at = find_session(device, expected)
    assert not np.any(cap.frames[:at]) and near(cap.frames[at:], expected)
    (rec,) = history(env)
    assert rec["id"] == sid and rec["finished"]


KEYS_SCRIPT = {
    "routine": "keys", "title": "Keys", "level": "standard", "duration_s": 10.0,
    "voice": {"engine": "pyttsx3", "voice": "en-us", "rate_wpm": 170, "volume": 1.0},
    "chapters": [{"start_s": 0.0, "title": "Introduction"},
                 {"start_s": 3.0, "title": "Plank", "exercise": "plank"},
                 {"start_s": 6.0, "title": "Side Plank", "exercise": "side-plank"},
                 {"start_s": 9.0, "title": "Finish"}],
    "cues": [
        {"start_s": 0.0, "end_s": 2.5, "kind": "speech", "text": "Welcome to the test of the keys.", "phase": "intro"},
        {"start_s": 3.0, "end_s": 3.22, "kind": "sound", "sound": "start", "phase": "work", "exercise": "plank"},
        {"start_s": 3.5, "end_s": 4.5, "kind": "speech", "text": "Hold it.", "phase": "work", "exercise": "plank"},
        {"start_s": 6.0, "end_s": 6.22, "kind": "sound", "sound": "start", "phase": "work", "exercise": "side-plank"},
        {"start_s": 6.5, "end_s": 7.5, "kind": "speech", "text": "Side plank now.", "phase": "work",
         "exercise": "side-plank"},
        {"start_s": 9.0, "end_s": 9.58, "kind": "sound", "sound": "finish", "phase": "outro"},
    ],
}


def taken_s(device: CaptureDevice) -> float:
    """Seconds of audio the pacer has taken so far, over all segments."""
    log = Path(str(device.prefix) + ".log")
    rows = np.loadtxt(log, ndmin=2) if log.stat().st_size else np.zeros((0, 4))
    return float(rows[:, 3].sum()) / BYTES_PER_S if len(rows) else 0.0


def wait_for_device(device: CaptureDevice, seconds: float, timeout_s: float = 30.0) -> None:
    """Wait until the pacer has taken ``seconds`` of audio in all."""
    deadline = time.monotonic() + timeout_s
    while taken_s(device) < seconds:
        assert time.monotonic() < deadline, f"the device never got {seconds} s of audio"
        time.sleep(0.02)


def locate(heard: np.ndarray, piece: np.ndarray, start: int) -> tuple[int, int]:
    """Where the first 0.1 s of ``piece`` occurs in ``heard`` after ``start``, and how long they agree from there."""
    found = find_near(heard, piece[: RATE // 10], start)
    assert found, "piece not found"
    at = found[0]
    return at, agreement(heard[at:], piece)


def test_keys_pause_resume_skip_and_quit_through_a_terminal(device, env, tmp_path):
    import pexpect

    from coach.playback import to_int16

    script = tmp_path / "keys.json"
    script.write_text(json.dumps(KEYS_SCRIPT))
    python = shlex.quote(sys.executable)
    # stty after coach shows whether the terminal was given back as it was.
    child = pexpect.spawn("/bin/sh", ["-c", f"{python} -m coach play {shlex.quote(str(script))}; stty -a"],
                          env=env, timeout=30, encoding="utf-8", dimensions=(24, 200))
    try:
        child.expect("keys: space pause/resume")
        wait_for_sound(device, 0.8)  # 0.8 s into "Welcome ..."
        child.send(" ")
        child.expect("paused · ")
        time.sleep(1.5)  # "Paused." is said
        child.send(" ")
        child.expect("resume · ")
        wait_for_device(device, taken_s(device) + 0.4 + 0.5)
        child.send("\x1b[C")  # right arrow: next step
        child.expect("next · ")
        wait_for_device(device, taken_s(device) + 0.4 + 0.8)
        child.send("q")
        child.expect("coach: stopped at 0:03 \\(Plank\\); resume with: coach play .* --resume")
        child.expect(pexpect.EOF)
        stty = child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 0 or child.status == 0
    assert re.search(r"(?<!-)icanon", stty) and re.search(r"(?<![-\w])echo\b", stty), stty

    heard = np.concatenate([c.frames for c in device.captures()])
    expected = expected_audio(str(script))
    # "Paused." is mastered like the session (its gain, its limiter).
    from coach.session import prepare_session

    session = prepare_session(str(script))
    try:
        said = to_int16(np.repeat(session.master().one_off(session.voice.clip("Paused."))[:, None], 2, axis=1))
    finally:
        session.close()
    # In order: the start until the pause, "Paused.", the interrupted sentence again from
    # its start (resume), then the Plank at 3.0 s (next).
    at, run = locate(heard, expected, 0)
    assert not np.any(heard[:at]) and run > int(0.6 * RATE)
    at, run = locate(heard, said, at + run)
    assert run == len(said)
    at, run = locate(heard, expected, at + run)
    assert run > int(0.3 * RATE)
    at, run = locate(heard, expected[3 * RATE :], at + run)
    assert run > int(0.6 * RATE)
    (rec,) = history(env)
    assert rec["outcome"] == "quit" and rec["step"] == "Plank" and 3.0 <= rec["position_s"] < 4.5


def test_a_device_that_dies_mid_session_is_reported_with_the_resume_command(device, env, tmp_path):
    script = tmp_path / "short.json"
    script.write_text(json.dumps(SCRIPT))
    proc = subprocess.Popen([sys.executable, "-m", "coach", "play", str(script), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_sound(device, 1.5)
    device.process.kill()  # the "sound card" goes away
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 6, err
    (line,) = err.strip().splitlines()  # no ALSA chatter, no traceback
    assert line.startswith("coach: error: the audio output device stopped playing at 0:01 (Introduction)")
    assert line.endswith(f"resume with: coach play {script} --resume)")
    (rec,) = history(env)
    assert rec["outcome"] == "device-error" and 1.0 < rec["position_s"] < 2.5


def test_a_long_session_cut_into_streams_keeps_every_cue_on_time(device, tmp_path):
    timeline = {
        "routine": "seams", "title": "Seams", "level": "standard", "duration_s": 8.5, "chapters": [],
        "voice": {"engine": "estimate"},
        "cues": [{"start_s": 1.5 * i, "end_s": 1.5 * i + 0.6, "kind": "speech", "text": f"cue {i}", "phase": "work"}
                 for i in range(6)],
    }
    (tmp_path / "timeline.json").write_text(json.dumps(timeline))
    tones = f"""
        import numpy as np
        from coach.audio.clip import Clip

        def clip_for(cue):
            t = np.arange(int(round(cue.duration_s * {RATE}))) / {RATE}
            return Clip((0.3 * np.sin(2 * np.pi * (300 + 100 * cue.start_s) * t)).astype(np.float32), {RATE})
    """
    result = run_python(tones + f"""
        import json
        from coach.audio.master import Master
        from coach.player import MonotonicClock, Player, PlayerOptions, QueueInbox
        from coach.playback import SimpleaudioSink
        from coach.timeline import Timeline

        tl = Timeline.from_dict(json.load(open({str(tmp_path / "timeline.json")!r})))
        clock = MonotonicClock()
        player = Player(tl, Master(tl, clip_for), SimpleaudioSink(), clock, QueueInbox(clock),
                        options=PlayerOptions(max_stream_s=2.5))
        out = player.run()
        print(out.streams, out.late_blocks, out.finished)
    """, device.home)
    assert result.returncode == 0, result.stderr
    streams, late, finished = result.stdout.split()
    assert int(streams) >= 3 and late == "0" and finished == "True"

    from coach.audio.master import Master
    from coach.playback import to_int16
    from coach.timeline import Timeline

    namespace: dict = {}
    exec(textwrap.dedent(tones), namespace)
    tl = Timeline.from_dict(timeline)
    expected = np.concatenate([to_int16(b) for b in Master(tl, namespace["clip_for"]).blocks(0.0, None, 0.5)])
    segments = device.captures()
    assert len(segments) >= int(streams)  # each seam is a silent gap between two streams
    t0 = segments[0].first_s + 0.4
    for cue in tl.cues:
        first = int(round(cue.start_s * RATE))
        needle = expected[first : first + RATE // 20].tobytes()
        found = [(seg, seg.frames.tobytes().find(needle)) for seg in segments]
        seg, at = next((s, a) for s, a in found if a >= 0 and a % 4 == 0)
        heard_s = seg.time_of_frame(at // 4)
        assert abs(heard_s - (t0 + cue.start_s)) < 0.03, (cue.start_s, heard_s - t0)


def test_no_cache_plays_without_writing_the_clip_cache(device, env, tmp_path):
    script = tmp_path / "short.json"
    script.write_text(json.dumps(SCRIPT))
    fresh = tmp_path / "fresh-cache"
    result = coach("play", str(script), "--no-cache", "--quiet", env={**env, "COACH_CACHE_DIR": str(fresh)})
    assert result.returncode == 0, result.stderr
    assert any(np.any(cap.frames) for cap in device.captures())  # it spoke
    assert not fresh.exists() or not any(p.is_file() for p in fresh.rglob("*"))


@pytest.mark.parametrize("linux", [True, False])
def test_stop_turns_everything_not_yet_played_into_silence_on_every_platform(monkeypatch, linux):
    import coach.playback as playback

    monkeypatch.setattr(playback, "LINUX", linux)  # off Linux, pages are zeroed by hand
    stream = playback.SimpleaudioSink(RATE, 2).open_stream(3 * RATE)
    stream.write(RATE, tone(440, 1.0))
    assert np.any(stream._samples)
    stream.stop()  # never started: nothing to tell simpleaudio, the memory still goes silent
    assert not np.any(stream._samples)


def test_a_cold_cache_starts_with_the_intro_and_a_warm_one_plans_everything_first(tmp_path, monkeypatch):
    from coach.session import prepare_session

    monkeypatch.setenv("COACH_CACHE_DIR", str(tmp_path / "cold"))
    routine = tmp_path / "tiny.yaml"
    routine.write_text(TINY)
    cold = prepare_session(str(routine), early_start=True)
    try:
        assert cold.rest is not None  # only the introduction is planned yet
        assert all(c.exercise is None for c in cold.timeline.cues)
        whole = cold.rest.result(timeout=60)
        n = len(cold.timeline.cues)
        assert whole.cues[:n] == cold.timeline.cues  # the full plan starts with exactly that intro
    finally:
        cold.close()
    warm = prepare_session(str(routine), early_start=True)
    try:
        assert warm.rest is None and any(c.exercise for c in warm.timeline.cues)
    finally:
        warm.close()


LONG_INTRO = TINY.replace("description: A tiny test.", (
    "description: >-\n"
    "  This session is a test of a long introduction, long enough that it is not all ready at once.\n"
    "  Its second sentence goes on for a while, so that the voice has plenty to say before the exercise.\n"
    "  A third sentence follows, about nothing in particular, and then the plank comes at last."), 1)


def test_a_long_intro_starts_with_its_first_cues_then_the_rest_of_it_then_the_whole_session(
        device, env, tmp_path, monkeypatch):
    """A cold start plays once the intro's first ~10 s of speech are ready; each later part starts
    with exactly what came before, and the device gets every part as rendered, handed over in turn."""
    from coach.playback import to_int16
    from coach.session import FIRST_PART_S, body_start, prepare_session
    from coach.voice import estimate_speech_s

    routine = tmp_path / "long-intro.yaml"
    routine.write_text(LONG_INTRO)
    cold = tmp_path / "cold-cache"
    result = coach("play", str(routine), env={**env, "COACH_CACHE_DIR": str(cold)}, timeout_s=120)
    assert result.returncode == 0, result.stderr
    assert "session finished" in result.stderr and "Traceback" not in result.stderr
    # The status line says "finish" once, at the end: not at the end of each part.
    finishes = [line for line in result.stderr.splitlines() if line.startswith("finish ·")]
    assert len(finishes) <= 1 and all("0:00 left in session" in line for line in finishes), finishes

    # The same preparation on the clips the run cached: what it played, part by part.
    monkeypatch.setenv("COACH_CACHE_DIR", str(cold))
    session = prepare_session(str(routine), early_start="always")
    try:
        assert session.intro_rest is not None and session.rest is not None
        first, intro, whole = session.timeline, session.intro_rest.result(timeout=60), session.rest.result(timeout=60)
        said = [c.text for c in first.cues if c.kind == "speech"]
        assert sum(estimate_speech_s(t, first.voice.rate_wpm) for t in said) >= FIRST_PART_S
        assert len(said) < len([c for c in intro.cues if c.kind == "speech"])
        assert first.cues == tuple(c for c in intro.cues if c.start_s < first.duration_s)
        assert first.duration_s == next(c.start_s for c in intro.cues if c not in first.cues)
        assert intro.duration_s == body_start(whole)
        assert intro.cues == tuple(c for c in whole.cues if c.start_s < intro.duration_s)

        def rendered(timeline, start_s, end_s):
            return np.concatenate([to_int16(b) for b in session.master(timeline).blocks(start_s, end_s, 0.5)])

        pieces = [rendered(first, 0.0, first.duration_s), rendered(intro, first.duration_s, intro.duration_s),
                  rendered(whole, intro.duration_s, None)]
    finally:
        session.close()
    assert_parts_heard(device, pieces)


def assert_parts_heard(device: CaptureDevice, pieces: list[np.ndarray]) -> None:
    """The device got each part of an early start as rendered, in turn, and the last one to its end.

    The capture FIFO is not exclusive like a card: while the silence that held the device
    drains, its last fraction of a second can interleave with the first session block. So
    the first part is compared from its second block on; everything after is exact.
    """
    half = RATE // 2
    cap, at = find_session(device, pieces[0][half:])
    assert near(cap.frames[at:at + len(pieces[0]) - half], pieces[0][half:])
    for piece in pieces[1:]:
        cap, at = find_session(device, piece)
        assert near(cap.frames[at:at + len(piece)], piece)
    assert len(cap.frames) == at + len(pieces[-1]), "the session plays to its end"
