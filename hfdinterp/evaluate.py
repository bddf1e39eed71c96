"""``hfdinterp eval``: the model's middle frame of every triplet of a folder, scored per set
(PSNR and SSIM, and LPIPS when its weights are given)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .inference.interpolator import Interpolator
from .io.images import read_image, to_integer
from .io.triplets import find_cases, find_image
from .scores import psnr, ssim


def evaluate_folder(interpolator: Interpolator, root: str | Path, seed: int = 0,
                    on_case: Callable[[str, str, dict], None] | None = None,
                    lpips=None) -> dict[str, dict[str, float]]:
    """{set: {psnr, ssim, [lpips,] count}} averaged over cases; ``lpips`` is a ``perceptual.LPIPS``."""
    results: dict[str, dict[str, float]] = {}
    for set_name, cases in find_cases(Path(root)).items():
        scores = []
        for case in cases:
            i0, gt, i1 = (read_image(find_image(case, stem)).pixels[..., :3] for stem in ("i0", "gt", "i1"))
            prediction = to_integer(interpolator.interpolate(i0, i1, 0.5, seed))
            truth = to_integer(gt)
            score = {"psnr": psnr(prediction, truth), "ssim": ssim(prediction, truth)}
            if lpips is not None:
                as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
                with torch.no_grad():
                    score["lpips"] = float(lpips(as_tensor(prediction), as_tensor(truth)))
            scores.append(score)
            if on_case:
                on_case(set_name, case.name, score)
        results[set_name] = {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}
        results[set_name]["count"] = len(scores)
    return results
