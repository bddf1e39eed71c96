"""The one exception type for problems a user can fix; the CLI turns it into one line and exit 1.

``Stopped`` is Ctrl-C's ``KeyboardInterrupt`` for the other stop signals, so that everything which
cleans up on Ctrl-C cleans up on SIGTERM and SIGHUP too; the CLI exits with 128 + ``signum``.
"""

import signal
import sys
from typing import Callable


class HFDError(Exception):
    """A user-facing error: bad input, a missing or damaged weights file, an unwritable output."""


def exit_status(action: Callable[[], None]) -> int:
    """A small command-line tool's work: 0, or its ``HFDError`` as one line on stderr and 1."""
    try:
        action()
    except HFDError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


class Stopped(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
