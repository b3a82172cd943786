"""Particle liquid: hybrid's LiquidSolver against Taichi's own mpm3d.py example, substep for substep.

The yardstick is the MLS-MPM example shipped in the installed taichi wheel
(``taichi/examples/simulation/mpm3d.py``). Its source is read at run time, rewritten
minimally so it imports as a module (no ``ti.init`` of its own, no GUI; its 64^3
setting ``dim, n_grid, steps, dt = 3, 64, 25, 2e-4``: 65,536 particles) and imported
from a temporary file; none of its code lives in this repository.

Ours runs the same particle count and grid: a 1 m domain at resolution 64 (64 cells
a side; our grid adds 2 padding nodes beyond each face, 69^3 nodes against their
64^3), water (density 1000, sound speed 20 m/s: their E / rho = 400 = 20^2), 4
particles per cell in a 32 x 32 x 16 cell block, no bodies. Theirs is timed over
``substep()`` calls (then ``ti.sync()``), ours over ``advance`` (CFL substeps, with
the host's per-substep bookkeeping); both are compiled and warm first, then taken in
turns for several repeats so a busy machine slows them alike. We print
particle-substeps per second (wall clock) and the median ratio ours / theirs for one
thread and for every core. Both thread counts run in this one process: Taichi is
restarted with the other count between rounds (``hybrid.fields.backend.ensure``; the
kernels come back from Taichi's offline cache), and the rounds alternate, so machine
drift reaches both alike. Target: ratio >= 0.8. The ratio compares like with like: ours with
``flip: 0`` (APIC, the method of mpm3d.py); a third column times our default water
(FLIP 0.95, whose particle-to-grid pass also scatters the velocity before forces), in
the same turns.

Run: python benchmarks/bench_mpm.py [--quick] [--threads N] [--rounds R]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 0.8
SETTING = "dim, n_grid, steps, dt = 3, 64, 25, 2e-4"


def load_mpm3d():
    """Import taichi's examples/simulation/mpm3d.py, rewritten minimally, from a temporary file."""
    import taichi

    src_path = Path(taichi.__file__).resolve().parent / "examples" / "simulation" / "mpm3d.py"
    if not src_path.is_file():
        raise SystemExit(f"cannot find Taichi's mpm3d example at {src_path}; is taichi installed from its wheel?")
    lines = []
    for line in src_path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("ti.init("):
            continue  # Taichi is started once by hybrid.fields.backend
        if stripped.startswith("dim, n_grid, steps, dt =") and not line.lstrip().startswith("#"):
            line = SETTING
        lines.append(line)
    source = "\n".join(lines) + "\n"
    if SETTING not in source:
        raise SystemExit("mpm3d.py changed shape: could not set its 64^3 setting")
    tmp = Path(tempfile.mkdtemp(prefix="bench_mpm_")) / "mpm3d_bench.py"
    tmp.write_text(source)
    spec = importlib.util.spec_from_file_location("mpm3d_bench", tmp)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def our_spec(n_grid: int, flip=None):
    from hybrid.scene.fields_spec import LiquidSpec

    c = 1.0 / n_grid
    lo = 10 * c
    return LiquidSpec.model_validate(
        dict(
            domain=dict(min=[0, 0, 0], max=[1, 1, 1]),
            resolution=n_grid,
            material="water",
            density=1000.0,
            sound_speed=20.0,
            particles_per_cell=4,
            fill=[dict(min=[lo, lo, lo], max=[lo + 32 * c, lo + 32 * c, lo + 16 * c])],
            max_substeps=100000,
            flip=flip,
        )
    )


