"""The speech cache through the CLI: damaged entries and two exports at once still give the right audio.

Real speech, an edited-script workflow (`coach plan --format json`, then `coach
export script.json`) so that every cue keeps its time whatever happens to the
clips. espeak-ng's output depends on what the same worker spoke before, so a
clip synthesized again is the same words with slightly different samples:
outputs are compared cue by cue through their loudness envelope, and exactly
where a clip came from an intact cache entry.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from coach.timeline import VoiceSpec
from coach.voice import normalize_for_speech, open_voice
from coach.voice.cache import ClipCache, decode_entry
from reliability_helpers import coach_command, coach_env, run, write_short_routine

pytestmark = pytest.mark.slow  # plans and exports sessions, two processes at once

RATE_HZ = 8000
FRAME = RATE_HZ // 20  # 50 ms envelope frames: syllables, not the fine timing that varies between syntheses


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The short routine's cue script, its speech texts, and a first export with a fresh cache."""
    folder = tmp_path_factory.mktemp("cache")
    routine = write_short_routine(folder)
    env = coach_env(folder)
    script = folder / "script.json"
    done = run(coach_command("plan", str(routine), "--format", "json", "-o", str(script)), env, folder)
    assert done.returncode == 0, done.stderr
    reference = folder / "reference.wav"
    done = run(coach_command("export", str(script), "-o", str(reference), "--sample-rate", str(RATE_HZ), "-q"),
               env, folder)
    assert done.returncode == 0, done.stderr
    data = json.loads(script.read_text())
    speech = [c for c in data["cues"] if c["kind"] == "speech"]
    return folder, script, env, speech, audio(reference), VoiceSpec.from_dict(data["voice"])


def audio(path: Path) -> np.ndarray:
    samples, rate = soundfile.read(str(path), dtype="float64")
    assert rate == RATE_HZ
    return samples.mean(axis=1)


def entry_paths(cache_dir: Path, spec: VoiceSpec, texts: list[str]) -> dict[str, Path]:
    """Where the cache keeps each text's clip (computed as Coach computes it)."""
    with open_voice(spec, cache=ClipCache(cache_dir / "voice")) as voice:
        return {t: voice.cache.path_for(voice.key_for(normalize_for_speech(t))) for t in texts}


