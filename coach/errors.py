"""One error tree for everything a user or their machine can get wrong.

Library code raises these; only ``coach.cli`` turns them into a message and an
exit code. Any other exception escaping to the CLI is a bug and keeps its
traceback. Each class also inherits the builtin that best describes it, so
callers that do not know Coach can still catch ``ValueError`` or ``OSError``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    INVALID = 1  # coach validate found problems; a routine or script is invalid
    USAGE = 2  # bad command-line usage (typer/click also use 2)
    INPUT = 3  # an input file cannot be read or parsed
    OUTPUT = 4  # an output cannot be written (permissions, full disk, exists)
    SPEECH = 5  # no speech engine, or it failed
    AUDIO_DEVICE = 6  # no audio output device, or it failed
    INTERRUPTED = 130  # Ctrl-C / SIGINT


class CoachError(Exception):
    """Base of every error Coach reports to a user."""

    exit_status: ExitStatus = ExitStatus.INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CoachError, ValueError):
    """A command-line value is wrong (unknown routine, bad level, bad voice...)."""

    exit_status = ExitStatus.USAGE


class InputFileError(CoachError, ValueError):
    """An input file (routine, cue script, article) cannot be read or parsed."""

    exit_status = ExitStatus.INPUT


class RoutineInvalid(InputFileError):
    """A routine file parsed but breaks the format; carries every problem found."""

    exit_status = ExitStatus.INVALID

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        head = problems[0] if problems else "invalid routine"
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(head + more)


class OutputError(CoachError, OSError):
    """An output cannot be written: it exists, the folder is read-only, the disk is full."""

    exit_status = ExitStatus.OUTPUT


class SpeechEngineError(CoachError, RuntimeError):
    """No usable speech engine, or the engine failed to synthesize."""

    exit_status = ExitStatus.SPEECH


class AudioDeviceError(CoachError, RuntimeError):
    """No audio output device, or it failed while playing."""

    exit_status = ExitStatus.AUDIO_DEVICE


class Interrupted(CoachError):
    """The user pressed Ctrl-C (or the process got SIGINT/SIGTERM).

    Deliberately not a KeyboardInterrupt: typer would turn that into "Aborted!"
    and exit 1, and this must reach ``coach.cli.main`` to exit 130.
    """

    exit_status = ExitStatus.INTERRUPTED
