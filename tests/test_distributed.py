"""Training under torchrun: 2 gloo processes on the CPU train as one process on the whole batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hfdinterp.train.trainer import ShardedBatches, TrainConfig, train
from tests.ddp_worker import COMMON, PER_RANK, SYNC_STEPS, dataset

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[1])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(WORKER), str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_ranks_train_identically_and_as_one_process_on_the_global_batch(two_ranks, tmp_path):
    rank0 = torch.load(two_ranks / "sync-rank0.pt")
    rank1 = torch.load(two_ranks / "sync-rank1.pt")
    torch.manual_seed(0)
    single = train(TrainConfig(stage="synthesizer", steps=SYNC_STEPS, out=str(tmp_path), batch_size=2 * PER_RANK,
                               **COMMON), dataset())
    reference = torch.load(single, weights_only=False)["model"]
    start = torch.load(two_ranks / "sync" / "synthesizer.ckpt", weights_only=False)
    moved = 0
    for name, value in reference.items():
        assert torch.equal(rank0[name], rank1[name]), name  # the all-reduce gives every rank the same step
        assert torch.allclose(rank0[name], value, atol=1e-5, rtol=1e-4), (name, (rank0[name] - value).abs().max())
        assert torch.equal(start["model"][name], rank0[name]), name  # rank 0 saved what it trained
        moved += name.startswith("synthesizer.")
    assert moved


def test_resume_under_ddp_restores_every_rank(two_ranks):
    straight = torch.load(two_ranks / "straight" / "diffusion.ckpt", weights_only=False)
    resumed = torch.load(two_ranks / "resumed" / "diffusion.ckpt", weights_only=False)
    assert straight["step"] == resumed["step"] == 4
    for name, value in straight["model"].items():
        assert torch.allclose(value, resumed["model"][name], atol=1e-6), name
        assert torch.allclose(straight["ema"][name], resumed["ema"][name], atol=1e-6), name
    assert resumed["world"] == 2 and len(resumed["generators"]) == 2
    assert not torch.equal(*resumed["generators"])  # each rank its own noise
    assert torch.equal(straight["generators"][1], resumed["generators"][1])


def test_sharded_batches_split_each_global_batch_and_resume_anywhere():
    whole = iter(ShardedBatches(10, 4))
    ranks = [iter(ShardedBatches(10, 2, rank, 2)) for rank in range(2)]
    seen = []
    for _ in range(5):  # two passes over the 10 items
        global_batch = next(whole)
        assert next(ranks[0]) + next(ranks[1]) == global_batch
        seen += global_batch
    assert seen == list(range(10)) * 2  # every item once per pass, then around again
    later = iter(ShardedBatches(10, 2, 1, 2, start_step=3))
    assert next(later) == seen[3 * 4 + 2:3 * 4 + 4]


def test_half_precision_training_is_for_gpus(tmp_path):
    from hfdinterp.errors import HFDError

    with pytest.raises(HFDError, match="for GPUs"):
        train(TrainConfig(stage="synthesizer", steps=1, out=str(tmp_path), precision="fp16", **COMMON), dataset())