def window(x: np.ndarray, cue: dict) -> np.ndarray:
    return x[round(cue["start_s"] * RATE_HZ): round(cue["end_s"] * RATE_HZ)]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def envelope(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME * FRAME
    return np.sqrt((x[:n].reshape(-1, FRAME) ** 2).mean(axis=1))


def envelope_match(a: np.ndarray, b: np.ndarray, piece: int = 20, lag: int = 2) -> float:
    """How alike two loudness envelopes are: over 1 s pieces of ``a``, the mean of each piece's best
    correlation with ``b`` within +-``lag`` frames (+-100 ms).

    Two syntheses of one sentence drift apart by some tens of ms along it (and a take can start a
    frame later): a straight correlation of two takes of a 4 s sentence came out from 0.56 to 1.0;
    this measure from 0.89 to 1.0, and 0.11 against another sentence of the same length."""
    scores = []
    for start in range(0, max(1, len(a) - piece // 2), piece):
        seg = a[start:start + piece]
        best = -1.0
        for shift in range(-lag, lag + 1):
            other = b[max(0, start + shift):start + shift + len(seg)]
            if len(other) == len(seg) and len(seg) > 1:
                best = max(best, correlation(seg, other))
        scores.append(best)
    return float(np.mean(scores))


def voiced_s(x: np.ndarray) -> float:
    """From the first to the last 50 ms with sound in it."""
    env = envelope(x)
    loud = np.flatnonzero(env > 0.1 * env.max())
    return (loud[-1] - loud[0] + 1) * FRAME / RATE_HZ


def assert_same_session(heard: np.ndarray, reference: np.ndarray, speech: list[dict], exact: set[str] = frozenset()):
    """Every cue says the same words at the same time; cues in ``exact`` are the very same clip."""
    assert heard.shape == reference.shape
    gain = np.sqrt(np.mean(heard**2) / np.mean(reference**2))
    assert 0.7 < gain < 1.4, "the session's loudness changed"
    for cue in speech:
        a, b = window(heard, cue), window(reference, cue)
        assert np.abs(a).max() > 0.01, f"silence where {cue['text']!r} should be"
        # Same words: the same syllable rhythm, the same spoken length and level.
        assert envelope_match(envelope(a), envelope(b)) > 0.6, f"{cue['text']!r} does not sound the same"
        assert abs(voiced_s(a) - voiced_s(b)) < 0.1 + 0.05 * voiced_s(b), f"{cue['text']!r} changed length"
        assert 0.5 < np.sqrt(np.mean(a**2) / np.mean(b**2)) < 2, f"{cue['text']!r} changed level"
        if cue["text"] in exact:
            assert correlation(a, b) > 0.99, f"{cue['text']!r} should be the cached clip, unchanged"


def assert_cache_whole(cache_dir: Path) -> list[Path]:
    entries = sorted((cache_dir / "voice").rglob("*.clip"))
    assert all(decode_entry(p.read_bytes()) is not None for p in entries if p.is_file())
    leftovers = [p for p in (cache_dir / "voice").rglob("*") if p.is_file() and p.suffix != ".clip"]
    assert leftovers == [], f"temporary files left in the cache: {leftovers}"
    return entries


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "flip a payload byte":
        i = len(data) - 100
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:])
    elif how == "truncate to half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        path.unlink()
    elif how == "garbage header":
        path.write_bytes(b"\xff" * 64 + data[64:])
    elif how == "loud payload, old checksum":
        # What a missing checksum would let through: full-scale noise spoken as the cue.
        head = data.index(b"}") + 1
        path.write_bytes(data[:head] + np.full((len(data) - head) // 4, 1.0, "<f4").tobytes())
    elif how == "a folder in its place":
        path.unlink()
        path.mkdir()
    else:
        raise ValueError(how)


DAMAGE = ["flip a payload byte", "truncate to half", "empty", "delete", "garbage header",
          "loud payload, old checksum", "a folder in its place"]


def test_damaged_cache_entries_are_spoken_again_and_the_rest_reused(planned, tmp_path):
    folder, script, env, speech, reference, spec = planned
    cache = Path(env["COACH_CACHE_DIR"])
    texts = list(dict.fromkeys(c["text"] for c in speech))
    assert len(texts) > len(DAMAGE) + 3
    paths = entry_paths(cache, spec, texts)
    before = {t: paths[t].read_bytes() for t in texts}
    damaged = dict(zip(texts[1::2], DAMAGE))
    for text, how in damaged.items():
        damage(paths[text], how)

    out = tmp_path / "again.wav"
    done = run(coach_command("export", str(script), "-o", str(out), "--sample-rate", str(RATE_HZ), "-q"), env, folder)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    intact = set(texts) - set(damaged)
    assert_same_session(audio(out), reference, speech, exact=intact)
    assert_cache_whole(cache)
    for text in intact:
        assert paths[text].read_bytes() == before[text], f"an intact entry was rewritten: {text!r}"
    for text, how in damaged.items():
        if how == "a folder in its place":
            continue  # cannot be replaced by a file; it is read as a miss every time, which only costs speed
        clip = decode_entry(paths[text].read_bytes())
        old = decode_entry(before[text])
        assert clip is not None, f"{how}: not written again"
        assert abs(clip.duration_s - old.duration_s) < 0.03, f"{how}: {text!r} changed length"


def test_two_exports_at_once_sharing_an_empty_cache_both_come_out_right(planned, tmp_path):
    folder, script, _, speech, reference, _ = planned
    env = coach_env(tmp_path, cache=tmp_path / "shared-cache")
    outs = [tmp_path / f"{name}.wav" for name in ("a", "b")]
    procs = [subprocess.Popen(coach_command("export", str(script), "-o", str(out), "--sample-rate", str(RATE_HZ),
                                            "-q"), env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
             for out in outs]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    a, b = audio(outs[0]), audio(outs[1])
    assert_same_session(a, reference, speech)
    assert_same_session(b, reference, speech)
    entries = assert_cache_whole(tmp_path / "shared-cache")
    # One entry per distinct spoken text, and one per earcon (balanced once, cached beside them).
    sounds = {c["sound"] for c in json.loads(script.read_text())["cues"] if c["kind"] == "sound"}
    assert len(entries) == len({normalize_for_speech(c["text"]) for c in speech}) + len(sounds)


def test_two_plans_of_a_routine_at_once_agree_within_milliseconds(planned, tmp_path):
    """Planning measures every clip: two processes racing to fill one cache still plan the same session."""
    folder, _, _, _, _, _ = planned
    routine = write_short_routine(tmp_path)
    env = coach_env(tmp_path, cache=tmp_path / "shared-cache")
    procs = [subprocess.Popen(coach_command("plan", str(routine), "--format", "json"), env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    plans = [json.loads(out) for out, _ in results]
    starts = [np.array([c["start_s"] for c in p["cues"]]) for p in plans]
    assert len(starts[0]) == len(starts[1])
    assert np.abs(starts[0] - starts[1]).max() < 0.1
    assert_cache_whole(tmp_path / "shared-cache")
