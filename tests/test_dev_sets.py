"""Large-motion dev tooling: the EPE-by-motion table and the minterpolate baseline, on generated data."""

import numpy as np
import torch

from hfdinterp import HFD, PRESETS
from hfdinterp.io.images import write_image
from hfdinterp.train.dev_sets import minterpolate_middle
from hfdinterp.train.flow_error import flow_error_table, format_tables
from hfdinterp.io.testclip import scene


def _case(folder, flow):
    folder.mkdir(parents=True)
    for name, index in (("i0", 0), ("gt", 1), ("i1", 2)):
        write_image(folder / f"{name}.png", scene(64, 48, index))
    np.save(folder / "flow.npy", flow.astype(np.float16))


def test_epe_lands_in_the_bucket_of_the_reference_motion(tmp_path):
    flow = np.zeros((4, 48, 64), np.float32)
    flow[0], flow[2] = -5, 5  # 10 px between the frames: the 8–32 bucket
    flow[:, :24] *= 8  # top half: 80 px, the 64–128 bucket
    _case(tmp_path / "set" / "a", flow)
    torch.manual_seed(0)
    model = HFD(PRESETS["tiny"]).eval()  # the paper's variant with zero heads samples exactly zero flow
    table = flow_error_table(model, tmp_path)["set"]
    assert table["share"] == {"<8": 0.0, "8–32": 0.5, "32–64": 0.0, "64–128": 0.5, ">128": 0.0}
    for level in ("1/16", "1/8", "1/4"):
        assert abs(table[level]["8–32"] - 5) < 1e-3 and abs(table[level]["64–128"] - 40) < 1e-3
    assert np.isnan(table["1/4"]["<8"])
    assert "| 1/16 |" in format_tables({"set": table}, "tiny")


def test_minterpolate_middle_of_a_still_pair_is_the_frame():
    frame = (scene(64, 48, 0) * 255).astype(np.uint8)
    middle = minterpolate_middle(frame, frame)
    assert middle.shape == frame.shape
    assert np.abs(middle.astype(int) - frame).mean() < 2


def test_flow_error_at_half_resolution_reports_every_level_in_full_resolution_pixels(tmp_path):
    flow = np.zeros((4, 48, 64), np.float32)
    flow[0], flow[2] = -5, 5
    _case(tmp_path / "set" / "a", flow)
    torch.manual_seed(0)
    model = HFD(PRESETS["tiny"]).eval()  # zero flow at any resolution: the error is the reference's size
    table = flow_error_table(model, tmp_path, refine_steps=0, resolution=0.5)["set"]
    for level in ("1/16", "1/8", "1/4"):
        assert abs(table[level]["8–32"] - 5) < 1e-3
