"""The live scheduler: plays a Timeline through an AudioSink, on time, with controls.

Timing model. Audio goes to the device as *streams*: one continuous buffer per
stretch of uninterrupted playing (see ``coach.playback``). Inside a stream the
device clock places every sample, so cues cannot drift relative to each other
and the output never idles between cues. Between streams (after a pause, a
skip, or at a seam every ``max_stream_s``) the new stream is anchored to the
monotonic clock: session position ``p`` is heard at ``t0 + (p - first)``.
Blocks are rendered and written ``lookahead_s`` before they are heard, each at
an absolute time computed from the anchor, never "after the previous sleep", so
waking late never shifts what is heard.

The clock, the sink and the source of commands are injected: the CLI passes a
monotonic clock, the speaker and the keyboard; tests pass a fake clock that
moves only when the player waits, a recording sink and scripted key presses.
"""

from __future__ import annotations

import enum
import mmap
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from coach.audio.clip import Clip
from coach.audio.master import Master
from coach.errors import AudioDeviceError, Interrupted
from coach.playback import AudioSink, DeviceBusy, Stream
from coach.session_map import SessionMap, Step
from coach.timeline import Cue, Timeline

BUSY_ATTEMPTS = 50
PAUSED_TEXT = "Paused."
"""What the player says when paused (``coach.live`` has the session make it ready with its own clips)."""
BUSY_WAIT_S = 0.01
DRAIN_WAIT_S = 0.3
"""Longest wait for a stopped stream to drain before the next one starts (it takes ~0.1 s)."""
"""A stopped stream drains the device's ~0.1 s buffer before it closes: retry for up to 0.5 s."""


class Command(enum.Enum):
    """What the listener can ask for while a session plays."""

    PAUSE = "pause"  # pause, or resume when paused (the space key, MPRIS PlayPause)
    PLAY = "play"  # resume when paused, else nothing (MPRIS Play)
    HOLD = "hold"  # pause when playing, else nothing (MPRIS Pause)
    NEXT = "next"
    BACK = "back"
    REPEAT = "repeat"
    QUIT = "quit"


@dataclass(frozen=True)
class Seek:
    """Go to the start of the step at a session time (MPRIS SetPosition and Seek).

    ``position_s`` is that time, or with ``relative`` an offset from where the
    session is now. An absolute time outside the session is ignored; an offset
    past the end acts as "next step", one before the start goes to the start.
    """

    position_s: float
    relative: bool = False


KEYS_HELP = "keys: space pause/resume · n or → next step · b or ← back to step start · r repeat · q quit"

_KEYS = {
    b" ": Command.PAUSE, b"p": Command.PAUSE,
    b"n": Command.NEXT, b"\x1b[C": Command.NEXT, b"\x1bOC": Command.NEXT,
    b"b": Command.BACK, b"\x1b[D": Command.BACK, b"\x1bOD": Command.BACK,
    b"r": Command.REPEAT, b"q": Command.QUIT,
}


def decode_keys(data: bytes) -> list[Command]:
    """Commands in a burst of terminal input (arrow keys arrive as escape sequences)."""
    out: list[Command] = []
    i = 0
    while i < len(data):
        if data[i : i + 3] in _KEYS:
            out.append(_KEYS[data[i : i + 3]])
            i += 3
            continue
        key = data[i : i + 1].lower()
        if key in _KEYS:
            out.append(_KEYS[key])
        i += 1
    return out


# -- clock and commands ---------------------------------------------------------


class Clock(Protocol):
    """Seconds on a clock that never jumps (monotonic)."""

    def now_s(self) -> float: ...


class MonotonicClock:
    """The real clock."""

    def now_s(self) -> float:
        return time.monotonic()


class Inbox(Protocol):
    """Where commands come from: waits until one arrives or the clock reaches ``until_s``."""

    def get(self, until_s: float) -> Command | Seek | None: ...


class QueueInbox:
    """Commands put by other threads (keyboard reader, media controls), waited for on the real clock."""

    MAX_WAIT_S = 0.1  # bounded so that Ctrl-C is handled promptly everywhere

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.queue: queue.Queue[Command | Seek] = queue.Queue()

    def put(self, command: Command | Seek) -> None:
        self.queue.put(command)

    def get(self, until_s: float) -> Command | Seek | None:
        timeout = min(until_s - self.clock.now_s(), self.MAX_WAIT_S)
        try:
            return self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return None


