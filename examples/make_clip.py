"""Make examples/clip.mp4, the short clip the README's first command interpolates.

A generated scene (a panning texture with two moving discs) with a 440 Hz tone, 320×180 at 24 fps,
two seconds: made by hfdinterp's own test-clip generator, so it is ours to ship.

    python examples/make_clip.py
"""

from pathlib import Path

from hfdinterp.io.testclip import make_test_clip

if __name__ == "__main__":
    path = make_test_clip(Path(__file__).with_name("clip.mp4"), width=320, height=180, frames=48, rate=24, crf=20)
    print(path)
