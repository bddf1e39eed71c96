"""The one exception type for problems a user can fix; the CLI turns it into one line and exit 1."""


class HFDError(Exception):
    """A user-facing error: bad input, a missing or damaged weights file, an unwritable output."""
