import copy
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hfdinterp import HFD, PRESETS
from hfdinterp.inference.devices import pick_device, pick_dtype
from hfdinterp.errors import HFDError
from hfdinterp.inference.ensemble import sample_both_ways
from hfdinterp.inference.interpolator import Interpolator
from tests.conftest import TINY_FLOW, moving_square


@pytest.fixture()
def interpolator(tiny_model):
    return Interpolator(tiny_model, torch.device("cpu"), torch.float32)


def test_presets_build_and_differ_in_size():
    counts = {name: sum(p.numel() for p in HFD(cfg).parameters()) for name, cfg in PRESETS.items()}
    assert counts["tiny"] < counts["small"] < counts["base"]


def test_one_denoiser_shared_by_the_three_levels(tiny_model):
    denoiser = tiny_model.denoiser
    assert len(denoiser.flow_projectors) == len(denoiser.feature_projectors) == len(denoiser.heads) == 3
    assert not hasattr(denoiser, "unets")  # exactly one U-Net
    assert sum(isinstance(m, type(denoiser.unet)) for m in tiny_model.modules()) == 1


def test_forward_shapes_and_ranges(tiny_model):
    image0, image1 = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = tiny_model(image0, image1, torch.tensor([0.5, 0.25]), torch.Generator().manual_seed(0))
    assert out["image"].shape == (2, 3, 64, 64)
    assert out["flow"].shape == (2, 4, 64, 64)
    assert 0 <= out["mask"].min() and out["mask"].max() <= 1


@pytest.mark.parametrize("height,width", [(1, 1), (2, 2), (17, 33), (70, 45)])
def test_any_size_comes_back_the_same_size(interpolator, height, width):
    image = moving_square(height, width)
    out = interpolator.interpolate(image, image, 0.5)
    assert out.shape == (height, width, 3)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_batch_of_two_equals_two_of_one(tiny_model):
    # Without the test-time refinement: Adam's normalised steps turn the last bit a batched
    # convolution rounds differently into up to 0.15 px of flow (measured on this model).
    # With the paper's noise, so that each pair's own seed is what makes the two agree.
    interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32, refinement=None, noise=1.0)
    frames = torch.from_numpy(np.stack([moving_square(40, 56, s) for s in (0, 3, 6)])).permute(0, 3, 1, 2)
    prepared = interpolator.prepare(frames)
    both = interpolator.between(prepared[0:2], prepared[1:3], torch.tensor([0.5, 0.3]), [7, 8])["image"]
    first = interpolator.between(prepared[0], prepared[1], torch.tensor([0.5]), [7])["image"]
    second = interpolator.between(prepared[1], prepared[2], torch.tensor([0.3]), [8])["image"]
    assert torch.allclose(both, torch.cat((first, second)), atol=1e-5)


def test_same_seed_same_output_with_the_papers_noise(tiny_model):
    interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32, noise=1.0)
    a, b = moving_square(32, 48), moving_square(32, 48, 4)
    assert np.array_equal(interpolator.interpolate(a, b, seed=5), interpolator.interpolate(a, b, seed=5))
    assert not np.allclose(interpolator.interpolate(a, b, seed=5), interpolator.interpolate(a, b, seed=6), atol=1e-3)


def test_without_noise_the_seed_does_not_matter_and_the_flow_is_the_priors_mean_path(interpolator, tiny_model):
    """The default sampler (noise 0) draws nothing: every seed gives the same frame, and a noise scale
    between 0 and 1 lands between the two samplers' frames."""
    a, b = moving_square(32, 48), moving_square(32, 48, 4)
    assert interpolator.noise == 0
    assert np.array_equal(interpolator.interpolate(a, b, seed=5), interpolator.interpolate(a, b, seed=6))
    noisy = Interpolator(tiny_model, torch.device("cpu"), torch.float32, noise=1.0, refinement=None)
    some = Interpolator(tiny_model, torch.device("cpu"), torch.float32, noise=0.1, refinement=None)
    none = Interpolator(tiny_model, torch.device("cpu"), torch.float32, noise=0.0, refinement=None)
    off = lambda other: np.abs(other.interpolate(a, b, seed=5) - none.interpolate(a, b, seed=5)).mean()  # noqa: E731
    assert 0 < off(some) < off(noisy)


