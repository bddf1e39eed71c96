"""Generated test clips (like FFmpeg's testsrc): moving textured shapes, a sine-wave audio track,
optional hard cut, 10-bit, variable frame rate and odd sizes. Used by the tests, the example and
the benchmark; written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .images import to_integer


def scene(width: int, height: int, index: int, variant: int = 0) -> np.ndarray:
    """Frame ``index`` of a smooth scene: a textured background panning and two moving discs."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = index * 1.5
    shift = 1.7 if variant else 0.0
    red = 0.5 + 0.4 * np.sin((xs + phase) / 9.0 + shift) * np.cos(ys / 13.0)
    green = 0.5 + 0.4 * np.sin((ys - 0.5 * phase) / 7.0 + 2 * shift)
    blue = 0.5 + 0.4 * np.cos((xs + ys + phase) / 17.0 - shift)
    image = np.stack((red, green, blue), -1)
    for k, (radius, speed, colour) in enumerate(((0.18, 2.0, (0.95, 0.85, 0.1)), (0.12, -3.0, (0.1, 0.2, 0.9)))):
        cx = (width * (0.3 + 0.4 * k) + speed * index) % max(width, 1)
        cy = height * (0.4 + 0.2 * k) + 2 * np.sin(index / 3 + k)
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 < (radius * min(width, height)) ** 2
        image[inside] = colour if not variant else colour[::-1]
    return np.clip(image, 0, 1)


def make_test_clip(path: str | Path, width: int = 96, height: int = 64, frames: int = 12,
                   rate: Fraction | int = 24, audio: bool = True, bit_depth: int = 8, cut_at: int | None = None,
                   vfr: bool = False, codec: str = "libx264", crf: int = 12, rotation: int = 0,
                   language: str | None = None) -> Path:
    """Write a clip; with ``cut_at``, frames from that index on show a different scene."""
    path = Path(path)
    rate = Fraction(rate)
    deep = bit_depth > 8
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = ("yuv420p10le" if deep else "yuv420p") if width % 2 == 0 and height % 2 == 0 else (
            "yuv444p10le" if deep else "yuv444p")
        video.options = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
        if codec == "libx265":
            video.options["x265-params"] = "log-level=error"
        video.codec_context.colorspace = 1  # BT.709 tags
        video.codec_context.color_primaries = 1
        video.codec_context.color_trc = 1
        video.codec_context.color_range = 1
        time_base = Fraction(1, int(rate.numerator * 4))
        video.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        stream_audio = None
        if audio:
            stream_audio = container.add_stream("aac", rate=48000)
            stream_audio.layout = "mono"
            if language:
                stream_audio.metadata["language"] = language
        pts = 0
        for index in range(frames):
            variant = 1 if cut_at is not None and index >= cut_at else 0
            pixels = scene(width, height, index, variant)
            frame = av.VideoFrame.from_ndarray(to_integer(pixels, bit_depth), format="rgb48le" if deep else "rgb24")
            frame = frame.reformat(format=video.pix_fmt, dst_colorspace=1, dst_color_range=1)
            frame.pts = pts
            frame.time_base = time_base
            for packet in video.encode(frame):
                container.mux(packet)
            step = 1 / rate / time_base
            pts += int(step * (2 if vfr and index % 3 == 2 else 1))
        container.mux(video.encode(None))
        if stream_audio is not None:
            duration = float(pts * time_base)
            samples = int(48000 * duration)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start:start + 1024][None]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate = 48000
                frame.pts = start
                container.mux(stream_audio.encode(frame))
            container.mux(stream_audio.encode(None))
    return path
