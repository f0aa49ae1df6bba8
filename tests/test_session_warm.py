"""What a live session gets ready in the background: its cues, and "Paused." only if the engine works anyway."""

from __future__ import annotations

import json
import threading
import time

import pytest

from coach.session import prepare_session

SCRIPT = {
    "routine": "warm", "title": "Warm", "level": "standard", "duration_s": 6.0,
    "voice": {"engine": "pyttsx3", "voice": "en-us", "rate_wpm": 170, "volume": 1.0},
    "chapters": [{"start_s": 0.0, "title": "Introduction"}],
    "cues": [
        {"start_s": 0.0, "end_s": 2.0, "kind": "speech", "text": "Welcome to the warm test.", "phase": "intro"},
        {"start_s": 3.0, "end_s": 4.5, "kind": "speech", "text": "Hold the plank.", "phase": "work"},
    ],
}


@pytest.fixture
def script(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "warm.json"
    path.write_text(json.dumps(SCRIPT))
    return path


def warm_and_wait(session, also: tuple[str, ...]) -> None:
    before = set(threading.enumerate())
    session.warm(0.0, also=also)
    for thread in set(threading.enumerate()) - before:
        while True:
            try:
                thread.join(60)
                break
            except RuntimeError:  # started by another of them and not running yet ("cannot join ... before")
                time.sleep(0.01)


def test_a_cold_session_gets_paused_ready_with_its_cues(script):
    session = prepare_session(str(script))
    try:
        warm_and_wait(session, ("Paused.",))
        assert all(session.voice.is_ready(t) for t in ("Welcome to the warm test.", "Hold the plank.", "Paused."))
    finally:
        session.close()


def test_a_fully_cached_session_synthesizes_nothing_not_even_paused(script):
    first = prepare_session(str(script))
    try:
        warm_and_wait(first, ())
    finally:
        first.close()
    session = prepare_session(str(script))
    try:
        warm_and_wait(session, ("Paused.",))
        assert session.voice.synthesized == 0
        assert not session.voice.is_ready("Paused.")  # said (and made) only if the listener pauses
    finally:
        session.close()
