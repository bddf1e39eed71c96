"""The one exception type for problems a user can fix; the CLI turns it into one line and exit 1.

``Stopped`` is Ctrl-C's ``KeyboardInterrupt`` for the other stop signals, so that everything which
cleans up on Ctrl-C cleans up on SIGTERM and SIGHUP too; the CLI exits with 128 + ``signum``.
"""

import signal


class HFDError(Exception):
    """A user-facing error: bad input, a missing or damaged weights file, an unwritable output."""


class Stopped(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised in the main thread."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
