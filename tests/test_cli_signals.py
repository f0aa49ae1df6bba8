"""A Ctrl-C or SIGTERM is never lost or printed as a traceback, wherever in Python it lands.

A signal handler runs wherever the main thread happens to be. Some places cannot pass
an exception on: a weakref callback (importlib's module locks have one, so any import
can be there) or a ``__del__``. Python prints what is raised there ("Exception ignored
in ...") and goes on. CI once caught a SIGTERM landing in importlib's callback during
an export. These tests put the signal in those places on purpose.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from coach.errors import ExitStatus

PRELUDE = textwrap.dedent("""\
    import gc, signal, sys, time, weakref
    from coach.cli import _catch_signals, _ending
    from coach.errors import Interrupted

    _catch_signals()

    class Thing:
        def __del__(self):
            if WHERE == "__del__":
                signal.raise_signal(SIGNAL)  # runs the handler here, inside __del__

    thing = Thing()
    if WHERE == "weakref callback":
        ref = weakref.ref(thing, lambda _: signal.raise_signal(SIGNAL))
    """)

SWALLOWED = PRELUDE + textwrap.dedent("""\
    try:
        del thing
        gc.collect()
        print("went on", flush=True)
        time.sleep(30)
    except Interrupted as exc:
        print("raised:", exc.message)
    else:
        print("lost")
    """)

AT_THE_END = PRELUDE + textwrap.dedent("""\
    del thing
    gc.collect()
    _ending(0)  # the command is over before the interrupt comes back
    print("over", flush=True)
    time.sleep(30)
    print("slept")
    """)


def run_script(body: str, where: str, signum: str, coach_env) -> subprocess.CompletedProcess:
    head = f"WHERE = {where!r}\nimport signal\nSIGNAL = signal.{signum}\n"
    return subprocess.run([sys.executable, "-c", head + body], capture_output=True, text=True, env=coach_env,
                          timeout=60)


@pytest.mark.parametrize("where", ["weakref callback", "__del__"])
@pytest.mark.parametrize(("signum", "message"), [("SIGTERM", "terminated"), ("SIGINT", "interrupted")])
def test_an_interrupt_python_swallowed_is_raised_again_outside(where, signum, message, coach_env):
    done = run_script(SWALLOWED, where, signum, coach_env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no "Exception ignored in", no traceback
    # The code the signal landed in goes on, and the interrupt comes back a moment later.
    assert done.stdout == f"went on\nraised: {message}\n"


def test_an_interrupt_coming_back_after_the_command_is_over_only_ends_the_process(coach_env):
    done = run_script(AT_THE_END, "weakref callback", "SIGTERM", coach_env)
    assert done.stderr == ""
    assert done.stdout == "over\n"  # it did not sleep on, nor raise in an exit handler
    assert done.returncode == ExitStatus.OK  # the command's own status


def test_other_exceptions_python_swallows_are_still_printed(coach_env):
    body = textwrap.dedent("""\
        import weakref
        from coach.cli import _catch_signals
        _catch_signals()
        class Thing: pass
        thing = Thing()
        def fail(_):
            raise ValueError("a bug in a callback")
        ref = weakref.ref(thing, fail)
        del thing
        print("went on")
        """)
    done = subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, env=coach_env, timeout=60)
    assert done.returncode == 0
    assert done.stdout == "went on\n"
    assert "Exception ignored in" in done.stderr and "ValueError: a bug in a callback" in done.stderr
