import json

import pytest
import torch
import torch.nn.functional as F

from hfdinterp.model.config import HFDConfig, PRESETS
from hfdinterp.model.warp import (InputPadder, backward_warp, cubic_backward_warp, downsample_flow,
                                  from_bands, grid_sample_bands, upsample_flow)


def test_zero_flow_is_identity():
    image = torch.rand(2, 3, 7, 9)
    assert torch.allclose(backward_warp(image, torch.zeros(2, 2, 7, 9)), image, atol=1e-6)


@pytest.mark.parametrize("dx,dy", [(1, 0), (0, 1), (-2, 3), (3, -1)])
def test_integer_shift_samples_the_neighbour(dx, dy):
    image = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0], flow[:, 1] = dx, dy
    warped = backward_warp(image, flow)
    # output(x, y) = image(x + dx, y + dy) wherever that stays inside
    ys = slice(max(0, -dy), 10 - max(0, dy))
    xs = slice(max(0, -dx), 12 - max(0, dx))
    src_ys = slice(ys.start + dy, ys.stop + dy)
    src_xs = slice(xs.start + dx, xs.stop + dx)
    assert torch.allclose(warped[..., ys, xs], image[..., src_ys, src_xs], atol=1e-5)


@pytest.mark.parametrize("dx,dy", [(0, 0), (1, 0), (-2, 3)])
def test_cubic_warp_agrees_with_bilinear_on_whole_pixels(dx, dy):
    image = torch.rand(2, 3, 10, 12)
    flow = torch.zeros(2, 2, 10, 12)
    flow[:, 0], flow[:, 1] = dx, dy
    assert torch.allclose(cubic_backward_warp(image, flow), backward_warp(image, flow), atol=1e-5)


