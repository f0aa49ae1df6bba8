"""Routines as a person reads them: the text of `coach show` and `coach routines`."""

from __future__ import annotations

import textwrap

from coach.model import Dose, Exercise, Routine, step_at, step_text


def clock(seconds: float) -> str:
    """12:05 or 1:02:05."""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _num(x: float) -> str:
    return f"{x:g}"


def describe_dose(dose: Dose) -> str:
    """'2 sets of 5 reps per side, alternating sides; each rep: reach 2 s, ...'."""
    sets = f"{dose.sets} set{'s' if dose.sets != 1 else ''}"
    side_words = {"none": "", "each": " per side, one side then the other", "alternating": " per side, alternating sides"}
    if dose.reps is not None:
        work = f"{sets} of {dose.reps} rep{'s' if dose.reps != 1 else ''}{side_words[dose.sides]}"
        tempo = ", ".join(f"{p.cue + ' ' if p.cue else ''}{_num(p.seconds)} s" for p in dose.effective_tempo)
        work += f"; each rep: {tempo}"
    else:
        work = f"{sets} of a {_num(dose.hold_s or 0)} s hold{side_words[dose.sides]}"
    rests = []
    if dose.sets > 1:
        rests.append(f"rest {_num(dose.rest_between_sets_s)} s between sets")
    if dose.rest_after_s:
        rests.append(f"{_num(dose.rest_after_s)} s after")
    return work + ("; " + ", ".join(rests) if rests else "")


def _wrap(text: str, indent: str = "", width: int = 88, hang: int = 0) -> str:
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=" " * (len(indent) + hang))


def show_exercise(source: Exercise, number: int | str, level: str) -> list[str]:
    ex = source.at_level(level)  # the name, steps and equipment of this level
    dose = ex.dose
    lines = [f"{number}. {ex.name}  [{ex.role}, id: {ex.key}, about {clock(dose.estimated_s())}]"]
    if ex.purpose:
        lines.append(_wrap(ex.purpose, "   "))
    if ex.prerequisites:
        lines.append(_wrap("Before you start: " + ex.prerequisites, "   "))
    if ex.equipment:
        lines.append("   Equipment: " + ", ".join(ex.equipment))
    lines.append("   Steps:")
    for i, step in enumerate(ex.steps, 1):
        when = {"setup": "", "switch": "(at the switch) ", "exit": "(at the end) "}[step_at(step)]
        lines.append(_wrap(f"{i}. {when}{step_text(step)}", "     ", hang=len(f"{i}. ")))
    if ex.safety:
        lines.append(_wrap("Lift safely: " + ex.safety, "   "))
    variant = source.variant(level)
    if variant is not None:
        lines.append(_wrap(f"At the {level} level: {variant.text}", "   "))
    elif level == "standard":
        if source.variants.easier:
            lines.append(_wrap("Make it easier: " + source.variants.easier.text, "   "))
        if source.variants.harder:
            lines.append(_wrap("Make it harder: " + source.variants.harder.text, "   "))
    lines.append(_wrap("Dose: " + describe_dose(dose), "   "))
    if ex.dose_note:
        lines.append(_wrap("Why this dose: " + ex.dose_note, "   "))
    return lines


def show_routine(routine: Routine, level: str = "standard") -> str:
    """The whole routine as readable text."""
    lines = [
        f"{routine.title}  ({routine.name}, {level} level, about {clock(routine.estimated_s(level))})",
        "",
        _wrap(routine.description),
    ]
    for para in routine.background:
        lines += ["", _wrap(para)]
    equipment = routine.equipment_at(level)
    if equipment:
        lines += ["", "Equipment: " + ", ".join(equipment)]
    if routine.advice:
        lines += ["", "Before you start:"]
        lines += [_wrap(a, "  - ") for a in routine.advice]
    for i, ex in enumerate(routine.exercises, 1):
        lines += [""] + show_exercise(ex, i, level)
        finisher = ex.finisher_at(level)
        if finisher is not None:
            lines += [""] + show_exercise(finisher, f"{i}+", level)
    return "\n".join(lines) + "\n"
