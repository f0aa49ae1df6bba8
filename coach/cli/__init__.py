"""Command-line interface: thin commands over the library, one error handler.

Each command module registers itself on ``app``; ``main`` maps every
``CoachError`` to one line on stderr and its exit code. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import sys

import typer

from coach import __version__, interrupts
from coach.cli.app import app
from coach.errors import CoachError, ExitStatus, Interrupted, OutputError, RoutineInvalid

# Command modules register on import; they keep heavy imports inside the commands.
from coach.cli import routines as _routines  # noqa: E402,F401

for _optional in ("plan", "voices", "export", "play"):
    try:
        __import__(f"coach.cli.{_optional}")
    except ModuleNotFoundError as _exc:  # a command module not written yet
        if _exc.name != f"coach.cli.{_optional}":
            raise


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coach {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    traceback: bool = typer.Option(
        False, "--traceback", help="Show the full traceback of an error (also: COACH_TRACEBACK=1)."
    ),
) -> None:
    """A hands-free voice coach for home workouts: plan, play and export spoken sessions."""
    if traceback:
        os.environ["COACH_TRACEBACK"] = "1"


def error_lines(exc: CoachError) -> list[str]:
    """What the user sees for an error: one line (one per problem for invalid routines)."""
    if isinstance(exc, RoutineInvalid) and exc.problems:
        return [f"coach: error: {p}" for p in exc.problems]
    line = f"coach: error: {exc.message}"
    if exc.hint:
        line += f" ({exc.hint})"
    return [line]


_signalled: list[str] = []
"""Set by the first SIGINT/SIGTERM: what comes out of the command after it is its consequence."""
_status: list[int] = [ExitStatus.INTERRUPTED]
"""The exit status decided once the command is over."""


def _interrupt(signum: int, _frame: object) -> None:
    name = "interrupted" if signum == signal.SIGINT else "terminated"
    _signalled.append(name)
    _raise(name)


def _raise(name: str) -> None:
    if interrupts.holding():  # code that must not be cut short (an extension module's import): after it
        interrupts.wait(name)
        return
    raise Interrupted(name)


_AGAIN_S = 0.01
"""How soon an interrupt Python swallowed is raised again."""


def _interrupt_again(_signum: int, _frame: object) -> None:
    _raise(_signalled[0])


def _unraisable(info: sys.UnraisableHookArgs) -> None:
    """An Interrupted raised where Python can only print it: raise it again a moment later.

    A signal handler runs wherever the main thread is, and some of that code cannot
    pass an exception on: a weakref callback (importlib's module locks have one, so
    any import can be there), a ``__del__``. Python prints such an exception as
    "Exception ignored in ..." with a traceback and goes on, and the Ctrl-C or
    SIGTERM would be lost. SIGALRM brings it back, outside that code (and again, if
    it lands in such code too).
    """
    if isinstance(info.exc_value, Interrupted) and _signalled:
        signal.signal(signal.SIGALRM, _interrupt_again if signal.getsignal(signal.SIGINT) is _interrupt
                      else _leave_now)
        signal.setitimer(signal.ITIMER_REAL, _AGAIN_S)
        return
    sys.__unraisablehook__(info)


def _catch_signals() -> None:
    """Ctrl-C and SIGTERM raise Interrupted in the main thread, where the command cleans up."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    sys.unraisablehook = _unraisable


