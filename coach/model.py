"""The routine format: what a trainer writes, as typed, validated data.

The models are pydantic classes so that one definition gives validation with
precise error locations (see ``coach.loader``) and the JSON Schema that
``coach schema`` prints. Every number carries its unit in its name.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Level = Literal["easier", "standard", "harder"]
LEVELS: tuple[str, ...] = ("easier", "standard", "harder")
Role = Literal["warm-up", "main", "cool-down"]
Sides = Literal["none", "each", "alternating"]

MAX_SESSION_S = 24 * 3600

SLUG = r"^[a-z0-9][a-z0-9-]*$"
Text = Annotated[str, Field(min_length=1, max_length=2000)]
"""A piece of text spoken to the listener."""


def slugify(name: str) -> str:
    """Turn a display name into an id: 'Bird-Dog (light)' -> 'bird-dog-light'."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "exercise"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        if isinstance(value, bool):  # pydantic would read true as 1; no field is a boolean
            raise ValueError(f"expected a number or text, got {str(value).lower()}")
        if isinstance(value, float) and value != value:
            raise ValueError("expected a number, got nan")
        if isinstance(value, str) and re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value):
            raise ValueError("text contains control characters")
        return value


class TempoPhase(_Model):
    """One movement inside a rep, e.g. 2 s 'reach', 1 s 'hold', 2 s 'and back'."""

    cue: Annotated[str, Field(max_length=40)] | None = Field(
        default=None, description="Short word(s) spoken at the start of this movement, e.g. 'reach'."
    )
    seconds: float = Field(ge=0.5, le=30, description="Length of this movement in seconds (0.5..30).")


class Dose(_Model):
    """How much of an exercise: sets of reps (with a tempo) or of a timed hold."""

    sets: int = Field(default=1, ge=1, le=20, description="Number of sets (1..20).")
    reps: int | None = Field(default=None, ge=1, le=100, description="Reps per set (and per side), 1..100.")
    tempo: tuple[TempoPhase, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=6,
        description="The movements of one rep; their seconds add up to the rep length. Default: one 3 s movement.",
    )
    hold_s: float | None = Field(default=None, ge=3, le=600, description="Seconds to hold the position (3..600).")
    sides: Sides = Field(
        default="none",
        description="none; each (all reps on one side, then the other); alternating (sides take turns every rep).",
    )
    setup_s: float = Field(default=5, ge=0, le=120, description="Seconds to get into position before the work.")
    switch_s: float = Field(default=5, ge=0, le=60, description="Seconds to switch sides (sides: each).")
    rest_between_sets_s: float = Field(default=20, ge=0, le=600, description="Rest between sets, in seconds.")
    rest_after_s: float = Field(default=30, ge=0, le=600, description="Rest after the exercise, in seconds.")

    @model_validator(mode="after")
    def _reps_or_hold(self) -> Dose:
        if (self.reps is None) == (self.hold_s is None):
            raise ValueError("give either reps or hold_s (exactly one of them)")
        if self.tempo is not None and self.reps is None:
            raise ValueError("tempo goes with reps, not with hold_s")
        return self

    @property
    def rep_s(self) -> float:
        """Length of one rep in seconds."""
        return sum(p.seconds for p in self.effective_tempo)

    @property
    def effective_tempo(self) -> tuple[TempoPhase, ...]:
        return self.tempo or (TempoPhase(seconds=3.0),)

    @property
    def side_names(self) -> tuple[str | None, ...]:
        return (None,) if self.sides == "none" else ("right", "left")

    def work_s(self) -> float:
        """Seconds of work in one set (both sides), excluding switches."""
        per_side = self.reps * self.rep_s if self.reps is not None else float(self.hold_s or 0)
        return per_side * (1 if self.sides == "none" else 2)

    def estimated_s(self) -> float:
        """A rough session length for this dose (used for sanity checks and listings)."""
        switches = self.switch_s if self.sides == "each" else 0.0
        per_set = self.setup_s + self.work_s() + switches
        return self.sets * per_set + (self.sets - 1) * self.rest_between_sets_s + self.rest_after_s


class DoseChange(_Model):
    """A change to an exercise's dose for one level; unset fields keep the standard value."""

    sets: int | None = Field(default=None, ge=1, le=20)
    reps: int | None = Field(default=None, ge=1, le=100)
    tempo: tuple[TempoPhase, ...] | None = Field(default=None, min_length=1, max_length=6)
    hold_s: float | None = Field(default=None, ge=3, le=600)
    setup_s: float | None = Field(default=None, ge=0, le=120)
    switch_s: float | None = Field(default=None, ge=0, le=60)
    rest_between_sets_s: float | None = Field(default=None, ge=0, le=600)
    rest_after_s: float | None = Field(default=None, ge=0, le=600)


