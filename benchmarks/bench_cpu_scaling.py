"""What limits the field solvers' gain from a second core: the machine, or the way the work is scheduled.

Three measurements, each at 1 thread and at every core, each thread count in its own
process (Taichi fixes its thread count when it starts):

1. ``split``: how Taichi's CPU runtime shares a range-for among threads. For loops of
   256 to 65,536 iterations, which thread ran each iteration (``ti.global_thread_idx()``):
   how many runs of consecutive iterations there were and each thread's count, with
   ``block_dim`` left alone and set to 1. Then the time of a compute-bound loop (a chain
   of sines, no memory traffic) whose heavy iterations are all in its first half against
   the same work spread over all of it: a pool that deals out small tasks runs both in
   the same time; one that cuts the range into one run per thread leaves a thread idle.
2. ``memory``: a copy of 64 MB in NumPy, one process against N processes at once:
   the machine's memory bandwidth and how it grows with cores (the MPM passes stream
   about 15 MB a substep).
3. ``scatter``: the liquid's particle-to-grid pass (``hybrid.fields.mpm``), 65,536 water
   particles on the 64^3 grid of ``bench_mpm.py``, timed as shipped (eight coloured
   loops, plain adds) and as the same particles with atomic adds in one loop.

Run: python benchmarks/bench_cpu_scaling.py [--part compute|memory|scatter]
"""


import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

LENGTHS = (256, 511, 513, 1024, 1500, 4096, 65536)
SINES = 4096 * 320  # sine evaluations per call of the timed loop (about 10 ms on one core here)
WORK = 400  # sines per iteration of the loops whose threads are recorded


def _split(threads: int) -> dict:
    import numpy as np
    import taichi as ti

    from hybrid.fields import backend

    backend.ensure("cpu", threads == 1, threads=threads)
    Arr = ti.types.ndarray(dtype=ti.i32, ndim=1)
    who = ti.ndarray(ti.i32, max(LENGTHS))
    out = ti.ndarray(ti.f32, 4096)

    # Each iteration does some work (WORK sines), so that a thread that wakes late still finds
    # tasks left: with empty iterations the first thread awake runs the whole loop.
    @ti.kernel
    def record(w: Arr, n: ti.i32, small_blocks: ti.template()):
        if ti.static(small_blocks):
            ti.loop_config(block_dim=1)
        for i in range(n):
            x = ti.cast(i, ti.f32)
            for r in range(WORK):
                x = ti.sin(x)
            w[i] = ti.global_thread_idx() + ti.cast(x * 0.0, ti.i32)

    @ti.kernel
    def spin(a: ti.types.ndarray(dtype=ti.f32, ndim=1), heavy: ti.i32, work: ti.i32):
        for i in range(4096):  # iterations below `heavy` do `work` sines, the others none
            x = 1.0
            if i < heavy:
                for r in range(work):
                    x = ti.sin(x * 1.0001 + ti.cast(r, ti.f32) * 1e-9)
            a[i] = x

    result = {"runs": {}}
    for name, small_blocks in (("plain", False), ("block_dim=1", True)):
        for n in LENGTHS:
            record(who, n, small_blocks)
            ids = who.to_numpy()[:n]
            runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[-1], ids, [-1]])) != 0))
            result["runs"][f"{name} {n}"] = [runs.tolist(), np.bincount(ids, minlength=threads).tolist()]
    for label, heavy in (("first half", 2048), ("everywhere", 4096)):
        work = SINES // heavy
        spin(out, heavy, work)
        ti.sync()
        times = []
        for _ in range(15):
            start = time.perf_counter()
            spin(out, heavy, work)
            ti.sync()
            times.append(time.perf_counter() - start)
        result[label] = statistics.median(times)
    return result


