"""The flow pass on downscaled frames: the flow's geometry, the default by frame size, the option."""

import numpy as np
import pytest
import torch

from hfdinterp.errors import HFDError
from hfdinterp.inference import interpolator as interpolator_module
from hfdinterp.inference.flow_resolution import (PROBE_MOTION, auto_resolution, downscaled, full_resolution_flows,
                                                 motion_is_large, parse_flow_resolution, small_padder)
from hfdinterp.inference.interpolator import PROBE_SEED, Interpolator

from .conftest import make_moving_model, moving_square


def test_a_uniform_motion_sampled_at_half_resolution_is_twice_as_many_full_resolution_pixels():
    padder = small_padder((96, 160), 0.5, 32)  # 48×80 padded to 64×96
    flow = torch.tensor([3.0, -1.0, -3.0, 1.0]).view(1, 4, 1, 1).expand(1, 4, 64 // 4, 96 // 4)
    flows = full_resolution_flows(flow, padder, (96, 160))
    assert [tuple(f.shape[-2:]) for f in flows] == [(6, 10), (12, 20), (24, 40)]
    for level in flows:
        assert torch.allclose(level, torch.tensor([6.0, -2.0, -6.0, 2.0]).view(1, 4, 1, 1).expand_as(level))


def test_the_padding_of_the_small_frames_is_cropped_before_upsampling():
    padder = small_padder((64, 64), 0.5, 64)  # 32×32 content in a 64×64 padded frame
    flow = torch.zeros(1, 4, 16, 16)
    flow[..., 4:12, 4:12] = 1.0  # the content (rows 16–48 of 64 at 1/4) moves; the padding does not
    finest = full_resolution_flows(flow, padder, (64, 64))[2]
    assert finest.shape[-2:] == (16, 16)
    assert torch.allclose(finest[..., 4:12, 4:12], torch.full((1, 4, 8, 8), 2.0), atol=0.3)
    assert float(finest.mean()) > 1.5  # all content: the padding's zero flow was dropped


def test_downscaled_frames_are_padded_to_the_models_multiple():
    small = downscaled(torch.rand(2, 3, 128, 192), 0.5, 64)
    assert small.shape == (2, 3, 64, 128)


def test_large_frames_sample_their_flow_at_half_resolution_by_default():
    assert auto_resolution(256, 448) == 1.0
    assert auto_resolution(480, 640) == 1.0
    assert auto_resolution(480, 854) == 0.5
    assert auto_resolution(436, 1024) == 0.5
    assert auto_resolution(2160, 3840) == 0.5


@pytest.mark.parametrize("text, value", [("auto", None), (None, None), ("0.5", 0.5), (1, 1.0), ("0.25", 0.25)])
def test_flow_resolution_values(text, value):
    assert parse_flow_resolution(text) == value


@pytest.mark.parametrize("text", ["0", "2", "-0.5", "nan", "inf", "half", "0.1"])
def test_flow_resolution_refuses_what_it_cannot_run(text):
    with pytest.raises(HFDError, match="--flow-resolution"):
        parse_flow_resolution(text)


def test_half_resolution_flow_gives_a_full_size_frame_and_is_reproducible(tiny_model):
    interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32, flow_resolution=0.5)
    image0, image1 = moving_square(72, 100), moving_square(72, 100, shift=6)
    first = interpolator.interpolate(image0, image1, seed=3, return_all=True)
    again = interpolator.interpolate(image0, image1, seed=3)
    assert first["image"].shape == (72, 100, 3) and first["flow"].shape == (4, 72, 100)
    np.testing.assert_array_equal(first["image"], again)
    prepared = interpolator.prepare(torch.zeros(2, 3, 72, 100))
    # 72×100 is padded to 96×128 (the tiny model's multiple, 32), halved to 48×64, padded to 64×64
    assert prepared.flow_features[0].shape[-2:] == (32, 32)  # its 1/2 level
    middle = interpolator.between(prepared[0], prepared[1], torch.tensor([0.5]), [0])
    recursed = interpolator.prepare_padded(middle["padded"], prepared.padder)  # 4×: the middle frame is a source in turn
    assert [f.shape for f in recursed.flow_features] == [f.shape for f in prepared[0].flow_features]


@pytest.mark.parametrize("resolution, right", [(1.0, 1.0), (0.5, 2.0)])
def test_a_flow_sampled_on_half_size_frames_moves_twice_as_many_full_resolution_pixels(tiny_model, resolution, right):
    # the tiny model samples TINY_FLOW in the pixels of the frames it is given: ±1 px
    interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32, refinement=None,
                                flow_resolution=resolution)
    flow = interpolator.interpolate(moving_square(96, 128), moving_square(96, 128, shift=4), return_all=True)["flow"]
    # (at the default noise 0, exactly; a wrong scale would be 1 px off)
    np.testing.assert_allclose(np.median(flow.reshape(4, -1), axis=1), [-right, 0, right, 0], atol=0.6)


