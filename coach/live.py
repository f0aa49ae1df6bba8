"""A prepared session, coached live: the player on the speaker, the history kept up to date.

    PreparedSession ──master──> Player ──> speaker        commands ──> inbox ──> Player
                                  └──status──> history, status line, media controls

``coach play`` parses its options and builds the terminal parts (keys, status
line); everything else about playing a session lives here, so that any front end
plays it the same way: where to start, the early start's hand-over from the
introduction to the whole session, and what the history records on every ending.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from coach import opening as openings
from coach.errors import AudioDeviceError, Interrupted
from coach.player import PAUSED_TEXT, Command, Continuation, Inbox, MonotonicClock, Player, PlayerOptions, Status
from coach.session import PreparedSession, at_exit_wait_for
from coach.session_map import SessionMap

HISTORY_EVERY_S = 5.0
"""How often the position of a playing session is saved (also at every step and pause)."""


@dataclass(frozen=True)
class Ending:
    """How a live session ended (when it did not raise)."""

    finished: bool
    position_s: float
    where: str
    """The position in words ("Bird-Dog, set 2 of 3 (12:03)")."""
    duration_s: float


def start_position(session: PreparedSession, start_from: str | None, record: Any) -> float:
    """Where to start: ``--from`` (exercise or M:SS), the resumed step's start, or the beginning."""
    smap = SessionMap(session.timeline)
    if start_from is not None:
        return smap.resolve_from(start_from)
    if record is not None:
        return smap.step_at(record.position_s).start_s
    return 0.0


def coach_live(session: PreparedSession, sink: Any, inbox: Inbox, *, held: Any = None, history: Any = None,
               record: Any = None, start_s: float = 0.0, on_status: Callable[[Status], None] | None = None,
               on_rest: Callable[[], None] | None = None, opening_key: str | None = None,
               early: openings.EarlyStart | None = None) -> Ending:
    """Play ``session`` from ``start_s`` on ``sink`` until it ends or is quit; keep the history.

    ``held``: the device kept awake while preparing, handed over here: with silence,
    or (``early``) with the opening ``coach.opening`` kept for this command, which
    the session carries on from if it starts with exactly those samples.
    ``opening_key``: this command's key in ``coach.opening``: a whole session played
    from its start keeps its opening there for the next time.
    ``on_rest``: called when the intro of an early start is over and the rest is not ready.
    Raises Interrupted and AudioDeviceError, each with where it stopped; the history
    records every ending.
    """
    timeline = session.timeline
    smap = SessionMap(timeline)
    session.warm(start_s, also=(PAUSED_TEXT,))
    saver = PositionSaver(history, None)
    if history is not None:
        step = smap.step_at(start_s).label
        if record is not None:
            saver.session_id = record.id
            history.reopen(record.id, duration_s=timeline.duration_s, position_s=start_s, step=step)
        else:
            saver.session_id = history.start(routine=session.name, source=session.source, level=session.level,
                                             settings=session.settings(), duration_s=session.duration_s,
                                             position_s=start_s, step=step)
    clock = MonotonicClock()

    parts = session.later_parts()
    playing_last = [not parts]  # whether the part playing is the whole session (set at each hand-over)

    def status(st: Status) -> None:
        if st.duration_s < session.duration_s:  # the intro of an early start: count the whole session
            st = replace(st, duration_s=session.duration_s)
        if st.event == "finish" and not playing_last[0]:
            st = replace(st, event="tick")  # the end of a part is not the end of the session
        if on_status is not None:
            on_status(st)
        saver(st)

    def player_for(tl: Any) -> Player:
        master = session.master(tl, sample_rate_hz=44100, channels=sink.channels)
        return Player(tl, master, sink, clock, inbox, say=session.voice.clip, on_status=status,
                      options=PlayerOptions(max_stream_s=sink.max_stream_s))

    whole = start_s == 0 and not parts and sink.channels == openings.CHANNELS
    try:
        player = player_for(timeline)
        continuation = None
        if opening_key is not None and whole:
            continuation = _opening(session, player.master, opening_key, early, held, clock)
        awake = False
        if held is not None and continuation is None:
            # The held device hands over to the session: if it is still playing, it is awake. Waiting
            # for it to let go keeps a device that neither mixes nor refuses from interleaving the two.
            awake = held.is_playing()
            held.stop()
            held.wait_done(0.3)
        outcome = player.run(start_s, device_awake=awake, continuation=continuation)
        # With an early start only the start was ready: carry on with each later part, planned meanwhile
        # (the rest of the introduction, then the whole session), from where the one before ended.
        for part in parts if outcome.finished else []:
            handover_s = timeline.duration_s
            if not part.done() and on_rest is not None:
                on_rest()
            timeline = part.result()
            playing_last[0] = part is session.rest
            if part is session.rest:
                session.duration_s = timeline.duration_s
            smap = SessionMap(timeline)
            if history is not None and saver.session_id is not None:
                history.reopen(saver.session_id, duration_s=session.duration_s, position_s=handover_s,
                               step=smap.step_at(handover_s).label)
            outcome = player_for(timeline).run(handover_s, device_awake=True)
            if not outcome.finished:
                break
    except (Interrupted, AudioDeviceError) as exc:
        position = getattr(exc, "position_s", 0.0)
        saver.end(position, smap.step_at(position).label,
                  "interrupted" if isinstance(exc, Interrupted) else "device-error")
        if isinstance(exc, AudioDeviceError):
            err = AudioDeviceError(f"{exc.message} at {smap.describe(position)}", hint=exc.hint)
            err.position_s = position  # type: ignore[attr-defined]
            raise err from None
        raise
    step = smap.step_at(outcome.position_s).label
    if outcome.finished:
        saver.end(timeline.duration_s, step, "finished")
        return Ending(True, timeline.duration_s, smap.describe(timeline.duration_s), timeline.duration_s)
    saver.end(outcome.position_s, step, "quit")
    return Ending(False, outcome.position_s, smap.describe(outcome.position_s), timeline.duration_s)