class Variant(_Model):
    """An easier or harder version of an exercise."""

    text: Text = Field(description="Spoken when this level is chosen, e.g. 'Perform this movement without the weight.'")
    dose: DoseChange | None = Field(default=None, description="Dose changes for this level.")


class Variants(_Model):
    easier: Variant | None = None
    harder: Variant | None = None


class Exercise(_Model):
    """One exercise of a routine."""

    id: Annotated[str, Field(pattern=SLUG, max_length=60)] | None = Field(
        default=None, description="Short id (lowercase, digits, dashes). Default: made from the name."
    )
    name: Annotated[str, Field(min_length=1, max_length=80)] = Field(description="Spoken name of the exercise.")
    role: Role = Field(default="main", description="warm-up, main or cool-down.")
    purpose: Text | None = Field(default=None, description="One or two spoken sentences: what it is for.")
    prerequisites: Text | None = Field(
        default=None, description="Who should not do it; spoken as a warning before the exercise."
    )
    equipment: tuple[Annotated[str, Field(min_length=1, max_length=80)], ...] = ()
    steps: tuple[Text, ...] = Field(min_length=1, max_length=30, description="Ordered setup steps, spoken one by one.")
    reminder: Text | None = Field(
        default=None, description="One-line reminder spoken instead of the full steps on later sets."
    )
    safety: Text | None = Field(default=None, description="Safety tip, spoken during the first set.")
    dose: Dose
    variants: Variants = Field(default_factory=Variants)
    dose_note: Text | None = Field(default=None, description="Why this dose was chosen (not spoken).")

    @model_validator(mode="after")
    def _levels_are_valid(self) -> Exercise:
        for level in ("easier", "harder"):
            try:
                self.dose_for(level)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise ValueError(f"variants.{level}.dose: makes an invalid dose: {exc}") from None
        return self

    @property
    def key(self) -> str:
        return self.id or slugify(self.name)

    def dose_for(self, level: str) -> Dose:
        """The dose at a level: the standard dose with that level's changes applied."""
        variant = self.variant(level)
        if variant is None or variant.dose is None:
            return self.dose
        changes = variant.dose.model_dump(exclude_none=True)
        if "hold_s" in changes:
            changes["reps"] = None
            changes.setdefault("tempo", None)
        elif "reps" in changes and self.dose.hold_s is not None:
            changes["hold_s"] = None
        return Dose.model_validate({**self.dose.model_dump(), **changes})

    def variant(self, level: str) -> Variant | None:
        if level == "easier":
            return self.variants.easier
        if level == "harder":
            return self.variants.harder
        return None


class VoiceDefaults(_Model):
    """The routine's preferred voice; the command line can override each field."""

    engine: Literal["auto", "pyttsx3", "piper", "estimate"] | None = Field(
        default=None, description="auto (Piper when the neural extra is installed, else pyttsx3), pyttsx3, "
        "piper or estimate.")
    voice: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    rate_wpm: int | None = Field(default=None, ge=80, le=450, description="Words per minute (80..450).")
    volume: float | None = Field(default=None, ge=0.1, le=1.0)


class Routine(_Model):
    """A whole routine: what to say before, the exercises in order, and the voice."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    name: Annotated[str, Field(pattern=SLUG, max_length=60)] = Field(
        description="Short name used on the command line (lowercase, digits, dashes)."
    )
    title: Annotated[str, Field(min_length=1, max_length=120)]
    description: Text = Field(description="Spoken as the introduction: what the session is for.")
    background: tuple[Text, ...] = Field(default=(), description="Why it works, spoken after the introduction.")
    advice: tuple[Text, ...] = Field(default=(), description="Spoken before starting, e.g. 'keep your core engaged'.")
    equipment: tuple[Annotated[str, Field(min_length=1, max_length=80)], ...] = ()
    voice: VoiceDefaults = Field(default_factory=VoiceDefaults)
    sounds: dict[Literal["start", "tick", "rest", "switch", "finish"], Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict, description="Replacement WAV files for the earcons, relative to the routine file."
    )
    exercises: tuple[Exercise, ...] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _check_whole(self) -> Routine:
        seen: dict[str, int] = {}
        for i, ex in enumerate(self.exercises):
            if ex.key in seen:
                raise ValueError(
                    f"exercises[{i}]: duplicate exercise id {ex.key!r} (also exercises[{seen[ex.key]}]); "
                    "give one of them a different name or id"
                )
            seen[ex.key] = i
        for level in LEVELS:
            total = sum(ex.dose_for(level).estimated_s() for ex in self.exercises)
            if total > MAX_SESSION_S:
                raise ValueError(
                    f"the {level} session would last about {total / 3600:.1f} h; a session is at most 24 h"
                )
        return self

    def exercise(self, key: str) -> Exercise:
        for ex in self.exercises:
            if ex.key == key:
                return ex
        raise KeyError(key)

    def estimated_s(self, level: str = "standard") -> float:
        return sum(ex.dose_for(level).estimated_s() for ex in self.exercises)
