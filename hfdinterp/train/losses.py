"""Losses as free functions. Images in [0, 1], (B, 3, H, W); flows in pixels, (B, 4, H, W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..io.images import luma
from ..model.denoiser import local_correlation


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, epsilon: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((prediction - target) ** 2 + epsilon ** 2).mean()


def _census_transform(image: torch.Tensor, patch: int) -> torch.Tensor:
    grey = luma(image) * 255
    kernel = torch.eye(patch * patch, device=image.device, dtype=image.dtype).view(patch * patch, 1, patch, patch)
    neighbours = F.conv2d(grey, kernel, padding=patch // 2)  # (B, p², H, W)
    diff = neighbours - grey
    return diff / torch.sqrt(0.81 + diff ** 2)


def census(prediction: torch.Tensor, target: torch.Tensor, patch: int = 7) -> torch.Tensor:
    """Soft ternary census distance (as in IFRNet/RIFE training): robust to brightness changes."""
    a, b = _census_transform(prediction, patch), _census_transform(target, patch)
    distance = ((a - b) ** 2 / (0.1 + (a - b) ** 2)).mean(1, keepdim=True)
    pad = patch // 2
    valid = torch.zeros_like(distance)
    valid[..., pad:-pad, pad:-pad] = 1
    return (distance * valid).sum() / valid.sum().clamp(min=1)


def photometric(prediction: torch.Tensor, target: torch.Tensor, census_weight: float = 1.0) -> torch.Tensor:
    return charbonnier(prediction, target) + census_weight * census(prediction, target)


def flow_l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (prediction - target).abs().mean()


def feature_matching(warped0: torch.Tensor, warped1: torch.Tensor, radius: int, temperature: float = 0.1) -> torch.Tensor:
    """Contrastive loss for features already aligned by the true flow: at every pixel, the cosine
    similarity of warped0(x) and warped1(x) must beat that with warped1(x + d) for the other offsets
    d in [−r, r]² (cross-entropy over the window). It makes the local correlation peak at the true
    motion, which is what the denoiser reads."""
    logits = local_correlation(warped0, warped1, radius) / temperature  # (B, (2r+1)², h, w)
    centre = torch.full((logits.shape[0], *logits.shape[-2:]), (2 * radius + 1) ** 2 // 2, device=logits.device)
    return F.cross_entropy(logits, centre)


def global_match_cross_entropy(queries: torch.Tensor, keys: torch.Tensor, to_keys: torch.Tensor,
                               scale: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Contrastive loss over *all* pixels: the query at each pixel x must be most similar (cosine ×
    ``scale``) to the key at x + to_keys(x), rounded, among every pixel of the key frame.
    (B, C, h, w) × 2, ``to_keys`` (B, 2, h, w) in feature pixels; pixels whose match leaves the
    frame do not count; ``weights`` (B, h, w): each pixel's share of the mean (default equal)."""
    batch, _, height, width = queries.shape
    logits = torch.einsum("bcn,bcm->bnm", F.normalize(queries, dim=1).flatten(2),
                          F.normalize(keys, dim=1).flatten(2)) * scale  # (B, N, N)
    ys, xs = torch.meshgrid(torch.arange(height, device=to_keys.device), torch.arange(width, device=to_keys.device),
                            indexing="ij")
    x = (xs + to_keys[:, 0]).round().long()  # (B, h, w)
    y = (ys + to_keys[:, 1]).round().long()
    valid = ((x >= 0) & (x < width) & (y >= 0) & (y < height)).flatten(1)  # (B, N)
    target = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).flatten(1)
    if not valid.any():
        return logits.sum() * 0
    if weights is None:
        return F.cross_entropy(logits[valid], target[valid])
    kept = weights.flatten(1)[valid]
    return (F.cross_entropy(logits[valid], target[valid], reduction="none") * kept).sum() / kept.sum()
