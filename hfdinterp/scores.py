"""Scores of an interpolated frame against the true one: PSNR on uint8 RGB, and SSIM as scikit-image computes it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """On uint8 RGB, as the reference table was scored."""
    mse = np.mean((prediction.astype(np.float64) - target.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """scikit-image's ``structural_similarity(channel_axis=2, data_range=255)``: 7×7 uniform window,
    sample covariance, K1 = 0.01, K2 = 0.03, mean over the valid region and the channels."""
    x = torch.from_numpy(prediction.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(target.astype(np.float64)).permute(2, 0, 1)[None]
    window, n = 7, 49
    mean = lambda a: F.avg_pool2d(a, window, stride=1)  # noqa: E731  (valid region == skimage's crop)
    ux, uy = mean(x), mean(y)
    correction = n / (n - 1)
    vx = correction * (mean(x * x) - ux * ux)
    vy = correction * (mean(y * y) - uy * uy)
    vxy = correction * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())
