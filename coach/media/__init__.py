"""Controls of a playing session from outside its terminal: commands into the player's inbox.

``mpris`` registers `coach play` as an MPRIS2 media player on the D-Bus session
bus (Linux), so desktop media keys, media widgets, the lock screen, KDE Connect
and Bluetooth headset buttons (through BlueZ) can pause, skip and stop it.
"""

from coach.media.mpris import MediaControls, start_media_controls

__all__ = ["MediaControls", "start_media_controls"]
