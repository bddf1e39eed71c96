"""Video benchmark: hfdinterp beside FFmpeg's minterpolate on the same clip, in the same run.

    python -m hfdinterp.benchmark CLIP [--weights W] [--frames N] [--ensemble] [--no-refine] [--memory-check]

Prints, for each method: output frames/s, wall time and peak memory (RSS of the process doing the
work); and the PSNR of re-created dropped frames: the clip's even frames are interpolated 2× and the
new frames are compared with the odd frames that were dropped. ``--ensemble`` adds a row for
hfdinterp with ``--ensemble``; ``--no-refine`` one without test-time flow refinement.
``--memory-check`` also runs hfdinterp on a short and a 10× longer generated clip and prints both
peaks (memory must stay flat).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

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


def decode(path: Path, limit: int | None = None) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit and len(frames) >= limit:
                break
        return frames, Fraction(stream.average_rate)


def write_frames(path: Path, frames: list[np.ndarray], rate: Fraction) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv444p")))
        container.mux(stream.encode(None))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def hfdinterp_command(source: Path, target: Path, weights: str | None, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "hfdinterp", "video", str(source), str(target), "--overwrite", "-q",
               "--scene-threshold", "0"] + extra
    return command + (["--weights", weights] if weights else [])


def minterpolate_command(source: Path, target: Path, rate: Fraction, codec: list[str]) -> list[str]:
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), "-vf",
            f"minterpolate=fps={rate.numerator}/{rate.denominator}:mi_mode=mci:mc_mode=obmc", *codec, str(target)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--weights")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    parser.add_argument("--ensemble", action="store_true", help="also run hfdinterp with --ensemble")
    parser.add_argument("--no-refine", action="store_true",
                        help="also run hfdinterp with --refine-steps 0 (the paper's pipeline as is)")
    parser.add_argument("--memory-check", action="store_true")
    args = parser.parse_args()
    variants = [("hfdinterp 2×", [])] + ([("hfdinterp 2× --ensemble", ["--ensemble"])] if args.ensemble else [])
    variants += [("hfdinterp 2× no refine", ["--refine-steps", "0"])] if args.no_refine else []

    work = Path(tempfile.mkdtemp(prefix="hfdinterp-bench-"))
    frames, rate = decode(args.clip, args.frames)
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
        from hfdinterp.video.testclip import make_test_clip

        peaks = []
        for count in (24, 240):
            clip = make_test_clip(work / f"gen{count}.mp4", 320, 180, frames=count, rate=24)
            result = measure(hfdinterp_command(clip, work / f"gen{count}_x2.mp4", args.weights, []))
            peaks.append((count, result["peak_kib"] / 1024, result["wall"]))
        for count, peak, wall in peaks:
            print(f"memory: {count:4d} frames 320×180 → peak {peak:.0f} MiB, {wall:.1f} s")
        print(f"memory: peak ratio long/short = {peaks[1][1] / peaks[0][1]:.2f} for a 10× longer clip")


if __name__ == "__main__":
    main()
