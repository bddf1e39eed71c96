"""Reading and writing still images through PyAV (PNG 8/16-bit, grey, RGBA, JPEG, WebP).

Images are numpy arrays (H, W, C) float32 in [0, 1] with C = 3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import HFDError

ENCODERS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".webp": "libwebp"}


@dataclass
class Image:
    pixels: np.ndarray  # (H, W, 3 or 4) float32 in [0, 1]
    bit_depth: int  # 8 or 16

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4

    @property
    def size(self) -> tuple[int, int]:  # (width, height)
        return self.pixels.shape[1], self.pixels.shape[0]


def read_image(path: str | os.PathLike) -> Image:
    path = Path(path)
    if path.is_dir():
        raise HFDError(f"{path}: is a directory, not an image")
    if not path.is_file():
        raise HFDError(f"{path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise HFDError(f"{path}: not an image")
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, UnicodeDecodeError) as error:
        raise HFDError(f"{path}: cannot read it as an image ({_reason(error)})") from None
    fmt = frame.format
    deep = max(c.bits for c in fmt.components) > 8
    alpha = any(c.is_alpha for c in fmt.components)
    target = ("rgba64le" if alpha else "rgb48le") if deep else ("rgba" if alpha else "rgb24")
    array = frame.to_ndarray(format=target)
    pixels = array.astype(np.float32) / (65535.0 if deep else 255.0)
    return Image(pixels=pixels, bit_depth=16 if deep else 8)


def encode_image(pixels: np.ndarray, suffix: str, bit_depth: int = 8) -> bytes:
    """Encode (H, W, 3|4) float [0, 1] to the bytes of an image file of the given suffix."""
    codec = ENCODERS.get(suffix.lower())
    if codec is None:
        raise HFDError(f"cannot write '{suffix}' images; use one of {', '.join(sorted(ENCODERS))}")
    alpha = pixels.shape[2] == 4
    deep = bit_depth > 8 and codec == "png"
    scale = 65535.0 if deep else 255.0
    quantized = np.clip(np.rint(pixels * scale), 0, scale).astype(np.uint16 if deep else np.uint8)
    source_format = ("rgba64le" if alpha else "rgb48le") if deep else ("rgba" if alpha else "rgb24")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(quantized), format=source_format)
    context = av.CodecContext.create(codec, "w")
    context.width, context.height = frame.width, frame.height
    if codec == "png":
        context.pix_fmt = ("rgba64be" if alpha else "rgb48be") if deep else ("rgba" if alpha else "rgb24")
    elif codec == "mjpeg":
        context.pix_fmt = "yuvj444p"
        context.options = {"qscale": "2"}
        context.time_base = Fraction(1, 25)
    else:
        context.pix_fmt = "yuva420p" if alpha else "yuv420p"
        context.options = {"lossless": "0", "quality": "95"}
        context.time_base = Fraction(1, 25)
    packets = context.encode(frame.reformat(format=context.pix_fmt)) + context.encode(None)
    return b"".join(bytes(packet) for packet in packets)


def write_image(path: str | os.PathLike, pixels: np.ndarray, bit_depth: int = 8) -> None:
    """Write atomically: a temporary file beside the target, renamed when complete."""
    path = Path(path)
    data = encode_image(pixels, path.suffix, bit_depth)
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise HFDError(f"{path}: cannot write ({error.strerror or error})") from None


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
