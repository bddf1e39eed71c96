"""Ours, beyond the paper: the flow pass on downscaled frames, for large frames and large motion.

The hierarchy sees motion in its own pixels: at 1/16 the denoiser's ±4 correlation window reaches
±64 px, and the shipped weights find little beyond ~32 px (weights/README.md, EPE by motion size).
Sampling the flow on the frames downscaled by ``resolution`` (RIFE's ``--scale``) shrinks the motion
with them, and the diffusion costs ``resolution²`` as much. The encoder still runs on the full
frames for the synthesizer, which receives the flow upsampled to its own 1/16, 1/8 and 1/4 levels;
the test-time refinement then polishes the 1/4 flow against the full-resolution frames.

    full frames ──encode──────────────────────────────► synthesizer ─► Ĩ_τ
         └─ downscale ×r ─ encode ─ diffusion ─ flow/r ─┘ (1/16, 1/8, 1/4 of the full frames)

With ``auto`` (the default) r is 1 or 0.5 by frame size, and a motion probe runs first: the
coarsest level of the pass at r/2 (two denoiser calls on the smallest maps, 3 % of a pair). A pair
whose probe shows large motion (``motion_is_large``) gets the whole pass at r/2 and skips the pass
at r; any other pair is sampled at r exactly as without the probe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import HFDError
from ..model.levels import LEVELS
from ..model.warp import InputPadder

# Frames of at least this many pixels (widescreen 480p, 854×480, and up) have their flow sampled at half
# resolution by default. Measured (weights/README.md, "Flow resolution"): half resolution gains on
# real-large (960×506) and sintel (1024×436) and loses on middlebury (640×480) and UCF101 (256×256).
AUTO_HALF_FROM = 854 * 480
LOWEST_RESOLUTION = 0.25  # there a 480p frame's coarsest level (1/16) is already under 8 feature pixels tall


# The motion probe of ``auto`` (ours): a pair on which more than PROBE_SHARE of the pixels of the
# probe's coarsest level move more than PROBE_MOTION pixels of the chosen flow pass (half the coarsest
# level's ±64 px reach there, past which the shipped weights lose the motion: weights/README.md, EPE
# by motion size) is sampled at half the resolution. Measured: on the eval sets and real-large no
# pixel passes PROBE_MOTION; 6 of 16 triplets of each synthetic large-motion dev set pass the share.
PROBE_MOTION = 32.0
PROBE_SHARE = 0.1


def auto_resolution(height: int, width: int) -> float:
    """The default flow resolution for frames of this size: 1 (the paper) or 0.5 for large frames."""
    return 0.5 if height * width >= AUTO_HALF_FROM else 1.0


def small_padder(size: tuple[int, int], resolution: float, multiple: int) -> InputPadder:
    """The padding of frames of ``size`` once scaled by ``resolution``."""
    height, width = (max(1, round(side * resolution)) for side in size)
    return InputPadder(height, width, multiple)


def downscaled(images: torch.Tensor, resolution: float, multiple: int) -> torch.Tensor:
    """Frames (B, 3, H, W) scaled by ``resolution`` (antialiased) and padded to ``multiple``."""
    padder = small_padder(images.shape[-2:], resolution, multiple)
    small = F.interpolate(images, size=(padder.height, padder.width), mode="bilinear", align_corners=False,
                          antialias=True)
    return padder.pad(small)


def full_resolution_flows(flow: torch.Tensor, padder: InputPadder, size: tuple[int, int]) -> list[torch.Tensor]:
    """The finest flow sampled on downscaled frames (B, 4, h/4, w/4 of the padded small frames) ->
    the synthesizer's flows at 1/16, 1/8 and 1/4 of frames of ``size`` (float32, their pixels)."""
    height, width = size
    finest = LEVELS.scale(LEVELS.count - 1)  # full-resolution pixels per pixel of the finest level: 4
    small = padder.unpad(F.interpolate(flow.float(), scale_factor=finest, mode="bilinear", align_corners=False))
    gain = torch.tensor([width / padder.width, height / padder.height] * 2, device=flow.device).view(1, 4, 1, 1)
    return [F.interpolate(small, size=(height // factor, width // factor), mode="bilinear", align_corners=False,
                          antialias=True) * gain for factor in LEVELS.level_scales]


def parse_flow_resolution(value: str | float | None) -> float | None:
    """"auto" (or None) -> None; a number in [LOWEST_RESOLUTION, 1] -> itself; anything else: HFDError."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        resolution = float(value)
    except ValueError:
        raise HFDError(f"--flow-resolution must be auto or a number, got {value!r}") from None
    if not LOWEST_RESOLUTION <= resolution <= 1:  # also refuses NaN
        raise HFDError(f"--flow-resolution must lie from {LOWEST_RESOLUTION} to 1, got {value}")
    return resolution


def motion_is_large(flow: torch.Tensor, scale: float) -> torch.Tensor:
    """(B,) bool: whether a bilateral flow (B, 4, h, w) moves more than ``PROBE_SHARE`` of its pixels
    by more than ``PROBE_MOTION`` pixels of the chosen flow pass; ``scale``: pixels of that pass per
    pixel of ``flow`` (its resolution for a full-resolution flow, 2 for the probe's own)."""
    motion = (flow[:, 2:] - flow[:, :2]).float().norm(dim=1) * scale  # |f_τ→1 − f_τ→0|
    return (motion > PROBE_MOTION).float().mean((1, 2)) > PROBE_SHARE


def content(flow: torch.Tensor, padder: InputPadder) -> torch.Tensor:
    """The part of a flow level (B, 4, h, w) on the grid of frames padded by ``padder`` that covers the frames."""
    factor = (padder.height + padder.padding[2] + padder.padding[3]) // flow.shape[-2]
    left, _, top, _ = padder.padding
    return flow[..., top // factor:(top + padder.height) // factor or 1, left // factor:(left + padder.width) // factor or 1]
