"""Where frames come from: a video file (PyAV, streaming) or a folder / pattern of images.

Frames arrive as RGB numpy arrays (uint8, or uint16 for input deeper than 8 bits), converted from
YUV with the input's own matrix and range, with exact timestamps as Fractions of a second; RGBA
when the alpha channel is asked for. Audio and subtitle packets arrive in stream order beside them,
for copying.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import HFDError
from ..limits import MAX_PIXELS
from .images import ENCODERS, read_image, to_integer

from av.video.reformatter import Interpolation

UNSPECIFIED = 2  # AVCOL_*_UNSPECIFIED
# One conversion for every frame, both ways: accurate rounding and full chroma resolution, so that
# RGB → YUV → RGB returns the same colours (swscale's fast path drifts by about one level).
COLOUR_CONVERSION = (Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
                     | Interpolation.FULL_CHR_H_INP)
BT709, BT601 = 1, 6  # AVCOL_SPC_BT709, AVCOL_SPC_SMPTE170M
RANGE_LIMITED, RANGE_FULL = 1, 2
# VP8/VP9 keep alpha in a side channel of the Matroska/WebM block (BlockAdditional), flagged by the
# stream's alpha_mode tag: FFmpeg's own decoders ignore it, libvpx's decode it.
SIDE_CHANNEL_ALPHA_DECODERS = {"vp9": "libvpx-vp9", "vp8": "libvpx"}


@dataclass
class VideoInfo:
    width: int
    height: int
    rate: Fraction  # nominal frames per second
    duration: Fraction | None  # seconds, when the container knows it
    frame_count: int | None  # when the container knows it
    bit_depth: int = 8
    has_alpha: bool = False
    pix_fmt: str = "yuv420p"
    colorspace: int = UNSPECIFIED  # matrix, AVCOL_SPC_*
    color_range: int = 0
    color_primaries: int = UNSPECIFIED
    color_trc: int = UNSPECIFIED
    rotation: int = 0
    language: str | None = None
    codec: str = ""
    streams: list = field(default_factory=list)  # audio and subtitle streams to carry over

    @property
    def matrix(self) -> int:
        """The YUV matrix to use: the tagged one, or the usual guess (BT.709 for HD, BT.601 below)."""
        if self.colorspace not in (UNSPECIFIED, 0, 3):
            return self.colorspace
        return BT709 if self.height >= 720 else BT601

    @property
    def range(self) -> int:
        if self.color_range in (RANGE_LIMITED, RANGE_FULL):
            return self.color_range
        return RANGE_FULL if self.pix_fmt.startswith("yuvj") else RANGE_LIMITED


@dataclass
class Frame:
    index: int
    time: Fraction  # seconds, on the input stream's clock (so audio stays in sync)
    pixels: np.ndarray  # (H, W, 3) uint8 or uint16 RGB; (H, W, 4) RGBA when the alpha is kept
    duration: Fraction | None = None


@dataclass
class Passthrough:
    packet: object  # av.Packet of an audio or subtitle stream


IMAGE_PATTERN = re.compile(r"%0?\d*d")


def is_image_sequence(path: Path) -> bool:
    return path.is_dir() or bool(IMAGE_PATTERN.search(path.name))


class VideoSource:
    """Open with ``with VideoSource(path) as source``; iterate ``source.items()``."""

    def __init__(self, path: str | Path, input_fps: Fraction | None = None, with_streams: bool = True):
        self.path = Path(path)
        self.input_fps = input_fps
        self.with_streams = with_streams
        self.container = None
        self.warnings: list[str] = []

    def __enter__(self) -> "VideoSource":
        if not self.path.exists():
            raise HFDError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise HFDError(f"{self.path}: is a directory (a folder of frames needs --input-fps)")
        try:
            self.container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.FFmpegError as error:
            raise HFDError(f"{self.path}: not a video file PyAV can read ({error.strerror or error})") from None
        except (PermissionError, IsADirectoryError) as error:
            raise HFDError(f"{self.path}: cannot open ({error.strerror})") from None
        if not self.container.streams.video:
            kind = "an audio-only file" if self.container.streams.audio else "not a video"
            self.container.close()
            raise HFDError(f"{self.path}: {kind} (no video stream)")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        try:
            self.info = self._probe()
        except BaseException:
            self.container.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.container is not None:
            self.container.close()

    def _probe(self) -> VideoInfo:
        stream, context = self.stream, self.stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        duration = None
        if stream.duration and stream.time_base:
            duration = Fraction(stream.duration) * stream.time_base
        elif self.container.duration:
            duration = Fraction(self.container.duration, av.time_base)
        if not context.width or not context.height:
            raise HFDError(f"{self.path}: the video stream has no frame size (damaged header?)")
        if context.width * context.height > MAX_PIXELS:
            raise HFDError(f"{self.path}: {context.width}×{context.height} frames are above the largest frame size "
                           f"({MAX_PIXELS / 1e6:.1f} Mpixel, 8K)")
        for extra in self.container.streams.video[1:]:
            self.warnings.append(f"video stream {extra.index} is left out (only the first video stream is "
                                 "interpolated)")
        pix_fmt = context.pix_fmt or "yuv420p"
        fmt = av.VideoFormat(pix_fmt)
        alpha = any(c.is_alpha for c in fmt.components) or stream.metadata.get("alpha_mode") == "1"
        streams = [s for s in self.container.streams if s.type in ("audio", "subtitle")] if self.with_streams else []
        rotation = self._first_frame_rotation()
        return VideoInfo(
            rotation=rotation,
            width=context.width, height=context.height, rate=Fraction(rate), duration=duration,
            frame_count=stream.frames or None, bit_depth=max(c.bits for c in fmt.components), has_alpha=alpha,
            pix_fmt=pix_fmt, colorspace=int(context.colorspace), color_range=int(context.color_range),
            color_primaries=int(context.color_primaries), color_trc=int(context.color_trc),
            language=stream.language, codec=context.name, streams=streams,
        )

    def _first_frame_rotation(self) -> int:
        """The display rotation, read off the first frame by a separate peek (the output's header,
        which carries it, may be written before the pipeline decodes its first frame)."""
        try:
            with av.open(str(self.path), metadata_errors="ignore") as peek:
                for frame in peek.decode(video=0):
                    return int(frame.rotation or 0)
        except av.error.FFmpegError:
            pass
        return 0

    def alpha_unreadable(self) -> str | None:
        """Why this input's alpha cannot be decoded here, or None when it can."""
        decoder = SIDE_CHANNEL_ALPHA_DECODERS.get(self.info.codec)
        if decoder is not None and decoder not in av.codecs_available:
            return f"this FFmpeg has no {decoder} decoder, which {self.info.codec.upper()} alpha needs"
        return None

    def _decoder(self, alpha: bool):
        """The stream's own decoder, or libvpx's where the alpha is a side channel only it reads."""
        name = SIDE_CHANNEL_ALPHA_DECODERS.get(self.info.codec) if alpha else None
        if name is None:
            return lambda packet: packet.decode()
        context = av.CodecContext.create(name, "r")
        context.extradata = self.stream.codec_context.extradata
        context.thread_type = "AUTO"
        return context.decode

    def to_rgb(self, frame: av.VideoFrame, alpha: bool = False) -> np.ndarray:
        deep = self.info.bit_depth > 8
        target = ("rgba64le" if deep else "rgba") if alpha else ("rgb48le" if deep else "rgb24")
        if frame.format.name.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "rgba", "bgra", "pal8", "gray")):
            return frame.to_ndarray(format=target)
        rgb = frame.reformat(format=target, src_colorspace=self.info.matrix,
                             src_color_range=self.info.range, interpolation=COLOUR_CONVERSION)
        return rgb.to_ndarray()

    def items(self, alpha: bool = False) -> Iterator[Frame | Passthrough]:
        """Frames (RGBA with ``alpha``) and packets in stream order; corrupt video data stops with an error."""
        index = 0
        streams = [self.stream] + self.info.streams
        decode = self._decoder(alpha)
        try:
            for packet in self.container.demux(streams):
                if packet.stream.type != "video":
                    if packet.dts is not None:
                        yield Passthrough(packet)
                    continue
                for frame in decode(packet):
                    duration = Fraction(frame.duration) * frame.time_base if frame.duration and frame.time_base else None
                    yield Frame(index, self._time(frame, index), self.to_rgb(frame, alpha), duration)
                    index += 1
        except av.error.FFmpegError as error:
            raise HFDError(f"{self.path}: corrupt or unreadable video data after frame {index} "
                           f"({error.strerror or error}); stopped, no output written") from None

    @property
    def time_base(self) -> Fraction:
        return Fraction(self.stream.time_base) if self.stream.time_base else 1 / self.info.rate

    def _time(self, frame: av.VideoFrame, index: int) -> Fraction:
        if frame.pts is not None and frame.time_base is not None:
            return Fraction(frame.pts) * frame.time_base
        return Fraction(index) / self.info.rate  # streams without timestamps: count frames


