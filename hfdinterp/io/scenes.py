"""Cheap scene-cut detection between consecutive frames.

The score mixes two signals on a 64-pixel-wide grey thumbnail: how much the brightness histogram
changed (L1 distance of 32-bin histograms, halved: 0 same, 1 disjoint) and how much the picture
changed (mean absolute difference, ×3, capped at 1). Motion moves pixels but keeps the histogram,
a cut changes both. A pair whose score is above the threshold is a cut.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .images import luma

DEFAULT_THRESHOLD = 0.35
THUMB_WIDTH = 64
BINS = 32


def thumbnail(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1] -> (B, 1, h, 64) grey."""
    grey = luma(frames)
    height = max(1, round(frames.shape[-2] * THUMB_WIDTH / frames.shape[-1]))
    return F.interpolate(grey.float(), size=(height, THUMB_WIDTH), mode="area")


def cut_scores(thumbs: torch.Tensor) -> np.ndarray:
    """Scores between consecutive thumbnails: (N, 1, h, w) -> (N − 1,) in [0, 1]."""
    if thumbs.shape[0] < 2:
        return np.zeros(0)
    flat = thumbs.flatten(1)
    histograms = torch.stack([torch.histc(row, BINS, 0, 1) / row.numel() for row in flat])
    histogram_change = (histograms[1:] - histograms[:-1]).abs().sum(1) / 2
    picture_change = ((flat[1:] - flat[:-1]).abs().mean(1) * 3).clamp(max=1)
    return ((histogram_change + picture_change) / 2).cpu().numpy()