def test_noise_outside_zero_to_one_is_refused():
    from hfdinterp.errors import HFDError
    from hfdinterp.inference.config import InferenceConfig

    for noise in (-0.1, 1.5, float("nan")):
        with pytest.raises(HFDError, match="--noise"):
            InferenceConfig(noise=noise).check()


def test_the_tiny_model_moves_pixels_by_its_known_flow(tiny_model):
    """The fixture's flow is TINY_FLOW (exactly, at the default noise 0), and the output frame is the two frames
    warped by it: the tests below see real motion, not a model that copies its inputs."""
    interpolator = Interpolator(tiny_model, torch.device("cpu"), torch.float32, refinement=None)
    a, b = moving_square(32, 48), moving_square(32, 48, 4)
    out = interpolator.interpolate(a, b, seed=0, return_all=True)
    mean_flow = out["flow"].reshape(4, -1).mean(1)
    assert np.allclose(mean_flow, TINY_FLOW, atol=0.25) and np.abs(out["flow"]).max() < 2
    ramp = np.broadcast_to(np.linspace(0, 1, 48, dtype=np.float32)[None, :, None], (32, 48, 3)).copy()
    moved = interpolator.interpolate(ramp, ramp, seed=0)  # a horizontal ramp sampled 1 px to the left and right
    assert np.abs(moved - ramp).max() > 1e-3


def test_ensemble_flow_is_the_same_whichever_way_the_pair_is_given(tiny_model):
    a = tiny_model.encode(torch.from_numpy(moving_square(64, 64)).permute(2, 0, 1)[None])
    b = tiny_model.encode(torch.from_numpy(moving_square(64, 64, 4)).permute(2, 0, 1)[None])
    seeded = lambda: [torch.Generator().manual_seed(3)]  # noqa: E731
    with torch.no_grad():
        forward = sample_both_ways(tiny_model, a, b, torch.tensor([0.3]), seeded())
        backward = sample_both_ways(tiny_model, b, a, torch.tensor([0.7]), seeded())
        plain = tiny_model.sample_flows(a, b, torch.tensor([0.3]), seeded())
    for f, r, p in zip(forward, backward, plain):
        assert torch.allclose(f, torch.cat((r[:, 2:], r[:, :2]), 1), atol=1e-6)  # f_τ→0 ↔ f_τ→1
        assert not torch.allclose(f, p)  # the reversed pass really contributes


def test_ensemble_interpolator_is_reproducible_and_differs_from_one_pass(tiny_model):
    ensemble = Interpolator(tiny_model, torch.device("cpu"), torch.float32, ensemble=True)
    single = Interpolator(tiny_model, torch.device("cpu"), torch.float32)
    a, b = moving_square(32, 48), moving_square(32, 48, 4)
    out = ensemble.interpolate(a, b, seed=2)
    assert out.shape == (32, 48, 3) and np.array_equal(out, ensemble.interpolate(a, b, seed=2))
    assert not np.allclose(out, single.interpolate(a, b, seed=2), atol=1e-4)


def test_time_out_of_range_and_size_mismatch_are_user_errors(interpolator):
    a = moving_square(32, 48)
    with pytest.raises(HFDError):
        interpolator.interpolate(a, a, 1.0)
    with pytest.raises(HFDError):
        interpolator.interpolate(a, moving_square(32, 40), 0.5)


def test_device_and_precision_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in {"cpu", "cuda", "mps"}
    assert pick_dtype(torch.device("cpu")) == torch.float32
    with pytest.raises(HFDError):
        pick_dtype(torch.device("cpu"), "fp16")
    with pytest.raises(HFDError):
        pick_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(HFDError):
            pick_device("cuda")