class ImageSequenceSource:
    """A folder of images (sorted by name) or a printf pattern like ``frames/%08d.png``."""

    def __init__(self, path: str | Path, input_fps: Fraction | None):
        self.path = Path(path)
        if input_fps is None:
            raise HFDError(f"{self.path}: a folder or pattern of frames needs --input-fps")
        self.rate = input_fps
        self.warnings: list[str] = []

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in ENCODERS and p.is_file())
        else:
            regex = re.compile("^" + IMAGE_PATTERN.sub(r"(\\d+)", re.escape(self.path.name).replace("%", "%")) + "$")
            folder = self.path.parent
            matches = [(int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else [])
                       if (m := regex.match(p.name))]
            files = [p for _, p in sorted(matches)]
        if not files:
            raise HFDError(f"{self.path}: no image frames found")
        return files

    def __enter__(self) -> "ImageSequenceSource":
        self.files = self._files()
        first = read_image(self.files[0])
        height, width = first.pixels.shape[:2]
        self.info = VideoInfo(width=width, height=height, rate=self.rate,
                              duration=Fraction(len(self.files)) / self.rate, frame_count=len(self.files),
                              bit_depth=first.bit_depth, has_alpha=first.has_alpha,
                              pix_fmt="rgba" if first.has_alpha else "rgb24", colorspace=UNSPECIFIED,
                              color_range=RANGE_FULL, codec="image")
        return self

    def __exit__(self, *exc) -> None:
        pass

    @property
    def time_base(self) -> Fraction:
        return 1 / self.rate

    def alpha_unreadable(self) -> str | None:
        return None

    def items(self, alpha: bool = False) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            image = read_image(path)
            if image.pixels.shape[:2] != (self.info.height, self.info.width):
                raise HFDError(f"{path}: frame size differs from the first frame's")
            pixels = image.pixels[..., :3]
            if alpha:  # a frame without alpha among frames with it is opaque
                opaque = np.ones(pixels.shape[:2] + (1,), pixels.dtype)
                pixels = image.pixels if image.has_alpha else np.concatenate((pixels, opaque), axis=2)
            yield Frame(index, Fraction(index) / self.rate, to_integer(pixels, self.info.bit_depth), Fraction(1) / self.rate)


def open_source(path: str | Path, input_fps: Fraction | None = None, with_streams: bool = True):
    path = Path(path)
    if is_image_sequence(path):
        return ImageSequenceSource(path, input_fps)
    return VideoSource(path, input_fps, with_streams)
