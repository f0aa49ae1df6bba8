"""Load routine files (YAML or JSON) into validated ``Routine`` objects.

Errors point at the file, line and column of the offending value, name the
field, say what was expected and what was found, and all problems of a file are
reported at once. JSON is parsed by the same YAML 1.2 parser so both get
positions.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from coach.errors import InputFileError, RoutineInvalid, UsageError
from coach.model import STEP_TAGS, Routine

STDIN = "-"
"""A routine or script reference that means standard input (`cat r.yaml | coach validate -`)."""
STDIN_NAME = "<stdin>"
"""How errors name standard input: ``<stdin>:3:7: ...``."""
MAX_FILE_BYTES = 1_000_000
MAX_VALUES = 200_000
ROUTINE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class RoutineInfo:
    """A routine found on this machine, for listings."""

    name: str
    title: str
    source: str  # "built-in" or the file path
    exercises: int
    estimated_s: float


def user_routine_dir() -> Path:
    """Where a user's own routines live (COACH_DATA_DIR overrides, for tests)."""
    base = os.environ.get("COACH_DATA_DIR")
    if base:
        return Path(base) / "routines"
    from platformdirs import user_data_dir

    return Path(user_data_dir("coach")) / "routines"


def builtin_names() -> list[str]:
    folder = resources.files("coach") / "routines"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_routine(name: str) -> Routine:
    folder = resources.files("coach") / "routines"
    resource = folder / f"{name}.yaml"
    if not resource.is_file():
        raise UsageError(f"no built-in routine named {name!r}", hint=_suggest(name, builtin_names()))
    with resources.as_file(resource) as path:
        return load_file(path, display=f"{name} (built-in)")


def is_stdin(ref: str | os.PathLike[str]) -> bool:
    return os.fspath(ref) == STDIN


def display_name(path: str | os.PathLike[str]) -> str:
    """How messages name a file: its path, or ``<stdin>``."""
    return STDIN_NAME if is_stdin(path) else os.fspath(path)


def resolve(ref: str | os.PathLike[str]) -> Path | str:
    """A path for a file reference (``-``: standard input), else the name of a built-in or user routine."""
    text = os.fspath(ref)
    path = Path(text)
    if text == STDIN:
        return path
    if path.suffix.lower() in ROUTINE_SUFFIXES or os.sep in text or path.exists():
        return path
    return text


def load_routine(ref: str | os.PathLike[str]) -> Routine:
    """Load a routine by built-in name, user routine name or file path."""
    where = resolve(ref)
    if isinstance(where, Path):
        return load_file(where)
    user_dir = user_routine_dir()
    for suffix in ROUTINE_SUFFIXES:
        candidate = user_dir / f"{where}{suffix}"
        if candidate.is_file():
            return load_file(candidate)
    if where in builtin_names():
        return builtin_routine(where)
    known = builtin_names() + sorted(p.stem for p in _user_files())
    raise UsageError(
        f"no routine named {where!r} (not a built-in, not in {user_dir}, not a file)",
        hint=_suggest(where, known) or "see `coach routines`",
    )


def _user_files() -> Iterator[Path]:
    folder = user_routine_dir()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in ROUTINE_SUFFIXES and path.is_file():
                yield path


def list_routines() -> tuple[list[RoutineInfo], list[str]]:
    """Every routine found, and one problem line per user file that does not load."""
    found: list[RoutineInfo] = []
    problems: list[str] = []
    for name in builtin_names():
        r = builtin_routine(name)
        found.append(RoutineInfo(r.name, r.title, "built-in", len(r.exercises), r.estimated_s()))
    for path in _user_files():
        try:
            r = load_file(path)
        except InputFileError as exc:
            problems.append(str(exc))
            continue
        found.append(RoutineInfo(r.name, r.title, str(path), len(r.exercises), r.estimated_s()))
    return found, problems


def _suggest(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.5)
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


# --- reading and parsing --------------------------------------------------------------


_stdin = {"data": bytearray(), "eof": False}
"""What was read from standard input so far: several readers (is it a script? then load it) share it."""


def read_stdin(max_bytes: int, name: str = STDIN_NAME) -> bytes:
    """Standard input, read once and at most ``max_bytes`` (InputFileError beyond, or when it is closed)."""
    if sys.stdin is None:
        raise InputFileError(f"{name}: standard input is closed", hint="pipe a file into it, or give a file name")
    data = _stdin["data"]
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    while not _stdin["eof"] and len(data) <= max_bytes:
        try:
            chunk = stream.read(min(1 << 20, max_bytes + 1 - len(data)))
        except OSError as exc:
            raise InputFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
        if not chunk:
            _stdin["eof"] = True
        data += chunk.encode() if isinstance(chunk, str) else chunk
    if len(data) > max_bytes:
        raise InputFileError(f"{name}: input is too large (more than {max_bytes // 1000} kB)")
    return bytes(data)


