"""Small building blocks shared by the encoder, the denoiser and the synthesizer."""

from __future__ import annotations

import math

import torch
from torch import nn


def conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3×3 convolution followed by a PReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.PReLU(out_channels))


class ResBlock(nn.Module):
    """Two 3×3 convolutions with a residual path; optionally modulated by an embedding (FiLM)."""

    def __init__(self, channels: int, embed_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.SiLU()
        self.film = nn.Linear(embed_dim, 2 * channels) if embed_dim else None

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.act(self.conv1(x))
        if self.film is not None:
            scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return x + self.conv2(self.act(h))


def unit_channels(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's channel vector scaled to length 1: ``F.normalize(x, dim=1)`` (same eps, 1e-12).

    Written as a sum of squares because PyTorch's CPU norm across the channels of an NCHW tensor
    is a strided reduction about 20× slower (0.75 vs 0.036 ms for 24×64×128 on two threads)."""
    return x * (x * x).sum(1, keepdim=True).clamp_min(1e-24).rsqrt()


def sinusoidal_embedding(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) -> (B, dim) sin/cos features of a scalar per sample (diffusion step, target time)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    angles = values.float()[:, None] * freqs[None]
    return torch.cat((angles.sin(), angles.cos()), dim=1)
