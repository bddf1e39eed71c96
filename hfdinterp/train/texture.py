"""How much texture an image has where it matters for motion: the structure tensor's smaller eigenvalue.

Motion is observable at a pixel only if the image around it varies in both directions: a uniform sky
or a smooth gradient fits any flow, an edge fits any slide along it (the aperture problem). The
structure tensor J = Σ_window ∇I ∇Iᵀ has a large smaller eigenvalue exactly where neither holds
(Shi and Tomasi's "good features to track").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smaller_eigenvalue(images: torch.Tensor, window: int = 15) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, 1, H, W): the smaller eigenvalue of the grey image's structure
    tensor averaged over a ``window`` square (central differences, borders repeated)."""
    grey = images.float().mean(1, keepdim=True)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    average = lambda x: F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    xx, yy, xy = average(gx * gx), average(gy * gy), average(gx * gy)
    return (xx + yy) / 2 - (((xx - yy) / 2) ** 2 + xy * xy).sqrt()
