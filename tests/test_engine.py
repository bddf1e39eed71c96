"""The inference engine around the model: out-of-memory back-off, batch sizing, downloads, the benchmark."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from hfdinterp import benchmark
from hfdinterp.errors import HFDError
from hfdinterp.inference.refinement import FlowRefinement
from hfdinterp.inference.devices import batch_for_memory, is_out_of_memory
from hfdinterp.inference.interpolator import Interpolator
from hfdinterp.video.pipeline import VideoRequest, interpolate_video
from hfdinterp.io.codecs import EncodeOptions
from hfdinterp.io.testclip import make_test_clip


class _SmallDevice(Interpolator):
    """An interpolator on a device that runs out of memory above ``limit`` pairs per call.

    With the paper's sampling noise: without it the fixture's flow is a whole number of pixels, where
    bilinear sampling's gradient flips with the last bit a batched convolution rounds differently, and
    the refinement's steps carry that into a grey level more than real, fractional flows do."""

    def __init__(self, model, limit: int):
        super().__init__(model, torch.device("cpu"), torch.float32, refinement=FlowRefinement(steps=2), noise=1.0)
        self.limit, self.calls, self.released = limit, [], 0

    def between(self, first, second, times, seeds):
        self.calls.append(len(seeds))
        if len(seeds) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().between(first, second, times, seeds)

    def release_memory(self):
        self.released += 1


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_test_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", 64, 48, frames=9, rate=24)


@pytest.mark.parametrize("factor", [2, 4])
def test_out_of_memory_halves_the_batch_and_keeps_the_frames(clip, tmp_path, tiny_model, factor):
    lossless = EncodeOptions(codec="ffv1", audio=False)
    reference = tmp_path / "one.mkv"
    interpolate_video(_SmallDevice(tiny_model, limit=8), VideoRequest(clip, reference, factor=factor, batch=1,
                                                                       encode=lossless, scene_threshold=0))
    small = _SmallDevice(tiny_model, limit=1)
    warnings = []
    summary = interpolate_video(small, VideoRequest(clip, tmp_path / "halved.mkv", factor=factor, batch=4,
                                                    encode=lossless, scene_threshold=0), on_warning=warnings.append)
    assert small.calls[:3] == [4, 2, 1]  # 4 fails, 2 fails, then pairs one by one
    assert max(small.calls[3:]) <= 1 and small.released >= 2  # the rest of the video stays at the size that fit
    assert warnings[:2] == ["out of memory with 4 pairs per batch: continuing with 2",
                            "out of memory with 2 pairs per batch: continuing with 1"]
    assert summary.frames_out == 9 * factor
    halved, one = np.stack(_frames(tmp_path / "halved.mkv")), np.stack(_frames(reference))
    difference = np.abs(halved.astype(int) - one)
    # the same seeds per pair, so the same frames, up to the last bit a batched convolution rounds differently
    # (which recursion may carry into a level or two)
    assert difference.max() <= 2 and (difference > 0).mean() < 1e-3


def test_out_of_memory_with_one_pair_is_one_clear_error(clip, tmp_path, tiny_model):
    with pytest.raises(HFDError, match="out of memory on cpu with one pair per batch at 64×48"):
        interpolate_video(_SmallDevice(tiny_model, limit=0), VideoRequest(clip, tmp_path / "x.mp4", batch=2))
    assert not (tmp_path / "x.mp4").exists()


def test_what_counts_as_out_of_memory_and_the_batch_that_fits():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("Sizes of tensors must match"))
    assert not is_out_of_memory(ValueError("out of memory"))
    gib = 2 ** 30
    assert batch_for_memory(free_bytes=10 * gib, pair_bytes=gib) == 6  # 60 % of the free memory
    assert batch_for_memory(free_bytes=gib, pair_bytes=4 * gib) == 1
    assert batch_for_memory(free_bytes=100 * gib, pair_bytes=gib // 8) == 16


@pytest.mark.parametrize("deep", [False, True])
def test_downloads_quantise_like_the_video_path(tiny_model, deep):
    interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32)
    images = torch.rand(2, 3, 5, 7) * 1.2 - 0.1
    frames = interpolator.download(images, deep).get()
    scale = 65535 if deep else 255
    expected = (images.clamp(0, 1) * scale).round().permute(0, 2, 3, 1).numpy().astype(np.uint16 if deep else np.uint8)
    assert len(frames) == 2 and frames[0].dtype == expected.dtype
    assert np.array_equal(np.stack(frames), expected)


