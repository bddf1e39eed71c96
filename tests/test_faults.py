"""The fault and bad-input matrix, through the command line, on small generated media.

Every refused case: exit code 1 (or 128 + the signal), exactly one line on stderr, no traceback,
and nothing left in the output folder, hidden temporary files included. Every accepted odd input:
exit 0 and the output file alone in the folder.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import av
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from hfdinterp.inference import registry as weights_registry
from hfdinterp.cli import app
from hfdinterp.io.images import read_image, write_image
from hfdinterp.io.testclip import make_test_clip
from hfdinterp.inference.registry import KnownWeights
from tests.conftest import moving_square
from tests.hub_server import FakeHub

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
FAST = ("--refine-steps", "0", "-q")  # the matrix tests the plumbing, not the picture


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, message: str, code: int = 1) -> None:
    """Exit ``code``, one line on stderr holding ``message``, no traceback."""
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, (message, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], (message, result.stderr)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())  # hidden ones too


def ffmpeg(*args) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *map(str, args)], check=True, capture_output=True)


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture()
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> SimpleNamespace:
    """Every input of the matrix, generated once: 32×32 (or smaller), a few frames."""
    d = tmp_path_factory.mktemp("media")
    m = SimpleNamespace(dir=d)
    m.clip = make_test_clip(d / "clip.mp4", 32, 32, frames=4, rate=24)
    m.notes = d / "notes.mp4"
    m.notes.write_text("not a video, whatever the name says")
    m.empty = d / "empty.mp4"
    m.empty.write_bytes(b"")
    data = m.clip.read_bytes()
    m.truncated = d / "truncated.mp4"
    m.truncated.write_bytes(data[: len(data) // 2])
    corrupt = bytearray(make_test_clip(d / "long.mp4", 96, 64, frames=24, crf=30, audio=False).read_bytes())
    for i in range(len(corrupt) // 2, len(corrupt) // 2 + 400):
        corrupt[i] = (corrupt[i] * 7 + 13) % 256
    m.corrupt = d / "corrupt.mp4"
    m.corrupt.write_bytes(bytes(corrupt))
    m.audio_only = d / "audio.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac", m.audio_only)
    m.one_frame = make_test_clip(d / "one.mp4", 32, 32, frames=1, audio=False)
    m.folder = d / "no-frames"
    m.folder.mkdir()
    m.bomb_frames = d / "bomb-frames"
    m.bomb_frames.mkdir()
    m.bomb = d / "bomb.png"
    m.bomb.write_bytes(png_bomb(16000, 16000))
    m.bomb_frames.joinpath("00000001.png").write_bytes(m.bomb.read_bytes())

    # inputs that must work
    m.ok = {
        "1x1": make_test_clip(d / "1x1.mkv", 1, 1, frames=3, codec="ffv1", audio=False),
        "2x2": make_test_clip(d / "2x2.mkv", 2, 2, frames=3, codec="ffv1", audio=False),
        "odd 33x21": make_test_clip(d / "odd.mp4", 33, 21, frames=3),
        "vfr": make_test_clip(d / "vfr.mp4", 32, 32, frames=4, vfr=True),
        "rotation": make_test_clip(d / "rot.mp4", 32, 24, frames=3, rotation=90),
    }
    source = d / "src.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=32x32:r=24:d=0.125", "-c:v", "ffv1", source)  # 3 frames
    variants = {
        "10-bit hevc": ("hevc10.mkv", "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"),
        "yuv444": ("yuv444.mp4", "-c:v", "libx264", "-pix_fmt", "yuv444p"),
        "gray": ("gray.mkv", "-c:v", "ffv1", "-pix_fmt", "gray"),
        "vp9 alpha": ("alpha.webm", "-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p"),
    }
    for name, (filename, *codec) in variants.items():
        m.ok[name] = d / filename
        ffmpeg("-i", source, *codec, m.ok[name])
    m.ok["two video streams"] = d / "two-video.mkv"
    ffmpeg("-i", source, "-i", source, "-map", "0:v", "-map", "1:v", "-c", "copy", m.ok["two video streams"])
    subtitles = d / "subs.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:00,100\nhello\n\n")
    m.ok["subtitles"] = d / "subs.mkv"
    ffmpeg("-i", source, "-i", subtitles, "-map", "0", "-map", "1", "-c", "copy", m.ok["subtitles"])
    m.ok["several audio streams"] = d / "audio2.mkv"
    ffmpeg("-i", source, "-f", "lavfi", "-i", "sine=f=440:d=0.125", "-f", "lavfi", "-i", "sine=f=880:d=0.125",
           "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "copy", "-c:a", "aac", m.ok["several audio streams"])
    return m


def png_bomb(width: int, height: int) -> bytes:
    """A PNG header claiming ``width``×``height`` pixels, with a few rows of data behind it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (3 * width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


# -- video: inputs that cannot work --------------------------------------------------------------

BAD_VIDEOS = {
    "missing": ("absent", "no such file"),
    "directory": ("folder", "needs --input-fps"),
    "text named .mp4": ("notes", "not a video file"),
    "0-byte": ("empty", "not a video file"),
    "truncated": ("truncated", "not a video file"),
    "corrupt mid-stream": ("corrupt", "corrupt"),
    "audio-only": ("audio_only", "audio-only"),
    "one frame": ("one_frame", "at least two"),
    "bomb frame in a folder": ("bomb_frames", "above the largest frame size"),
}


@pytest.mark.parametrize("case", BAD_VIDEOS)
def test_video_inputs_refused(case, media, out, tiny_weights):
    attribute, message = BAD_VIDEOS[case]
    source = getattr(media, attribute, media.dir / "absent.mp4")
    extra = ("--input-fps", "24") if attribute == "bomb_frames" else ()
    refused(cli("video", source, out / "o.mp4", "-w", tiny_weights, *extra, *FAST), message)
    assert files_in(out) == []


def test_empty_frame_folder_with_a_rate(media, out, tiny_weights):
    refused(cli("video", media.folder, out / "o.mp4", "-w", tiny_weights, "--input-fps", "24", *FAST),
            "no image frames found")
    assert files_in(out) == []


# -- video: odd inputs that must work -----------------------------------------------------------

OK_VIDEOS = ["1x1", "2x2", "odd 33x21", "vfr", "10-bit hevc", "rotation", "yuv444", "gray", "vp9 alpha",
             "two video streams", "subtitles", "several audio streams"]


@pytest.mark.parametrize("case", OK_VIDEOS)
def test_video_inputs_accepted(case, media, out, tiny_weights):
    source = media.ok[case]
    target = out / "o.mkv"
    result = cli("video", source, target, "-w", tiny_weights, *FAST)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert files_in(out) == ["o.mkv"]
    assert frame_count(target) == 2 * frame_count(source)
    with av.open(str(source)) as a, av.open(str(target)) as b:
        assert b.streams.video[0].codec_context.width == a.streams.video[0].codec_context.width
        if case == "10-bit hevc":
            assert "10" in b.streams.video[0].codec_context.pix_fmt
        if case == "rotation":
            assert next(b.decode(video=0)).rotation == 90
        if case == "subtitles":  # copied packet for packet
            assert len(b.streams.subtitles) == 1
            assert [bytes(p) for p in a.demux(a.streams.subtitles[0]) if p.size] == \
                [bytes(p) for p in b.demux(b.streams.subtitles[0]) if p.size]
        if case == "several audio streams":
            assert len(b.streams.audio) == 2
        if case == "two video streams":
            assert len(b.streams.video) == 1 and "video stream 1 is left out" in result.stderr
        if case == "vp9 alpha":
            assert "alpha" in result.stderr


# -- video: where the output goes ---------------------------------------------------------------

def test_output_paths(media, tmp_path, out, tiny_weights):
    refused(cli("video", media.clip, media.clip, "-w", tiny_weights, *FAST), "overwrite the input")
    existing = out / "exists.mp4"
    existing.write_bytes(b"keep me")
    refused(cli("video", media.clip, existing, "-w", tiny_weights, *FAST), "exists already")
    assert existing.read_bytes() == b"keep me"
    existing.unlink()
    refused(cli("video", media.clip, out / "missing" / "o.mp4", "-w", tiny_weights, *FAST),
            "output folder does not exist")
    for name in ("o.xyz", "o.txt"):
        refused(cli("video", media.clip, out / name, "-w", tiny_weights, *FAST), "cannot write a video here")
    refused(cli("video", media.clip, out / "o.webm", "-w", tiny_weights, "--codec", "libx264", *FAST),
            "cannot hold libx264")
    refused(cli("video", media.clip, out / "o.mp4", "-w", tiny_weights, "--codec", "nonsense264", *FAST),
            "unknown or unavailable video encoder")
    refused(cli("video", media.clip, out / "o.mp4", "-w", tiny_weights, "--preset", "warp9", *FAST), "--preset")
    refused(cli("video", media.ok["2x2"], out / "o.mkv", "-w", tiny_weights, "--codec", "libx265", *FAST),
            "smaller than 16×16")
    assert files_in(out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(media, out, tiny_weights):
    out.chmod(0o555)
    try:
        refused(cli("video", media.clip, out / "o.mp4", "-w", tiny_weights, *FAST), "not writable")
    finally:
        out.chmod(0o755)
    assert files_in(out) == []


# -- video: every numeric option at 0, negative, NaN, inf, huge and non-numeric -----------------

BAD_NUMBER = "Invalid value"  # the option parser's own line
NUMERIC = {
    "--factor": {"0": "--factor must be", "-1": "--factor must be", "nan": BAD_NUMBER, "inf": BAD_NUMBER,
                 "1024": "--factor must be", "abc": BAD_NUMBER},
    "--fps": {"0": "positive", "-1": "positive", "nan": "not a frame rate", "inf": "not a frame rate",
              "1e9": "--fps must lie between", "abc": "not a frame rate", "0.5": "--fps must lie between",
              "500": "at most 16×"},
    "--input-fps": {"0": "positive", "-1": "positive", "nan": "not a frame rate", "inf": "not a frame rate",
                    "1e9": "--input-fps must lie between", "abc": "not a frame rate"},
    "--crf": {"-1": "--crf", "nan": BAD_NUMBER, "inf": BAD_NUMBER, "1000": "--crf", "abc": BAD_NUMBER},
    "--scene-threshold": {"-1": "--scene-threshold", "nan": "--scene-threshold", "inf": "--scene-threshold",
                          "1e300": "--scene-threshold", "abc": BAD_NUMBER},
    "--batch": {"0": "--batch", "-1": "--batch", "nan": BAD_NUMBER, "inf": BAD_NUMBER, "1000000000000": "--batch",
                "abc": BAD_NUMBER},
    "--steps": {"0": "--steps", "-1": "--steps", "nan": BAD_NUMBER, "inf": BAD_NUMBER, "1000000000000": "--steps",
                "abc": BAD_NUMBER},
    "--refine-steps": {"-1": "--refine-steps", "nan": BAD_NUMBER, "inf": BAD_NUMBER,
                       "1000000000000": "--refine-steps", "abc": BAD_NUMBER},
    "--flow-resolution": {"0": "--flow-resolution", "-1": "--flow-resolution", "nan": "--flow-resolution",
                          "inf": "--flow-resolution", "2": "--flow-resolution", "abc": "--flow-resolution"},
    "--seed": {"-1": "--seed", "nan": BAD_NUMBER, "inf": BAD_NUMBER, "100000000000000000000000000000": "--seed",
               "abc": BAD_NUMBER},
}
NUMERIC_CASES = [(option, value) for option, values in NUMERIC.items() for value in values]


@pytest.mark.parametrize("option,value", NUMERIC_CASES, ids=[f"{o}={v}" for o, v in NUMERIC_CASES])
def test_numeric_options_refused(option, value, media, out, tiny_weights):
    refused(cli("video", media.clip, out / "o.mp4", "-w", tiny_weights, "-q", f"{option}={value}"),
            NUMERIC[option][value])
    assert files_in(out) == []


def test_too_fast_output_refused_before_decoding(out, tiny_weights, tmp_path):
    fast = make_test_clip(tmp_path / "fast.mkv", 8, 8, frames=3, rate=240, codec="ffv1", audio=False)
    refused(cli("video", fast, out / "o.mkv", "-w", tiny_weights, "--factor", "8", *FAST),
            "above the largest output rate")
    assert files_in(out) == []


# -- video: a full disk --------------------------------------------------------------------------

class FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes: writes past it fail with ENOSPC."""

    room = 6000

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_disk_full_mid_run(media, out, tiny_weights, monkeypatch, tmp_path):
    from hfdinterp.io import sink

    source = make_test_clip(tmp_path / "big.mkv", 64, 64, frames=8, codec="ffv1", audio=False)
    real_open = av.open

    def open_on_full_disk(path, mode="r", **kwargs):
        if mode == "w" and ".partial" in str(path):  # the sink's file, on a disk about to fill up
            return real_open(FullDisk(path, "w+b"), "w", format="matroska", **kwargs)
        return real_open(path, mode, **kwargs)

    monkeypatch.setattr(sink.av, "open", open_on_full_disk)
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    result = cli("video", source, out / "o.mkv", "-w", tiny_weights, "--codec", "ffv1", "--batch", "1", *FAST)
    refused(result, "no space left on device")
    assert files_in(out) == []
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before


# -- video: signals ------------------------------------------------------------------------------

def _start_long_run(tmp_path: Path, tiny_weights: str):
    clip = make_test_clip(tmp_path / "long.mkv", 32, 32, frames=60, codec="ffv1", audio=False)
    folder = tmp_path / "signal-out"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "hfdinterp", "video", clip, folder / "o.mkv", "-w", tiny_weights,
               "--batch", "1", "--codec", "ffv1", "-q"]  # ffv1: the file appears with the first frame
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (folder / ".o.partial.mkv").exists():  # the sink is open: mid-run
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    time.sleep(0.5)
    return process, folder


@pytest.mark.parametrize("signum,message", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "SIGTERM")])
def test_signal_mid_run_leaves_nothing(signum, message, tmp_path, tiny_weights):
    process, folder = _start_long_run(tmp_path, tiny_weights)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], stderr
    assert files_in(folder) == []


def test_more_sigints_while_cleaning_up(tmp_path, tiny_weights):
    process, folder = _start_long_run(tmp_path, tiny_weights)
    process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 3
    while process.poll() is None and time.monotonic() < deadline:  # impatient: Ctrl-C again and again
        process.send_signal(signal.SIGINT)
        time.sleep(0.002)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and len([s for s in stderr.splitlines() if s.strip()]) == 1, stderr
    assert files_in(folder) == []


def test_x265_small_frames_do_not_abort(tmp_path, tiny_weights):
    """x265's lookahead corrupted the heap on frames under 64 pixels (glibc aborted the process)."""
    clip = make_test_clip(tmp_path / "small.mkv", 40, 24, frames=3, codec="ffv1", audio=False)
    script = (f"from typer.testing import CliRunner\nfrom hfdinterp.cli import app\n"
              f"for k in range(3):\n"
              f"    r = CliRunner().invoke(app, ['video', {str(clip)!r}, {str(tmp_path)!r} + f'/x{{k}}.mkv', "
              f"'--codec', 'libx265', '-w', {tiny_weights!r}, '--refine-steps', '0', '-q'])\n"
              f"    assert r.exit_code == 0, r.output\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(frame_count(tmp_path / f"x{k}.mkv") == 6 for k in range(3))


# -- pair ----------------------------------------------------------------------------------------

# A 16×12 CMYK JPEG (Adobe, made once with Pillow: C = 16x, M = 20y, Y = 128, K = 10).
CMYK_JPEG = base64.b64decode(
    "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwADAgIDAgIDAwMDBAMDBAUIBQUEBAUKBwcGCAwKDAwLCgsLDQ4SEA0OEQ4LCxAWEBETFBUVFQwPFxgWFBgS"
    "FBUU/8AAFAgADAAQBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAABfQECAwAE"
    "EQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6"
    "g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkA"
    "SwAAPwD69/aS/wCXr8a+mP8Ahrb/AKff/HqZX6cV+VX7SX/L1+NH/DW3/T7/AOPUUV+qv7SX/L1+Nfkv/wALJ17/AJ+/0P8AjRRX5VftJf8AL1+N"
    "H/Cyde/5+/0P+NFFf//Z")
CMYK_RGB_MEAN = (0.5086, 0.5461, 0.4784)  # what Pillow's CMYK → RGB conversion gives for it


def _png(path: Path, pixels: np.ndarray, pix_fmt: str) -> Path:
    """Write a PNG in any pixel format PyAV's PNG encoder takes (gray, gray16be, rgb48be …)."""
    source = "gray16le" if pixels.dtype == np.uint16 and pixels.ndim == 2 else (
        "gray" if pixels.ndim == 2 else "rgb24")
    context = av.CodecContext.create("png", "w")
    context.width, context.height, context.pix_fmt = pixels.shape[1], pixels.shape[0], pix_fmt
    frame = av.VideoFrame.from_ndarray(pixels, format=source).reformat(format=pix_fmt)
    path.write_bytes(b"".join(bytes(p) for p in context.encode(frame) + context.encode(None)))
    return path


@pytest.fixture()
def pair_inputs(tmp_path) -> SimpleNamespace:
    d = tmp_path / "in"
    d.mkdir()
    p = SimpleNamespace(dir=d, a=d / "a.png", b=d / "b.png")
    write_image(p.a, moving_square(24, 32, 0))
    write_image(p.b, moving_square(24, 32, 3))
    write_image(d / "small.png", moving_square(10, 10))
    grey = (moving_square(24, 32)[..., 0] * 255).astype(np.uint8)
    _png(d / "grey0.png", grey, "gray")
    _png(d / "grey1.png", np.roll(grey, 2, axis=1), "gray")
    deep = (moving_square(24, 32)[..., 0] * 65535).astype(np.uint16)
    _png(d / "deep0.png", deep, "gray16be")
    _png(d / "deep1.png", np.roll(deep, 2, axis=1), "gray16be")
    rgba = np.concatenate((moving_square(24, 32), np.full((24, 32, 1), 0.5, np.float32)), 2)
    write_image(d / "rgba0.png", rgba)
    write_image(d / "rgba1.png", np.roll(rgba, 2, axis=1))
    (d / "cmyk0.jpg").write_bytes(CMYK_JPEG)
    (d / "cmyk1.jpg").write_bytes(CMYK_JPEG)
    (d / "empty.png").write_bytes(b"")
    data = p.a.read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    (d / "bomb.png").write_bytes(png_bomb(16000, 16000))
    return p


PAIR_REFUSED = {
    "missing": (("absent.png", "b.png"), (), "no such file"),
    "different sizes": (("a.png", "small.png"), (), "differ in size"),
    "0-byte": (("empty.png", "b.png"), (), "cannot read it as an image"),
    "truncated": (("truncated.png", "b.png"), (), "cannot read it as an image"),
    "bomb header": (("bomb.png", "b.png"), (), "above the largest frame size"),
    "time 0": (("a.png", "b.png"), ("--time", "0"), "strictly between 0 and 1"),
    "time 1": (("a.png", "b.png"), ("--time", "1"), "strictly between 0 and 1"),
    "time -0.5": (("a.png", "b.png"), ("--time", "-0.5"), "strictly between 0 and 1"),
    "time nan": (("a.png", "b.png"), ("--time", "nan"), "strictly between 0 and 1"),
    "time inf": (("a.png", "b.png"), ("--time", "inf"), "strictly between 0 and 1"),
    "num 0": (("a.png", "b.png"), ("--num", "0"), "--num must lie between"),
    "num huge": (("a.png", "b.png"), ("--num", "1000000"), "--num must lie between"),
    "seed huge": (("a.png", "b.png"), ("--seed", str(2 ** 40)), "--seed"),
}


@pytest.mark.parametrize("case", PAIR_REFUSED)
def test_pair_inputs_refused(case, pair_inputs, out, tiny_weights):
    (first, second), extra, message = PAIR_REFUSED[case]
    before = files_in(pair_inputs.dir)
    result = cli("pair", pair_inputs.dir / first, pair_inputs.dir / second, "-o", out / "m.png", "-w", tiny_weights,
                 *extra)
    refused(result, message)
    assert files_in(out) == [] and files_in(pair_inputs.dir) == before


def test_pair_bomb_is_refused_before_allocating(pair_inputs):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(Exception, match="above the largest frame size"):
        read_image(pair_inputs.dir / "bomb.png")
    assert time.monotonic() - started < 0.5  # decoding it took 1.3 s and 730 MiB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


@pytest.mark.parametrize("stem,bit_depth,alpha", [("grey", 8, False), ("deep", 16, False), ("rgba", 8, True),
                                                  ("cmyk", 8, False)])
def test_pair_formats_accepted(stem, bit_depth, alpha, pair_inputs, out, tiny_weights):
    suffix = ".jpg" if stem == "cmyk" else ".png"
    result = cli("pair", pair_inputs.dir / f"{stem}0{suffix}", pair_inputs.dir / f"{stem}1{suffix}", "-o",
                 out / "m.png", "-w", tiny_weights, "--refine-steps", "0")
    assert result.exit_code == 0, result.output
    assert files_in(out) == ["m.png"]
    image = read_image(out / "m.png")
    assert image.bit_depth == bit_depth and image.has_alpha == alpha
    if stem == "cmyk":  # converted to RGB, not read as RGB + a "K" alpha
        assert np.allclose(read_image(pair_inputs.dir / "cmyk0.jpg").pixels.mean((0, 1)), CMYK_RGB_MEAN, atol=0.01)


# -- weights -------------------------------------------------------------------------------------

def _broken_weights(kind: str, good: str, folder: Path) -> Path:
    path = folder / f"{kind}.safetensors"
    data = Path(good).read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"weight": torch.zeros(3)}))
    elif kind in ("shapes", "no-metadata"):
        tensors = load_file(good)
        from safetensors import safe_open
        with safe_open(good, "pt") as handle:
            metadata = handle.metadata()
        if kind == "shapes":
            name = sorted(tensors)[0]
            tensors[name] = torch.zeros(tuple(s + 1 for s in tensors[name].shape))
        save_file(tensors, str(path), metadata=metadata if kind == "shapes" else None)
    return path


