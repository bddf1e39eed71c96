"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node 2`` (gloo, CPU).

In one process group: (1) a few synthesizer steps, then every rank saves the parameters it trains
with; (2) the diffusion stage (its noise comes from each rank's generator) straight through, and
(3) the same run stopped on every rank after its checkpoint, then resumed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from hfdinterp.train import trainer
from hfdinterp.train.mixture import Mixture
from hfdinterp.train.synthetic import SyntheticConfig, SyntheticTriplets
from hfdinterp.io.testclip import scene

COMMON = dict(preset="tiny", workers=0, learning_rate=3e-3, warmup_steps=1)
SYNC_STEPS, PER_RANK = 3, 2


def dataset() -> Mixture:
    photos = [torch.from_numpy((scene(120, 100, i, i % 2) * 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
              for i in range(3)]
    return Mixture([SyntheticTriplets(photos, SyntheticConfig(size=64, noise=0), length=64)])


class Stop(Exception):
    pass


def main(out: Path) -> None:
    live = {}

    class Recording(trainer.EMA):  # the trainer keeps its live model private; the EMA is handed it every step
        def update(self, model):
            super().update(model)
            live["model"], live["updates"] = model, live.get("updates", 0) + 1
            if live["updates"] == live.get("stop_after"):
                raise Stop

    trainer.EMA = Recording
    data = dataset()
    torch.manual_seed(0)
    trainer.train(trainer.TrainConfig(stage="synthesizer", steps=SYNC_STEPS, out=str(out / "sync"),
                                      batch_size=PER_RANK, **COMMON), data)
    rank = dist.get_rank()
    torch.save(live["model"].state_dict(), out / f"sync-rank{rank}.pt")

    diffusion = dict(stage="diffusion", steps=4, batch_size=PER_RANK, checkpoint_every=2, **COMMON)
    torch.manual_seed(0)
    trainer.train(trainer.TrainConfig(out=str(out / "straight"), **diffusion), data)
    live["updates"], live["stop_after"] = 0, 3  # killed during step 3, after the checkpoint of step 2
    torch.manual_seed(0)
    try:
        trainer.train(trainer.TrainConfig(out=str(out / "resumed"), **diffusion), data)
    except Stop:
        pass
    live["stop_after"] = None
    torch.manual_seed(rank + 7)  # whatever the global state, each rank continues where it stopped
    trainer.train(trainer.TrainConfig(out=str(out / "resumed"), **diffusion), data)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