class _FakeRife:
    calls = 0

    @classmethod
    def load(cls, path=None):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        return cls()

    @staticmethod
    def interpolate(teacher, image0, image1, time):  # stands in for teacher.teacher_interpolate
        type(teacher).calls += 1
        return (image0 + image1) / 2


def test_pair_benchmark_prints_the_ratio_to_rife_when_it_loads(monkeypatch, capsys, tiny_weights):
    import hfdinterp.train.teacher as teacher

    monkeypatch.setattr(benchmark, "load_rife", lambda path: (_FakeRife.load(path), None))
    monkeypatch.setattr(teacher, "teacher_interpolate", _FakeRife.interpolate)
    benchmark.main(["--pair", "64x48", "--repeats", "2", "--weights", tiny_weights])
    out = capsys.readouterr().out
    assert "pair: 64×48" in out and "median of 2" in out and "÷ RIFE 4.x (IFNet)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert float(rows["RIFE"][-1]) == 1.0 and float(rows["hfdinterp"][-1]) > 0
    assert _FakeRife.calls == 3  # the warm-up and two timed calls


def test_pair_benchmark_without_rife_says_why_in_one_line(monkeypatch, capsys, tiny_weights):
    monkeypatch.setattr(benchmark, "load_rife", lambda path: (None, "RIFE row skipped: no RIFE 4.x weights found"))
    benchmark.main(["--pair", "48x32", "--repeats", "1", "--weights", tiny_weights])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "RIFE row skipped: no RIFE 4.x weights found"
    assert [line.split()[0] for line in out[2:-1]] == ["hfdinterp"]


def test_video_benchmark_on_too_few_frames_is_one_clear_line(clip, tiny_weights):
    with pytest.raises(SystemExit, match="needs at least 4 frames, got 2"):
        benchmark.main([str(clip), "--frames", "2", "--weights", tiny_weights])


def test_synthetic_pair_is_the_size_asked_for_and_moves():
    image0, image1 = benchmark.synthetic_pair(70, 40)
    assert image0.shape == image1.shape == (40, 70, 3) and 0 <= image0.min() and image0.max() <= 1
    assert np.allclose(image0[:-3, :-6], image1[3:, 6:])


def test_rife_row_is_skipped_without_weights_and_fetches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HFDINTERP_CACHE", str(tmp_path))
    teacher, why_not = benchmark.load_rife(None)
    assert teacher is None and "no RIFE 4.x weights" in why_not
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    teacher, why_not = benchmark.load_rife(tmp_path / "bad.pkl")
    assert teacher is None and why_not.startswith("RIFE row skipped")


def test_the_benchmarks_clips_read_back_alike_in_hfdinterp_and_in_its_scoring(tmp_path):
    """At 720 lines an untagged file is BT.709 to hfdinterp (and to players) but BT.601 to PyAV's
    plain conversion, the scorer's: the benchmark's own files are tagged, so both read the same."""
    from hfdinterp.io.source import VideoSource

    rng = np.random.default_rng(0)
    colours = rng.integers(30, 226, size=(4, 1, 1, 3))
    frames = [np.broadcast_to(c, (720, 32, 3)).astype(np.uint8).copy() for c in colours]  # saturated flat colours
    path = tmp_path / "clip.mkv"
    benchmark.write_frames(path, frames, rate=__import__("fractions").Fraction(24))
    scored, _ = benchmark.decode(path)
    with VideoSource(path, with_streams=False) as source:
        read = [item.pixels for item in source.items()]
    for mine, theirs, truth in zip(read, scored, frames):
        assert np.abs(mine.astype(int) - theirs).max() <= 1
        assert np.abs(theirs.astype(int) - truth).max() <= 2


@pytest.mark.parametrize("noise", [-0.1, 1.5, float("nan")])
def test_an_interpolator_built_directly_refuses_noise_out_of_range(tiny_model, noise):
    with pytest.raises(ValueError, match="noise must be from 0 to 1"):
        Interpolator(tiny_model, torch.device("cpu"), torch.float32, noise=noise)
    assert Interpolator(tiny_model, torch.device("cpu"), torch.float32, noise=0.5).noise == 0.5
