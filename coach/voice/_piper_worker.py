"""The child side of the Piper engine: one process, one onnxruntime session, one voice.

Why a process of its own: the model (63 MB on disk) takes ~95 MB once loaded,
and a sentence needs ~22 MB per second of speech while it is synthesized
(HiFi-GAN's buffers at the output rate). In the parent, that would add to
whatever else the parent holds (an export's session audio); here it is bounded
by the longest piece spoken, and given back when the worker exits. The parent
only starts a worker when a clip is not in the cache.

Memory, measured for en_US-joe-medium with onnxruntime 1.32 (one run of an
11 s sentence in a fresh process): the CPU arena on gives the lowest peak, ~22 MB
per second of speech on top of ~155 MB for Python, onnxruntime and the loaded
model, against ~31 MB/s with it off (freed buffers then stay in glibc's heap);
disabling prepacking or memory patterns changes nothing. So the arena stays on
and what bounds the peak is ``max_phonemes``: a sentence longer than that is
spoken in pieces split after a comma (or between words), so that no single run
makes more than ~4 s of speech (the pause at the cut is ~0.24 s, a natural
comma's ~0.36 s). One intra-op thread per worker: the parent runs one per core.

Protocol: ``python -m coach.voice._piper_worker WORKDIR REQUEST_FD REPLY_FD``,
pickled dicts. The hello says whether onnxruntime and piper import. A ``synth``
request carries the voice settings; the first one loads the model, a later one
with other settings is refused (one model per worker).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

CLAUSE_MARKS = frozenset(",;:—–")
"""Phonemes after which a long sentence may be split (espeak keeps the text's punctuation)."""


def split_phonemes(phonemes: list[str], max_phonemes: int) -> list[list[str]]:
    """``phonemes`` in pieces of at most ``max_phonemes``: after a clause mark near the middle, else between words.

    A piece without any place to split (one enormous word) stays whole.
    """
    if len(phonemes) <= max_phonemes:
        return [phonemes]
    middle = len(phonemes) / 2
    clauses = [i + 1 for i, p in enumerate(phonemes[:-1]) if p in CLAUSE_MARKS]
    words = [i for i, p in enumerate(phonemes) if p == " " and 0 < i < len(phonemes) - 1]
    # A clause mark is the natural place, unless it would leave a sliver on one side.
    central = [i for i in clauses if 0.2 * len(phonemes) <= i <= 0.8 * len(phonemes)]
    candidates = central or words or clauses
    if not candidates:
        return [phonemes]
    cut = min(candidates, key=lambda i: abs(i - middle))
    left, right = phonemes[:cut], phonemes[cut:]
    while right and right[0] == " ":
        right = right[1:]
    return split_phonemes(left, max_phonemes) + split_phonemes(right, max_phonemes)


class _Speaker:
    """One loaded voice and its synthesis settings."""

    def __init__(self, settings: dict[str, Any]) -> None:
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(settings["threads"])
        options.inter_op_num_threads = 1
        with open(settings["config_path"], encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        # Not PiperVoice.load: it takes no session options.
        session = onnxruntime.InferenceSession(settings["model_path"], sess_options=options,
                                               providers=["CPUExecutionProvider"])
        self.settings = settings
        self.voice = PiperVoice(session=session, config=config)
        self.config = SynthesisConfig(length_scale=float(settings["length_scale"]),
                                      noise_scale=float(settings["noise_scale"]), noise_w_scale=0.0)
        self.peak = float(settings["peak"])
        self.max_phonemes = int(settings["max_phonemes"])

    def synthesize(self, text: str) -> dict[str, Any]:
        import numpy as np

        sentences = []
        for phonemes in self.voice.phonemize(text):
            if not phonemes:
                continue
            pieces = [self.voice.phoneme_ids_to_audio(self.voice.phonemes_to_ids(piece), self.config)
                      for piece in split_phonemes(phonemes, self.max_phonemes)]
            audio = np.concatenate(pieces).astype(np.float32, copy=False)
            # As Piper does for each sentence: peak-normalize, then scale (the pieces of one
            # sentence share one gain, so it keeps one loudness).
            top = float(np.max(np.abs(audio))) if audio.size else 0.0
            audio = audio * (self.peak / top) if top >= 1e-8 else np.zeros_like(audio)
            sentences.append(np.clip(audio, -1.0, 1.0).astype(np.float32))
        # One chunk per sentence, each with its own ~50 ms lead-in and ~150 ms tail:
        # joined as they are, that is the pause between sentences.
        samples = np.concatenate(sentences) if sentences else np.zeros(0, np.float32)
        return {"ok": True, "sample_rate_hz": int(self.voice.config.sample_rate), "samples": samples.tobytes()}


def serve(requests: Connection, replies: Connection) -> None:
    """Answer requests until ``quit`` or until the parent goes away."""
    try:
        import onnxruntime  # noqa: F401 - imported first: its failure is the clearer one
        import piper  # noqa: F401
    except ImportError as exc:  # also a broken onnxruntime (missing shared library)
        replies.send({"ok": False, "kind": "missing-module", "message": str(exc)})
        return
    replies.send({"ok": True, "op": "ready", "pid": os.getpid()})
    speaker: _Speaker | None = None
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
            if op != "synth":
                replies.send({"ok": False, "kind": "failed", "message": f"unknown request {op!r}"})
                continue
            settings = request["settings"]
            if speaker is None:
                try:
                    speaker = _Speaker(settings)
                except Exception as exc:  # noqa: BLE001 - onnxruntime and the config raise their own types
                    replies.send({"ok": False, "kind": "load", "message": f"{exc}"})
                    continue
            elif speaker.settings != settings:
                replies.send({"ok": False, "kind": "failed", "message": "worker already loaded another voice"})
                continue
            replies.send(speaker.synthesize(request["text"]))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            replies.send({"ok": False, "kind": "failed", "message": f"{type(exc).__name__}: {exc}",
                          "trace": traceback.format_exc()})


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m coach.voice._piper_worker WORKDIR REQUEST_FD REPLY_FD``."""
    args = sys.argv[1:] if argv is None else argv
    # Ctrl-C reaches the whole process group: the parent decides (it kills busy workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    workdir = args[0]
    requests = Connection(int(args[1]), writable=False)
    replies = Connection(int(args[2]), readable=False)
    try:
        serve(requests, replies)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
