"""Media keys and headset buttons: `coach play` as an MPRIS2 player, driven by playerctl.

Each test starts a private session bus (``dbus-daemon --session``), runs
`coach play` with stdin not a terminal (so MPRIS is its only control) into the
pacing capture device of tests/test_play_real.py, and checks what playerctl
reports and what the device received. Waits are on conditions with generous
timeouts; what is asserted is measured in the captured audio.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from test_play_real import (  # noqa: F401 - device, env and cache_dir are fixtures
    agreement, find_near,
    BYTES_PER_S,
    PACER,
    RATE,
    CaptureDevice,
    cache_dir,
    device,
    env,
    expected_audio,
    heard_frames,
    history,
    locate,
    taken_s,
    wait_for_device,
    wait_for_sound,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="MPRIS and the ALSA capture device are Linux only")

SCRIPT = {
    "routine": "media-keys", "title": "Media keys", "level": "standard", "duration_s": 17.0,
    "voice": {"engine": "pyttsx3", "voice": "en-us", "rate_wpm": 170, "volume": 1.0},
    "chapters": [{"start_s": 0.0, "title": "Introduction"},
                 {"start_s": 4.0, "title": "Plank", "exercise": "plank"},
                 {"start_s": 10.0, "title": "Side Plank", "exercise": "side-plank"},
                 {"start_s": 16.0, "title": "Finish"}],
    "cues": [
        {"start_s": 0.0, "end_s": 2.5, "kind": "speech", "text": "Welcome to the test of the media keys.",
         "phase": "intro"},
        {"start_s": 4.0, "end_s": 4.22, "kind": "sound", "sound": "start", "phase": "work", "exercise": "plank"},
        {"start_s": 4.5, "end_s": 5.5, "kind": "speech", "text": "Hold the plank.", "phase": "work",
         "exercise": "plank"},
        {"start_s": 7.0, "end_s": 8.0, "kind": "speech", "text": "Keep breathing.", "phase": "work",
         "exercise": "plank"},
        {"start_s": 10.0, "end_s": 10.22, "kind": "sound", "sound": "start", "phase": "work",
         "exercise": "side-plank"},
        {"start_s": 10.5, "end_s": 11.5, "kind": "speech", "text": "Side plank now.", "phase": "work",
         "exercise": "side-plank"},
        {"start_s": 13.0, "end_s": 14.0, "kind": "speech", "text": "Nearly there.", "phase": "work",
         "exercise": "side-plank"},
        {"start_s": 16.0, "end_s": 16.58, "kind": "sound", "sound": "finish", "phase": "outro"},
    ],
}
PLANK_S, SIDE_PLANK_S = 4.0, 10.0
TIMEOUT_S = 30.0


# -- a private session bus and coach play on it ------------------------------------------


@pytest.fixture
def bus():
    """The address of a private session bus, for this test only."""
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address",
                               "--address=unix:tmpdir=/tmp"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = daemon.stdout.readline().strip()
    assert address.startswith("unix:"), address
    yield address
    daemon.terminate()
    daemon.wait(5)


@pytest.fixture
def menv(env, bus):
    """The environment of a `coach play` on the private bus (and of playerctl talking to it)."""
    return {**env, "DBUS_SESSION_BUS_ADDRESS": bus}


@pytest.fixture
def script(tmp_path, env):
    path = tmp_path / "media-keys.json"
    path.write_text(json.dumps(SCRIPT))
    return path


class Coach:
    """A `coach play` in the background (stdin is /dev/null), its stderr in a file."""

    def __init__(self, args: list[str], env: dict, log: Path) -> None:
        self.log = log
        self.launched_s = time.monotonic()
        with open(log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "coach", "play", *args], env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)

    def stderr(self) -> str:
        return self.log.read_text()

    def wait(self) -> int:
        return self.proc.wait(TIMEOUT_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def play(menv, tmp_path):
    """Start `coach play ARGS` on the private bus; any still running at the end are killed."""
    started: list[Coach] = []

    def start(*args: str, env: dict | None = None) -> Coach:
        c = Coach([*args, "--verbose"], env or menv, tmp_path / f"coach-{len(started)}.err")
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def playerctl(env: dict, *args: str, player: str | None = "coach") -> str:
    chosen = ["-p", player] if player else []
    result = subprocess.run(["playerctl", *chosen, *args], env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    return result.stdout.strip()


def wait_until(what: str, condition, timeout_s: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_for_status(env: dict, wanted: str) -> None:
    wait_until(f"playerctl status {wanted}", lambda: playerctl(env, "status") == wanted)


def wait_for_title(env: dict, wanted: str) -> None:
    wait_until(f"title {wanted}", lambda: playerctl(env, "metadata", "title") == wanted)


def pacing_device(folder: Path) -> CaptureDevice:
    """Another pacing capture device (as tests/test_play_real.py's fixture makes), in ``folder``."""
    home = folder / "home"
    home.mkdir(parents=True)
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
    return CaptureDevice(home, folder / "out", process)


# -- reading the captured audio ----------------------------------------------------------


def find_in(expected: np.ndarray, needle: np.ndarray) -> list[int]:
    """Every frame of ``expected`` where ``needle`` begins (within 1 LSB: see test_play_real.near)."""
    return find_near(expected, needle)


def landings(heard: np.ndarray, expected: np.ndarray, jumps: int) -> list[float]:
    """Session time of the first sound heard after each of ``jumps`` jumps, found in the audio alone.

    Each stretch of session audio is followed while it agrees with the plan. After
    it comes what the device still held when it was stopped (under 0.3 s), then the
    next stretch's preroll (0.4 s of digital silence): the next stretch's first sound
    is the first one after 0.3 s of silence, and its first second, found in the
    planned session, says where that stretch begins.
    """
    quiet = int(0.3 * RATE)
    loud = np.any(heard != 0, axis=1)
    silent_before = np.concatenate([[0], np.cumsum(~loud)])  # silent frames before each frame
    heard_at, _ = locate(heard, expected, 0)
    session_at = 0
    out = []
    for _ in range(jumps):
        end = heard_at + agreement(heard[heard_at:], expected[session_at:])
        starts = [f for f in np.flatnonzero(loud[end:]) + end
                  if f >= quiet and silent_before[f] - silent_before[f - quiet] == quiet]
        assert starts, "no sound after the jump"
        heard_at = int(starts[0])
        needle = heard[heard_at : heard_at + RATE]
        assert len(needle) == RATE, "less than a second heard after the jump"
        found = find_in(expected, needle)
        assert len(found) == 1, f"jump {len(out) + 1}: the second heard after it is found {len(found)} times in the plan"
        (session_at,) = found  # once, or the landing is ambiguous
        out.append(session_at / RATE)
    return out


def first_sound_s(expected: np.ndarray, step_s: float) -> float:
    """Session time of the first sound at or after ``step_s`` in the plan."""
    start = int(round(step_s * RATE))
    return (start + int(np.flatnonzero(np.any(expected[start:] != 0, axis=1))[0])) / RATE


def device_clock_s(device: CaptureDevice, frame: int) -> float:
    """When ``frame`` of all the device heard (segments joined) was due by the device's clock.

    The pacer's clock, like a sound card's, starts at the first byte of each segment
    and runs at the sample rate; the pacer itself waking late on a busy machine
    does not move it.
    """
    for cap in device.captures():
        if frame < len(cap.frames):
            return cap.first_s + frame / RATE
        frame -= len(cap.frames)
    raise AssertionError("frame beyond what was heard")


def planned_duration_s(script: Path) -> float:
    from coach.session import prepare_session

    session = prepare_session(str(script))
    try:
        return session.timeline.duration_s
    finally:
        session.close()


def paused_clip(ref: Path) -> np.ndarray:
    """ "Paused." as the player says it: mastered like the session of ``ref`` (its gain, its limiter)."""
    from coach.playback import to_int16
    from coach.session import prepare_session

    session = prepare_session(str(ref))
    try:
        return to_int16(np.repeat(session.master().one_off(session.voice.clip("Paused."))[:, None], 2, axis=1))
    finally:
        session.close()


# -- the service alone, in this process ----------------------------------------------------


def status(position_s: float, event: str = "tick", *, paused: bool = False, step_index: int = 0):
    from coach.player import Status
    from coach.session_map import Step

    steps = [Step(0.0, "Introduction"), Step(4.0, "Plank", "plank", 1, 2), Step(10.0, "Plank", "plank", 2, 2)]
    return Status(position_s, 17.0, paused, steps[step_index], "work", 1.0, None, event, step_index, len(steps))


def test_the_mpris_state_follows_the_players_statuses():
    from coach.media.mpris import NO_TRACK, PlayerState

    state = PlayerState()
    assert state.playback_status() == "Stopped" and state.metadata()["mpris:trackid"] == ("o", NO_TRACK)
    assert not any(state.can().values())  # nothing to control while the session is prepared
    state.update(status(4.5, "next", step_index=1), "Lower back", now_s=100.0)
    assert state.playback_status() == "Playing"
    assert state.metadata()["xesam:title"] == ("s", "Plank, set 1 of 2")
    assert state.metadata()["xesam:artist"] == ("as", ["Lower back"])
    assert state.metadata()["mpris:length"] == ("x", 17_000_000)
    assert state.position_us(now_s=101.25) == 5_750_000  # playing: the position moves with the clock
    assert state.can() == {"CanGoNext": True, "CanGoPrevious": True, "CanPlay": True, "CanPause": True,
                           "CanSeek": True}
    state.update(status(11.0, "pause", paused=True, step_index=2), "Lower back", now_s=102.0)
    assert state.playback_status() == "Paused" and state.position_us(now_s=150.0) == 11_000_000
    assert not state.can()["CanGoNext"]  # the last step
    state.update(status(3.5, "finish"), "Lower back", now_s=103.0)  # only the intro of an early start
    assert state.playback_status() == "Playing"
    state.update(status(17.0, "finish", step_index=2), "Lower back", now_s=103.0)
    assert state.playback_status() == "Stopped" and not any(state.can().values())


def test_the_session_bus_is_the_variable_or_the_runtime_dirs_socket(tmp_path):
    import socket

    from coach.media.mpris import session_bus_address

    assert session_bus_address({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"
    assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) is None
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "bus"))
        assert session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix:path={tmp_path / 'bus'}"


