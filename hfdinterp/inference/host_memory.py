"""Host memory: keep what PyTorch frees for the next allocation instead of handing it back to the OS.

glibc's malloc serves every block above 128 KiB-ish with its own ``mmap`` and returns it with
``munmap`` when freed, so a tensor the size of a frame costs fresh pages, each one a page fault
on first touch. The model makes and drops hundreds of such tensors per pair (every warp, every
refinement step), and on the CPU that was a seventh of a 960×540 pair: 160,000–280,000 page
faults per 5 pairs, 0.48–0.52 s → 0.43 s a pair with them gone (two threads, idle; CHANGELOG). Raising the ``mmap``
threshold to its maximum (32 MiB) puts those blocks on the heap, and a 256 MiB trim threshold keeps
freed heap memory for reuse; the peak is unchanged, at most 256 MiB more than the working set stays
resident between batches.

It is process-wide, so it happens once, when the first interpolator is made, only with glibc, and
not at all when the user tunes malloc through its own variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``, or ``GLIBC_TUNABLES``) or preloads another allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters, <malloc.h>
MMAP_THRESHOLD = 32 * 2 ** 20  # glibc's largest on 64-bit systems
TRIM_THRESHOLD = 256 * 2 ** 20
TOP_PAD = 64 * 2 ** 20
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES", "LD_PRELOAD")

_done = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above (once per process); True if this call changed it."""
    global _done
    if _done:
        return False
    _done = True
    if any(os.environ.get(name) for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in
               ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
