"""Interrupting `coach export` at random moments never leaves a partial file under the target name.

Twenty trials of SIGINT, SIGTERM and SIGKILL, at random moments between Coach's
first statement (its signal handlers) and the end of the export (a short routine
at 8 kHz, so a run takes about a second), into every output format, some with an
empty speech cache so that the signal can land during synthesis. After each: the
target is absent or a complete file that decodes to the session's length; after
SIGINT/SIGTERM nothing else is left (no `.NAME.*.part`, no speech worker or its
folder, no half-written cache entry). A signal that comes as the command is over
only hurries the exit along: idle speech workers then exit a moment after Coach,
when their pipe closes. After SIGKILL the process cannot clean up: a
`.NAME.*.part` file may stay beside the target (never under its name); the speech
workers still notice that their parent is gone and exit, removing their folders.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from coach.voice.cache import decode_entry
from reliability_helpers import (audio_frames, coach_command, coach_env, run, stray_temporaries,
                                 write_short_routine)

pytestmark = pytest.mark.slow  # interrupts whole exports, many trials

SEED = int(os.environ.get("COACH_INTERRUPT_SEED", "6"))
FORMATS = ("wav", "flac", "ogg", "mp3")
RATE_HZ = 8000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interrupt")
    routine = write_short_routine(folder)
    env = coach_env(folder, TMPDIR=str(folder / "tmp"))
    (folder / "tmp").mkdir()
    started = time.monotonic()
    reference = folder / "reference.wav"
    done = run(coach_command("export", str(routine), "-o", str(reference), "--sample-rate", str(RATE_HZ), "-q"),
               env, folder)
    assert done.returncode == 0, done.stderr
    cold_s = time.monotonic() - started
    # A warm export is one fast pass: signals are timed to each kind's own length, or most would come late.
    started = time.monotonic()
    again = run(coach_command("export", str(routine), "-o", str(reference), "--sample-rate", str(RATE_HZ), "-q",
                              "--force"), env, folder)
    assert again.returncode == 0, again.stderr
    warm_s = time.monotonic() - started
    frames, _, _ = audio_frames(reference)
    return folder, routine, env, frames, (cold_s, warm_s)


def session_frames(routine: Path, env: dict[str, str], cwd: Path) -> int:
    """Frames of the whole session planned with the clips in ``env``'s cache.

    Speech synthesized again is not sample-identical (lengths vary by a few ms),
    so an export with a cache of its own has a length of its own.
    """
    import json

    planned = run(coach_command("plan", str(routine), "--format", "json"), env, cwd)
    assert planned.returncode == 0, planned.stderr
    return round(json.loads(planned.stdout)["duration_s"] * RATE_HZ)


def worker_processes(tmpdir: Path) -> list[int]:
    """Speech workers started for this test (their command line names a folder in our TMPDIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(tmpdir).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def catches_sigterm(pid: int) -> bool:
    """Has the process set a handler for SIGTERM (gone counts as yes: nothing to wait for)?

    Coach's first statement does (``coach/__main__.py``). Before that, Python is still
    starting and a signal is Python's own business: SIGTERM kills it and SIGINT prints
    a KeyboardInterrupt traceback from whatever it was importing.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def left_in(tmpdir: Path, empty_ok: list[Path]) -> list[Path]:
    """What is left in TMPDIR, except empty entries (noted in ``empty_ok``).

    A signal that lands between two system calls inside the standard library's
    tempfile (create, then unlink or return) can leave one empty file or folder
    behind: a window of microseconds, seen about once in 200 trials. Anything
    with data in it (a speech worker's folder with audio) is a real leftover.
    """
    left = []
    for p in tmpdir.iterdir():
        empty = (p.is_dir() and not any(p.iterdir())) or (p.is_file() and p.stat().st_size == 0)
        if not empty:
            left.append(p)
        elif p not in empty_ok:
            empty_ok.append(p)
    return left


def wait_until(check, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def cache_is_whole(cache: Path) -> tuple[list[Path], list[Path]]:
    """(entries that do not decode, leftover temporary files) in the clip cache."""
    voice = cache / "voice"
    if not voice.exists():
        return [], []
    broken = [p for p in voice.rglob("*.clip") if decode_entry(p.read_bytes()) is None]
    return broken, [p for p in voice.rglob("*") if p.is_file() and p.suffix != ".clip"]


def test_twenty_interrupted_exports_leave_a_whole_file_or_none(setup, tmp_path):
    folder, routine, warm_env, frames, (cold_s, warm_s) = setup
    rng = random.Random(SEED)
    plan = [signal.SIGINT] * 7 + [signal.SIGTERM] * 7 + [signal.SIGKILL] * 6
    rng.shuffle(plan)
    outcomes = []
    kill_leftovers = []
    empty_ok: list[Path] = []
    for trial, sig in enumerate(plan):
        cold = trial % 3 == 0
        trial_dir = tmp_path / f"t{trial}"
        trial_dir.mkdir()
        tmpdir = trial_dir / "tmp"
        tmpdir.mkdir()
        cache = trial_dir / "cache" if cold else Path(warm_env["COACH_CACHE_DIR"])
        env = {**coach_env(folder, cache), "TMPDIR": str(tmpdir)}
        fmt = FORMATS[trial % len(FORMATS)]
        target = trial_dir / f"session.{fmt}"
        delay_s = rng.uniform(0.0, (cold_s if cold else warm_s) * 1.1)  # from Coach's first statement on
        proc = subprocess.Popen(coach_command("export", str(routine), "-o", str(target), "--sample-rate",
                                              str(RATE_HZ), "-q"),
                                env=env, cwd=trial_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not catches_sigterm(proc.pid):
            assert time.monotonic() < deadline, "Coach never set its signal handlers"
            time.sleep(0.001)
        time.sleep(delay_s)
        sent = proc.poll() is None
        if sent:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        what = f"trial {trial} (seed {SEED}): {sig.name} after {delay_s:.2f} s, {fmt}, {'cold' if cold else 'warm'}"
        assert "Traceback" not in err, f"{what}: {err}"
        finished = proc.returncode == 0
        if sig == signal.SIGKILL and sent:
            assert proc.returncode in (0, -9), what
        else:
            # -signal: it came after Python reset the handlers on its way out.
            assert proc.returncode in (0, 130, -sig), f"{what}: exit {proc.returncode}: {err}"
            if proc.returncode == 130:
                assert err.strip().startswith("coach: error: "), f"{what}: {err}"
        if target.exists():
            got, rate, channels = audio_frames(target)
            assert (rate, channels) == (RATE_HZ, 2), what
            whole = frames if not cold else session_frames(routine, env, trial_dir)
            if fmt != "mp3":
                assert got == whole, f"{what}: {got} frames, a whole session has {whole}"
        else:
            assert not finished, f"{what}: exit 0 but no file"
        temps = stray_temporaries(trial_dir)
        if sig == signal.SIGKILL and sent:
            kill_leftovers += temps
            # The workers read EOF from their parent's pipe, exit and remove their folders.
            assert wait_until(lambda: not worker_processes(tmpdir)), f"{what}: speech workers outlived their parent"
            assert wait_until(lambda: not left_in(tmpdir, empty_ok)), f"{what}: left {left_in(tmpdir, empty_ok)}"
        else:
            assert temps == [], f"{what}: exit {proc.returncode}: {err!r}: left {temps}"
            if proc.returncode == 130:  # interrupted mid-command: Coach itself ended its workers
                assert not worker_processes(tmpdir), f"{what}: speech workers still running"
                assert left_in(tmpdir, empty_ok) == [], f"{what}: left {left_in(tmpdir, empty_ok)}"
            else:
                # The signal came as the command was over (it only hurries the exit along) or
                # after Python reset the handlers: idle workers read EOF and exit by themselves.
                assert wait_until(lambda: not worker_processes(tmpdir)), f"{what}: speech workers outlived Coach"
                assert wait_until(lambda: not left_in(tmpdir, empty_ok)), f"{what}: left {left_in(tmpdir, empty_ok)}"
            broken, leftovers = cache_is_whole(cache)
            assert broken == [] and leftovers == [], f"{what}: cache {broken} {leftovers}"
        broken, _ = cache_is_whole(cache)
        assert broken == [], f"{what}: damaged cache entries {broken}"
        outcomes.append((sig.name, "finished" if finished else "interrupted", target.exists()))
    interrupted = [o for o in outcomes if o[1] == "interrupted"]
    print(f"\n{len(interrupted)} of {len(outcomes)} trials interrupted mid-export; "
          f"{len(kill_leftovers)} temporary file(s) left by SIGKILL: {[p.name for p in kill_leftovers]}; "
          f"empty temporary entries left in TMPDIR: {[p.name for p in empty_ok]}")
    assert len(interrupted) >= 10, f"the signals came too late to test anything: {outcomes}"


def test_the_next_export_clears_what_a_killed_one_left_but_not_a_file_being_written(setup, tmp_path):
    import fcntl

    folder, routine, env, frames, _ = setup
    target = tmp_path / "session.wav"
    stale = tmp_path / ".session.wav.k1ll3d.part"
    stale.write_bytes(b"RIFF half a session")
    live = tmp_path / ".session.wav.wr1t1n.part"
    live.write_bytes(b"RIFF another export at work")
    other = tmp_path / ".other.wav.k1ll3d.part"  # another target's: not ours to judge
    other.write_bytes(b"RIFF")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as an export in progress holds it
        done = run(coach_command("export", str(routine), "-o", str(target), "--sample-rate", str(RATE_HZ), "-q"),
                   {**env, "TMPDIR": str(tmp_path)}, folder)
    assert done.returncode == 0, done.stderr
    assert audio_frames(target)[0] == frames
    assert not stale.exists()
    assert live.exists() and other.exists()
