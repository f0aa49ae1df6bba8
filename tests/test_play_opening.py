"""A command played before starts its kept opening at once, and the session carries on from it exactly.

The unit tests check the key and the store; the real-device tests play a cue script
twice into the pacing capture device and compare what it received with the export.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from coach import opening
from coach.player import PlayerOptions
from coach.playback import MAX_STREAM_S

from test_play_export_match import within_one_lsb
from test_play_real import RATE, cache_dir, coach, device, env  # noqa: F401 - fixtures


def test_the_key_is_the_command_line_its_folder_and_the_files_it_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    routine = tmp_path / "r.yaml"
    routine.write_text("name: r\n")
    key = opening.command_key([str(routine), "--level", "easier"])
    assert key == opening.command_key([str(routine), "--level", "easier"])
    assert key != opening.command_key([str(routine), "--level", "harder"])
    os.utime(routine, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert key != opening.command_key([str(routine), "--level", "easier"]), "an edited routine is another session"
    other = tmp_path / "elsewhere"
    other.mkdir()
    here = opening.command_key(["r.yaml"])
    monkeypatch.chdir(other)
    assert opening.command_key(["r.yaml"]) != here, "the same words in another folder are another command"
    for never in (["--from", "2"], ["--resume"], ["--shuffle", "--music", "x"], ["--no-cache"], ["--help"], ["-"]):
        assert opening.command_key(never) is None, never


def test_openings_are_kept_atomically_with_their_misses_and_only_the_newest_few(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_CACHE_DIR", str(tmp_path))
    assert opening.load("a" * 64) is None
    opening.save("a" * 64, b"\x01\x00\x02\x00" * 10)
    kept = opening.load("a" * 64)
    assert kept is not None and kept.samples == b"\x01\x00\x02\x00" * 10 and kept.misses == 0
    opening.save("a" * 64, b"\x00" * 8, misses=1)
    assert opening.load("a" * 64).misses == 1
    opening.save("a" * 64, b"\x00" * 8, misses=0)
    assert opening.load("a" * 64).misses == 0
    (tmp_path / "openings" / f"{'b' * 64}.raw").write_bytes(b"\x00" * 3)  # torn or foreign: not a whole frame
    assert opening.load("b" * 64) is None
    for i in range(opening.KEEP + 4):
        opening.save(f"{i:064d}", b"\x00" * 4)
        os.utime(tmp_path / "openings" / f"{i:064d}.raw", (i, 1_000_000 + i))
    opening.save("c" * 64, b"\x00" * 4)
    assert len(list((tmp_path / "openings").glob("*.raw"))) == opening.KEEP
    assert not list((tmp_path / "openings").glob("*.tmp"))


def test_the_early_stream_is_made_as_the_player_makes_its_own():
    assert opening.PREROLL_S == PlayerOptions().preroll_s, "the same wake-up silence as any new stream"
    assert opening.STREAM_S == MAX_STREAM_S


def _script(path) -> None:
    texts = ["Welcome to the opening check.", "Lie on your back.", "Three.", "Two.", "One.", "Lift.", "Well done."]
    cues, t = [], 0.0
    for text in texts:
        cues.append({"start_s": round(t, 3), "end_s": round(t + 1.6, 3), "kind": "speech", "text": text,
                     "phase": "work"})
        cues.append({"start_s": round(t + 1.8, 3), "end_s": round(t + 1.9, 3), "kind": "sound", "sound": "tick",
                     "phase": "work"})
        t += 2.0
    path.write_text(json.dumps({
        "routine": "opening", "title": "Opening", "level": "standard", "duration_s": round(t + 0.5, 3),
        "voice": {"engine": "pyttsx3", "voice": "en-us", "rate_wpm": 170, "volume": 1.0},
        "chapters": [{"start_s": 0.0, "title": "Work", "exercise": "w"}], "cues": cues}))


def _idle(device) -> float:  # noqa: F811
    """Wait until the pacer has taken all the last command sent; the time then (time.monotonic).

    A command that plays at once could otherwise continue the last one's segment.
    """
    log = Path(str(device.prefix) + ".log")
    size, since = -1, time.monotonic()
    while time.monotonic() - since < 0.2:
        time.sleep(0.02)
        if log.stat().st_size != size:
            size, since = log.stat().st_size, time.monotonic()
    return time.monotonic()


def _heard_since(device, since_s: float) -> np.ndarray:  # noqa: F811
    """What the device received in the segments that began after ``since_s`` (time.monotonic), joined."""
    return np.concatenate([c.frames for c in device.captures() if c.first_s >= since_s])


@pytest.mark.slow
def test_a_command_played_again_starts_its_opening_at_once_and_sounds_exactly_like_the_export(
        device, env, tmp_path):  # noqa: F811
    path = tmp_path / "opening.json"
    _script(path)
    exported = coach("export", str(path), "-o", str(tmp_path / "o.wav"), "--quiet", env=env, timeout_s=300)
    assert exported.returncode == 0, exported.stderr
    wav, rate = soundfile.read(tmp_path / "o.wav", dtype="int16")
    assert rate == RATE

    folder = opening_folder(env)
    before = set(folder.glob("*.raw"))  # the clip cache (and its openings) is shared with other tests
    first = coach("play", str(path), "--quiet", env=env, timeout_s=120)
    assert first.returncode == 0, first.stderr
    kept = sorted(set(folder.glob("*.raw")) - before)
    assert len(kept) == 1, "the first play kept its opening"
    samples = np.frombuffer(kept[0].read_bytes(), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(samples, wav[: len(samples)]), "the opening is the session's first seconds"
    assert len(samples) == int(opening.OPENING_S * RATE)

    since = _idle(device)
    again = coach("play", str(path), "--quiet", env=env, timeout_s=120)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    heard = _heard_since(device, since)
    start = int(np.flatnonzero(np.any(heard != 0, axis=1))[0]) - int(np.flatnonzero(np.any(wav != 0, axis=1))[0])
    assert start == int(round(opening.PREROLL_S * RATE)), "the opening came after the usual wake-up silence"
    assert within_one_lsb(heard[start : start + len(wav)], wav), "opening and session join exactly: play == export"
    assert not np.any(heard[start + len(wav) :])
    assert not (folder / kept[0].name.replace(".raw", ".misses")).exists(), "it matched: no miss counted"


def opening_folder(env: dict) -> Path:
    return Path(env["COACH_CACHE_DIR"]) / "openings"


@pytest.mark.slow
def test_an_opening_that_is_not_the_sessions_is_cut_off_and_the_session_starts_over_exactly(
        device, env, tmp_path):  # noqa: F811
    path = tmp_path / "opening.json"
    _script(path)
    exported = coach("export", str(path), "-o", str(tmp_path / "o.wav"), "--quiet", env=env, timeout_s=300)
    assert exported.returncode == 0, exported.stderr
    wav, _ = soundfile.read(tmp_path / "o.wav", dtype="int16")
    folder = opening_folder(env)
    before = set(folder.glob("*.raw"))  # the clip cache (and its openings) is shared with other tests
    assert coach("play", str(path), "--quiet", env=env, timeout_s=120).returncode == 0
    (kept,) = set(folder.glob("*.raw")) - before
    stale = (np.frombuffer(kept.read_bytes(), dtype="<i2") // 2).astype("<i2")  # e.g. a clip made again since
    kept.write_bytes(stale.tobytes())

    since = _idle(device)
    played = coach("play", str(path), "--quiet", env=env, timeout_s=120)
    assert played.returncode == 0 and "Traceback" not in played.stderr, played.stderr
    heard = _heard_since(device, since)
    session = heard_session_after(heard, wav)
    assert within_one_lsb(session, wav), "after the cut, the session whole, from its start"
    # What came before it: the kept opening, started at once, cut off when the session was found to differ
    # (by then the device holds ~0.3 s of it).
    stale = stale.reshape(-1, 2)
    h0, s0 = (int(np.flatnonzero(np.any(x != 0, axis=1))[0]) for x in (heard, stale))
    assert h0 == int(round(opening.PREROLL_S * RATE)) + s0
    assert np.array_equal(heard[h0 : h0 + 2205], stale[s0 : s0 + 2205]), "the kept opening played first"
    assert (folder / kept.name.replace(".raw", ".misses")).read_text() == "1"
    renewed = np.frombuffer(kept.read_bytes(), dtype="<i2").reshape(-1, 2)
    assert np.array_equal(renewed, wav[: len(renewed)]), "the session's own opening is kept instead"


def heard_session_after(heard: np.ndarray, wav: np.ndarray) -> np.ndarray:
    """The session in ``heard``, after whatever came before it: found by its first 0.1 s."""
    w0 = int(np.flatnonzero(np.any(wav != 0, axis=1))[0])
    probe = wav[w0 : w0 + 4410]
    for at in np.flatnonzero(np.all(heard == probe[0], axis=1)):
        if np.array_equal(heard[at : at + len(probe)], probe):
            session = heard[at - w0 : at - w0 + len(wav)]
            assert len(session) == len(wav)
            return session
    raise AssertionError("the session's start never reached the device")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mincore of private pages: Linux")
def test_a_stream_knows_to_a_page_how_far_it_has_been_read_or_written():
    from coach.playback import SimpleaudioStream

    stream = SimpleaudioStream(44100, 44100, 2)  # not started: we read it as simpleaudio would
    page = 1024  # stereo int16 frames in a 4 KB page
    assert stream.untouched_from(0) == 0
    assert int(stream._samples[:5000].astype(np.int64).sum()) == 0  # reading maps the pages (as zeros)
    assert stream.untouched_from(0) == 5 * page
    stream.write(10_000, np.zeros((100, 2), np.float32))
    assert stream.untouched_from(5 * page) == 5 * page
    assert stream.untouched_from(9 * page) == 10 * page


def test_only_a_play_command_with_a_kept_opening_opens_the_device_early(tmp_path):
    import subprocess

    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text('pcm.!default { type null }\n')
    env = {**os.environ, "HOME": str(home), "COACH_CACHE_DIR": str(tmp_path / "cache"), "COACH_DATA_DIR": str(tmp_path)}
    code = """
import sys
from coach import opening
args = sys.argv[1:]
if args[0] == "keep":
    key = opening.command_key(args[2:])
    if key is not None:
        opening.save(key, b"\\x10\\x00" * 2 * 4410)
    args = args[1:]
opening.start_early(args)
print(opening.command() is not None, opening.take() is not None)
"""
    def early(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert done.returncode == 0 and not done.stderr, done.stderr
        return done.stdout.split()

    assert early("play", "lower-back") == ["True", "False"], "no opening kept yet: nothing opened"
    assert early("keep", "play", "lower-back") == ["True", "True"], "kept: the device opened with it"
    assert early("plan", "lower-back") == ["False", "False"], "other commands never open the device"
    assert early("keep", "play", "lower-back", "--from", "2") == ["False", "False"]
