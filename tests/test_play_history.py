"""The session history database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from coach.errors import InputFileError, UsageError
from coach.history import History, history_path, resume_record


def start(h: History, source: str = "lower-back", **kw) -> int:
    args = dict(routine="lower-back", source=source, level="standard", settings={"rate_wpm": 170},
                duration_s=900.0)
    args.update(kw)
    return h.start(**args)


def test_the_database_lives_in_coach_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path / "data"))
    assert history_path() == tmp_path / "data" / "history.sqlite3"
    with History() as h:
        start(h)
    assert (tmp_path / "data" / "history.sqlite3").is_file()


def test_a_session_is_recorded_from_start_to_finish(tmp_path):
    with History(tmp_path / "h.sqlite3") as h:
        sid = start(h)
        h.update(sid, position_s=120.0, step="Bird-Dog, set 1 of 3")
        rec = h.get(sid)
        assert (rec.position_s, rec.step, rec.finished, rec.outcome, rec.ended_at) == (
            120.0, "Bird-Dog, set 1 of 3", False, "playing", None)
        h.end(sid, position_s=900.0, step="Finish", outcome="finished")
        rec = h.get(sid)
        assert rec.finished and rec.outcome == "finished" and rec.ended_at is not None
        assert rec.settings == {"rate_wpm": 170} and rec.progress == 1.0


def test_resume_picks_the_most_recent_unfinished_session(tmp_path):
    with History(tmp_path / "h.sqlite3") as h:
        a = start(h, source="a")
        h.end(a, position_s=10.0, step=None, outcome="quit")
        b = start(h, source="b")
        h.end(b, position_s=900.0, step=None, outcome="finished")
        assert resume_record(h).id == a
        assert resume_record(h, "a").id == a
        with pytest.raises(UsageError, match="no unfinished session of b"):
            resume_record(h, "b")
        h.reopen(a, duration_s=900.0, position_s=10.0, step="x")
        assert h.get(a).outcome == "playing" and h.get(a).ended_at is None


def test_nothing_to_resume_is_a_usage_error(tmp_path):
    with History(tmp_path / "h.sqlite3") as h, pytest.raises(UsageError, match="no unfinished session"):
        resume_record(h)


def test_a_file_that_is_not_a_database_is_reported_with_its_path(tmp_path):
    bad = tmp_path / "history.sqlite3"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputFileError, match="history.sqlite3.*not a readable SQLite database"):
        History(bad)


def test_a_killed_writer_leaves_the_last_committed_position(tmp_path):
    db = tmp_path / "h.sqlite3"
    code = textwrap.dedent(f"""
        import sys, time
        from coach.history import History
        h = History({str(db)!r})
        sid = h.start(routine="r", source="r", level="standard", settings={{}}, duration_s=100.0)
        for i in range(1, 1000000):
            h.update(sid, position_s=float(i), step=f"step {{i}}")
            if i == 50:
                print("ready", flush=True)
            time.sleep(0.001)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with History(db) as h:
        (rec,) = h.recent()
    assert rec.position_s >= 50 and rec.step == f"step {int(rec.position_s)}"
    assert not rec.finished and rec.ended_at is None and rec.outcome == "playing"


def test_coach_history_lists_sessions_newest_first_with_how_they_ended(tmp_path):
    env = {**os.environ, "COACH_DATA_DIR": str(tmp_path)}
    with History(tmp_path / "history.sqlite3") as h:
        a = start(h)
        h.end(a, position_s=900.0, step="Finish", outcome="finished")
        b = start(h, source="/x/legs.yaml", routine="legs")
        h.end(b, position_s=125.0, step="Squat, set 2 of 3", outcome="quit")
        start(h, routine="crashed")  # never ended: the player was killed
    result = subprocess.run([sys.executable, "-m", "coach", "history"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STARTED", "ROUTINE"]
    assert [r.split()[0] for r in rows] == ["3", "2", "1"]
    assert "stopped at" in rows[0] and "did not exit cleanly" in rows[0]
    assert "legs" in rows[1] and "2:05/15:00" in rows[1] and "quit at Squat, set 2 of 3" in rows[1]
    assert rows[2].endswith("finished")
    as_json = subprocess.run([sys.executable, "-m", "coach", "history", "-f", "json", "-n", "1"], env=env,
                             capture_output=True, text=True)
    (only,) = json.loads(as_json.stdout)
    assert only["routine"] == "crashed" and only["outcome"] == "playing" and not only["finished"]


def test_coach_history_without_any_session_says_so(tmp_path):
    env = {**os.environ, "COACH_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "coach", "history"], env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "" and "No sessions yet" in result.stderr


def test_a_returning_listener_defaults_to_the_brief_version_and_can_ask_for_the_full_one(tmp_path):
    from coach.history import default_verbosity, finished_before

    with History(tmp_path / "h.sqlite3") as h:
        assert default_verbosity(h, "lower-back") == ("full", False), "a first session hears every word"
        sid = start(h)
        h.end(sid, position_s=300.0, step="Bird-Dog", outcome="quit")
        assert not finished_before(h, "lower-back"), "quitting half-way is not finishing"
        sid = start(h)
        h.end(sid, position_s=900.0, step="Finish", outcome="finished")
        assert finished_before(h, "lower-back")
        assert not finished_before(h, "/home/me/legs.yaml"), "per routine"
        assert default_verbosity(h, "lower-back") == ("brief", True)
        assert default_verbosity(h, "lower-back", "full") == ("full", True)
    assert default_verbosity(None, "lower-back") == ("full", False), "no history: a first session"
