"""Where frames go: a video file (written to a temporary file beside it, renamed when complete)
or a folder / pattern of PNG frames. Audio and subtitle packets are copied unchanged when the
container takes their codec, otherwise audio is transcoded (with a warning) and subtitles dropped."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import HFDError
from ..images import write_image
from .source import COLOUR_CONVERSION, IMAGE_PATTERN, VideoInfo, is_image_sequence

CODEC_ALIASES = {"x264": "libx264", "h264": "libx264", "avc": "libx264", "x265": "libx265", "hevc": "libx265",
                 "h265": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1", "prores": "prores_ks", "ffv1": "ffv1"}
# Per codec: how --crf, --preset and --lossless are spelled, and which pixel formats it prefers.
CODEC_OPTIONS = {
    "libx264": {"crf": "crf", "preset": "preset", "lossless": {"qp": "0"}},
    "libx265": {"crf": "crf", "preset": "preset", "lossless": {"x265-params": "lossless=1:log-level=error"},
                "base": {"x265-params": "log-level=error"}},
    "libvpx-vp9": {"crf": "crf", "preset": None, "lossless": {"lossless": "1"}, "base": {"b": "0", "row-mt": "1"}},
    "libsvtav1": {"crf": "crf", "preset": "preset", "lossless": {"crf": "0"}},
    "prores_ks": {"crf": None, "preset": None, "lossless": {"profile": "4"}, "base": {"profile": "3"}},
    "ffv1": {"crf": None, "preset": None, "lossless": {}},
}
SUBSAMPLED = ("yuv420p", "yuv422p", "yuvj420p", "yuvj422p", "nv12")
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
PRESETS = {"libx264": X26X_PRESETS, "libx265": X26X_PRESETS, "libsvtav1": tuple(str(n) for n in range(-1, 14))}
CRF_RANGE = {"libx264": 51, "libx265": 51, "libvpx-vp9": 63, "libsvtav1": 63}  # 0 … this
# x265's lookahead works on half-size copies of the frames; on frames smaller than its 64-pixel
# block it corrupts the heap (glibc aborts the process, about two runs in three at 40×24), so
# small frames are encoded without lookahead and B-frames. Below 16 pixels x265 refuses to open.
X265_SMALL, X265_SMALLEST = 64, 16
X265_SMALL_PARAMS = "rc-lookahead=0:bframes=0"
# Encoders whose alpha comes back from the file (each checked by a round trip in the tests), with the
# pixel format that carries it, 8-bit and deeper input. VP9's alpha is a side channel that only
# Matroska and WebM store: in an MP4 or a MOV it is lost without a word, the colour kept.
ALPHA_FORMATS = {"libvpx-vp9": ("yuva420p", "yuva420p"), "prores_ks": ("yuva444p10le", "yuva444p10le"),
                 "qtrle": ("argb", "argb"), "png": ("rgba", "rgba64be"), "ffv1": ("yuva444p", "yuva444p16le")}
SIDE_CHANNEL_ALPHA = {"libvpx-vp9": (".webm", ".mkv")}
PRORES_4444 = "4"  # prores_ks's profile with alpha; the others drop it silently


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "libx264"
    crf: int | None = None  # the codec's default quality if None (x264: 18 here)
    preset: str | None = None
    pix_fmt: str | None = None  # default: the input's, adjusted to what the codec can do
    lossless: bool = False
    audio: bool = True
    alpha: bool = True  # keep the input's alpha channel where the output can carry it


def check_encode_options(options: EncodeOptions) -> None:
    """What can be checked without the input: the encoder exists, --crf is in its range."""
    codec = resolve_codec(options.codec)
    presets = PRESETS.get(codec.name)
    if options.preset is not None and presets is not None and options.preset not in presets:
        raise HFDError(f"--preset for {codec.name} is one of {', '.join(presets)}; got '{options.preset}'")
    if options.crf is not None and codec.name in CRF_RANGE and not 0 <= options.crf <= CRF_RANGE[codec.name]:
        raise HFDError(f"--crf for {codec.name} must lie between 0 and {CRF_RANGE[codec.name]}, got {options.crf}")


def resolve_codec(name: str) -> av.Codec:
    name = CODEC_ALIASES.get(name.lower(), name)
    try:
        codec = av.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        raise HFDError(f"unknown or unavailable video encoder '{name}' in this FFmpeg build "
                       f"(try libx264, libx265, libvpx-vp9, libsvtav1, prores_ks, ffv1)") from None
    if codec.type != "video":
        raise HFDError(f"'{name}' is not a video encoder")
    return codec


def writes_frames(path: Path) -> bool:
    """A folder or pattern of PNG frames rather than a video file."""
    return is_image_sequence(path) or (not path.suffix and not path.exists())


def has_alpha(pix_fmt: str) -> bool:
    return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)


def alpha_refused(path: Path, options: EncodeOptions) -> str | None:
    """Why an output at ``path`` with these options cannot carry an alpha channel, or None when it can."""
    if not options.alpha:
        return "--drop-alpha"
    if writes_frames(path):
        return None  # PNG frames
    codec = resolve_codec(options.codec).name
    if options.pix_fmt and not has_alpha(options.pix_fmt):
        return f"--pix-fmt {options.pix_fmt} has none"
    if codec not in ALPHA_FORMATS:
        return (f"{codec} has none; libvpx-vp9 in .webm or .mkv, prores_ks, qtrle or png in .mov, or ffv1 in "
                ".mkv keep it")
    containers = SIDE_CHANNEL_ALPHA.get(codec)
    if containers and path.suffix.lower() not in containers:
        return f"{codec} alpha needs a {' or '.join(containers)} file"
    return None


def choose_pix_fmt(codec: av.Codec, info: VideoInfo, options: EncodeOptions, warn, alpha: bool = False) -> str:
    supported = [f.name for f in (codec.video_formats or [])]
    if options.pix_fmt:
        if supported and options.pix_fmt not in supported:
            raise HFDError(f"{codec.name} cannot encode --pix-fmt {options.pix_fmt} (it takes {', '.join(supported)})")
        return options.pix_fmt
    deep = info.bit_depth > 8
    if alpha:  # the input's own format where a lossless codec takes it, else the one that carries alpha
        if codec.name == "ffv1" and info.pix_fmt in supported and has_alpha(info.pix_fmt):
            return info.pix_fmt
        return ALPHA_FORMATS[codec.name][deep]
    wanted = info.pix_fmt if info.pix_fmt.startswith(("yuv", "gbr")) and "a" not in info.pix_fmt[3:5] else (
        "yuv444p10le" if deep else "yuv420p")
    wanted = wanted.replace("yuvj", "yuv")
    if (info.width % 2 or info.height % 2) and wanted.startswith(SUBSAMPLED):
        warn(f"odd frame size {info.width}×{info.height}: encoding 4:4:4 chroma to keep every pixel")
        wanted = "yuv444p10le" if deep else "yuv444p"
    if not supported or wanted in supported:
        return wanted
    for candidate in (["yuv420p10le", "yuv444p10le", "yuv422p10le"] if deep else []) + ["yuv420p", "yuv444p",
                                                                                       "yuv422p10le"]:
        if candidate in supported and not ((info.width % 2 or info.height % 2) and candidate.startswith(SUBSAMPLED)):
            if deep and "10" not in candidate:
                warn(f"{codec.name} here cannot write {info.bit_depth}-bit video; writing 8-bit")
            return candidate
    return supported[0]


class VideoSink:
    """Encode RGB frames with exact timestamps; ``commit`` renames into place, ``abort`` removes."""

    def __init__(self, path: Path, info: VideoInfo, rate: Fraction, time_base: Fraction,
                 options: EncodeOptions, warn, alpha: bool = False):
        self.path, self.info, self.options, self.warn, self.alpha = path, info, options, warn, alpha
        self.codec = resolve_codec(options.codec)
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.container = None
        try:
            try:
                self.container = av.open(str(self.tmp), "w")
            except (av.error.FFmpegError, ValueError) as error:
                reason = getattr(error, "strerror", None) or error
                raise HFDError(f"{path}: cannot write a video here ({reason})") from None
            self._add_video(rate, time_base)
            self.stream_map = self._add_streams() if options.audio else {}
        except BaseException:
            self.abort()
            raise

    def _add_video(self, rate: Fraction, time_base: Fraction) -> None:
        info, options = self.info, self.options
        if self.codec.name not in self.container.supported_codecs and self.container.supported_codecs:
            raise HFDError(f"{self.path.suffix} files cannot hold {self.codec.name} video; "
                           "pick another --codec or output extension")
        stream = self.container.add_stream(self.codec.name, rate=rate)
        stream.width, stream.height = info.width, info.height
        self.clock = time_base
        stream.time_base = time_base
        stream.codec_context.time_base = time_base  # frames are stamped on the exact clock, never rounded to 1/rate
        stream.pix_fmt = choose_pix_fmt(self.codec, info, options, self.warn, self.alpha)
        spelled = CODEC_OPTIONS.get(self.codec.name, {"crf": "crf", "preset": "preset", "lossless": {}})
        codec_options = dict(spelled.get("base", {}))
        if self.alpha and self.codec.name == "prores_ks":
            codec_options["profile"] = PRORES_4444
        if options.lossless:
            codec_options.update(spelled["lossless"])
        else:
            crf = options.crf if options.crf is not None else (18 if self.codec.name in ("libx264", "libx265") else None)
            if crf is not None:
                if not spelled["crf"]:
                    self.warn(f"{self.codec.name} has no --crf; ignored")
                else:
                    codec_options[spelled["crf"]] = str(crf)
        if options.preset:
            if not spelled["preset"]:
                self.warn(f"{self.codec.name} has no --preset; ignored")
            else:
                codec_options[spelled["preset"]] = options.preset
        if self.codec.name == "libx265":
            if min(info.width, info.height) < X265_SMALLEST:
                raise HFDError(f"libx265 cannot encode frames smaller than {X265_SMALLEST}×{X265_SMALLEST} "
                               f"(this video is {info.width}×{info.height}); use --codec libx264 or ffv1")
            if min(info.width, info.height) < X265_SMALL:
                params = codec_options.get("x265-params", "log-level=error")
                codec_options["x265-params"] = f"{params}:{X265_SMALL_PARAMS}"
        stream.options = codec_options
        context = stream.codec_context
        context.colorspace = info.matrix
        context.color_range = info.range
        context.color_primaries = info.color_primaries
        context.color_trc = info.color_trc
        if info.language:
            stream.metadata["language"] = info.language
        if info.rotation:  # frames stay as stored; the player rotates them, as it did the input
            stream.set_display_rotation(info.rotation)
        self.video = stream
        self.pix_fmt = stream.pix_fmt
        self._try_encoder(codec_options, time_base)

    def _try_encoder(self, codec_options: dict, time_base: Fraction) -> None:
        """Open a throwaway encoder with the same settings: a size or option it refuses is one line now,
        before any work. (Opening the stream's own encoder this early changes what the muxer sees.)"""
        trial = av.CodecContext.create(self.codec.name, "w")
        trial.width, trial.height, trial.pix_fmt = self.info.width, self.info.height, self.pix_fmt
        trial.time_base = time_base
        trial.options = dict(codec_options)
        try:
            trial.open()
        except av.error.FFmpegError as error:
            raise HFDError(f"{self.codec.name} cannot encode {self.info.width}×{self.info.height} {self.pix_fmt} "
                           f"video with these options ({getattr(error, 'strerror', None) or error})") from None
        finally:
            del trial

    def _add_streams(self) -> dict:
        mapping = {}
        supported = self.container.supported_codecs
        for source in self.info.streams:
            name = source.codec_context.name
            codec_name = av.Codec(name, "r").name if name else name
            if not supported or codec_name in supported or name in supported:
                out = self.container.add_stream_from_template(source)
                mapping[source.index] = ("copy", out, None)
            elif source.type == "audio":
                target = self.container.default_audio_codec
                if target in ("none", None) or target not in av.codecs_available:
                    self.warn(f"audio stream {source.index} ({name}) cannot go into {self.path.suffix}; dropped")
                    continue
                self.warn(f"audio stream {source.index} ({name}) is transcoded to {target}: "
                          f"{self.path.suffix} cannot hold {name}")
                out = self.container.add_stream(target, rate=source.codec_context.sample_rate)
                out.layout = source.codec_context.layout
                mapping[source.index] = ("transcode", out, av.AudioResampler(format=out.format, layout=out.layout,
                                                                             rate=out.rate))
            else:
                self.warn(f"subtitle stream {source.index} ({name}) cannot go into {self.path.suffix}; dropped")
                continue
            if source.language:
                out.metadata["language"] = source.language
        return mapping

    def write(self, pixels: np.ndarray, pts: int) -> None:
        """One (H, W, 3) RGB or (H, W, 4) RGBA frame, uint8 or uint16."""
        deep, rgba = pixels.dtype == np.uint16, pixels.shape[2] == 4
        frame = av.VideoFrame.from_ndarray(pixels, format=("rgba64le" if deep else "rgba") if rgba else
                                           ("rgb48le" if deep else "rgb24"))
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace=self.info.matrix,
                               dst_color_range=self.info.range, interpolation=COLOUR_CONVERSION)
        frame.pts = pts
        frame.time_base = self.clock  # not the stream's: the muxer may change that once it starts
        self.container.mux(self.video.encode(frame))

    def passthrough(self, packet) -> None:
        entry = self.stream_map.get(packet.stream.index)
        if entry is None:
            return
        how, out, resampler = entry
        if how == "copy":
            packet.stream = out
            self.container.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            self.warn("a damaged audio packet was skipped")
            return
        for frame in frames:
            for converted in resampler.resample(frame):
                converted.pts = None
                self.container.mux(out.encode(converted))

    def commit(self) -> None:
        self.container.mux(self.video.encode(None))
        for how, out, resampler in self.stream_map.values():
            if how == "transcode":
                for converted in resampler.resample(None) or []:
                    self.container.mux(out.encode(converted))
                self.container.mux(out.encode(None))
        self.container.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            if self.container is not None:
                self.container.close()
        except Exception:  # noqa: BLE001 - the file is removed whatever state the container is in
            pass
        self.tmp.unlink(missing_ok=True)


