"""Shared fixtures: a tiny model that moves pixels by a known flow, its weights file, small images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfdinterp import HFD, PRESETS, save_weights

# The flow the tiny model samples, in full-resolution pixels, (f_τ→0 x, y, f_τ→1 x, y): everything
# moves right by 2 px from I0 to I1. The paper's sampling noise (``noise=1``) moves it by about ±0.2 px,
# so the seed matters there; at the default noise 0 the flow is this, whatever the seed.
TINY_FLOW = (-1.0, 0.0, 1.0, 0.0)


def make_moving_model(flow: tuple[float, ...] = TINY_FLOW, jitter: float = 5e-4, seed: int = 0) -> HFD:
    """The tiny preset whose sampled flow is ``flow`` (at the default six DDIM steps) plus a little of
    the diffusion noise, and whose synthesizer keeps that flow (no flow residual).

    Each denoiser call adds its head's output to the running estimate (x̂_0 = estimate + head), and
    the estimate is carried through all six calls, so a head bias of flow / (scale · 6) sums to
    ``flow``; head weights of std ``jitter`` let the noise through (zero would make every seed alike).
    """
    torch.manual_seed(seed)
    model = HFD(PRESETS["tiny"]).eval()
    calls = sum(model.config.diffusion.steps_per_level)
    scale = model.config.diffusion.flow_scale
    with torch.no_grad():
        for head in model.denoiser.heads:
            torch.nn.init.normal_(head.weight, std=jitter)
            head.bias.copy_(torch.tensor(flow) / (scale * calls))
        synthesizer = model.synthesizer
        synthesizer.level2_flow.weight.zero_()
        synthesizer.level2_flow.bias.zero_()
        synthesizer.level2.up.weight[:, :4].zero_()  # output channels 0-3: the full-resolution flow residual
        synthesizer.level2.up.bias[:4].zero_()
    return model


@pytest.fixture(scope="session")
def tiny_model() -> HFD:
    return make_moving_model()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_model) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(tiny_model, path)
    return str(path)


def moving_square(height: int, width: int, shift: int = 0, channels: int = 3) -> np.ndarray:
    """A textured background with a bright square shifted ``shift`` pixels to the right."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([(np.sin(xs / 3.0 + c) * np.cos(ys / 4.0) + 1) / 2 for c in range(channels)], -1)
    top, left = height // 4, width // 4 + shift
    image[top:top + height // 3, max(0, left):max(0, left + width // 3)] = 0.9
    return image.astype(np.float32)