def test_without_linux_dbus_fast_or_a_bus_there_are_no_controls_and_one_notice(monkeypatch, bus, tmp_path):
    from coach.media import start_media_controls

    def attempt(environ):
        notices: list[str] = []
        controls = start_media_controls(lambda command: None, notice=notices.append, environ=environ)
        return controls, notices

    assert attempt({}) == (None, ["media keys: off (no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set)"])
    controls, notices = attempt({"DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-bus"})
    assert controls is None and len(notices) == 1 and notices[0].startswith("media keys: off (cannot use the D-Bus")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "dbus_fast", None)  # not installed
        assert attempt({"DBUS_SESSION_BUS_ADDRESS": bus}) == (
            None, ["media keys: off (the dbus-fast package is not installed)"])
    for platform in ("darwin", "win32"):
        with monkeypatch.context() as m:
            m.setattr(sys, "platform", platform)
            controls, notices = attempt({"DBUS_SESSION_BUS_ADDRESS": bus})
        assert controls is None and notices == ["media keys: off (MPRIS media controls need Linux with a D-Bus "
                                                "session bus)"]


def dbus_send(bus: str, member: str, *args: str, interface: str = "org.mpris.MediaPlayer2.Player"):
    return subprocess.run(["dbus-send", f"--bus={bus}", "--print-reply", "--dest=org.mpris.MediaPlayer2.coach",
                           "/org/mpris/MediaPlayer2", f"{interface}.{member}", *args],
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def test_every_mpris_call_becomes_one_command_in_the_inbox_and_the_spec_rules_hold(bus):
    from coach.media import start_media_controls
    from coach.player import Command, Seek

    got: list = []
    controls = start_media_controls(got.append, environ={"DBUS_SESSION_BUS_ADDRESS": bus})
    assert controls is not None and controls.bus_name == "org.mpris.MediaPlayer2.coach"
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus}
    try:
        controls.update(status(5.0, "start", step_index=1), title="Lower back")
        wait_for_status(env, "Playing")
        for verb in ("play-pause", "play", "pause", "next", "previous", "stop"):
            playerctl(env, verb)
        playerctl(env, "position", "12")  # SetPosition on the current track
        playerctl(env, "position", "3-")  # Seek, 3 s back
        stale = dbus_send(bus, "SetPosition", "objpath:/coach/another", "int64:1000000")
        assert stale.returncode == 0  # a stale track id: ignored, as the spec says
        assert dbus_send(bus, "Raise", interface="org.mpris.MediaPlayer2").returncode == 0  # nothing to raise
        opened = dbus_send(bus, "OpenUri", "string:file:///tmp/x.mp3")
        assert opened.returncode != 0 and "NotSupported" in opened.stderr
        assert dbus_send(bus, "Quit", interface="org.mpris.MediaPlayer2").returncode == 0
        wanted = [Command.PAUSE, Command.PLAY, Command.HOLD, Command.NEXT, Command.BACK, Command.QUIT,
                  Seek(12.0), Seek(-3.0, relative=True), Command.QUIT]
        wait_until("every command", lambda: len(got) >= len(wanted))
        assert got == wanted
        props = dbus_send(bus, "GetAll", "string:org.mpris.MediaPlayer2", interface="org.freedesktop.DBus.Properties")
        for name, value in (("Identity", 'string "Coach"'), ("CanQuit", "boolean true"),
                            ("CanRaise", "boolean false"), ("HasTrackList", "boolean false")):
            assert re.search(rf'string "{name}"\s+variant\s+{value}', props.stdout), name
    finally:
        controls.close()
    assert "coach" not in playerctl(env, "-l", player=None).split()  # left the bus


