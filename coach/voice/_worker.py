"""The child side of the pyttsx3 engine: one process, one pyttsx3 engine, one voice.

pyttsx3 2.99 keeps one engine per process and misbehaves in ways listed in
``shared/notes/pitfalls.md``; this process exists so that every one of them
stays contained here:

- it is started with stdout on /dev/null, and fd 1 is pointed at /dev/null
  again here, so the ``Audio saved to ...`` that espeak's thread prints never
  reaches the parent's (machine-readable) stdout;
- voice, rate and volume are set once, on the fresh engine, before the first
  synthesis; a different voice spec means a different worker process;
- exactly one ``save_to_file`` per ``runAndWait``, never ``runAndWait`` with
  nothing queued (empty text is refused here and never sent by the parent);
- completion is a ``threading.Event`` set by ``finished-utterance`` (the first
  ``runAndWait`` returns before synthesis ends), then the file must exist, be
  non-empty and parse with a format-sniffing reader;
- the engine is never dropped (that spams ``ReferenceError``): the process
  ends with ``os._exit``.

Requests and replies are pickled dicts on two pipes whose fd numbers are the
last two command-line arguments. The parent enforces the overall timeout and kills
this process if ``runAndWait`` itself never returns.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from importlib import metadata
from multiprocessing.connection import Connection
from typing import Any


def _silence_stdout() -> None:
    """Point fd 1 (and ``sys.stdout``) at /dev/null for the life of the process."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process


def _espeak_version(espeak_module: Any) -> str:
    """Version string of the loaded libespeak-ng (``espeak_Info``), e.g. ``1.51``."""
    import ctypes

    info = espeak_module.dll.espeak_Info
    info.restype = ctypes.c_char_p
    info.argtypes = [ctypes.c_void_p]
    raw = info(None)
    return raw.decode("utf-8", "replace") if raw else "unknown"