def _scatter(threads: int) -> dict:
    import inspect
    import importlib
    import tempfile

    import taichi as ti

    from hybrid.fields import backend

    backend.ensure("cpu", threads == 1, threads=threads)
    from bench_mpm import our_spec
    from hybrid.fields import mpm

    # The shipped kernel's source with atomic adds in one loop over every block slot (written to a
    # temporary module: Taichi reads a kernel's source from its file).
    src = inspect.getsource(mpm._p2g_blocks).replace("def _p2g_blocks(", "def p2g_atomic_one_loop(")
    for old, new in (
        ("for colour in ti.static(range(8)):", "for colour in ti.static(range(1)):"),
        ("last = (colour + 1) * per_colour - 1", "last = 8 * per_colour - 1"),
        ("sx, sy, inv_dx, p_mass, flip, False)", "sx, sy, inv_dx, p_mass, flip, True)"),
    ):
        if old not in src:
            raise SystemExit(f"bench_cpu_scaling: the scatter kernel changed; update this benchmark ({old!r})")
        src = src.replace(old, new)
    head = (
        "import taichi as ti\nfrom hybrid.fields.mpm import *\n"
        "from hybrid.fields.mpm import _clear_grid, _particle_affine, _scatter_stencil\n"
    )
    folder = tempfile.mkdtemp(prefix="hybrid-bench-")
    Path(folder, "p2g_variant.py").write_text(head + src)
    sys.path.insert(0, folder)
    variant = importlib.import_module("p2g_variant").p2g_atomic_one_loop

    s = mpm.LiquidSolver(our_spec(64, flip=0.0), None, gravity=(0.0, 0.0, -9.8), seed=0)
    s.advance(3 * s.substep_limit())
    dt, inv_dx = s.substep_limit(), 1.0 / s.dx
    material = (s.bulk, s.viscosity, s.mu, s.lam, s.alpha, s.mat, s.flip)

    def call(kernel):
        if kernel is None:
            s._scatter(dt)  # as shipped
        else:
            kernel(s.x, s.v, s.C, s.J, s.F, s.Jp, s.gv, s.gm, s.gp, s.stats, s._start, s._total, s._sorted_blk,
                   s._affine, s.n, s._per_colour, s._sx, s._sy, dt, inv_dx, s.p_vol, s.p_mass, *material)

    kernels = {"coloured_plain": None, "one_loop_atomic": variant}
    for k in kernels.values():
        call(k)
    ti.sync()
    times = {name: [] for name in kernels}
    for _ in range(30):
        for name, k in kernels.items():  # in turns, so a busy machine slows both alike
            start = time.perf_counter()
            call(k)
            ti.sync()
            times[name].append(time.perf_counter() - start)
    s.close()
    return {name: statistics.median(t) for name, t in times.items()}


def _copy_rate(seconds: float = 2.0) -> float:
    """Bytes per second one process copies between two 64 MB arrays (read + write counted)."""
    import numpy as np

    a = np.ones(16 * 1024 * 1024, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        np.copyto(b, a)
        n += 1
    return 2 * a.nbytes * n / (time.perf_counter() - start)


def _in_subprocess(part: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", part, "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(out.returncode)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("split", "memory", "scatter", "all"), default="all")
    parser.add_argument("--worker", choices=("split", "memory", "scatter"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        fn = {"split": _split, "scatter": _scatter, "memory": lambda t: {"rate": _copy_rate()}}[args.worker]
        print(json.dumps(fn(args.threads)))
        return 0

    cores = os.cpu_count() or 1
    parts = ("split", "memory", "scatter") if args.part == "all" else (args.part,)
    if "split" in parts:
        one, many = _in_subprocess("split", 1), _in_subprocess("split", cores)
        print(f"How a range-for is shared among {cores} threads: runs of consecutive iterations one thread ran, "
              "and each thread's count:\n")
        print("| loop | iterations | runs, in order | per thread |")
        print("|---|---:|---|---|")
        for key, (runs, counts) in many["runs"].items():
            name, n = key.rsplit(" ", 1)
            print(f"| {name} | {n} | {', '.join(map(str, runs))} | {', '.join(map(str, counts))} |")
        print(f"\nA compute-bound loop of 4,096 iterations, {SINES:,} sines in all (median of 15 calls):\n")
        print(f"| heavy iterations | 1 thread (ms) | {cores} threads (ms) | gain |")
        print("|---|---:|---:|---:|")
        for label in ("everywhere", "first half"):
            a, b = one[label], many[label]
            print(f"| {label} | {1000 * a:.2f} | {1000 * b:.2f} | {a / b:.2f}x |")
        print()
    if "memory" in parts:
        single = _in_subprocess("memory", 1)["rate"]
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", "memory"], stdout=subprocess.PIPE, text=True)
                 for _ in range(cores)]
        rates = [json.loads(p.communicate()[0].strip().splitlines()[-1])["rate"] for p in procs]
        print(f"Memory: a 64 MB NumPy copy, one process {single / 1e9:.1f} GB/s; {cores} processes at once "
              f"{sum(rates) / 1e9:.1f} GB/s together ({sum(rates) / single:.2f}x)\n")
    if "scatter" in parts:
        one, many = _in_subprocess("scatter", 1), _in_subprocess("scatter", cores)
        print("Particle-to-grid pass, 65,536 water particles, 64^3 grid (median of 30 calls, in turns):\n")
        print(f"| kernel | 1 thread (ms) | {cores} threads (ms) | gain |")
        print("|---|---:|---:|---:|")
        for name in one:
            print(f"| {name} | {1000 * one[name]:.2f} | {1000 * many[name]:.2f} | {one[name] / many[name]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
