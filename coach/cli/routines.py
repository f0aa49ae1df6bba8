"""Commands about routines: routines, show, validate, import, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from coach.cli.app import DEFAULT_ROUTINE, LevelOpt, OutputOpt, app
from coach.errors import InputFileError, RoutineInvalid, UsageError


def check_level(level: str) -> str:
    from coach.model import LEVELS

    if level not in LEVELS:
        raise UsageError(f"--level: expected one of {', '.join(LEVELS)}, got {level!r}")
    return level


@app.command("routines")
def routines_cmd(
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List built-in routines and those in your routine folder."""
    from coach.describe import clock
    from coach.loader import list_routines, user_routine_dir

    found, problems = list_routines()
    if fmt == "json":
        rows = [
            {"name": r.name, "title": r.title, "source": r.source, "exercises": r.exercises,
             "estimated_s": round(r.estimated_s, 1)}
            for r in found
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif fmt == "table":
        width = max([len(r.name) for r in found] + [4])
        print(f"{'NAME':<{width}}  {'EXERCISES':>9}  {'ABOUT':>7}  TITLE (SOURCE)")
        for r in found:
            print(f"{r.name:<{width}}  {r.exercises:>9}  {clock(r.estimated_s):>7}  {r.title} ({r.source})")
        print(f"Your routine folder: {user_routine_dir()}", file=sys.stderr)
    else:
        raise UsageError(f"--format: expected table or json, got {fmt!r}")
    for problem in problems:
        print(f"coach: warning: {problem}", file=sys.stderr)


@app.command("show")
def show_cmd(
    routine: str = typer.Argument(DEFAULT_ROUTINE, help="A built-in routine name or a routine file."),
    level: str = LevelOpt,
) -> None:
    """Print a routine as a person would read it."""
    from coach.describe import show_routine
    from coach.loader import load_routine

    sys.stdout.write(show_routine(load_routine(routine), check_level(level)))


@app.command("validate")
def validate_cmd(
    files: List[Path] = typer.Argument(..., help="Routine files to check (.yaml, .yml, .json); `-` reads stdin."),
) -> None:
    """Check routine files, their sounds and voice; exit 0 when all are valid, 1 otherwise (errors on stderr)."""
    from coach.loader import display_name
    from coach.validate import check_routine_file
    from coach.planner import room_warnings

    bad = 0
    for path in files:
        try:
            routine = check_routine_file(path)
        except RoutineInvalid as exc:
            bad += 1
            for problem in exc.problems:
                print(f"coach: error: {problem}", file=sys.stderr)
        except InputFileError as exc:
            bad += 1
            print(f"coach: error: {exc.message}", file=sys.stderr)
        else:
            print(f"{display_name(path)}: ok ({routine.name}, {len(routine.exercises)} exercises)")
            for warning in room_warnings(routine, _estimate_meter(routine)):
                print(f"coach: warning: {display_name(path)}: {warning}", file=sys.stderr)
    if bad:
        print(f"coach: {bad} of {len(files)} file(s) invalid", file=sys.stderr)
        raise typer.Exit(1)


def _estimate_meter(routine: Any) -> Any:
    """Spoken lengths from the words-per-minute estimate at the routine's rate (no synthesis)."""
    from coach.planner import estimate_speech_s

    rate = routine.voice.rate_wpm or 165
    return lambda text: estimate_speech_s(text, rate)


@app.command("import")
def import_cmd(
    article: Path = typer.Argument(..., help="A plain-text exercise article (numbered steps, 'Lift Safely:' ...)."),
    output: Optional[Path] = OutputOpt,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
) -> None:
    """Turn an exercise article into a routine file to edit."""
    from coach.fsutil import atomic_output
    from coach.importer import article_to_routine, routine_yaml
    from coach.loader import read_text
    from coach.model import Routine

    text = read_text(article, max_bytes=5_000_000)
    data = article_to_routine(text, str(article))
    Routine.model_validate(data)  # the draft must itself be a valid routine
    out = routine_yaml(data, article.name)
    if output is None or str(output) == "-":
        sys.stdout.write(out)
    else:
        with atomic_output(output, force=force, binary=False) as handle:
            handle.write(out)
        n = len(data["exercises"])
        print(f"coach: wrote {output} ({n} exercises); check its doses, then `coach validate {output}`", file=sys.stderr)


@app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of the routine format (for editor completion)."""
    from coach.model import Routine

    schema = Routine.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Coach routine"
    print(json.dumps(schema, indent=2, ensure_ascii=False))
