"""The three training stages of the paper, as data, and the loss each one computes.

| stage       | trains                   | flow the synthesizer sees | loss                         |
|-------------|--------------------------|---------------------------|------------------------------|
| synthesizer | encoder + synthesizer    | ground truth              | photometric (+ small flow L1)|
| diffusion   | denoiser                 | —                         | L1 on x̂_0 at one level       |
| joint       | everything               | sampled by the diffusion  | photometric (+ small flow L1)|
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..diffusion import alpha_bar, level_segments, level_timesteps, q_sample, sample_hierarchical
from ..model import HFD
from ..warp import downsample_flow, upsample_flow
from .losses import flow_l1, photometric

LEVEL_FACTORS = (16, 8, 4)


@dataclass(frozen=True)
class Stage:
    name: str
    trains: tuple[str, ...]  # submodules of HFD whose parameters are optimised
    learning_rate: float
    flow_weight: float = 0.01  # weight of the auxiliary L1 between the output flow and the true flow


STAGES = {
    "synthesizer": Stage("synthesizer", ("encoder", "synthesizer"), 3e-4),
    "diffusion": Stage("diffusion", ("denoiser",), 3e-4),
    "joint": Stage("joint", ("encoder", "denoiser", "synthesizer"), 1e-4),
}


def true_flow_pyramid(flow: torch.Tensor) -> list[torch.Tensor]:
    """Ground-truth bilateral flow at 1/16, 1/8, 1/4 (full-resolution pixels)."""
    return [downsample_flow(flow, factor) for factor in LEVEL_FACTORS]


def synthesizer_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None):
    features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    out = model.synthesizer(batch["image0"], batch["image1"], features0, features1,
                            true_flow_pyramid(batch["flow"]), batch["time"])
    pixel = photometric(out["image"], batch["image_t"])
    if perceptual is not None:  # the paper's 0.1 · LPIPS + 20 · style, when their weights are given
        pixel = pixel + perceptual(out["image"], batch["image_t"])
    flow = flow_l1(out["flow"], batch["flow"])
    return pixel + stage.flow_weight * flow, {"photo": pixel.item(), "flow_px": flow.item()}


def diffusion_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None,
                   level: int | None = None):
    """Pick a level (unless given) and a t inside its segment, noise the true flow, predict x̂_0, L1."""
    config = model.config.diffusion
    scale = config.flow_scale
    with torch.no_grad():
        features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    device = batch["flow"].device
    batch_size = batch["flow"].shape[0]
    drawn = int(torch.randint(len(LEVEL_FACTORS), (1,), generator=generator))
    level = drawn if level is None else level
    top, bottom = level_segments(config)[level]
    low = bottom + 1 if level < len(LEVEL_FACTORS) - 1 else 0
    steps = torch.randint(low, top + 1, (batch_size,), generator=generator)
    target = downsample_flow(batch["flow"], LEVEL_FACTORS[level]) / scale  # (B, 4, h, w)
    noise = torch.randn(target.shape, generator=generator).to(device)
    x_t = q_sample(target, steps, noise, alpha_bar(config))

    # The estimate the sampler would hand over at this point: zeros at the start of 1/16, the
    # upsampled coarser result (here: the true coarser flow, perturbed) at the start of a finer level.
    if level == 0:
        estimate = torch.zeros_like(target)
    else:
        coarse = upsample_flow(downsample_flow(target, 2))
        jitter = torch.rand(batch_size, 1, 1, 1, generator=generator).to(device) * 0.1
        estimate = coarse + jitter * torch.randn(target.shape, generator=generator).to(device)
    k = (3, 2, 1)[level]
    steps = steps.to(device)
    if float(torch.rand(1, generator=generator)) < 0.5:  # self-conditioning: a first pass supplies the estimate
        with torch.no_grad():
            estimate = model.denoiser(x_t, steps, level, estimate, features0[k], features1[k], batch["time"])
    x0_hat = model.denoiser(x_t, steps, level, estimate, features0[k], features1[k], batch["time"])
    loss = flow_l1(x0_hat, target)
    return loss, {"flow_px": loss.item() * scale, "level": level}


def joint_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None):
    """Sample the flow with the full DDIM chain, back-propagating through each level's last step."""
    features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    inner = model.denoise_fn(features0, features1, batch["time"])
    last_steps = {timesteps[-1] for timesteps in level_timesteps(model.config.diffusion)}

    def denoise(x_t, step, level, estimate):
        with torch.set_grad_enabled(step in last_steps):
            return inner(x_t, step, level, estimate)

    coarsest = features0[3]
    x0 = sample_hierarchical(denoise, (coarsest.shape[0], 4, *coarsest.shape[-2:]), model.config.diffusion,
                             generator=generator, device=coarsest.device, dtype=coarsest.dtype)
    flows = [x * model.config.diffusion.flow_scale for x in x0]
    out = model.synthesizer(batch["image0"], batch["image1"], features0, features1, flows, batch["time"])
    pixel = photometric(out["image"], batch["image_t"])
    if perceptual is not None:  # the paper's 0.1 · LPIPS + 20 · style, when their weights are given
        pixel = pixel + perceptual(out["image"], batch["image_t"])
    flow = flow_l1(out["flow"], batch["flow"])
    return pixel + stage.flow_weight * flow, {"photo": pixel.item(), "flow_px": flow.item()}


STAGE_LOSSES = {"synthesizer": synthesizer_loss, "diffusion": diffusion_loss, "joint": joint_loss}
