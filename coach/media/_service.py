"""The D-Bus side of ``coach.media.mpris``: the two MPRIS interfaces, with dbus-fast.

Imported only in the service's thread, once dbus-fast is known to be there.
Annotations are D-Bus signatures (dbus-fast reads them), so this module does
not use ``from __future__ import annotations``.
"""

import os
import time
from typing import Any

from dbus_fast import DBusError, NameFlag, PropertyAccess, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_property, method, signal

from coach.player import Command
from coach.player import Seek as SeekTo  # the method Seek below has the same name

NOT_SUPPORTED = "org.freedesktop.DBus.Error.NotSupported"
READ = PropertyAccess.READ


async def connect(controls: Any, bus_name: str, object_path: str) -> tuple[MessageBus, "PlayerInterface", str]:
    """Connect, export both interfaces at ``object_path`` and take ``bus_name`` (or this process's instance name)."""
    BUS_NAME, OBJECT_PATH = bus_name, object_path  # noqa: N806 - the spec's names

    bus = await MessageBus(bus_address=controls.address).connect()
    try:
        root = RootInterface(controls)
        player = PlayerInterface(controls)
        bus.export(OBJECT_PATH, root)
        bus.export(OBJECT_PATH, player)
        name = BUS_NAME
        reply = await bus.request_name(name, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            # Another coach has the name: the spec's way for a second instance.
            name = f"{BUS_NAME}.instance{os.getpid()}"
            reply = await bus.request_name(name, NameFlag.DO_NOT_QUEUE)
            if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
                raise RuntimeError(f"the names {BUS_NAME} and {name} are both taken")
    except BaseException:
        bus.disconnect()
        raise
    return bus, player, name


class RootInterface(ServiceInterface):
    """org.mpris.MediaPlayer2: who the player is; Quit ends the session like `q`."""

    def __init__(self, controls: Any) -> None:
        super().__init__("org.mpris.MediaPlayer2")
        self.controls = controls

    @method()
    def Raise(self):  # noqa: N802 - D-Bus names
        """Nothing to raise: `coach play` has no window (CanRaise is false)."""

    @method()
    def Quit(self):  # noqa: N802
        self.controls.command(Command.QUIT)

    @dbus_property(access=READ)
    def CanQuit(self) -> "b":  # noqa: N802, F821
        return True

    @dbus_property(access=READ)
    def CanRaise(self) -> "b":  # noqa: N802, F821
        return False

    @dbus_property(access=READ)
    def HasTrackList(self) -> "b":  # noqa: N802, F821
        return False

    @dbus_property(access=READ)
    def Identity(self) -> "s":  # noqa: N802, F821
        return self.controls.identity

    @dbus_property(access=READ)
    def SupportedUriSchemes(self) -> "as":  # noqa: N802, F821, F722
        return []

    @dbus_property(access=READ)
    def SupportedMimeTypes(self) -> "as":  # noqa: N802, F821, F722
        return []


class PlayerInterface(ServiceInterface):
    """org.mpris.MediaPlayer2.Player: each call is a command into the player's inbox."""

    def __init__(self, controls: Any) -> None:
        super().__init__("org.mpris.MediaPlayer2.Player")
        self.controls = controls
        self._sent: dict[str, Any] = {}

    def changed(self, state: Any) -> None:
        """Signal the properties whose values differ from the last ones sent (PropertiesChanged)."""
        now = state.changing()
        diff = {name: value for name, value in now.items() if self._sent.get(name) != value}
        if not diff:
            return
        self._sent.update(diff)
        self.emit_properties_changed({name: _plain(sig, value) for name, (sig, value) in diff.items()})

    def _state(self) -> Any:
        return self.controls.state

    # -- methods --------------------------------------------------------------------------

    @method()
    def Next(self):  # noqa: N802
        self.controls.command(Command.NEXT)

    @method()
    def Previous(self):  # noqa: N802
        self.controls.command(Command.BACK)

    @method()
    def Pause(self):  # noqa: N802
        self.controls.command(Command.HOLD)

    @method()
    def PlayPause(self):  # noqa: N802
        self.controls.command(Command.PAUSE)

    @method()
    def Stop(self):  # noqa: N802
        self.controls.command(Command.QUIT)

    @method()
    def Play(self):  # noqa: N802
        self.controls.command(Command.PLAY)

    @method()
    def Seek(self, offset: "x"):  # noqa: N802, F821
        self.controls.command(SeekTo(offset / 1e6, relative=True))

    @method()
    def SetPosition(self, track_id: "o", position: "x"):  # noqa: N802, F821
        if track_id == self.controls.track_id:  # otherwise a stale request, ignored as the spec says
            self.controls.command(SeekTo(position / 1e6))

    @method()
    def OpenUri(self, uri: "s"):  # noqa: N802, F821
        raise DBusError(NOT_SUPPORTED, "coach plays its own session and opens no other media")

    @signal()
    def Seeked(self, position: "x") -> "x":  # noqa: N802, F821
        return position

    # -- properties -------------------------------------------------------------------------

    @dbus_property(access=READ)
    def PlaybackStatus(self) -> "s":  # noqa: N802, F821
        return self._state().playback_status()

    @dbus_property(access=READ)
    def Rate(self) -> "d":  # noqa: N802, F821
        return 1.0

    @dbus_property(access=READ)
    def MinimumRate(self) -> "d":  # noqa: N802, F821
        return 1.0

    @dbus_property(access=READ)
    def MaximumRate(self) -> "d":  # noqa: N802, F821
        return 1.0

    @dbus_property(access=READ)
    def Volume(self) -> "d":  # noqa: N802, F821
        return 1.0  # the session's gain is fixed for the session (coach play --volume)

    @dbus_property(access=READ)
    def Metadata(self) -> "a{sv}":  # noqa: N802, F821, F722
        return _plain("a{sv}", self._state().metadata())

    @dbus_property(access=READ)
    def Position(self) -> "x":  # noqa: N802, F821
        return self._state().position_us(time.monotonic())

    @dbus_property(access=READ)
    def CanGoNext(self) -> "b":  # noqa: N802, F821
        return self._state().can()["CanGoNext"]

    @dbus_property(access=READ)
    def CanGoPrevious(self) -> "b":  # noqa: N802, F821
        return self._state().can()["CanGoPrevious"]

    @dbus_property(access=READ)
    def CanPlay(self) -> "b":  # noqa: N802, F821
        return self._state().can()["CanPlay"]

    @dbus_property(access=READ)
    def CanPause(self) -> "b":  # noqa: N802, F821
        return self._state().can()["CanPause"]

    @dbus_property(access=READ)
    def CanSeek(self) -> "b":  # noqa: N802, F821
        return self._state().can()["CanSeek"]

    @dbus_property(access=READ)
    def CanControl(self) -> "b":  # noqa: N802, F821
        return True


def _plain(signature: str, value: Any) -> Any:
    """A property's value for dbus-fast: metadata entries become Variants."""
    if signature == "a{sv}":
        return {key: Variant(sig, item) for key, (sig, item) in value.items()}
    return value