def test_cubic_warp_reproduces_a_ramp_and_keeps_detail_that_bilinear_blurs():
    xs = torch.arange(16.0).view(1, 1, 1, 16).expand(1, 1, 8, 16)
    half = torch.zeros(1, 2, 8, 16)
    half[:, 0] = 0.5
    inside = (..., slice(None), slice(2, 13))  # away from the repeated border
    assert torch.allclose(cubic_backward_warp(xs, half)[inside], (xs + 0.5)[inside], atol=1e-5)
    stripes = (torch.arange(16.0) // 2 % 2).view(1, 1, 1, 16).expand(1, 1, 8, 16)  # period 4
    quarter = torch.zeros(1, 2, 8, 16)
    quarter[:, 0] = 0.25
    contrast = lambda image: float(image[inside].max() - image[inside].min())  # noqa: E731
    assert contrast(cubic_backward_warp(stripes, quarter)) > contrast(backward_warp(stripes, quarter)) + 0.1


def test_cubic_warp_passes_gradients_to_the_flow():
    image = torch.rand(1, 3, 8, 8)
    flow = torch.full((1, 2, 8, 8), 0.3, requires_grad=True)
    cubic_backward_warp(image, flow).sum().backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0


def test_files_from_before_the_image_warp_field_keep_bilinear():
    raw = json.loads(PRESETS["small"].to_json())
    del raw["synthesizer"]["image_warp"]
    text = json.dumps(raw)
    assert HFDConfig.from_json(text).synthesizer.image_warp == "bilinear"
    assert HFDConfig.from_json(PRESETS["small"].to_json()) == PRESETS["small"]


@pytest.mark.parametrize("warp", [backward_warp, cubic_backward_warp])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_flow_keeps_sub_pixel_positions_on_wide_frames(warp, dtype):
    ramp = torch.arange(1500.0).view(1, 1, 1, 1500).expand(1, 1, 4, 1500)
    flow = torch.zeros(1, 2, 4, 1500, dtype=dtype)
    flow[:, 0] = 0.5
    warped = warp(ramp, flow)
    assert warped.dtype == ramp.dtype
    assert torch.allclose(warped[..., 2:-2], ramp[..., 2:-2] + 0.5, atol=1e-3)


def test_outside_samples_take_the_border():
    image = torch.arange(4.0).view(1, 1, 1, 4)
    flow = torch.full((1, 2, 1, 4), 0.0)
    flow[:, 0] = 10
    assert torch.allclose(backward_warp(image, flow), torch.full((1, 1, 1, 4), 3.0))


def test_flow_resizing_keeps_full_resolution_pixel_units():
    flow = torch.full((1, 4, 8, 8), 5.0)
    assert torch.allclose(upsample_flow(flow), torch.full((1, 4, 16, 16), 5.0))
    assert torch.allclose(downsample_flow(flow, 4), torch.full((1, 4, 2, 2), 5.0))


@pytest.mark.parametrize("height,width", [(1, 1), (2, 2), (37, 61), (64, 128), (480, 853)])
def test_padder_round_trip(height, width):
    image = torch.rand(1, 3, height, width)
    padder = InputPadder(height, width, 64)
    padded = padder.pad(image)
    assert padded.shape[-2] % 64 == 0 and padded.shape[-1] % 64 == 0
    assert torch.equal(padder.unpad(padded), image)


def catmull_rom_weights(t: torch.Tensor) -> list[torch.Tensor]:
    """Weights of the taps at −1, 0, +1, +2 for a sample ``t`` ∈ [0, 1) past tap 0 (Catmull–Rom, a = −0.5).

    They sum to 1 and reproduce straight lines exactly, like bilinear weights, but without bilinear's
    low-pass: a half-pixel shift keeps most of the detail instead of averaging two pixels.
    """
    t2, t3 = t * t, t * t * t
    return [(-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2]


def _sixteen_tap_catmull_rom(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The textbook form: 4×4 gathered taps with clamped indices, weights w_i(x)·w_j(y)."""
    batch, channels, height, width = image.shape
    x = torch.arange(width).view(1, 1, width) + flow[:, 0]
    y = torch.arange(height).view(1, height, 1) + flow[:, 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    weights_x, weights_y = catmull_rom_weights(x - x0), catmull_rom_weights(y - y0)
    flat = image.reshape(batch, channels, height * width)
    out = torch.zeros_like(image)
    for j, weight_y in enumerate(weights_y):
        row = (y0 + j - 1).clamp(0, height - 1).long() * width
        for i, weight_x in enumerate(weights_x):
            index = (row + (x0 + i - 1).clamp(0, width - 1).long()).view(batch, 1, -1).expand(-1, channels, -1)
            out += torch.gather(flat, 2, index).view(batch, channels, height, width) * (weight_x * weight_y)[:, None]
    return out


@pytest.mark.parametrize("motion", [0.7, 6.0, 40.0])
def test_cubic_warp_equals_the_textbook_sixteen_taps(motion):
    generator = torch.Generator().manual_seed(int(motion * 10))
    image = torch.rand(2, 3, 23, 31, generator=generator)
    flow = torch.randn(2, 2, 23, 31, generator=generator) * motion  # many samples fall outside: borders
    assert torch.allclose(cubic_backward_warp(image, flow), _sixteen_tap_catmull_rom(image, flow), atol=1e-5)
    flow.requires_grad_(True)  # and so is the gradient the synthesizer's training sees
    weights = torch.randn(2, 3, 23, 31, generator=generator)
    fast, slow = (torch.autograd.grad((warp(image, flow) * weights).sum(), flow)[0]
                  for warp in (cubic_backward_warp, _sixteen_tap_catmull_rom))
    assert torch.allclose(fast, slow, atol=1e-4)


@pytest.mark.parametrize("threads, height", [(2, 24), (3, 24), (4, 18), (2, 7)])
def test_one_image_sampled_in_bands_equals_the_plain_sampler_to_the_bit(threads, height):
    image = torch.rand(1, 3, 20, 30)
    grid = (torch.rand(1, height, 26, 2) * 2.2 - 1.1).requires_grad_()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        sampled = grid_sample_bands(image, grid)
        (banded_gradient,) = torch.autograd.grad(sampled.square().sum(), grid)
    finally:
        torch.set_num_threads(before)
    plain = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    (plain_gradient,) = torch.autograd.grad(plain.square().sum(), grid)
    bands = sampled.shape[0]
    assert bands > 1 or height == 7  # 7 rows: no band count divides them, so one band
    assert torch.equal(from_bands(sampled, 1), plain)
    assert torch.equal(banded_gradient, plain_gradient)


def test_a_batch_is_sampled_as_it_is():
    image, grid = torch.rand(3, 2, 8, 8), torch.rand(3, 8, 8, 2) * 2 - 1
    assert grid_sample_bands(image, grid).shape == (3, 2, 8, 8)


def test_forward_splat_carries_each_value_to_where_its_flow_points():
    from hfdinterp.model.warp import forward_splat

    values = torch.zeros(1, 2, 4, 6)
    values[0, :, 1, 1] = torch.tensor([3.0, -1.0])
    weights = torch.zeros(1, 1, 4, 6)
    weights[0, 0, 1, 1] = 2.0
    flow = torch.zeros(1, 2, 4, 6)
    flow[0, :, 1, 1] = torch.tensor([2.5, 1.0])  # to (x 3.5, y 2): half on x 3, half on x 4
    sums, landed = forward_splat(values, weights, flow)
    assert torch.allclose(landed[0, 0, 2, 3:5], torch.tensor([1.0, 1.0])) and float(landed.sum()) == 2.0
    assert torch.allclose(sums[0, :, 2, 3], torch.tensor([3.0, -1.0])) and torch.allclose(sums[0, :, 2, 4], sums[0, :, 2, 3])
    flow[0, 0, 1, 1] = 10.0  # off the frame: dropped
    assert float(forward_splat(values, weights, flow)[1].sum()) == 0.0
