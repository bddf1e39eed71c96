"""Development sets for large motion, kept apart from training, and the baselines scored on them.

    python -m hfdinterp.train.dev_sets real CLIP [CLIP ...] --out DEV/real-large  [--strides 2 4 6 8 12 16]
    python -m hfdinterp.train.dev_sets fast FILM --out DEV/real-fast [--first 1200 --last 11400 --every 240]
    python -m hfdinterp.train.dev_sets synthetic PHOTOS --out DEV/synthetic-large [--count 24 --size 448]
    python -m hfdinterp.train.dev_sets synthetic PHOTOS --out DEV/synthetic-textured --size 704 --max-motion 0.25 --min-texture 6e-4
    python -m hfdinterp.train.dev_sets baselines DEV [--lpips alexnet.ckpt] [--teacher]

``real``: triplets (i, i + k, i + 2k) from held-out clips (split into shots at scene cuts), the true
middle frame as ground truth, gaps 2k of ``--strides`` frames; each case also stores the teacher's
pseudo-ground-truth flow from the true middle frame (``flow.npy``, ``pseudo_flow.pseudo_flow``).
``fast``: real large motion at small gaps, from a long film held apart from training: every
``--every`` frames a window of ``--window`` frames is decoded (split at scene cuts), and for each gap
of ``--gaps`` the triplet whose motion between I0 and I1 (the teacher's, at half size) has the most
pixels moving ``FAST_MOTION`` px is kept, if at least ``--min-share`` of them do. At gaps of 2–4 frames
motion is close to linear, which two frames can predict; at the 8–16 of ``real`` on hand-held
footage much of it is not (``flow_error --linear``). Chosen by the reference's motion alone, never
by any model's score.
``synthetic``: triplets rendered with exact flow, layers moving up to 0.45 of the frame, from seeds
no training run uses; with ``--min-texture``, textured backgrounds only (``SyntheticConfig.min_texture``),
so that large motion can be seen and checked (on the flat skies of the plain set any flow fits),
from seeds of their own. Both write ``<case>/{i0, gt, i1}.png`` + ``flow.npy``, the layout ``hfdinterp
eval`` reads. ``baselines``: PSNR / SSIM (/ LPIPS) of FFmpeg's ``minterpolate`` (mci, obmc, as the
reference table) and of the plain average, on every set under DEV; with ``--teacher``, also RIFE 4.x's
own frame (the teacher, from I0 and I1), the two-frame method our users compare us with.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import torch

from ..io.images import read_image, to_integer, write_image
from ..io.triplets import find_cases
from ..scores import psnr, ssim
from .real import FootageTriplets, rgb_at_most, split_at_cuts
from .synthetic import SyntheticConfig, SyntheticTriplets, load_photos

DEV_SEED = 900_000_000  # synthetic dev triplets: far from every training seed
TEXTURED_DEV_SEED = 950_000_000  # the textured-background dev triplets: their own, also far from training's


def _write_case(folder: Path, image0, image_t, image1, flow: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in (("i0", image0), ("gt", image_t), ("i1", image1)):
        write_image(folder / f"{name}.png", image)
    np.save(folder / "flow.npy", flow.astype(np.float16))


def build_real(clips: list[str], out: Path, strides: list[int], per_stride: int = 3, long_side: int = 960) -> None:
    from .pseudo_flow import pseudo_flow
    from .teacher import load_teacher

    teacher = load_teacher()
    for clip in clips:
        frames = FootageTriplets._decode(Path(clip), long_side)
        for shot_index, shot in enumerate(split_at_cuts(frames)):
            for gap in strides:
                half = gap // 2
                starts = range(0, len(shot) - gap)
                picks = np.linspace(0, len(starts) - 1, per_stride).round().astype(int) if len(starts) else []
                for start in sorted(set(int(p) for p in picks)):
                    image0, image_t, image1 = shot[start], shot[start + half], shot[start + gap]
                    flow, errors = pseudo_flow(teacher, image0, image_t, image1, 0.5)
                    case = out / f"{Path(clip).stem}-s{shot_index}-gap{gap:02d}-f{start:03d}"
                    _write_case(case, *(f.astype(np.float32) / 255 for f in (image0, image_t, image1)), flow.numpy())
                    print(case.name, "warping error teacher / DIS / fused", " / ".join(f"{e:.2f}" for e in errors))


FAST_MOTION = (64.0, 128.0)  # ``fast``: the motion, px at the dev frames' size, that a triplet is chosen for


def _windows(video: Path, first: int, last: int, every: int, window: int, long_side: int):
    """Frames [k, k + window) for k = first, first + every, … below last, decoded once in one pass:
    (start, (window, H, W, 3) uint8) each, at ``long_side``."""
    frames: list[np.ndarray] = []
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= last:
                break
            offset = (index - first) % every if index >= first else window
            if offset < window:
                frames.append(rgb_at_most(frame, long_side))
                if offset == window - 1:
                    yield index - window + 1, np.stack(frames)
                    frames = []


def fast_share(teacher, image0: np.ndarray, image1: np.ndarray) -> float:
    """Share of pixels whose motion between two uint8 frames (the teacher's |f_τ→1 − f_τ→0| at τ = 0.5,
    estimated on the frames at half size) lies in ``FAST_MOTION``."""
    from .teacher import teacher_bilateral_flow

    tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    small = [torch.nn.functional.interpolate(tensor(a), scale_factor=0.5, mode="bilinear", align_corners=False,
                                             antialias=True) for a in (image0, image1)]
    flow = teacher_bilateral_flow(teacher, *small, torch.tensor([0.5]))[0] * 2
    motion = (flow[2:] - flow[:2]).norm(dim=0)
    return float(((motion >= FAST_MOTION[0]) & (motion < FAST_MOTION[1])).float().mean())


def build_fast(video: str, out: Path, first: int, last: int, every: int, window: int, gaps: list[int],
               min_share: float, long_side: int = 960, teacher=None) -> None:
    """``fast``: see the module's text; ``teacher`` (default: the pretrained one) gives the motion and the
    pseudo flow."""
    from .pseudo_flow import pseudo_flow
    from .teacher import load_teacher

    teacher = teacher if teacher is not None else load_teacher()
    for start, frames in _windows(Path(video), first, last, every, window, long_side):
        shots = split_at_cuts(frames)
        offsets = np.cumsum([0] + [len(shot) for shot in shots])
        for gap in gaps:
            candidates = [(fast_share(teacher, shot[i], shot[i + gap]), offset + i, shot, i)
                          for shot, offset in zip(shots, offsets) for i in range(0, len(shot) - gap, gap)]
            if not candidates:
                continue
            share, frame, shot, i = max(candidates, key=lambda c: c[0])
            if share < min_share:
                continue
            image0, image_t, image1 = shot[i], shot[i + gap // 2], shot[i + gap]
            flow, errors = pseudo_flow(teacher, image0, image_t, image1, 0.5)
            case = out / f"{Path(video).stem}-f{start + frame:05d}-gap{gap:02d}"
            _write_case(case, *(f.astype(np.float32) / 255 for f in (image0, image_t, image1)), flow.numpy())
            print(case.name, f"share moving {FAST_MOTION[0]:g}–{FAST_MOTION[1]:g} px {share:.3f}; warping error "
                  "teacher / DIS / fused", " / ".join(f"{e:.2f}" for e in errors), flush=True)


def build_synthetic(photos: str, out: Path, count: int, size: int, max_motion: float = 0.45,
                    min_texture: float = 0.0) -> None:
    config = SyntheticConfig(size=size, max_motion=max_motion, regimes=(0.0, 0.2), noise=0.01, min_texture=min_texture)
    data = SyntheticTriplets(load_photos(photos), config, seed=TEXTURED_DEV_SEED if min_texture else DEV_SEED)
    for index in range(count):
        item = data[index]
        while abs(float(item["time"]) - 0.5) > 1e-6:  # the eval sets are middle frames: keep τ = 0.5
            index += count
            item = data[index]
        as_image = lambda t: t.permute(1, 2, 0).numpy()  # noqa: E731
        _write_case(out / f"synthetic-{index:07d}", as_image(item["image0"]), as_image(item["image_t"]),
                    as_image(item["image1"]), item["flow"].numpy())


def minterpolate_middle(image0: np.ndarray, image1: np.ndarray) -> np.ndarray:
    """FFmpeg's minterpolate (mci, obmc) middle frame of two uint8 RGB frames."""
    with tempfile.TemporaryDirectory() as folder:
        source, result = Path(folder) / "pair.mkv", Path(folder) / "out.mkv"
        with av.open(str(source), "w") as container:
            stream = container.add_stream("ffv1", rate=Fraction(1))
            stream.width, stream.height, stream.pix_fmt = image0.shape[1], image0.shape[0], "bgr0"
            for image in (image0, image1, image1):  # with only two frames minterpolate writes nothing
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="bgr0")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(source), "-vf",
                        "minterpolate=fps=2:mi_mode=mci:mc_mode=obmc", "-c:v", "ffv1", str(result)], check=True)
        with av.open(str(result)) as container:
            frames = {float(f.time): f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    return frames[0.5]


def score_baselines(root: Path, lpips_weights: str | None = None, teacher=None) -> dict:
    """{set: {method: {psnr, ssim[, lpips]}, count}} of ``minterpolate`` and the plain average, and with
    ``teacher`` (``teacher.load_teacher``) of its own frame from I0 and I1 (RIFE 4.x, as its users get it)."""
    lpips = None
    if lpips_weights:
        from .perceptual import LPIPS
        lpips = LPIPS(lpips_weights).eval()
    results = {}
    for set_name, cases in find_cases(root).items():
        scores = {"minterpolate": [], "average": []} | ({"teacher": []} if teacher is not None else {})
        for case in cases:
            i0, gt, i1 = (to_integer(read_image(case / f"{n}.png").pixels[..., :3]) for n in ("i0", "gt", "i1"))
            predictions = {"minterpolate": minterpolate_middle(i0, i1),
                           "average": to_integer((i0.astype(np.float32) + i1) / 2 / 255)}
            if teacher is not None:
                from .teacher import teacher_interpolate

                as_batch = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
                frame = teacher_interpolate(teacher, as_batch(i0), as_batch(i1), torch.tensor([0.5]))
                predictions["teacher"] = to_integer(frame[0].permute(1, 2, 0).numpy())
            for method, prediction in predictions.items():
                score = {"psnr": psnr(prediction, gt), "ssim": ssim(prediction, gt)}
                if lpips is not None:
                    as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
                    with torch.no_grad():
                        score["lpips"] = float(lpips(as_tensor(prediction), as_tensor(gt)))
                scores[method].append(score)
        results[set_name] = {method: {key: float(np.mean([s[key] for s in values])) for key in values[0]}
                             for method, values in scores.items()}
        results[set_name]["count"] = len(cases)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    real = commands.add_parser("real")
    real.add_argument("clips", nargs="+")
    real.add_argument("--out", required=True)
    real.add_argument("--strides", type=int, nargs="+", default=[2, 4, 6, 8, 12, 16])
    real.add_argument("--per-stride", type=int, default=3)
    fast = commands.add_parser("fast")
    fast.add_argument("film")
    fast.add_argument("--out", required=True)
    fast.add_argument("--first", type=int, default=0, help="first frame looked at")
    fast.add_argument("--last", type=int, default=1 << 62, help="frames from here on are not looked at")
    fast.add_argument("--every", type=int, default=240, help="frames from one window's start to the next")
    fast.add_argument("--window", type=int, default=48, help="frames decoded per window")
    fast.add_argument("--gaps", type=int, nargs="+", default=[2, 4])
    fast.add_argument("--min-share", type=float, default=0.02,
                      help=f"least share of pixels moving {FAST_MOTION[0]:g}–{FAST_MOTION[1]:g} px for a triplet to be kept")
    synthetic = commands.add_parser("synthetic")
    synthetic.add_argument("photos")
    synthetic.add_argument("--out", required=True)
    synthetic.add_argument("--count", type=int, default=24)
    synthetic.add_argument("--size", type=int, default=448)
    synthetic.add_argument("--max-motion", type=float, default=0.45, help="largest motion, a fraction of --size")
    synthetic.add_argument("--min-texture", type=float, default=0.0, help="textured backgrounds only (0: any)")
    baselines = commands.add_parser("baselines")
    baselines.add_argument("root")
    baselines.add_argument("--lpips")
    baselines.add_argument("--teacher", action="store_true", help="also the teacher's own frame (RIFE 4.x)")
    args = parser.parse_args()
    if args.command == "real":
        build_real(args.clips, Path(args.out), args.strides, args.per_stride)
    elif args.command == "fast":
        build_fast(args.film, Path(args.out), args.first, args.last, args.every, args.window, args.gaps, args.min_share)
    elif args.command == "synthetic":
        build_synthetic(args.photos, Path(args.out), args.count, args.size, args.max_motion, args.min_texture)
    else:
        teacher = None
        if args.teacher:
            from .teacher import load_teacher
            teacher = load_teacher()
        print(json.dumps(score_baselines(Path(args.root), args.lpips, teacher), indent=1))


if __name__ == "__main__":
    main()
