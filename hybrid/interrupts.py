"""Ctrl-C and SIGTERM that reach the code that can clean up, not the library that would swallow them.

The command line raises ``KeyboardInterrupt`` (Ctrl-C) or ``Terminated`` (SIGTERM) where
the process is, so staged folders and Ray go away as for any error. Two places would
eat such an exception: a library import under ``except BaseException`` (trimesh), and
Blender, which runs the Cycles engine's Python callbacks under a catch-all that prints
the exception and renders on. A signal arriving there is held (``defer``) and raised by
``raise_deferred``, which our code calls right after each Blender call returns.
"""

from __future__ import annotations

import signal
from typing import Optional


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that every cleanup (staged folders, Ray) runs as for Ctrl-C."""


_pending: Optional[int] = None


def defer(signum: int) -> None:
    """Hold `signum` until ``raise_deferred`` (a later signal of the other kind does not replace SIGTERM)."""
    global _pending
    if _pending != signal.SIGTERM:
        _pending = signum


def raise_deferred() -> None:
    """Raise what a held signal stands for (``Terminated`` or ``KeyboardInterrupt``), if one is held."""
    global _pending
    signum, _pending = _pending, None
    if signum is not None:
        raise exception_for(signum)


def exception_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