def test_half_precision_path_agrees_with_fp32(tiny_model):
    """The autocast path CUDA uses by default, exercised with bf16 on the CPU."""
    a, b = moving_square(40, 56), moving_square(40, 56, 4)
    full = Interpolator(tiny_model, torch.device("cpu"), torch.float32).interpolate(a, b, seed=1)
    half = Interpolator(tiny_model, torch.device("cpu"), torch.bfloat16).interpolate(a, b, seed=1)
    assert half.dtype == np.float32 and half.shape == full.shape
    assert np.abs(half - full).mean() < 0.02


def test_local_correlation_peaks_at_the_true_shift():
    from hfdinterp.model.denoiser import local_correlation

    features = torch.rand(1, 8, 12, 14)
    shifted = torch.roll(features, shifts=(1, -2), dims=(2, 3))  # feature1(x + d) = feature0(x) for d = (-2, 1)
    correlation = local_correlation(features, shifted, radius=2)  # (1, 25, 12, 14)
    best = correlation[0, :, 6, 7].argmax().item()
    dy, dx = divmod(best, 5)
    assert (dx - 2, dy - 2) == (-2, 1)
    assert correlation.shape == (1, 25, 12, 14) and correlation.max() <= 1 + 1e-5


def test_a_split_convolution_is_the_convolution_of_the_concatenation():
    from hfdinterp.model.synthesizer import split_conv
    generator = torch.Generator().manual_seed(3)
    layer = torch.nn.Conv2d(7, 5, 3, 1, 1)
    features, extra = torch.randn(2, 5, 6, 8, generator=generator), torch.randn(2, 2, 6, 8, generator=generator)
    assert torch.allclose(split_conv(layer, features, extra), layer(torch.cat((features, extra), 1)), atol=1e-6)


def test_unit_channels_is_f_normalize_even_for_a_zero_vector():
    from hfdinterp.model.layers import unit_channels
    x = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(0))
    x[0, :, 1, 2] = 0
    assert torch.allclose(unit_channels(x), F.normalize(x, dim=1), atol=1e-7)
    assert torch.equal(unit_channels(x)[0, :, 1, 2], torch.zeros(5))


@pytest.mark.parametrize("radius", [1, 4])
def test_local_correlation_equals_the_plain_loop_with_its_gradients(radius):
    """The channel-by-channel sum is the textbook loop over displacements, values and gradients."""
    from hfdinterp.model.denoiser import local_correlation

    def plain(feature0, feature1):
        feature0 = F.normalize(feature0, dim=1)
        feature1 = F.pad(F.normalize(feature1, dim=1), (radius,) * 4)
        height, width = feature0.shape[-2:]
        size = 2 * radius + 1
        return torch.cat([(feature0 * feature1[..., dy:dy + height, dx:dx + width]).sum(1, keepdim=True)
                          for dy in range(size) for dx in range(size)], dim=1)

    generator = torch.Generator().manual_seed(radius)
    a, b = (torch.randn(2, 12, 9, 11, generator=generator, requires_grad=True) for _ in range(2))
    weights = torch.randn(2, (2 * radius + 1) ** 2, 9, 11, generator=generator)
    fast, slow = local_correlation(a, b, radius), plain(a, b)
    assert torch.allclose(fast, slow, atol=1e-6)
    grads = [torch.autograd.grad((out * weights).sum(), (a, b)) for out in (fast, slow)]
    assert all(torch.allclose(g, h, atol=1e-5) for g, h in zip(*grads))
    assert local_correlation(a.bfloat16(), b.bfloat16(), radius).dtype == torch.bfloat16


def test_the_output_frame_is_warped_as_configured_unless_told_otherwise(tiny_model):
    from hfdinterp.model.warp import backward_warp, cubic_backward_warp

    image0, image1 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert tiny_model.config.synthesizer.image_warp == "cubic"
    with torch.no_grad():
        features = tiny_model.encode(image0), tiny_model.encode(image1)
        flows = tiny_model.sample_flows(*features, torch.tensor([0.5]), torch.Generator().manual_seed(0))
        for override, warp in ((None, cubic_backward_warp), ("bilinear", backward_warp)):
            out = tiny_model.synthesizer(image0, image1, *features, flows, torch.tensor([0.5]), override)
            assert torch.allclose(out["warped0"], warp(image0, out["flow"][:, 0:2]), atol=1e-5)


