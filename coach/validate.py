"""What `coach validate` checks: a routine file, and what export and play will need from it.

A routine can parse and still fail later: its ``sounds:`` name a missing, a text
or a device file, or its ``voice:`` names a Piper model that does not load.
These are checked here, each problem located in the file like a format error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coach.errors import CoachError, RoutineInvalid
from coach.loader import display_name, is_stdin, load_document, located
from coach.model import Routine


def check_routine_file(path: Path) -> Routine:
    """Load ``path`` (``-``: stdin) and check its sounds and voice; RoutineInvalid lists every problem."""
    routine, doc = load_document(path)
    name = display_name(path)
    # Sounds are relative to the routine file; from stdin, to the current folder (as plan/export read them).
    base_dir = Path.cwd() if is_stdin(path) else Path(path).parent
    problems = sound_problems(routine, doc, name, base_dir) + voice_problems(routine, doc, name)
    if problems:
        raise RoutineInvalid(problems)
    return routine


def sound_problems(routine: Routine, doc: Any, name: str, base_dir: Path) -> list[str]:
    from coach.audio.earcons import load_sound

    problems = []
    for sound in routine.sounds:
        try:
            load_sound(sound, routine.sounds, base_dir)
        except CoachError as exc:
            problems.append(located(doc, name, ("sounds", sound), exc.message))
    return problems


def voice_problems(routine: Routine, doc: Any, name: str) -> list[str]:
    """The routine's own voice, when it names one: it must exist, and a Piper model must load."""
    wanted = routine.voice
    if wanted.engine is None and wanted.voice is None:
        return []  # the machine's default voice: export and play check it on the machine they run on
    from coach.timeline import VoiceSpec
    from coach.voice import validate_voice
    from coach.voice.clips import make_engine

    base = VoiceSpec()
    spec = VoiceSpec(engine=wanted.engine or base.engine, voice=wanted.voice or base.voice,
                     rate_wpm=wanted.rate_wpm or base.rate_wpm, volume=wanted.volume or base.volume)
    if spec.engine == "estimate":
        return []
    try:
        resolved = validate_voice(spec)
        if resolved.engine == "piper":
            # Piper loads its model lazily, in a worker, at the first clip: speak one word now, so that
            # a broken .onnx fails here and not minutes into an export.
            engine = make_engine(resolved)
            try:
                engine.synthesize("Ready.")
            finally:
                engine.close()
    except CoachError as exc:
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return [located(doc, name, ("voice", "voice" if wanted.voice is not None else "engine"), message)]
    return []