class _Synthesizer:
    """One pyttsx3 engine, configured once, used from this thread only."""

    def __init__(self, workdir: str) -> None:
        import pyttsx3

        # Import the driver's ctypes layer first: a missing libespeak-ng shows
        # up here as a clear failure instead of somewhere inside init().
        if sys.platform.startswith("linux"):
            from pyttsx3.drivers import _espeak

            self.espeak: Any = _espeak
            self.espeak_version = _espeak_version(_espeak)
            self.driver = "espeak"
        else:  # pragma: no cover - other platforms use their native driver
            self.espeak = None
            self.espeak_version = ""
            self.driver = None
        self.engine = pyttsx3.init(self.driver)
        self.pyttsx3_version = metadata.version("pyttsx3")
        self.done = threading.Event()
        self.completed = False
        self.errors: list[str] = []
        self.engine.connect("finished-utterance", self._on_finished)
        self.engine.connect("error", self._on_error)
        self.configured: tuple[str, int, float] | None = None
        self.synthesized = 0
        self.workdir = workdir

    def _on_finished(self, name: Any = None, completed: bool = True, **_: Any) -> None:
        self.completed = bool(completed)
        self.done.set()

    def _on_error(self, name: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        self.errors.append(repr(exception))

    def info(self) -> dict[str, Any]:
        voices = [
            {"id": v.id, "name": v.name, "languages": [str(lang) for lang in (v.languages or [])]}
            for v in self.engine.getProperty("voices")
        ]
        return {
            "ok": True,
            "pyttsx3": self.pyttsx3_version,
            "espeak": self.espeak_version,
            "driver": self.driver or str(self.engine),
            "voices": voices,
        }

    def configure(self, voice: str, rate_wpm: int, volume: float) -> None:
        wanted = (voice, int(rate_wpm), float(volume))
        if self.configured == wanted:
            return
        if self.configured is not None or self.synthesized:
            # setProperty after the first loop can be silently dropped: refuse.
            raise RuntimeError(f"worker already configured for {self.configured}, asked for {wanted}")
        # Queued now, applied by the first runAndWait before its save_to_file.
        self.engine.setProperty("voice", voice)
        self.engine.setProperty("rate", int(rate_wpm))
        self.engine.setProperty("volume", float(volume))
        self.configured = wanted

    def applied(self) -> tuple[str, int, float] | None:
        """The voice, rate and volume espeak really uses now (None off espeak).

        pyttsx3's own ``getProperty('rate')`` binds ``espeak_GetParameter``
        with one argument of two and returns the default; ask the library.
        """
        if self.espeak is None:
            return None
        import ctypes

        get = self.espeak.dll.espeak_GetParameter
        get.restype = ctypes.c_int
        get.argtypes = [ctypes.c_int, ctypes.c_int]
        current = self.espeak.GetCurrentVoice()
        identifier = current.contents.identifier if current else None
        voice = identifier.decode("utf-8", "replace").lower() if identifier else ""
        return voice, get(self.espeak.RATE, 1), get(self.espeak.VOLUME, 1) / 100.0

    def _check_applied(self) -> str | None:
        """Why the configured voice/rate/volume is not what espeak used, or None."""
        if self.configured is None:
            return None
        applied = self.applied()
        if applied is None:
            return None
        voice, rate_wpm, volume = self.configured
        got_voice, got_rate, got_volume = applied
        if got_voice != voice.lower() or got_rate != rate_wpm or abs(got_volume - volume) > 0.006:
            return f"espeak uses voice={got_voice} rate={got_rate} volume={got_volume}, not {self.configured}"
        return None

    def synthesize(self, text: str, timeout_s: float) -> dict[str, Any]:
        import numpy as np
        import soundfile

        if not text.strip():
            raise ValueError("empty text reached the worker")
        fd, path = tempfile.mkstemp(suffix=".wav", dir=self.workdir)
        os.close(fd)
        os.unlink(path)  # so that "the file exists" really means the engine wrote it
        self.done.clear()
        self.completed = False
        self.errors.clear()
        try:
            self.engine.save_to_file(text, path)
            self.engine.runAndWait()
            self.synthesized += 1
            if not self.done.wait(timeout_s):
                return {"ok": False, "kind": "timeout", "message": "the utterance never finished"}
            if not self.completed:
                return {"ok": False, "kind": "failed", "message": "the utterance was cancelled"}
            if self.errors:
                return {"ok": False, "kind": "failed", "message": "; ".join(self.errors)}
            mismatch = self._check_applied()
            if mismatch:
                # A setProperty dropped by the driver's cancel: this worker is unusable.
                return {"ok": False, "kind": "config-lost", "message": mismatch}
            if not os.path.exists(path):
                return {"ok": False, "kind": "lost", "message": "the engine wrote no file"}
            if os.path.getsize(path) == 0:
                return {"ok": False, "kind": "lost", "message": "the engine wrote an empty file"}
            try:
                # soundfile sniffs the container (WAV here, AIFF from nsss): never trust the name.
                data, rate_hz = soundfile.read(path, dtype="float32", always_2d=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is a lost utterance
                return {"ok": False, "kind": "lost", "message": f"unreadable audio file: {exc}"}
            samples = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            return {"ok": True, "sample_rate_hz": int(rate_hz), "samples": samples.tobytes()}
        finally:
            if os.path.exists(path):
                os.unlink(path)


def _load(workdir: str) -> tuple[_Synthesizer | None, dict[str, Any]]:
    try:
        synth = _Synthesizer(workdir)
    except ModuleNotFoundError as exc:
        return None, {"ok": False, "kind": "missing-module", "message": f"cannot import {exc.name}: {exc}"}
    except (RuntimeError, OSError) as exc:
        # pyttsx3's _espeak raises RuntimeError when no libespeak-ng loads;
        # espeak_Initialize failing (no data files) is a RuntimeError too.
        return None, {"ok": False, "kind": "missing-library", "message": str(exc)}
    return synth, {"ok": True, "op": "ready", "pid": os.getpid()}


def serve(requests: Connection, replies: Connection, workdir: str) -> None:
    """Answer requests until ``quit`` or until the parent goes away."""
    synth, hello = _load(workdir)
    replies.send(hello)
    if synth is None:
        return
    while True:
        try:
            request = requests.recv()
        except (EOFError, OSError):
            return  # the parent exited: so do we
        op = request.get("op")
        try:
            if op == "quit":
                replies.send({"ok": True})
                return
            if op == "info":
                replies.send(synth.info())
            elif op == "synth":
                synth.configure(request["voice"], request["rate_wpm"], request["volume"])
                replies.send(synth.synthesize(request["text"], float(request["timeout_s"])))
            elif op == "finish":
                from coach.voice import finish

                replies.send(finish.serve(request))
            else:
                replies.send({"ok": False, "kind": "failed", "message": f"unknown request {op!r}"})
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            replies.send(
                {"ok": False, "kind": "failed", "message": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            )


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m coach.voice._worker WORKDIR REQUEST_FD REPLY_FD``.

    WORKDIR is a private folder for the files pyttsx3 writes; the parent
    removes it when the worker ends, even if it had to kill it.
    """
    args = sys.argv[1:] if argv is None else argv
    _silence_stdout()
    # Ctrl-C reaches the whole process group: the parent decides what to do
    # (it kills busy workers); an idle worker just waits for quit or EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    workdir = args[0]
    requests = Connection(int(args[1]), writable=False)
    replies = Connection(int(args[2]), readable=False)
    try:
        serve(requests, replies, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the parent does too, unless it was killed
        sys.stderr.flush()
        # Skip interpreter teardown: dropping the pyttsx3 engine spams
        # ReferenceError and espeak can assert while terminating.
        os._exit(0)


if __name__ == "__main__":
    main()
