"""`hfdinterp video` end to end on small generated clips, checked with PyAV and FFmpeg's own binary."""

import re
import subprocess
from fractions import Fraction

import av
import imageio_ffmpeg
import numpy as np
import pytest
from typer.testing import CliRunner

from hfdinterp.cli import app
from hfdinterp.io.testclip import make_test_clip

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def decode(path):
    """(frames as RGB uint8, times in seconds as Fractions, pix_fmt)"""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(Fraction(frame.pts) * frame.time_base)
        return frames, times, stream.codec_context.pix_fmt


def audio_packets(path):
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def ffmpeg_frame_count(path):
    """Count frames with the ffmpeg binary (independent of PyAV)."""
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-stats", "-i", str(path), "-map", "0:v:0",
                           "-f", "null", "-"], capture_output=True, text=True, check=True)
    return int(re.findall(r"frame=\s*(\d+)", done.stderr)[-1])


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_test_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", 96, 64, frames=12, rate=24)


def test_2x_counts_timing_audio_and_colour(clip, tmp_path, tiny_weights):
    out = tmp_path / "out.mp4"
    result = run("video", clip, out, "-w", tiny_weights, "--json", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    frames_in, times_in, _ = decode(clip)
    frames_out, times_out, _ = decode(out)
    assert len(frames_out) == 2 * len(frames_in) == 24 == ffmpeg_frame_count(out)
    assert times_out == [Fraction(k, 48) for k in range(24)]
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 48
        duration = Fraction(container.duration, av.time_base)
    with av.open(str(clip)) as container:
        assert abs(Fraction(container.duration, av.time_base) - duration) <= Fraction(1, 48)
        tags = container.streams.video[0].codec_context
        source_tags = (tags.colorspace, tags.color_primaries, tags.color_trc, tags.color_range)
    with av.open(str(out)) as container:
        tags = container.streams.video[0].codec_context
        assert (tags.colorspace, tags.color_primaries, tags.color_trc, tags.color_range) == source_tags
    assert audio_packets(out) == audio_packets(clip)  # copied byte for byte
    for a, b in zip(frames_in, frames_out[::2]):  # source frames keep their colour
        difference = b.astype(float) - a.astype(float)
        # no colour shift (a wrong matrix or range moves the mean by several levels); x264 crf 18 loss, which
        # depends on the interpolated frames around it (the tiny random model's): up to ~0.6 measured. The
        # mean |difference| is x264's loss on a 96×64 frame, 4.19 seen once under load (x264's threaded
        # encode is not bit-reproducible here): it bounds gross damage, the mean is the colour check.
        assert abs(difference.mean()) < 1 and np.abs(difference).mean() < 6
    assert '"frames_out": 24' in (tmp_path / "report.json").read_text()


def test_4x_and_exact_fps(clip, tmp_path, tiny_weights):
    out4 = tmp_path / "x4.mkv"
    assert run("video", clip, out4, "-w", tiny_weights, "--factor", "4", "-q").exit_code == 0
    _, times, _ = decode(out4)
    assert len(times) == 48
    # Matroska keeps milliseconds, and shifts every stream alike past the AAC priming samples
    assert all(abs(t - times[0] - Fraction(k, 96)) <= Fraction(2, 1000) for k, t in enumerate(times))
    out60 = tmp_path / "x60.mp4"
    result = run("video", clip, out60, "-w", tiny_weights, "--fps", "60", "-q")
    assert result.exit_code == 0, result.output
    _, times, _ = decode(out60)
    assert len(times) == 30  # 12 frames at 24 fps = 0.5 s = 30 frames at 60 fps
    assert all(abs(t - Fraction(k, 60)) < Fraction(1, 1000) for k, t in enumerate(times))


def test_no_interpolation_across_a_scene_cut(tmp_path, tiny_weights):
    clip = make_test_clip(tmp_path / "cut.mp4", 96, 64, frames=8, rate=24, cut_at=4, crf=0)
    out = tmp_path / "out.mkv"
    result = run("video", clip, out, "-w", tiny_weights, "--lossless", "--json", "-")
    assert result.exit_code == 0, result.output
    assert '"scene_cuts": 1' in result.stdout
    frames, _, _ = decode(out)
    source, _, _ = decode(clip)
    for a, b in zip(source, frames[::2]):  # lossless: source frames keep their colours; what differs is
        difference = a.astype(float) - b.astype(float)  # 4:2:0 chroma resampled once, on a harsh pattern
        assert np.abs(difference.mean(axis=(0, 1))).max() < 0.5 and np.abs(difference).mean() < 2.5
    assert np.abs(frames[7].astype(int) - frames[6].astype(int)).mean() < 1.0  # frame 3 held, no morph
    assert np.abs(frames[5].astype(int) - frames[6].astype(int)).mean() > 1.0  # elsewhere: new frames
    blend = tmp_path / "blend.mkv"
    assert run("video", clip, blend, "-w", tiny_weights, "--cut-fill", "blend", "-q").exit_code == 0
    off = tmp_path / "off.mkv"
    result = run("video", clip, off, "-w", tiny_weights, "--scene-threshold", "0", "--json", "-", "-q")
    assert '"scene_cuts": 0' in result.stdout


def test_10_bit_odd_size_and_vfr(tmp_path, tiny_weights):
    deep = make_test_clip(tmp_path / "deep.mkv", 33, 21, frames=5, rate=25, bit_depth=10, codec="ffv1", audio=False)
    out = tmp_path / "deep_out.mkv"
    result = run("video", deep, out, "-w", tiny_weights, "-q")  # libx264, which takes 10-bit here
    assert result.exit_code == 0, result.output
    frames, _, pix_fmt = decode(out)
    assert "10" in pix_fmt and frames[0].shape == (21, 33, 3) and len(frames) == 10
    vfr = make_test_clip(tmp_path / "vfr.mp4", 64, 48, frames=7, rate=24, vfr=True)
    out = tmp_path / "vfr_out.mp4"
    assert run("video", vfr, out, "-w", tiny_weights, "-q").exit_code == 0
    _, times_in, _ = decode(vfr)
    _, times_out, _ = decode(out)
    assert times_out[::2] == times_in  # source frames stay where they were
    assert times_out[1::2][:-1] == [(a + b) / 2 for a, b in zip(times_in, times_in[1:])]


def test_tiny_frames_and_frame_folders(tmp_path, tiny_weights):
    for size in (1, 2):
        clip = make_test_clip(tmp_path / f"s{size}.mkv", size, size, frames=3, rate=10, codec="ffv1", audio=False)
        result = run("video", clip, tmp_path / f"o{size}.mkv", "-w", tiny_weights, "-q", "--codec", "ffv1")
        assert result.exit_code == 0, result.output
        assert len(decode(tmp_path / f"o{size}.mkv")[0]) == 6
    clip = make_test_clip(tmp_path / "c.mp4", 32, 24, frames=3, rate=10, audio=False)
    folder = tmp_path / "frames"
    assert run("video", clip, folder, "-w", tiny_weights, "-q").exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == [f"{k:08d}.png" for k in range(1, 7)]
    back = tmp_path / "back.mp4"
    result = run("video", folder, back, "-w", tiny_weights, "--input-fps", "20", "-q")
    assert result.exit_code == 0, result.output
    assert decode(back)[1][:2] == [0, Fraction(1, 40)]


def test_audio_choices(clip, tmp_path, tiny_weights):
    silent = tmp_path / "silent.mp4"
    assert run("video", clip, silent, "-w", tiny_weights, "--no-audio", "-q").exit_code == 0
    assert audio_packets(silent) is None
    webm = tmp_path / "out.webm"
    result = run("video", clip, webm, "-w", tiny_weights, "--codec", "vp9", "-q")
    assert result.exit_code == 0, result.output
    assert "transcoded" in result.output
    with av.open(str(webm)) as container:
        assert container.streams.audio[0].codec_context.name in ("opus", "libopus", "vorbis", "libvorbis")


def test_bad_inputs_one_line_no_output(clip, tmp_path, tiny_weights):
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 48000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    single = make_test_clip(tmp_path / "single.mp4", 32, 32, frames=1, audio=False)
    corrupt = tmp_path / "corrupt.mp4"
    data = bytearray(make_test_clip(tmp_path / "long.mp4", 96, 64, frames=24, crf=30).read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 400):
        data[i] = (data[i] * 7 + 13) % 256
    corrupt.write_bytes(data)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    cases = {
        "no such file": (tmp_path / "absent.mp4", tmp_path / "o1.mp4"),
        "not a video": (text, tmp_path / "o2.mp4"),
        "audio-only": (audio_only, tmp_path / "o3.mp4"),
        "at least two": (single, tmp_path / "o4.mp4"),
        "corrupt": (corrupt, tmp_path / "o5.mp4"),
        "exists already": (clip, existing),
        "overwrite the input": (clip, clip),
        "output folder does not exist": (clip, tmp_path / "missing" / "o.mp4"),
    }
    for message, (source, target) in cases.items():
        result = run("video", source, target, "-w", tiny_weights, "-q")
        assert result.exit_code == 1, (message, result.output)
        assert message in result.output, (message, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    result = run("video", clip, tmp_path / "o6.mp4", "-w", tiny_weights, "--codec", "nonsense264")
    assert result.exit_code == 1 and "unknown or unavailable video encoder" in result.output
    result = run("video", clip, tmp_path / "o7.mp4", "-w", tiny_weights, "--factor", "3")
    assert result.exit_code == 1 and "--fps" in result.output
    assert existing.read_bytes() == b"keep me"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or p.name.startswith("o")]
    assert leftovers == [], leftovers


def test_interrupt_leaves_no_file(clip, tmp_path, tiny_weights):
    from hfdinterp.inference.interpolator import load_interpolator
    from hfdinterp.video.pipeline import VideoRequest, interpolate_video

    out = tmp_path / "out.mp4"

    def stop(progress):
        if progress.frames_out >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interpolate_video(load_interpolator(tiny_weights), VideoRequest(clip, out, batch=1), on_progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_rotation_language_and_streams_without_timestamps(tmp_path, tiny_weights):
    rotated = make_test_clip(tmp_path / "rot.mp4", 64, 48, frames=4, rotation=90, language="fra")
    out = tmp_path / "rot_out.mp4"
    assert run("video", rotated, out, "-w", tiny_weights, "-q").exit_code == 0
    with av.open(str(out)) as container:
        assert next(container.decode(video=0)).rotation == 90
        assert container.streams.audio[0].language == "fra"
    raw = make_test_clip(tmp_path / "raw.h264", 64, 48, frames=5, audio=False)  # no container, no timestamps
    out = tmp_path / "raw_out.mp4"
    result = run("video", raw, out, "-w", tiny_weights, "-q")
    assert result.exit_code == 0, result.output
    assert len(decode(out)[0]) == 10
