"""Real-footage triplets (DIS pseudo flow) and Vimeo-90K's layout, on generated material."""

import numpy as np
import pytest
import torch

from hfdinterp.io.images import write_image
from hfdinterp.train.real import FootageTriplets, Vimeo90K, dis_flow
from hfdinterp.io.testclip import make_test_clip, scene
from hfdinterp.model.warp import backward_warp

pytest.importorskip("cv2", reason="OpenCV comes with the test extras: pip install -e '.[test]'")


def test_dis_flow_finds_a_known_shift():
    image = (scene(96, 64, 0) * 255).astype(np.uint8)
    shifted = np.roll(image, 3, axis=1)  # content moves 3 px right
    flow = dis_flow(shifted, image)  # from the shifted frame back to the original: −3 px
    assert abs(np.median(flow[0, 8:-8, 8:-8]) + 3) < 0.5 and abs(np.median(flow[1])) < 0.5


def test_footage_triplets_from_videos_and_frame_folders(tmp_path):
    make_test_clip(tmp_path / "a.mp4", 96, 64, frames=6, audio=False)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        write_image(folder / f"{i:03d}.png", scene(80, 64, i))
    data = FootageTriplets(tmp_path, crop=48)
    assert len(data.shots) == 2
    item = data[0]
    assert item["image0"].shape == (3, 48, 48) and item["flow"].shape == (4, 48, 48)
    assert 0 < float(item["time"]) < 1
    # the pseudo flow explains the middle frame better than no flow at all
    warped = backward_warp(item["image0"][None], item["flow"][None, 0:2])[0]
    assert (warped - item["image_t"]).abs().mean() <= (item["image0"] - item["image_t"]).abs().mean() + 1e-6


def test_footage_is_split_at_scene_cuts_so_no_triplet_straddles_one(tmp_path, monkeypatch):
    import hfdinterp.train.real as real

    make_test_clip(tmp_path / "cut.mp4", 96, 64, frames=10, audio=False, cut_at=5)
    data = FootageTriplets(tmp_path, crop=48, max_stride=3)
    shots = data.shots[0]
    assert [len(shot) for shot in shots] == [5, 5]
    assert [len(shot) for shot in FootageTriplets(tmp_path, crop=48, scene_threshold=0).shots[0]] == [10]
    drawn = []
    monkeypatch.setattr(real, "_to_item", lambda frames, *rest: drawn.append(frames))
    for index in range(40):
        data[index]
    homes = [{next(k for k, shot in enumerate(shots) if np.shares_memory(frame, shot)) for frame in frames}
             for frames in drawn]
    assert all(len(home) == 1 for home in homes)  # the three frames of a triplet share one shot
    assert {home.pop() for home in homes} == {0, 1}  # and both shots are drawn


def test_vimeo_triplet_layout(tmp_path):
    for name in ("00001/0001", "00001/0002"):
        folder = tmp_path / "sequences" / name
        folder.mkdir(parents=True)
        for k in (1, 2, 3):
            write_image(folder / f"im{k}.png", scene(64, 48, k))
    (tmp_path / "tri_trainlist.txt").write_text("00001/0001\n00001/0002\n")
    data = Vimeo90K(tmp_path, crop=32)
    assert len(data) == 2
    item = data[1]
    assert item["image_t"].shape == (3, 32, 32) and float(item["time"]) == 0.5
    with pytest.raises(ValueError):
        Vimeo90K(tmp_path / "sequences")
    assert torch.isfinite(item["flow"]).all()


def test_mixture_batches_synthetic_and_real_sources_together(tmp_path):
    from torch.utils.data import default_collate

    from hfdinterp.train.mixture import Mixture
    from hfdinterp.train.synthetic import SyntheticConfig, SyntheticTriplets

    make_test_clip(tmp_path / "a.mp4", 96, 64, frames=6, audio=False)
    photos = [torch.from_numpy((scene(120, 90, i) * 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
              for i in range(2)]
    mixture = Mixture([SyntheticTriplets(photos, SyntheticConfig(size=48)), FootageTriplets(tmp_path, crop=48)])
    batch = default_collate([mixture[i] for i in range(4)])  # the synthetic "clean" extra is dropped
    assert batch["image0"].shape == (4, 3, 48, 48) and batch["flow"].shape == (4, 4, 48, 48)
