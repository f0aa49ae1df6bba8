"""The player's timing logic, with a fake clock, scripted keys and a recording sink.

Each fake clip is a constant level unique to its cue, so the audio a recording
stream "plays" tells which cue is heard when. A cue's start error is the time
its level is first heard minus the time the schedule says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest

from coach.audio.clip import Clip
from coach.errors import AudioDeviceError, Interrupted, UsageError
from coach.playback import DeviceBusy
from coach.audio.master import Master
from coach.player import Command, Continuation, Outcome, Player, PlayerOptions, Seek, Status, decode_keys
from coach.session_map import SessionMap
from coach.timeline import Chapter, Cue, Timeline, VoiceSpec

RATE = 1000  # a low rate keeps an hour of recorded audio small; timing is what is tested
FRAME_S = 1 / RATE
OPTS = PlayerOptions(block_s=0.5, lookahead_s=1.5, preroll_s=0.4)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now_s(self) -> float:
        return self.t


class ScriptedInbox:
    """Key presses at given times; every wait oversleeps by ``oversleep()`` like a real OS."""

    def __init__(self, clock: FakeClock, script=(), oversleep=lambda: 0.0) -> None:
        self.clock = clock
        self.script = sorted(script, key=lambda item: item[0])
        self.oversleep = oversleep
        self.waits = 0

    def get(self, until_s: float):
        self.waits += 1
        if self.waits > 5_000_000:
            raise AssertionError("the player never stops waiting")
        if self.script and self.script[0][0] <= until_s:
            t, command = self.script.pop(0)
            self.clock.t = max(self.clock.t, t)
            if command == "ctrl-c":
                raise KeyboardInterrupt
            if command == "sigterm":
                raise Interrupted("terminated")  # what coach.cli's signal handler raises
            return command
        self.clock.t = max(self.clock.t, until_s + self.oversleep())
        return None


@dataclass
class RecordingStream:
    clock: FakeClock
    frames: int
    channels: int
    fail_at_s: float | None = None
    audio: np.ndarray = field(init=False)
    writes: list[tuple[float, int, int]] = field(default_factory=list)
    started_s: float | None = None
    skip: int = 0
    stopped_s: float | None = None

    def __post_init__(self) -> None:
        self.audio = np.zeros((self.frames, self.channels), np.float32)

    def write(self, offset_frames: int, block: np.ndarray) -> None:
        assert block.dtype == np.float32 and block.shape[1] == self.channels
        assert self.stopped_s is None, "written after stop"
        assert offset_frames + len(block) <= self.frames
        self.audio[offset_frames : offset_frames + len(block)] = block
        self.writes.append((self.clock.t, offset_frames, len(block)))

    def start(self, skip_frames: int = 0) -> None:
        assert self.started_s is None
        self.started_s, self.skip = self.clock.t, skip_frames

    def stop(self) -> None:
        self.stopped_s = self.clock.t if self.stopped_s is None else self.stopped_s

    def end_s(self) -> float:
        natural = self.started_s + (self.frames - self.skip) / RATE
        return min(t for t in (natural, self.stopped_s, self.fail_at_s) if t is not None)

    def is_playing(self) -> bool:
        return self.started_s is not None and self.clock.t < self.end_s()

    def heard(self):
        """(clock time, frame) pairs of what the device played, and the samples, minus late writes."""
        n = int(round((self.end_s() - self.started_s) * RATE))
        audio = self.audio[self.skip : self.skip + n, 0].copy()
        for t, offset, length in self.writes:
            due = self.started_s + (offset - self.skip) / RATE
            if t > due + 1e-9:  # written after the device got there: it played silence
                late = int(round((t - due) * RATE))
                audio[offset - self.skip : offset - self.skip + min(late, length)] = 0
        return self.started_s, audio


class RecordingSink:
    """Records every stream; the first ``busy_starts`` starts after the first stream fail as busy."""

    def __init__(self, clock: FakeClock, busy_starts: int = 0) -> None:
        self.clock = clock
        self.sample_rate_hz = RATE
        self.channels = 1
        self.streams: list[RecordingStream] = []
        self.busy_left = busy_starts
        self.fail_at_s: float | None = None

    def open_stream(self, frames: int) -> RecordingStream:
        sink = self

        class Busy(RecordingStream):
            def start(self, skip_frames: int = 0) -> None:
                if sink.busy_left > 0 and len(sink.streams) > 1:
                    sink.busy_left -= 1
                    raise DeviceBusy("busy")
                super().start(skip_frames)

        stream = Busy(self.clock, frames, self.channels, self.fail_at_s)
        self.streams.append(stream)
        return stream

    def onsets(self, levels: dict[float, int], since_s: float = 0.0) -> dict[int, float]:
        """Clock time each cue (found by its level) is first heard in streams started at ``since_s`` or later."""
        found: dict[int, float] = {}
        for stream in self.streams:
            if stream.started_s is None or stream.started_s < since_s:
                continue
            t0, audio = stream.heard()
            change = np.flatnonzero(np.diff(np.concatenate([[0.0], audio])) != 0)
            for i in change:
                cue = levels.get(round(float(audio[i]), 6))
                if cue is not None and cue not in found:
                    found[cue] = t0 + i / RATE
        return found


def level(i: int) -> float:
    return round(0.01 + i * 0.0001, 6)


def make_timeline(sets: int = 3, work_s: float = 20.0) -> Timeline:
    """Intro, one exercise of ``sets`` sets (a spoken cue every 2 s while working), outro."""
    cues: list[Cue] = [Cue(0.0, 2.5, "speech", "intro", text="Welcome."),
                       Cue(4.0, 6.0, "speech", "intro", text="Let us start.")]
    chapters = [Chapter(0.0, "Introduction")]
    t = 10.0
    chapters.append(Chapter(t, "Bird-Dog", "bird-dog"))
    for s in range(1, sets + 1):
        cues.append(Cue(t, t + 1.5, "speech", "instruction", text=f"Set {s}.", exercise="bird-dog", set=s))
        for k, word in enumerate(("Three", "Two", "One")):
            cues.append(Cue(t + 2 + k, t + 2.4 + k, "speech", "countdown", text=word, exercise="bird-dog", set=s))
        cues.append(Cue(t + 5, t + 5.2, "sound", "work", sound="start", exercise="bird-dog", set=s))
        for r in range(int(work_s // 2)):
            cues.append(Cue(t + 6 + 2 * r, t + 6.6 + 2 * r, "speech", "work", text=f"rep {r}",
                            exercise="bird-dog", set=s, rep=r + 1, optional=True))
        t += 6 + work_s
        cues.append(Cue(t, t + 1.0, "speech", "rest", text="Rest.", exercise="bird-dog", set=s))
        t += 10
    chapters.append(Chapter(t, "Finish"))
    cues.append(Cue(t, t + 2.0, "speech", "outro", text="Well done."))
    return Timeline("test", "Test session", "standard", VoiceSpec(engine="estimate"), t + 4.0,
                    tuple(chapters), tuple(cues))


class Harness:
    def __init__(self, timeline: Timeline, script=(), oversleep=lambda: 0.0, options=OPTS, busy_starts=0,
                 say=True) -> None:
        self.timeline = timeline
        self.clock = FakeClock()
        self.inbox = ScriptedInbox(self.clock, script, oversleep)
        self.sink = RecordingSink(self.clock, busy_starts)
        self.levels = {level(i): i for i in range(len(timeline.cues))}
        self.index = {id(c): i for i, c in enumerate(timeline.cues)}
        self.statuses: list[Status] = []
        # Timing logic only: the master passes the clips through untouched (no gain, no limiting).
        master = Master(timeline, self.clip_for, sample_rate_hz=RATE, channels=self.sink.channels,
                        gain_db=0.0, ceiling_dbtp=20.0)
        self.player = Player(timeline, master, self.sink, self.clock, self.inbox,
                             say=self.say if say else None, on_status=self.statuses.append, options=options)

    def clip_for(self, cue: Cue) -> Clip:
        n = int(round(cue.duration_s * RATE))
        return Clip(np.full(n, level(self.index[id(cue)]), np.float32), RATE)

    def say(self, text: str) -> Clip:
        return Clip(np.full(300, 0.9, np.float32), RATE)

    def run(self, start_s: float = 0.0) -> Outcome:
        return self.player.run(start_s)

    def errors(self, expected: dict[int, float], since_s: float = 0.0) -> list[float]:
        heard = self.sink.onsets(self.levels, since_s)
        missing = set(expected) - set(heard)
        assert not missing, f"cues never heard: {sorted(missing)}"
        return [heard[i] - t for i, t in expected.items()]


def test_every_cue_is_heard_exactly_at_its_start_after_the_preroll():
    h = Harness(make_timeline(), oversleep=lambda: random.uniform(0, 0.03))
    outcome = h.run()
    assert outcome.finished and outcome.late_blocks == 0 and outcome.streams == 1
    errors = h.errors({i: OPTS.preroll_s + c.start_s for i, c in enumerate(h.timeline.cues)})
    assert max(abs(e) for e in errors) <= FRAME_S


def test_a_device_kept_awake_until_the_start_needs_only_a_short_first_preroll():
    h = Harness(make_timeline(), script=[(20.0, Command.PAUSE), (21.0, Command.PAUSE)])
    h.player.run(device_awake=True)
    first, _, resumed = h.sink.streams
    assert not np.any(first.audio[: int(OPTS.awake_preroll_s * RATE)])
    errors = h.errors({i: OPTS.awake_preroll_s + c.start_s for i, c in enumerate(h.timeline.cues)
                       if c.start_s < 19.0})
    assert max(abs(e) for e in errors) <= FRAME_S
    assert not np.any(resumed.audio[: int(OPTS.preroll_s * RATE)])  # after a pause: the full preroll again


def test_blocks_are_written_ahead_of_the_device_but_never_far_ahead():
    h = Harness(make_timeline(), oversleep=lambda: random.uniform(0, 0.05))
    h.run()
    (stream,) = h.sink.streams
    for t, offset, _ in stream.writes[1:]:
        heard_s = stream.started_s + offset / RATE
        assert heard_s - OPTS.lookahead_s - 0.06 <= t <= heard_s, (t, heard_s)


def test_the_session_ends_on_time_after_a_simulated_hour_with_jittery_sleeps_and_seams():
    rng = random.Random(7)
    timeline = make_timeline(sets=100, work_s=20.0)  # ~1 h
    assert 3500 < timeline.duration_s < 4000
    opts = PlayerOptions(max_stream_s=300.0)
    h = Harness(timeline, oversleep=lambda: rng.uniform(0, 0.04), options=opts, busy_starts=3)
    outcome = h.run()
    assert outcome.finished and outcome.late_blocks == 0
    assert outcome.streams >= 12  # it really crossed seams
    errors = h.errors({i: opts.preroll_s + c.start_s for i, c in enumerate(timeline.cues)})
    assert max(abs(e) for e in errors) <= FRAME_S
    finish = [s for s in h.statuses if s.event == "finish"]
    assert finish and abs(h.clock.t - (opts.preroll_s + timeline.duration_s)) < 0.6


def test_a_seam_goes_in_a_long_silence_rather_than_a_short_one():
    cues = (Cue(0.0, 2.0, "speech", "intro", text="a"), Cue(4.0, 8.5, "speech", "intro", text="b"),
            Cue(8.9, 12.0, "speech", "intro", text="c"), Cue(14.0, 15.0, "speech", "outro", text="d"))
    tl = Timeline("t", "T", "standard", VoiceSpec(engine="estimate"), 16.0, (Chapter(0.0, "All"),), cues)
    opts = PlayerOptions(max_stream_s=10.0)
    h = Harness(tl, options=opts)
    assert h.run().finished
    first = h.sink.streams[0]
    # Cut after "a" (2 s of silence follows), not after "b" (0.4 s): a late start cannot clip "b".
    assert first.frames == int(round((opts.preroll_s + 2.05) * RATE))
    errors = h.errors({i: opts.preroll_s + c.start_s for i, c in enumerate(cues)})
    assert max(abs(e) for e in errors) <= FRAME_S


def test_pause_silences_at_once_and_resume_carries_on_from_the_interrupted_cue():
    tl = make_timeline()
    pause_at, resume_at = 0.4 + 10.7, 30.0  # mid "Set 1." (10.0-11.5)
    h = Harness(tl, script=[(pause_at, Command.PAUSE), (resume_at, Command.PAUSE)])
    h.run()
    first, paused, resumed = h.sink.streams
    assert first.stopped_s == pause_at
    assert paused.started_s == pause_at and paused.frames == int(0.4 * RATE) + 300  # preroll + "Paused."
    assert paused.stopped_s == resume_at
    # Carries on from the start of "Set 1." after a preroll: everything later shifts by the same amount.
    shift = resume_at + 0.4 - 10.0
    expected = {i: shift + c.start_s for i, c in enumerate(tl.cues) if c.start_s >= 10.0}
    assert max(abs(e) for e in h.errors(expected, since_s=resume_at)) <= FRAME_S
    events = [s.event for s in h.statuses if s.event != "tick"]
    assert events[:3] == ["start", "pause", "resume"] and events[-1] == "finish"
    assert [s.paused for s in h.statuses if s.event == "pause"] == [True]


def test_a_device_still_busy_with_the_stopped_stream_is_retried_after_pause_and_resume():
    tl = make_timeline()
    h = Harness(tl, script=[(3.0, Command.PAUSE), (5.0, Command.PAUSE)], busy_starts=4)
    out = h.run()
    assert out.finished
    assert h.sink.busy_left == 0  # all four busy answers were met with a retry
    assert [s.started_s for s in h.sink.streams] == [0.0, 3.0, 5.0]  # "Paused." and the resumed session


def test_next_skips_to_the_next_set_and_back_returns_to_the_start_of_the_step():
    tl = make_timeline()
    set2 = next(c for c in tl.cues if c.set == 2).start_s  # 46.0
    h = Harness(tl, script=[(5.0, Command.NEXT), (6.0, Command.NEXT), (20.0, Command.BACK)])
    h.run()
    s0, s1, s2, s3 = h.sink.streams
    assert s0.stopped_s == 5.0 and s1.stopped_s == 6.0 and s2.stopped_s == 20.0
    # 5.0 -> Bird-Dog (10.0); 6.0 -> set 2; at 20.0 (set 2 + 13.6 s) back to the start of set 2.
    assert [s.position_s for s in h.statuses if s.event in ("next", "back")] == [10.0, set2, set2]
    expected = {i: 20.4 - set2 + c.start_s for i, c in enumerate(tl.cues) if c.start_s >= set2}
    assert max(abs(e) for e in h.errors(expected, since_s=20.0)) <= FRAME_S


def test_back_right_after_a_step_began_goes_to_the_step_before():
    h = Harness(make_timeline(), script=[(0.4 + 10.5, Command.BACK), (0.5 + 10.5, Command.QUIT)])
    out = h.run()
    assert [s.position_s for s in h.statuses if s.event == "back"] == [0.0]
    assert not out.finished


def test_skip_while_paused_moves_the_position_and_stays_paused():
    tl = make_timeline()
    h = Harness(tl, script=[(3.0, Command.PAUSE), (4.0, Command.NEXT), (9.0, Command.PAUSE)])
    h.run()
    assert len(h.sink.streams) == 3  # session, "Paused.", session again
    expected = {i: 9.4 - 10.0 + c.start_s for i, c in enumerate(tl.cues) if c.start_s >= 10.0}
    assert max(abs(e) for e in h.errors(expected, since_s=9.0)) <= FRAME_S


def test_repeat_replays_the_last_sentence_then_carries_on():
    tl = make_timeline()
    # At 0.4 + 17.0 the last sentence is "Set 1." (counts and numbers are not repeated).
    h = Harness(tl, script=[(17.4, Command.REPEAT)])
    h.run()
    first, second = h.sink.streams
    assert first.stopped_s == 17.4
    set1 = next(i for i, c in enumerate(tl.cues) if c.text == "Set 1.")
    pre = int(0.4 * RATE)
    assert np.all(second.audio[pre : pre + 1500, 0] == np.float32(level(set1)))
    # 17.0 falls in the silence between counts: the session resumes there, after clip + gap.
    resumed_at = 17.4 + 0.4 + 1.5 + OPTS.repeat_gap_s
    expected = {i: resumed_at - 17.0 + c.start_s for i, c in enumerate(tl.cues) if c.start_s > 17.0}
    assert max(abs(e) for e in h.errors(expected, since_s=17.4)) <= FRAME_S


def test_starting_from_a_position_plays_only_what_comes_after():
    tl = make_timeline()
    start = SessionMap(tl).resolve_from("bird-dog")
    assert start == 10.0
    h = Harness(tl)
    h.run(start)
    expected = {i: 0.4 - 10.0 + c.start_s for i, c in enumerate(tl.cues) if c.start_s >= 10.0}
    assert max(abs(e) for e in h.errors(expected)) <= FRAME_S
    heard = h.sink.onsets(h.levels)
    assert all(tl.cues[i].start_s >= 10.0 for i in heard)


def test_from_accepts_clock_times_and_snaps_back_to_the_start_of_a_cue():
    m = SessionMap(make_timeline())
    assert m.resolve_from("0:10.5") == 10.0  # inside "Set 1." (10.0-11.5)
    assert m.resolve_from("1:00") == 60.0
    assert m.resolve_from("Bird") == 10.0
    assert m.resolve_from("1") == 10.0  # exercise number, as `coach plan --from 1`
    with pytest.raises(UsageError, match="there is no exercise 2"):
        m.resolve_from("2")
    with pytest.raises(UsageError, match="past the end"):
        m.resolve_from("3:00:00")
    with pytest.raises(UsageError, match="no exercise 'plank'"):
        m.resolve_from("plank")


def test_ctrl_c_silences_the_device_and_reports_where_it_stopped():
    h = Harness(make_timeline(), script=[(0.4 + 50.0, "ctrl-c")])
    with pytest.raises(Interrupted) as info:
        h.run()
    assert h.sink.streams[-1].stopped_s == 50.4
    assert info.value.position_s == pytest.approx(50.0)
    assert str(info.value) == "interrupted at 0:50 (Bird-Dog, set 2 of 3)"


def test_an_interrupted_error_from_the_signal_handler_is_handled_the_same_way():
    h = Harness(make_timeline(), script=[(0.4 + 50.0, "sigterm")])
    with pytest.raises(Interrupted, match=r"^terminated at 0:50 \(Bird-Dog, set 2 of 3\)$"):
        h.run()
    assert h.sink.streams[-1].stopped_s == 50.4


def test_a_device_that_stops_mid_session_raises_a_device_error_with_the_position():
    h = Harness(make_timeline())
    h.sink.fail_at_s = 30.0
    with pytest.raises(AudioDeviceError, match="stopped playing") as info:
        h.run()
    assert 29.0 <= info.value.position_s <= 30.1


def test_quit_stops_the_sound_and_returns_the_position():
    h = Harness(make_timeline(), script=[(12.4, Command.QUIT)])
    out = h.run()
    assert not out.finished and out.position_s == pytest.approx(12.0)
    assert h.sink.streams[0].stopped_s == 12.4


def test_status_reports_step_phase_and_time_left():
    h = Harness(make_timeline(), script=[(0.4 + 20.0, Command.QUIT)])
    h.run()
    st = min((s for s in h.statuses if s.event == "tick"), key=lambda s: abs(s.position_s - 19.0))
    assert st.step.label == "Bird-Dog, set 1 of 3"
    assert st.phase == "work"
    assert st.phase_left_s == pytest.approx(36.0 - st.position_s, abs=0.01)
    assert st.left_s == pytest.approx(h.timeline.duration_s - st.position_s)


def test_steps_are_chapters_and_sets():
    m = SessionMap(make_timeline())
    assert [(s.start_s, s.label) for s in m.steps] == [
        (0.0, "Introduction"),
        (10.0, "Bird-Dog, set 1 of 3"),
        (46.0, "Bird-Dog, set 2 of 3"),
        (82.0, "Bird-Dog, set 3 of 3"),
        (118.0, "Finish"),
    ]


def test_keys_decode_to_commands_including_arrow_keys():
    assert decode_keys(b" nbrq\x1b[C\x1b[DxN") == [
        Command.PAUSE, Command.NEXT, Command.BACK, Command.REPEAT, Command.QUIT,
        Command.NEXT, Command.BACK, Command.NEXT,
    ]


# -- commands from media controls (MPRIS): explicit play and pause, seeks --------------


def test_play_and_hold_do_not_toggle_only_move_the_way_asked():
    tl = make_timeline()
    # Play while playing and hold while paused change nothing; the other two pause and resume.
    h = Harness(tl, script=[(3.0, Command.PLAY), (0.4 + 10.7, Command.HOLD), (20.0, Command.HOLD),
                            (30.0, Command.PLAY)])
    assert h.run().finished
    first, paused, resumed = h.sink.streams
    assert first.stopped_s == 0.4 + 10.7 and paused.stopped_s == 30.0 and resumed.started_s == 30.0
    assert paused.frames == int(0.4 * RATE) + 300  # "Paused." is said, as with the space key
    events = [s.event for s in h.statuses if s.event != "tick"]
    assert events == ["start", "pause", "resume", "finish"]
    shift = 30.0 + 0.4 - 10.0  # carries on from the start of the interrupted "Set 1."
    expected = {i: shift + c.start_s for i, c in enumerate(tl.cues) if c.start_s >= 10.0}
    assert max(abs(e) for e in h.errors(expected, since_s=30.0)) <= FRAME_S


def test_seek_to_a_time_goes_to_the_start_of_the_step_at_that_time():
    tl = make_timeline()
    set2 = 46.0
    h = Harness(tl, script=[(2.0, Seek(60.0)), (5.0, Seek(500.0)), (6.0, Seek(-1.0)), (7.0, Seek(12.0))])
    h.run()
    # 60 s is inside set 2; 500 s and -1 s are outside the session (ignored); 12 s is in set 1.
    assert [s.position_s for s in h.statuses if s.event == "seek"] == [set2, 10.0]
    assert len(h.sink.streams) == 3
    expected = {i: 7.4 - 10.0 + c.start_s for i, c in enumerate(tl.cues) if c.start_s >= 10.0}
    assert max(abs(e) for e in h.errors(expected, since_s=7.0)) <= FRAME_S


def test_a_relative_seek_lands_on_a_step_start_and_past_the_end_acts_as_next():
    tl = make_timeline()
    # At 0.4 + 12 s (set 1): +40 s is 52 s, in set 2; at set 2 + 1 s, -100 s goes to the start;
    # at 0 + 1 s, +1000 s is past the end: the next step (Bird-Dog, set 1).
    h = Harness(tl, script=[(12.4, Seek(40.0, relative=True)), (13.4, Seek(-100.0, relative=True)),
                            (14.4, Seek(1000.0, relative=True)), (15.4, Command.QUIT)])
    h.run()
    assert [s.position_s for s in h.statuses if s.event == "seek"] == [46.0, 0.0, 10.0]


def test_a_seek_while_paused_moves_the_position_and_stays_paused():
    tl = make_timeline()
    h = Harness(tl, script=[(3.0, Command.HOLD), (4.0, Seek(50.0)), (9.0, Command.PLAY)])
    h.run()
    assert len(h.sink.streams) == 3  # session, "Paused.", session again
    assert [s.paused for s in h.statuses if s.event == "seek"] == [True]
    expected = {i: 9.4 - 46.0 + c.start_s for i, c in enumerate(tl.cues) if c.start_s >= 46.0}
    assert max(abs(e) for e in h.errors(expected, since_s=9.0)) <= FRAME_S


def _playing_opening(h: Harness, opening_s: float) -> tuple[RecordingStream, int, int]:
    """A stream started at clock 0, as coach.opening starts one: the preroll, then the session's opening."""
    pre, frames = int(OPTS.preroll_s * RATE), int(opening_s * RATE)
    stream = h.sink.open_stream(pre + int(h.timeline.duration_s * RATE) + 30 * RATE)  # plays on past the end
    opening = np.concatenate(list(h.player.master.blocks(0.0, opening_s, 0.5)))
    stream.write(pre, opening)
    stream.start()
    return stream, pre, frames


