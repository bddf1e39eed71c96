"""Backward warping, flow resizing and the input padder.

Flow is in pixels of the tensor it is applied to; channel 0 is x (right), 1 is y (down).
A pixel's centre is at its integer coordinate, hence ``align_corners=False`` in ``grid_sample``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``x + flow(x)``: (B, C, H, W), (B, 2, H, W) -> (B, C, H, W)."""
    _, _, height, width = image.shape
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    x = xs + flow[:, 0]  # (B, H, W)
    y = ys + flow[:, 1]
    grid = torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def warp_bilateral(frame0: torch.Tensor, frame1: torch.Tensor, flow: torch.Tensor, pixel_scale: float):
    """Warp both frames to time t by bilateral flow (f_t→0, f_t→1) given in full-resolution pixels.

    ``pixel_scale`` is how many full-resolution pixels one pixel of ``frame0`` spans (2**level).
    """
    flow = flow / pixel_scale
    return backward_warp(frame0, flow[:, 0:2]), backward_warp(frame1, flow[:, 2:4])


def upsample_flow(flow: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Spatial ×2 (or to ``size``); values stay in full-resolution pixels, so no rescaling."""
    if size is None:
        size = (flow.shape[-2] * 2, flow.shape[-1] * 2)
    return F.interpolate(flow, size=size, mode="bilinear", align_corners=False)


def downsample_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor``×``factor`` blocks; values stay in full-resolution pixels."""
    return F.avg_pool2d(flow, factor) if factor > 1 else flow


class InputPadder:
    """Replicate-pads (B, C, H, W) so both sides divide by ``multiple``, and crops back."""

    def __init__(self, height: int, width: int, multiple: int):
        self.height, self.width = height, width
        pad_h = (-height) % multiple
        pad_w = (-width) % multiple
        self.padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)  # l, r, t, b

    def pad(self, tensor: torch.Tensor) -> torch.Tensor:
        if not any(self.padding):
            return tensor
        return F.pad(tensor, self.padding, mode="replicate")

    def unpad(self, tensor: torch.Tensor) -> torch.Tensor:
        left, _, top, _ = self.padding
        return tensor[..., top:top + self.height, left:left + self.width]
