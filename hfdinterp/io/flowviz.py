"""Colour-coded flow pictures: hue is direction, saturation is length (white = still)."""

from __future__ import annotations

import numpy as np


def flow_to_rgb(flow: np.ndarray, max_length: float | None = None) -> np.ndarray:
    """(2, H, W) flow in pixels -> (H, W, 3) float in [0, 1]."""
    dx, dy = flow[0], flow[1]
    length = np.hypot(dx, dy)
    scale = max_length if max_length else max(float(length.max()), 1e-6)
    hue = (np.arctan2(-dy, -dx) / np.pi + 1) / 2  # [0, 1)
    saturation = np.clip(length / scale, 0, 1)
    return _hsv_to_rgb(hue, saturation, np.ones_like(hue))


def bilateral_flow_picture(flow: np.ndarray) -> np.ndarray:
    """(4, H, W) bilateral flow -> f_t→0 and f_t→1 side by side on one shared scale, (H, 2W, 3)."""
    longest = max(float(np.hypot(flow[0], flow[1]).max()), float(np.hypot(flow[2], flow[3]).max()), 1e-6)
    return np.concatenate((flow_to_rgb(flow[0:2], longest), flow_to_rgb(flow[2:4], longest)), axis=1)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,), dtype=np.float32)
    for k, (r, g, b) in enumerate(choices):
        where = i == k
        rgb[where] = np.stack((r[where], g[where], b[where]), -1)
    return rgb
