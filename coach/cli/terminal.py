"""What `coach play` shows and reads on the terminal: the status line and single key presses."""

from __future__ import annotations

import os
import select
import sys
import threading
from typing import Any, Callable, TextIO

from coach.session_map import clock


class StatusLine:
    """One line on stderr, rewritten in place on a terminal; elsewhere a line per event or step."""

    def __init__(self, stream: TextIO, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._shown = False
        self._last_step: str | None = None

    def __call__(self, st: Any) -> None:
        if self.quiet:
            return
        text = format_status(st)
        if self.tty:
            width = max(20, _terminal_width() - 1)
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()
            self._shown = True
        elif st.event != "tick" or st.step.label != self._last_step:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last_step = st.step.label

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def format_status(st: Any) -> str:
    """'12:03 Bird-Dog, set 2 of 3 · right · work 0:23 left · 6:40 left in session'."""
    parts = [f"{clock(st.position_s)} {st.step.label}"]
    if st.side:
        parts.append(st.side)
    if st.phase and st.phase_left_s is not None:
        parts.append(f"{st.phase} {clock(st.phase_left_s + 0.999)} left")
    parts.append(f"{clock(st.left_s + 0.999)} left in session")
    text = " · ".join(parts)
    if st.paused:
        text = "paused · " + text
    elif st.event not in ("tick", "start"):
        text = f"{st.event} · " + text
    return text


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 80


class Keyboard:
    """Single key presses from the terminal (cbreak mode: Ctrl-C still interrupts), restored on exit."""

    def __init__(self, stream: TextIO, put: Callable[[Any], None]) -> None:
        self.fd = stream.fileno()
        self.put = put
        self._saved: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="coach-keys", daemon=True)

    def start(self) -> None:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSADRAIN, attrs)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(0.5)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _read(self) -> None:
        from coach.player import decode_keys

        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:
                return
            for command in decode_keys(data):
                self.put(command)


def keyboard_is_ours(stream: TextIO) -> bool:
    """True on a terminal whose foreground we are: in the background (`coach play &`), changing
    the terminal's mode would stop the process (SIGTTOU); media keys are the controls there."""
    try:
        return stream.isatty() and os.tcgetpgrp(stream.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False
