"""Benchmarks that compare in one run: a video beside FFmpeg's minterpolate, or one pair beside RIFE.

    python -m hfdinterp.benchmark CLIP [--weights W] [--frames N] [--ensemble] [--no-refine] [--paper-noise] [--memory-check]
    python -m hfdinterp.benchmark --pair 960x540 [--repeats N] [--images A B] [--rife-weights PKL] [--threads N]

**Per pair** (``--pair WxH``): one frame between two images of that size (a generated textured pair
moving by a few pixels, or ``--images A B`` resized to it), in this process, one warm-up call per
method and then the median of ``--repeats`` calls, the methods taking turns so that a busy machine
slows them alike. When a RIFE 4.x IFNet can be loaded (``hfdinterp.train.teacher``, from
``--rife-weights`` or the ``flownet.pkl`` of an installed RIFE package) it runs in the same loop and
the ratio to it is printed; otherwise one line says why the row is missing.

**Video** (a CLIP):
Prints, for each method: output frames/s, wall time and peak memory (RSS of the process doing the
work); and the PSNR of re-created dropped frames: the clip's even frames are interpolated 2× and the
new frames are compared with the odd frames that were dropped. ``--ensemble`` adds a row for
hfdinterp with ``--ensemble``; ``--no-refine`` one without test-time flow refinement; ``--full-flow``
one with the flow sampled on the full frames (``--flow-resolution 1``); ``--paper-noise`` one with the
paper's sampling noise (``--noise 1``).
``--memory-check`` also runs hfdinterp on a short and a 10× longer generated clip and prints both
peaks (memory must stay flat).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F

from hfdinterp.io.source import BT601, RANGE_LIMITED
from hfdinterp.scores import psnr

# Runs one command in a child Python and reports its wall time and peak RSS (KiB on Linux).
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.time()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.time() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "wall": wall, "peak_kib": peak, "err": done.stderr[-2000:]}))
"""


