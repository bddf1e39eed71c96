"""The flow denoiser: one U-Net shared by the three levels, with per-level projectors and heads.

At level ℓ (0 = 1/16, 1 = 1/8, 2 = 1/4) it sees
  * the noisy flow x_t (scaled units) through the level's *flow projector*,
  * the features of both frames, the same features warped by the current estimate of the flow
    (self-conditioning: the upsampled coarser result, then the level's own last x̂_0), their absolute
    difference, the local correlation of the two warped maps (the evidence for the remaining motion)
    and the estimate itself, through the level's *feature projector*,
  * the diffusion step t and the target time τ as an embedding,
and predicts x̂_0 as the estimate plus a correction from the level's *output head*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DenoiserConfig
from .layers import ResBlock, sinusoidal_embedding, unit_channels
from .levels import LEVELS
from .warp import warp_bilateral

def local_correlation(feature0: torch.Tensor, feature1: torch.Tensor, radius: int) -> torch.Tensor:
    """Cosine similarity of feature0(x) with feature1(x + d) for every d in [−r, r]²:
    (B, C, h, w) × 2 -> (B, (2r+1)², h, w), d = (dx, dy) in row-major order (dy outer).

    Accumulated channel by channel, each channel one multiply-add of feature0 into all (2r+1)²
    displacements at once, read from a view of the padded map: C calls and no (B, C, h, w) product
    per displacement, where the plain loop makes 2·(2r+1)² calls and writes and reads back 81 of
    them at r = 4 (3–4× slower on a busy CPU). The sum is in float32 whatever the input's dtype.
    """
    feature0 = unit_channels(feature0)
    padded = F.pad(unit_channels(feature1), (radius,) * 4)
    batch, channels, height, width = feature0.shape
    size = 2 * radius + 1
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (B, C, 2r+1, 2r+1, h, w), a view
    out = torch.zeros(batch, size, size, height, width, device=feature0.device, dtype=torch.float32)
    for channel in range(channels):
        out.addcmul_(feature0[:, channel, None, None], windows[:, channel])
    return out.flatten(1, 2).to(feature0.dtype)  # (B, (2r+1)², h, w)


class SharedUNet(nn.Module):
    """A plain U-Net on (B, width, h, w) conditioned on an embedding; it knows nothing of flows."""

    def __init__(self, width: int, mults: tuple[int, ...], embed_dim: int):
        super().__init__()
        chans = [width * m for m in mults]
        self.down_blocks = nn.ModuleList(ResBlock(c, embed_dim) for c in chans[:-1])
        self.downsamples = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1) for i in range(len(chans) - 1))
        self.mid = ResBlock(chans[-1], embed_dim)
        self.upsamples = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 4, 2, 1) for i in range(len(chans) - 1))
        self.merges = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for c in chans[:-1])
        self.up_blocks = nn.ModuleList(ResBlock(c, embed_dim) for c in chans[:-1])

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        skips = []
        for block, down in zip(self.down_blocks, self.downsamples):
            x = block(x, embedding)
            skips.append(x)
            x = down(x)  # (B, C·mult, h/2, w/2)
        x = self.mid(x, embedding)
        for i in reversed(range(len(self.upsamples))):
            x = self.upsamples[i](x)
            x = self.up_blocks[i](self.merges[i](torch.cat((x, skips[i]), dim=1)), embedding)
        return x


class FlowDenoiser(nn.Module):
    def __init__(self, config: DenoiserConfig, feature_widths: tuple[int, ...], flow_scale: float):
        """``feature_widths``: encoder channels at 1/16, 1/8, 1/4 (the diffusion levels, coarse to fine)."""
        super().__init__()
        self.flow_scale = flow_scale
        width, embed_dim = config.width, 2 * config.width
        self.time_dim = config.time_dim
        self.embed = nn.Sequential(nn.Linear(2 * config.time_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.flow_projectors = nn.ModuleList(nn.Conv2d(4, width, 3, 1, 1) for _ in feature_widths)
        self.corr_radius = config.corr_radius
        corr_channels = (2 * config.corr_radius + 1) ** 2 if config.corr_radius > 0 else 0
        self.feature_projectors = nn.ModuleList(nn.Conv2d(5 * c + 4 + corr_channels, width, 3, 1, 1)
                                                for c in feature_widths)
        self.unet = SharedUNet(width, config.mults, embed_dim)
        self.heads = nn.ModuleList(nn.Conv2d(width, 4, 3, 1, 1) for _ in feature_widths)
        for head in self.heads:  # start as "the estimate is right": a calm beginning for training
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(
        self,
        x_t: torch.Tensor,  # (B, 4, h, w) noisy flow, scaled units
        step: torch.Tensor,  # (B,) diffusion timestep
        level: int,
        estimate: torch.Tensor,  # (B, 4, h, w) current x̂_0 (self-conditioning), scaled units
        feature0: torch.Tensor,  # (B, C, h, w)
        feature1: torch.Tensor,
        time: torch.Tensor,  # (B,) target time τ in (0, 1)
    ) -> torch.Tensor:
        warped0, warped1 = warp_bilateral(feature0, feature1, estimate * self.flow_scale, LEVELS.scale(level))
        parts = [feature0, feature1, warped0, warped1, (warped0 - warped1).abs()]
        if self.corr_radius > 0:
            parts.append(local_correlation(warped0, warped1, self.corr_radius))  # (B, (2r+1)², h, w)
        condition = torch.cat(parts + [estimate], dim=1)
        embedding = self.embed(torch.cat((
            sinusoidal_embedding(step, self.time_dim),
            sinusoidal_embedding(time * 1000, self.time_dim),
        ), dim=1).to(x_t.dtype))
        h = self.flow_projectors[level](x_t) + self.feature_projectors[level](condition)  # (B, width, h, w)
        h = self.unet(h, embedding)
        return estimate + self.heads[level](h)  # x̂_0, (B, 4, h, w)
