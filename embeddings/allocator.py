"""How the process's C allocator treats freed memory.

glibc hands a block of 128 KiB or more out of a fresh `mmap` and gives it back to the
kernel when it is freed, and trims the heap's free top likewise. Identification is made of
such blocks, large and short-lived: one SIFT scale-space pyramid of a 600 px photo is about
100 MB of float images (OpenCV doubles the photo first), built twice per photo, and the
search's arrays follow. Each block's pages then fault in again, zeroed by the kernel: on a
2-core VM that was 24 000 page faults and a third of the time of every query photo (2 000
photos, 2026-12-06, AMD EPYC: identify p50 220 ms, 151 ms with freed memory kept), and the
time a fault takes moves with the host's load.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
"""mallopt's parameter numbers (glibc's malloc.h)."""
_MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks below it come from the heap and are reused once freed: glibc's largest allowed
value on 64-bit systems, above one pyramid image (5.8 MB at 1 200 px)."""
_TRIM_THRESHOLD = 512 * 1024 * 1024
"""Free memory at the heap's top kept for reuse rather than given back: a few photos'
working memory, small beside an index of thousands of photos."""


def retain_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of returning it to the kernel; for
    the processes that identify or describe photos, at their start.

    Returns:
        Whether the allocator took the settings: False off glibc (macOS, musl), where the
        allocator is left as it is.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
