"""The two flow passes of ``auto`` combined pixel by pixel, by which one aligns the frames."""

import numpy as np
import torch

from hfdinterp.inference.pass_fusion import disagreement, fuse_passes


def _textured_pair(shift: int, height: int = 64, width: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    texture = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.random((1, 3, height, width + shift),
                                                                       dtype=np.float32)), 3, 1, 1)
    return texture[..., shift:], texture[..., :width]  # I1 is I0 moved ``shift`` px to the right


def _levels(flow: tuple[float, ...], height: int = 64, width: int = 96) -> list[torch.Tensor]:
    return [torch.tensor(flow).view(1, 4, 1, 1).expand(1, 4, height // f, width // f).clone() for f in (16, 8, 4)]


def test_the_pass_that_aligns_the_frames_is_taken_at_every_level():
    image0, image1 = _textured_pair(8)
    right, wrong = _levels((-4.0, 0.0, 4.0, 0.0)), _levels((0.0, 0.0, 0.0, 0.0))
    assert (disagreement(image0, image1, right[-1]) < disagreement(image0, image1, wrong[-1]))[..., 2:-2, 2:-4].all()
    fused = fuse_passes(image0, image1, fine=wrong, coarse=right, eligible=torch.tensor([True]))
    for level, expected in zip(fused, right):
        torch.testing.assert_close(level[..., 1:-1, 1:-2], expected[..., 1:-1, 1:-2])
    fused = fuse_passes(image0, image1, fine=right, coarse=wrong, eligible=torch.tensor([True]))
    torch.testing.assert_close(fused[-1][..., 2:-2, 2:-4], right[-1][..., 2:-2, 2:-4])


def test_a_pair_the_probe_left_alone_keeps_the_fine_pass_exactly():
    image0, image1 = _textured_pair(8)
    pair0, pair1 = torch.cat((image0, image0)), torch.cat((image1, image1))
    right, wrong = _levels((-4.0, 0.0, 4.0, 0.0)), _levels((0.0, 0.0, 0.0, 0.0))
    batch = lambda levels: [torch.cat((level, level)) for level in levels]  # noqa: E731
    fused = fuse_passes(pair0, pair1, fine=batch(wrong), coarse=batch(right), eligible=torch.tensor([True, False]))
    for level, fine, coarse in zip(fused, wrong, right):
        assert torch.equal(level[1:], fine)  # the second pair: the fine pass, bit for bit
        torch.testing.assert_close(level[:1, :, 1:-1, 1:-2], coarse[..., 1:-1, 1:-2])
