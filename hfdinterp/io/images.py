"""Reading and writing still images through PyAV (PNG 8/16-bit, grey, RGBA, JPEG, WebP).

Images are numpy arrays (H, W, C) float32 in [0, 1] with C = 3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import HFDError
from ..limits import MAX_PIXELS

ENCODERS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".webp": "libwebp"}
LUMA = (0.299, 0.587, 0.114)  # BT.601 weights of R, G, B in the brightness of a pixel


def full_scale(bit_depth: int) -> float:
    """White in integer pixels: 255 at 8 bits, 65535 at 16 (deeper sources are read as 16-bit)."""
    return 65535.0 if bit_depth > 8 else 255.0


def to_integer(pixels: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8 (or uint16 above 8 bits), rounded to the nearest level."""
    scale = full_scale(bit_depth)
    return np.clip(np.rint(pixels * scale), 0, scale).astype(np.uint16 if bit_depth > 8 else np.uint8)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 or uint16 pixels -> float32 in [0, 1]."""
    return pixels.astype(np.float32) / full_scale(16 if pixels.dtype == np.uint16 else 8)


def luma(frames):
    """(B, 3, H, W) RGB -> (B, 1, H, W) brightness."""
    return LUMA[0] * frames[:, 0:1] + LUMA[1] * frames[:, 1:2] + LUMA[2] * frames[:, 2:3]


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


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or WebP header, reading no pixel data; None if not one of those."""
    with open(path, "rb") as handle:
        head = handle.read(64)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind, body = head[12:16], head[20:]
            if kind == b"VP8 " and len(body) >= 10:
                width, height = struct.unpack("<HH", body[6:10])
                return width & 0x3FFF, height & 0x3FFF
            if kind == b"VP8L" and len(body) >= 5:
                bits = int.from_bytes(body[1:5], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if kind == b"VP8X" and len(body) >= 10:
                return int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1
            return None
        if head[:2] != b"\xff\xd8":
            return None
        handle.seek(2)
        while True:  # JPEG: walk the marker segments to the first start-of-frame
            marker = handle.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                return None
            if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
                continue
            length = handle.read(2)
            if len(length) < 2:
                return None
            if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">xHH", handle.read(5))
                return width, height
            handle.seek(struct.unpack(">H", length)[0] - 2, os.SEEK_CUR)


def read_image(path: str | os.PathLike) -> Image:
    path = Path(path)
    if path.is_dir():
        raise HFDError(f"{path}: is a directory, not an image")
    if not path.is_file():
        raise HFDError(f"{path}: no such file")
    try:
        size = header_size(path)
    except (OSError, struct.error):
        size = None
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise HFDError(f"{path}: {size[0]}×{size[1]} is above the largest frame size "
                       f"({MAX_PIXELS / 1e6:.1f} Mpixel, 8K); not decoded")
    try:  # FFmpeg's own bound as well, for formats whose header is not read above
        with av.open(str(path), stream_options=[{"max_pixels": str(MAX_PIXELS)}]) as container:
            if not container.streams.video:
                raise HFDError(f"{path}: not an image")
            stream = container.streams.video[0]
            stream.codec_context.options = {"max_pixels": str(MAX_PIXELS)}
            frame = next(container.decode(stream))
            jpeg = stream.codec_context.name == "mjpeg"
    except (av.error.FFmpegError, StopIteration, UnicodeDecodeError) as error:
        raise HFDError(f"{path}: cannot read it as an image ({_reason(error)})") from None
    fmt = frame.format
    deep = max(c.bits for c in fmt.components) > 8
    alpha = any(c.is_alpha for c in fmt.components) and not jpeg  # CMYK JPEG decodes with an opaque "alpha"
    target = ("rgba64le" if alpha else "rgb48le") if deep else ("rgba" if alpha else "rgb24")
    array = frame.to_ndarray(format=target)
    pixels = to_float(array)
    return Image(pixels=pixels, bit_depth=16 if deep else 8)


def encode_image(pixels: np.ndarray, suffix: str, bit_depth: int = 8) -> bytes:
    """Encode (H, W, 3|4) float [0, 1] to the bytes of an image file of the given suffix."""
    codec = ENCODERS.get(suffix.lower())
    if codec is None:
        raise HFDError(f"cannot write '{suffix}' images; use one of {', '.join(sorted(ENCODERS))}")
    alpha = pixels.shape[2] == 4
    deep = bit_depth > 8 and codec == "png"
    quantized = to_integer(pixels, 16 if deep else 8)
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
    except BaseException as error:  # a full disk or a signal alike: no partial file stays behind
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise HFDError(f"{path}: cannot write ({error.strerror or error})") from None
        raise


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
