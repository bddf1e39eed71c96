"""Triplets from real footage: video files or frame folders, and Vimeo-90K in its published layout.

Real footage has no true flow, so the pseudo ground truth comes from OpenCV's DIS estimator, run
from the real frame at t towards I0 and towards I1 (backward flows, as the model predicts them).
Footage is split into shots at scene cuts (the video command's detector), so no triplet straddles
a cut: across a cut there is no motion to learn, only a flow estimator's guess.
OpenCV is a training-only dependency (``pip install hfdinterp[train]``).
"""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from ..io.images import read_image
from ..io.scenes import DEFAULT_THRESHOLD, cut_scores, thumbnail

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v"}
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def dis_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Flow f with source(x) ≈ target(x + f(x)), from OpenCV DIS; uint8 RGB in, (2, H, W) out."""
    try:
        import cv2
    except ImportError:
        raise ImportError("real-footage training needs OpenCV: pip install 'hfdinterp[train]'") from None
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (source, target)]
    estimator = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return estimator.calc(grey[0], grey[1], None).transpose(2, 0, 1).copy()


def _to_item(frames: list[np.ndarray], time: float, crop: int, rng: random.Random) -> dict[str, torch.Tensor]:
    image0, image_t, image1 = frames
    height, width = image0.shape[:2]
    size = min(crop, height, width)
    y, x = rng.randint(0, height - size), rng.randint(0, width - size)
    image0, image_t, image1 = (np.ascontiguousarray(f[y:y + size, x:x + size]) for f in (image0, image_t, image1))
    if rng.random() < 0.5:  # play it backwards: the same motion, reversed time
        image0, image1, time = image1, image0, 1 - time
    flow = np.concatenate((dis_flow(image_t, image0), dis_flow(image_t, image1)))
    tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255  # noqa: E731
    return {"image0": tensor(image0), "image_t": tensor(image_t), "image1": tensor(image1),
            "flow": torch.from_numpy(flow).float(), "time": torch.tensor(float(time))}


def split_at_cuts(frames: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> list[np.ndarray]:
    """(N, H, W, 3) uint8 -> the shots between scene cuts, in order."""
    if len(frames) < 2 or threshold <= 0:
        return [frames]
    thumbs = torch.cat([thumbnail(torch.from_numpy(frames[i:i + 64]).permute(0, 3, 1, 2).float() / 255)
                        for i in range(0, len(frames), 64)])
    cuts = np.flatnonzero(cut_scores(thumbs) > threshold) + 1  # index of each shot's first frame
    return [shot for shot in np.split(frames, cuts) if len(shot)]


def rgb_at_most(frame: av.VideoFrame, long_side: int) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB, shrunk so that its long side is at most ``long_side`` (even sides)."""
    scale = min(1.0, long_side / max(frame.width, frame.height))
    return frame.reformat(width=int(frame.width * scale) // 2 * 2, height=int(frame.height * scale) // 2 * 2,
                          format="rgb24").to_ndarray()


class FootageTriplets(Dataset):
    """(I0, I_t, I1) from videos or folders of frames under ``root``: frames i, i + a, i + a + b with
    strides up to ``max_stride``, t = a / (a + b), all three inside one shot (clips are split at scene
    cuts; ``scene_threshold`` 0 keeps them whole). Each clip is equally likely, then any frame in it.
    Videos are decoded once into memory at ``long_side``."""

    def __init__(self, root: str | Path, crop: int = 128, max_stride: int = 2, long_side: int = 480,
                 length: int = 1_000_000, seed: int = 0, scene_threshold: float = DEFAULT_THRESHOLD):
        self.crop, self.max_stride, self.length, self.seed = crop, max_stride, length, seed
        clips: list[np.ndarray] = []
        root = Path(root)
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in VIDEO_SUFFIXES:
                clips.append(self._decode(path, long_side))
        folders = sorted({p.parent for p in root.rglob("*") if p.suffix.lower() in FRAME_SUFFIXES})
        for folder in folders:
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
            if len(files) >= 3:
                clips.append(np.stack([(read_image(f).pixels[..., :3] * 255).round().astype(np.uint8)
                                            for f in files]))
        shots_per_clip = ([s for s in split_at_cuts(clip, scene_threshold) if len(s) >= 3] for clip in clips)
        self.shots: list[list[np.ndarray]] = [shots for shots in shots_per_clip if shots]
        if not self.shots:
            raise ValueError(f"{root}: no videos or frame folders with a shot of at least three frames")

    @staticmethod
    def _decode(path: Path, long_side: int) -> np.ndarray:
        with av.open(str(path)) as container:
            frames = [rgb_at_most(frame, long_side) for frame in container.decode(video=0)]
        return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = random.Random(self.seed * 7919 + index)
        shots = self.shots[rng.randrange(len(self.shots))]
        clip = rng.choices(shots, weights=[len(shot) for shot in shots])[0]
        a, b = rng.randint(1, self.max_stride), rng.randint(1, self.max_stride)
        a, b = (a, b) if len(clip) > a + b else (1, 1)
        start = rng.randrange(len(clip) - a - b)
        return _to_item([clip[start], clip[start + a], clip[start + a + b]], a / (a + b), self.crop, rng)


class Vimeo90K(Dataset):
    """Vimeo-90K triplets (``tri_trainlist.txt``, im1–im3) or septuplets (``sep_trainlist.txt``,
    im1–im7, any of their in-between times), as published."""

    def __init__(self, root: str | Path, crop: int = 128, seed: int = 0):
        self.root, self.crop, self.seed = Path(root), crop, seed
        for listing, frames in (("tri_trainlist.txt", 3), ("sep_trainlist.txt", 7)):
            if (self.root / listing).is_file():
                self.frames = frames
                names = (self.root / listing).read_text().split()
                break
        else:
            raise ValueError(f"{root}: neither tri_trainlist.txt nor sep_trainlist.txt found")
        self.sequences = [self.root / "sequences" / name for name in names]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = random.Random(self.seed * 7919 + index)
        folder = self.sequences[index]
        if self.frames == 3:
            picks, time = (1, 2, 3), 0.5
        else:
            first = rng.randint(1, 5)
            last = rng.randint(first + 2, 7)
            middle = rng.randint(first + 1, last - 1)
            picks, time = (first, middle, last), (middle - first) / (last - first)
        frames = [(read_image(folder / f"im{k}.png").pixels[..., :3] * 255).round().astype(np.uint8) for k in picks]
        return _to_item(frames, time, self.crop, rng)
