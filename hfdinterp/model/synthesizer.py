"""Synthesizer D: the flow-guided decoder that turns flows and features into the frame at time τ.

At 1/16, 1/8 and 1/4 it warps both frames' encoder features by that level's diffused flow and fuses
them with the decoder's upsampled features; at 1/2 and 1/1 it refines the flow with a residual.
The head gives the blend mask M (sigmoid) and the residual ΔI (tanh); the frames are warped for the
output with Catmull–Rom interpolation (ours: bilinear sampling blurs every fractional shift; weights/README.md):

    Ĩ_τ = M ⊙ w(I0, f_τ→0) + (1 − M) ⊙ w(I1, f_τ→1) + ΔI
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SynthesizerConfig
from .layers import conv
from .levels import LEVELS
from .warp import upsample_flow, warp_bilateral


def split_conv(layer: nn.Conv2d, features: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
    """``layer(cat(features, extra))`` as two convolutions, its weights split along the input channels.

    The same values, but the features keep a channel count that oneDNN's CPU kernels handle well
    (16, 48, …) instead of 52: at 1/2 resolution 48 + 4 channels measured ~2 ms faster than 52, for
    each of the two convolutions there (two threads)."""
    split = features.shape[1]
    return (F.conv2d(features, layer.weight[:, :split], layer.bias, layer.stride, layer.padding)
            + F.conv2d(extra, layer.weight[:, split:], None, layer.stride, layer.padding))


class DecoderLevel(nn.Module):
    """Fuse [upsampled decoder features, warped F0, warped F1 | flow (, τ)] and upsample ×2."""

    def __init__(self, in_channels: int, width: int, out_channels: int, out_extra: int = 0):
        super().__init__()
        self.fuse = nn.Sequential(conv(in_channels, width), conv(width, width), conv(width, width))
        self.up = nn.ConvTranspose2d(width, out_channels + out_extra, 4, 2, 1)

    def forward(self, features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        (first, activation), rest = self.fuse[0], self.fuse[1:]
        return self.up(rest(activation(split_conv(first, features, flow))))


class Synthesizer(nn.Module):
    def __init__(self, config: SynthesizerConfig, feature_widths: tuple[int, ...], flow_scale: float):
        """``feature_widths``: encoder channels at 1/2, 1/4, 1/8, 1/16."""
        super().__init__()
        self.flow_scale = flow_scale
        self.image_warp = config.image_warp
        c1, c2, c3, c4 = feature_widths
        d1, d2, d3, d4 = config.widths
        self.level16 = DecoderLevel(2 * c4 + 4 + 1, d4, d3)
        self.level8 = DecoderLevel(d3 + 2 * c3 + 4, d3, d2)
        self.level4 = DecoderLevel(d2 + 2 * c2 + 4, d2, d1)
        self.level2_flow = nn.Conv2d(d1 + 2 * c1 + 4, 4, 3, 1, 1)  # flow residual at 1/2
        self.level2 = DecoderLevel(d1 + 2 * c1 + 4, d1, 4 + 1 + 3)  # full-res flow residual, mask, ΔI
        for layer in (self.level2_flow, self.level2.up):
            nn.init.zeros_(layer.bias)
            layer.weight.data.mul_(0.1)

    def _inputs(self, decoder, features0, features1, entry: int, flow):
        """[decoder features,] both frames' features at pyramid ``entry`` warped by ``flow``; and the
        flow, in the diffusion's units (kept apart: ``split_conv``)."""
        warped0, warped1 = warp_bilateral(features0[entry], features1[entry], flow, LEVELS.scales[entry])
        parts = [warped0, warped1]
        return torch.cat(parts if decoder is None else [decoder] + parts, dim=1), flow / self.flow_scale

    def forward(
        self,
        image0: torch.Tensor,  # (B, 3, H, W)
        image1: torch.Tensor,
        features0: list[torch.Tensor],  # F^1..F^4 of I0
        features1: list[torch.Tensor],
        flows: list[torch.Tensor],  # bilateral flow at 1/16, 1/8, 1/4, full-resolution pixels
        time: torch.Tensor,  # (B,)
        image_warp: str | None = None,  # how the output's two warps sample; None: config.image_warp
    ) -> dict[str, torch.Tensor]:
        time_map = time.to(flows[0].dtype).view(-1, 1, 1, 1).expand(-1, 1, *flows[0].shape[-2:])
        x = None
        for level, (decoder, flow) in enumerate(zip((self.level16, self.level8, self.level4), flows)):
            features, flow_input = self._inputs(x, features0, features1, LEVELS.entry(level), flow)
            x = decoder(features, flow_input if level else torch.cat((flow_input, time_map), 1))  # 1/8, 1/4, 1/2

        half = 0  # the pyramid entry at 1/2, below the diffusion levels
        flow2 = upsample_flow(flows[-1])
        flow2 = flow2 + self.flow_scale * split_conv(self.level2_flow, *self._inputs(x, features0, features1, half, flow2))
        out = self.level2(*self._inputs(x, features0, features1, half, flow2))  # (B, 8, H, W)

        flow = upsample_flow(flow2) + self.flow_scale * out[:, 0:4]  # (B, 4, H, W), f_τ→0 and f_τ→1
        mask = torch.sigmoid(out[:, 4:5])
        residual = torch.tanh(out[:, 5:8])
        warped0, warped1 = warp_bilateral(image0, image1, flow, 1, image_warp or self.image_warp)
        image = mask * warped0 + (1 - mask) * warped1 + residual
        return {"image": image, "flow": flow, "flow2": flow2, "mask": mask, "residual": residual,
                "warped0": warped0, "warped1": warped1}
