import numpy as np
import torch
import torch.nn.functional as F

from hfdinterp.inference import refinement as flow_refinement
from hfdinterp.inference.refinement import FlowRefinement, refine_flow
from hfdinterp.inference.interpolator import Interpolator
from hfdinterp.model.warp import as_bands, downsample_flow, upsample_flow, warp_bilateral
from tests.conftest import moving_square


def shifted_pair(motion: float, size: int = 64):
    """A smooth texture moving ``motion`` pixels right from I0 to I1, and its true bilateral flow at τ = ½."""
    ys, xs = torch.meshgrid(torch.arange(size * 1.0), torch.arange(size * 1.0), indexing="ij")
    texture = lambda x: torch.stack([torch.sin(x / 5 + c) * torch.cos(ys / 6 - c) for c in range(3)])  # noqa: E731
    image0 = (texture(xs + motion / 2)[None] + 1) / 2
    image1 = (texture(xs - motion / 2)[None] + 1) / 2
    flow = torch.zeros(1, 4, size, size)
    flow[:, 0], flow[:, 2] = -motion / 2, motion / 2  # f_τ→0 points back into I0, f_τ→1 ahead into I1
    return image0, image1, flow


def test_the_true_flow_of_the_test_pair_aligns_both_frames():
    image0, image1, flow = shifted_pair(6)
    warped0, warped1 = warp_bilateral(image0, image1, flow, 1)
    assert (warped0 - warped1)[..., 8:-8].abs().max() < 1e-4


def test_refinement_pulls_a_wrong_flow_towards_the_truth_and_keeps_the_path_point():
    image0, image1, truth = shifted_pair(6)
    time = torch.tensor([0.5])
    start = downsample_flow(truth, 4).clone()
    start[:, 0] += 1.0  # the displacement between the frames is 2 px short
    start[:, 2] -= 1.0
    refined = refine_flow(image0, image1, start, time, FlowRefinement(steps=40))
    error = lambda f: float((f - downsample_flow(truth, 4))[..., 2:-2, 2:-2].abs().mean())  # noqa: E731
    assert error(refined) < 0.25 * error(start)
    centre = lambda f: (1 - time) * f[:, 0:2] + time * f[:, 2:4]  # noqa: E731
    assert torch.allclose(centre(refined), centre(start), atol=1e-5)


def test_zero_steps_leave_the_flow_alone_and_each_pair_is_refined_on_its_own():
    image0, image1, truth = shifted_pair(6)
    start = downsample_flow(truth, 4) + 0.5
    assert refine_flow(image0, image1, start, torch.tensor([0.5]), FlowRefinement(steps=0)) is start
    alone = refine_flow(image0, image1, start, torch.tensor([0.5]), FlowRefinement(steps=5))
    other0, other1, other = shifted_pair(-3)
    batch = refine_flow(torch.cat((image0, other0)), torch.cat((image1, other1)),
                        torch.cat((start, downsample_flow(other, 4))), torch.tensor([0.5, 0.3]),
                        FlowRefinement(steps=5))
    assert torch.allclose(batch[:1], alone, atol=1e-5)


def test_refinement_runs_inside_inference_mode_and_changes_the_interpolator_output(tiny_model):
    a, b = moving_square(48, 64), moving_square(48, 64, shift=5)
    with torch.inference_mode():
        refined = Interpolator(tiny_model, torch.device("cpu"), torch.float32).interpolate(a, b, seed=3)
    plain = Interpolator(tiny_model, torch.device("cpu"), torch.float32,
                         refinement=FlowRefinement(steps=0)).interpolate(a, b, seed=3)
    assert refined.shape == plain.shape and np.isfinite(refined).all()
    assert np.abs(refined - plain).max() > 1e-3


def _count_steps(monkeypatch):
    """Counts refinement steps: the photometric penalty is evaluated once per step."""
    calls = []
    penalty = flow_refinement.robust_penalty
    monkeypatch.setattr(flow_refinement, "robust_penalty", lambda x: calls.append(x.shape[0]) or penalty(x))
    return calls


