"""`hfdinterp video` keeps an input's alpha where the output can carry it, interpolated like the colour.

The clips are generated here: a moving disc over a texture, its alpha the same everywhere in a frame and
rising over time (40, 100, 160, 220). Whatever flow and mask the model finds, warping a flat alpha gives
M·α0 + (1 − M)·α1, so every new frame's alpha must lie between its neighbours' and be neither of them.
"""

from fractions import Fraction

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from hfdinterp.cli import app
from hfdinterp.io.images import read_image, write_image
from hfdinterp.io.testclip import scene

runner = CliRunner()
ALPHAS = (40, 100, 160, 220)
ALPHA_DECODERS = {"vp9": "libvpx-vp9", "vp8": "libvpx"}  # FFmpeg's own VP8/VP9 decoders ignore alpha
FAST = ("--refine-steps", "0", "-q", "--scene-threshold", "0")


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def rgba_frames(width=32, height=32):
    frames = []
    for index, alpha in enumerate(ALPHAS):
        colour = np.rint(scene(width, height, index) * 255).astype(np.uint8)
        frames.append(np.dstack((colour, np.full((height, width), alpha, np.uint8))))
    return frames


def write_clip(path, codec, pix_fmt, options=None):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = 32, 32, pix_fmt
        stream.options = options or {}
        for index, pixels in enumerate(rgba_frames()):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgba").reformat(format=pix_fmt)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_rgba(path):
    """(RGBA uint8 frames, times, the decoded pixel format); VP9/VP8 through libvpx, which reads their alpha."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = ALPHA_DECODERS.get(stream.codec_context.name)
        context = stream.codec_context
        if decoder:
            context = av.CodecContext.create(decoder, "r")
            context.extradata = stream.codec_context.extradata
        frames, times, formats = [], [], set()
        for packet in container.demux(stream):
            for frame in context.decode(packet):
                frames.append(frame.to_ndarray(format="rgba"))
                times.append(Fraction(frame.pts) * frame.time_base)
                formats.add(frame.format.name)
        return frames, times, formats.pop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("alpha")
    return {
        "webm": write_clip(folder / "in.webm", "libvpx-vp9", "yuva420p", {"lossless": "1"}),
        "mov": write_clip(folder / "in.mov", "qtrle", "argb"),
    }


def assert_alpha_interpolated(frames, factor):
    """Source frames keep their alpha; each new one lies strictly between its neighbours'."""
    alpha = [frame[..., 3].astype(float) for frame in frames]
    assert len(alpha) == len(ALPHAS) * factor
    for k, value in enumerate(ALPHAS):
        assert np.abs(alpha[k * factor] - value).max() <= 2
    for k in range(len(ALPHAS) - 1):
        low, high = ALPHAS[k], ALPHAS[k + 1]
        for new in alpha[k * factor + 1:(k + 1) * factor]:
            assert low - 2 <= new.min() and new.max() <= high + 2
            assert low + 3 < new.mean() < high - 3  # a mix of both, not a copy of either
        previous = [a.mean() for a in alpha[k * factor:(k + 1) * factor + 1]]
        assert previous == sorted(previous)  # rising with time, as the source's
    for held in alpha[-factor + 1:]:  # the last frame is held
        assert np.abs(held - ALPHAS[-1]).max() <= 2


CARRIERS = {  # output name, codec options, factor, the pixel format decoded
    "vp9 webm": ("o.webm", ("--codec", "vp9", "--lossless"), 2, "yuva420p"),
    "vp9 mkv 4x": ("o.mkv", ("--codec", "libvpx-vp9", "--lossless"), 4, "yuva420p"),
    "prores 4444": ("o.mov", ("--codec", "prores"), 2, "yuva444p12le"),  # written 10-bit, decoded 12
    "qtrle": ("o.mov", ("--codec", "qtrle"), 2, "argb"),
    "png": ("o.mov", ("--codec", "png"), 4, "rgba"),
    "ffv1": ("o.mkv", ("--codec", "ffv1"), 2, "yuva444p"),
}