def _constant_flow_model(tiny_model, motion_px: float):
    """The tiny model made to sample the flow (−m, 0, +m, 0) px everywhere and to hand it to the output
    unchanged: level 1/16 says 150 px (exact in bf16), 1/8 adds the last 0.3 px, 1/4 adds nothing.
    Every denoiser call adds its head's bias to the estimate, so a level's bias is split over its steps."""
    model = copy.deepcopy(tiny_model)
    scale = model.config.diffusion.flow_scale
    coarse = 150.0
    with torch.no_grad():
        for level, px in enumerate((coarse, motion_px - coarse, 0.0)):
            head = model.denoiser.heads[level]
            head.weight.zero_()
            per_step = px / model.config.diffusion.steps_per_level[level]
            head.bias.copy_(torch.tensor([-per_step, 0.0, per_step, 0.0]) / scale)
        synth = model.synthesizer
        synth.level2_flow.weight.zero_()
        synth.level2_flow.bias.zero_()
        synth.level2.up.weight[:, 0:4].zero_()
        synth.level2.up.bias[0:4].zero_()
    return model


def test_bf16_autocast_keeps_a_large_moving_flow_sub_pixel(tiny_model):
    """Under half-precision autocast only the convolutions are half: at 150.3 px a bf16 flow could hold
    150.0 or 151.0 only, so the sampler state, the sampled flows and the output flow must stay float32."""
    model = _constant_flow_model(tiny_model, 150.3)
    # at one flow resolution: with ``auto`` the motion probe would keep its half-size pass's 300.6 px
    interpolator = Interpolator(model, torch.device("cpu"), torch.bfloat16, refinement=None, flow_resolution=1.0)
    a, b = moving_square(64, 96), moving_square(64, 96, shift=5)
    prepared = interpolator.prepare(torch.from_numpy(np.stack((a, b)).transpose(0, 3, 1, 2)))
    with torch.inference_mode(), interpolator._autocast():
        flows = model.sample_flows(prepared[0].features, prepared[1].features, torch.tensor([0.5]),
                                   [torch.Generator().manual_seed(0)])
    assert all(flow.dtype == torch.float32 for flow in flows)
    assert abs(float(flows[2][0, 2].mean()) - 150.3) < 0.02  # bf16 of the head's 0.3 px: 0.3008
    out = interpolator.interpolate(a, b, return_all=True)
    assert abs(float(out["flow"][2].mean()) - 150.3) < 0.02 and abs(float(out["flow"][0].mean()) + 150.3) < 0.02
    assert float(np.ptp(out["flow"][2])) < 1e-3  # one value everywhere


def test_forward_is_the_network_alone_and_between_adds_only_the_optional_steps(tiny_model):
    plain = Interpolator(tiny_model, torch.device("cpu"), torch.float32, refinement=None, noise=1.0)  # the paper's
    image0, image1 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    prepared = plain.prepare(torch.cat((image0, image1)))
    out = plain.between(prepared[0], prepared[1], torch.tensor([0.5]), [3])
    with torch.no_grad():
        network = tiny_model(image0, image1, torch.tensor([0.5]), [torch.Generator().manual_seed(3)])
    assert torch.allclose(out["image"], network["image"].clamp(0, 1), atol=1e-6)
    refined = Interpolator(tiny_model, torch.device("cpu"), torch.float32).between(prepared[0], prepared[1],
                                                                                   torch.tensor([0.5]), [3])
    assert not torch.allclose(refined["flow"], out["flow"], atol=1e-3)  # the refinement is a step of its own


def test_prepared_frames_carry_their_own_padding(interpolator):
    """Frames of two sizes prepared in turn: each pair is cropped by its own padding, not the last one's."""
    small = interpolator.prepare(torch.rand(2, 3, 20, 30))
    interpolator.prepare(torch.rand(2, 3, 40, 56))
    out = interpolator.between(small[0], small[1], torch.tensor([0.5]), [0])
    assert out["image"].shape[-2:] == (20, 30) and out["flow"].shape[-2:] == (20, 30)