# -- coach play, end to end ------------------------------------------------------------------


@pytest.mark.slow
def test_playerctl_lists_coach_within_2_s_of_launch(play, menv, script):
    c = play(str(script), "--quiet")
    listed = wait_until("coach in playerctl -l", lambda: "coach" in playerctl(menv, "-l", player=None).split())
    listed_s = time.monotonic() - c.launched_s
    print(f"listed {listed_s:.2f} s after launch")
    assert listed and listed_s < 2.0, listed_s
    playerctl(menv, "stop")
    assert c.wait() == 0, c.stderr()
    assert "media keys: on (MPRIS player org.mpris.MediaPlayer2.coach " in c.stderr()


@pytest.mark.slow
def test_playerctl_metadata_names_the_current_step_and_the_routine(play, menv, script):
    c = play(str(script), "--quiet")
    wait_for_status(menv, "Playing")
    assert playerctl(menv, "metadata", "title") == "Introduction"
    assert playerctl(menv, "metadata", "artist") == "Media keys"
    length_us = int(playerctl(menv, "metadata", "mpris:length"))
    assert length_us == round(planned_duration_s(script) * 1e6)  # the session is the track
    assert playerctl(menv, "metadata", "mpris:trackid").strip("'") == "/coach/session"
    playerctl(menv, "next")
    wait_for_title(menv, "Plank")
    playerctl(menv, "next")
    wait_for_title(menv, "Side Plank")
    playerctl(menv, "stop")
    assert c.wait() == 0, c.stderr()


