"""Ours, as RIFE's ``--ensemble``: the flow sampled both ways round, averaged.

The time-reversed pair (I1, I0, 1 − τ) has f_τ→1 and f_τ→0 for its f_τ→0 and f_τ→1; the mean of the
two samples is symmetric in the pair. Twice the denoiser work; the encoder and synthesizer run once.
"""

from __future__ import annotations

import torch

from ..model import HFD


def sample_both_ways(model: HFD, features0, features1, time: torch.Tensor, generator=None,
                     steps_per_level=None, noise: float = 1.0) -> list[torch.Tensor]:
    """The mean of ``model.sample_flows`` for (I0, I1, τ) and for (I1, I0, 1 − τ), f_τ→0 and f_τ→1
    swapped back. Given generators, both passes draw the same noise, so swapping the pair (and τ ↔ 1 − τ)
    swaps the result exactly."""
    generators = [] if generator is None else [generator] if isinstance(generator, torch.Generator) else generator
    states = [g.get_state() for g in generators]
    forward = model.sample_flows(features0, features1, time, generator, steps_per_level, noise=noise)
    for g, state in zip(generators, states):
        g.set_state(state)
    backward = model.sample_flows(features1, features0, 1 - time, generator, steps_per_level, noise=noise)
    return [(f + torch.cat((b[:, 2:], b[:, :2]), 1)) / 2 for f, b in zip(forward, backward)]