def test_the_batch_is_refined_at_once_not_pair_by_pair(monkeypatch):
    warps = []
    grid_sample = F.grid_sample
    monkeypatch.setattr(F, "grid_sample", lambda *a, **k: warps.append(a[0].shape[0]) or grid_sample(*a, **k))
    image0, image1, truth = shifted_pair(4)
    start = downsample_flow(truth, 4)
    for batch in (1, 3):
        warps.clear()
        refine_flow(image0.expand(batch, -1, -1, -1), image1.expand(batch, -1, -1, -1),
                    start.expand(batch, -1, -1, -1), torch.full((batch,), 0.5), FlowRefinement(steps=5, warp_every=2))
        assert len(warps) == 6  # both frames at steps 1, 3 and 5, whatever the batch
        if batch > 1:
            assert warps == [batch] * 6  # one call for the batch (a single pair may come in bands)


def test_between_warps_the_residual_is_the_warped_residual_to_first_order():
    """Linearised at δ, the photometric residual w(I0) − w(I1) predicts a fresh warp's: exactly at δ,
    and after a small step to within a few per cent of the change (the slopes are central differences,
    the warp's own are bilinear cells); a wrong sign or scale of a slope would miss by the change itself."""
    image0, image1, truth = shifted_pair(6)
    start = downsample_flow(truth, 4)
    start[:, 0] += 1.0
    start[:, 2] -= 1.0
    tau = torch.tensor([0.3])
    direction = torch.randn(1, 2, *start.shape[-2:], generator=torch.Generator().manual_seed(1))
    here = 0.5 * direction

    def photometry_at(delta: torch.Tensor):
        photometry = flow_refinement._Photometry(image0, image1, start, tau, 2)
        photometry.linearise(delta)
        return photometry

    linearised = photometry_at(here)
    assert torch.equal(linearised(here), photometry_at(here.clone())(here))
    for step in (0.2, 0.05):
        moved = as_bands(upsample_flow(step * direction, linearised.size), linearised.bands)
        predicted = linearised.residual + linearised.slope_x * moved[:, 0:1] + linearised.slope_y * moved[:, 1:2]
        actual = photometry_at(here + step * direction).residual
        change = (actual - linearised.residual).abs().mean()
        assert change > 1e-4
        assert (predicted - actual).abs().mean() < 0.1 * change


def test_the_written_out_gradient_of_the_linearised_loss_is_its_derivative():
    generator = torch.Generator().manual_seed(2)
    residual, slope_x, slope_y = (torch.randn(2, 3, 5, 6, generator=generator, dtype=torch.float64) * 0.1
                                  for _ in range(3))
    change = torch.randn(2, 2, 5, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    penalty = flow_refinement._LinearisedPenalty.apply
    assert torch.autograd.gradcheck(lambda c: penalty(c, residual, slope_x, slope_y, 2), (change,))
    direct = flow_refinement.robust_penalty(residual + slope_x * change[:, 0:1] + slope_y * change[:, 1:2])
    assert torch.allclose(penalty(change, residual, slope_x, slope_y, 2), direct.mean((1, 2, 3)))


def test_a_pair_whose_loss_stops_falling_stops_early_and_alone(monkeypatch):
    steps = _count_steps(monkeypatch)
    settings = FlowRefinement(steps=60, learning_rate=0.5, settle=5e-3, patience=10)  # the stop, not the default
    image0, image1, truth = shifted_pair(6)
    generator = torch.Generator().manual_seed(0)
    image0, image1 = (image + 0.02 * torch.randn(image.shape, generator=generator) for image in (image0, image1))
    right = downsample_flow(truth, 4)  # little left to gain but fitting the noise: stops at the third look
    refine_flow(image0, image1, right, torch.tensor([0.5]), settings)
    assert len(steps) == 30
    wrong = right.clone()
    wrong[:, 0] += 1.5
    wrong[:, 2] -= 1.5
    steps.clear()
    alone = refine_flow(image0, image1, wrong, torch.tensor([0.5]), settings)
    assert len(steps) > 30
    both = refine_flow(torch.cat((image0, image0)), torch.cat((image1, image1)), torch.cat((right, wrong)),
                       torch.tensor([0.5, 0.5]), settings)
    assert torch.allclose(both[1:], alone, atol=1e-5)  # the settled pair does not hold the other back
    assert torch.allclose(both[:1], refine_flow(image0, image1, right, torch.tensor([0.5]), settings), atol=1e-5)
