"""The largest requests hfdinterp accepts, stated once, each with its reason.

Everything here is checked before any work starts (no frame decoded, no model loaded, no file
opened for writing), so a typo such as ``--fps 1e9`` is one clear line instead of hours of planning.
"""

from __future__ import annotations

from fractions import Fraction

# --factor, and --fps as a multiple of the input's rate. 16 = four recursive halvings: 15 new frames
# between two source frames. Past that the pairs are almost the same picture, while a mistyped rate
# would plan millions of model calls per source frame before writing the first one.
MAX_FACTOR = 16

# The output rate. Matroska and WebM store milliseconds, so above 1000 fps two frames would share
# a timestamp there; no display or camera format runs faster.
MAX_OUTPUT_RATE = Fraction(1000)

# The slowest output rate: the output's clock ticks at 1/rate seconds, and muxers refuse ticks
# longer than a second or so; an interpolator is for making frames, not for slide shows.
MIN_OUTPUT_RATE = Fraction(1)

# Frame size, in pixels: 8K UHD (7680×4320, 33 Mpixel). The model needs about 3–6 KB of working
# memory per pixel (see ``auto_batch``), so 8K already takes 100–200 GB, the most that the largest
# GPUs hold. A header claiming more is a decompression bomb and is refused before anything is
# allocated for it.
MAX_PIXELS = 7680 * 4320

# --batch: pairs per model call. The decode and encode queues hold a few batches of frames, so this
# bounds their memory too; automatic batching picks at most 16.
MAX_BATCH = 256

# --steps: DDIM steps in all. Each of the three levels owns a third of the T = 1000 timesteps, so
# more than 999 would repeat timesteps (the paper uses 6).
MAX_STEPS = 999

# --refine-steps: Adam steps of the test-time flow polish, at most. The default is 20 (it stops
# early once a pair stops improving); 1000 is a bound against typos, not a quality knob.
MAX_REFINE_STEPS = 1000

# --noise: scale of the diffusion's sampling noise. 1 is the paper's unit Gaussian, the only scale the
# denoiser saw in training; more would only add noise it never learned to remove.
MAX_SAMPLING_NOISE = 1.0

# --seed: 0 … 2³² − 1, the range every random generator takes; per-frame seeds are derived from it.
MAX_SEED = 2 ** 32 - 1

# pair --num: default output names carry the time with three decimals (a-b-t0.500.png), so more
# than 999 frames would give two of them the same name.
MAX_PAIR_FRAMES = 999
