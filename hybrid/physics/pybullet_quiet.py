"""Import pybullet without its build-time banner.

pybullet's C module prints "pybullet build time: ..." to stderr when first
imported, which would land in the middle of the command's own messages and in
every worker's log. It is written by C code straight to the file descriptors, so
both standard descriptors are pointed at /dev/null for the import (and C's stdio
buffers flushed there) before being restored.
"""

from __future__ import annotations

import os
import sys


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def _import_quietly():
    if "pybullet" in sys.modules:
        return sys.modules["pybullet"]
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError, AttributeError):  # no real descriptors (embedded interpreters)
        import pybullet

        return pybullet
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        import pybullet

        _flush_c_stdio()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
    return pybullet


pybullet = _import_quietly()
