"""``python -m coach`` and the ``coach`` command.

Signal handlers go in before anything heavy is imported: a Ctrl-C (or SIGTERM)
while Coach is still starting up has nothing to clean up, so it leaves at once
with exit status 130 instead of a KeyboardInterrupt traceback from some import.
``coach.cli.main`` then installs the handlers that clean up. In between,
``coach.opening`` may start a session played before on the device (its
standard-library-only head start).
"""

import _signal  # built in: `signal` would first build its enums, a window for a KeyboardInterrupt traceback
import os
import sys


def _while_starting(signum: int, _frame: object) -> None:
    os.write(2, b"coach: error: interrupted\n")
    os._exit(130)


def run() -> None:
    """The console entry point."""
    _signal.signal(_signal.SIGINT, _while_starting)
    _signal.signal(_signal.SIGTERM, _while_starting)
    from coach.opening import start_early

    start_early(sys.argv[1:])  # `coach play` of a command played before: its opening plays at once
    from coach.cli import main

    main()


if __name__ == "__main__":
    run()