def read_text(path: Path, display: str | None = None, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """Read a UTF-8 text file (``-``: standard input) with clear errors for missing, huge, binary or empty files."""
    name = display or display_name(path)
    if is_stdin(path):
        return _decode(read_stdin(max_bytes, name), name)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise InputFileError(f"{name}: is a folder, not a file")
        if size > max_bytes:
            raise InputFileError(
                f"{name}: file is too large ({size / 1e6:.1f} MB); a routine file is at most {max_bytes // 1000} kB"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{name}: no such file") from None
    except PermissionError:
        raise InputFileError(f"{name}: permission denied") from None
    except OSError as exc:
        raise InputFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return _decode(data, name)


def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise InputFileError(f"{name}:{line}: this is binary data, not a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputFileError(f"{name}:{line}:{col}: not valid UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    if not text.strip():
        raise InputFileError(f"{name}: file is empty")
    return text


def parse_document(text: str, name: str, *, json_only: bool = False) -> Any:
    """Parse YAML (or JSON) keeping line/column information on maps and lists.

    YAML 1.2 reads JSON too, but more leniently (trailing commas, comments), so
    a ``.json`` file is first checked by the strict JSON parser.
    """
    if json_only:
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise InputFileError(f"{name}: the document is nested too deeply") from None
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        docs = list(yaml.load_all(io.StringIO(text)))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = exc.problem or exc.context or "cannot parse"
        raise InputFileError(f"{where}: invalid YAML/JSON: {_one_line(problem)}") from None
    except ReaderError as exc:
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise InputFileError(f"{name}:{line}:{col}: character U+{ord(char):04X} is not allowed here") from None
    except RecursionError:
        raise InputFileError(f"{name}: the document is nested too deeply") from None
    except (YAMLError, ValueError) as exc:
        raise InputFileError(f"{name}: invalid YAML/JSON: {_one_line(str(exc))}") from None
    if not docs:
        raise InputFileError(f"{name}: the file has nothing but comments")
    if len(docs) != 1:
        raise InputFileError(f"{name}: expected one document, found {len(docs)}")
    return docs[0]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_file(path: Path, display: str | None = None) -> Routine:
    """Load and validate one routine file."""
    return load_document(path, display)[0]


def load_document(path: Path, display: str | None = None) -> tuple[Routine, Any]:
    """Load and validate one routine file; also its parsed document, for ``locate``."""
    name = display or display_name(path)
    text = read_text(Path(path), name)
    doc = parse_document(text, name, json_only=Path(path).suffix.lower() == ".json")
    return validate_document(doc, name), doc


def located(doc: Any, name: str, loc: tuple[Any, ...], message: str) -> str:
    """A problem at ``loc`` of a parsed document: ``name:line:col: field: message``."""
    return _fmt(name, _locate(doc, loc), _path(loc), message)


def validate_document(doc: Any, name: str) -> Routine:
    """Validate parsed data, turning every pydantic error into a located message."""
    if not isinstance(doc, dict):
        found = "a list" if isinstance(doc, list) else f"{type(doc).__name__} {doc!r}"[:60]
        raise RoutineInvalid([f"{name}:1:1: a routine file must be a mapping of keys (name, title, ...), found {found}"])
    try:
        plain = _plain(doc, [MAX_VALUES])
    except RecursionError:
        raise RoutineInvalid([f"{name}: the document is nested too deeply"]) from None
    except OverflowError:
        raise RoutineInvalid(
            [f"{name}: too many values once YAML aliases are expanded (more than {MAX_VALUES:,})"]
        ) from None
    try:
        return Routine.model_validate(plain)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A step is text or a marked step: the tag that chose between them is no place in the file.
        errors = [{**e, "loc": tuple(k for k in e["loc"] if k not in STEP_TAGS)} for e in errors]
        errors = [e for e in errors if not _is_echo_of_child_error(e, errors)]
        problems = [_describe(err, doc, name) for err in errors]
        raise RoutineInvalid(sorted(set(problems), key=lambda p: _sort_key(p, name))) from None


def _is_echo_of_child_error(err: dict[str, Any], errors: list[dict[str, Any]]) -> bool:
    """pydantic reports a too-short tuple again when its items failed: keep only the items."""
    if err["type"] != "too_short" or not err.get("input"):
        return False
    loc = tuple(err["loc"])
    return any(len(o["loc"]) > len(loc) and tuple(o["loc"][: len(loc)]) == loc for o in errors)


def _sort_key(problem: str, name: str) -> tuple[int, int, str]:
    match = re.match(re.escape(name) + r":(\d+):(\d+):", problem)
    return (int(match.group(1)), int(match.group(2)), problem) if match else (0, 0, problem)


def _plain(node: Any, budget: list[int], depth: int = 0) -> Any:
    """ruamel's commented containers -> plain dicts/lists (pydantic wants plain data).

    ``budget`` counts down the values copied: aliases can make a small file
    expand exponentially ("billion laughs"), so expansion is bounded.
    """
    if depth > 60:
        raise RecursionError
    budget[0] -= 1
    if budget[0] < 0:
        raise OverflowError
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v, budget, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, budget, depth + 1) for v in node]
    if type(node).__module__.startswith("ruamel"):
        # ScalarFloat, ScalarInt, ScalarBoolean, TaggedScalar...: back to builtins
        for kind in (bool, int, float, str):
            if isinstance(node, kind):
                return kind(node)
        return str(node)
    return node


def _locate(doc: Any, loc: tuple[Any, ...]) -> tuple[int, int] | None:
    """Line and column (1-based) of the value at ``loc``, or of its nearest parent."""
    node, best = doc, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and key in node:
                if lc is not None:
                    line, col = lc.value(key) if not isinstance(node[key], (dict, list)) else lc.key(key)
                    best = (line + 1, col + 1)
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                if lc is not None:
                    line, col = lc.item(key)
                    best = (line + 1, col + 1)
                node = node[key]
            else:
                if best is None and lc is not None:
                    best = (lc.line + 1, lc.col + 1)
                break
        except (KeyError, TypeError, AttributeError):
            break
    if best is None:
        lc = getattr(doc, "lc", None)
        best = (lc.line + 1, lc.col + 1) if lc is not None else None
    return best


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for key in loc:
        if key == "[key]":  # pydantic's marker for a bad mapping key: the key is named already
            continue
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + str(key)
    return out or "(top level)"


_EXPECTED = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
}


