"""The liquid's particle-to-grid transfer on the CPU: particles sorted into coloured blocks
and scattered without atomics (``hybrid.fields.mpm``, "coloured blocks").

Checked against the plain atomic scatter (the same sums in another order), against the
totals every P2G must keep (mass, momentum), and for bytes that do not depend on the
thread count (run in subprocesses: Taichi fixes its thread count when it starts).
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hybrid.fields import backend

backend.ensure("cpu", True)

from hybrid.fields import mpm  # noqa: E402
from hybrid.scene.fields_spec import LiquidSpec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _spec(resolution: int, material: str = "water") -> LiquidSpec:
    # A fill that is not aligned with the blocks, thrown sideways so particles cross blocks.
    return LiquidSpec.model_validate(
        dict(
            domain=dict(min=[0, 0, 0], max=[0.6, 0.4, 0.5]),
            resolution=resolution,
            material=material,
            fill=[dict(min=[0.03, 0.05, 0.0], max=[0.37, 0.33, 0.29], velocity=[1.5, -0.5, 0.0])],
        )
    )


def _grids(solver, dt, *, blocks: bool):
    """(mass, momentum) on the grid after one P2G by the coloured blocks or by atomic adds."""
    # P2G only reads the particles (and for the solids writes F from the same inputs), so both
    # run on the same state. The sort moves the particles: run it first, then both scatters.
    solver._blocks, kept = blocks, solver._blocks
    try:
        solver._scatter(dt)
    finally:
        solver._blocks = kept
    return solver.gm.to_numpy().astype(np.float64), solver.gv.to_numpy().astype(np.float64)


@pytest.mark.parametrize("resolution", [16, 24])
@pytest.mark.parametrize("material", ["water", "sand"])
def test_block_scatter_matches_the_atomic_scatter(resolution, material):
    """Every node gets the same terms either way, summed in another order: they agree to
    float32 rounding. The tolerance: each node sums at most 27 x (particles per cell) terms
    of one sign for the mass, so reordering moves it by a few ulps of the node's total
    (float32 ulp 6e-8 relative; 1e-6 leaves room for ~16). Momentum terms carry the stress
    too and cancel, so it is compared against the largest node momentum."""
    solver = mpm.LiquidSolver(_spec(resolution, material), None, seed=3)
    try:
        solver.advance(0.02)  # moving, with stress: C and J (or F) no longer trivial
        dt = solver.substep_limit()
        solver._drift = np.inf
        solver.substep(dt)  # sorts the particles into blocks
        # The solids' P2G also advances F (and the plastic state) from C: put them back
        # between the two scatters so both start from the same state.
        saved = [a.to_numpy() for a in (solver.F, solver.Jp)]
        m_b, p_b = _grids(solver, dt, blocks=True)
        for a, data in zip((solver.F, solver.Jp), saved):
            a.from_numpy(data)
        m_a, p_a = _grids(solver, dt, blocks=False)
        assert m_b.sum() > 0
        np.testing.assert_allclose(m_b, m_a, rtol=1e-6, atol=1e-6 * m_a.max())
        np.testing.assert_allclose(p_b, p_a, rtol=0, atol=1e-5 * np.abs(p_a).max())
        # What the grid must hold whatever the order: every particle's whole mass (the
        # quadratic B-spline weights sum to one) and the particles' total momentum (the
        # weighted offsets of the affine and stress terms sum to zero: the weights reproduce
        # linear functions). Float32 sums of ~1e4 terms: 1e-5 of the scale.
        assert m_b.sum() == pytest.approx(solver.n * solver.p_mass, rel=1e-5)
        v = solver.v.to_numpy()[: solver.n].astype(np.float64)
        scale = solver.p_mass * np.abs(v).sum()
        np.testing.assert_allclose(p_b.sum(axis=0), solver.p_mass * v.sum(axis=0), atol=1e-5 * scale)
    finally:
        solver.close()


def test_blocks_of_one_colour_never_share_a_node():
    """The geometry the race-freedom rests on, for every block size the solver could use:
    a block's particles, after moving up to RESORT_DRIFT cells, write nodes strictly before
    the first node the next block of its colour writes, with its particles moved back as far."""
    b = mpm.SORT_BLOCK
    drift = int(np.ceil(mpm.RESORT_DRIFT))  # base nodes shift by at most this
    last_write = (b - 1) + drift + 2  # the last base of block 0, moved on, and its stencil
    first_write_next = 2 * b - drift  # block 2 (same colour), its first base moved back
    assert last_write < first_write_next


def test_the_sort_keeps_every_particle_once():
    solver = mpm.LiquidSolver(_spec(16), None, seed=1)
    try:
        before = solver.x.to_numpy()[: solver.n].copy()
        solver._drift = np.inf
        solver.substep(1e-6)
        total = solver._total.to_numpy()
        start = solver._start.to_numpy()
        assert total.sum() == solver.n
        assert np.array_equal(start[1:], np.cumsum(total)[:-1])
        # Each sorted slot knows its block: the one whose slots it lies in (the scatter adds a
        # block at its first slot).
        expected = np.repeat(np.arange(len(total)), total)
        assert np.array_equal(solver._sorted_blk.to_numpy()[: solver.n], expected)
        after = solver.x.to_numpy()[: solver.n]
        # Moved by at most 1e-6 s of motion: match each sorted particle to its original.
        key = lambda a: np.lexsort(np.round(a / 1e-4).T)  # noqa: E731
        np.testing.assert_allclose(before[key(before)], after[key(after)], atol=1e-4)
    finally:
        solver.close()


@mpm.ti.kernel
def _count_visits(visits: mpm.IntArr, slabs: mpm.ti.math.ivec3, nodes: mpm.ti.i32):
    # The grid passes' loop (``_grid_update``), counting the nodes it visits.
    for it in range(slabs[0] * slabs[1]):
        first, end = mpm._spread_slab(it, slabs, nodes)
        for node in range(first, end):
            visits[node] += 1


@pytest.mark.parametrize("threads", [0, 1, 2, 3, 8])
@pytest.mark.parametrize("nodes", [1, 63, 64, 65, 1000, 69**3])
def test_grid_passes_visit_every_node_once(nodes, threads):
    """The slabs dealt out to the threads in turn cover the grid exactly once, whatever the node
    count and thread count (0: a GPU's one node per iteration), and each thread's share of
    the loop visits slabs spread over the whole grid."""
    slabs = mpm._slab_order(nodes, threads)
    visits = mpm.ti.ndarray(mpm.ti.i32, nodes)
    visits.fill(0)
    _count_visits(visits, slabs, nodes)
    assert np.all(visits.to_numpy() == 1)
    per, runs, size = slabs
    if threads > 1 and nodes > size * threads:
        # Iterations [t per, (t + 1) per) are thread t's run: slabs t, t + runs, t + 2 runs, ...
        # Thread 0's run starts at the grid's first node and reaches its last `runs` slabs.
        first_run = [(it % per * runs + it // per) * size for it in range(per)]
        assert min(first_run) == 0 and max(first_run) >= nodes - size * runs


RUN = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    from hybrid.fields import backend
    backend.ensure("cpu", True, threads=int(sys.argv[1]))
    from hybrid.fields.mpm import LiquidSolver
    from hybrid.scene.fields_spec import LiquidSpec
    spec = LiquidSpec.model_validate(dict(
        domain=dict(min=[0, 0, 0], max=[0.6, 0.4, 0.5]), resolution=20, material=sys.argv[2],
        fill=[dict(min=[0.03, 0.05, 0.0], max=[0.37, 0.33, 0.29], velocity=[1.5, -0.5, 0.0])]))
    s = LiquidSolver(spec, None, seed=3)
    for i in range(6):
        s.advance(1 / 60, i / 60)
    f = s.frame()
    print(hashlib.sha256(f.position.tobytes() + f.velocity.tobytes()).hexdigest())
    """
)


# Slow: each subprocess compiles the solver's kernels again for its thread count
# (minutes on a cold kernel cache).
@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("material", ["water", "snow"])
def test_same_bytes_on_one_and_two_threads(material):
    """The coloured scatter adds each node's terms in an order that depends only on the
    particles, and the other liquid kernels either write one place each or take a max: a
    tenth of a second of a splashing liquid gives the same bytes on one thread and on two,
    and again on two (no bodies: their impulse sums are still atomic)."""
    digests = []
    for threads in (1, 2, 2):
        r = subprocess.run(
            [sys.executable, "-c", RUN, str(threads), material], cwd=REPO, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, r.stderr[-2000:]
        digests.append(r.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1] == digests[2], digests
