"""Where frames go: a video file (written to a temporary file beside it, renamed when complete)
or a folder / pattern of PNG frames. Audio and subtitle packets are copied unchanged when the
container takes their codec, otherwise audio is transcoded (with a warning) and subtitles dropped."""

from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import HFDError
from .codecs import (CODEC_OPTIONS, PRORES_4444, X265_SMALL, X265_SMALL_PARAMS, X265_SMALLEST, EncodeOptions,
                     choose_pix_fmt, resolve_codec, writes_frames)
from .images import to_float, write_image
from .source import COLOUR_CONVERSION, IMAGE_PATTERN, VideoInfo

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
        self.count += 1
        write_image(self.staging / (self.pattern % self.count), to_float(pixels), 16 if pixels.dtype == np.uint16 else 8)

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
