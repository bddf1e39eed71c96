"""Synthetic triplets with exact bilateral flow, rendered on the fly from a folder of photos.

A moving background crop plus several foreground layers cut from other photos, each with its own
affine motion (translation, rotation, zoom, shear) whose parameters move linearly in time. Every
layer is rendered at τ = 0, t and 1 by inverse mapping, so for a pixel x of the frame at t that
shows layer L at layer coordinate u = A_L(t)⁻¹ x, the exact flows are

    f_t→0(x) = A_L(0) u − x,     f_t→1(x) = A_L(1) u − x

and warping I0 / I1 by them reproduces I_t wherever that point is not occluded at 0 / 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .texture import smaller_eigenvalue

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
TEXTURE_PROBE = 64  # min_texture is judged on a crop seen at about this many pixels a side


def load_photos(root: str | Path, long_side: int = 768) -> list[torch.Tensor]:
    """Every photo under ``root`` as a (3, h, w) uint8 tensor, scaled so its long side is ``long_side``."""
    photos = []
    for path in sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES):
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
        scale = long_side / max(frame.width, frame.height)
        frame = frame.reformat(width=max(2, round(frame.width * scale)) // 2 * 2,
                               height=max(2, round(frame.height * scale)) // 2 * 2, format="rgb24")
        photos.append(torch.from_numpy(frame.to_ndarray()).permute(2, 0, 1).contiguous())
    if len(photos) < 2:
        raise ValueError(f"{root}: need at least two photos, found {len(photos)}")
    return photos


@dataclass(frozen=True)
class SyntheticConfig:
    size: int = 128  # square crop side
    layers: tuple[int, int] = (1, 5)  # foreground layers, inclusive range
    max_motion: float = 0.3  # largest translation between I0 and I1, as a fraction of ``size``
    noise: float = 0.02  # largest Gaussian noise std
    brightness: float = 0.05  # largest per-frame gain change
    blur: float = 0.2  # share of triplets softened by a camera blur (the same on all three frames)
    # A layer's motion is small (< 4 px) with probability regimes[0], medium (4–20 px) up to regimes[1],
    # else large (20 px up to max_motion · size).
    regimes: tuple[float, float] = (0.3, 0.7)
    # Ours: background crops whose texture (the mean structure-tensor smaller eigenvalue, texture.py,
    # of the crop seen at TEXTURE_PROBE² pixels) is below this are drawn again, up to ``texture_tries``
    # times (then the most textured one). 0: any crop. Debian's wallpapers are mostly sky and smooth
    # gradients: at 0, 8 % of the pixels that move ≥ 64 px in the large-motion mix had observable
    # motion (flow_error.trusted_pixels); 58 % of crops fall below 6e-4.
    min_texture: float = 0.0
    texture_tries: int = 8


def _affine(params: torch.Tensor, center: float) -> torch.Tensor:
    """3×3 matrices from (tx, ty, angle, log_zoom, shear), each row of params one time."""
    tx, ty, angle, log_zoom, shear = params.unbind(-1)
    zoom = log_zoom.exp()
    cos, sin = angle.cos(), angle.sin()
    a = torch.stack((zoom * cos, zoom * (cos * shear - sin)), -1)
    b = torch.stack((zoom * sin, zoom * (sin * shear + cos)), -1)
    linear = torch.stack((a, b), -2)  # (T, 2, 2): rotation · zoom · shear
    offset = torch.stack((tx, ty), -1) + center - (linear @ torch.full((2,), center)).squeeze(-1)
    matrix = torch.zeros(params.shape[0], 3, 3)
    matrix[:, :2, :2] = linear
    matrix[:, :2, 2] = offset
    matrix[:, 2, 2] = 1
    return matrix


def _sample(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of (C, h, w) at pixel positions (H, W, 2) -> (C, H, W), border padding."""
    h, w = image.shape[-2:]
    grid = torch.stack(((2 * points[..., 0] + 1) / w - 1, (2 * points[..., 1] + 1) / h - 1), -1)
    return F.grid_sample(image[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0]


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, round(2 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    horizontal = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(horizontal, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


class SyntheticTriplets(Dataset):
    """Item ``i`` is the same triplet every time (seeded by ``seed + i``), so runs resume exactly."""

    def __init__(self, photos: list[torch.Tensor], config: SyntheticConfig = SyntheticConfig(),
                 length: int = 1_000_000, seed: int = 0):
        self.photos, self.config, self.length, self.seed = photos, config, length, seed

    def __len__(self) -> int:
        return self.length

    def _texture(self, rng: torch.Generator, size: int, textured: bool = True) -> torch.Tensor:
        """A random crop of a random photo, at a random scale, as (3, size, size) float; ``textured``
        with ``min_texture``: the first of up to ``texture_tries`` crops with that much texture seen at
        ``TEXTURE_PROBE``² (a strided view, cheap to look at), else the most textured one."""
        draws = max(1, self.config.texture_tries) if textured and self.config.min_texture > 0 else 1
        best, best_texture = None, -1.0
        for _ in range(draws):
            photo, y, x, side = self._any_region(rng)
            if draws == 1:
                break
            step = max(1, side // TEXTURE_PROBE)
            probe = photo[:, y:y + side:step, x:x + side:step].float()[None] / 255
            texture = float(smaller_eigenvalue(probe, window=5).mean())
            if texture >= self.config.min_texture:
                break
            if texture > best_texture:
                best, best_texture = (photo, y, x, side), texture
        else:
            photo, y, x, side = best
        crop = photo[:, y:y + side, x:x + side].float()[None] / 255
        return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]

    def _any_region(self, rng: torch.Generator) -> tuple[torch.Tensor, int, int, int]:
        """A random photo and a random square of it: (photo, top, left, side)."""
        photo = self.photos[int(torch.randint(len(self.photos), (1,), generator=rng))]
        h, w = photo.shape[-2:]
        side = int(min(h, w) * (0.25 + 0.75 * float(torch.rand(1, generator=rng))))
        side = max(side, 8)
        y = int(torch.randint(h - side + 1, (1,), generator=rng))
        x = int(torch.randint(w - side + 1, (1,), generator=rng))
        return photo, y, x, side

    def _motion(self, rng: torch.Generator, background: bool) -> torch.Tensor:
        """(tx, ty, angle, log_zoom, shear) at τ = 0 and τ = 1: (2, 5)."""
        c = self.config
        u = lambda: float(torch.rand(1, generator=rng))  # noqa: E731
        regime = u()
        small, medium = c.regimes
        magnitude = (4 * u() if regime < small else 4 + 16 * u() if regime < medium
                     else 20 + (c.max_motion * c.size - 20) * u())
        direction = 2 * math.pi * u()
        shift = torch.tensor([math.cos(direction), math.sin(direction)]) * magnitude
        start = torch.zeros(5)
        start[:2] = (torch.rand(2, generator=rng) - 0.5) * (0.2 if background else 0.8) * c.size
        start[2] = (u() - 0.5) * (0.2 if background else 1.5)
        start[3] = (u() - 0.5) * 0.4
        start[4] = (u() - 0.5) * (0.1 if background else 0.4)
        change = torch.zeros(5)
        change[:2] = shift
        if u() < 0.5:
            change[2] = (u() - 0.5) * (0.1 if background else 0.5)
            change[3] = (u() - 0.5) * (0.1 if background else 0.3)
            change[4] = (u() - 0.5) * 0.1
        return torch.stack((start - change / 2, start + change / 2))

    def _blob(self, rng: torch.Generator, size: int) -> torch.Tensor:
        """A soft-edged random star-shaped mask in a canvas of ``2 * size``: (1, 2s, 2s)."""
        n = 2 * size
        ys, xs = torch.meshgrid(torch.arange(n) - n / 2 + 0.5, torch.arange(n) - n / 2 + 0.5, indexing="ij")
        radius0 = size * (0.12 + 0.3 * float(torch.rand(1, generator=rng)))
        phi = torch.atan2(ys, xs)
        stretch = 0.5 + float(torch.rand(1, generator=rng))
        radius = radius0 * torch.ones_like(phi)
        for k in range(1, 5):
            amp, phase = torch.rand(2, generator=rng)
            radius = radius * (1 + 0.25 * float(amp) / k * torch.sin(k * phi + 6.28 * float(phase)))
        distance = torch.sqrt((xs * stretch) ** 2 + (ys / stretch) ** 2)
        return torch.sigmoid((radius - distance) / 0.7)[None]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c = self.config
        rng = torch.Generator().manual_seed(self.seed + index)
        s = c.size
        t = 0.5 if float(torch.rand(1, generator=rng)) < 0.3 else float(0.05 + 0.9 * torch.rand(1, generator=rng))
        times = torch.tensor([0.0, t, 1.0])
        ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
        pixels = torch.stack((xs, ys, torch.ones_like(xs)), -1)  # (s, s, 3) homogeneous

        count = int(torch.randint(c.layers[0], c.layers[1] + 1, (1,), generator=rng))
        frames = torch.zeros(3, 3, s, s)
        flow = torch.zeros(4, s, s)
        for layer in range(count + 1):
            background = layer == 0
            # Layer coordinates are texture pixels minus s/2. Only the background, which fills the frame
            # (and pans up to max_motion), must have texture: drawing again is not free.
            texture = self._texture(rng, 2 * s, textured=background)
            mask = torch.ones(1, 2 * s, 2 * s) if background else self._blob(rng, s)
            ends = self._motion(rng, background)
            params = ends[0] + times[:, None] * (ends[1] - ends[0])  # (3, 5): linear in time
            matrices = _affine(params, s / 2)  # layer (centred canvas) -> image, per time
            inverse = torch.linalg.inv(matrices)
            for i in range(3):
                u = (pixels @ inverse[i].T)[..., :2]  # (s, s, 2) layer coordinate of each pixel
                point = u + s / 2  # texture pixel
                colour, alpha = _sample(texture, point), _sample(mask, point)
                frames[i] = alpha * colour + (1 - alpha) * frames[i]
                if i == 1:
                    u_h = torch.cat((u, torch.ones_like(u[..., :1])), -1)
                    to0 = (u_h @ matrices[0].T)[..., :2] - pixels[..., :2]
                    to1 = (u_h @ matrices[2].T)[..., :2] - pixels[..., :2]
                    visible = alpha > 0.5
                    flow = torch.where(visible, torch.cat((to0, to1), -1).permute(2, 0, 1), flow)

        if float(torch.rand(1, generator=rng)) < c.blur:  # defocus: blur all three alike, flow stays exact
            sigma = 0.5 + float(torch.rand(1, generator=rng))
            frames = _gaussian_blur(frames, sigma)
        clean = frames.clone()
        gains = 1 + (torch.rand(3, 1, 1, 1, generator=rng) - 0.5) * 2 * c.brightness
        noise_std = float(torch.rand(1, generator=rng)) * c.noise
        frames = frames * gains + torch.randn(frames.shape, generator=rng) * noise_std
        return {"image0": frames[0].clamp(0, 1), "image_t": frames[1].clamp(0, 1), "image1": frames[2].clamp(0, 1),
                "flow": flow, "time": torch.tensor(t), "clean": clean}
