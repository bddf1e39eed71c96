"""Ours, beyond the paper: a global matching prior for the coarsest diffusion level.

At 1/16 the local correlation's ±4 window reaches only ±64 px. Here every feature pixel of one frame
is compared with every feature pixel of the other (all-pairs cosine similarity, as GMFlow does),
a softmax turns each row into a match distribution, and the mean around its peak is the motion
between the frames, both ways (F_0→1 and F_1→0). The bilateral flow at τ follows from them under linear motion
(Super SloMo's approximation):

    f_τ→0 = −(1 − τ) τ F_0→1 + τ² F_1→0,     f_τ→1 = (1 − τ)² F_0→1 − τ (1 − τ) F_1→0

With ``DenoiserConfig.prior_splatting``, where the motion is large each frame's matches are instead
carried forward to where they are at τ (``splatted_bilateral``): the approximation above reads the
motion at the pixel itself, which for a small object moving farther than its size is the background's.

It is handed to the coarsest level as its starting estimate (instead of zero flow), so the shared
denoiser's warped features and local correlation start where the motion is, however far that is.

The encoder's 1/16 features were trained for the synthesizer and for *local* matching; compared
across the whole frame they match no better than zero motion (measured on the large-motion dev
set). So the matcher has its own small head that turns the encoder's 1/8 and 1/16 features into
matching features, trained by its own stage (``train.stages``: ``global_matching``) with a
contrastive loss over all pixels, without touching the rest of the network. With
``DenoiserConfig.matching_layers`` the head's features then pass GMFlow's transformer (self-attention
within each frame, cross-attention to the other), so a pixel's match feature knows the whole frame.

A denoiser keeps the start it is handed, so the prior gives no motion where it is not trustworthy:
where a match is unsure (``MIN_CONFIDENCE``), and where the motion aligns the two frames' features
no better than standing still (``aligns_better``); small motion then stays the local correlation's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import unit_channels
from .warp import backward_warp, downsample_flow, forward_splat
from .levels import LEVELS

# Entries of the all-pairs similarity held at once (B · rows · h · w): 2²⁴ floats are 64 MiB, so a
# 4K frame's 1/16 (32,400 pixels at flow resolution 1) takes 517 rows at a time (4,096 rows was 530 MB).
# A block's logits and softmax are both alive at once (2×); under autograd every block is kept.
SIMILARITY_BLOCK = 2 ** 24
# A match with less of its probability mass than this in the 3×3 pixels around its peak gives no
# motion at all. Measured with the bundled file's denoiser and matcher, before ``aligns_better``
# (weights/README.md, "Global matching on the bundled file"): 0.3 kept middlebury's loss (−0.23 dB),
# 0.7 gave up 0.1 dB of the synthetic large-motion gain; 0.5 is between.
MIN_CONFIDENCE = 0.5
# ``prior_splatting``: where less confident weight than this lands (a thousandth of one sure match),
# the prior has no motion.
SPLAT_MIN_WEIGHT = 1e-3
# ``prior_splatting``: a match whose way back misses by more feature pixels than this is not splatted
# (``consistent``). Measured with the bundled file, splatting everywhere without it (weights/README.md,
# "Splatting the prior"): real-large 32.95 dB, with it 33.02.
CYCLE_TOLERANCE = 1.0
# ``prior_splatting``: the splatted prior replaces Super SloMo's where it moves farther than this many
# feature pixels between the frames (32 px at stride 16). Below it the two agree but for the noise of
# splatting; splatted everywhere, sintel lost 0.11 dB where the stricter check at τ had left no prior.
SPLAT_BEYOND = 2.0


def expected_motion(feature0: torch.Tensor, feature1: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Where each pixel of ``feature0`` went in ``feature1``: (B, C, h, w) × 2 -> (B, 2, h, w), feature pixels.

    The match distribution is a softmax over all pixels of the cosine similarity times ``scale``. Its
    mean over the whole frame would average two candidate matches into a point between them, and a
    flat distribution (nothing recognisable) into the frame's centre; instead the motion is the mean
    over the 3×3 pixels around the best match, times the probability mass there (the confidence): a
    clear match gives its position, an ambiguous one shrinks towards zero motion, and one whose
    confidence is under ``MIN_CONFIDENCE`` gives none."""
    return matches(feature0, feature1, scale)[0]


