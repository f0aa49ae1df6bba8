"""Code a Ctrl-C must wait for: ``held()`` keeps an interrupt until the block is over.

``coach.cli`` raises ``Interrupted`` from its SIGINT/SIGTERM handler, wherever the
main thread happens to be. A few places cannot take an exception in the middle:
importing soxr, whose nanobind module runs Python code while it sets itself up and
aborts the whole process (``terminate called after throwing an instance of
'nanobind::python_error'``) if that code raises. Inside ``held()`` the handler
only notes the interrupt, and the block's end raises it.

Only the main thread handles signals, so ``held()`` in any other thread does nothing.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from coach.errors import Interrupted

_depth = [0]
_waiting: list[str] = []


def holding() -> bool:
    """Is the main thread inside ``held()``? (Asked by the signal handler.)"""
    return _depth[0] > 0


def wait(name: str) -> None:
    """Note an interrupt (``"interrupted"``, ``"terminated"``) to raise when the held block ends."""
    _waiting.append(name)


@contextmanager
def held() -> Iterator[None]:
    """Run the block whole; a Ctrl-C or SIGTERM that came meanwhile is raised as it ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        if _depth[0] == 0 and _waiting:
            name = _waiting[0]
            _waiting.clear()
            raise Interrupted(name)