WEIGHTS_REFUSED = {"missing": "weights file not found", "truncated": "truncated.safetensors",
                   "random": "random.safetensors", "pickle": "pickle.safetensors", "shapes": "has shape",
                   "no-metadata": "not an hfdinterp weights file"}


@pytest.mark.parametrize("kind", WEIGHTS_REFUSED)
def test_weights_refused(kind, pair_inputs, out, tiny_weights, tmp_path):
    weights = _broken_weights(kind, tiny_weights, tmp_path)
    refused(cli("pair", pair_inputs.a, pair_inputs.b, "-o", out / "m.png", "-w", weights), WEIGHTS_REFUSED[kind])
    assert files_in(out) == []


PAYLOAD = b"pretend these are weights" * 100
ENTRY = KnownWeights(name="hfd-test", repo_id="hfdinterp/hfd-test", revision="v9", filename="hfd-test.safetensors",
                     sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD), description="test entry")


@pytest.mark.parametrize("case", ["unknown name", "offline", "endpoint down", "checksum mismatch"])
def test_download_refused(case, tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setitem(weights_registry.KNOWN_WEIGHTS, ENTRY.name, ENTRY)
    if case == "unknown name":
        refused(cli("download-weights", "no-such-model"), "unknown weights")
    elif case == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        refused(cli("download-weights", "hfd-test"), "HF_HUB_OFFLINE")
    elif case == "endpoint down":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        refused(cli("download-weights", "hfd-test"), "cannot reach the Hub")
    else:
        with FakeHub({"hfdinterp/hfd-test/v9/hfd-test.safetensors": b"tampered" * 50}) as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.url)
            refused(cli("download-weights", "hfd-test"), "checksum mismatch")
    downloaded = [p for p in cache.rglob("*") if p.is_file() and {"blobs", "snapshots"} & set(p.parts)]
    assert downloaded == []  # the rejected file is gone, blob and link