class ImageSequenceSink:
    """PNG frames (16-bit for deep input) into a folder or a ``%08d.png`` pattern; written into a
    hidden folder first and moved into place on ``commit``."""

    def __init__(self, path: Path, info: VideoInfo, overwrite: bool):
        self.path, self.info = path, info
        if path.suffix and not IMAGE_PATTERN.search(path.name):
            raise HFDError(f"{path}: an image-sequence output is a folder or a pattern like frames/%08d.png")
        self.folder = path if not IMAGE_PATTERN.search(path.name) else path.parent
        self.pattern = "%08d.png" if self.folder == path else path.name
        if not self.folder.parent.is_dir():
            raise HFDError(f"{self.folder.parent}: output folder does not exist")
        self.folder.mkdir(exist_ok=True)
        if not overwrite and any(self.folder.glob(IMAGE_PATTERN.sub("*", self.pattern))):
            raise HFDError(f"{self.folder}: holds frames already (use --overwrite to replace them)")
        self.staging = Path(tempfile.mkdtemp(prefix=".hfdinterp-partial-", dir=self.folder))
        self.count = 0
        self.moved: list[Path] = []

    def write(self, pixels: np.ndarray, pts: int) -> None:
        scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
        self.count += 1
        write_image(self.staging / (self.pattern % self.count), pixels.astype(np.float32) / scale,
                    16 if pixels.dtype == np.uint16 else 8)

    def passthrough(self, packet) -> None:
        pass

    def commit(self) -> None:
        for file in sorted(self.staging.iterdir()):
            os.replace(file, self.folder / file.name)
            self.moved.append(self.folder / file.name)
        self.staging.rmdir()

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        for file in self.moved:  # stopped half-way through the commit: no partial set of frames
            file.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def open_sink(path: Path, info: VideoInfo, rate: Fraction, time_base: Fraction, options: EncodeOptions,
              overwrite: bool, warn, alpha: bool = False):
    """``alpha``: frames come as RGBA and the alpha is encoded (see ``alpha_refused``)."""
    if writes_frames(path):
        return ImageSequenceSink(path, info, overwrite)
    return VideoSink(path, info, rate, time_base, options, warn, alpha)