# -- the player -----------------------------------------------------------------


@dataclass(frozen=True)
class PlayerOptions:
    """Tuning of the scheduler; the defaults suit a real device."""

    block_s: float = 0.5
    """Length of one rendered block."""
    lookahead_s: float = 1.5
    """How long before it is heard a block is written to the stream."""
    preroll_s: float = 0.4
    """Inaudible silence leading each new stream: wakes a Bluetooth output before the first syllable."""
    awake_preroll_s: float = 0.1
    """Preroll of the first stream when the device was kept playing until then (``run(device_awake=True)``)."""
    max_stream_s: float = 1800.0
    """Longest stream; a longer session is cut into streams at silent moments."""
    seam_gap_s: float = 0.2
    """Silence left out between two streams at a seam, so a device that cannot mix is free again."""
    status_interval_s: float = 0.5
    repeat_gap_s: float = 0.4
    """Silence between a repeated cue and the session carrying on."""
    busy_retry_s: float = 1.0
    """How long to keep retrying a device that is busy at a seam."""


@dataclass(frozen=True)
class Status:
    """Where the session is, for the status line and the history."""

    position_s: float
    duration_s: float
    paused: bool
    step: Step
    phase: str | None
    phase_left_s: float | None
    side: str | None = None
    event: str = "tick"
    """tick, start, pause, resume, next, back, seek, repeat, seam, finish, quit."""
    step_index: int = 0
    """Index of ``step`` among the session's steps (0 is the first)."""
    steps: int = 1
    """How many steps the session has (a step to skip to follows when ``step_index + 1 < steps``)."""

    @property
    def left_s(self) -> float:
        return max(0.0, self.duration_s - self.position_s)


@dataclass(frozen=True)
class Outcome:
    """How a session ended (when it did not raise)."""

    finished: bool
    position_s: float
    late_blocks: int
    """Blocks written after they were due: the device played silence instead of them."""
    streams: int
    """Device streams opened for the session (1 + pauses, skips, repeats and seams)."""


@dataclass(frozen=True)
class Continuation:
    """A stream already playing the session's first ``frames`` after ``pre_frames`` of silence (``coach.opening``).

    The player carries on in it from session frame ``frames``, writing at stream
    offset ``pre_frames + frames``, which the device must not have taken yet.
    """

    stream: Stream
    pre_frames: int
    frames: int
    t0_s: float
    """Clock time at which stream offset 0 was heard (when the stream started)."""
    guard_s: float = 0.5
    """How far ahead of the clock the device may have taken the stream (its buffers): the rest must
    be written by ``t0_s + (pre_frames + frames) / rate - guard_s``, or the player starts a new stream."""
    refused: Callable[[], None] | None = None
    """Called when it was too late to carry on (the session then starts anew on a new stream)."""


@dataclass
class _Playing:
    """One stream of session audio and where it sits on the clock."""

    stream: Stream
    pre_frames: int
    first_frame: int
    last_frame: int
    blocks: Iterator[np.ndarray]
    next_frame: int
    t0_s: float = 0.0
    """Clock time at which stream offset 0 is heard."""
    started: bool = False
    stopped: bool = False
    open_ended: bool = False
    """The stream plays on (silence) past this part of the session: a continuation's does."""


@dataclass
class _Seam:
    """The next stream of a long session: where it starts and when it is due."""

    first_frame: int
    planned_s: float
    retry_s: float
    give_up_s: float | None = None


@dataclass
class _State:
    paused_at_s: float | None = None
    late_blocks: int = 0
    streams: int = 0
    announcements: list[Stream] = field(default_factory=list)
    stopped: list[Stream] = field(default_factory=list)
    """Streams stopped but maybe still draining what the device held (see ``Player._start_when_free``)."""


