"""Soak run: many short generated videos back to back through the CLI, in one process, with the
process's resident memory, open file descriptors and threads sampled after each. Flat is the target:
a leak of containers, threads or tensors shows as a column that keeps growing.

    python examples/soak.py                      # 50 videos, 64×48, 6 frames, bundled weights
    python examples/soak.py --runs 200 --every 20 --refine-steps 60

Not a unit test (it takes minutes); the table it prints goes into the release notes.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
from pathlib import Path

from typer.testing import CliRunner

from hfdinterp.cli import app
from hfdinterp.io.testclip import make_test_clip

# cycled through, so that every encoder and container the sink knows is exercised
OUTPUTS = (("mp4", "libx264"), ("mkv", "libx265"), ("mkv", "ffv1"), ("webm", "libvpx-vp9"))


def sample() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024, "fds": len(os.listdir("/proc/self/fd")),
            "threads": int(status["Threads"]), "py_threads": threading.active_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--every", type=int, default=5, help="print a row every N runs")
    parser.add_argument("--size", default="64x48")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--weights", default=None, help="weights file or name (default: the bundled hfd-small)")
    parser.add_argument("--refine-steps", type=int, default=0)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    runner = CliRunner()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hfdinterp-soak-") as folder:
        folder = Path(folder)
        started = time.monotonic()
        for run in range(1, args.runs + 1):
            suffix, codec = OUTPUTS[(run - 1) % len(OUTPUTS)]
            clip = make_test_clip(folder / f"in{run}.mp4", width, height, frames=args.frames, rate=24,
                                  cut_at=args.frames // 2 if run % 3 == 0 else None)
            target = folder / f"out{run}.{suffix}"
            command = ["video", str(clip), str(target), "--codec", codec, "--refine-steps", str(args.refine_steps),
                       "-q", *(["-w", args.weights] if args.weights else [])]
            result = runner.invoke(app, command)
            if result.exit_code != 0:
                raise SystemExit(f"run {run} ({codec}) failed: {result.output.strip()}")
            clip.unlink()
            target.unlink()
            gc.collect()
            if run == 1 or run % args.every == 0 or run == args.runs:
                rows.append({"run": run, "codec": codec, "seconds": time.monotonic() - started, **sample()})
    print(f"{args.runs} videos, {width}×{height}, {args.frames} frames each, 2×, one process")
    print("| run | last codec | elapsed s | RSS MiB | open fds | OS threads | Python threads |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['codec']} | {row['seconds']:.1f} | {row['rss_mib']:.1f} | {row['fds']} | "
              f"{row['threads']} | {row['py_threads']} |")
    first, last = rows[0], rows[-1]
    print(f"run 1 → {last['run']}: RSS {last['rss_mib'] - first['rss_mib']:+.1f} MiB, "
          f"fds {last['fds'] - first['fds']:+d}, threads {last['threads'] - first['threads']:+d}")


if __name__ == "__main__":
    main()
