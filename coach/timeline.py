"""The Timeline: every cue of a session and exactly when it happens.

This is the contract between the planner (which makes it), the cue-script
formats (which print and read it), the exporter and the player (which render
and play it). Its JSON form is ``Timeline.to_dict()``; field names are fixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

CueKind = Literal["speech", "sound"]
Phase = Literal["intro", "advice", "instruction", "countdown", "work", "rest", "transition", "outro"]

PHASES: tuple[str, ...] = ("intro", "advice", "instruction", "countdown", "work", "rest", "transition", "outro")
SOUNDS: tuple[str, ...] = ("start", "tick", "rest", "switch", "finish")


def ms(seconds: float) -> float:
    """Round a time to the millisecond, the resolution of every Timeline time."""
    return round(seconds + 0.0, 3)


AUTO_ENGINE = "auto"
"""The engine name that means "the most natural one installed" (``coach.voice.registry.default_engine``)."""


@dataclass(frozen=True)
class VoiceSpec:
    """Which voice speaks the session."""

    engine: str = AUTO_ENGINE
    """``auto``, ``pyttsx3``, ``piper`` or ``estimate``; opening the voice resolves ``auto``
    to the real engine, so timelines, cue scripts and the history name the one that spoke."""
    voice: str = "en-us"
    rate_wpm: int = 170
    """Speaking rate in words per minute (80..450)."""
    volume: float = 1.0
    """Engine volume, 0.1..1.0."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VoiceSpec:
        return cls(
            engine=str(data.get("engine", cls.engine)),
            voice=str(data.get("voice", cls.voice)),
            rate_wpm=int(data.get("rate_wpm", cls.rate_wpm)),
            volume=float(data.get("volume", cls.volume)),
        )


@dataclass(frozen=True)
class Cue:
    """One thing heard: a spoken text or a named sound, from ``start_s`` to ``end_s``."""

    start_s: float
    end_s: float
    kind: CueKind
    phase: Phase
    text: str | None = None
    """What is spoken (speech cues only)."""
    sound: str | None = None
    """Which earcon is played (sound cues only): start, tick, rest, switch, finish."""
    exercise: str | None = None
    """Id of the exercise this cue belongs to, if any."""
    set: int | None = None
    side: str | None = None
    rep: int | None = None
    optional: bool = False
    """True for cues the planner could have dropped (counts, movement cues)."""
    under_speech: bool = False
    """True for a sound meant to sit under speech (allowed to overlap it)."""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "start_s": ms(self.start_s),
            "end_s": ms(self.end_s),
            "kind": self.kind,
        }
        if self.kind == "speech":
            d["text"] = self.text
        else:
            d["sound"] = self.sound
        d.update(
            phase=self.phase,
            exercise=self.exercise,
            set=self.set,
            side=self.side,
            rep=self.rep,
        )
        if self.optional:
            d["optional"] = True
        if self.under_speech:
            d["under_speech"] = True
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cue:
        return cls(
            start_s=float(data["start_s"]),
            end_s=float(data["end_s"]),
            kind=data["kind"],
            phase=data.get("phase", "instruction"),
            text=data.get("text"),
            sound=data.get("sound"),
            exercise=data.get("exercise"),
            set=data.get("set"),
            side=data.get("side"),
            rep=data.get("rep"),
            optional=bool(data.get("optional", False)),
            under_speech=bool(data.get("under_speech", False)),
        )

    def moved(self, **changes: Any) -> Cue:
        return replace(self, **changes)


@dataclass(frozen=True)
class Chapter:
    """A named point to jump to (an exercise, the intro, the outro)."""

    start_s: float
    title: str
    exercise: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"start_s": ms(self.start_s), "title": self.title}
        if self.exercise is not None:
            d["exercise"] = self.exercise
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chapter:
        return cls(start_s=float(data["start_s"]), title=str(data["title"]), exercise=data.get("exercise"))


@dataclass(frozen=True)
class Timeline:
    """A whole planned session."""

    routine: str
    title: str
    level: str
    voice: VoiceSpec
    duration_s: float
    chapters: tuple[Chapter, ...]
    cues: tuple[Cue, ...]
    dropped: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    """Optional cues the planner left out because they did not fit, and why."""
    sounds: dict[str, str] = field(default_factory=dict)
    """The routine's own sound files (name -> absolute path) replacing built-in earcons."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "routine": self.routine,
            "title": self.title,
            "level": self.level,
            "voice": self.voice.to_dict(),
            "duration_s": ms(self.duration_s),
            "chapters": [c.to_dict() for c in self.chapters],
            "cues": [c.to_dict() for c in self.cues],
            "dropped": list(self.dropped),
            **({"sounds": dict(self.sounds)} if self.sounds else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        return cls(
            routine=str(data.get("routine", "script")),
            title=str(data.get("title", "")),
            level=str(data.get("level", "standard")),
            voice=VoiceSpec.from_dict(data.get("voice") or {}),
            duration_s=float(data["duration_s"]),
            chapters=tuple(Chapter.from_dict(c) for c in data.get("chapters", [])),
            cues=tuple(Cue.from_dict(c) for c in data["cues"]),
            dropped=tuple(data.get("dropped", [])),
            sounds={str(k): str(v) for k, v in (data.get("sounds") or {}).items()},
        )

    @property
    def speech(self) -> tuple[Cue, ...]:
        return tuple(c for c in self.cues if c.kind == "speech")