def _describe(err: dict[str, Any], doc: Any, name: str) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    found = err.get("input")
    if kind == "extra_forbidden":
        key = loc[-1]
        parent = loc[:-1]
        allowed = _allowed_keys(parent)
        hint = _suggest(str(key), allowed) if allowed else None
        msg = f"unknown key {key!r}"
        msg += f"; {hint}" if hint else (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
        where = _locate_key(doc, loc) or _locate(doc, parent)
        return _fmt(name, where, _path(parent), msg)
    where = _locate(doc, loc)
    if kind == "missing":
        return _fmt(name, where, _path(loc), "required field is missing")
    if kind == "value_error":
        text = str(ctx.get("error", err["msg"]))
        return _fmt(name, where, _path(loc), text)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        expected = f"expected a number {op} {bound}"
    elif kind in ("too_short", "string_too_short"):
        n = ctx.get("min_length", 1)
        expected = f"expected at least {n} item{'s' if n != 1 else ''}" if kind == "too_short" else "expected text"
        if kind == "string_too_short" and n > 1:
            expected = f"expected text of at least {n} characters"
    elif kind in ("too_long", "string_too_long"):
        n = ctx.get("max_length", "?")
        expected = f"expected at most {n} {'items' if kind == 'too_long' else 'characters'}"
    elif kind == "literal_error":
        expected = f"expected one of {ctx.get('expected', '?')}"
    elif kind == "string_pattern_mismatch":
        expected = "expected lowercase letters, digits and dashes (like 'lower-back')"
    else:
        expected = _EXPECTED.get(kind, err["msg"][0].lower() + err["msg"][1:])
    return _fmt(name, where, _path(loc), f"{expected}, got {_show(found)}")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, str) and not value:
        return "empty text"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fmt(name: str, where: tuple[int, int] | None, field: str, message: str) -> str:
    pos = f"{name}:{where[0]}:{where[1]}" if where else name
    return f"{pos}: {field}: {message}"


def _locate_key(doc: Any, loc: tuple[Any, ...]) -> tuple[int, int] | None:
    parent = doc
    for key in loc[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return None
    lc = getattr(parent, "lc", None)
    if lc is None or not isinstance(parent, dict) or loc[-1] not in parent:
        return None
    line, col = lc.key(loc[-1])
    return (line + 1, col + 1)


def _allowed_keys(parent_loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at ``parent_loc`` (walking the Routine model)."""
    model: Any = Routine
    for key in parent_loc:
        if isinstance(key, int):
            continue
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}).keys())


def _model_of(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
