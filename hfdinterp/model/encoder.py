"""Feature encoder E: one CNN pyramid, run once per frame.

(B, 3, H, W) in [0, 1] -> [F^1, F^2, F^3, F^4] at 1/2, 1/4, 1/8, 1/16 resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import EncoderConfig
from .layers import conv


class FeatureEncoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        widths = (3,) + tuple(config.widths)
        self.stages = nn.ModuleList(
            nn.Sequential(conv(widths[i], widths[i + 1], stride=2), conv(widths[i + 1], widths[i + 1]))
            for i in range(len(config.widths))
        )

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = image * 2 - 1
        for stage in self.stages:
            x = stage(x)  # (B, C_k, H/2^k, W/2^k)
            features.append(x)
        return features
