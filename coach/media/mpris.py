"""`coach play` as an MPRIS2 media player (org.mpris.MediaPlayer2) on the D-Bus session bus.

What it maps (https://specifications.freedesktop.org/mpris-spec/latest/):

    PlayPause          the space key (pause, "Paused.", resume from the interrupted sentence)
    Play / Pause       the same, only in the direction asked (no toggling)
    Next / Previous    n / b (next step; back to the start of the step)
    Stop / Quit        q (the history keeps the session for `coach play --resume`)
    Seek / SetPosition to the start of the step at that time of the session
    Raise              nothing: there is no window (CanRaise is false)

The session is one track: ``mpris:length`` is its length and ``Position`` the
time into it, so a media widget's progress bar shows the whole workout;
``xesam:title`` is the current step ("Bird-Dog, set 2 of 3") and
``xesam:artist`` the routine's title.

Threads. The service runs in a thread of its own with its own asyncio loop. It
never touches the audio: every call becomes a ``Command`` or ``Seek`` put into
the player's inbox, the one the keyboard feeds, and the player's thread does the
rest with its usual timing. The player's statuses come back through
``MediaControls.update``, which only hands them over to the service's loop.

Optional at run time: off Linux, without the dbus-fast package or without a
session bus, ``start_media_controls`` returns None and says why through
``notice``; `coach play` then works as before.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coach.player import Command, Seek, Status

BUS_NAME = "org.mpris.MediaPlayer2.coach"
OBJECT_PATH = "/org/mpris/MediaPlayer2"
TRACK_ID = "/coach/session"
"""The session's track id (paths under /org/mpris are reserved by the spec)."""
NO_TRACK = "/org/mpris/MediaPlayer2/TrackList/NoTrack"
IDENTITY = "Coach"
START_TIMEOUT_S = 2.0
"""How long to wait for the session bus to answer before carrying on without it."""
CLOSE_TIMEOUT_S = 1.0
JUMPS = frozenset({"start", "resume", "next", "back", "seek", "repeat"})
"""Status events after which the position is not where playing on would have taken it (MPRIS Seeked)."""

Put = Callable[[Any], None]
Notice = Callable[[str], None]


def session_bus_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The session bus address as libdbus finds it: the variable, else $XDG_RUNTIME_DIR/bus."""
    environ = os.environ if environ is None else environ
    address = environ.get("DBUS_SESSION_BUS_ADDRESS", "").strip()
    if address:
        return address
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime, "bus").is_socket():
        return f"unix:path={Path(runtime, 'bus')}"
    return None


def start_media_controls(put: Put, *, notice: Notice | None = None, identity: str = IDENTITY,
                         environ: Mapping[str, str] | None = None) -> MediaControls | None:
    """Register on the session bus and turn media commands into ``put(command)``; None if not possible.

    ``notice`` receives one line saying what happened (on, or why off). Blocks
    until the bus has answered, at most ``START_TIMEOUT_S`` (a local bus takes
    a few milliseconds).
    """
    say = notice or (lambda line: None)
    if not sys.platform.startswith("linux"):
        say("media keys: off (MPRIS media controls need Linux with a D-Bus session bus)")
        return None
    address = session_bus_address(environ)
    if address is None:
        say("media keys: off (no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS is not set)")
        return None
    try:
        import dbus_fast  # noqa: F401 - only to know it is there
    except ImportError:
        say("media keys: off (the dbus-fast package is not installed)")
        return None
    controls = MediaControls(put, address, identity)
    failure = controls._start(START_TIMEOUT_S)
    if failure is not None:
        say(f"media keys: off ({failure})")
        return None
    say(f"media keys: on (MPRIS player {controls.bus_name} on the D-Bus session bus)")
    return controls


@dataclass(frozen=True)
class _Snapshot:
    """The last status the player sent, and when (monotonic clock)."""

    status: Status
    title: str
    at_s: float


class PlayerState:
    """MPRIS properties from the player's last status (pure: the clock is passed in)."""

    def __init__(self) -> None:
        self.snapshot: _Snapshot | None = None
        self.ended = False

    def update(self, status: Status, title: str, now_s: float) -> None:
        self.snapshot = _Snapshot(status, title, now_s)
        # The introduction of an early start "finishes" before the whole session goes on:
        # only a finish at the session's end (or a quit) ends it.
        self.ended = status.event == "quit" or (
            status.event == "finish" and status.position_s >= status.duration_s - 0.01)

    def playback_status(self) -> str:
        snap = self.snapshot
        if snap is None or self.ended:
            return "Stopped"  # preparing the session, or over
        return "Paused" if snap.status.paused else "Playing"

    def position_us(self, now_s: float) -> int:
        snap = self.snapshot
        if snap is None:
            return 0
        st = snap.status
        position = st.position_s
        if self.playback_status() == "Playing":
            position += now_s - snap.at_s
        return int(round(min(max(position, 0.0), st.duration_s) * 1e6))

    def metadata(self) -> dict[str, tuple[str, Any]]:
        """Metadata as {key: (D-Bus signature, value)}."""
        snap = self.snapshot
        if snap is None:
            return {"mpris:trackid": ("o", NO_TRACK), "xesam:title": ("s", "Preparing the session")}
        st = snap.status
        return {
            "mpris:trackid": ("o", TRACK_ID),
            "mpris:length": ("x", int(round(st.duration_s * 1e6))),
            "xesam:title": ("s", st.step.label),
            "xesam:artist": ("as", [snap.title]),
            "xesam:album": ("s", snap.title),
            "xesam:trackNumber": ("i", st.step_index + 1),
        }

    def can(self) -> dict[str, bool]:
        snap = self.snapshot
        live = snap is not None and not self.ended
        return {
            "CanGoNext": live and snap.status.step_index + 1 < snap.status.steps,
            "CanGoPrevious": live,
            "CanPlay": live,
            "CanPause": live,
            "CanSeek": live,
        }

    def changing(self) -> dict[str, tuple[str, Any]]:
        """The properties whose changes are signalled, as {name: (signature, value)}."""
        props: dict[str, tuple[str, Any]] = {"PlaybackStatus": ("s", self.playback_status()),
                                             "Metadata": ("a{sv}", self.metadata())}
        props.update({name: ("b", value) for name, value in self.can().items()})
        return props


