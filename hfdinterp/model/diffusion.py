"""Hierarchical flow diffusion: the noise schedule and the coarse-to-fine DDIM sampler.

Symbols (DDIM, Song et al. 2021; HFD, CVPR 2025):

    variable        paper
    alpha_bar[t]    ᾱ_t = Π_{s≤t} (1 − β_s), linear β from beta_start to beta_end over T steps
    x_t             noisy bilateral flow, divided by ``flow_scale``
    x0_hat          the denoiser's estimate of x_0 (x0-prediction)
    eps_hat         the noise implied by x0_hat
    levels          0 = 1/16, 1 = 1/8, 2 = 1/4; level ℓ owns an equal third of the timeline

The sampler is a pure function of a ``denoise(x_t, t, level, estimate) -> x0_hat`` callable:
it knows nothing about the network, and the network knows nothing about it.

Precision and devices: the DDIM state, the noise and every x̂_0 are float32 whatever the network
computes in (under half-precision autocast a flow of 150.3 px would otherwise be stored as 150.0).
The per-step coefficients √ᾱ_t are Python floats read once from the float64 table on the host, so
the loop sends nothing to the device; noise is drawn on the device of its generator, so a device
generator means no copies either, and nothing in the loop reads a device value back (no host syncs).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .config import DiffusionConfig
from .warp import upsample_flow

Denoise = Callable[[torch.Tensor, int, int, torch.Tensor], torch.Tensor]


def alpha_bar(config: DiffusionConfig) -> torch.Tensor:
    """ᾱ_t for t = 0 … T−1, float64 on the CPU (derived, never stored as a weight)."""
    betas = torch.linspace(config.beta_start, config.beta_end, config.train_steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def level_segments(config: DiffusionConfig) -> list[tuple[int, int]]:
    """(top, bottom) of each level's share of the timeline, coarse to fine.

    With T = 1000: 1/16 owns (666, 999], 1/8 owns (333, 666], 1/4 owns [0, 333].
    """
    levels = len(config.steps_per_level)
    top = config.train_steps - 1
    bounds = [round(top - top * i / levels) for i in range(levels + 1)]  # 999, 666, 333, 0
    return [(bounds[i], bounds[i + 1]) for i in range(levels)]


def level_timesteps(config: DiffusionConfig, steps_per_level: Sequence[int] | None = None) -> list[list[int]]:
    """DDIM timesteps of each level, evenly spaced from the top of its segment downwards.

    Default (2, 2, 2) with T = 1000 gives [[999, 833], [666, 500], [333, 167]].
    """
    steps_per_level = tuple(steps_per_level or config.steps_per_level)
    if len(steps_per_level) != len(config.steps_per_level) or min(steps_per_level) < 1:
        raise ValueError(f"steps_per_level needs {len(config.steps_per_level)} positive counts, got {steps_per_level}")
    schedule = []
    for (top, bottom), count in zip(level_segments(config), steps_per_level):
        schedule.append([int(top - (top - bottom) * i / count + 0.5) for i in range(count)])
    return schedule


def split_steps(total: int, levels: int = 3) -> tuple[int, ...]:
    """Spread ``total`` DDIM steps over the levels, coarse levels first: 6 -> (2, 2, 2), 4 -> (2, 1, 1)."""
    if total < levels:
        raise ValueError(f"at least {levels} steps are needed (one per level), got {total}")
    return tuple(total // levels + (1 if i < total % levels else 0) for i in range(levels))


def q_sample(x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """Forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I). ``t`` is an int or a (B,) tensor.

    With an int ``t`` and the host table of ``alpha_bar`` the coefficients are plain floats: nothing
    is copied to ``x0``'s device. A tensor ``t`` indexes the table where ``t`` lives (training)."""
    if isinstance(t, int):
        a = float(abar[t])
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise
    a = abar.to(t.device)[t].to(device=x0.device, dtype=x0.dtype).reshape(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddim_step(x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, t_next: int, abar: torch.Tensor) -> torch.Tensor:
    """DDIM with σ = 0: x_{t'} = √ᾱ_{t'} x̂_0 + √(1 − ᾱ_{t'}) ε̂,  ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t)."""
    a_t, a_next = float(abar[t]), float(abar[t_next])
    eps_hat = (x_t - a_t ** 0.5 * x0_hat) / (1 - a_t) ** 0.5
    return a_next ** 0.5 * x0_hat + (1 - a_next) ** 0.5 * eps_hat


def gaussian(shape: tuple[int, ...], generator: torch.Generator | Sequence[torch.Generator] | None,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal float32 noise on ``device``, drawn where the generator lives (a device generator:
    no copy; a CPU generator for a GPU tensor, as training hands in: one copy).

    With one generator per sample, each sample's noise is independent of the batch it is in.
    """
    def draw(size: tuple[int, ...], g: torch.Generator | None) -> torch.Tensor:
        where = device if g is None else g.device
        return torch.randn(size, generator=g, device=where, dtype=torch.float32).to(device)

    if generator is None or isinstance(generator, torch.Generator):
        return draw(shape, generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.cat([draw((1, *shape[1:]), g) for g in generator])


def sample_hierarchical(
    denoise: Denoise,
    coarsest_shape: tuple[int, int, int, int],
    config: DiffusionConfig,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    steps_per_level: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    start_estimate: torch.Tensor | None = None,
    levels: int | None = None,
    noise: float = 1.0,
) -> list[torch.Tensor]:
    """Coarse-to-fine DDIM over the flow pyramid; returns each level's x̂_0 (scaled units, float32),
    of the first ``levels`` levels only when given (the same values as the full run's first ones).

    1. x_T ~ N(0, I) at the coarsest level.
    2. Within a level: x̂_0 = denoise(x_t, t, ℓ, estimate), then a DDIM step to the next t.
    3. Between levels: upsample the level's x̂_0 ×2 and re-noise it to the next level's first t with q.
    The ``estimate`` handed to the denoiser is the latest x̂_0: self-conditioning. At the start it is
    ``start_estimate`` (coarsest shape, scaled units; e.g. a global matching prior), else zeros.
    The state is float32 whatever the network's precision; ``dtype`` is accepted for old callers and
    may only widen it (float64), never narrow it.

    ``noise`` scales every draw of steps 1 and 3: 1 is the paper's sampler. 0 (ours) starts from the
    prior's mean, x_T = 0, and re-noises with none, x_t = √ᾱ_t · x̂_0: one deterministic path, no
    generator needed. At 0 the output depends on no seed, and it scored higher on every real set
    (weights/README.md, "Sampling noise").
    """
    dtype = torch.promote_types(dtype, torch.float32)
    abar = alpha_bar(config)  # host float64 table: the loop reads Python floats from it
    schedule = level_timesteps(config, steps_per_level)

    def drawn(shape: tuple[int, ...]) -> torch.Tensor:
        if noise == 0:
            return torch.zeros(shape, device=device, dtype=dtype)
        return (gaussian(shape, generator, device) * noise).to(dtype)

    x_t = drawn(coarsest_shape)
    estimate = torch.zeros_like(x_t) if start_estimate is None else start_estimate.to(device=x_t.device, dtype=dtype)
    x0_per_level = []
    for level, timesteps in enumerate(schedule[:levels]):
        if level > 0:
            estimate = upsample_flow(x0_per_level[-1])
            x_t = q_sample(estimate, timesteps[0], drawn(tuple(estimate.shape)), abar)
        for i, t in enumerate(timesteps):
            x0_hat = denoise(x_t, t, level, estimate).to(dtype)  # the network may answer in half precision
            estimate = x0_hat
            if i + 1 < len(timesteps):
                x_t = ddim_step(x_t, x0_hat, t, timesteps[i + 1], abar)
        x0_per_level.append(estimate)
    return x0_per_level
