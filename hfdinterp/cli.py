"""The command line: a thin Typer layer over the library. The only module importing Typer or Rich.

Every user error is an ``HFDError``: one red line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from .errors import HFDError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Frame interpolation with Hierarchical Flow Diffusion (HFD).")
console = Console(stderr=True)

WeightsOption = Annotated[Optional[str], typer.Option("--weights", "-w", help="Weights file or known name (default: the bundled hfd-small).")]
DeviceOption = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
PrecisionOption = Annotated[str, typer.Option(help="auto (half on CUDA, fp32 elsewhere), fp32, fp16 or bf16.")]
StepsOption = Annotated[int, typer.Option(help="DDIM steps in all, spread over the three levels (paper: 6).")]
SeedOption = Annotated[int, typer.Option(help="Seed of the diffusion noise; the same seed gives the same output.")]


def user_errors(command):
    """Turn HFDError (and Ctrl-C) into one line and a non-zero exit."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except HFDError as error:
            console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]")
            raise typer.Exit(130) from None
    return wrapper


def _warn(message) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def pair(
    first: Annotated[Path, typer.Argument(help="The first image (time 0).")],
    second: Annotated[Path, typer.Argument(help="The second image (time 1).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output image (default: beside FIRST).")] = None,
    time: Annotated[Optional[float], typer.Option(help="Time of the frame, strictly between 0 and 1 (default 0.5).")] = None,
    num: Annotated[int, typer.Option("--num", "-n", help="Write N evenly spaced in-between frames.")] = 1,
    steps: StepsOption = 6,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    weights: WeightsOption = None,
    save_flow: Annotated[bool, typer.Option(help="Also write a colour-coded picture of the two flows.")] = False,
    drop_alpha: Annotated[bool, typer.Option(help="Drop an alpha channel instead of interpolating it.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Write the frame between two images."""
    from .interpolate import load_interpolator
    from .pair import PairRequest, interpolate_pair

    request = PairRequest(first, second, output, time, num, seed, overwrite, save_flow, keep_alpha=not drop_alpha)
    load = lambda: load_interpolator(weights, device, precision, steps)  # noqa: E731
    for path in interpolate_pair(load, request, on_warning=_warn):
        print(path)


@app.command("download-weights")
@user_errors
def download_weights(
    name: Annotated[Optional[str], typer.Argument(help="Which weights (see --list).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Show the known weights and which are present.")] = False,
    force: Annotated[bool, typer.Option(help="Download again even if present.")] = False,
) -> None:
    """Fetch larger weights from the Hugging Face Hub (pinned revision, sha256 checked)."""
    from rich.table import Table

    from .weights_registry import KNOWN_WEIGHTS, bundled_path, cached_path, download

    if list_ or name is None:
        table = Table("name", "present", "size", "description")
        for entry in KNOWN_WEIGHTS.values():
            where = bundled_path(entry.name) if entry.bundled and bundled_path(entry.name).is_file() else cached_path(entry)
            table.add_row(entry.name, str(where) if where else "no", f"{entry.size / 1e6:.1f} MB", entry.description)
        Console().print(table)
        return
    entry = KNOWN_WEIGHTS.get(name)
    if entry is None:
        raise HFDError(f"unknown weights '{name}'; known: {', '.join(sorted(KNOWN_WEIGHTS))}")
    if entry.bundled and bundled_path(name).is_file() and not force:
        print(bundled_path(name))
        console.print(f"{name} is bundled with hfdinterp; nothing to download (--force fetches it anyway)")
        return
    with console.status(f"downloading {entry.repo_id}@{entry.revision}/{entry.filename}"):
        path = download(entry, force=force)
    print(path)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