def matches(feature0: torch.Tensor, feature1: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``expected_motion`` (B, 2, h, w) and its confidence (B, 1, h, w): the probability mass in the
    3×3 pixels around the peak, zero where it is under ``MIN_CONFIDENCE`` (no motion there)."""
    with torch.autocast(feature0.device.type, enabled=False):  # the similarity in float32 even under autocast
        return _matches(feature0.float(), feature1.float(), scale.float())


def _matches(feature0: torch.Tensor, feature1: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    batch, _, height, width = feature0.shape
    queries = unit_channels(feature0).flatten(2).transpose(1, 2)  # (B, N, C)
    keys = unit_channels(feature1).flatten(2)  # (B, C, N)
    ys, xs = torch.meshgrid(torch.arange(height, device=feature0.device),
                            torch.arange(width, device=feature0.device), indexing="ij")
    offsets = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=feature0.device)  # (9, 2)
    matched = []
    rows = max(1, SIMILARITY_BLOCK // (batch * height * width))
    for start in range(0, queries.shape[1], rows):
        weights = torch.softmax(queries[:, start:start + rows] @ keys * scale, dim=-1)  # (B, n, N)
        best = weights.argmax(-1)  # (B, n)
        y = (best // width)[..., None] + offsets[:, 0]  # (B, n, 9)
        x = (best % width)[..., None] + offsets[:, 1]
        inside = ((y >= 0) & (y < height) & (x >= 0) & (x < width)).float()
        index = y.clamp(0, height - 1) * width + x.clamp(0, width - 1)
        mass = weights.gather(-1, index) * inside  # (B, n, 9)
        confidence = mass.sum(-1, keepdim=True)  # (B, n, 1)
        position = torch.stack(((mass * x).sum(-1), (mass * y).sum(-1)), -1) / confidence.clamp(min=1e-6)
        matched.append((position, confidence))
    position = torch.cat([p for p, _ in matched], 1)  # (B, N, 2)
    confidence = torch.cat([c for _, c in matched], 1)
    here = torch.stack((xs, ys), -1).reshape(1, -1, 2).float()
    confidence = confidence * (confidence > MIN_CONFIDENCE)  # (B, N, 1)
    motion = confidence * (position - here)  # (B, N, 2)
    return (motion.transpose(1, 2).reshape(batch, 2, height, width),
            confidence.transpose(1, 2).reshape(batch, 1, height, width))


def global_bilateral_prior(feature0: torch.Tensor, feature1: torch.Tensor, time: torch.Tensor,
                           scale: torch.Tensor, pixel_scale: float, splatting: bool = False) -> torch.Tensor:
    """The bilateral flow at τ implied by global matching: (B, 4, h, w), full-resolution pixels; zero
    wherever it aligns the two frames' features no better than zero motion does (``aligns_better``).
    Super SloMo's approximation, checked at τ; with ``splatting``, wherever the matches carried
    forward to τ (``splatted_bilateral``) move farther than ``SPLAT_BEYOND``, those instead. Each
    splatted match is checked at the pixel it starts from (is the matched pixel of the other frame
    more alike than the same pixel there? does the match come back, ``consistent``?): at τ the
    alignment check cannot work, since both frames show the background an object passed over as still."""
    forward, confidence0 = matches(feature0, feature1, scale)  # F_0→1, feature pixels
    backward, confidence1 = matches(feature1, feature0, scale)  # F_1→0
    tau = time.float().reshape(-1, 1, 1, 1)
    to0 = -(1 - tau) * tau * forward + tau * tau * backward
    to1 = (1 - tau) ** 2 * forward - tau * (1 - tau) * backward
    prior = torch.cat((to0, to1), 1)
    prior = prior * aligns_better(feature0, feature1, prior)
    if splatting:  # each match checked where it starts: at τ the background an object uncovers looks still
        still = torch.zeros_like(forward)
        kept0 = aligns_better(feature0, feature1, torch.cat((still, forward), 1)) & consistent(forward, backward)
        kept1 = aligns_better(feature1, feature0, torch.cat((still, backward), 1)) & consistent(backward, forward)
        splatted = splatted_bilateral(forward, backward, confidence0 * kept0, confidence1 * kept1, tau)
        far = (splatted[:, 2:] - splatted[:, :2]).norm(dim=1, keepdim=True) > SPLAT_BEYOND
        prior = torch.where(far, splatted, prior)
    return prior * pixel_scale


def consistent(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) bool: where a match comes back, the forward–backward check of classical optical
    flow: F_0→1(p) + F_1→0(p + F_0→1(p)) within ``CYCLE_TOLERANCE`` feature pixels of zero. A pixel
    that the other frame occludes has no true match, and what it matches instead does not match it back."""
    return (forward + backward_warp(backward, forward)).norm(dim=1, keepdim=True) < CYCLE_TOLERANCE


def splatted_bilateral(forward: torch.Tensor, backward: torch.Tensor, confidence0: torch.Tensor,
                       confidence1: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """The bilateral flow at τ (B, 4, h, w) from both frames' matches, each carried to where it is at τ.

    Under linear motion the pixel p of I0 is at p + τ·F_0→1(p) at time τ, and there f_τ→0 = −τ·F_0→1,
    f_τ→1 = (1 − τ)·F_0→1; the pixel q of I1 is at q + (1 − τ)·F_1→0(q), with f_τ→0 = τ·F_1→0,
    f_τ→1 = −(1 − τ)·F_1→0. Both are splatted (``forward_splat``), weighted by their match's
    confidence, and averaged where they land; where nothing confident lands, zero motion. Super
    SloMo's approximation instead reads both motions at the pixel itself, which for an object moving
    farther than its own size is the motion of whatever was there in I0 and I1: the background's."""
    from0 = torch.cat((-tau * forward, (1 - tau) * forward), 1)
    from1 = torch.cat((tau * backward, -(1 - tau) * backward), 1)
    sums0, weights0 = forward_splat(from0, confidence0, tau * forward)
    sums1, weights1 = forward_splat(from1, confidence1, (1 - tau) * backward)
    weights = weights0 + weights1
    return (sums0 + sums1) / weights.clamp(min=1e-6) * (weights > SPLAT_MIN_WEIGHT)


def aligns_better(feature0: torch.Tensor, feature1: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(B, 1, h, w) bool: where the bilateral ``flow`` (B, 4, h, w, feature pixels) brings the two
    frames' features (cosine similarity of I0's at x + f_τ→0 and I1's at x + f_τ→1) closer together
    than zero motion does. A repeated pattern (a façade's windows) matches a far copy as well as the
    near one, and the shipped denoiser, handed the far one, keeps it: this check lets small motion
    stay the local correlation's (middlebury's Urban2: −0.80 dB without it, weights/README.md)."""
    unit0, unit1 = unit_channels(feature0.float()), unit_channels(feature1.float())
    moved = (backward_warp(unit0, flow[:, :2]) * backward_warp(unit1, flow[:, 2:])).sum(1, keepdim=True)
    still = (unit0 * unit1).sum(1, keepdim=True)
    return moved > still + 1e-6  # a tie within float rounding is no better


def sine_positions(dim: int, height: int, width: int, device) -> torch.Tensor:
    """DETR/GMFlow's 2D sine position encoding: (1, height·width, dim), half the channels for y, half for x."""
    quarter = dim // 4
    frequencies = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32), indexing="ij")
    angles_y, angles_x = ys.flatten()[:, None] * frequencies, xs.flatten()[:, None] * frequencies
    encoding = torch.cat((angles_y.sin(), angles_y.cos(), angles_x.sin(), angles_x.cos()), -1)
    return F.pad(encoding, (0, dim - encoding.shape[-1]))[None]


class MatchingLayer(nn.Module):
    """One of GMFlow's transformer layers: self-attention within a frame, cross-attention to the other
    frame, a feed-forward; pre-norm and residual. Positions enter the queries and keys only (as in
    DETR), and the output projections start at zero, so a new layer is the identity and a trained
    convolutional head keeps its matches."""

    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(4))
        self.self_qk, self.self_v, self.self_out = nn.Linear(dim, 2 * dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.cross_q, self.cross_k, self.cross_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.cross_out = nn.Linear(dim, dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        for projection in (self.self_out, self.cross_out, self.feed_forward[-1]):
            nn.init.zeros_(projection.weight)
            nn.init.zeros_(projection.bias)

    def _attend(self, queries, keys, values):
        """(B, N, C) each -> (B, N, C); memory-efficient attention, ``heads`` heads."""
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, heads, N, C/heads)
        return F.scaled_dot_product_attention(split(queries), split(keys), split(values)).transpose(1, 2).flatten(2)

    def forward(self, tokens: torch.Tensor, other: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``tokens`` (B, N, C) of one frame, ``other`` (B, N, C) of the other, ``positions`` (1, N, C)
        -> (B, N, C)."""
        normed = self.norms[0](tokens)
        q, k = self.self_qk(normed + positions).chunk(2, -1)
        tokens = tokens + self.self_out(self._attend(q, k, self.self_v(normed)))
        normed, theirs = self.norms[1](tokens), self.norms[2](other)
        attended = self._attend(self.cross_q(normed + positions), self.cross_k(theirs + positions), self.cross_v(theirs))
        tokens = tokens + self.cross_out(attended)
        return tokens + self.feed_forward(self.norms[3](tokens))


class GlobalMatcher(nn.Module):
    """Matching features from the encoder's 1/8 and 1/16 features, and the bilateral prior at 1/16."""

    def __init__(self, width_eighth: int, width_sixteenth: int, dim: int = 64, layers: int = 0, stride: int = 16,
                 splatting: bool = False):
        super().__init__()
        self.stride = stride  # full-resolution pixels per pixel of the match: 16, or 8 (finer)
        self.splatting = splatting  # the prior carried forward to τ (``splatted_bilateral``)
        self.head = nn.Sequential(
            nn.Conv2d(width_eighth + width_sixteenth, 2 * dim, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(2 * dim, 2 * dim, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(2 * dim, dim, 1),
        )
        # Ours, as GMFlow: each frame's features see the whole frame and the other frame before matching.
        self.layers = nn.ModuleList(MatchingLayer(dim) for _ in range(layers))
        # Sharpness of the match distribution (cosine similarity × scale), learned in log space so it
        # can move by orders of magnitude.
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def features(self, eighth: torch.Tensor, sixteenth: torch.Tensor) -> torch.Tensor:
        """(B, C8, 2h, 2w), (B, C16, h, w) -> one frame's matching features before the transformer:
        (B, dim, h, w) at stride 16, (B, dim, 2h, 2w) at stride 8."""
        if self.stride == 8:
            return self.head(torch.cat((eighth, F.interpolate(sixteenth, size=eighth.shape[-2:], mode="bilinear",
                                                              align_corners=False)), 1))
        return self.head(torch.cat((F.avg_pool2d(eighth, 2), sixteenth), 1))

    def forward(self, pyramid0: list[torch.Tensor], pyramid1: list[torch.Tensor], time: torch.Tensor) -> torch.Tensor:
        """The bilateral prior (B, 4, h, w) at 1/16, full-resolution pixels, from the encoder pyramids."""
        prior = self.bilateral_prior(*self.pair_features(pyramid0, pyramid1), time)
        return downsample_flow(prior, LEVELS.scale(0) // self.stride)  # to the coarsest level's grid

    def bilateral_prior(self, match0: torch.Tensor, match1: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """The prior (B, 4, h, w) on the match's grid, full-resolution pixels, from both frames' matching features."""
        return global_bilateral_prior(match0, match1, time, self.scale, self.stride, self.splatting)

    def pair_features(self, pyramid0: list[torch.Tensor], pyramid1: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Both frames' matching features on the match's grid (B, dim, h, w), from their encoder
        pyramids (the 1/8 and 1/16 entries); with ``layers``, each frame has looked at the other."""
        match0, match1 = (self.features(p[LEVELS.coarsest - 1], p[LEVELS.coarsest]) for p in (pyramid0, pyramid1))
        if not self.layers:
            return match0, match1
        batch, dim, height, width = match0.shape
        positions = sine_positions(dim, height, width, match0.device).to(match0.dtype)
        tokens0, tokens1 = (m.flatten(2).transpose(1, 2) for m in (match0, match1))  # (B, N, dim)
        for layer in self.layers:
            tokens0, tokens1 = layer(tokens0, tokens1, positions), layer(tokens1, tokens0, positions)
        return tuple(t.transpose(1, 2).reshape(batch, dim, height, width) for t in (tokens0, tokens1))