def _opening(session: PreparedSession, master: Any, key: str, early: openings.EarlyStart | None, held: Any,
             clock: MonotonicClock) -> Continuation | None:
    """Keep this session's opening for ``key``; carry on from ``early`` if it played exactly that.

    ``master``: the player's. Without an early start the opening is made and kept in the
    background (from a master of its own: a master is used by one thread). With one, the session's opening is made now
    (~10 ms for the built-in session) and compared sample for sample; the player then
    carries on right after it, if the device has not taken that far (see Continuation).
    """
    rate = openings.RATE_HZ

    def ours(m: Any) -> bytes:
        import numpy as np

        from coach.playback import to_int16

        frames = min(int(round(openings.OPENING_S * rate)), m.total_frames)
        blocks = list(m.blocks(0.0, frames / rate, 0.5))
        return to_int16(np.concatenate(blocks)).tobytes() if blocks else b""

    def keep(samples: bytes, kept: openings.Opening | None) -> None:
        if not samples:
            return
        if kept is None or kept.samples != samples:
            openings.save(key, samples, misses=kept.misses + 1 if kept is not None else 0)
        elif kept.misses:
            openings.save(key, samples, misses=0)
        else:
            openings.touch(key)

    if early is None or held is None:
        def background() -> None:
            try:
                own = session.master(session.timeline, sample_rate_hz=rate, channels=openings.CHANNELS)
                keep(ours(own), openings.load(key))
            except Exception:  # noqa: BLE001 - a head start for next time, nothing this session needs
                pass

        thread = threading.Thread(target=background, name="coach-opening", daemon=True)
        thread.start()
        at_exit_wait_for(thread)  # it resamples clips (soxr, C++): not to be cut off by the interpreter's end
        return None
    samples = ours(master)
    keep(samples, early.opening)
    if samples != early.opening.samples or not held.is_playing():
        return None
    elapsed_s = time.monotonic() - held.started_s
    return Continuation(held, early.preroll_frames, early.opening_frames, t0_s=clock.now_s() - elapsed_s,
                        refused=lambda: openings.save(key, samples, misses=early.opening.misses + 1))


class PositionSaver:
    """Writes the position to the history at each step, pause and every few seconds."""

    def __init__(self, history: Any, session_id: int | None) -> None:
        self.history = history
        self.session_id = session_id
        self._last_s = 0.0
        self._last_step: str | None = None

    def __call__(self, st: Status) -> None:
        if self.history is None or self.session_id is None:
            return
        now = time.monotonic()
        label = st.step.label
        if st.event != "tick" or label != self._last_step or now - self._last_s >= HISTORY_EVERY_S:
            self.history.update(self.session_id, position_s=st.position_s, step=label)
            self._last_s, self._last_step = now, label

    def end(self, position_s: float, step: str, outcome: str) -> None:
        if self.history is not None and self.session_id is not None:
            self.history.end(self.session_id, position_s=position_s, step=step, outcome=outcome)


__all__ = ["Command", "Ending", "PositionSaver", "coach_live", "start_position"]
