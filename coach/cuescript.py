"""Cue scripts: a Timeline as text (json, vtt, srt, txt, labels, table) and back.

``write_script(timeline, fmt)`` prints a timeline; ``read_script(path)`` reads
an edited .json, .vtt or .srt script back into a Timeline, so what a user
changed (a text, a time) is exactly what gets rendered. Errors name the file
and line (InputFileError).

- json: the Timeline contract, one cue per line so edits and diffs stay readable.
- vtt: WebVTT subtitles; each cue's identifier carries its phase, exercise, set,
  side and rep, a ``NOTE coach`` block the routine, level, voice and chapters.
- srt: SubRip subtitles (no room for metadata: times and texts only).
- txt: a readable timed script; labels: an Audacity label track; table: the
  per-exercise summary ``coach plan`` prints by default.

In vtt, srt, txt and labels a sound cue is written ``[start sound]``.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

from coach.errors import InputFileError, UsageError
from coach.timeline import PHASES, SOUNDS, Chapter, Cue, Timeline, VoiceSpec, ms

FORMATS: tuple[str, ...] = ("table", "json", "vtt", "srt", "txt", "labels")
READABLE: tuple[str, ...] = (".json", ".vtt", ".srt")
MAX_SCRIPT_BYTES = 200_000_000
_SOUND_TEXT = re.compile(r"^\[(" + "|".join(SOUNDS) + r") sound\]$")


def sound_label(sound: str | None) -> str:
    return f"[{sound} sound]"


def clock(seconds: float, *, tenths: bool = False) -> str:
    """'1:02:05', '12:05' or with tenths '12:05.3'."""
    if tenths:
        whole, tenth = divmod(int(round(seconds * 10)), 10)
    else:
        whole, tenth = int(round(seconds)), 0
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    return f"{text}.{tenth}" if tenths else text


def _stamp(seconds: float, sep: str) -> str:
    total_ms = int(round(seconds * 1000))
    h, rest = divmod(total_ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- writing ------------------------------------------------------------------------------


def write_script(timeline: Timeline, fmt: str) -> str:
    """``timeline`` as text in format ``fmt`` (json, vtt, srt, txt, labels or table)."""
    writers = {"json": _json, "vtt": _vtt, "srt": _srt, "txt": _txt, "labels": _labels, "table": _table}
    if fmt not in writers:
        raise UsageError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")
    return writers[fmt](timeline)


def _json(t: Timeline) -> str:
    d = t.to_dict()
    dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
    lines = ["{"]
    for key in ("routine", "title", "level", "voice", "sounds", "duration_s"):
        if key in d:
            lines.append(f"  {dump(key)}: {dump(d[key])},")
    for key in ("chapters", "cues", "dropped"):
        items = d[key]
        body = ",\n".join(f"    {dump(item)}" for item in items)
        tail = "," if key != "dropped" else ""
        lines.append(f"  {dump(key)}: [\n{body}\n  ]{tail}" if items else f"  {dump(key)}: []{tail}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _meta_words(c: Cue) -> str:
    words = [c.phase]
    for key, value in (("exercise", c.exercise), ("set", c.set), ("side", c.side), ("rep", c.rep)):
        if value is not None:
            words.append(f"{key}={value}")
    if c.optional:
        words.append("optional")
    if c.under_speech:
        words.append("under_speech")
    return " ".join(words)


def _vtt(t: Timeline) -> str:
    header = {
        "routine": t.routine, "title": t.title, "level": t.level, "voice": t.voice.to_dict(),
        "chapters": [c.to_dict() for c in t.chapters],
        **({"sounds": dict(t.sounds)} if t.sounds else {}),
    }
    # A NOTE may not contain "-->"; JSON can say it without those three characters.
    note = json.dumps(header, ensure_ascii=False).replace("-->", "--\\u003e")
    out = [f"WEBVTT - {_one_line(t.title).replace('-->', '->')}", "", f"NOTE coach {note}", ""]
    for n, c in enumerate(t.cues, 1):
        text = sound_label(c.sound) if c.kind == "sound" else c.text or ""
        out += [f"{n} {_meta_words(c)}", f"{_stamp(c.start_s, '.')} --> {_stamp(c.end_s, '.')}", _vtt_text(text), ""]
    return "\n".join(out)


def _vtt_text(text: str) -> str:
    lines = [html.escape(line, quote=False) for line in text.splitlines() if line.strip()]
    return "\n".join(lines) or "-"


def _srt(t: Timeline) -> str:
    out = []
    for n, c in enumerate(t.cues, 1):
        text = sound_label(c.sound) if c.kind == "sound" else c.text or ""
        lines = [line for line in text.splitlines() if line.strip()] or ["-"]
        out += [str(n), f"{_stamp(c.start_s, ',')} --> {_stamp(c.end_s, ',')}", *lines, ""]
    return "\n".join(out)


def _txt(t: Timeline) -> str:
    out = [f"{t.title} ({t.level} level, {clock(t.duration_s)}; voice {t.voice.engine} {t.voice.voice}, "
           f"{t.voice.rate_wpm} wpm)", ""]
    chapters = sorted(t.chapters, key=lambda c: c.start_s)
    k = 0
    for c in t.cues:
        while k < len(chapters) and chapters[k].start_s <= c.start_s:
            out += ["", f"== {clock(chapters[k].start_s, tenths=True)}  {chapters[k].title} =="]
            k += 1
        text = sound_label(c.sound) if c.kind == "sound" else _one_line(c.text or "")
        out.append(f"{clock(c.start_s, tenths=True):>9}  {text}")
    for chapter in chapters[k:]:
        out += ["", f"== {clock(chapter.start_s, tenths=True)}  {chapter.title} =="]
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


def _labels(t: Timeline) -> str:
    rows = [(ch.start_s, ch.start_s, f"Chapter: {_one_line(ch.title)}") for ch in t.chapters]
    rows += [(c.start_s, c.end_s, sound_label(c.sound) if c.kind == "sound" else _one_line(c.text or ""))
             for c in t.cues]
    rows.sort(key=lambda r: (r[0], r[1]))
    return "".join(f"{ms(a):.6f}\t{ms(b):.6f}\t{label}\n" for a, b, label in rows)


def _table(t: Timeline) -> str:
    chapters = sorted(t.chapters, key=lambda c: c.start_s)
    sets: dict[str, int] = {}
    for c in t.cues:
        if c.exercise is not None and c.set is not None:
            sets[c.exercise] = max(sets.get(c.exercise, 0), c.set)
    width = max([len("Part")] + [len(ch.title) for ch in chapters])
    out = [f"{t.title} ({t.routine}, {t.level} level; voice {t.voice.engine} {t.voice.voice}, {t.voice.rate_wpm} wpm)",
           "", f"{'#':>3}  {'Part':<{width}}  {'Sets':>4}  {'Start':>7}  {'Length':>7}"]
    number = 0
    for i, ch in enumerate(chapters):
        end = chapters[i + 1].start_s if i + 1 < len(chapters) else t.duration_s
        if ch.exercise is not None:
            number += 1
        label = str(number) if ch.exercise is not None else ""
        n_sets = str(sets.get(ch.exercise, "")) if ch.exercise is not None else ""
        out.append(f"{label:>3}  {ch.title:<{width}}  {n_sets:>4}  {clock(ch.start_s):>7}  {clock(end - ch.start_s):>7}")
    out.append(f"{'':>3}  {'Total':<{width}}  {'':>4}  {'':>7}  {clock(t.duration_s):>7}")
    spoken = sum(1 for c in t.cues if c.kind == "speech")
    out += ["", f"{spoken} spoken cues, {len(t.cues) - spoken} sounds."]
    if t.dropped:
        out.append(f"{len(t.dropped)} optional cue(s) left out where speech did not fit (see --format json).")
    return "\n".join(out) + "\n"


# --- reading ------------------------------------------------------------------------------


def read_script(path: str | Path) -> Timeline:
    """Read an edited .json, .vtt or .srt cue script back into a Timeline."""
    from coach.loader import display_name, read_text

    name = display_name(path)
    path = Path(path)
    text = read_text(path, max_bytes=MAX_SCRIPT_BYTES)
    kind = path.suffix.lower()
    if kind not in READABLE:
        head = text.lstrip("\ufeff \t\r\n")[:6]
        kind = ".vtt" if head.startswith("WEBVTT") else ".json" if head.startswith("{") else ".srt" if head[:1].isdigit() else ""
    if kind == ".json":
        return _read_json(text, name)
    if kind == ".vtt":
        return _read_subtitles(text, name, vtt=True)
    if kind == ".srt":
        return _read_subtitles(text, name, vtt=False)
    raise InputFileError(f"{name}: not a cue script; give a .json, .vtt or .srt file written by `coach plan`")


def stdin_is_script() -> bool:
    """Is standard input a cue script (WebVTT, SRT, or JSON with ``cues`` and no ``exercises``) or a routine?"""
    from coach.loader import read_stdin

    data = read_stdin(MAX_SCRIPT_BYTES)
    head = data[:200].decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if head.startswith("WEBVTT") or re.match(r"\d+\s*\n[^\n]*-->", head):
        return True
    if not head.startswith("{"):
        return False
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return False  # let the routine loader report it with a location
    return isinstance(doc, dict) and "cues" in doc and "exercises" not in doc


def _timeline(cues: list[Cue], header: dict[str, Any], name: str, places: list[tuple[str, int]],
              header_where: str) -> Timeline:
    """The Timeline of ``cues`` and the script's header; ``places[i]`` is cue i's (error prefix, line)."""
    if not cues:
        raise InputFileError(f"{name}: the script has no cues")
    _check_times(cues, places)
    cues.sort(key=lambda c: (c.start_s, c.end_s))
    stem = Path(name).stem
    voice = header.get("voice") or {}
    try:
        voice = VoiceSpec.from_dict(voice)
    except (TypeError, ValueError, AttributeError, OverflowError):
        raise InputFileError(f"{header_where}: voice: expected engine, voice, rate_wpm (a whole number) and volume "
                             f"(a number), got {_short(voice)}") from None
    try:
        chapters = tuple(sorted((Chapter.from_dict(c) for c in header.get("chapters") or []), key=lambda c: c.start_s))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputFileError(f"{header_where}: chapters: expected a list of {{\"start_s\": seconds, \"title\": text}}, "
                             f"got {_short(header.get('chapters'))}") from None
    for i, chapter in enumerate(chapters):
        if _seconds(chapter.start_s) is None:
            raise InputFileError(f"{header_where}: chapters[{i}]: start_s: expected a number of seconds >= 0, "
                                 f"got {chapter.start_s!r}")
    dropped = header.get("dropped") or []
    sounds = _script_sounds(header.get("sounds"), Path(name).parent, header_where)
    return Timeline(routine=str(header.get("routine") or stem), title=str(header.get("title") or stem),
                    level=str(header.get("level") or "standard"), voice=voice,
                    duration_s=max(c.end_s for c in cues), chapters=chapters, cues=tuple(cues),
                    dropped=tuple(d for d in dropped if isinstance(d, dict)), sounds=sounds)


def _script_sounds(value: Any, folder: Path, where: str) -> dict[str, str]:
    """The script's own sound files (name -> path; relative paths from the script's folder)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InputFileError(f"{where}: sounds: expected {{\"name\": \"file\"}} pairs, got {_short(value)}")
    unknown = sorted(set(value) - set(SOUNDS))
    if unknown:
        raise InputFileError(f"{where}: sounds: unknown sound {unknown[0]!r}; the sounds are {', '.join(SOUNDS)}")
    return {name: str(path if Path(path).is_absolute() else folder / path) for name, path in value.items()}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_times(cues: list[Cue], places: list[tuple[str, int]]) -> None:
    """Refuse times past the longest session, and speech over speech (two voices at once).

    Sounds may overlap anything (the planner puts start sounds under speech), but an
    edited script where one spoken cue starts before the previous one ends would
    be heard as two voices talking over each other: that is a mistake in the file.
    """
    from coach.model import MAX_SESSION_S  # here: the model (pydantic) is slow to import for `coach --help`

    for cue, (where, _) in zip(cues, places):
        if cue.end_s > MAX_SESSION_S:
            raise InputFileError(f"{where}: the cue ends at {clock(cue.end_s)}; "
                                 f"a session lasts at most {MAX_SESSION_S // 3600} h")
    speech = sorted((c.start_s, c.end_s, place) for c, place in zip(cues, places) if c.kind == "speech")
    latest_end, latest_line = -1.0, 0
    for start, end, (where, line) in speech:
        if start < latest_end:
            raise InputFileError(f"{where}: this cue starts at {start:.3f} s, before the spoken cue at line "
                                 f"{latest_line} ends ({latest_end:.3f} s); move one so they do not overlap")
        if end > latest_end:
            latest_end, latest_line = end, line


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _cue_from_dict(d: Any, where: str) -> Cue:
    """Validate one cue object of a json script."""
    if not isinstance(d, dict):
        raise InputFileError(f"{where}: expected a cue object, got {type(d).__name__}")
    start, end = _seconds(d.get("start_s")), _seconds(d.get("end_s"))
    for key, value in (("start_s", start), ("end_s", end)):
        if value is None:
            raise InputFileError(f"{where}: {key}: expected a number of seconds >= 0, got {d.get(key)!r}")
    kind = d.get("kind", "sound" if "sound" in d and "text" not in d else "speech")
    phase = d.get("phase") or "instruction"
    if phase not in PHASES:
        raise InputFileError(f"{where}: phase: expected one of {', '.join(PHASES)}, got {phase!r}")
    for key in ("exercise", "side"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise InputFileError(f"{where}: {key}: expected text or null, got {d[key]!r}")
    for key in ("set", "rep"):
        if d.get(key) is not None and (isinstance(d[key], bool) or not isinstance(d[key], int)):
            raise InputFileError(f"{where}: {key}: expected a whole number or null, got {d[key]!r}")
    return _make_cue(start, end, kind, d.get("text"), d.get("sound"), where, phase=phase,
                     exercise=d.get("exercise"), set=d.get("set"), side=d.get("side"), rep=d.get("rep"),
                     optional=bool(d.get("optional", False)), under_speech=bool(d.get("under_speech", False)))


def _make_cue(start: float, end: float, kind: Any, text: Any, sound: Any, where: str, **fields: Any) -> Cue:
    fields.setdefault("phase", "instruction")  # subtitles without coach's identifiers
    if end < start:
        raise InputFileError(f"{where}: the cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
    if kind == "speech":
        if not isinstance(text, str) or not text.strip():
            raise InputFileError(f"{where}: a speech cue needs a non-empty text")
        return Cue(start_s=ms(start), end_s=ms(end), kind="speech", text=text, **fields)
    if kind == "sound":
        if sound not in SOUNDS:
            raise InputFileError(f"{where}: sound: expected one of {', '.join(SOUNDS)}, got {sound!r}")
        return Cue(start_s=ms(start), end_s=ms(end), kind="sound", sound=sound, **fields)
    raise InputFileError(f"{where}: kind: expected 'speech' or 'sound', got {kind!r}")


def _read_json(text: str, name: str) -> Timeline:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputFileError(f"{name}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("cues"), list):
        raise InputFileError(f"{name}:1: expected a timeline object with a \"cues\" list (from `coach plan --format json`)")
    lines = _cue_lines(text)
    cues, places = [], []
    for i, d in enumerate(data["cues"]):
        line = lines[i] if i < len(lines) else 1
        places.append((f"{name}:{line}: cues[{i}]", line))
        cues.append(_cue_from_dict(d, places[-1][0]))
    return _timeline(cues, data, name, places, f"{name}:{_key_line(text)}")


def _key_line(text: str) -> int:
    """Line of the first "voice" or "chapters" key of a json script (where header errors are)."""
    found = re.search(r'^\s*"(?:voice|chapters)"\s*:', text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else 1


_WS = re.compile(r"[ \t\n\r]*")


def _cue_lines(text: str) -> list[int]:
    """Line number of each element of the top-level "cues" list of valid JSON ``text``."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        return _WS.match(text, i).end()  # type: ignore[union-attr]

    try:
        i = skip(0)
        if text[i] != "{":
            return []
        i = skip(i + 1)
        while text[i] != "}":
            key, i = json.decoder.scanstring(text, i + 1)  # type: ignore[attr-defined]
            i = skip(skip(i) + 1)  # past the colon
            if key == "cues" and text[i] == "[":
                starts, i = [], skip(i + 1)
                while text[i] != "]":
                    starts.append(i)
                    _, i = decoder.raw_decode(text, i)
                    i = skip(i)
                    i = skip(i + 1) if text[i] == "," else i
                return [text.count("\n", 0, s) + 1 for s in starts]
            _, i = decoder.raw_decode(text, i)
            i = skip(i)
            i = skip(i + 1) if text[i] == "," else i
    except (ValueError, IndexError):
        return []  # errors are then reported at line 1: the file parsed, its layout is just unusual
    return []


_TIMING = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)")
# Hours are bounded in digits: int() refuses strings of over 4300 digits (a ValueError, not a
# located error), and anything past 24 h is refused later anyway.
_VTT_STAMP = re.compile(r"^(?:([0-9]{2,9}):)?([0-5][0-9]):([0-5][0-9])\.([0-9]{3})$")
_SRT_STAMP = re.compile(r"^([0-9]{1,9}):([0-5]?[0-9]):([0-5]?[0-9])[,.]([0-9]{1,3})$")


def _parse_stamp(stamp: str, vtt: bool, where: str) -> float:
    m = (_VTT_STAMP if vtt else _SRT_STAMP).match(stamp)
    if not m:
        example = "00:01:02.500" if vtt else "00:01:02,500"
        shown = stamp if len(stamp) <= 30 else stamp[:27] + "..."
        raise InputFileError(f"{where}: bad time {shown!r}; expected hours:minutes:seconds like {example}")
    h, m_, s, frac = m.groups()
    return int(h or 0) * 3600 + int(m_) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def _read_subtitles(text: str, name: str, *, vtt: bool) -> Timeline:
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header: dict[str, Any] = {}
    header_where = f"{name}:1"
    if vtt:
        if not re.match(r"^WEBVTT(?:[ \t].*)?$", lines[0]):
            raise InputFileError(f"{name}:1: a WebVTT file must start with 'WEBVTT'")
        lines[0] = ""
    cues: list[Cue] = []
    places: list[tuple[str, int]] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        start_line = i
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        where = f"{name}:{start_line + 1}"
        if vtt and re.match(r"^(NOTE|STYLE|REGION)(?:[ \t]|$)", block[0]):
            if block[0].startswith("NOTE coach "):
                try:
                    header = json.loads("\n".join(block)[len("NOTE coach "):])
                except json.JSONDecodeError as exc:
                    raise InputFileError(f"{where}: the 'NOTE coach' header is not valid JSON: {exc.msg}") from None
                if not isinstance(header, dict):
                    raise InputFileError(f"{where}: the 'NOTE coach' header must be a JSON object")
                header_where = where
            continue
        cues.append(_subtitle_cue(block, start_line, name, vtt))
        places.append((f"{name}:{start_line + 1}", start_line + 1))
    return _timeline(cues, header, name, places, header_where)


def _subtitle_cue(block: list[str], first: int, name: str, vtt: bool) -> Cue:
    k = 0
    ident = ""
    if "-->" not in block[0]:
        ident = block[0].strip()
        k = 1
        if not vtt and not ident.isdigit():
            raise InputFileError(f"{name}:{first + 1}: expected a cue number, got {ident[:40]!r}")
    if k >= len(block) or not _TIMING.match(block[k]):
        raise InputFileError(f"{name}:{first + k + 1}: expected a timing line like "
                             f"'00:00:01{'.' if vtt else ','}000 --> 00:00:02{'.' if vtt else ','}500'")
    where = f"{name}:{first + k + 1}"
    a, b = _TIMING.match(block[k]).groups()  # type: ignore[union-attr]
    start, end = _parse_stamp(a, vtt, where), _parse_stamp(b, vtt, where)
    body = block[k + 1:]
    if not body:
        raise InputFileError(f"{where}: the cue has no text")
    text = "\n".join(html.unescape(line) if vtt else line for line in body)
    fields = _ident_fields(ident, where) if vtt else {}
    sound = _SOUND_TEXT.match(text.strip())
    if sound:  # the text decides, so a user may turn a sound into words or back
        return _make_cue(start, end, "sound", None, sound.group(1), where, **fields)
    return _make_cue(start, end, "speech", text, None, where, **fields)


def _ident_fields(ident: str, where: str) -> dict[str, Any]:
    """Metadata from a vtt cue identifier like '12 work exercise=bird-dog set=1 side=left rep=3 optional'."""
    fields: dict[str, Any] = {}
    for word in ident.split()[1:] if ident[:1].isdigit() else ident.split():
        key, eq, value = word.partition("=")
        if not eq:
            if key in PHASES:
                fields["phase"] = key
            elif key in ("optional", "under_speech"):
                fields[key] = True
            continue  # unknown words are a user's own labels: keep the cue, ignore the word
        if key in ("set", "rep"):
            # Not str.isdigit(): it accepts '²', which int() refuses, and any number of digits.
            if not re.fullmatch(r"[0-9]{1,9}", value):
                raise InputFileError(f"{where}: {key}={value[:20]}: expected a whole number")
            fields[key] = int(value)
        elif key in ("exercise", "side"):
            fields[key] = value
    return fields
