"""Shared fixtures: a tiny model with its weights file, small generated images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfdinterp import HFD, PRESETS, save_weights


@pytest.fixture(scope="session")
def tiny_model() -> HFD:
    torch.manual_seed(0)
    return HFD(PRESETS["tiny"]).eval()


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
