"""The command line: a thin Typer layer over the library. The only package importing Typer or Rich.

``base`` holds the application and its error and signal handling, ``options`` the options several
commands share, ``commands`` and ``training`` the commands.
"""

from .base import app, main
from .commands import batch_command, download_weights, evaluate, pair, video
from .training import export_weights, train

__all__ = ["app", "batch_command", "download_weights", "evaluate", "export_weights", "main", "pair", "train", "video"]
