"""A disk cache of trimmed speech clips, safe against crashes and concurrent writers.

Each entry is one file named by the SHA-256 of everything that changes the
audio (engine and library versions, voice, rate, volume, spoken text, trim
settings). The file carries its own checksum, so a corrupt or truncated
entry reads as a miss and is synthesized again. Entries are written to a
temporary file in the same folder and renamed into place (``os.replace`` is
atomic): a reader sees a whole old entry or a whole new one, never a mix,
and two processes writing the same entry both leave a valid file.

Speech is stored first-writer-wins (``ClipCache.keep``): two takes of one text
differ by a few milliseconds, so processes racing to fill one cache all use the
take that stays in it, and plan and play the same session.

The folder is ``platformdirs.user_cache_dir("coach")/voice``, or
``$COACH_CACHE_DIR/voice`` when that variable is set (tests use it).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Mapping

import numpy as np

from coach.audio.clip import Clip

if TYPE_CHECKING:
    from coach.audio.level import ClipLevel

MAGIC = b"COACHCLIP1\n"
_HEADER_LEN = struct.Struct("<I")
FORMAT_VERSION = 2
"""2: speech clips are stored normalized (coach.audio.level), with their level."""

Outcome = Literal["hit", "miss", "corrupt"]


def default_cache_dir() -> Path:
    """Where voice clips are cached: ``$COACH_CACHE_DIR/voice`` or the user cache folder."""
    override = os.environ.get("COACH_CACHE_DIR")
    if override:
        return Path(override) / "voice"
    import platformdirs

    return Path(platformdirs.user_cache_dir("coach")) / "voice"


def cache_key(parts: Mapping[str, Any]) -> str:
    """Hex SHA-256 of ``parts`` (JSON, sorted keys): the same inputs give the same key."""
    blob = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def encode_entry(clip: Clip) -> bytes:
    """The bytes of a cache file holding ``clip`` (and its level, when it has one)."""
    payload = np.ascontiguousarray(clip.samples, dtype="<f4").tobytes()
    meta: dict[str, Any] = {"sample_rate_hz": clip.sample_rate_hz, "frames": len(clip.samples)}
    if clip.level is not None:
        level = clip.level
        payload += np.ascontiguousarray(level.energy, dtype="<f4").tobytes()
        meta["level"] = {
            "loudness_lufs": level.loudness_lufs if math.isfinite(level.loudness_lufs) else None,
            "true_peak": level.true_peak,
            "energy_steps": len(level.energy),
        }
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    header = json.dumps(meta).encode("utf-8")
    return MAGIC + _HEADER_LEN.pack(len(header)) + header + payload


def decode_entry(data: bytes) -> Clip | None:
    """The clip in a cache file's bytes, or None if they are not a whole, intact entry."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER_LEN.size:
        return None
    offset = len(MAGIC)
    (header_len,) = _HEADER_LEN.unpack_from(data, offset)
    offset += _HEADER_LEN.size
    try:
        header = json.loads(data[offset : offset + header_len].decode("utf-8"))
        rate_hz = int(header["sample_rate_hz"])
        frames = int(header["frames"])
        digest = str(header["sha256"])
        level = header.get("level")
        steps = int(level["energy_steps"]) if level is not None else 0
    except (ValueError, KeyError, TypeError):
        return None
    payload = data[offset + header_len :]
    if rate_hz <= 0 or steps < 0 or len(payload) != (frames + steps) * 4 \
            or hashlib.sha256(payload).hexdigest() != digest:
        return None
    values = np.frombuffer(payload, dtype="<f4").astype(np.float32)
    clip_level = None
    if level is not None:
        from coach.audio.level import ClipLevel

        try:
            lufs = -math.inf if level["loudness_lufs"] is None else float(level["loudness_lufs"])
            clip_level = ClipLevel(lufs, float(level["true_peak"]), values[frames:])
        except (ValueError, KeyError, TypeError):
            return None
    return Clip(values[:frames], rate_hz, level=clip_level)


def _entry_header(f: BinaryIO) -> tuple[dict[str, Any], int, int] | None:
    """The header of the cache file open as ``f``, where its payload starts, and how long the payload is
    by the header (None if they disagree with the file's size). Reads a few hundred bytes, no checksum."""
    head = f.read(len(MAGIC) + _HEADER_LEN.size)
    if len(head) < len(MAGIC) + _HEADER_LEN.size or not head.startswith(MAGIC):
        return None
    (header_len,) = _HEADER_LEN.unpack_from(head, len(MAGIC))
    if header_len > 4096:
        return None
    header = json.loads(f.read(header_len).decode("utf-8"))
    frames = int(header["frames"])
    steps = int(header["level"]["energy_steps"]) if header.get("level") is not None else 0
    start = len(head) + header_len
    if int(header["sample_rate_hz"]) <= 0 or os.fstat(f.fileno()).st_size != start + (frames + steps) * 4:
        return None
    return header, start, frames