def measure(command: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"]:
        raise SystemExit(f"failed: {' '.join(command)}\n{result['err']}")
    return result


MIN_CLIP_FRAMES = 4  # two kept frames and the one dropped between them, at the least


def decode(path: Path, limit: int | None = None) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise SystemExit(f"{path}: no video stream")
        stream = container.streams.video[0]
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit and len(frames) >= limit:
                break
        return frames, Fraction(stream.average_rate)


def write_frames(path: Path, frames: list[np.ndarray], rate: Fraction) -> None:
    """Lossless FFV1, converted with BT.601 and tagged so. Untagged, a reader guesses the matrix from
    the frame size (hfdinterp and players: BT.709 from 720 lines; PyAV's ``decode`` above: BT.601), and
    the re-created frames were scored in another matrix than the truth: at 720p every kept frame of
    hfdinterp's output then differed by 2.1 grey levels on average, 4 dB of PSNR."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        stream.codec_context.colorspace, stream.codec_context.color_range = BT601, RANGE_LIMITED
        for frame in frames:
            rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
            container.mux(stream.encode(rgb.reformat(format="yuv444p", dst_colorspace=BT601,
                                                     dst_color_range=RANGE_LIMITED)))
        container.mux(stream.encode(None))


def hfdinterp_command(source: Path, target: Path, weights: str | None, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "hfdinterp", "video", str(source), str(target), "--overwrite", "-q",
               "--scene-threshold", "0"] + extra
    return command + (["--weights", weights] if weights else [])


def minterpolate_command(source: Path, target: Path, rate: Fraction, codec: list[str]) -> list[str]:
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-vf",
            f"minterpolate=fps={rate.numerator}/{rate.denominator}:mi_mode=mci:mc_mode=obmc", *codec, str(target)]


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"{text}: too small")
    return width, height


def synthetic_pair(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and the same texture moved 6 px right and 3 px down, (H, W, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, height // 16 + 2, width // 16 + 2), dtype=np.float32))
    fine = torch.from_numpy(rng.random((1, 3, height // 4 + 2, width // 4 + 2), dtype=np.float32))
    texture = sum(F.interpolate(level, size=(height + 8, width + 8), mode="bicubic", align_corners=False) * weight
                  for level, weight in ((coarse, 0.7), (fine, 0.3)))
    texture = texture.clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(texture[3:3 + height, 6:6 + width]), np.ascontiguousarray(texture[:height, :width])


def load_rife(path: Path | None):
    """(teacher, None) or (None, why not): the RIFE row is optional and never a dependency. Without
    ``path`` it uses the teacher cache (``hfdinterp.train.teacher.default_weights_path``) if filled,
    and fetches nothing."""
    from hfdinterp.train.teacher import default_weights_path, load_teacher

    path = Path(path) if path else default_weights_path()
    if not path.is_file():
        return None, (f"RIFE row skipped: no RIFE 4.x weights at {path} "
                      "(python -c 'from hfdinterp.train.teacher import fetch_weights; fetch_weights()')")
    try:
        return load_teacher(path), None
    except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as error:
        return None, f"RIFE row skipped: {path}: {str(error).splitlines()[0] if str(error) else error}"


def pair_benchmark(args: argparse.Namespace) -> None:
    from hfdinterp.io.images import read_image
    from hfdinterp.inference.interpolator import load_interpolator

    width, height = args.pair
    if args.images:
        frames = []
        for path in args.images:
            pixels = torch.from_numpy(read_image(path).pixels[..., :3].copy()).permute(2, 0, 1)[None]
            frames.append(F.interpolate(pixels.float(), size=(height, width), mode="area")[0].permute(1, 2, 0).numpy())
        image0, image1 = frames
    else:
        image0, image1 = synthetic_pair(width, height)
    methods = {"hfdinterp": load_interpolator(args.weights, device=args.device)}
    if args.no_refine:
        methods["hfdinterp --refine-steps 0"] = load_interpolator(args.weights, device=args.device, refine_steps=0)
    if args.ensemble:
        methods["hfdinterp --ensemble"] = load_interpolator(args.weights, device=args.device, ensemble=True)
    if args.full_flow:
        methods["hfdinterp --flow-resolution 1"] = load_interpolator(args.weights, device=args.device, flow_resolution=1)
    if args.paper_noise:
        methods["hfdinterp --noise 1"] = load_interpolator(args.weights, device=args.device, noise=1.0)
    calls = {name: (lambda i=interpolator: i.interpolate(image0, image1, 0.5)) for name, interpolator in methods.items()}
    from hfdinterp.train.teacher import teacher_interpolate

    teacher, why_not = load_rife(args.rife_weights)
    if teacher is not None:
        pair = [torch.from_numpy(image.transpose(2, 0, 1).copy())[None] for image in (image0, image1)]
        calls["RIFE 4.x (IFNet)"] = lambda: teacher_interpolate(teacher, pair[0], pair[1], torch.tensor([0.5]))
    policy = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))
    print(f"pair: {width}×{height}, {torch.get_num_threads()} threads ({policy}), "
          f"median of {args.repeats} after a warm-up")
    times: dict[str, list[float]] = {name: [] for name in calls}
    for name, call in calls.items():
        with torch.inference_mode():
            call()  # warm-up: allocator, lazy initialisation
    for _ in range(args.repeats):
        for name, call in calls.items():  # taking turns: a load that comes and goes hits every method
            started = time.perf_counter()
            with torch.inference_mode():
                call()
            times[name].append(time.perf_counter() - started)
    reference = "RIFE 4.x (IFNet)" if teacher is not None else "hfdinterp"
    medians = {name: float(np.median(values)) for name, values in times.items()}
    print(f"{'method':28} {'median s':>9} {'min s':>7} {'max s':>7} {'÷ ' + reference:>20}")
    for name, values in times.items():
        print(f"{name:28} {medians[name]:9.3f} {min(values):7.3f} {max(values):7.3f} "
              f"{medians[name] / medians[reference]:20.2f}")
    if why_not:
        print(why_not)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path, nargs="?")
    parser.add_argument("--pair", type=parse_size, metavar="WxH", help="time one pair of this size instead")
    parser.add_argument("--repeats", type=int, default=5, help="--pair: timed calls per method (median)")
    parser.add_argument("--images", type=Path, nargs=2, metavar=("A", "B"), help="--pair: these two images, resized")
    parser.add_argument("--rife-weights", type=Path, help="--pair: RIFE 4.x flownet.pkl (default: found if installed)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="--pair: torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--weights")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--ensemble", action="store_true", help="also run hfdinterp with --ensemble")
    parser.add_argument("--no-refine", action="store_true",
                        help="also run hfdinterp with --refine-steps 0 (the diffusion's flow as sampled)")
    parser.add_argument("--full-flow", action="store_true",
                        help="also run hfdinterp with --flow-resolution 1 (the flow sampled on the full frames)")
    parser.add_argument("--paper-noise", action="store_true",
                        help="also run hfdinterp with --noise 1 (the paper's sampling noise)")
    parser.add_argument("--memory-check", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.pair:
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        if args.threads is not None:
            if args.threads < 1:
                parser.error("--threads must be at least 1")
            torch.set_num_threads(args.threads)
        return pair_benchmark(args)
    if args.clip is None:
        parser.error("give a CLIP, or --pair WxH")
    clip_benchmark(args)


def clip_benchmark(args: argparse.Namespace) -> None:
    """hfdinterp (and its variants) against minterpolate on a clip: speed, memory, re-created frames."""
    variants = [("hfdinterp 2×", [])] + ([("hfdinterp 2× --ensemble", ["--ensemble"])] if args.ensemble else [])
    variants += [("hfdinterp 2× no refine", ["--refine-steps", "0"])] if args.no_refine else []
    variants += [("hfdinterp 2× --flow-resolution 1", ["--flow-resolution", "1"])] if args.full_flow else []
    variants += [("hfdinterp 2× --noise 1", ["--noise", "1"])] if args.paper_noise else []

    work = Path(tempfile.mkdtemp(prefix="hfdinterp-bench-"))
    frames, rate = decode(args.clip, args.frames)
    if len(frames) < MIN_CLIP_FRAMES:  # the even frames are interpolated and compared with the odd ones
        raise SystemExit(f"{args.clip}: the video benchmark needs at least {MIN_CLIP_FRAMES} frames, got {len(frames)}")
    source = work / "source.mkv"
    write_frames(source, frames, rate)
    height, width = frames[0].shape[:2]
    print(f"clip: {args.clip.name}, {len(frames)} frames, {width}×{height} at {float(rate):.3f} fps")

    rows = []
    x264 = ["-c:v", "libx264", "-crf", "18"]
    for name, command, out in (
        *((name, hfdinterp_command(source, work / f"hfd{i}.mp4", args.weights, extra), work / f"hfd{i}.mp4")
          for i, (name, extra) in enumerate(variants)),
        ("ffmpeg minterpolate 2×", minterpolate_command(source, work / "mci.mp4", rate * 2, x264), work / "mci.mp4"),
    ):
        result = measure(command)
        produced = len(decode(out)[0])
        rows.append((name, produced, result["wall"], produced / result["wall"], result["peak_kib"] / 1024))

    # re-create dropped frames: keep the even frames, interpolate 2×, compare with the odd ones
    kept = frames[0::2]
    dropped = frames[1::2]
    half = work / "half.mkv"
    write_frames(half, kept, rate / 2)
    lossless = ["-c:v", "ffv1"]
    scores = {}
    for name, command, out in (
        *((name, hfdinterp_command(half, work / f"hfd{i}_re.mkv", args.weights, ["--codec", "ffv1", *extra]),
           work / f"hfd{i}_re.mkv") for i, (name, extra) in enumerate(variants)),
        ("ffmpeg minterpolate 2×", minterpolate_command(half, work / "mci_re.mkv", rate, lossless), work / "mci_re.mkv"),
    ):
        measure(command)
        made = decode(out)[0][1::2]
        pairs = min(len(made), len(dropped), len(kept) - 1)  # the held last frame has no truth
        scores[name] = float(np.mean([psnr(made[i], dropped[i]) for i in range(pairs)]))
    blend = [((kept[i].astype(np.float32) + kept[i + 1]) / 2).round().astype(np.uint8) for i in range(len(kept) - 1)]
    scores["average of neighbours"] = float(np.mean([psnr(blend[i], dropped[i])
                                                     for i in range(min(len(blend), len(dropped)))]))

    print(f"{'method':26} {'frames out':>10} {'wall s':>8} {'frames/s':>9} {'peak MiB':>9} {'PSNR dB':>8}")
    for name, produced, wall, fps, peak in rows:
        print(f"{name:26} {produced:10d} {wall:8.1f} {fps:9.2f} {peak:9.0f} {scores[name]:8.2f}")
    print(f"{'average of neighbours':26} {'':>10} {'':>8} {'':>9} {'':>9} {scores['average of neighbours']:8.2f}")

    if args.memory_check:
        memory_check(work, args.weights)


def memory_check(work: Path, weights: str | None) -> None:
    """Peak memory of a short and a 10× longer generated clip: it should not grow with the length."""
    from hfdinterp.io.testclip import make_test_clip

    peaks = []
    for count in (24, 240):
        clip = make_test_clip(work / f"gen{count}.mp4", 320, 180, frames=count, rate=24)
        result = measure(hfdinterp_command(clip, work / f"gen{count}_x2.mp4", weights, []))
        peaks.append((count, result["peak_kib"] / 1024, result["wall"]))
    for count, peak, wall in peaks:
        print(f"memory: {count:4d} frames 320×180 → peak {peak:.0f} MiB, {wall:.1f} s")
    print(f"memory: peak ratio long/short = {peaks[1][1] / peaks[0][1]:.2f} for a 10× longer clip")


if __name__ == "__main__":
    main()
