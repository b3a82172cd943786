"""Reusable per-thread scratch arrays for large temporaries that never leave a function.

A 256 x 256 frame's working arrays are up to megabytes each. Allocated fresh on every
call, they cost page faults whenever the C allocator has handed the previous ones back
to the operating system, which glibc does by default for blocks this size (in this
chain that was about a quarter of the run time), and a larger working set that falls
out of the cache. Reusing one array per (name, shape) per thread avoids both.

Rules that keep effects pure: a scratch array is only written and read inside the
function that asked for it (never returned, never stored), its contents are
undefined on arrival, and each name is used by one function. Threads never share one.
"""

from __future__ import annotations

import threading

import numpy as np

_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """An uninitialised array of ``shape`` reserved for ``name`` in this thread (see the rules above)."""
    cache = getattr(_local, "arrays", None)
    if cache is None:
        cache = _local.arrays = {}
    key = (name, tuple(shape), np.dtype(dtype).str)
    array = cache.get(key)
    if array is None:
        if len(cache) > 64:  # frame sizes changed many times: drop the old arrays
            cache.clear()
        array = cache[key] = np.empty(shape, dtype=dtype)
    return array
