import pytest
import torch

from hfdinterp.warp import InputPadder, backward_warp, downsample_flow, upsample_flow


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