@pytest.mark.slow
def test_playerctl_pause_cuts_the_sentence_short_then_says_paused_and_status_says_paused(play, menv, script,
                                                                                           device):
    """A pause silences the device mid-sentence, not at the sentence's end.

    How soon is a number, so it is measured by `scripts/measure-play --pause` (37-96 ms from
    playerctl's return to the device's last sound, idle and under load), not bounded here."""
    expected = expected_audio(str(script))
    c = play(str(script), "--quiet")
    wait_for_status(menv, "Playing")
    wait_for_sound(device, 0.8)  # 0.8 s into "Welcome ..."
    playerctl(menv, "pause")
    acknowledged_s = time.monotonic()  # coach has put the command in the player's inbox by now
    wait_for_status(menv, "Paused")
    said = paused_clip(script)
    wait_until('"Paused." said', lambda: heard_whole(device, said))
    playerctl(menv, "stop")
    assert c.wait() == 0, c.stderr()

    heard = np.concatenate([cap.frames for cap in device.captures()])
    at, run = locate(heard, expected, 0)
    assert run > int(0.6 * RATE)  # the session until the pause
    sentence_end = int(np.flatnonzero(np.any(expected[: int(2.5 * RATE)] != 0, axis=1))[-1])
    (said_at,) = locate_all(heard, said)
    loud = np.flatnonzero(np.any(heard[:said_at] != 0, axis=1))
    # The device still plays what it held (~0.1 s) after the stop: the sound ends well before the sentence.
    assert loud[-1] - at < sentence_end - int(0.2 * RATE), "the sentence was not cut short"
    last_sound_s = device_clock_s(device, int(loud[-1]))
    print(f"silent {1000 * (last_sound_s - acknowledged_s):.0f} ms after playerctl pause returned")
    assert agreement(heard[said_at:], said) == len(said)  # then "Paused.", whole