# -- eval ----------------------------------------------------------------------------------------

def _triplet(case: Path, sizes=((24, 32),) * 3, stems=("i0", "gt", "i1")) -> None:
    case.mkdir(parents=True)
    for stem, (height, width) in zip(stems, sizes):
        write_image(case / f"{stem}.png", moving_square(height, width))


@pytest.mark.parametrize("case,message", [("empty folder", "no <case>/{i0,gt,i1} triplets found"),
                                          ("missing gt", "has no gt image"),
                                          ("mismatched sizes", "differ in size")])
def test_eval_refused(case, message, tmp_path, tiny_weights):
    root = tmp_path / "sets"
    root.mkdir()
    _triplet(root / "set" / "good")
    if case == "empty folder":
        root = tmp_path / "empty"
        root.mkdir()
    elif case == "missing gt":
        _triplet(root / "set" / "no-gt", stems=("i0", "i1"), sizes=((24, 32),) * 2)
    else:
        _triplet(root / "set" / "sizes", sizes=((24, 32), (24, 30), (24, 32)))
    before = sorted(str(p) for p in root.rglob("*"))
    refused(cli("eval", root, "-w", tiny_weights, "--refine-steps", "0"), message)
    assert sorted(str(p) for p in root.rglob("*")) == before


# -- atomic outputs, interrupted at the worst moment ----------------------------------------------

def test_image_write_interrupted_leaves_no_temporary(tmp_path, monkeypatch):
    from hfdinterp.io import images

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(images.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "m.png", moving_square(8, 8))
    assert files_in(tmp_path) == []


def test_frame_folder_commit_interrupted_leaves_no_frames(media, tmp_path, tiny_weights, monkeypatch):
    from hfdinterp.inference.interpolator import load_interpolator
    from hfdinterp.io import sink
    from hfdinterp.video.pipeline import VideoRequest, interpolate_video

    real_replace, calls = os.replace, []
    frames = tmp_path / "frames"

    def replace_then_stop(source, target):
        if Path(target).parent == frames:  # the commit's moves, not the staging's own writes
            calls.append(target)
            if len(calls) == 3:  # a signal half-way through moving the frames into place
                raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(sink.os, "replace", replace_then_stop)
    with pytest.raises(KeyboardInterrupt):
        interpolate_video(load_interpolator(tiny_weights, refine_steps=0), VideoRequest(media.clip, frames))
    assert len(calls) == 3 and not frames.exists()