def test_a_session_carries_on_in_the_stream_already_playing_its_opening_on_time_and_whole():
    h = Harness(make_timeline(), oversleep=lambda: random.uniform(0, 0.03))
    stream, pre, frames = _playing_opening(h, 3.0)
    h.clock.t = 0.3  # the session is ready 0.3 s after the opening started
    outcome = h.player.run(continuation=Continuation(stream, pre, frames, t0_s=0.0))
    assert outcome.finished and outcome.late_blocks == 0
    assert h.sink.streams == [stream], "no other stream was opened"
    assert all(offset >= pre + frames for _, offset, _ in stream.writes[1:]), "the opening is not written again"
    errors = h.errors({i: OPTS.preroll_s + c.start_s for i, c in enumerate(h.timeline.cues)})
    assert max(abs(e) for e in errors) <= FRAME_S
    whole = np.concatenate(list(h.player.master.blocks(0.0, None, 0.5)))
    assert np.array_equal(stream.audio[pre : pre + len(whole)], whole), "the opening and the rest join exactly"
    assert h.clock.t < OPTS.preroll_s + h.timeline.duration_s + 0.6, "finished when the session did, not at its stream's end"


def test_a_pause_after_carrying_on_stops_that_stream_and_resumes_on_a_new_one():
    h = Harness(make_timeline(), script=[(12.0, Command.PAUSE), (13.0, Command.PAUSE)])
    stream, pre, frames = _playing_opening(h, 3.0)
    h.clock.t = 0.3
    outcome = h.player.run(continuation=Continuation(stream, pre, frames, t0_s=0.0))
    assert outcome.finished
    assert stream.stopped_s == 12.0
    paused, resumed = h.sink.streams[1:]  # "Paused.", then the session from where it stopped
    assert paused.started_s == 12.0 and resumed.started_s == 13.0
    later = {i: c for i, c in enumerate(h.timeline.cues) if c.start_s > 12.0 - OPTS.preroll_s + 0.5}
    errors = h.errors({i: 13.0 + OPTS.preroll_s + c.start_s - (12.0 - OPTS.preroll_s) for i, c in later.items()},
                      since_s=13.0)
    assert max(abs(e) for e in errors) <= FRAME_S


def test_too_late_to_carry_on_the_session_starts_anew_on_a_stream_of_its_own():
    h = Harness(make_timeline())
    stream, pre, frames = _playing_opening(h, 3.0)
    h.clock.t = 3.0  # the device has (or may have) taken the whole opening: nothing safe to write after it
    refused = []
    outcome = h.player.run(continuation=Continuation(stream, pre, frames, t0_s=0.0,
                                                     refused=lambda: refused.append(h.clock.t)))
    assert outcome.finished and refused == [3.0]
    assert stream.stopped_s == 3.0 and len(stream.writes) == 1, "the opening's stream is cut off, never written"
    new = h.sink.streams[1]
    assert new.started_s == 3.0
    errors = h.errors({i: 3.0 + OPTS.awake_preroll_s + c.start_s for i, c in enumerate(h.timeline.cues)},
                      since_s=3.0)
    assert max(abs(e) for e in errors) <= FRAME_S, "the whole session, from its start"
