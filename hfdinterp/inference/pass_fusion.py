"""Ours, beyond the paper: the flow of two passes combined pixel by pixel, by which one aligns the frames.

With the ``auto`` flow resolution, a pair whose motion probe finds large motion (flow_resolution.py)
has its flow sampled twice: at the chosen resolution r, where small motion keeps its detail, and at
r/2, where the denoiser's window reaches twice as far in full-resolution pixels. Neither is right
everywhere: a fast object on a slow background is found by the coarse pass and the background is
sharper in the fine one. Where the true bilateral flow moves both frames onto the same content at τ,

    w(I0, f_τ→0) ≈ w(I1, f_τ→1)

so at every pixel of the 1/4 level the pass whose flow disagrees less (the mean absolute difference
of the two warped frames at 1/4, averaged over a ``WINDOW`` square, as the teacher's fusion does
with the true middle frame) is taken; the choice is softened over 3×3 pixels so that the flow does
not jump between the passes from one pixel to the next, and carried to the 1/16 and 1/8 levels by
area. The test-time refinement then polishes the result as any other flow.

Measured (weights/README.md, "Two passes, fused"): on the textured large-motion dev set +0.10 dB over
taking the coarse pass for the whole pair; a margin in favour of the fine pass (the coarse one must
disagree 20 % less) gave that back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.warp import backward_warp

WINDOW = 5  # 1/4-level pixels (20 full-resolution pixels) over which a pass's disagreement is averaged
SCALE = 4  # full-resolution pixels per pixel of the 1/4 level, where the passes are compared


def disagreement(images0: torch.Tensor, images1: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w): |w(I0, f_τ→0) − w(I1, f_τ→1)| on the frames at 1/4 ((B, 3, H, W) in), averaged
    over the channels and over a ``WINDOW`` square, for a 1/4-level bilateral flow (B, 4, h, w)."""
    small0, small1 = (F.avg_pool2d(images.float(), SCALE) for images in (images0, images1))
    difference = (backward_warp(small0, flow[:, :2] / SCALE) - backward_warp(small1, flow[:, 2:] / SCALE)).abs()
    return F.avg_pool2d(difference.mean(1, keepdim=True), WINDOW, 1, WINDOW // 2, count_include_pad=False)


def fuse_passes(images0: torch.Tensor, images1: torch.Tensor, fine: list[torch.Tensor], coarse: list[torch.Tensor],
                eligible: torch.Tensor) -> list[torch.Tensor]:
    """The flows at 1/16, 1/8, 1/4 of two passes (full-resolution pixels, the full frames' levels)
    combined: for the pairs of the batch where ``eligible`` (B,) is true, the coarse pass wherever its
    1/4 flow disagrees less (``disagreement``); elsewhere, and for the other pairs, the fine pass."""
    coarse_better = disagreement(images0, images1, coarse[-1]) < disagreement(images0, images1, fine[-1])
    chosen = (coarse_better & eligible.view(-1, 1, 1, 1)).float()
    weight = F.avg_pool2d(chosen, 3, 1, 1, count_include_pad=False)  # (B, 1, h/4, w/4)
    fused = []
    for fine_level, coarse_level in zip(fine, coarse):
        level_weight = weight if fine_level.shape[-2:] == weight.shape[-2:] else \
            F.adaptive_avg_pool2d(weight, fine_level.shape[-2:])
        fused.append(level_weight * coarse_level + (1 - level_weight) * fine_level)
    return fused
