"""The Python API in a few lines: the frame between two images, and a video.

    python examples/api.py a.png b.png
"""

import sys
from pathlib import Path

from hfdinterp import load_interpolator
from hfdinterp.io.images import read_image, write_image
from hfdinterp.video.pipeline import VideoRequest, interpolate_video

if __name__ == "__main__":
    interpolator = load_interpolator()  # bundled weights, CUDA / MPS / CPU, 6 DDIM steps
    if len(sys.argv) == 3:
        first, second = (read_image(p).pixels[..., :3] for p in sys.argv[1:])
        middle = interpolator.interpolate(first, second, time=0.5, seed=0)  # (H, W, 3) float in [0, 1]
        write_image("middle.png", middle)
        print("middle.png")
    else:
        clip = Path(__file__).with_name("clip.mp4")
        summary = interpolate_video(interpolator, VideoRequest(clip, Path("clip_x2.mp4"), factor=2, overwrite=True))
        print(f"{summary.frames_in} frames -> {summary.frames_out} frames, {summary.frames_per_second:.1f} frames/s")