class MediaControls:
    """The MPRIS service of one `coach play`; ``update`` with each status, ``close`` at the end."""

    track_id = TRACK_ID
    """The one track (the session) that SetPosition names."""

    def __init__(self, put: Put, address: str, identity: str = IDENTITY) -> None:
        self.put = put
        self.address = address
        self.identity = identity
        self.bus_name = ""
        self.state = PlayerState()
        self.title = identity
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="coach-mpris", daemon=True)
        self._service: Any = None

    # -- called from the player's thread --------------------------------------------

    def update(self, status: Status, *, title: str | None = None) -> None:
        """Hand the player's latest status to the service (cheap: never waits for the bus)."""
        self._call(self._apply, status, title or self.title, time.monotonic())

    def close(self) -> None:
        """Say "Stopped", leave the bus and end the thread."""
        if self._closing is not None:
            self._call(self._closing.set)
        self._thread.join(CLOSE_TIMEOUT_S)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop has already ended
            pass

    # -- the service's thread ---------------------------------------------------------

    def _start(self, timeout_s: float) -> str | None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.close()
            return "the D-Bus session bus did not answer"
        return self._failure

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        from coach.media._service import connect

        self._closing = asyncio.Event()
        try:
            bus, service, name = await connect(self, BUS_NAME, OBJECT_PATH)
        except Exception as exc:  # noqa: BLE001 - any failure means: no media keys, told once
            self._failure = f"cannot use the D-Bus session bus: {exc}"
            self._ready.set()
            return
        self._service, self.bus_name = service, name
        self._loop = loop
        self._ready.set()
        try:
            await self._closing.wait()
            self.state.ended = True
            service.changed(self.state)
        finally:
            bus.disconnect()
            try:
                await asyncio.wait_for(bus.wait_for_disconnect(), CLOSE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - leaving; the daemon drops the name anyway
                pass

    def _apply(self, status: Status, title: str, at_s: float) -> None:
        self.title = title
        self.state.update(status, title, at_s)
        if self._service is None:
            return
        self._service.changed(self.state)
        if status.event in JUMPS:
            self._service.Seeked(self.state.position_us(at_s))

    # -- what the service's methods do (on the service's thread) ------------------------

    def command(self, command: Command | Seek) -> None:
        self.put(command)
