"""Turn an exercise article into a routine file a trainer then edits.

The articles this reads look like the seed article: a title, some paragraphs of
explanation, an optional "Before You Lift:" paragraph, then per exercise a
paragraph about it, numbered steps, and "Lift Safely:", "Make It Easier:" and
"Make It Harder:" paragraphs. Headings are often lost, so names are inferred
from the text where it says them ("A proper Bird-Dog is ...") and otherwise left
as clearly marked placeholders. Text is copied word for word.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from coach.errors import InputFileError
from coach.model import slugify

PLACEHOLDER = "NAME ME"
"""Marks a name the article did not give; `coach validate` accepts it, a trainer should not."""

_STEP = re.compile(r"^\s*(\d{1,2})[.)]\s+(.*\S)\s*$")
_LABELS = {
    "lift safely": "safety",
    "safety": "safety",
    "make it easier": "easier",
    "make it harder": "harder",
    "before you lift": "advice",
    "before you start": "advice",
}
_LABEL = re.compile(r"^\s*(" + "|".join(re.escape(k) for k in _LABELS) + r")\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_NAME_IN_TEXT = re.compile(
    r"\b(?:A|An|The)\s+(?:proper|good|simple|classic)?\s*((?:[A-Z][\w’'-]*)(?:\s+[A-Z][\w’'-]*){0,3})\s+(?:is|are)\b"
)
_PREREQ = re.compile(r"[^.!?]*\b(?:recommended (?:only )?for|should not|shouldn’t|avoid (?:this|it) if)\b[^.!?]*[.!?]")
_BOILERPLATE = re.compile(r"^(leave a comment|share|comments?|related|advertisement)\b", re.IGNORECASE)


@dataclass
class _Draft:
    purpose: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    safety: str | None = None
    easier: str | None = None
    harder: str | None = None


@dataclass
class Article:
    title: str
    intro: list[str]
    advice: list[str]
    exercises: list[_Draft]


def _paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines; numbered steps become one paragraph each."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        current: list[str] = []
        for line in lines:
            if _STEP.match(line):
                if current:
                    out.append(" ".join(current))
                current = [line.strip()]
            else:
                current.append(line.strip())
        if current:
            out.append(" ".join(current))
    return out


def parse_article(text: str, name: str = "article") -> Article:
    """Split an article into its title, intro, advice and exercise drafts."""
    paras = _paragraphs(text)
    if not paras:
        raise InputFileError(f"{name}: the article is empty")
    title = paras.pop(0)
    intro: list[str] = []
    advice: list[str] = []
    exercises: list[_Draft] = []
    pending: list[str] = []  # prose not yet attached to anything
    draft: _Draft | None = None
    expecting_advice = False
    for para in paras:
        step = _STEP.match(para)
        label = _LABEL.match(para)
        if step:
            if draft is None or step.group(1) == "1" or draft.safety or draft.easier or draft.harder:
                draft = _Draft(purpose=pending)
                exercises.append(draft)
                pending = []
            elif pending:  # prose between steps belongs to the previous step
                draft.steps[-1] += " " + " ".join(pending)
                pending = []
            draft.steps.append(step.group(2))
            expecting_advice = False
        elif label:
            kind = _LABELS[label.group(1).lower()]
            body = label.group(2).strip()
            if kind == "advice":
                expecting_advice = True
                intro.extend(pending)
                pending = []
                if body:
                    advice.append(body)
            elif draft is not None and body:
                setattr(draft, kind, body)
        elif expecting_advice and not exercises:
            advice.append(para)
            expecting_advice = False
        elif not exercises and not advice:
            intro.append(para)
        else:
            pending.append(para)
    if not exercises:
        raise InputFileError(f"{name}: no exercises found (expected numbered steps like '1. Lie on your side.')")
    # Prose after the last exercise is page furniture ("Leave a Comment") unless it is long.
    leftovers = [p for p in pending if not _BOILERPLATE.match(p) and len(p.split()) > 8]
    if leftovers:
        raise InputFileError(
            f"{name}: text after the last exercise's steps is not an exercise "
            f"(no numbered steps follow it): {leftovers[0][:60]!r}"
        )
    return Article(title=title, intro=intro, advice=advice, exercises=exercises)


def infer_name(text: str) -> str | None:
    """A name the text itself gives ("A proper Bird-Dog is ..." -> "Bird-Dog")."""
    match = _NAME_IN_TEXT.search(text)
    return match.group(1).strip() if match else None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def article_to_routine(text: str, name: str = "article") -> dict:
    """The routine (plain data, valid for ``Routine``) drafted from an article."""
    art = parse_article(text, name)
    exercises = []
    for i, draft in enumerate(art.exercises, 1):
        purpose = " ".join(draft.purpose)
        prereq = " ".join(m.group(0).strip() for m in _PREREQ.finditer(purpose)) or None
        if prereq:
            purpose = " ".join(s for s in _sentences(purpose) if s not in _sentences(prereq))
        ex_name = infer_name(purpose) or f"Exercise {i} ({PLACEHOLDER})"
        role = "main"
        if i == 1 and re.search(r"warm[- ]?up", purpose, re.IGNORECASE):
            role = "warm-up"
        elif i == len(art.exercises) and re.search(r"stretch|relax", purpose, re.IGNORECASE):
            role = "cool-down"
        all_steps = " ".join(draft.steps).lower()
        sides = "each" if "opposite side" in all_steps else "none"
        dose: dict = {"sets": 1}
        if role == "cool-down":
            dose["hold_s"] = 30
        else:
            dose["reps"] = 8
        if sides != "none":
            dose["sides"] = sides
        ex: dict = {"id": slugify(ex_name) if PLACEHOLDER not in ex_name else f"exercise-{i}", "name": ex_name}
        ex["role"] = role
        if purpose:
            ex["purpose"] = purpose
        if prereq:
            ex["prerequisites"] = prereq
        ex["steps"] = list(draft.steps)
        if draft.safety:
            ex["safety"] = draft.safety
        ex["dose"] = dose
        variants = {}
        if draft.easier:
            variants["easier"] = {"text": draft.easier}
        if draft.harder:
            variants["harder"] = {"text": draft.harder}
        if variants:
            ex["variants"] = variants
        ex["dose_note"] = "The article gives no dose: these are defaults to edit."
        exercises.append(ex)
    routine: dict = {
        "name": slugify(art.title)[:60].strip("-") or "imported",
        "title": art.title,
        "description": art.intro[0] if art.intro else art.title,
    }
    if len(art.intro) > 1:
        routine["background"] = art.intro[1:]
    if art.advice:
        routine["advice"] = [s for para in art.advice for s in _sentences(para)]
    routine["exercises"] = exercises
    return routine


def routine_yaml(routine: dict, source: str) -> str:
    """Render the drafted routine as a YAML file with a header saying what to check."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 88
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    yaml.dump(routine, buf)
    placeholders = sum(1 for ex in routine["exercises"] if PLACEHOLDER in ex["name"])
    header = [
        f"# Imported from {source} by `coach import`.",
        "# Check before use: doses (sets, reps or hold_s, sides, rests) are defaults, not the article's.",
    ]
    if placeholders:
        header.append(f"# {placeholders} exercise name(s) are marked '{PLACEHOLDER}': the article does not say them.")
    return "\n".join(header) + "\n" + buf.getvalue()
