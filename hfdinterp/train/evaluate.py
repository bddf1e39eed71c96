"""Scoring interpolated frames: PSNR on uint8 RGB and SSIM as scikit-image computes it.

``evaluate_folder`` walks ``<root>/<case>/{i0, gt, i1}.<ext>`` (one level of sets is allowed too:
``<root>/<set>/<case>/…``), predicts the middle frame and reports the mean per set.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..images import read_image
from ..interpolate import Interpolator


def quantize(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """On uint8 RGB, as the reference table was scored."""
    mse = np.mean((prediction.astype(np.float64) - target.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """scikit-image's ``structural_similarity(channel_axis=2, data_range=255)``: 7×7 uniform window,
    sample covariance, K1 = 0.01, K2 = 0.03, mean over the valid region and the channels."""
    x = torch.from_numpy(prediction.astype(np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(target.astype(np.float64)).permute(2, 0, 1)[None]
    window, n = 7, 49
    mean = lambda a: F.avg_pool2d(a, window, stride=1)  # noqa: E731  (valid region == skimage's crop)
    ux, uy = mean(x), mean(y)
    correction = n / (n - 1)
    vx = correction * (mean(x * x) - ux * ux)
    vy = correction * (mean(y * y) - uy * uy)
    vxy = correction * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def _find(case: Path, stem: str) -> Path | None:
    for suffix in (".png", ".jpg", ".jpeg", ".webp"):
        if (case / f"{stem}{suffix}").is_file():
            return case / f"{stem}{suffix}"
    return None


def find_cases(root: Path) -> dict[str, list[Path]]:
    """{set name: [case folders]} for every folder holding i0, gt and i1."""
    cases: dict[str, list[Path]] = defaultdict(list)
    for i0 in sorted(root.rglob("i0.*")):
        case = i0.parent
        if _find(case, "gt") and _find(case, "i1"):
            relative = case.relative_to(root).parts
            cases[relative[0] if len(relative) > 1 else root.name].append(case)
    return dict(cases)


def evaluate_folder(interpolator: Interpolator, root: str | Path, seed: int = 0,
                    on_case: Callable[[str, str, dict], None] | None = None,
                    lpips=None) -> dict[str, dict[str, float]]:
    """{set: {psnr, ssim, [lpips,] count}} averaged over cases; ``lpips`` is a ``perceptual.LPIPS``."""
    results: dict[str, dict[str, float]] = {}
    for set_name, cases in find_cases(Path(root)).items():
        scores = []
        for case in cases:
            i0, gt, i1 = (read_image(_find(case, stem)).pixels[..., :3] for stem in ("i0", "gt", "i1"))
            prediction = quantize(interpolator.interpolate(i0, i1, 0.5, seed))
            truth = quantize(gt)
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