@pytest.mark.parametrize("source", ["webm", "mov"])
@pytest.mark.parametrize("case", CARRIERS)
def test_alpha_is_interpolated_and_encoded(case, source, clips, tmp_path, tiny_weights):
    name, options, factor, pix_fmt = CARRIERS[case]
    target = tmp_path / name
    result = run("video", clips[source], target, "-w", tiny_weights, "--factor", factor, *options, *FAST)
    assert result.exit_code == 0, result.output
    assert "alpha" not in result.output
    frames, times, written = decode_rgba(target)
    assert written == pix_fmt
    assert_alpha_interpolated(frames, factor)
    assert_times(times, factor * 24)


def assert_times(times, rate):
    """At k / rate, to the millisecond that Matroska and WebM keep."""
    assert len(times) == len(ALPHAS) * rate // 24
    assert all(abs(t - Fraction(k, rate)) <= Fraction(1, 1000) for k, t in enumerate(times))


def test_alpha_at_an_exact_rate(clips, tmp_path, tiny_weights):
    """--fps puts new frames at their own times (here 1/3 and 2/3 of the way): alpha follows them too."""
    target = tmp_path / "o.mkv"
    result = run("video", clips["mov"], target, "-w", tiny_weights, "--fps", "72", "--codec", "ffv1", *FAST)
    assert result.exit_code == 0, result.output
    frames, times, _ = decode_rgba(target)
    assert_alpha_interpolated(frames, 3)
    assert_times(times, 72)


def test_same_colour_and_timing_as_without_alpha(clips, tmp_path, tiny_weights):
    """Carrying the alpha changes nothing else: the colour and the timestamps match a run that drops it."""
    kept, dropped = tmp_path / "kept.mkv", tmp_path / "dropped.mkv"
    encode = ("--codec", "ffv1", "--factor", "4")
    assert run("video", clips["mov"], kept, "-w", tiny_weights, *encode, *FAST).exit_code == 0
    result = run("video", clips["mov"], dropped, "-w", tiny_weights, *encode, "--pix-fmt", "yuv444p", "--drop-alpha",
                 *FAST)
    assert result.exit_code == 0 and "alpha channel is dropped (--drop-alpha)" in result.output
    with_alpha, times_a, _ = decode_rgba(kept)
    without, times_b, pix_fmt = decode_rgba(dropped)
    assert pix_fmt == "yuv444p" and times_a == times_b and len(with_alpha) == len(without) == 16
    assert all((w[..., 3] == 255).all() for w in without)
    for a, b in zip(with_alpha, without):  # the same frames (yuva444p and yuv444p: the same YUV)
        assert np.abs(a[..., :3].astype(int) - b[..., :3].astype(int)).max() <= 1


@pytest.mark.parametrize("name,options,reason", [
    ("o.mp4", (), "libx264 has none"),
    ("o.mp4", ("--codec", "vp9"), "libvpx-vp9 alpha needs a .webm or .mkv file"),
    ("o.webm", ("--codec", "vp9", "--pix-fmt", "yuv420p"), "--pix-fmt yuv420p has none"),
])
def test_alpha_dropped_where_the_output_cannot_carry_it(name, options, reason, clips, tmp_path, tiny_weights):
    target = tmp_path / name
    result = run("video", clips["webm"], target, "-w", tiny_weights, *options, *FAST)
    assert result.exit_code == 0, result.output
    assert f"alpha channel is dropped ({reason}" in " ".join(result.output.split())
    frames, times, _ = decode_rgba(target)
    assert len(frames) == 8 and all((f[..., 3] == 255).all() for f in frames)


def test_frame_folders_keep_alpha(tmp_path, tiny_weights):
    frames_in = tmp_path / "in"
    frames_in.mkdir()
    for index, pixels in enumerate(rgba_frames()):
        write_image(frames_in / f"{index:04d}.png", pixels.astype(np.float32) / 255)
    result = run("video", frames_in, tmp_path / "out", "--input-fps", "24", "-w", tiny_weights, *FAST)
    assert result.exit_code == 0, result.output
    images = [read_image(p) for p in sorted((tmp_path / "out").glob("*.png"))]
    assert all(image.has_alpha for image in images)
    assert_alpha_interpolated([np.rint(image.pixels * 255).astype(np.uint8) for image in images], 2)
