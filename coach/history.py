"""Session history: one SQLite row per workout, kept up to date while it plays.

The database lives in the user data folder (``$COACH_DATA_DIR`` overrides it,
for tests) as ``history.sqlite3``. Every change is its own committed
transaction in WAL mode, so a player that is killed mid-session leaves the
row as it was at the last update: started, not finished, with the last
position written, and ``coach play --resume`` can carry on from there.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from coach.errors import CoachError, InputFileError, OutputError, UsageError

FILE_NAME = "history.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id          INTEGER PRIMARY KEY,
    routine     TEXT NOT NULL,              -- name shown to the user
    source      TEXT NOT NULL,              -- what to load again: a built-in name or an absolute path
    level       TEXT NOT NULL,
    settings    TEXT NOT NULL,              -- JSON: voice spec and other play options
    started_at  TEXT NOT NULL,              -- ISO 8601, UTC
    ended_at    TEXT,                       -- NULL while playing, or if the player was killed
    position_s  REAL NOT NULL DEFAULT 0,    -- how far it got
    duration_s  REAL NOT NULL,
    step        TEXT,                       -- where that is, in words
    finished    INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT NOT NULL DEFAULT 'playing'  -- playing, finished, quit, interrupted, device-error
);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at);
"""

OUTCOMES = ("playing", "finished", "quit", "interrupted", "device-error")


def data_dir() -> Path:
    """The user data folder (``$COACH_DATA_DIR`` when set)."""
    override = os.environ.get("COACH_DATA_DIR")
    if override:
        return Path(override)
    from platformdirs import user_data_dir

    return Path(user_data_dir("coach"))


def history_path() -> Path:
    return data_dir() / FILE_NAME


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Record:
    """One row of the history."""

    id: int
    routine: str
    source: str
    level: str
    settings: dict[str, Any]
    started_at: str
    ended_at: str | None
    position_s: float
    duration_s: float
    step: str | None
    finished: bool
    outcome: str

    @property
    def progress(self) -> float:
        """Fraction of the session played, 0..1."""
        return min(1.0, self.position_s / self.duration_s) if self.duration_s > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "routine": self.routine, "source": self.source, "level": self.level,
            "settings": self.settings, "started_at": self.started_at, "ended_at": self.ended_at,
            "position_s": round(self.position_s, 3), "duration_s": round(self.duration_s, 3),
            "step": self.step, "finished": self.finished, "outcome": self.outcome,
        }


class History:
    """The history database. Use as a context manager or call ``close()``."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else history_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(f"{self.path}: cannot open the session history: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _describe(self.path, exc) from None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise _describe(self.path, exc) from None

    def start(self, *, routine: str, source: str, level: str, settings: dict[str, Any],
              duration_s: float, position_s: float = 0.0, step: str | None = None) -> int:
        """Record a session that starts now; returns its id."""
        cur = self._run(
            "INSERT INTO sessions (routine, source, level, settings, started_at, position_s, duration_s, step)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (routine, source, level, json.dumps(settings, sort_keys=True), now_iso(), position_s, duration_s, step),
        )
        return int(cur.lastrowid or 0)

    def reopen(self, session_id: int, *, duration_s: float, position_s: float, step: str | None) -> None:
        """Mark a stopped session as playing again (``--resume``)."""
        self._run(
            "UPDATE sessions SET ended_at = NULL, outcome = 'playing', finished = 0,"
            " position_s = ?, duration_s = ?, step = ? WHERE id = ?",
            (position_s, duration_s, step, session_id),
        )

    def update(self, session_id: int, *, position_s: float, step: str | None) -> None:
        """Save how far a playing session got."""
        self._run("UPDATE sessions SET position_s = ?, step = ? WHERE id = ?", (position_s, step, session_id))

    def end(self, session_id: int, *, position_s: float, step: str | None, outcome: str) -> None:
        """Close a session: finished, quit, interrupted or device-error."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        self._run(
            "UPDATE sessions SET position_s = ?, step = ?, ended_at = ?, outcome = ?, finished = ? WHERE id = ?",
            (position_s, step, now_iso(), outcome, int(outcome == "finished"), session_id),
        )

    def get(self, session_id: int) -> Record | None:
        rows = self._select("WHERE id = ?", (session_id,))
        return rows[0] if rows else None

    def recent(self, limit: int = 20) -> list[Record]:
        """The latest sessions, newest first."""
        return self._select("ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))

    def last_unfinished(self, source: str | None = None) -> Record | None:
        """The most recent session that did not finish (of ``source`` if given)."""
        if source is None:
            rows = self._select("WHERE finished = 0 ORDER BY started_at DESC, id DESC LIMIT 1")
        else:
            rows = self._select("WHERE finished = 0 AND source = ? ORDER BY started_at DESC, id DESC LIMIT 1",
                                (source,))
        return rows[0] if rows else None

    def finished_count(self, source: str) -> int:
        """How many sessions of ``source`` were played to the end."""
        row = self._run("SELECT COUNT(*) FROM sessions WHERE finished = 1 AND source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def _select(self, tail: str, args: tuple[Any, ...] = ()) -> list[Record]:
        rows = self._run(
            "SELECT id, routine, source, level, settings, started_at, ended_at, position_s, duration_s,"
            f" step, finished, outcome FROM sessions {tail}",
            args,
        ).fetchall()
        out = []
        for row in rows:
            try:
                settings = json.loads(row[4])
            except ValueError:
                settings = {}
            out.append(Record(int(row[0]), row[1], row[2], row[3], settings if isinstance(settings, dict) else {},
                              row[5], row[6], float(row[7]), float(row[8]), row[9], bool(row[10]), row[11]))
        return out


def finished_before(history: History | None, source: str) -> bool:
    """Whether the routine at ``source`` (a built-in name or an absolute path) was finished before."""
    if history is None:
        return False
    return history.finished_count(source) > 0


def default_verbosity(history: History | None, source: str, asked: str | None = None) -> tuple[str, bool]:
    """(verbosity, returning) for a new session of ``source``.

    A returning listener (the routine was finished before) gets the brief version by
    default; a first session is full, so every word of the instructions is heard once.
    ``asked`` (--verbosity) always wins. ``returning`` lets the planner say why it is brief.
    """
    returning = finished_before(history, source)
    return (asked or ("brief" if returning else "full")), returning


def resume_record(history: History, source: str | None = None) -> Record:
    """The session ``--resume`` continues, or a UsageError saying there is none."""
    record = history.last_unfinished(source)
    if record is None:
        what = f" of {source}" if source else ""
        raise UsageError(f"--resume: no unfinished session{what} in the history ({history.path})",
                         hint="see `coach history`")
    return record


def _describe(path: Path, exc: sqlite3.DatabaseError) -> CoachError:
    text = str(exc)
    if "readonly" in text or "unable to open" in text or "disk" in text:
        return OutputError(f"{path}: cannot write the session history: {text}")
    return InputFileError(f"{path}: the session history is not a readable SQLite database ({text})",
                          hint="move the file away and Coach will start a new history")

