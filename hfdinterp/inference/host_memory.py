"""Host memory: keep what PyTorch frees for the next allocation instead of handing it back to the OS.

glibc's malloc serves every block above 128 KiB-ish with its own ``mmap`` and returns it with
``munmap`` when freed, so a tensor the size of a frame costs fresh pages, each one a page fault
on first touch. The model makes and drops hundreds of such tensors per pair (every warp, every
refinement step), and on the CPU that was a seventh of a 960×540 pair: 160,000–280,000 page
faults per 5 pairs, 0.48–0.52 s → 0.43 s a pair with them gone (two threads, idle; CHANGELOG).
So ``mmap`` is turned off (``M_MMAP_MAX`` = 0) and every block comes from the heap; a 256 MiB trim
threshold keeps freed heap memory for reuse. The peak is unchanged, and at most 256 MiB more than
the working set stays resident between batches. (0.6 only raised the ``mmap`` threshold to its
32 MiB maximum, but at 720p the Catmull–Rom warp's 12-channel stack is 44 MB, and a batch of pairs
more: turning ``mmap`` off made a 720p clip 6 % faster, 30.5 → 28.5 s, with 1.4 s less system time.)

A training process goes further (``keep_freed_memory(for_training=True)``, from ``train``): a step's
activations are made in the forward pass and freed by the backward one, gigabytes of them, and some
single tensors pass 32 MiB (a batch's census maps: 64–77 MB). There trimming is off as well: the
heap grows to the step's peak once and stays. Measured on the ``matching`` stage (256² crops,
batch 6, one thread): 356,000–420,000 page faults a second and two thirds of the process's time in
the kernel, against 130 faults a second.

It is process-wide, so it happens once, when the first interpolator is made (or training starts),
only with glibc, and not at all when the user tunes malloc through its own variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``, or ``GLIBC_TUNABLES``) or preloads another allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4  # mallopt parameters, <malloc.h>
TRIM_THRESHOLD = 256 * 2 ** 20
TOP_PAD = 64 * 2 ** 20
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                 "GLIBC_TUNABLES", "LD_PRELOAD")

_applied: str | None = None  # "inference" or "training", once a call has decided


def keep_freed_memory(for_training: bool = False) -> bool:
    """Tune glibc's malloc as above; True if this call changed it. Once per process, except that
    ``for_training`` (no ``mmap`` and no trimming at all: a training step's peak stays resident) still
    applies after the inference settings."""
    global _applied
    wanted = "training" if for_training else "inference"
    if _applied == "training" or _applied == wanted:  # training's settings include inference's needs
        return False
    _applied = wanted
    if any(os.environ.get(name) for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    trim = -1 if for_training else TRIM_THRESHOLD  # -1: never trim (mallopt(3))
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, trim))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings + ((_M_TOP_PAD, TOP_PAD),))
