"""The routine format: what a trainer writes, as typed, validated data.

The models are pydantic classes so that one definition gives validation with
precise error locations (see ``coach.loader``) and the JSON Schema that
``coach schema`` prints. Every number carries its unit in its name.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

Level = Literal["easier", "standard", "harder"]
LEVELS: tuple[str, ...] = ("easier", "standard", "harder")
Role = Literal["warm-up", "main", "cool-down"]
Sides = Literal["none", "each", "alternating"]
SideWords = Literal["side", "lying", "arm", "leg", "cross"]
SIDE_WORDS: dict[str, dict[str, str]] = {
    # How a side is named: to start, to switch, and in an alternating rep's cue.
    "side": {"start": "Start on your {side} side", "switch": "Switch to your {side} side.", "cue": "{Side}"},
    "lying": {"start": "Lie on your {side} side", "switch": "Switch sides: lie on your {side} side.",
              "cue": "{Side} side"},
    "arm": {"start": "Start with your {side} arm", "switch": "Switch to your {side} arm.", "cue": "{Side} arm"},
    "leg": {"start": "Start with your {side} leg", "switch": "Switch to your {side} leg.", "cue": "{Side} leg"},
    "cross": {"start": "Start with your {side} arm and {other} leg", "switch": "Switch: {side} arm, {other} leg.",
              "cue": "{Side} arm, {other} leg"},
}
"""The words for a side, by ``Dose.side_words``; {side}/{Side} is right or left, {other} the opposite."""

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
    side_words: SideWords = Field(
        default="side",
        description="What a side means, so it is never ambiguous: side ('start on your right side'), lying "
        "('lie on your right side'), arm, leg, or cross (arm and opposite leg: 'right arm, left leg').",
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


class MarkedStep(_Model):
    """A step spoken at another moment than the setup: at the switch of sides or at the exit."""

    switch: Text | None = Field(default=None, description="Spoken at the first switch of sides (sides: each), "
                                "e.g. 'Slowly return to the starting position and repeat on the opposite side.'")
    exit: Text | None = Field(default=None, description="Spoken at the end: after the last rep, or at the release "
                              "of the last hold, e.g. 'When you feel sufficiently stretched, return to ...'.")

    @model_validator(mode="after")
    def _one_moment(self) -> MarkedStep:
        if (self.switch is None) == (self.exit is None):
            raise ValueError("a marked step is either {switch: text} or {exit: text}")
        return self

    @property
    def text(self) -> str:
        return self.switch or self.exit or ""

    @property
    def at(self) -> str:
        return "switch" if self.switch is not None else "exit"


STEP_TAGS = ("step-text", "marked-step")


def _step_kind(value: object) -> str:
    return "marked-step" if isinstance(value, (dict, MarkedStep)) else "step-text"


# Tagged so that a bad step reports the one problem it has, not one per kind of step.
Step = Annotated[
    Annotated[Text, Tag("step-text")] | Annotated[MarkedStep, Tag("marked-step")],
    Discriminator(_step_kind),
]
"""A step: text spoken during the setup, or {switch: text} / {exit: text} for the switch or the end."""


def step_text(step: Step) -> str:
    return step if isinstance(step, str) else step.text


def step_at(step: Step) -> str:
    """setup, switch or exit: when the step is spoken."""
    return "setup" if isinstance(step, str) else step.at


class Variant(_Model):
    """An easier or harder version of an exercise: its dose and, where they differ, its words.

    Unset fields keep the standard exercise's. ``finisher`` adds an optional exercise
    after this one at this level; ``replace_with`` does another exercise instead.
    """

    text: Text = Field(description="Spoken when this level is chosen, e.g. 'Perform this movement without the weight.'"
                       " With a finisher, it introduces the finisher instead.")
    dose: DoseChange | None = Field(default=None, description="Dose changes for this level.")
    name: Annotated[str, Field(min_length=1, max_length=80)] | None = Field(
        default=None, description="The exercise's spoken name at this level, e.g. 'Good Morning' without the weight.")
    steps: tuple[Step, ...] | None = Field(default=None, min_length=1, max_length=30,
                                           description="All the steps at this level, instead of the standard ones.")
    replace_steps: dict[Annotated[int, Field(ge=1, le=30)], Step] = Field(
        default_factory=dict, description="Steps replaced at this level, by number from 1: {2: 'Cross your arms ...'}.")
    drop_steps: tuple[Annotated[int, Field(ge=1, le=30)], ...] = Field(
        default=(), description="Step numbers (from 1) left out at this level.")
    equipment: tuple[Annotated[str, Field(min_length=1, max_length=80)], ...] | None = Field(
        default=None, description="The equipment at this level, instead of the standard list ([] for none).")
    reminder: Text | None = Field(default=None, description="The reminder at this level.")
    position: Text | None = Field(default=None, description="The position to take at this level.")
    finisher: Exercise | None = Field(
        default=None, description="An optional exercise after this one at this level (for example pull-ups), "
        "with its own steps and dose; the variant text introduces it and the listener is told how to skip it.")
    replace_with: Exercise | None = Field(
        default=None, description="Another exercise done instead of this one at this level, with its own dose.")

    @model_validator(mode="after")
    def _coherent(self) -> Variant:
        if self.finisher is not None and self.replace_with is not None:
            raise ValueError("give a finisher or replace_with, not both")
        for name in ("finisher", "replace_with"):
            added = getattr(self, name)
            if added is not None and (added.variants.easier or added.variants.harder):
                raise ValueError(f"{name}: an added exercise has no variants of its own")
        if self.steps is not None and (self.replace_steps or self.drop_steps):
            raise ValueError("steps replaces every step; replace_steps and drop_steps change some: give one way")
        if set(self.replace_steps) & set(self.drop_steps):
            raise ValueError("a step cannot be both replaced and dropped")
        return self


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
    steps: tuple[Step, ...] = Field(
        min_length=1, max_length=30,
        description="Ordered steps, spoken one by one during the setup; a step written {switch: text} is spoken "
        "at the switch of sides, {exit: text} after the last rep or at the release of the last hold.")
    reminder: Text | None = Field(
        default=None, description="One-line reminder spoken instead of the full steps on later sets."
    )
    position: Text | None = Field(
        default=None, description="The position to take, in a few words ('on your hands and knees'): said with "
        "'next up' and as the last words before the countdown of the first set.")
    release: Text | None = Field(
        default=None, description="Said at the release of a hold (not the last one), e.g. 'Release, and rest on "
        "your hands and knees.' Default: 'Release.'")
    safety: Text | None = Field(
        default=None, description="Safety tip, spoken before the first set's countdown (or in a hold's quiet "
        "stretch), never over the reps.")
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
            variant = self.variant(level)
            if variant is not None:
                for n in (*variant.replace_steps, *variant.drop_steps):
                    if n > len(self.steps):
                        raise ValueError(f"variants.{level}: there is no step {n} (the exercise has "
                                         f"{len(self.steps)})")
                if variant.drop_steps and len(set(variant.drop_steps)) >= len(self.steps):
                    raise ValueError(f"variants.{level}.drop_steps: leaves no step")
        return self

    @property
    def step_texts(self) -> tuple[str, ...]:
        """Every step's text, in order, whenever it is spoken."""
        return tuple(step_text(s) for s in self.steps)

    def at_level(self, level: str) -> Exercise:
        """The exercise as done at ``level``: the variant's name, steps, equipment, reminder and dose.

        A variant's ``replace_with`` gives that exercise instead. The result has no variants.
        """
        variant = self.variant(level)
        if variant is None:
            return self.model_copy(update={"variants": Variants()}) if (self.variants.easier or
                                                                         self.variants.harder) else self
        if variant.replace_with is not None:
            return variant.replace_with
        steps = list(variant.steps or self.steps)
        for n, step in variant.replace_steps.items():
            steps[n - 1] = step
        steps = [s for i, s in enumerate(steps, 1) if i not in set(variant.drop_steps)]
        update: dict = {"variants": Variants(), "steps": tuple(steps), "dose": self.dose_for(level)}
        for name in ("name", "equipment", "reminder", "position"):
            if getattr(variant, name) is not None:
                update[name] = getattr(variant, name)
        return self.model_copy(update=update)

    def finisher_at(self, level: str) -> Exercise | None:
        """The optional exercise added after this one at ``level``, if any."""
        variant = self.variant(level)
        return variant.finisher if variant is not None else None

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


