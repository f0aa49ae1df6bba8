"""The last step of making a speech clip: trim its silence, bring it to its level (``coach.audio.level``).

Normalizing a clip costs more CPU than espeak-ng takes to say it. Done in the
parent, it runs on the synthesis threads, which share one interpreter lock:
on a cold export the parent used 3.9 s of CPU in 4.8 s (1.35 s with this), and
the cold export took 4.36 s against 4.19 s with it (A/B, medians of three). So the espeak-ng engine does it in its workers
(``finish`` op), where every core can work. The same functions on the same
samples in the same numpy: the same clip, to the bit, as in the parent
(``tests/test_voice_finish.py``), so cached clips stay valid.

Not the Piper engine: its workers are sized to the model's memory (``WORKER_MB``);
finishing a whole multi-sentence clip there raised a worker's peak from ~275 to
305-321 MB (cold export of the built-in session, against the 300 MB bound), for
1 s of the 24 s export.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from coach.audio.clip import Clip
from coach.voice.trim import TrimSettings, trim_silence

FINISH_TIMEOUT_S = 30.0
"""How long a worker may take to finish one clip (a few ms; minutes only on a stalled machine)."""


def finish(raw: Clip, trim: TrimSettings, target_lufs: float) -> Clip:
    """``raw`` trimmed and normalized to ``target_lufs``, with its level."""
    from coach.audio.level import normalize_speech

    return normalize_speech(trim_silence(raw, trim), target_lufs)


def request(raw: Clip, trim: TrimSettings, target_lufs: float) -> dict[str, Any]:
    """The worker request that finishes ``raw``."""
    return {"op": "finish", "samples": np.ascontiguousarray(raw.samples, np.float32).tobytes(),
            "sample_rate_hz": raw.sample_rate_hz, "trim": asdict(trim), "target_lufs": float(target_lufs)}


def serve(message: dict[str, Any]) -> dict[str, Any]:
    """In a worker: answer a ``request``."""
    raw = Clip(np.frombuffer(message["samples"], dtype=np.float32), int(message["sample_rate_hz"]))
    clip = finish(raw, TrimSettings(**message["trim"]), float(message["target_lufs"]))
    level = clip.level
    assert level is not None
    return {"ok": True, "samples": clip.samples.tobytes(), "sample_rate_hz": clip.sample_rate_hz,
            "loudness_lufs": level.loudness_lufs, "true_peak": level.true_peak,
            "energy": np.asarray(level.energy, np.float32).tobytes()}


def clip_of(reply: dict[str, Any]) -> Clip:
    """The clip in a worker's answer to ``request``."""
    from coach.audio.level import ClipLevel

    level = ClipLevel(float(reply["loudness_lufs"]), float(reply["true_peak"]),
                      np.frombuffer(reply["energy"], dtype=np.float32))
    return Clip(np.frombuffer(reply["samples"], dtype=np.float32), int(reply["sample_rate_hz"]), level)
