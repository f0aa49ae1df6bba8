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
        sys.stdout.write("went on\\n")  # one write: the interrupt may come back at any moment now
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


# -- code that must not be cut short ----------------------------------------------------------

HELD = textwrap.dedent("""\
    import signal, threading
    from coach.cli import _catch_signals
    from coach.errors import Interrupted
    from coach.interrupts import held

    _catch_signals()
    try:
        with held():
            signal.raise_signal(signal.SIGTERM)
            print("the block goes on", flush=True)
            with held():
                signal.raise_signal(signal.SIGINT)
            print("and on", flush=True)
        print("lost")
    except Interrupted as exc:
        print("raised:", exc.message)

    def elsewhere():  # signals are the main thread's: held() elsewhere changes nothing
        with held():
            print("other thread held:", __import__("coach.interrupts").interrupts.holding())
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    """)


def test_an_interrupt_in_a_held_block_is_raised_when_the_outermost_block_ends(coach_env):
    done = subprocess.run([sys.executable, "-c", HELD], capture_output=True, text=True, env=coach_env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == "the block goes on\nand on\nraised: terminated\nother thread held: False\n"


SOXR = textwrap.dedent("""\
    import signal, sys
    import numpy as np
    from coach.audio.render import resample
    from coach.cli import _catch_signals
    from coach.errors import Interrupted

    _catch_signals()
    landed = []

    def profile(frame, event, _arg):
        # The first Python call soxr's compiled module makes while it sets itself up
        # (it builds its enums): where CI once had a SIGTERM land.
        if event == "call" and "soxr.soxr_ext" in sys.modules and frame.f_code.co_filename.endswith("enum.py") \\
                and not landed:
            landed.append(frame.f_code.co_name)
            signal.raise_signal(signal.SIGTERM)

    sys.setprofile(profile)
    try:
        resample(np.zeros(100, dtype=np.float32), 22050, 44100)
        print("lost")
    except Interrupted as exc:
        sys.setprofile(None)
        print("raised:", exc.message, "landed:", landed, "soxr usable:", hasattr(sys.modules["soxr"], "resample"))
    """)


def test_a_sigterm_inside_soxrs_compiled_import_waits_for_it_instead_of_aborting(coach_env):
    # Without coach.interrupts.held(): "terminate called after throwing an instance of
    # 'nanobind::python_error'" and exit -6 (SIGABRT).
    done = subprocess.run([sys.executable, "-c", SOXR], capture_output=True, text=True, env=coach_env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == "raised: terminated landed: ['__call__'] soxr usable: True\n"