class MusicSettings(_Model):
    """Music played under the voice (``coach.audio.music``); the command line can override it."""

    path: Annotated[str, Field(min_length=1, max_length=4000)] = Field(
        description="A folder of audio files, an .m3u/.m3u8 playlist or one audio file, relative to the routine file."
    )
    level_db: float | None = Field(
        default=None, ge=-40, le=0,
        description="Loudness of the music relative to the speech, in dB (-40..0; default -14), before ducking.",
    )


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
    music: MusicSettings | None = Field(default=None, description="Music to play under the voice.")
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
            total = self.estimated_s(level)
            if total > MAX_SESSION_S:
                raise ValueError(
                    f"the {level} session would last about {total / 3600:.1f} h; a session is at most 24 h"
                )
        return self

    def equipment_at(self, level: str, first: int = 0) -> list[str]:
        """Everything to fetch for the session at ``level`` (from exercise ``first``), in order, once each."""
        items = list(self.equipment)
        for ex in self.exercises[first:]:
            items += ex.at_level(level).equipment
            finisher = ex.finisher_at(level)
            if finisher is not None:
                items += finisher.equipment
        return list(dict.fromkeys(items))

    def exercise(self, key: str) -> Exercise:
        for ex in self.exercises:
            if ex.key == key:
                return ex
        raise KeyError(key)

    def estimated_s(self, level: str = "standard") -> float:
        total = 0.0
        for ex in self.exercises:
            total += ex.at_level(level).dose.estimated_s()
            finisher = ex.finisher_at(level)
            if finisher is not None:
                total += finisher.dose.estimated_s()
        return total


Variant.model_rebuild()
