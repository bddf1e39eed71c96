"""`hfdinterp video --devices`: windows dealt out to one model per device give one device's output."""

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from hfdinterp.cli import app
from hfdinterp.video import devices as parallel
from hfdinterp.io.testclip import make_test_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):  # a scene cut inside, so the carried scene-cut thumbnail matters too
    return make_test_clip(tmp_path_factory.mktemp("devices") / "clip.mp4", 64, 48, frames=9, rate=24, cut_at=5)


def frames(path):
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def run(clip, out, weights, *extra):
    result = CliRunner().invoke(app, ["video", str(clip), str(out), "-w", weights, "--codec", "ffv1", "--batch", "2",
                                      "--refine-steps", "0", "--noise", "1", "--quiet", *extra])  # the paper's noise: each window's seeds matter
    assert result.exit_code == 0, result.output
    return frames(out)


@pytest.mark.parametrize("timing", [["--factor", "2"], ["--factor", "4"], ["--fps", "60"]])
def test_two_cpu_workers_give_exactly_one_devices_output(clip, tmp_path, tiny_weights, timing, monkeypatch):
    in_flight = []
    finished = parallel.ParallelEngine._finished

    def watched(self, wait_for):
        in_flight.append(len(self.in_flight))
        return finished(self, wait_for)

    monkeypatch.setattr(parallel.ParallelEngine, "_finished", watched)
    one = run(clip, tmp_path / "one.mkv", tiny_weights, *timing)
    two = run(clip, tmp_path / "two.mkv", tiny_weights, "--devices", "cpu,cpu", *timing)
    assert len(one) == len(two) > 9 and [pts for pts, _ in one] == [pts for pts, _ in two]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(one, two))
    assert any(not np.array_equal(a, one[0][1]) for _, a in one)  # the frames differ: a real comparison
    assert len(in_flight) >= 4 and max(in_flight) <= 2  # several windows, never more than one per device in flight


def test_devices_option_errors(clip, tmp_path, tiny_weights):
    for extra, message in ((["--devices", ","], "comma-separated"), (["--devices", "cpu,cpu", "--device", "cpu"], "not both")):
        result = CliRunner().invoke(app, ["video", str(clip), str(tmp_path / "x.mp4"), "-w", tiny_weights, *extra])
        assert result.exit_code == 1 and message in result.output, result.output
        assert not (tmp_path / "x.mp4").exists()
