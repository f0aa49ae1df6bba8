"""Speech worker processes: one child per engine instance, two pipes, a timeout on every answer.

Both real engines synthesize in child processes (``coach.voice._worker`` for
pyttsx3, ``coach.voice._piper_worker`` for Piper): pyttsx3 because it cannot be
trusted inside ours, Piper so that each model lives in exactly one process and
the memory it needs while speaking is returned to the system when it exits.

A worker is started with ``COMMAND WORKDIR REQUEST_FD REPLY_FD``, answers a
hello when it is ready, then one reply (a pickled dict) per request.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from multiprocessing.connection import Connection
from typing import Any, Callable, Sequence

from coach.errors import SpeechEngineError


class WorkerGone(Exception):
    """The worker died, timed out or gave an unusable answer: discard it and retry."""


class Worker:
    """One worker process and its two pipes.

    ``on_failure(hello)`` turns a hello that is not ok (the engine's module or
    library is missing) into the engine's own error; it must raise.
    ``own_session``: start the worker outside our process group, so that a
    terminal's Ctrl-C never reaches it, not even while it is still importing (a
    worker that takes seconds to start would otherwise die and be started
    again); the parent ends it, and it exits by itself when its pipe closes.
    """

    def __init__(self, command: Sequence[str], start_timeout_s: float,
                 on_failure: Callable[[dict[str, Any]], None], *, own_session: bool = False) -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        # stderr goes to a file, not a pipe nobody reads (a full pipe would block the worker).
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in kill()
        self.workdir = tempfile.mkdtemp(prefix="coach-voice-")
        try:
            self.process = subprocess.Popen(
                [*command, self.workdir, str(request_r), str(reply_w)],
                pass_fds=(request_r, reply_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=own_session,
            )
        except OSError as exc:
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            self._stderr.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise SpeechEngineError(f"cannot start the speech worker {command[0]}: {exc}") from exc
        os.close(request_r)
        os.close(reply_w)
        self._requests = Connection(request_w, readable=False)
        self._replies = Connection(reply_r, writable=False)
        self.config: Any = None
        """What the worker was configured for (engines reuse a worker only for the same config)."""
        try:
            hello = self._receive(start_timeout_s, "starting")
        except BaseException:
            # Ctrl-C while the worker starts: nobody else knows about this process yet.
            self.kill()
            raise
        if not hello.get("ok"):
            self.kill()
            on_failure(hello)
            raise SpeechEngineError(f"the speech worker failed: {hello.get('message', 'unknown failure')}")

    def _receive(self, timeout_s: float, doing: str) -> dict[str, Any]:
        try:
            if not self._replies.poll(timeout_s):
                self.kill()
                raise WorkerGone(f"speech worker timed out after {timeout_s:.0f} s while {doing}")
            return self._replies.recv()
        except (EOFError, OSError) as exc:
            detail = self.stderr_tail()
            self.kill()
            raise WorkerGone(f"speech worker died while {doing}" + (f": {detail}" if detail else "")) from exc

    def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        try:
            self._requests.send(message)
        except OSError as exc:
            self.kill()
            raise WorkerGone(f"speech worker is gone: {exc}") from exc
        return self._receive(timeout_s, str(message.get("op")))

    def stderr_tail(self, limit: int = 600) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return text[-limit:]

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not."""
        try:
            self.request({"op": "quit"}, 2.0)
            self.process.wait(timeout=2.0)
        except (WorkerGone, subprocess.TimeoutExpired):
            pass
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for closable in (self._requests, self._replies, self._stderr):
            try:
                closable.close()
            except (OSError, AttributeError):
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory_mb() -> float | None:
    """Memory the system can give without swapping (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (AttributeError, ValueError, OSError):
        return None


def worker_count(per_worker_mb: float, most: int, *, cores: int | None = None,
                 available_mb: float | None = None, keep_free_mb: float = 512) -> int:
    """How many workers of ``per_worker_mb`` to run: one per core, as many as free memory allows, >= 1."""
    count = min(most, cores if cores is not None else usable_cores())
    free = available_mb if available_mb is not None else available_memory_mb()
    if free is not None:
        count = min(count, int((free - keep_free_mb) // per_worker_mb))
    return max(1, count)
