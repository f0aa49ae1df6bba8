"""The `coach voices` command: list the voices a speech engine offers (data on stdout)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from coach.cli.app import app
from coach.errors import UsageError


@app.command("voices")
def voices_cmd(
    language: Optional[str] = typer.Option(
        None, "--language", help="Only voices for this language; `en` also matches en-us, en-gb..."
    ),
    engine: str = typer.Option(
        "auto", "--engine", help="Speech engine: auto (the default one: piper when the neural extra is installed, "
        "else pyttsx3), pyttsx3, piper (packaged and user .onnx voices) or estimate."
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List the voices of a speech engine (use an ID or a NAME with --voice)."""
    from coach.voice import default_engine, list_voices, resolve_engine

    if fmt not in ("table", "json"):
        raise UsageError(f"--format: expected table or json, got {fmt!r}")
    found = list_voices(engine, language)
    engine, default = resolve_engine(engine), default_engine()
    if fmt == "json":
        print(json.dumps([v.to_dict() for v in found], indent=2, ensure_ascii=False))
        return
    if not found:
        where = f" for language {language!r}" if language else ""
        print(f"coach: no {engine} voices{where}", file=sys.stderr)
        return
    # The table is data on stdout; which engine it lists (and which is the default) goes to stderr.
    print(f"coach: {engine} voices" + (" (the default engine)" if engine == default else
                                        f" (the default engine is {default})"), file=sys.stderr)
    id_width = max(len("ID"), *(len(v.id) for v in found))
    lang_width = max(len("LANGUAGES"), *(len(", ".join(v.languages)) for v in found))
    print(f"{'ID':<{id_width}}  {'LANGUAGES':<{lang_width}}  NAME")
    for v in found:
        print(f"{v.id:<{id_width}}  {', '.join(v.languages):<{lang_width}}  {v.name}")