def locate_all(heard: np.ndarray, piece: np.ndarray) -> list[int]:
    """Where the first 0.1 s of ``piece`` begins in ``heard``."""
    return find_in(heard, piece[: RATE // 10]) if len(heard) >= RATE // 10 else []


def heard_whole(device: CaptureDevice, piece: np.ndarray) -> bool:
    """Whether the device has taken all of ``piece`` (once its start is found)."""
    heard = heard_frames(device)
    return any(len(heard) >= at + len(piece) for at in locate_all(heard, piece))


@pytest.mark.slow
def test_playerctl_play_resumes_and_the_rest_lands_on_its_planned_times(play, menv, script, device):
    expected = expected_audio(str(script))
    c = play(str(script), "--quiet")
    wait_for_status(menv, "Playing")
    wait_for_sound(device, 0.8)
    playerctl(menv, "pause")
    wait_for_status(menv, "Paused")
    said = paused_clip(script)
    wait_until('"Paused." said', lambda: heard_whole(device, said))
    playerctl(menv, "play")
    wait_for_status(menv, "Playing")
    assert c.wait() == 0, c.stderr()

    caps = device.captures()
    heard = np.concatenate([cap.frames for cap in caps])
    (said_at,) = locate_all(heard, said)
    # After "Paused.", the interrupted sentence from its start (0.0) and the rest of the session,
    # every sample where the plan puts it relative to the resume, to the end.
    at, run = locate(heard, expected, said_at + len(said))
    assert run == len(expected), (run, len(expected))
    # In one stretch the device took without a gap: no underrun moved anything.
    seg_start = 0
    for cap in caps:
        if seg_start <= at < seg_start + len(cap.frames):
            assert at + len(expected) <= seg_start + len(cap.frames)
        seg_start += len(cap.frames)
    (rec,) = history(menv)
    assert rec["finished"]


@pytest.mark.slow
def test_playerctl_next_previous_and_position_land_on_the_planned_step_starts(play, menv, script, device):
    expected = expected_audio(str(script))
    c = play(str(script))  # not quiet: stderr has a line per event ("back · 0:10 Side Plank ...")
    wait_for_status(menv, "Playing")
    wait_for_sound(device, 0.8)
    playerctl(menv, "next")  # -> Plank
    wait_for_title(menv, "Plank")
    wait_for_device(device, taken_s(device) + 0.4 + 1.2)
    playerctl(menv, "next")  # -> Side Plank
    wait_for_title(menv, "Side Plank")
    wait_for_device(device, taken_s(device) + 0.4 + 2.3)  # more than 2 s into the step
    playerctl(menv, "previous")  # -> back to the start of Side Plank
    wait_until("back", lambda: "back · " in c.stderr())
    wait_for_device(device, taken_s(device) + 0.4 + 1.2)
    playerctl(menv, "position", "5")  # 0:05 is in Plank: to its start
    wait_until("seek", lambda: "seek · " in c.stderr())
    wait_for_device(device, taken_s(device) + 0.4 + 1.2)
    playerctl(menv, "stop")
    assert c.wait() == 0, c.stderr()

    heard = np.concatenate([cap.frames for cap in device.captures()])
    landed = landings(heard, expected, 4)
    planned = [first_sound_s(expected, s) for s in (PLANK_S, SIDE_PLANK_S, SIDE_PLANK_S, PLANK_S)]
    errors_ms = [1000 * (a - b) for a, b in zip(landed, planned)]
    print(f"landing errors {errors_ms} ms")
    assert all(abs(e) <= 50 for e in errors_ms), errors_ms


@pytest.mark.slow
def test_dbus_monitor_sees_properties_changed_on_each_change(play, menv, script, device, bus, tmp_path):
    log = tmp_path / "monitor.txt"
    rules = ["type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
             "path='/org/mpris/MediaPlayer2'",
             "type='signal',interface='org.mpris.MediaPlayer2.Player',member='Seeked'"]
    with open(log, "w") as out:
        monitor = subprocess.Popen(["dbus-monitor", "--address", bus, *rules], stdout=out,
                                   stderr=subprocess.DEVNULL)
    try:
        wait_until("dbus-monitor ready", lambda: "NameAcquired" in log.read_text())
        c = play(str(script), "--quiet")
        wait_for_status(menv, "Playing")
        wait_for_sound(device, 0.8)
        playerctl(menv, "pause")
        wait_for_status(menv, "Paused")
        playerctl(menv, "play")
        wait_for_status(menv, "Playing")
        playerctl(menv, "next")
        wait_for_title(menv, "Plank")
        playerctl(menv, "stop")
        assert c.wait() == 0, c.stderr()
        wait_until("the last signal", lambda: '"Stopped"' in log.read_text())
    finally:
        monitor.terminate()
        monitor.wait(5)

    signals = ["signal " + s for s in log.read_text().split("\nsignal ")[1:]]
    changes = [s for s in signals if "member=PropertiesChanged" in s]
    statuses = [m.group(1) for s in changes
                for m in re.finditer(r'string "PlaybackStatus"\s+variant\s+string "(\w+)"', s)]
    assert statuses == ["Playing", "Paused", "Playing", "Stopped"], statuses
    titles = [m.group(1) for s in changes for m in re.finditer(r'string "xesam:title"\s+variant\s+string "([^"]*)"', s)]
    assert titles == ["Introduction", "Plank"], titles
    # The position jumps at the start, on resume (back to the start of the sentence) and on next.
    assert sum("member=Seeked" in s for s in signals) >= 3


@pytest.mark.slow
def test_playerctl_stop_exits_cleanly_and_resume_continues_from_that_step(play, menv, script, device):
    c = play(str(script))
    wait_for_status(menv, "Playing")
    wait_for_sound(device, 0.8)
    playerctl(menv, "next")
    wait_for_title(menv, "Plank")
    wait_for_device(device, taken_s(device) + 0.4 + 1.5)
    playerctl(menv, "stop")
    assert c.wait() == 0, c.stderr()
    last = c.stderr().strip().splitlines()[-1]
    assert re.fullmatch(rf"coach: stopped at 0:0[45] \(Plank\); resume with: coach play {re.escape(str(script))} "
                        r"--resume", last), last
    (rec,) = history(menv)
    assert rec["outcome"] == "quit" and rec["step"] == "Plank"

    before = len(heard_frames(device))
    again = play("--resume", "--quiet")
    assert again.wait() == 0, again.stderr()
    heard = np.concatenate([cap.frames for cap in device.captures()])
    rest = expected_audio(str(script), start_s=PLANK_S)
    at, run = locate(heard, rest, before)
    assert run == len(rest)  # from the start of Plank to the end
    (rec,) = history(menv)
    assert rec["id"] and rec["finished"]


@pytest.mark.slow
def test_a_second_coach_play_at_once_takes_the_instance_name(play, menv, device, tmp_path):
    other = pacing_device(tmp_path / "second")
    # Two minutes long, so that however busy the machine, the first is still playing when the second starts.
    script = tmp_path / "long.json"
    script.write_text(json.dumps({**SCRIPT, "duration_s": 120.0, "cues": SCRIPT["cues"] + [
        {"start_s": 119.0, "end_s": 119.58, "kind": "sound", "sound": "finish", "phase": "outro"}]}))
    try:
        first = play(str(script), "--quiet")
        wait_until("coach listed", lambda: "coach" in playerctl(menv, "-l", player=None).split())
        # Paused, the first one cannot finish while the second starts, however busy the machine.
        wait_for_status(menv, "Playing")  # MPRIS allows Pause once it plays (CanPause)
        playerctl(menv, "pause")
        wait_for_status(menv, "Paused")
        second = play(str(script), "--quiet", env={**menv, "HOME": str(other.home)})
        name = f"coach.instance{second.proc.pid}"
        players = wait_until(name, lambda: (lambda ps: name in ps and ps)(playerctl(menv, "-l", player=None).split()))
        assert "coach" in players
        assert f"media keys: on (MPRIS player org.mpris.MediaPlayer2.{name} " in second.stderr()
        wait_until(f"{name} playing", lambda: playerctl(menv, "status", player=name) == "Playing")
        playerctl(menv, "stop", player=name)
        assert second.wait() == 0, second.stderr()
        assert first.proc.poll() is None  # the first one plays on
        playerctl(menv, "stop")
        assert first.wait() == 0, first.stderr()
    finally:
        other.stop()


@pytest.mark.slow
def test_no_media_keys_keeps_coach_off_the_bus(play, menv, script, device):
    c = play(str(script), "--quiet", "--no-media-keys")
    wait_for_sound(device, 0.5)  # playing: the controls would have been registered before
    assert "coach" not in playerctl(menv, "-l", player=None).split()
    c.proc.send_signal(2)
    assert c.wait() == 130
    assert "media keys" not in c.stderr()


@pytest.mark.slow
def test_without_a_session_bus_play_works_and_verbose_says_why_in_one_line(play, env, script, device):
    plain = {k: v for k, v in env.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR")}
    c = play(str(script), "--quiet", "--from", "Finish", env=plain)
    assert c.wait() == 0, c.stderr()
    notices = [line for line in c.stderr().splitlines() if "media keys" in line]
    assert notices == ["coach: media keys: off (no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set)"]
    assert any(np.any(cap.frames) for cap in device.captures())


@pytest.mark.slow
def test_coach_play_in_the_background_of_a_terminal_is_not_stopped_and_obeys_playerctl(menv, script, device):
    import pexpect

    # A background job that changed the terminal's mode would be stopped by the shell (SIGTTOU).
    shell = pexpect.spawn("/bin/bash", ["--norc", "-i"], env={**menv, "PS1": "$ "}, encoding="utf-8",
                          timeout=TIMEOUT_S)
    try:
        shell.expect_exact("$ ")
        shell.sendline(f"{sys.executable} -m coach play {script} --quiet &")
        wait_for_status(menv, "Playing")
        wait_for_sound(device, 0.5)
        playerctl(menv, "stop")
        shell.sendline("wait; echo exit=$?")
        shell.expect(r"exit=(\d+)")
        assert shell.match.group(1) == "0"
        assert "Stopped" not in shell.before  # the shell's job report for a stopped job
    finally:
        shell.close(force=True)
    (rec,) = history(menv)
    assert rec["outcome"] == "quit"


@pytest.mark.slow
def test_an_early_start_plays_on_from_the_introduction_without_a_stop(play, menv, device, bus, tmp_path):
    from test_play_real import TINY

    routine = tmp_path / "tiny.yaml"
    routine.write_text(TINY)
    log = tmp_path / "monitor.txt"
    rule = ("type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
            "path='/org/mpris/MediaPlayer2'")
    with open(log, "w") as out:
        monitor = subprocess.Popen(["dbus-monitor", "--address", bus, rule], stdout=out, stderr=subprocess.DEVNULL)
    try:
        wait_until("dbus-monitor ready", lambda: "NameAcquired" in log.read_text())
        # An empty clip cache: the introduction plays while the rest is planned (two players, one session).
        c = play(str(routine), "--quiet", env={**menv, "COACH_CACHE_DIR": str(tmp_path / "cold-cache")})
        wait_for_status(menv, "Playing")
        wait_until("the exercise", lambda: playerctl(menv, "metadata", "title") == "Plank", timeout_s=60)
        assert playerctl(menv, "status") == "Playing"
        playerctl(menv, "stop")
        assert c.wait() == 0, c.stderr()
        wait_until("the last signal", lambda: '"Stopped"' in log.read_text())
    finally:
        monitor.terminate()
        monitor.wait(5)
    statuses = re.findall(r'string "PlaybackStatus"\s+variant\s+string "(\w+)"', log.read_text())
    assert statuses == ["Playing", "Stopped"], statuses