def header_duration_s(path: Path) -> float | None:
    """The length of the clip in a cache file, from its header and size alone (None if they disagree).

    Cheap (a few hundred bytes read, no checksum): for measuring. A payload damaged
    in place still passes; ``ClipCache.lookup`` finds that when the clip is needed.
    """
    try:
        with open(path, "rb") as f:
            found = _entry_header(f)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if found is None else found[2] / int(found[0]["sample_rate_hz"])


def header_level(path: Path) -> ClipLevel | None:
    """The level stored with a cache file's clip, read from its header and tail alone (None if absent).

    Like ``header_duration_s``, no checksum: the master uses it to compute the
    session's loudness before reading any audio; the clip is checked when used.
    """
    from coach.audio.level import ClipLevel

    try:
        with open(path, "rb") as f:
            found = _entry_header(f)
            if found is None or found[0].get("level") is None:
                return None
            header, start, frames = found
            level = header["level"]
            f.seek(start + frames * 4)
            energy = np.frombuffer(f.read(int(level["energy_steps"]) * 4), dtype="<f4").astype(np.float32)
        lufs = -math.inf if level["loudness_lufs"] is None else float(level["loudness_lufs"])
        return ClipLevel(lufs, float(level["true_peak"]), energy)
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class CacheStats:
    """What the cache did, for tests and progress reports."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0
    write_errors: list[str] = field(default_factory=list)


class ClipCache:
    """Clips on disk under ``directory``, one checksummed file per key."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.stats = CacheStats()

    def path_for(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.clip"

    def lookup(self, key: str) -> tuple[Clip | None, Outcome]:
        """The cached clip and "hit", or None and "miss" / "corrupt" (to be re-synthesized)."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.stats.misses += 1
            return None, "miss"
        except OSError:
            # Unreadable (permissions, I/O error): synthesize instead of failing the session.
            self.stats.corrupt += 1
            return None, "corrupt"
        clip = decode_entry(data)
        if clip is None:
            # Not deleted: another process may be renaming a good entry into
            # place right now. The re-synthesized clip replaces it atomically.
            self.stats.corrupt += 1
            return None, "corrupt"
        self.stats.hits += 1
        return clip, "hit"

    def get(self, key: str) -> Clip | None:
        return self.lookup(key)[0]

    def duration_s(self, key: str) -> float | None:
        """Length of the cached clip from the entry's header (see ``header_duration_s``), None if absent."""
        return header_duration_s(self.path_for(key))

    def level(self, key: str) -> ClipLevel | None:
        """The cached clip's level from the entry alone (see ``header_level``), None if absent."""
        return header_level(self.path_for(key))

    def keep(self, key: str, clip: Clip) -> Clip:
        """Store ``clip`` unless a whole entry is already there; the clip the cache holds.

        That is ``clip``, or the take another process stored first: the entry is linked
        into place (``os.link`` fails on an existing name, where ``os.replace`` would
        overwrite it). A corrupt entry is replaced. Where the file system has no hard
        links, or the cache cannot be written, this is ``put``.
        """
        return self._store(key, clip, first_wins=True)[0]

    def put(self, key: str, clip: Clip) -> bool:
        """Store ``clip`` atomically; False (and noted in stats) if the cache cannot be written."""
        return self._store(key, clip, first_wins=False)[1]

    def _store(self, key: str, clip: Clip, *, first_wins: bool) -> tuple[Clip, bool]:
        """Write ``clip`` to a temporary file, then into place; (the clip the cache holds, written)."""
        path = self.path_for(key)
        temp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(encode_entry(clip))
            held = _link_first(temp_name, path, clip) if first_wins else None
            if held is not None and held is not clip:
                return held, False  # another process's take was there first
            if held is None:
                os.replace(temp_name, path)
                temp_name = None
        except OSError as exc:
            # A cache that cannot be written (read-only, full disk) only costs speed.
            self.stats.write_errors.append(f"{path}: {exc}")
            return clip, False
        finally:
            if temp_name is not None:  # unused, or linked (the entry is its second name)
                try:
                    os.unlink(temp_name)
                except OSError:
                    pass
        self.stats.writes += 1
        return clip, True


def _link_first(temp_name: str, path: Path, clip: Clip) -> Clip | None:
    """Link ``temp_name`` (holding ``clip``) to ``path`` unless a whole entry is there.

    ``clip`` if linked, the entry's clip if one was there, None if ``path`` must be
    replaced instead (a corrupt entry, or no hard links on this file system).
    """
    for _ in range(3):  # an entry removed between the link and the read is linked again
        try:
            os.link(temp_name, path)
            return clip
        except FileExistsError:
            try:
                return decode_entry(path.read_bytes())  # None if corrupt
            except FileNotFoundError:
                continue
            except OSError:
                return None
        except OSError:
            return None  # no hard links here (FAT, some network file systems)
    return None
