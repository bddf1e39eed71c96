"""The application object, its one-line errors and its signal handling.

Every user error is an ``HFDError``: one red line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
from pathlib import Path

import typer
import typer.core
from rich.console import Console
from typer.core import TyperGroup

from ..errors import HFDError, Stopped

console = Console(stderr=True)
click = getattr(typer.core, "_click", None) or __import__("click")  # newer Typer vendors its own Click


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, ``--factor abc``) are one line and exit 1, like every other bad input."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            error.show()
            sys.exit(error.exit_code)
        except click.ClickException as error:
            context = getattr(error, "ctx", None)
            hint = f" (see: {context.command_path} --help)" if context is not None else ""
            console.print(f"[red]error:[/red] {error.format_message()}{hint}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except typer.Abort:
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=OneLineErrors,
                  help="Frame interpolation with Hierarchical Flow Diffusion (HFD).")
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def stop_once_on_signals():
    """The first SIGINT/SIGTERM/SIGHUP raises ``Stopped``; later ones are ignored, so a second Ctrl-C
    cannot cut short the removal of a partial output (the cleanup itself is bounded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        if received:
            return
        received.append(signum)
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():  # once stopping, stay deaf until the process has exited
            signal.signal(sig, signal.SIG_IGN if received else old)

def user_errors(command):
    """Turn HFDError (and Ctrl-C, SIGTERM, SIGHUP) into one line and a non-zero exit (1, or 128 + signal)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with stop_once_on_signals():
                return command(*args, **kwargs)
        except HFDError as error:
            console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as error:
            signum = getattr(error, "signum", signal.SIGINT)
            console.print("[red]interrupted[/red]" if signum == signal.SIGINT else
                          f"[red]stopped by {signal.Signals(signum).name}[/red]", highlight=False)
            raise typer.Exit(128 + signum) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:  # a bug of ours: still one line, the traceback on request
            if os.environ.get("HFDINTERP_DEBUG"):
                raise
            console.print(f"[red]internal error:[/red] {type(error).__name__}: {error} "
                          "(set HFDINTERP_DEBUG=1 for the traceback, and please report it)",
                          highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper


def _warn(message) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def _write_json(path: Path, data) -> None:
    """``--json FILE`` (or ``-``: stdout)."""
    text = json.dumps(data, indent=2)
    if str(path) == "-":
        print(text)
    else:
        path.write_text(text + "\n")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