def test_full_resolution_flow_prepares_no_second_pyramid(tiny_model):
    interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32, flow_resolution=1.0)
    assert interpolator.prepare(torch.zeros(1, 3, 72, 100)).flow_features is None


def _bilateral(motion: torch.Tensor) -> torch.Tensor:
    """A bilateral flow (1, 4, h, w) whose motion between the frames is ``motion`` (h, w) px along x."""
    return torch.stack((-motion / 2, torch.zeros_like(motion), motion / 2, torch.zeros_like(motion)))[None]


@pytest.mark.parametrize("moving_share, motion, resolution, large", [
    (0.2, PROBE_MOTION + 8, 1.0, True),
    (0.2, PROBE_MOTION - 8, 1.0, False),  # too slow
    (0.05, PROBE_MOTION + 8, 1.0, False),  # too few pixels
    (0.2, PROBE_MOTION + 8, 0.5, False),  # at half resolution the pass sees half the pixels
    (0.2, 2 * PROBE_MOTION + 8, 0.5, True),
])
def test_large_motion_is_a_share_of_pixels_moving_past_the_probes_threshold(moving_share, motion, resolution, large):
    field = torch.zeros(40, 50)
    field[: int(40 * moving_share)] = motion
    assert motion_is_large(_bilateral(field), resolution).tolist() == [large]


@pytest.mark.parametrize("flow, probe_wins", [((-1.0, 0.0, 1.0, 0.0), False), ((-40.0, 0.0, 40.0, 0.0), True)])
def test_auto_keeps_the_probes_flow_for_large_motion_and_changes_nothing_for_small(flow, probe_wins):
    model = make_moving_model(flow)  # samples ``flow`` in the pixels of the frames it is given
    image0, image1 = moving_square(72, 100), moving_square(72, 100, shift=2)
    # With the paper's noise, so that which seed the probe's pass draws is checked too.
    auto = Interpolator(model, torch.device("cpu"), torch.float32, noise=1.0).interpolate(image0, image1, seed=5,
                                                                                         return_all=True)
    # 72×100 frames: auto is 1 by size, the probe runs at 0.5; ±40 px there is 160 px of full-resolution motion
    resolution, seed = (0.5, 5 + PROBE_SEED) if probe_wins else (1.0, 5)
    fixed = Interpolator(model, torch.device("cpu"), torch.float32, flow_resolution=resolution, noise=1.0)
    expected = fixed.interpolate(image0, image1, seed=seed, return_all=True)
    np.testing.assert_array_equal(auto["flow"], expected["flow"])
    np.testing.assert_array_equal(auto["image"], expected["image"])


def test_in_a_batch_each_pair_gets_the_flow_its_own_probe_chose(tiny_model, monkeypatch):
    monkeypatch.setattr(interpolator_module, "motion_is_large", lambda flow, resolution: torch.tensor([True, False]))
    # without the refinement, whose Adam steps amplify the batch's rounding in flat regions
    auto = Interpolator(tiny_model, torch.device("cpu"), torch.float32, refinement=None, noise=1.0)  # seeds matter
    frames = torch.from_numpy(np.stack([moving_square(64, 96, shift=s) for s in (0, 3, 6)])).permute(0, 3, 1, 2)
    prepared = auto.prepare(frames)
    both = auto.between(prepared[0:2], prepared[1:3], torch.tensor([0.5, 0.5]), [1, 2])["flow"]
    for index, (resolution, seed) in enumerate(((0.5, 1 + PROBE_SEED), (1.0, 2))):
        fixed = Interpolator(tiny_model, torch.device("cpu"), torch.float32, refinement=None, flow_resolution=resolution,
                             noise=1.0)
        alone = fixed.prepare(frames)
        expected = fixed.between(alone[index], alone[index + 1], torch.tensor([0.5]), [seed])["flow"]
        # batched and single convolutions round differently (~1e-4 px); the wrong choice is off by ~1 px
        torch.testing.assert_close(both[index:index + 1], expected, rtol=0, atol=2e-3)


def test_a_chosen_flow_resolution_runs_no_probe(tiny_model):
    for resolution, probed in ((None, True), (1.0, False), (0.5, False)):
        interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32, flow_resolution=resolution)
        assert (interpolator.prepare(torch.zeros(1, 3, 72, 100)).probe_features is not None) == probed


def test_the_probe_judges_only_the_flow_over_the_frames_not_their_padding():
    from hfdinterp.inference.flow_resolution import content

    padder = small_padder((100, 100), 0.5, 64)  # 50×50 content in a 64×64 padded frame: 7 px of padding each side
    coarsest = torch.zeros(1, 4, 4, 4)  # its 1/16 level
    assert content(coarsest, padder).shape[-2:] == (3, 3)
    moving = torch.zeros(1, 4, 4, 4)
    moving[:, 2:, 0, 0] = PROBE_MOTION  # one of the content's 9 pixels: 11 %, over the share; 1 of 16 is not
    assert motion_is_large(content(moving, padder), 1.0).tolist() == [True]
    assert motion_is_large(moving, 1.0).tolist() == [False]