class Player:
    """Plays one Timeline to the end (or until quit), honouring commands from ``inbox``."""

    def __init__(
        self,
        timeline: Timeline,
        master: Master,
        sink: AudioSink,
        clock: Clock,
        inbox: Inbox,
        *,
        say: Callable[[str], Clip] | None = None,
        on_status: Callable[[Status], None] | None = None,
        options: PlayerOptions | None = None,
    ) -> None:
        self.timeline = timeline
        self.map = SessionMap(timeline)
        self.master = master
        self.sink = sink
        self.clock = clock
        self.inbox = inbox
        self.say = say
        self.on_status = on_status or (lambda status: None)
        self.options = options = options or PlayerOptions()
        self.rate_hz = master.sample_rate_hz
        self.end_frame = self._frame(timeline.duration_s)
        self._cur: _Playing | None = None
        self._seam: _Seam | None = None
        self._state = _State()

    def run(self, start_s: float = 0.0, *, device_awake: bool = False,
            continuation: Continuation | None = None) -> Outcome:
        """Play from ``start_s``; return at the end or on quit.

        ``device_awake``: the output was playing (silence) until now, so the first
        stream needs only a short preroll. ``continuation``: the session's start
        is already playing; carry on in that stream (``start_s`` is then 0).

        Raises ``Interrupted`` on Ctrl-C (KeyboardInterrupt or Interrupted, after silencing the device) and
        ``AudioDeviceError`` if the device fails; both carry ``position_s``.
        """
        first_preroll = self._preroll(self.options.awake_preroll_s if device_awake else None)
        try:
            if continuation is None or not self._carry_on(continuation):
                if continuation is not None:  # too late to carry on: the session from its start, anew
                    if continuation.refused is not None:
                        continuation.refused()
                    continuation.stream.stop()
                    self._state.stopped.append(continuation.stream)
                    first_preroll = self._preroll(self.options.awake_preroll_s)
                    start_s = 0.0
                self._start(self._frame(min(max(0.0, start_s), self.timeline.duration_s)), first_preroll)
            self._emit("start")
            return self._loop()
        except (KeyboardInterrupt, Interrupted) as exc:
            position = self.position_s()
            self._silence()
            what = exc.message if isinstance(exc, Interrupted) else "interrupted"
            err = Interrupted(f"{what} at {self.map.describe(position)}")
            err.position_s = position  # type: ignore[attr-defined]
            raise err from None
        except AudioDeviceError as exc:
            if getattr(exc, "position_s", None) is None:
                exc.position_s = self.position_s()  # type: ignore[attr-defined]
            self._silence()
            raise

    def position_s(self) -> float:
        """Session position now (while paused: where it will carry on)."""
        if self._state.paused_at_s is not None:
            return self._state.paused_at_s
        cur = self._cur
        if cur is None or not cur.started:
            return cur.first_frame / self.rate_hz if cur else 0.0
        frame = cur.first_frame + (self.clock.now_s() - cur.t0_s) * self.rate_hz - cur.pre_frames
        return min(max(frame, cur.first_frame), cur.last_frame) / self.rate_hz

    # -- the loop -------------------------------------------------------------

    def _loop(self) -> Outcome:
        next_status_s = self.clock.now_s() + self.options.status_interval_s
        while True:
            now = self.clock.now_s()
            wake = next_status_s
            cur = self._cur
            if cur is not None and self._state.paused_at_s is None:
                while cur.next_frame < cur.last_frame and self._due_s(cur) <= now:
                    self._write_block(cur)
                end_s = cur.t0_s + (cur.pre_frames + cur.last_frame - cur.first_frame) / self.rate_hz
                if cur.next_frame < cur.last_frame:
                    wake = min(wake, self._due_s(cur))
                elif cur.last_frame < self.end_frame and self._seam is None:
                    first = min(self.end_frame, cur.last_frame + self._frame(self.options.seam_gap_s))
                    planned = cur.t0_s + (cur.pre_frames + first - cur.first_frame) / self.rate_hz
                    self._seam = _Seam(first, planned, planned)
                if self._seam is not None:
                    if now >= self._seam.retry_s:
                        self._start_seam(now)
                        continue
                    wake = min(wake, self._seam.retry_s)
                elif cur.last_frame >= self.end_frame and cur.next_frame >= cur.last_frame and now >= end_s:
                    # The device may still hold its last ~0.1 s when the clock says it is over;
                    # a stream that goes on past the session (a continuation's) plays silence on.
                    if not cur.stream.is_playing() or now >= end_s + 0.5 or self._taken_whole(cur):
                        self._emit("finish", self.timeline.duration_s)
                        return self._outcome(True, self.timeline.duration_s)
                    wake = min(wake, now + 0.02)
                else:
                    wake = min(wake, end_s)
                if not cur.stream.is_playing() and now < end_s - 0.5:
                    raise AudioDeviceError(
                        "the audio output device stopped playing",
                        hint="check the speaker or headphones, or write the session to a file with `coach export`",
                    )
            if now >= next_status_s:
                self._emit("tick")
                next_status_s = now + self.options.status_interval_s
                wake = min(wake, next_status_s)
            command = self.inbox.get(wake)
            if command is not None:
                outcome = self._handle(command)
                if outcome is not None:
                    return outcome

    def _outcome(self, finished: bool, position_s: float) -> Outcome:
        return Outcome(finished, position_s, self._state.late_blocks, self._state.streams)

    def _due_s(self, cur: _Playing) -> float:
        offset = cur.pre_frames + cur.next_frame - cur.first_frame
        return cur.t0_s + offset / self.rate_hz - self.options.lookahead_s

    def _write_block(self, cur: _Playing) -> None:
        block = next(cur.blocks)
        offset = cur.pre_frames + cur.next_frame - cur.first_frame
        if cur.started and self.clock.now_s() > cur.t0_s + offset / self.rate_hz:
            self._state.late_blocks += 1
        cur.stream.write(offset, block)
        cur.next_frame += len(block)

    # -- streams --------------------------------------------------------------

    def _frame(self, seconds: float) -> int:
        return int(round(seconds * self.rate_hz))

    def _preroll(self, seconds: float | None = None) -> np.ndarray:
        return np.zeros(self._frame(self.options.preroll_s if seconds is None else seconds), dtype=np.float32)

    def _open(self, first_frame: int, preamble: np.ndarray) -> _Playing:
        """A stream holding ``preamble`` then the session from ``first_frame``, first block written."""
        last_frame = self._stream_end(first_frame)
        channels = self.sink.channels
        stream = self.sink.open_stream(len(preamble) + last_frame - first_frame)
        if len(preamble):
            stream.write(0, np.repeat(preamble[:, None], channels, axis=1))
        blocks = self.master.blocks(first_frame / self.rate_hz, last_frame / self.rate_hz, self.options.block_s)
        cur = _Playing(stream, len(preamble), first_frame, last_frame, blocks, first_frame)
        self._seam = None
        if first_frame < last_frame:
            self._write_block(cur)  # the device must not start on an empty buffer
        return cur

    def _start(self, first_frame: int, preamble: np.ndarray) -> None:
        cur = self._open(first_frame, preamble)
        self._start_when_free(cur.stream)
        cur.t0_s = self.clock.now_s()
        cur.started = True
        self._cur = cur
        self._state.streams += 1

    def _carry_on(self, c: Continuation) -> bool:
        """Take over ``c.stream`` from session frame ``c.frames`` (see Continuation); False if too late.

        The first block is rendered before the check, so that nothing slow comes between the
        check and the write: the device must not have taken that far when it is written.
        """
        first = min(c.frames, self.end_frame)
        last = max(first, self._stream_end(0, room_frames=c.stream.frames - c.pre_frames))
        blocks = self.master.blocks(first / self.rate_hz, last / self.rate_hz, self.options.block_s)
        block = next(blocks, None)
        at = c.pre_frames + first
        if self.clock.now_s() > c.t0_s + at / self.rate_hz - c.guard_s:
            return False
        untouched = getattr(c.stream, "untouched_from", None)
        if untouched is not None:
            after = untouched(at)  # the page holding `at` has the opening's end in it: the next one must be free
            if after is not None and after > self._page_after(at):
                return False
        cur = _Playing(c.stream, c.pre_frames, 0, last, blocks, first, t0_s=c.t0_s, started=True, open_ended=True)
        if block is not None:
            cur.stream.write(at, block)
            cur.next_frame += len(block)
        self._cur = cur
        self._seam = None
        self._state.streams += 1
        return True

    def _page_after(self, offset_frames: int) -> int:
        """The first frame of the first memory page wholly after stream offset ``offset_frames``."""
        page = mmap.PAGESIZE // (2 * self.sink.channels)
        return -(-offset_frames // page) * page if offset_frames % page else offset_frames

    def _taken_whole(self, cur: _Playing) -> bool:
        """An open-ended stream: the device has taken all of the part (read past the page its end is in)."""
        untouched = getattr(cur.stream, "untouched_from", None)
        if not cur.open_ended or untouched is None:
            return False
        end = cur.pre_frames + cur.last_frame - cur.first_frame
        after = untouched(end)
        return after is None or after > self._page_after(end)

    def _start_when_free(self, stream: Stream) -> None:
        """Start ``stream`` once the streams just stopped have let go of the device (~0.1 s).

        A device that mixes plays their last ~0.1 s under the new stream's preroll anyway; one
        that neither mixes nor refuses would interleave the two; one that refuses is retried.
        """
        deadline = time.monotonic() + DRAIN_WAIT_S  # real time: only a real device drains
        while any(s.is_playing() for s in self._state.stopped) and time.monotonic() < deadline:
            time.sleep(BUSY_WAIT_S)
        self._state.stopped.clear()
        for attempt in range(BUSY_ATTEMPTS):
            try:
                stream.start(0)
                return
            except DeviceBusy:
                if attempt == BUSY_ATTEMPTS - 1:
                    raise
                time.sleep(BUSY_WAIT_S)  # a real wait: only a real device is ever busy

    def _start_seam(self, now: float) -> None:
        """Carry on after a seam exactly where the clock says, skipping the silence we are late by."""
        seam = self._seam
        assert seam is not None
        last = self._cur
        if last is not None and not last.stopped and last.open_ended:
            # A continuation's stream plays silence on past its part: it lets the device go (~0.1-0.3 s)
            # before the next starts, which then skips the silence it is late by (a seam is in silence).
            last.stream.stop()
            last.stopped = True
            deadline = time.monotonic() + DRAIN_WAIT_S  # real time: only a real device drains
            while last.stream.is_playing() and time.monotonic() < deadline:
                time.sleep(BUSY_WAIT_S)
        cur = self._open(seam.first_frame, np.zeros(0, np.float32))
        late_frames = self._frame(self.clock.now_s() - seam.planned_s)
        skip = min(max(0, late_frames), cur.next_frame - cur.first_frame)
        try:
            cur.t0_s = self.clock.now_s() - skip / self.rate_hz
            cur.stream.start(skip)
        except DeviceBusy:
            # A device that cannot mix may still be closing the last stream: try again shortly.
            if seam.give_up_s is None:
                seam.give_up_s = now + self.options.busy_retry_s
            if now >= seam.give_up_s:
                raise
            seam.retry_s = now + 0.01
            self._seam = seam
            return
        cur.started = True
        self._cur = cur
        self._state.streams += 1
        self._emit("seam")

    def _stream_end(self, first_frame: int, room_frames: int | None = None) -> int:
        """Where a stream starting at ``first_frame`` ends: the session end or a silent seam.

        ``room_frames``: the session frames the stream has room for (default: ``max_stream_s``).
        """
        limit = first_frame + (self._frame(self.options.max_stream_s) if room_frames is None else room_frames)
        if limit >= self.end_frame:
            return self.end_frame
        gap = self.options.seam_gap_s
        # The latest silence in reach, preferably a long one: a next stream that starts
        # late skips silence to stay on time, and must not skip into a cue.
        roomy = tight = None
        covered_to = first_frame / self.rate_hz
        for cue in self.map.cues:
            if cue.start_s >= limit / self.rate_hz + gap:
                break
            silence_s = cue.start_s - covered_to
            if silence_s > gap + 0.1 and self._frame(covered_to + 0.05) <= limit:
                tight = covered_to + 0.05
                if silence_s > gap + 1.0:
                    roomy = tight
            covered_to = max(covered_to, cue.end_s)
        best = roomy if roomy is not None else tight
        if best is None or self._frame(best) <= first_frame:
            return limit
        return self._frame(best)

    def _silence(self) -> None:
        """Stop every sound now (Ctrl-C, quit, pause, device error)."""
        cur = self._cur
        if cur is not None and not cur.stopped:
            cur.stream.stop()
            cur.stopped = True
            self._state.stopped.append(cur.stream)
        self._seam = None
        for stream in self._state.announcements:
            stream.stop()
        self._state.stopped += self._state.announcements
        self._state.announcements.clear()

    def _announce(self, samples: np.ndarray) -> None:
        """Play a short sound outside the session (while paused)."""
        samples = np.concatenate([self._preroll(), samples])
        stream = self.sink.open_stream(len(samples))
        stream.write(0, np.repeat(samples[:, None], self.sink.channels, axis=1))
        self._start_when_free(stream)
        self._state.announcements.append(stream)
        self._state.streams += 1

    def _at_rate(self, clip: Clip) -> np.ndarray:
        return self.master.one_off(clip)

    # -- commands -------------------------------------------------------------

    def _handle(self, command: Command | Seek) -> Outcome | None:
        state = self._state
        paused = state.paused_at_s is not None
        position = self.position_s()
        if isinstance(command, Seek):
            return self._seek(command, position, paused)
        if command is Command.PLAY or command is Command.HOLD:
            if paused == (command is Command.PLAY):
                command = Command.PAUSE  # the toggle, in the one direction asked for
            else:
                return None
        if command is Command.QUIT:
            self._silence()
            self._emit("quit", position)
            return self._outcome(False, position)
        if command is Command.PAUSE and paused:
            self._silence()
            state.paused_at_s = None
            self._start(self._frame(position), self._preroll())
            self._emit("resume")
        elif command is Command.PAUSE:
            self._silence()
            state.paused_at_s = self.map.resume_point(position)
            self._emit("pause")  # before "Paused." (which may still need synthesis): the status is at once
            if self.say is not None:
                self._announce(self._at_rate(self.say(PAUSED_TEXT)))
        elif command in (Command.NEXT, Command.BACK):
            target = self._target(position, command)
            if target is not None:
                self._go(target, paused, command.value)
        elif command is Command.REPEAT:
            cue = self.map.last_spoken(position)
            if cue is None:
                return None
            clip = self._at_rate(self.master.clip_for(cue))
            self._silence()
            if paused:
                self._announce(clip)
            else:
                gap = np.zeros(self._frame(self.options.repeat_gap_s), np.float32)
                self._start(self._frame(self.map.resume_point(position)),
                            np.concatenate([self._preroll(), clip, gap]))
            self._emit("repeat")
        return None

    def _seek(self, seek: Seek, position_s: float, paused: bool) -> None:
        duration = self.timeline.duration_s
        at = position_s + seek.position_s if seek.relative else seek.position_s
        if seek.relative and at >= duration:
            target = self._target(position_s, Command.NEXT)
        elif not seek.relative and not 0.0 <= at <= duration:
            return None
        else:
            target = self.map.step_at(max(0.0, at)).start_s
        if target is not None:
            self._go(target, paused, "seek")
        return None

    def _go(self, target_s: float, paused: bool, event: str) -> None:
        """Carry on from ``target_s`` (while paused: stay paused there)."""
        if paused:
            self._state.paused_at_s = target_s
        else:
            self._silence()
            self._start(self._frame(target_s), self._preroll())
        self._emit(event, target_s)

    def _target(self, position_s: float, command: Command) -> float | None:
        steps = self.map.steps
        i = self.map.step_index(position_s)
        if command is Command.NEXT:
            return self.map.next_start(position_s)
        # Back: to the start of this step, or of the one before if this one has just begun.
        if i > 0 and position_s - steps[i].start_s < 2.0:
            return steps[i - 1].start_s
        return steps[i].start_s

    def _emit(self, event: str, position_s: float | None = None) -> None:
        position = self.position_s() if position_s is None else position_s
        phase, left = self.map.phase_at(position)
        index = self.map.step_index(position)
        self.on_status(Status(position, self.timeline.duration_s, self._state.paused_at_s is not None,
                              self.map.steps[index], phase, left, self.map.side_at(position), event,
                              index, len(self.map.steps)))