def _leave_now(_signum: int, _frame: object) -> None:
    """Ctrl-C or SIGTERM once the command is over (Python is closing speech workers): just go.

    Raising Interrupted here would land in an exit handler and print a traceback;
    the outputs are already complete or removed and the messages printed, and the
    workers exit by themselves when their pipe closes. The exit status stays the
    command's own.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream: nothing more to say
            pass
    os._exit(_status[0])


class ClosedStream(io.TextIOBase):
    """Stands in for a standard stream the caller closed (``coach plan >&-``): writing to it is an OutputError."""

    def __init__(self, name: str) -> None:
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OutputError(f"{self.name} is closed", hint="run the command without closing it, or give -o FILE")

    @property
    def buffer(self) -> ClosedStream:  # binary writes (`coach export -o -`) fail the same way
        return self

    def fileno(self) -> int:
        return {"standard input": 0, "standard output": 1, "standard error": 2}[self.name]


def _guard_standard_streams() -> None:
    """Give closed fds 0-2 a /dev/null, so no file or pipe opened later takes their number.

    A pipe to a speech worker that became fd 1 would get the table printed into it.
    Writing to a closed stdout is then a clear OutputError; a closed stderr is dropped.
    """
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if name == "stdout":
                sys.stdout = ClosedStream("standard output")
            elif name == "stderr":
                sys.stderr = open(fd, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
            # stdin: None stays None, and reading `-` says standard input is closed


def _broken_pipe(exc: BaseException) -> bool:
    """Did click end the command because stdout's reader went away (it exits 1 then)?"""
    cause = exc.__context__
    return isinstance(cause, OSError) and cause.errno == errno.EPIPE


def _quiet_broken_pipe() -> None:
    # stdout closed early (`coach plan | head`): not an error worth a trace. What is still
    # buffered cannot go out either, and must not fail again at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(ExitStatus.OK)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the right status."""
    _catch_signals()
    _guard_standard_streams()
    try:
        command = typer.main.get_command(app)
        command.main(args=argv, prog_name="coach", standalone_mode=True)
    except SystemExit as exc:  # how click ends every command
        if exc.code == 1 and _broken_pipe(exc):
            _ending(ExitStatus.OK)
            _quiet_broken_pipe()
        _ending(exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1)
        raise
    except CoachError as exc:
        _ending(exc.exit_status)
        if _traceback_wanted():
            raise
        for line in error_lines(exc):
            print(line, file=sys.stderr)
        sys.exit(exc.exit_status)
    except BrokenPipeError:
        _ending(ExitStatus.OK)
        _quiet_broken_pipe()
    except Exception as exc:
        if _signalled and not _traceback_wanted():
            # A library turned our Interrupted into its own error (pydantic wraps whatever is
            # raised while it builds a model, for one): it is still the user's Ctrl-C.
            _ending(ExitStatus.INTERRUPTED)
            print(f"coach: error: {_signalled[0]}", file=sys.stderr)
            sys.exit(ExitStatus.INTERRUPTED)
        # Files are written through coach.fsutil, which names them; what arrives here with
        # these errors is stdout itself (`coach plan > /dev/full`, a full disk under `> file`).
        if not isinstance(exc, OSError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO) \
                or _traceback_wanted():
            raise
        _ending(ExitStatus.OUTPUT)
        from coach.fsutil import output_error

        print(f"coach: error: {output_error(exc.filename or 'stdout', exc).message}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered cannot go out
        sys.exit(ExitStatus.OUTPUT)
    finally:
        _ending(None)
        if signal.getsignal(signal.SIGALRM) is _leave_now:
            # An interrupt Python swallowed is still to come back: go now, before Python's
            # own end resets the handlers and the alarm kills the process.
            signal.setitimer(signal.ITIMER_REAL, 0)
            _leave_now(0, None)


def _traceback_wanted() -> bool:
    return os.environ.get("COACH_TRACEBACK") == "1"  # read late: --traceback sets it while the command parses


def _ending(status: int | None) -> None:
    """From here on a signal only hurries the exit along (with ``status``, or the one set before)."""
    if status is not None:
        _status[0] = status
    signal.signal(signal.SIGINT, _leave_now)
    signal.signal(signal.SIGTERM, _leave_now)
    if signal.getsignal(signal.SIGALRM) is _interrupt_again:  # an interrupt still to be raised again
        signal.signal(signal.SIGALRM, _leave_now)
