"""Synthetic triplets: textured crops on request (motion in a flat crop cannot be observed)."""

import torch

from hfdinterp.train.synthetic import SyntheticConfig, SyntheticTriplets
from hfdinterp.train.texture import smaller_eigenvalue


def _photos():
    generator = torch.Generator().manual_seed(0)
    textured = (torch.rand(3, 160, 160, generator=generator) * 255).to(torch.uint8)
    flat = torch.full((3, 160, 160), 120, dtype=torch.uint8)
    return [flat, flat, flat, textured]


def test_texture_measure_is_zero_on_flat_images_and_edges_and_large_on_noise():
    flat = torch.full((1, 3, 32, 32), 0.5)
    edge = flat.clone()
    edge[..., 16:] = 1.0  # texture in one direction only: the aperture problem
    noise = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert smaller_eigenvalue(flat).abs().max() < 1e-9
    assert smaller_eigenvalue(edge).abs().max() < 1e-6
    assert smaller_eigenvalue(noise).mean() > 1e-3


def test_min_texture_draws_crops_again_until_they_have_texture():
    crops = lambda config: [SyntheticTriplets(_photos(), config, seed=s)._texture(torch.Generator().manual_seed(s), 32)
                            for s in range(12)]  # noqa: E731
    textured = lambda crop: float(smaller_eigenvalue(crop[None]).mean()) > 1e-4  # noqa: E731
    assert sum(map(textured, crops(SyntheticConfig(size=32)))) <= 6  # three photos in four are flat
    assert all(map(textured, crops(SyntheticConfig(size=32, min_texture=6e-4, texture_tries=16))))


def test_without_min_texture_the_triplets_are_as_before():
    photos = _photos()
    default = SyntheticTriplets(photos, SyntheticConfig(size=32), seed=3)[0]
    explicit = SyntheticTriplets(photos, SyntheticConfig(size=32, min_texture=0.0, texture_tries=99), seed=3)[0]
    assert all(torch.equal(default[key], explicit[key]) for key in default)
