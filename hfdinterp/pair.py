"""``hfdinterp pair``: the frame (or frames) between two images, written atomically."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import limits
from .errors import HFDError
from .io.flowviz import bilateral_flow_picture
from .io.images import ENCODERS, Image, read_image, write_image
from .inference.interpolator import Interpolator
from .model.warp import carry_alpha


@dataclass
class PairRequest:
    first: Path
    second: Path
    output: Path | None = None
    time: float | None = None  # one frame at this time
    count: int = 1  # or this many evenly spaced frames
    seed: int = 0
    overwrite: bool = False
    save_flow: bool = False
    keep_alpha: bool = True


def frame_times(time: float | None, count: int) -> list[float]:
    """``--time t`` gives [t]; ``--num N`` gives N evenly spaced times strictly between 0 and 1."""
    if time is not None and count != 1:
        raise HFDError("use either --time or --num, not both")
    if time is not None:
        if not 0.0 < time < 1.0:
            raise HFDError(f"--time must lie strictly between 0 and 1, got {time}")
        return [time]
    if not 1 <= count <= limits.MAX_PAIR_FRAMES:
        raise HFDError(f"--num must lie between 1 and {limits.MAX_PAIR_FRAMES}, got {count}")
    return [k / (count + 1) for k in range(1, count + 1)]


def output_paths(request: PairRequest, times: list[float]) -> list[Path]:
    if request.output is not None:
        out = request.output
        if len(times) == 1:
            return [out]
        return [out.with_name(f"{out.stem}_{k:02d}{out.suffix}") for k in range(1, len(times) + 1)]
    suffix = request.first.suffix.lower() if request.first.suffix.lower() in ENCODERS else ".png"
    base = f"{request.first.stem}-{request.second.stem}"
    return [request.first.with_name(f"{base}-t{t:.3f}{suffix}") for t in times]


def _check_outputs(request: PairRequest, paths: list[Path]) -> None:
    inputs = {request.first.resolve(), request.second.resolve()}
    for path in paths:
        if path.suffix.lower() not in ENCODERS:
            raise HFDError(f"{path}: unknown image type '{path.suffix}'; use {', '.join(sorted(ENCODERS))}")
        if path.resolve() in inputs:
            raise HFDError(f"{path}: the output would overwrite an input")
        if path.is_dir():
            raise HFDError(f"{path}: is a directory")
        if path.exists() and not request.overwrite:
            raise HFDError(f"{path}: exists already (use --overwrite to replace it)")
        if not path.parent.is_dir():
            raise HFDError(f"{path.parent}: output folder does not exist")


def _alpha(image: Image) -> np.ndarray:
    return image.pixels[..., 3] if image.has_alpha else np.ones(image.pixels.shape[:2], np.float32)


def interpolate_pair(interpolator: Interpolator | Callable[[], Interpolator], request: PairRequest,
                     on_warning: Callable[[str], None] = warnings.warn) -> list[Path]:
    """Read, check, interpolate and write; returns the written paths (flow pictures last).

    ``interpolator`` may be a loader, called only once the inputs and outputs have been checked.
    """
    if not 0 <= request.seed <= limits.MAX_SEED:
        raise HFDError(f"--seed must lie between 0 and {limits.MAX_SEED}, got {request.seed}")
    times = frame_times(request.time, request.count)
    first, second = read_image(request.first), read_image(request.second)
    if first.size != second.size:
        raise HFDError(f"the images differ in size: {request.first} is {first.size[0]}×{first.size[1]}, "
                       f"{request.second} is {second.size[0]}×{second.size[1]}")
    paths = output_paths(request, times)
    flow_paths = [p.with_name(f"{p.stem}-flow.png") for p in paths] if request.save_flow else []
    _check_outputs(request, paths + flow_paths)

    with_alpha = first.has_alpha or second.has_alpha
    if with_alpha and (not request.keep_alpha or paths[0].suffix.lower() in {".jpg", ".jpeg"}):
        on_warning("the alpha channel is dropped" + ("" if not request.keep_alpha else " (JPEG has none)"))
        with_alpha = False
    bit_depth = 16 if max(first.bit_depth, second.bit_depth) > 8 and paths[0].suffix.lower() == ".png" else 8

    if not isinstance(interpolator, Interpolator):
        interpolator = interpolator()
    written = []
    for time, path, flow_path in zip(times, paths, flow_paths or [None] * len(paths)):
        out = interpolator.interpolate(first.pixels[..., :3], second.pixels[..., :3], time, request.seed,
                                       return_all=True)
        pixels = out["image"]
        if with_alpha:
            pixels = np.concatenate((pixels, _interpolate_alpha(first, second, out)[..., None]), axis=2)
        write_image(path, pixels, bit_depth)
        written.append(path)
        if flow_path is not None:
            write_image(flow_path, bilateral_flow_picture(out["flow"]))
            written.append(flow_path)
    return written


def _interpolate_alpha(first: Image, second: Image, out: dict) -> np.ndarray:
    """Alpha moves with the colour (see ``carry_alpha``)."""
    alpha0, alpha1 = (torch.from_numpy(_alpha(image))[None, None] for image in (first, second))
    alpha = carry_alpha(alpha0, alpha1, torch.from_numpy(out["flow"])[None], torch.from_numpy(out["mask"])[None])
    return alpha[0, 0].numpy()
