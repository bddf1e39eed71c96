import numpy as np
import torch

from hfdinterp.io.scenes import DEFAULT_THRESHOLD, cut_scores, thumbnail
from hfdinterp.io.testclip import scene


def test_motion_scores_low_and_a_cut_scores_high():
    frames = [scene(160, 90, i) for i in range(6)] + [scene(160, 90, 6, variant=1)]
    tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    scores = cut_scores(thumbnail(tensor))
    assert scores.shape == (6,)
    assert (scores[:5] < DEFAULT_THRESHOLD).all(), scores
    assert scores[5] > DEFAULT_THRESHOLD, scores


def test_dark_to_bright_is_a_cut_and_identical_is_not():
    dark, bright = torch.full((1, 3, 32, 32), 0.1), torch.full((1, 3, 32, 32), 0.9)
    scores = cut_scores(thumbnail(torch.cat((dark, dark, bright))))
    assert scores[0] == 0 and scores[1] > DEFAULT_THRESHOLD