def worker(threads: int, repeats: int, substeps: int) -> dict:
    """One round at `threads` CPU threads (Taichi restarted with that count if it runs with another)."""
    from hybrid.fields import backend

    deterministic = threads == 1
    backend.ensure("cpu", deterministic, threads=threads)
    import taichi as ti

    from hybrid.fields.mpm import LiquidSolver

    theirs = load_mpm3d()
    theirs.init()
    solvers = {
        "ours": LiquidSolver(our_spec(theirs.n_grid, flip=0.0), None, gravity=(0.0, 0.0, -9.8), seed=0),
        "ours_flip": LiquidSolver(our_spec(theirs.n_grid), None, gravity=(0.0, 0.0, -9.8), seed=0),
    }
    for ours in solvers.values():
        if ours.count != theirs.n_particles:
            raise SystemExit(f"particle counts differ: ours {ours.count}, theirs {theirs.n_particles}")
    # Compile and warm all.
    for _ in range(3):
        theirs.substep()
    for ours in solvers.values():
        ours.advance(3 * ours.substep_limit())
    ti.sync()

    rates = {"theirs": [], "ours": [], "ours_flip": []}
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(substeps):
            theirs.substep()
        ti.sync()
        rates["theirs"].append(theirs.n_particles * substeps / (time.perf_counter() - start))

        for name, ours in solvers.items():
            ours.frame()  # new frame: the substep budget counts per frame
            dt = substeps * ours.substep_limit() * 0.999
            start = time.perf_counter()
            report = ours.advance(dt)
            ti.sync()
            rates[name].append(ours.count * report.substeps / (time.perf_counter() - start))
    for ours in solvers.values():
        ours.close()
    ratios = [o / t for o, t in zip(rates["ours"], rates["theirs"])]
    flip_cost = [f / o for f, o in zip(rates["ours_flip"], rates["ours"])]
    return {
        "threads": threads,
        "particles": int(theirs.n_particles),
        "grid": int(theirs.n_grid),
        "theirs": statistics.median(rates["theirs"]),
        "ours": statistics.median(rates["ours"]),
        "ours_flip": statistics.median(rates["ours_flip"]),
        "ratio": statistics.median(ratios),
        "flip_speed": statistics.median(flip_cost),
        "repeats": repeats,
        "substeps": substeps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (under a minute)")
    parser.add_argument("--threads", type=int, default=None, help="one thread count only")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--substeps", type=int, default=None, help="substeps per timed run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per thread count, in alternating order")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    substeps = args.substeps or (10 if args.quick else 40)

    cores = os.cpu_count() or 1
    counts = [args.threads] if args.threads is not None else sorted({1, cores})
    # Taichi fixes its thread count when it starts; ``backend.ensure`` restarts it with the
    # other count between rounds, in this process. The rounds alternate their order.
    rounds = args.rounds or (1 if args.quick else 6)
    runs = {t: [] for t in counts}
    for r in range(rounds):
        for threads in counts if r % 2 == 0 else counts[::-1]:
            runs[threads].append(worker(threads, repeats, substeps))
    results = []
    for threads in counts:
        merged = dict(runs[threads][0])
        for key in ("theirs", "ours", "ours_flip", "ratio", "flip_speed"):
            merged[key] = statistics.median(run[key] for run in runs[threads])
        results.append(merged)

    r0 = results[0]
    print(
        f"MLS-MPM water, {r0['particles']:,} particles, {r0['grid']}^3 grid: particle-substeps per second "
        f"(median of {repeats} interleaved runs of {substeps} substeps, then of {rounds} rounds; wall clock)\n"
    )
    print("| threads | taichi mpm3d.py | hybrid, APIC | ratio | target | hybrid, FLIP 0.95 (default) | FLIP / APIC |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for r in results:
        ok &= r["ratio"] >= TARGET
        print(
            f"| {r['threads']} | {r['theirs'] / 1e6:.2f} M | {r['ours'] / 1e6:.2f} M | {r['ratio']:.2f} | >= {TARGET} "
            f"| {r['ours_flip'] / 1e6:.2f} M | {r['flip_speed']:.2f} |"
        )
    if len(results) > 1:
        one, many = results[0], results[-1]
        per_round = [m["ours"] / o["ours"] for o, m in zip(runs[counts[0]], runs[counts[-1]])]
        print()
        print(f"{many['threads']} threads / 1 thread: hybrid APIC {many['ours'] / one['ours']:.2f}x, "
              f"hybrid FLIP {many['ours_flip'] / one['ours_flip']:.2f}x, mpm3d.py {many['theirs'] / one['theirs']:.2f}x "
              f"(medians of {rounds} rounds in one process, the thread counts in turns; hybrid APIC per round: "
              + ", ".join(f"{x:.2f}x" for x in per_round) + ")")
    print()
    print("meets target" if ok else "BELOW TARGET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
