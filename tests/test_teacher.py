"""The training-time flow teacher and its cache, without the real teacher weights (a randomly
initialised IFNet stands in): loading rules, shapes, per-pixel fusion, cache and augmentation."""

import numpy as np
import pytest
import torch

from hfdinterp.train.pseudo_flow import CachedTriplets, build_cache
from hfdinterp.train.teacher import (RifeIFNet, fuse_flows, load_teacher, teacher_bilateral_flow,
                                     teacher_interpolate)
from hfdinterp.io.testclip import make_test_clip
from hfdinterp.model.warp import backward_warp

pytest.importorskip("cv2", reason="OpenCV comes with the test extras: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def random_teacher_file(tmp_path_factory):
    torch.manual_seed(0)
    state = RifeIFNet().state_dict()
    state["teacher.conv0.0.0.weight"] = torch.zeros(1)  # RIFE's training-only parts are in the file too
    state["caltime.0.bias"] = torch.zeros(1)
    path = tmp_path_factory.mktemp("teacher") / "flownet.pkl"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path


def test_teacher_loads_strictly_apart_from_rifes_training_parts(random_teacher_file, tmp_path):
    teacher = load_teacher(random_teacher_file)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    state = torch.load(random_teacher_file, weights_only=True)
    del state["module.block4.lastconv.0.bias"]
    broken = tmp_path / "broken.pkl"
    torch.save(state, broken)
    with pytest.raises(RuntimeError, match="block4.lastconv.0.bias"):
        load_teacher(broken)


def test_teacher_outputs_at_any_size(random_teacher_file):
    teacher = load_teacher(random_teacher_file)
    image0, image1 = torch.rand(1, 3, 40, 70), torch.rand(1, 3, 40, 70)
    flow = teacher_bilateral_flow(teacher, image0, image1, torch.tensor([0.3]))
    frame = teacher_interpolate(teacher, image0, image1, torch.tensor([0.3]))
    assert flow.shape == (1, 4, 40, 70) and frame.shape == (1, 3, 40, 70)
    assert 0 <= frame.min() and frame.max() <= 1


def test_fusion_takes_the_better_flow_pixel_by_pixel():
    torch.manual_seed(0)
    texture = torch.rand(1, 3, 32, 64)
    image_t = texture
    image0 = torch.roll(texture, -2, dims=3)  # image_t(x) = image0(x − 2)
    image1 = torch.roll(texture, 3, dims=3)  # image_t(x) = image1(x + 3)
    true = torch.zeros(1, 4, 32, 64)
    true[:, 0], true[:, 2] = -2.0, 3.0
    left_right_wrong = true.clone()
    left_right_wrong[..., 32:] = 0  # right half wrong
    right_left_wrong = true.clone()
    right_left_wrong[..., :32] = 7  # left half wrong
    fused = fuse_flows([left_right_wrong, right_left_wrong], image0, image_t, image1)
    inner = (slice(None), slice(None), slice(4, -4), slice(8, -8))
    assert torch.allclose(fused[inner][..., :20], true[inner][..., :20])
    assert torch.allclose(fused[inner][..., -20:], true[inner][..., -20:])


def test_cache_round_trip_and_augmented_crops_keep_the_flow_consistent(random_teacher_file, tmp_path, monkeypatch):
    import hfdinterp.train.pseudo_flow as pseudo_flow

    monkeypatch.setattr(pseudo_flow, "SHARD_SIZE", 4)
    (tmp_path / "clips").mkdir()
    make_test_clip(tmp_path / "clips" / "a.mp4", 96, 64, frames=8, audio=False)
    build_cache([str(tmp_path / "clips")], tmp_path / "cache", per_clip=6, max_stride=2,
                teacher_weights=str(random_teacher_file), log=lambda line: None)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["shard-00000.pt", "shard-00001.pt"]
    data = CachedTriplets(tmp_path / "cache", crop=48)
    assert len(data.items) == 6
    item = data.items[0]
    assert item["frames"].dtype == torch.uint8 and item["flow"].dtype == torch.float16

    # Replace one cached triplet with a pure translation and its exact flow, then check every augmented
    # crop still satisfies image_t(x) = image0(x + f_τ→0(x)) = image1(x + f_τ→1(x)).
    texture = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    frames = torch.from_numpy(np.stack([np.roll(texture, s, axis=1) for s in (0, 2, 6)]))  # moves right
    flow = torch.zeros(4, 64, 96)
    flow[0], flow[2] = -2.0, 4.0
    data.items = [{"frames": frames, "flow": flow.half(), "time": 1 / 3}]
    for index in range(12):
        sample = data[index]
        for key, channels in (("image0", slice(0, 2)), ("image1", slice(2, 4))):
            warped = backward_warp(sample[key][None], sample["flow"][None, channels])[0]
            assert (warped - sample["image_t"])[:, :, 8:-8].abs().max() < 1e-4, (index, key)
    assert {round(float(data[i]["time"]), 3) for i in range(12)} == {0.333, 0.667}


def test_a_frame_smaller_than_the_crop_is_scaled_up_with_its_flow(tmp_path):
    data = CachedTriplets.__new__(CachedTriplets)
    frames = torch.zeros(3, 40, 60, 3, dtype=torch.uint8)
    flow = torch.ones(4, 40, 60)
    data.items, data.crop, data.seed = [{"frames": frames, "flow": flow.half(), "time": 0.5}], 80, 0
    sample = data[0]
    assert sample["image0"].shape == (3, 80, 80)
    assert torch.allclose(sample["flow"].abs(), torch.full((4, 80, 80), 2.0))
