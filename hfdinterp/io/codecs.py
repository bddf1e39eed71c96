"""Video encoders: their names, how their options are spelled, which pixel format an output gets,
and whether it can carry an alpha channel. Checked before any frame is decoded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from ..errors import HFDError
from .source import VideoInfo, is_image_sequence

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
