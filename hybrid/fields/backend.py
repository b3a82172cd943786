"""Taichi, started once per process on the backend a scene asks for.

Taichi has one runtime per process: every solver's fields live in it, and starting it
again (to change backend or thread count) frees them all. ``ensure(arch,
deterministic)`` starts it on first use and afterwards only checks that what is asked
for matches what runs; a different request restarts it, which is only allowed when
no solver is alive (``acquire``/``release`` count them).

Determinism. On the CPU every sum the solvers and the field renderers make has an
order set by the data, not by the threads: the MPM scatter adds without atomics in
coloured blocks, the impulses on bodies are integer (fixed-point) atomics, which are
associative, reductions go in fixed chunks, and the liquid splat runs on one thread.
So a scene gives the same bytes run to run and at any thread count, and Taichi uses
every core (``HYBRID_FIELD_THREADS`` sets another count: dataset workers, which run
side by side, take one each). On a GPU the particle-to-grid adds are float atomics
and the last bits vary run to run. ``deterministic`` is kept so that scenes that set
it still load; it no longer changes the thread count.

``import hybrid.fields.backend`` does not import Taichi; ``ensure`` does (quietly: no
banner on stdout, no version check over the network).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional

ARCHES = ("cpu", "cuda", "vulkan", "auto")
THREADS_ENV = "HYBRID_FIELD_THREADS"  # CPU threads for Taichi; unset or 0: every core


class BackendError(RuntimeError):
    """Taichi could not start as asked (says which backend and what to do)."""


@dataclass(frozen=True)
class Backend:
    arch: str  # what runs: cpu | cuda | vulkan
    requested: str
    deterministic: bool
    threads: int  # CPU threads (0 on a GPU)


_current: Optional[Backend] = None
_alive = 0


def _import_taichi():
    os.environ.setdefault("ENABLE_TAICHI_HEADER_PRINT", "False")
    os.environ.setdefault("TI_SKIP_VERSION_CHECK", "ON")
    os.environ.setdefault("TI_LOG_LEVEL", "warn")
    import taichi as ti

    return ti


def current() -> Optional[Backend]:
    """The running backend, or None before the first ``ensure``."""
    return _current


def _start(ti, arch: str, deterministic: bool, threads: int) -> None:
    import contextlib
    import io

    target = {"cpu": ti.cpu, "cuda": ti.cuda, "vulkan": ti.vulkan}[arch]
    kwargs = dict(arch=target, default_fp=ti.f32, default_ip=ti.i32, random_seed=0)
    if arch == "cpu":
        kwargs["cpu_max_num_threads"] = threads
    # ti.init prints "[Taichi] Starting on arch=..." to stdout; keep stdout for our output.
    with contextlib.redirect_stdout(io.StringIO()):
        ti.init(**kwargs)


def _device_present(arch: str) -> bool:
    """Whether the driver library of a GPU backend is on this machine (probing it by starting
    Taichi would cost seconds and print warnings when it is not)."""
    import ctypes.util

    return ctypes.util.find_library({"cuda": "cuda", "vulkan": "vulkan"}[arch]) is not None


def default_threads() -> int:
    """Taichi's CPU thread count: ``HYBRID_FIELD_THREADS`` when set to a positive integer, else every core."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise BackendError(f"{THREADS_ENV}={raw!r} is not a whole number; set it to a thread count, or unset it") from None
        if value < 0:
            raise BackendError(f"{THREADS_ENV}={raw!r} is negative; set it to a thread count, or 0 (every core)")
        if value > 0:
            return value
    return os.cpu_count() or 1


def ensure(arch: str = "auto", deterministic: bool = True, *, threads: Optional[int] = None, log=None) -> Backend:
    """Start Taichi on `arch` (or check it already runs so) and return what runs.

    ``auto`` tries cuda, then vulkan, then the CPU, and says through `log` (a callable
    taking one message; default stderr) when it falls back. An explicit ``cuda`` or
    ``vulkan`` that cannot start is a ``BackendError``. `threads` overrides the CPU
    thread count (default: ``default_threads()``). `deterministic` is recorded and
    changes nothing (module docstring).
    """
    global _current
    if arch not in ARCHES:
        raise BackendError(f"unknown Taichi backend {arch!r}; use one of {', '.join(ARCHES)}")
    say = log if log is not None else (lambda msg: print(msg, file=sys.stderr))
    cpu_threads = threads if threads is not None else default_threads()
    if _current is not None:
        same_arch = arch == _current.arch or (arch == "auto" and _current.requested == "auto")
        same_cpu = _current.arch != "cpu" or _current.threads == cpu_threads
        if same_arch and same_cpu:
            return _current
        if _alive:
            raise BackendError(
                f"Taichi already runs as {_current.arch} ({_current.threads} CPU threads) for {_alive} live "
                f"field solver(s); a scene asking for {arch} ({cpu_threads} CPU threads) needs them closed "
                "first (close the World), or the same `fields.arch` in both scenes"
            )
    ti = _import_taichi()
    if _current is not None:
        ti.reset()
        _current = None
    tried = ["cuda", "vulkan"] if arch == "auto" else [arch]
    for candidate in tried:
        if candidate == "cpu":
            break
        if arch == "auto" and not _device_present(candidate):
            continue
        try:
            _start(ti, candidate, deterministic, 0)
            if ti.lang.impl.current_cfg().arch == {"cuda": ti.cuda, "vulkan": ti.vulkan}[candidate]:
                _current = Backend(candidate, arch, deterministic, 0)
                return _current
            ti.reset()  # Taichi fell back to the CPU by itself: restart with our CPU settings
        except Exception:
            try:
                ti.reset()
            except Exception:
                pass
        if arch != "auto":
            raise BackendError(
                f"fields.arch is {arch} but Taichi cannot start a {arch} device on this machine; "
                "use `arch: auto` (falls back to the CPU) or `arch: cpu`"
            )
    if arch == "auto":
        say("fields: no CUDA or Vulkan device found; simulating fields on the CPU")
    _start(ti, "cpu", deterministic, cpu_threads)
    _current = Backend("cpu", arch, deterministic, cpu_threads)
    return _current


def acquire() -> None:
    """A solver was built on the running backend (it must be released when closed)."""
    global _alive
    _alive += 1


def release() -> None:
    global _alive
    _alive = max(0, _alive - 1)
