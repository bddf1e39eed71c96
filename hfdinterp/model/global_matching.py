"""Ours, beyond the paper: a global matching prior for the coarsest diffusion level.

At 1/16 the local correlation's ±4 window reaches only ±64 px. Here every feature pixel of one frame
is compared with every feature pixel of the other (all-pairs cosine similarity, as GMFlow does),
a softmax turns each row into a match distribution, and the mean around its peak is the motion
between the frames, both ways (F_0→1 and F_1→0). The bilateral flow at τ follows from them under linear motion
(Super SloMo's approximation):

    f_τ→0 = −(1 − τ) τ F_0→1 + τ² F_1→0,     f_τ→1 = (1 − τ)² F_0→1 − τ (1 − τ) F_1→0

It is handed to the coarsest level as its starting estimate (instead of zero flow), so the shared
denoiser's warped features and local correlation start where the motion is, however far that is.

The encoder's 1/16 features were trained for the synthesizer and for *local* matching; compared
across the whole frame they match no better than zero motion (measured on the large-motion dev
set). So the matcher has its own small head that turns the encoder's 1/8 and 1/16 features into
matching features, trained by its own stage (``train.stages``: ``global_matching``) with a
contrastive loss over all pixels, without touching the rest of the network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import unit_channels
from .levels import LEVELS

QUERY_CHUNK = 4096  # rows of the all-pairs similarity held at once: memory stays O(chunk · h · w)


def expected_motion(feature0: torch.Tensor, feature1: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Where each pixel of ``feature0`` went in ``feature1``: (B, C, h, w) × 2 -> (B, 2, h, w), feature pixels.

    The match distribution is a softmax over all pixels of the cosine similarity times ``scale``. Its
    mean over the whole frame would average two candidate matches into a point between them, and a
    flat distribution (nothing recognisable) into the frame's centre; instead the motion is the mean
    over the 3×3 pixels around the best match, times the probability mass there (the confidence): a
    clear match gives its position, an ambiguous one shrinks towards zero motion."""
    batch, _, height, width = feature0.shape
    queries = unit_channels(feature0.float()).flatten(2).transpose(1, 2)  # (B, N, C)
    keys = unit_channels(feature1.float()).flatten(2)  # (B, C, N)
    ys, xs = torch.meshgrid(torch.arange(height, device=feature0.device),
                            torch.arange(width, device=feature0.device), indexing="ij")
    offsets = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=feature0.device)  # (9, 2)
    matched = []
    for start in range(0, queries.shape[1], QUERY_CHUNK):
        weights = torch.softmax(queries[:, start:start + QUERY_CHUNK] @ keys * scale.float(), dim=-1)  # (B, n, N)
        best = weights.argmax(-1)  # (B, n)
        y = (best // width)[..., None] + offsets[:, 0]  # (B, n, 9)
        x = (best % width)[..., None] + offsets[:, 1]
        inside = ((y >= 0) & (y < height) & (x >= 0) & (x < width)).float()
        index = y.clamp(0, height - 1) * width + x.clamp(0, width - 1)
        mass = weights.gather(-1, index) * inside  # (B, n, 9)
        confidence = mass.sum(-1, keepdim=True)  # (B, n, 1)
        position = torch.stack(((mass * x).sum(-1), (mass * y).sum(-1)), -1) / confidence.clamp(min=1e-6)
        matched.append((position, confidence))
    position = torch.cat([p for p, _ in matched], 1)  # (B, N, 2)
    confidence = torch.cat([c for _, c in matched], 1)
    here = torch.stack((xs, ys), -1).reshape(1, -1, 2).float()
    motion = confidence * (position - here)  # (B, N, 2)
    return motion.transpose(1, 2).reshape(batch, 2, height, width)


def global_bilateral_prior(feature0: torch.Tensor, feature1: torch.Tensor, time: torch.Tensor,
                           scale: torch.Tensor, pixel_scale: float) -> torch.Tensor:
    """The bilateral flow at τ implied by global matching: (B, 4, h, w), full-resolution pixels."""
    forward = expected_motion(feature0, feature1, scale) * pixel_scale  # F_0→1
    backward = expected_motion(feature1, feature0, scale) * pixel_scale  # F_1→0
    tau = time.float().reshape(-1, 1, 1, 1)
    to0 = -(1 - tau) * tau * forward + tau * tau * backward
    to1 = (1 - tau) ** 2 * forward - tau * (1 - tau) * backward
    return torch.cat((to0, to1), 1)


class GlobalMatcher(nn.Module):
    """Matching features from the encoder's 1/8 and 1/16 features, and the bilateral prior at 1/16."""

    def __init__(self, width_eighth: int, width_sixteenth: int, dim: int = 64):
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(width_eighth + width_sixteenth, 2 * dim, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(2 * dim, 2 * dim, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(2 * dim, dim, 1),
        )
        # Sharpness of the match distribution (cosine similarity × scale), learned in log space so it
        # can move by orders of magnitude.
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def features(self, eighth: torch.Tensor, sixteenth: torch.Tensor) -> torch.Tensor:
        """(B, C8, 2h, 2w), (B, C16, h, w) -> (B, dim, h, w)."""
        return self.head(torch.cat((F.avg_pool2d(eighth, 2), sixteenth), 1))

    def forward(self, pyramid0: list[torch.Tensor], pyramid1: list[torch.Tensor], time: torch.Tensor) -> torch.Tensor:
        """The bilateral prior (B, 4, h, w) at 1/16, full-resolution pixels, from the encoder pyramids."""
        return global_bilateral_prior(self.pyramid_features(pyramid0), self.pyramid_features(pyramid1), time,
                                      self.scale, LEVELS.scale(0))

    def pyramid_features(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        """Matching features at the coarsest level from a frame's encoder pyramid (its 1/8 and 1/16 entries)."""
        return self.features(pyramid[LEVELS.coarsest - 1], pyramid[LEVELS.coarsest])
