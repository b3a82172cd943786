"""Liquid (and sand, snow, jelly) as particles: 3D MLS-MPM on a background grid.

The method is MLS-MPM (Hu et al. 2018) with quadratic B-spline weights and APIC
affine velocities ``C`` (3x3 per particle, the particle's velocity gradient): every
substep scatters particle mass, momentum and stress to the grid (P2G), updates the
grid velocities (gravity, domain walls, rigid bodies), and gathers the grid back to
the particles (G2P), which then move. Water is weakly compressible (its volume ratio
``J`` carries the pressure); solids carry a deformation gradient ``F``. Constitutive
models: ``hybrid.fields.materials``.

Grid. ``grid_shape(spec.domain, spec.resolution)`` gives the cells (nx, ny, nz) and
the cell size ``dx``; grid nodes sit on cell corners, ``PAD`` extra nodes beyond
every face. The domain faces are walls: nodes on or beyond a face form a band of
``PAD + 1`` nodes (like mpm3d's ``bound``) where ``spec.walls`` applies:
``separate`` removes velocity into the wall (the liquid may leave it), ``slip``
removes the normal velocity both ways (the liquid slides along it and stays on it),
``sticky`` zeroes the velocity. Particles never leave ``domain`` by more than one cell.

Velocity update: APIC (the particle takes the gathered grid velocity and its
gradient ``C``) blended with FLIP (the particle keeps its own velocity plus the
gathered change of the substep) by ``spec.flip``, by default 0.95 for water and 0 for
the solids. APIC alone loses a little of every flow at each transfer, and water takes
hundreds of substeps a second (its sound speed sets them), so alone it behaved like a
liquid with a kinematic viscosity of about 0.005 m^2/s at 2 cm cells: a dense cube
sank at a tenth of its drag-law speed.

Rigid bodies (``Colliders``) are moving solid boundaries: at grid nodes inside a
body or within ``BODY_BAND`` cells of its surface the velocity relative to the body
may not point into it faster than the liquid's own approach (sampled ``BODY_REACH``
cells outside the surface) scaled linearly to zero at the true surface (separating,
frictionless; in still liquid: no inward velocity), and the body receives the opposite
of the momentum that took away (``add_impulse``): with gravity on the liquid this is
the hydrostatic pressure, i.e. buoyancy, plus the dynamic pressure of moving liquid.
The water next to a body rests up to half a cell off its surface, and under the
surface that gap would float the body as if it were larger; so at each ``advance``
the body also carries the weight of the water missing there (``VOID_BAND``): the
water's kernel-smoothed fill on the nodes around it against the fill the water at the
same height farther out would give, less the body's own smoothed share. With it
floating boxes 4 cells across settle within 9 % of Archimedes' volume (they were off
by up to two thirds without). Gravity-free flows are unchanged.
Particles inside a body at the first ``advance`` are removed (the body displaces the
fill); ``count_particles`` is the count before that. After every substep, a particle
that drifted into a body is put back on its surface and loses its inward relative
velocity, the body taking that momentum (``_push_out``): without it a floating crate
slowly fills with liquid and sinks.

Substeps. ``advance(dt, t)`` takes equal CFL-limited substeps, re-planned after each:
``sub_dt <= cfl * dx / (max speed + wave speed)`` with the wave speed the sound speed
for water and ``sqrt(E * h / density)`` for solids (``h`` the largest snow hardening
factor, 1 otherwise), and for viscous water also ``sub_dt <= density dx^2 / (6 mu)``.
The max speed is the largest grid-node speed of the previous substep (particle
velocities are convex combinations of node velocities, so it bounds them). More than
``spec.max_substeps`` substeps since the last ``frame()`` (the owner takes one frame
per video frame) is a ``FieldError``; so are non-finite velocities.

Water starts in hydrostatic equilibrium: each particle's ``J = 1 - |g| depth / c^2``
(depth below the top of its column of filled cells), so a still tank stays still, and
each particle lowered by the compression of the water under it (``hydrostatic_squeeze``),
so the water's volume, its particles and its pressure agree: a filled box's water stands
``|g| H^2 / (2 c^2)`` below the box's top (3.1 mm for 0.5 m at 20 m/s). The
solids standing on the floor start in the same way under their own weight, squeezed along
gravity only (their ``F``: ``materials.geostatic_stretch``), so a block of sand or jelly
in a box stays still and a column released from its container starts from the stress the
container left in it; a solid in the air starts stress-free (it is falling).

Kernels are module-level and work on Taichi ndarrays, so they compile once per
material per process (and are cached on disk), whatever the solver's size; only the
grid update that calls the colliders is specialised to a ``Colliders`` object.

Determinism: on the CPU the P2G pass sorts the particles into coloured blocks and adds
without atomics (see "coloured blocks" below): every node sums its terms in an order
set by the particles alone. The bodies' impulse sums are integer adds (order-free,
``hybrid.fields.colliders``) and the volume is summed in fixed chunks, so a liquid, with
or without bodies, gives the same bytes run to run and for any thread count. On a GPU
the P2G adds are float atomics (fast there) and the last bits vary run to run.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hybrid.fields import backend
from hybrid.fields.colliders import HEIGHTFIELD
from hybrid.fields.errors import FieldError
from hybrid.fields.frames import LiquidFrame
from hybrid.fields.memory import PAD, liquid_bytes as estimate_bytes  # noqa: F401 (re-exported)
from hybrid.fields.seeding import count_particles, fill_cells
from hybrid.fields.materials import (
    DEFAULT_YOUNGS,
    JELLY,
    MATERIAL_IDS,
    SAND,
    SNOW,
    WATER,
    drucker_prager_alpha,
    fixed_corotated_tau,
    geostatic_stretch,
    lame,
    sand_update,
    snow_update,
    water_tau,
)
from hybrid.scene.fields_spec import WATER_FLIP, LiquidSpec, grid_shape  # noqa: F401 (WATER_FLIP re-exported)

ti = backend._import_taichi()

# Cells: nodes closer than this to a body's surface (or inside it) are constrained.
# With 0 only nodes inside count, so the liquid's effective boundary lies up to a
# cell inside a face that falls between nodes, and a 0.2 m cube 0.4 cells off the
# grid felt 0.63-0.73 of Archimedes' force; with one cell it felt 0.88-0.93 wherever
# it sat (and 0.93 on the grid; both before INSIDE_WEIGHT_REMOVED and VOID_BAND).
BODY_BAND = 1.0
# Cells: where a body's band samples the liquid's approach (beyond the band, so the
# sample is the free liquid's). With it a 4-cell sphere pulled through still water felt
# 0.78 of the drag it felt without (FLIP on), and an 8 cm cube of density 2000 at 2 cm
# cells sank at 0.72 m/s and gaining after 0.9 s instead of levelling off at 0.31 m/s
# (both before INSIDE_WEIGHT_REMOVED); a 6-cell cube of density 500 floated 4 % deeper
# with it (the sampled approach is noisy and only its inward part counts), which
# INSIDE_WEIGHT_REMOVED's measurement includes.
BODY_REACH = 2.0
# Share of gravity taken off liquid mass on grid nodes inside a body. That mass is the
# kernels' reach of liquid particles outside (a particle on the surface puts about half
# its mass inside), not liquid there; if it kept its weight the body would carry it on a
# wetted underside, and without any weight bodies float too high. Measured before the
# missing-liquid weight on floating boxes and spheres of 4-12 cells and densities 250-800
# (1 DOF, sound speed 10 m/s): keeping the whole weight sank them 0.3-0.45 cells too deep,
# removing all of it left them 0.2-0.4 cells too high. With that weight, at 8 cells
# (where the gap is small), keeping it all sank boxes 0.16 cells too deep (densities 250
# and 500), removing half left them 0.13-0.14 cells too high.
INSIDE_WEIGHT_REMOVED = 0.5
# The liquid missing next to a body (water only; see ``_missing_liquid_weight``). A body is a
# band of grid nodes, and the particle layer next to it comes to rest up to half a cell off
# its surface, where packed particles would sit a quarter cell off; nothing pulls the layer
# closer (water's pressure comes from each particle's J, not from how closely particles lie),
# and the quadratic kernel carries the layer's pressure across the gap. So below the surface a
# body with its gap displaces more than itself: a floating box 4 cells across, density 250,
# floated with half of Archimedes' volume submerged, its gap (measured by counting particles)
# making up the rest to within 2 %. Each coupling step the liquid's fill (particle volume x J,
# spread with the P2G weights) is compared on the nodes within VOID_BAND cells of a body with
# the fill the surrounding liquid would put there (the fill at the node's height VOID_REACH
# cells from the body, times the share of the node's kernel outside the body, by quadrature
# of its SDF at VOID_SAMPLES points a kernel axis), and the body carries the weight of what
# is missing, as if that liquid were there. Both fills are smoothed by the same kernel, so
# liquid that meets the body leaves no shortfall node by node, and the sum is the gap's
# volume by the kernel's partition of unity. Gravity acts on that volume only, so with gravity off it is nothing
# and momentum is exchanged as before.
VOID_BAND = 2.5  # cells either side of the surface: the kernel's reach (1.5) past a half-cell gap
VOID_REACH = 3.0  # cells from the body where the level reading is taken: beyond the gap's reach
VOID_SAMPLES = 9  # quadrature points per kernel axis (3 cells): the B-spline's pieces end on them
VOID_SPLIT = VOID_SAMPLES // 3  # points per axis in each cell-sized block of the quadrature
# Cells from a block's centre to the surface beyond which all its points are wholly on one side:
# the farthest point (sqrt(3) / 3 cells off the centre) plus half a point spacing (1/6).
VOID_CLEAR = math.sqrt(3.0) / 3.0 + 0.5 / VOID_SPLIT
VOID_QUANTUM = 2.0**-32  # cell volumes: one unit of the integer (order-free) fill sums
BLOCK_DIM = 64  # particle-loop block size, as mpm3d's 64^3 setting


@dataclass(frozen=True)
class LiquidReport:
    """What one ``advance`` did: substeps taken, their shortest and longest length (s),
    and the largest grid speed seen (m/s)."""

    substeps: int
    min_substep: float
    max_substep: float
    max_speed: float


# ---------------------------------------------------------------- seeding (NumPy only)


def _material_id(spec: LiquidSpec) -> int:
    return MATERIAL_IDS[spec.material]


def seed_particles(
    spec: LiquidSpec, seed: int = 0, gravity=(0.0, 0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World positions (N, 3), velocities (N, 3) (float64), hydrostatic depths (N,), whether each
    particle's column stands on the domain's floor (N,) bool, and the depth of its column's
    bottom (N,), of the initial particles.

    ``particles_per_cell`` particles in every fill cell (see ``count_particles``): when
    that is a cube k^3 one per sub-cell of a k x k x k split, jittered within it;
    otherwise uniformly within the cell. Deterministic in `seed` (NumPy RandomState).
    The depth (m) is how far below the top of its column of filled cells a particle
    lies, along the grid axis closest to minus `gravity` (0 without gravity); its column
    stands on the floor when filled cells run from it down to the domain's lower face
    (upper face when gravity points up; none without gravity). The column's bottom is the
    lower face of the lowest filled cell of the run the particle is in, its depth measured
    from the same top (0 without gravity).
    """
    cells, vel, filled = fill_cells(spec)
    _, dx = grid_shape(spec.domain, spec.resolution)
    ppc = spec.particles_per_cell
    rng = np.random.RandomState(seed)
    k = round(ppc ** (1.0 / 3.0))
    if k**3 == ppc:
        sub = np.stack(np.meshgrid(*([np.arange(k)] * 3), indexing="ij"), axis=-1).reshape(-1, 3)
        local = (sub[None, :, :] + rng.uniform(0.0, 1.0, size=(len(cells), ppc, 3))) / k
    else:
        local = rng.uniform(0.0, 1.0, size=(len(cells), ppc, 3))
    pos = np.asarray(spec.domain.min, np.float64) + (cells[:, None, :] + local) * dx
    pos = pos.reshape(-1, 3)
    depth = np.zeros(len(pos))
    bottom = np.zeros(len(pos))
    grounded = np.zeros(len(pos), bool)
    g = np.asarray(gravity, np.float64)
    if np.any(g != 0):
        axis = int(np.argmax(np.abs(g)))
        up = g[axis] < 0  # "up" is +axis
        # run[c]: filled cells from c to the top of its contiguous column, c included.
        mask = np.moveaxis(filled, axis, 0)
        if not up:
            mask = mask[::-1]
        run = np.zeros(mask.shape, np.int64)
        for i in range(mask.shape[0] - 1, -1, -1):
            above = run[i + 1] if i + 1 < mask.shape[0] else 0
            run[i] = (above + 1) * mask[i]
        # under[c]: filled cells from c down to the bottom of its contiguous column, c included.
        under = np.zeros(mask.shape, np.int64)
        for i in range(mask.shape[0]):
            below = under[i - 1] if i > 0 else 0
            under[i] = (below + 1) * mask[i]
        # floor[c]: filled cells run from c down to the floor.
        floor = np.logical_and.accumulate(mask, axis=0)
        if not up:
            run, under, floor = run[::-1], under[::-1], floor[::-1]
        run = np.moveaxis(run, 0, axis)
        under = np.moveaxis(under, 0, axis)
        floor = np.moveaxis(floor, 0, axis)
        cell_of = np.repeat(cells, ppc, axis=0)
        grounded = floor[tuple(cell_of.T)]
        lo = spec.domain.min[axis]
        at = tuple(cell_of.T)
        bottom = (run[at] + under[at] - 1) * dx  # the run's height
        if up:
            top = lo + (cell_of[:, axis] + run[at]) * dx
            depth = top - pos[:, axis]
        else:
            top = lo + (cell_of[:, axis] + 1 - run[at]) * dx
            depth = pos[:, axis] - top
    return pos, np.repeat(vel, ppc, axis=0), np.maximum(depth, 0.0), grounded, bottom


def hydrostatic_squeeze(
    pos: np.ndarray, depth: np.ndarray, bottom: np.ndarray, gravity, sound_speed: float
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, J) of water seeded at rest in hydrostatic equilibrium: p = rho |g| depth = K (1 - J),
    J = 1 - |g| depth / c^2 (at least 1/2), and each particle moved down its column by how much
    the water below it is compressed, the integral of 1 - J from its depth to the column's
    `bottom` (``seed_particles``). Moved so, the particles' spacing is their volume: the
    liquid fills as much height as its volume says, its pressure vanishes at its top, and the
    free surface ``LiquidSolver.volume`` gives is where the particles end. Left at their
    uncompressed places (J < 1 in the rest spacing) the column would stand taller than its
    volume by about rho |g| H^2 / (2 K) for the same pressure, a tenth of a cell in a tank
    13 cells deep at sound speed 10 m/s, and a floating body would ride that much high."""
    g = np.asarray(gravity, np.float64)
    depth = np.asarray(depth, np.float64)
    if not np.any(g != 0):
        return pos, np.ones(len(depth))
    a = float(np.linalg.norm(g)) / float(sound_speed) ** 2
    cap = 0.5 / a  # depth below which J stays at 1/2

    def squeezed(d):  # integral of 1 - J over depths 0 to d
        d = np.asarray(d, np.float64)
        return np.where(d <= cap, 0.5 * a * d * d, 0.5 * a * cap * cap + 0.5 * (d - cap))

    axis = int(np.argmax(np.abs(g)))
    out = np.array(pos, np.float64, copy=True)
    out[:, axis] += np.sign(g[axis]) * (squeezed(np.maximum(bottom, depth)) - squeezed(depth))
    return out, np.maximum(1.0 - a * depth, 0.5)


# ---------------------------------------------------------------- kernels
#
# Module-level kernels on ndarrays: compiled once per material (and cached on disk),
# shared by every solver in the process whatever its size. Particle arrays: x (N,)
# vec3 position relative to grid node (0, 0, 0) (m), v (N,) vec3 (m/s), C (N,) mat3
# affine velocity (1/s), J (N,) volume ratio (water; a dummy (1,) otherwise), F (N,)
# mat3 deformation gradient (solids; dummy for water), Jp (N,) snow plastic volume
# ratio / sand log volume correction (dummy otherwise). Grid, flattened C-order
# (node (i, j, k) at (i * Y + j) * Z + k; ``strides`` = (Y * Z, Z)): gv (X * Y * Z,)
# vec3 momentum then velocity, gm (X * Y * Z,) mass (kg). stats (4,): [0] largest grid
# speed^2 of the substep, [1] largest snow hardening factor.

Vec3Arr = ti.types.ndarray(dtype=ti.math.vec3, ndim=1)
Mat3Arr = ti.types.ndarray(dtype=ti.math.mat3, ndim=1)
ScalarArr = ti.types.ndarray(dtype=ti.f32, ndim=1)
GridVec = ti.types.ndarray(dtype=ti.math.vec3, ndim=1)
GridScalar = ti.types.ndarray(dtype=ti.f32, ndim=1)


@ti.func
def _base_node(xp, inv_dx):
    """The first node of the 3 x 3 x 3 stencil of the particle at grid-frame position xp (the
    scatter and the block sort use this one expression, so they agree to the bit)."""
    return int(xp * inv_dx - 0.5)


@ti.func
def _particle_affine(
    p, C: ti.template(), J: ti.template(), F: ti.template(), Jp: ti.template(), stats: ti.template(), dt,
    stress_coef, p_mass, bulk, visc, mu, lam, alpha, mat: ti.template(),
):
    """Particle p's affine momentum matrix for the scatter, stress included (MLS-MPM); for the
    solids it also advances F (and the plastic state) by this substep's C."""
    Cp = C[p]
    tau = ti.Matrix.zero(ti.f32, 3, 3)
    if ti.static(mat == WATER):
        tau = water_tau(J[p], Cp, bulk, visc)
    else:
        Fp = (ti.Matrix.identity(ti.f32, 3) + dt * Cp) @ F[p]
        if ti.static(mat == JELLY):
            tau_e, _ = fixed_corotated_tau(Fp, mu, lam)
            tau = tau_e
        elif ti.static(mat == SNOW):
            Fs, jp, tau_s, h = snow_update(Fp, Jp[p], mu, lam)
            Fp, tau = Fs, tau_s
            Jp[p] = jp
            ti.atomic_max(stats[1], h)  # a max: the same whatever the order
        else:
            Fs, jp, tau_s = sand_update(Fp, Jp[p], mu, lam, alpha)
            Fp, tau = Fs, tau_s
            Jp[p] = jp
        F[p] = Fp
    return stress_coef * tau + p_mass * Cp


@ti.func
def _scatter_stencil(
    xp, vp, Cp, affine, gv: ti.template(), gm: ti.template(), gp: ti.template(), sx, sy, inv_dx, p_mass,
    flip: ti.template(), atomic: ti.template(),
):
    """Mass and momentum (affine: ``_particle_affine``) of the particle at grid-frame position
    xp onto its 3 x 3 x 3 grid nodes (MLS-MPM P2G).

    `atomic`: the adds are atomic (threads may share nodes); otherwise plain
    read-add-write, for loops in which no other thread writes these nodes (the
    coloured blocks of ``_p2g_blocks``).
    """
    dx = 1.0 / inv_dx
    Xp = xp * inv_dx
    base = _base_node(xp, inv_dx)
    fx = Xp - base
    w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2]
    mv = p_mass * vp
    b = base[0] * sx + base[1] * sy + base[2]
    wx = ti.Vector([w[0][0], w[1][0], w[2][0]])
    wy = ti.Vector([w[0][1], w[1][1], w[2][1]])
    # x and y run as a loop, z unrolled: with the whole 27-node stencil unrolled, and the
    # stencil copied once per colour in `_p2g_blocks`, Taichi's whole-kernel CSE pass
    # (quadratic in the kernel's size) took 400 s to compile that kernel. This form
    # compiles in seconds and runs within a few per cent of the unrolled one.
    for i, j in ti.ndrange(3, 3):
        for k in ti.static(range(3)):
            offset = ti.Vector([i, j, k])
            dpos = (offset - fx) * dx
            weight = wx[i] * wy[j] * w[k][2]
            node = b + i * sx + j * sy + k
            if ti.static(atomic):
                gv[node] += weight * (mv + affine @ dpos)
                gm[node] += weight * p_mass
                if ti.static(flip):
                    gp[node] += weight * (mv + p_mass * (Cp @ dpos))
            else:
                # Plain assignment: Taichi makes only augmented assignments (+=) atomic.
                gv[node] = gv[node] + weight * (mv + affine @ dpos)
                gm[node] = gm[node] + weight * p_mass
                if ti.static(flip):
                    gp[node] = gp[node] + weight * (mv + p_mass * (Cp @ dpos))

@ti.func
def _clear_grid(gv: ti.template(), gm: ti.template(), gp: ti.template(), stats: ti.template(), flip: ti.template()):
    # A range over the nodes, not a struct-for over the ndarray (`for i in gm`): the
    # struct-for took 5.6 times as long to clear the 64^3 grid. Every node costs the same,
    # so the plain order splits evenly among threads.
    for i in range(gm.shape[0]):
        gv[i] = ti.Vector([0.0, 0.0, 0.0])
        gm[i] = 0.0
        if ti.static(flip):
            gp[i] = ti.Vector([0.0, 0.0, 0.0])
    stats[0] = 0.0
    stats[2] = 0.0


@ti.kernel
def _p2g(
    x: Vec3Arr, v: Vec3Arr, C: Mat3Arr, J: ScalarArr, F: Mat3Arr, Jp: ScalarArr,
    gv: GridVec, gm: GridScalar, gp: GridVec, stats: ScalarArr,
    n: ti.i32, sx: ti.i32, sy: ti.i32, dt: ti.f32, inv_dx: ti.f32, p_vol: ti.f32, p_mass: ti.f32,
    bulk: ti.f32, visc: ti.f32, mu: ti.f32, lam: ti.f32, alpha: ti.f32, mat: ti.template(), flip: ti.template(),
):
    """Clear the grid, then scatter every particle with atomic adds (the GPU path: its
    atomics are fast, and their order, hence the last bits, varies run to run).

    With `flip`, `gp` also receives the momentum without the stress (the grid velocity
    before this substep's forces, which FLIP's velocity change is measured from).
    """
    _clear_grid(gv, gm, gp, stats, flip)
    stress_coef = -dt * p_vol * 4.0 * inv_dx * inv_dx
    ti.loop_config(block_dim=BLOCK_DIM)
    for p in range(n):
        affine = _particle_affine(p, C, J, F, Jp, stats, dt, stress_coef, p_mass, bulk, visc, mu, lam, alpha, mat)
        _scatter_stencil(x[p], v[p], C[p], affine, gv, gm, gp, sx, sy, inv_dx, p_mass, flip, True)


# ---------------------------------------------------------------- coloured blocks (CPU P2G)
#
# On the CPU, atomic float adds are compare-and-swap loops, and two threads adding to
# the same grid nodes fight over their cache lines: with atomics, two threads ran the
# particle-to-grid pass no faster than one running in order without them. Instead,
# every substep the particles are sorted into blocks of SORT_BLOCK^3 grid nodes (by the
# node their stencil starts at) and the blocks coloured by the parity of their block
# coordinates (8 colours). A particle's stencil spans 3 nodes from its base, so a
# block's particles write nodes at most SORT_BLOCK + 2 apart along an axis, and blocks
# of one colour start 2 SORT_BLOCK apart: blocks of one colour never share a node, even
# after their particles have moved up to a cell (RESORT_DRIFT). Each colour is one parallel loop over its blocks,
# each block's particles added in order with plain (non-atomic) adds.
#
# The sort is a stable counting sort over fixed chunks of particles, and it moves the
# particles themselves (into a second set of arrays), so a block's particles lie
# together in memory for the scatter and the gather that follows. Particles move less
# than a cell a substep, so after the first sort each one is nearly in place already.
#
# Every node receives its terms in a fixed order (colour by colour, within a block in
# sorted order, which depends only on the particles): the grid, and so the whole
# simulation, is bit-identical run to run and for every thread count.
SORT_BLOCK = 4
SORT_CHUNKS = 32  # particle chunks of the counting sort: its parallelism
VOLUME_CHUNKS = 256  # particle chunks of volume()'s sum, added in order
# The sort is redone only when a particle may have moved a cell since the last one.
# A move of less than a cell shifts a particle's base node by at most one, so its
# writes stay within SORT_BLOCK + 3 nodes of its block's start, and a block's nearest
# neighbour of the same colour (2 SORT_BLOCK on, its own particles as far back) is
# still not reached: 2 SORT_BLOCK - 1 > SORT_BLOCK + 2 + 1 needs SORT_BLOCK >= 4. Water
# moves a few hundredths of a cell a substep (its sound speed sets the substep), so it
# sorts every few dozen substeps.
RESORT_DRIFT = 0.9  # below a cell, with a margin for rounding in the bound
# How Taichi 1.7's CPU runtime shares a range-for (measured with ti.global_thread_idx(),
# benchmarks/bench_cpu_scaling.py --part split): n iterations on T threads are cut into
# contiguous tasks of max(512, ceil(n / T)) iterations, whatever `block_dim` asks (1,500
# heavy iterations on two threads: 0-749 and 750-1499; 512 or fewer: one task).
# Nothing smaller is handed out, so a loop whose work sits in one part of its range keeps
# one thread busy while the other waits.
# Every parallel loop here therefore spreads its work evenly over its iterations:
# - the sort's loops run over at least MIN_PARALLEL iterations, one chunk of particles in
#   every MIN_PARALLEL / SORT_CHUNKS;
# - the scatter runs one iteration per particle of a colour and the block's work at the
#   iteration of its first particle, so each thread's run holds about as many particles;
# - the grid passes deal 64-node slabs out to the T runs in turn (`_spread_slab`), so each
#   thread's run holds slabs from all over the grid, not one end where the liquid is.
MIN_PARALLEL = 1024
# Nodes per slab of the grid passes' scattered order, one loop iteration each: a few whole
# cache lines, and slabs enough (5,133 at 69^3) for Taichi to give up to ten threads their
# 512 iterations.
GRID_SLAB = 64
IntArr = ti.types.ndarray(dtype=ti.i32, ndim=1)


@ti.func
def _block_of(xp, inv_dx, half: ti.math.ivec3, per_colour):
    """The coloured block of the particle at grid-frame position xp, colour-major; within a
    colour x fastest, so blocks that threads take one after another lie a whole y-z slab of
    the grid apart (grid nodes are z-fastest), never on one cache line."""
    bb = _base_node(xp, inv_dx) // SORT_BLOCK
    colour = (bb[0] & 1) * 4 + (bb[1] & 1) * 2 + (bb[2] & 1)
    h = bb >> 1
    return colour * per_colour + (h[2] * half[1] + h[1]) * half[0] + h[0]


@ti.kernel
def _bin_count(
    x: Vec3Arr, blk: IntArr, counts: IntArr, n: ti.i32, chunk: ti.i32, inv_dx: ti.f32,
    half: ti.math.ivec3, per_colour: ti.i32, n_blocks: ti.i32,
):
    """Each particle's block, and per chunk of particles how many fall in each block."""
    for i in range(MIN_PARALLEL):
        if i % (MIN_PARALLEL // SORT_CHUNKS) == 0:
            c = i // (MIN_PARALLEL // SORT_CHUNKS)
            row = c * n_blocks
            for q in range(n_blocks):
                counts[row + q] = 0
            for p in range(c * chunk, ti.min(n, (c + 1) * chunk)):
                q = _block_of(x[p], inv_dx, half, per_colour)
                blk[p] = q
                counts[row + q] = counts[row + q] + 1  # this chunk's row: no other thread writes it


@ti.kernel
def _bin_offsets(counts: IntArr, start: IntArr, total: IntArr, n_blocks: ti.i32):
    """Each chunk's first slot within each block, each block's count and each block's first slot."""
    for q in range(n_blocks):
        s = 0
        for c in range(SORT_CHUNKS):
            k = counts[c * n_blocks + q]
            counts[c * n_blocks + q] = s
            s += k
        total[q] = s
    ti.loop_config(serialize=True)
    for q in range(n_blocks):
        if q == 0:
            start[q] = 0
        else:
            start[q] = start[q - 1] + total[q - 1]


@ti.kernel
def _bin_move(
    blk: IntArr, counts: IntArr, start: IntArr, sorted_blk: IntArr, n: ti.i32, chunk: ti.i32, n_blocks: ti.i32,
    x: Vec3Arr, v: Vec3Arr, C: Mat3Arr, J: ScalarArr, F: Mat3Arr, Jp: ScalarArr,
    x2: Vec3Arr, v2: Vec3Arr, C2: Mat3Arr, J2: ScalarArr, F2: Mat3Arr, Jp2: ScalarArr, mat: ti.template(),
):
    """Every particle to its sorted slot in the second arrays (stable: particle order within a block);
    `sorted_blk` the block of each slot."""
    for i in range(MIN_PARALLEL):
        if i % (MIN_PARALLEL // SORT_CHUNKS) == 0:
            c = i // (MIN_PARALLEL // SORT_CHUNKS)
            row = c * n_blocks
            for p in range(c * chunk, ti.min(n, (c + 1) * chunk)):
                q = blk[p]
                k = counts[row + q]
                counts[row + q] = k + 1
                s = start[q] + k
                sorted_blk[s] = q
                x2[s] = x[p]
                v2[s] = v[p]
                C2[s] = C[p]
                if ti.static(mat == WATER):
                    J2[s] = J[p]
                else:
                    F2[s] = F[p]
                    if ti.static(mat == SAND or mat == SNOW):
                        Jp2[s] = Jp[p]


@ti.kernel
def _p2g_blocks(
    x: Vec3Arr, v: Vec3Arr, C: Mat3Arr, J: ScalarArr, F: Mat3Arr, Jp: ScalarArr,
    gv: GridVec, gm: GridScalar, gp: GridVec, stats: ScalarArr, start: IntArr, total: IntArr, sorted_blk: IntArr,
    A: Mat3Arr, n: ti.i32, per_colour: ti.i32, sx: ti.i32, sy: ti.i32, dt: ti.f32, inv_dx: ti.f32,
    p_vol: ti.f32,
    p_mass: ti.f32, bulk: ti.f32, visc: ti.f32, mu: ti.f32, lam: ti.f32, alpha: ti.f32, mat: ti.template(),
    flip: ti.template(),
):
    """Clear the grid, then scatter the sorted particles colour by colour, without atomics.

    A colour's particles lie together in the sorted arrays; its loop runs one iteration per
    particle, and the iteration of a block's first particle adds the whole block in order.
    Only one iteration touches a block, so this holds however the iterations are shared
    among threads; cut into contiguous runs (Taichi's CPU runtime), each thread gets about
    as many particles.

    A solid's stress update (an SVD and its plasticity) runs first, once per particle, into
    `A` (n matrices; a dummy for water, whose stress is a few flops and is made in the
    scatter): inside the scatter it would be copied into each of the eight colour loops, a
    kernel Taichi takes minutes to compile."""
    _clear_grid(gv, gm, gp, stats, flip)
    stress_coef = -dt * p_vol * 4.0 * inv_dx * inv_dx
    if ti.static(mat != WATER):
        ti.loop_config(block_dim=BLOCK_DIM)
        for p in range(n):
            A[p] = _particle_affine(p, C, J, F, Jp, stats, dt, stress_coef, p_mass, bulk, visc, mu, lam, alpha, mat)
    for colour in ti.static(range(8)):
        first = start[colour * per_colour]
        last = (colour + 1) * per_colour - 1
        for i in range(start[last] + total[last] - first):
            q = sorted_blk[first + i]
            if first + i == start[q]:
                for p in range(start[q], start[q] + total[q]):
                    affine = ti.Matrix.zero(ti.f32, 3, 3)
                    if ti.static(mat == WATER):
                        affine = _particle_affine(
                            p, C, J, F, Jp, stats, dt, stress_coef, p_mass, bulk, visc, mu, lam, alpha, mat
                        )
                    else:
                        affine = A[p]
                    _scatter_stencil(x[p], v[p], C[p], affine, gv, gm, gp, sx, sy, inv_dx, p_mass, flip, False)


@ti.func
def _walls(I, v, hi, walls):
    """Domain walls at grid node I: nodes I <= PAD or I >= hi form the boundary band."""
    lo_band = I <= PAD
    hi_band = I >= hi
    out = v
    if walls == 0:  # separate: no velocity into the wall
        out = ti.select(lo_band & (v < 0) | hi_band & (v > 0), 0.0, v)
    elif walls == 1:  # slip: no normal velocity
        out = ti.select(lo_band | hi_band, 0.0, v)
    elif (lo_band | hi_band).any():  # sticky
        out = ti.Vector([0.0, 0.0, 0.0])
    return out


@ti.func
def _node_coords(node, nodes):
    """Grid coordinates (i, j, k) of flat node index `node` (C order, z fastest)."""
    k = node % nodes[2]
    row = node // nodes[2]
    return ti.Vector([row // nodes[1], row % nodes[1], k])


@ti.func
def _spread_slab(it, slabs: ti.math.ivec3, nodes):
    """The nodes [first, end) that iteration `it` of a grid pass visits, of a grid of `nodes`
    (empty past its end). `slabs` = (per thread, threads, nodes per slab): the slabs dealt
    out in turn, so the run of iterations [t * per, (t + 1) * per) that Taichi gives thread t
    visits slabs t, t + threads, t + 2 threads, ..., a share of every part of the grid. One
    thread visits them in memory order."""
    first = (it % slabs[0] * slabs[1] + it // slabs[0]) * slabs[2]
    return first, ti.min(first + slabs[2], nodes)


def _slab_order(nodes: int, threads: int) -> tuple[int, int, int]:
    """``_spread_slab``'s `slabs` for a grid of `nodes` nodes on `threads` CPU threads (0: a GPU,
    one node per iteration, so neighbouring GPU threads read neighbouring nodes); the loop runs
    per x threads iterations, those past the last slab empty."""
    size = GRID_SLAB if threads > 0 else 1
    threads = max(1, threads)
    return -(-nodes // (size * threads)), threads, size


# The grid passes loop over flat node indices (slab by slab, in ``_spread_slab``'s order)
# and work out (i, j, k) only at nodes with mass: a 3-D ndrange over the 69^3 nodes
# divides every index back into i, j, k, and took 3.3-3.7 times as long as a flat loop
# for the same update (BENCHMARKS.md).
@ti.kernel
def _grid_update(
    gv: GridVec, gm: GridScalar, gp: GridVec, stats: ScalarArr, nodes: ti.math.ivec3, slabs: ti.math.ivec3,
    dt: ti.f32, gravity: ti.math.vec3, hi: ti.math.ivec3, walls: ti.i32, flip: ti.template(),
):
    """Momentum to velocity, gravity, domain walls (no bodies); with `flip`, `gp` to the velocity before forces."""
    for it in range(slabs[0] * slabs[1]):
        first, end = _spread_slab(it, slabs, gm.shape[0])
        for node in range(first, end):
            m = gm[node]
            if m > 0:
                if ti.static(flip):
                    gp[node] /= m
                v = gv[node] / m + dt * gravity
                v = _walls(_node_coords(node, nodes), v, hi, walls)
                gv[node] = v
                ti.atomic_max(stats[0], v.norm_sqr())


@ti.kernel
def _grid_velocity(
    gv: GridVec, gm: GridScalar, gp: GridVec, slabs: ti.math.ivec3, dt: ti.f32, gravity: ti.math.vec3,
    flip: ti.template(),
):
    """Momentum to velocity and gravity at every node with mass (the first half of the update with bodies);
    with `flip`, `gp` to the velocity before forces."""
    for it in range(slabs[0] * slabs[1]):
        first, end = _spread_slab(it, slabs, gm.shape[0])
        for node in range(first, end):
            m = gm[node]
            if m > 0:
                gv[node] = gv[node] / m + dt * gravity
                if ti.static(flip):
                    gp[node] /= m


@ti.func
def _trilinear_cell(nodes, q):
    """(lowest corner node, fraction within the cell) of node coordinates q, clamped to the grid."""
    i0 = ti.min(ti.max(ti.cast(ti.floor(q), ti.i32), 0), nodes - 2)
    return i0, ti.min(ti.max(q - i0, 0.0), 1.0)


@ti.func
def _trilinear_weight(f, o: ti.template()):
    """Trilinear weight of corner offset `o` (0 or 1 per axis) at fraction `f`."""
    w = 1.0
    for a in ti.static(range(3)):
        w *= f[a] if o[a] == 1 else 1.0 - f[a]
    return w


@ti.func
def _sample_velocity(gv: ti.template(), gm: ti.template(), nodes, q):
    """Mass-weighted trilinear velocity of the grid at node coordinates q (nodes without mass do not count);
    (velocity, weight), the weight 0 where no node around q has mass."""
    i0, f = _trilinear_cell(nodes, q)
    acc = ti.Vector([0.0, 0.0, 0.0])
    wsum = 0.0
    for o in ti.static(ti.grouped(ti.ndrange(2, 2, 2))):
        w = _trilinear_weight(f, o)
        I = i0 + o
        node = (I[0] * nodes[1] + I[1]) * nodes[2] + I[2]
        wm = w * gm[node]
        acc += wm * gv[node]
        wsum += wm
    out = ti.Vector([0.0, 0.0, 0.0])
    if wsum > 0:
        out = acc / wsum
    return out, wsum


@ti.kernel
def _grid_update_bodies(
    gv: GridVec, gm: GridScalar, out: GridVec, stats: ScalarArr, nodes: ti.math.ivec3, slabs: ti.math.ivec3,
    hi: ti.math.ivec3, walls: ti.i32, colliders: ti.template(), grid_lo: ti.math.vec3, dx: ti.f32, band: ti.f32,
    reach: ti.f32, dt: ti.f32, gravity: ti.math.vec3,
):
    """Rigid bodies as separating boundaries that take the opposite impulse, then the domain walls;
    reads the velocities ``_grid_velocity`` left in `gv` and writes the result to `out`.

    At a node within `band` of a body (or inside it) the liquid may approach the body no
    faster than a normal velocity growing linearly from zero at the true surface: the
    liquid's own approach velocity `reach` outside the surface (sampled from `gv` along
    the normal, relative to the body) times signed distance / reach. Liquid at rest gives
    the plain condition (no inward velocity in the band); liquid flowing towards and
    around a moving body keeps its approach profile instead of losing it in the band at
    every substep, a drag that grew with the substep count.
    """
    for it in range(slabs[0] * slabs[1]):
        first, end = _spread_slab(it, slabs, gm.shape[0])
        for node in range(first, end):
            m = gm[node]
            v = gv[node]
            if m > 0:
                I = _node_coords(node, nodes)
                xw = grid_lo + I * dx
                b, d = colliders.nearest(xw, band)
                if b >= 0:
                    if d < 0.0:
                        # Liquid mass inside the body is the kernels' reach of particles outside
                        # (INSIDE_WEIGHT_REMOVED).
                        v -= INSIDE_WEIGHT_REMOVED * dt * gravity
                    nrm = colliders.normal(b, xw)
                    y = xw + (reach - d) * nrm  # `reach` outside the surface point nearest xw
                    vy, wy = _sample_velocity(gv, gm, nodes, (y - grid_lo) / dx)
                    allowed = 0.0
                    if wy > 0:
                        allowed = ti.min((vy - colliders.velocity(b, y)).dot(nrm), 0.0) * d / reach
                    vn = (v - colliders.velocity(b, xw)).dot(nrm) - allowed
                    if vn < 0:
                        colliders.add_impulse(b, xw, (m * vn) * nrm)  # minus the fluid's momentum change m (-vn n)
                        v -= vn * nrm
                v = _walls(I, v, hi, walls)
                ti.atomic_max(stats[0], v.norm_sqr())
            out[node] = v


FillArr = ti.types.ndarray(dtype=ti.i64, ndim=1)


@ti.kernel
def _scatter_fill(
    x: Vec3Arr, J: ScalarArr, n: ti.i32, fill: FillArr, sx: ti.i32, sy: ti.i32, inv_dx: ti.f32, share: ti.f32,
):
    """Add each water particle's volume (rest volume x J) to the nodes with the P2G weights, in cell
    volumes (1 in packed bulk liquid) and integer VOID_QUANTUM units, so the sums are order-free."""
    for p in range(n):
        Xp = x[p] * inv_dx
        base = int(Xp - 0.5)
        fx = Xp - base
        w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2]
        r = ti.cast(share * J[p], ti.f64) / VOID_QUANTUM
        b = base[0] * sx + base[1] * sy + base[2]
        for offset in ti.static(ti.grouped(ti.ndrange(3, 3, 3))):
            weight = w[offset[0]][0] * w[offset[1]][1] * w[offset[2]][2]
            node = b + offset[0] * sx + offset[1] * sy + offset[2]
            ti.atomic_add(fill[node], ti.cast(ti.round(r * weight), ti.i64))


@ti.func
def _bspline(t):
    """The quadratic B-spline of the P2G weights at `t` cells from its node."""
    a = ti.abs(t)
    r = 0.0
    if a < 0.5:
        r = 0.75 - a * a
    elif a < 1.5:
        r = 0.5 * (1.5 - a) ** 2
    return r


@ti.func
def _fill_at(fill: ti.template(), nodes, q):
    """Trilinear liquid fill (cell volumes) at node coordinates q, clamped to the grid."""
    i0, f = _trilinear_cell(nodes, q)
    acc = 0.0
    for o in ti.static(ti.grouped(ti.ndrange(2, 2, 2))):
        I = i0 + o
        acc += _trilinear_weight(f, o) * ti.cast(ti.cast(fill[(I[0] * nodes[1] + I[1]) * nodes[2] + I[2]], ti.f64) * VOID_QUANTUM, ti.f32)
    return acc


@ti.kernel
def _missing_liquid_weight(
    fill: FillArr, nodes: ti.math.ivec3, colliders: ti.template(), grid_lo: ti.math.vec3, dx: ti.f32,
    down: ti.math.vec3, short_of: GridScalar, body_of: ti.types.ndarray(dtype=ti.i32, ndim=1), total: FillArr,
):
    """The liquid missing next to each body (VOID_BAND): per node into `short_of` (cell volumes) with
    its body in `body_of` (-1: none), and per body summed into `total` (VOID_QUANTUM units).

    At every node within VOID_BAND cells of a body's surface: the fill the liquid at the
    node's own height would put there (read where the body is VOID_REACH cells away
    along a level line out of it, times the share of the node's kernel outside the body)
    less the fill there. Read at the same height, the free surface, the floor and the
    liquid's compression with depth affect both fills alike. Where the liquid around is
    air (a body's dry top, a puddle on it) nothing counts: the factor goes from 1 at a
    half-filled reading (the free surface) to 0 at a quarter. `down`: unit gravity.
    """
    h = 3.0 / VOID_SAMPLES  # quadrature spacing, cells
    for node in range(nodes[0] * nodes[1] * nodes[2]):
        I = _node_coords(node, nodes)
        xw = grid_lo + I * dx
        b, d = colliders.nearest(xw, VOID_BAND * dx)
        short_of[node] = 0.0
        body_of[node] = -1
        if b >= 0 and d > -VOID_BAND * dx:
            # The body's share of the node's kernel: midpoint quadrature, each point weighted by the
            # share of its little cube inside (exact for a face parallel to the cube's), by blocks of a
            # cell (VOID_SPLIT^3 points each). A block whose centre lies farther from the surface than
            # VOID_CLEAR cells has every point wholly inside or outside (the SDF is 1-Lipschitz; a
            # heightfield's is not, so it always takes the points): it counts its points' weight
            # without evaluating the SDF at them, a third of the evaluations next to a flat face.
            body = 0.0
            wsum = 0.0
            for bi, bj, bk in ti.ndrange(3, 3, 3):
                blk = ti.Vector([bi, bj, bk])
                dc = colliders.sdf(b, xw + (blk - 1.0) * dx)
                straddles = ti.abs(dc) < VOID_CLEAR * dx or colliders.kind[b] == HEIGHTFIELD
                share = 0.0 if dc >= 0.0 else 1.0  # of a block wholly on one side
                for i, j, k in ti.ndrange(VOID_SPLIT, VOID_SPLIT, VOID_SPLIT):
                    t = (blk * VOID_SPLIT + ti.Vector([i, j, k]) + 0.5) * h - 1.5
                    w = _bspline(t[0]) * _bspline(t[1]) * _bspline(t[2])
                    inside = share
                    if straddles:
                        inside = ti.min(ti.max(0.5 - colliders.sdf(b, xw + t * dx) / (h * dx), 0.0), 1.0)
                    body += w * inside
                    wsum += w
            body /= wsum
            # A level direction out of the body: the normal's level part, else away from the body's origin.
            nrm = colliders.normal(b, xw)
            out = nrm - nrm.dot(down) * down
            if out.norm() < 0.3:
                out = xw - colliders.origin[b]
                out -= out.dot(down) * down
            if out.norm() < 1e-6:
                out = ti.Vector([down[1] - down[2], down[2] - down[0], down[0] - down[1]])  # any level direction
                out -= out.dot(down) * down
            out = out.normalized()
            # March along it to VOID_REACH cells from the body (sphere tracing on the SDF).
            y = xw
            for _ in range(16):
                gap = VOID_REACH * dx - colliders.sdf(b, y)
                if gap <= 1e-3 * dx:
                    break
                y += gap * out
            around = _fill_at(fill, nodes, (y - grid_lo) / dx)
            here = ti.cast(ti.cast(fill[node], ti.f64) * VOID_QUANTUM, ti.f32)
            short = (around * (1.0 - body) - here) * ti.min(ti.max(4.0 * around - 1.0, 0.0), 1.0)
            short_of[node] = short
            body_of[node] = b
            ti.atomic_add(total[b], ti.cast(ti.round(ti.cast(short, ti.f64) / VOID_QUANTUM), ti.i64))


@ti.kernel
def _weigh_missing_liquid(
    short_of: GridScalar, body_of: ti.types.ndarray(dtype=ti.i32, ndim=1), total: FillArr, nodes: ti.math.ivec3,
    colliders: ti.template(), grid_lo: ti.math.vec3, dx: ti.f32, weight: ti.math.vec3,
):
    """Each body whose missing liquid sums to more than nothing carries its weight, node by node (so
    it turns the body too); `weight`: the impulse of one cell volume of liquid's weight over the step.
    A body with liquid pressed closer than packed particles would lie (particles the push-out put on
    its surface) sums to less than nothing and carries nothing: that liquid's pressure reaches it
    through the grid constraint already."""
    for node in range(nodes[0] * nodes[1] * nodes[2]):
        b = body_of[node]
        if b >= 0:
            if total[b] > 0:
                I = _node_coords(node, nodes)
                colliders.add_impulse(b, grid_lo + I * dx, short_of[node] * weight)


@ti.kernel
def _zero(a: FillArr):
    for i in range(a.shape[0]):
        a[i] = 0


@ti.kernel
def _g2p(
    x: Vec3Arr, v: Vec3Arr, C: Mat3Arr, J: ScalarArr, gv: GridVec, gp: GridVec,
    n: ti.i32, sx: ti.i32, sy: ti.i32, dt: ti.f32, inv_dx: ti.f32, x_min: ti.math.vec3, x_max: ti.math.vec3, mat: ti.template(),
    flip: ti.template(), flip_ratio: ti.f32,
):
    """Gather grid velocities to the particles (G2P), move them, update J (water).

    With `flip` the particle velocity is the blend (1 - flip_ratio) PIC + flip_ratio FLIP:
    PIC is the gathered grid velocity, FLIP the particle's own plus the gathered change
    of this substep (``gv`` - ``gp``). Positions move with the gathered grid velocity.
    """
    ti.loop_config(block_dim=BLOCK_DIM)
    for p in range(n):
        Xp = x[p] * inv_dx
        base = int(Xp - 0.5)
        fx = Xp - base
        w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1) ** 2, 0.5 * (fx - 0.5) ** 2]
        new_v = ti.Vector([0.0, 0.0, 0.0])
        old_v = ti.Vector([0.0, 0.0, 0.0])
        new_C = ti.Matrix.zero(ti.f32, 3, 3)
        b = base[0] * sx + base[1] * sy + base[2]
        for offset in ti.static(ti.grouped(ti.ndrange(3, 3, 3))):
            dpos = offset - fx
            weight = w[offset[0]][0] * w[offset[1]][1] * w[offset[2]][2]
            node = b + offset[0] * sx + offset[1] * sy + offset[2]
            g_v = gv[node]
            new_v += weight * g_v
            new_C += weight * g_v.outer_product(dpos)
            if ti.static(flip):
                old_v += weight * gp[node]
        new_C *= 4.0 * inv_dx
        if ti.static(flip):
            v[p] = new_v + flip_ratio * (v[p] - old_v)
        else:
            v[p] = new_v
        C[p] = new_C
        # Particles stay within one cell of the domain (inside the grid's kernel support).
        x[p] = ti.min(ti.max(x[p] + dt * new_v, x_min), x_max)
        if ti.static(mat == WATER):
            J[p] *= 1.0 + dt * new_C.trace()


@ti.kernel
def _volume_sum(J: ScalarArr, F: Mat3Arr, n: ti.i32, mat: ti.template(), parts: ti.types.ndarray(dtype=ti.f64, ndim=1)) -> ti.f64:
    """Sum of J (water) or det F over the particles: each of len(parts) contiguous chunks summed
    serially in parallel, then the chunks in order, so the bits do not depend on the thread count
    (a plain parallel `total +=` is an atomic add in whatever order the threads reach it)."""
    chunks = parts.shape[0]
    per = (n + chunks - 1) // chunks
    for c in range(chunks):
        s = ti.cast(0.0, ti.f64)
        for p in range(c * per, ti.min(n, (c + 1) * per)):
            r = 1.0
            if ti.static(mat == WATER):
                r = J[p]
            else:
                r = F[p].determinant()
            s += ti.cast(r, ti.f64)
        parts[c] = s
    total = ti.cast(0.0, ti.f64)
    ti.loop_config(serialize=True)
    for c in range(chunks):
        total += parts[c]
    return total


@ti.kernel
def _push_out(
    x: Vec3Arr, v: Vec3Arr, n: ti.i32, colliders: ti.template(), grid_lo: ti.math.vec3, p_mass: ti.f32,
    stats: ScalarArr,
):
    """Particles that ended a substep inside a body go back to its surface, and lose the
    velocity with which they entered it (relative to the body); the body takes the
    opposite of that momentum change.

    The grid update already keeps the velocity at nodes inside bodies from entering
    them, but a particle interpolates from nodes outside too, so near a moving body a
    few would drift in; over seconds that leak would fill a floating crate's volume
    and sink it. This pass closes the leak (each particle is treated on its own, so
    the order of particles does not matter).
    """
    for p in range(n):
        xw = x[p] + grid_lo
        b, d = colliders.nearest(xw, 0.0)
        if b >= 0 and d < 0.0:
            nrm = colliders.normal(b, xw)
            xw = xw - d * nrm
            x[p] = xw - grid_lo
            ti.atomic_max(stats[2], -d)  # how far a particle was moved (a max: order-free)
            vn = (v[p] - colliders.velocity(b, xw)).dot(nrm)
            if vn < 0:
                v[p] -= vn * nrm
                colliders.add_impulse(b, xw, (p_mass * vn) * nrm)


@ti.kernel
def _mark_inside(x: Vec3Arr, inside: ti.types.ndarray(dtype=ti.i32, ndim=1), n: ti.i32, colliders: ti.template(), grid_lo: ti.math.vec3):
    for p in range(n):
        b, d = colliders.nearest(x[p] + grid_lo, 0.0)
        inside[p] = 1 if (b >= 0 and d < 0.0) else 0


# ---------------------------------------------------------------- solver


@ti.data_oriented
class LiquidSolver:
    """MLS-MPM particles of one material in ``spec.domain`` (see the module docstring).

    colliders: the scene's rigid bodies (``hybrid.fields.colliders.Colliders``, or
    None); gravity (m/s^2, world axes); seed: the jitter of the initial particles.
    ``memory_limit_gb`` refuses sets estimated to need more (``estimate_bytes``).
    Call ``backend.ensure`` first and ``close()`` when done.
    """

    def __init__(
        self,
        spec: LiquidSpec,
        colliders=None,
        gravity=(0.0, 0.0, -9.81),
        seed: int = 0,
        *,
        memory_limit_gb: Optional[float] = None,
    ):
        if backend.current() is None:
            raise FieldError("Taichi is not started; call hybrid.fields.backend.ensure(arch, deterministic) first")
        self.spec = spec
        self.material = spec.material
        self.mat = _material_id(spec)
        self.shape, dx = grid_shape(spec.domain, spec.resolution)
        self.dx = float(dx)
        self.origin = np.asarray(spec.domain.min, np.float64)
        self.grid_lo = self.origin - PAD * self.dx  # world position of grid node (0, 0, 0)
        self.nodes = tuple(n + 1 + 2 * PAD for n in self.shape)
        self._sx, self._sy = self.nodes[1] * self.nodes[2], self.nodes[2]  # flat grid strides
        run = backend.current()
        self._blocks = run.arch == "cpu"  # coloured-block P2G (no atomics); atomic adds on a GPU
        blocks = [-(-n // SORT_BLOCK) for n in self.nodes]
        self._half = tuple(-(-b // 2) for b in blocks)  # blocks of one colour along each axis
        self._per_colour = math.prod(self._half)
        self._n_blocks = 8 * self._per_colour
        self._drift = math.inf  # cells any particle may have moved since the last sort: sort first

        count = count_particles(spec)
        if count == 0:
            raise FieldError(
                "the liquid's fill regions contain no grid cell centre inside the domain; move the fill inside "
                f"`domain` or make it at least one cell ({self.dx:.4g} m) across"
            )
        if count > spec.max_particles:
            raise FieldError(
                f"the liquid fill would seed {count:,} particles, more than max_particles ({spec.max_particles:,}); "
                "lower `resolution` or `particles_per_cell`, shrink the fill regions, or raise `max_particles`"
            )
        bodies = colliders is not None and colliders.count > 0
        need = estimate_bytes(spec, bodies=bodies, gravity=any(float(g) != 0.0 for g in gravity))
        if memory_limit_gb is not None and need > memory_limit_gb * 1e9:
            raise FieldError(
                f"the liquid needs about {need / 1e9:.2f} GB ({count:,} particles, grid {self.nodes}), more than "
                f"memory_limit_gb ({memory_limit_gb:g}); lower `resolution` or `particles_per_cell`, or raise the limit"
            )

        rho = float(spec.density)
        self.p_vol = self.dx**3 / spec.particles_per_cell  # m^3 at rest
        self.p_mass = rho * self.p_vol  # kg
        self.bulk = rho * float(spec.sound_speed) ** 2  # Pa, water
        self.viscosity = float(spec.viscosity) if self.mat == WATER else 0.0  # Pa s
        youngs = spec.youngs_modulus if spec.youngs_modulus is not None else DEFAULT_YOUNGS.get(spec.material, 0.0)
        self.youngs = float(youngs)
        self.mu, self.lam = lame(self.youngs, float(spec.poisson_ratio))
        self.alpha = drucker_prager_alpha(float(spec.friction_angle_deg))
        self.wave_speed = float(spec.sound_speed) if self.mat == WATER else math.sqrt(self.youngs / rho)  # m/s
        self.gravity = tuple(float(g) for g in gravity)
        self.walls = {"separate": 0, "slip": 1, "sticky": 2}[spec.walls]
        self.colliders = colliders if colliders is not None and colliders.count > 0 else None
        self.flip_ratio = spec.flip_ratio
        self.flip = self.flip_ratio > 0.0
        self.body_band = BODY_BAND * self.dx
        self._hi = tuple(int(n + PAD) for n in self.shape)  # first node index of each upper wall band
        self._x_min = ((PAD - 1) * self.dx,) * 3  # particle clamp (grid frame), one cell outside the domain
        self._x_max = tuple((n + PAD + 1) * self.dx for n in self.shape)

        pos, vel, depth, grounded, bottom = seed_particles(spec, seed, self.gravity)
        self.capacity = self.n = len(pos)
        backend.acquire()
        self._closed = False
        try:
            self._allocate(pos, vel, depth, grounded, bottom)
        except BaseException:
            self.close()
            raise
        self._carved = self.colliders is None
        self._frame_substeps = 0
        self._frame_time = 0.0  # seconds advanced since the last frame()
        self._max_speed = float(np.linalg.norm(vel, axis=1).max(initial=0.0))
        self._stiffness = 1.0  # largest snow hardening factor seen
        # m^3 of water missing next to the bodies at the last advance, all bodies (VOID_BAND): the weight
        # of what is missing next to a body is carried where that sums to more than nothing.
        self.missing_volume = 0.0

    def _allocate(
        self, pos: np.ndarray, vel: np.ndarray, depth: np.ndarray, grounded: np.ndarray, bottom: np.ndarray
    ) -> None:
        n = self.capacity
        water = self.mat == WATER
        self.x = ti.ndarray(ti.math.vec3, n)
        self.v = ti.ndarray(ti.math.vec3, n)
        self.C = ti.ndarray(ti.math.mat3, n)
        self.J = ti.ndarray(ti.f32, n if water else 1)
        self.F = ti.ndarray(ti.math.mat3, 1 if water else n)
        self.Jp = ti.ndarray(ti.f32, n if self.mat in (SAND, SNOW) else 1)
        self.gv = ti.ndarray(ti.math.vec3, math.prod(self.nodes))
        self._slabs = _slab_order(math.prod(self.nodes), backend.current().threads)  # the grid passes' node order
        # FLIP's grid velocity before forces (a dummy without FLIP).
        self.gp = ti.ndarray(ti.math.vec3, math.prod(self.nodes) if self.flip else 1)
        # With bodies, the grid update writes into a second array (it samples the first).
        self._gv_out = ti.ndarray(ti.math.vec3, math.prod(self.nodes) if self.colliders is not None else 1)
        self.gm = ti.ndarray(ti.f32, math.prod(self.nodes))
        # The water's fill per node and its shortfall's sum next to bodies (``_missing_liquid_weight``).
        self._weighs_gap = water and self.colliders is not None and any(g != 0.0 for g in self.gravity)
        gap_nodes = math.prod(self.nodes) if self._weighs_gap else 1
        self._fill = ti.ndarray(ti.i64, gap_nodes)
        self._short_of = ti.ndarray(ti.f32, gap_nodes)
        self._body_of = ti.ndarray(ti.i32, gap_nodes)
        self._short = ti.ndarray(ti.i64, max(1, self.colliders.count if self.colliders is not None else 1))
        self.stats = ti.ndarray(ti.f32, 4)
        self._vol_parts = ti.ndarray(ti.f64, VOLUME_CHUNKS)  # volume()'s partial sums
        # The coloured-block P2G's sort: block counts and the second set of particle arrays
        # the particles move into (swapped with the first every substep); dummies on a GPU.
        nb = self._n_blocks if self._blocks else 1
        self._blk = ti.ndarray(ti.i32, n if self._blocks else 1)
        self._counts = ti.ndarray(ti.i32, SORT_CHUNKS * nb)
        self._start = ti.ndarray(ti.i32, nb)
        self._total = ti.ndarray(ti.i32, nb)
        self._sorted_blk = ti.ndarray(ti.i32, n if self._blocks else 1)  # the block of each sorted slot
        self._affine = ti.ndarray(ti.math.mat3, n if self._blocks and not water else 1)  # solids' stress, per particle
        sizes = [n, n, n, n if water else 1, 1 if water else n, n if self.mat in (SAND, SNOW) else 1]
        types = [ti.math.vec3, ti.math.vec3, ti.math.mat3, ti.f32, ti.math.mat3, ti.f32]
        self._spare = tuple(ti.ndarray(t, k if self._blocks else 1) for t, k in zip(types, sizes))
        if water:
            # Start in hydrostatic equilibrium, each particle where its J puts it.
            pos, j0 = hydrostatic_squeeze(pos, depth, bottom, self.gravity, float(self.spec.sound_speed))
            self.J.from_numpy(j0.astype(np.float32))
        self.x.from_numpy((pos - self.grid_lo).astype(np.float32))
        self.v.from_numpy(vel.astype(np.float32))
        self.C.fill(0.0)
        if not water:
            # Standing on the floor, start at rest under its own weight, squeezed along gravity
            # only (as if set in its container): without it a block starts stress-free, sags under
            # its weight and rings. In the air (falling: no weight to carry) stress-free.
            F0 = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy()
            g = np.asarray(self.gravity, np.float64)
            if np.any(g != 0):
                axis = int(np.argmax(np.abs(g)))
                load = float(self.spec.density) * float(np.linalg.norm(g)) * np.where(grounded, depth, 0.0)
                F0[:, axis, axis] = geostatic_stretch(self.mat, load, self.mu, self.lam)
            self.F.from_numpy(F0)
        self.Jp.fill(1.0 if self.mat == SNOW else 0.0)
        self.stats.fill(0.0)

    # ------------------------------------------------------------ stepping

    def substep(self, dt: float) -> None:
        """One MPM substep of `dt` seconds (no CFL check; ``advance`` is the safe way to step)."""
        inv_dx = 1.0 / self.dx
        if self._blocks and self._drift >= RESORT_DRIFT:
            self._drift = 0.0
            chunk = -(-self.n // SORT_CHUNKS)
            _bin_count(self.x, self._blk, self._counts, self.n, chunk, inv_dx, self._half, self._per_colour, self._n_blocks)
            _bin_offsets(self._counts, self._start, self._total, self._n_blocks)
            here = (self.x, self.v, self.C, self.J, self.F, self.Jp)
            _bin_move(
                self._blk, self._counts, self._start, self._sorted_blk, self.n, chunk, self._n_blocks,
                *here, *self._spare, self.mat,
            )
            (self.x, self.v, self.C, self.J, self.F, self.Jp), self._spare = self._spare, here
        self._scatter(dt)
        if self.colliders is None:
            _grid_update(
                self.gv, self.gm, self.gp, self.stats, self.nodes, self._slabs, dt, self.gravity, self._hi, self.walls,
                self.flip,
            )
        else:
            _grid_velocity(self.gv, self.gm, self.gp, self._slabs, dt, self.gravity, self.flip)
            _grid_update_bodies(
                self.gv, self.gm, self._gv_out, self.stats, self.nodes, self._slabs, self._hi, self.walls,
                self.colliders, tuple(self.grid_lo), self.dx, self.body_band, BODY_REACH * self.dx,
                dt, self.gravity,
            )
            self.gv, self._gv_out = self._gv_out, self.gv
        _g2p(
            self.x, self.v, self.C, self.J, self.gv, self.gp, self.n, self._sx, self._sy, dt, inv_dx,
            self._x_min, self._x_max, self.mat, self.flip, self.flip_ratio,
        )
        if self.colliders is not None:
            _push_out(self.x, self.v, self.n, self.colliders, tuple(self.grid_lo), self.p_mass, self.stats)
        self._last_stats = stats = self.stats.to_numpy()  # read once a substep (``advance`` uses it too)
        if self._blocks:
            # How far any particle may have moved since the sort: the substep's largest grid
            # speed bounds the gathered velocity that moved it, plus the longest push out of a body.
            step = dt * math.sqrt(max(0.0, float(stats[0]))) + float(stats[2])
            self._drift += step / self.dx if math.isfinite(step) else math.inf

    def _scatter(self, dt: float) -> None:
        """Clear the grid and add the particles' mass and momentum to it (P2G): the coloured blocks of the
        last sort on the CPU, atomic adds on a GPU."""
        material = (self.bulk, self.viscosity, self.mu, self.lam, self.alpha, self.mat, self.flip)
        particles = (self.x, self.v, self.C, self.J, self.F, self.Jp, self.gv, self.gm, self.gp, self.stats)
        if self._blocks:
            _p2g_blocks(
                *particles, self._start, self._total, self._sorted_blk, self._affine, self.n,
                self._per_colour, self._sx, self._sy, dt, 1.0 / self.dx, self.p_vol, self.p_mass, *material,
            )
        else:
            _p2g(*particles, self.n, self._sx, self._sy, dt, 1.0 / self.dx, self.p_vol, self.p_mass, *material)

    def _carve(self) -> None:
        """Remove the particles whose centre lies inside a body (once, at the first advance)."""
        self._carved = True
        inside = ti.ndarray(ti.i32, self.n)
        _mark_inside(self.x, inside, self.n, self.colliders, tuple(self.grid_lo))
        keep = inside.to_numpy() == 0
        if keep.all():
            return
        for arr in (self.x, self.v, self.C, self.J, self.F, self.Jp):
            data = arr.to_numpy()
            if len(data) < self.n:
                continue  # a dummy
            kept = data[: self.n][keep]
            data[: len(kept)] = kept
            arr.from_numpy(data)
        self.n = int(keep.sum())
        self._drift = math.inf

    @property
    def count(self) -> int:
        """Particles alive now."""
        return self.n

    def substep_limit(self, max_speed: Optional[float] = None) -> float:
        """The longest stable substep (s) at grid speed `max_speed` (m/s; default: the last substep's)."""
        speed = self._max_speed if max_speed is None else float(max_speed)
        limit = self.spec.cfl * self.dx / (speed + self.wave_speed * math.sqrt(self._stiffness))
        if self.viscosity > 0.0:
            limit = min(limit, self.spec.density * self.dx**2 / (6.0 * self.viscosity))
        return limit

    def advance(self, dt: float, t: float = 0.0) -> LiquidReport:
        """Advance by `dt` seconds (from simulated time `t`) in CFL-limited substeps; moves the bodies along."""
        if self._closed:
            raise FieldError("this LiquidSolver is closed")
        if not dt > 0:
            return LiquidReport(0, 0.0, 0.0, self._max_speed)
        if not self._carved:
            self._carve()
        if self._weighs_gap and self.colliders.receives_np.any():  # one-way coupling: no body takes the weight
            self._weigh_gap(float(dt))
        remaining = float(dt)
        steps = 0
        shortest, longest = math.inf, 0.0
        top_speed = self._max_speed
        while remaining > 0.0:
            limit = self.substep_limit()
            todo = max(1, math.ceil(remaining / limit - 1e-9))
            if self._frame_substeps + todo > self.spec.max_substeps:
                raise FieldError(
                    f"the {self.material} needs {self._frame_substeps + todo} substeps in this frame (substeps of "
                    f"{limit:.3g} s: cell {self.dx:.3g} m, speed {self._max_speed:.3g} m/s, wave speed "
                    f"{self.wave_speed * math.sqrt(self._stiffness):.3g} m/s, cfl {self.spec.cfl}), more than "
                    f"max_substeps ({self.spec.max_substeps}); raise `max_substeps`, or lower `sound_speed` (water), "
                    "`youngs_modulus` (solids) or `resolution`" + self._unframed_note(dt - remaining)
                )
            sub = remaining if todo == 1 else remaining / todo
            self.substep(sub)
            if self.colliders is not None:
                self.colliders.advance(sub)
            remaining = 0.0 if todo == 1 else remaining - sub
            steps += 1
            self._frame_substeps += 1
            shortest, longest = min(shortest, sub), max(longest, sub)
            stats = self._last_stats
            speed = math.sqrt(max(0.0, float(stats[0]))) if math.isfinite(stats[0]) else math.inf
            if not math.isfinite(speed):
                raise FieldError(
                    f"the {self.material} simulation became unstable (non-finite velocities at t = "
                    f"{t + dt - remaining:.4g} s); lower `cfl`, or soften the material (`sound_speed`, `youngs_modulus`)"
                )
            self._max_speed = speed
            top_speed = max(top_speed, speed)
            if self.mat == SNOW:
                self._stiffness = max(1.0, float(stats[1]))
        self._frame_time += dt
        return LiquidReport(steps, shortest if steps else 0.0, longest, top_speed)

    def _weigh_gap(self, dt: float) -> None:
        """Give the bodies the weight, over `dt`, of the water missing next to them (VOID_BAND)."""
        _zero(self._fill)
        _zero(self._short)
        _scatter_fill(
            self.x, self.J, self.n, self._fill, self._sx, self._sy, 1.0 / self.dx, 1.0 / self.spec.particles_per_cell
        )
        g = math.sqrt(sum(c * c for c in self.gravity))
        down = tuple(c / g for c in self.gravity)
        lo = tuple(self.grid_lo)
        _missing_liquid_weight(
            self._fill, self.nodes, self.colliders, lo, self.dx, down, self._short_of, self._body_of, self._short
        )
        weight = tuple(float(self.spec.density) * self.dx**3 * c * dt for c in self.gravity)
        _weigh_missing_liquid(self._short_of, self._body_of, self._short, self.nodes, self.colliders, lo, self.dx, weight)
        self.missing_volume = float(self._short.to_numpy()[: self.colliders.count].sum()) * VOID_QUANTUM * self.dx**3

    def _unframed_note(self, done: float) -> str:
        """The substep error's note on what the budget counted: ``max_substeps`` is per video frame, counted
        from the last ``frame()``, so a caller stepping the solver itself who never calls ``frame()`` sees
        here how long it has been counting."""
        if self._frame_time <= 0.0:
            return ""
        return (
            f"; the count covers the {self._frame_time + done:.4g} s advanced since the last `frame()` "
            "(max_substeps is per video frame: call `frame()` once per frame)"
        )

    def frame(self) -> LiquidFrame:
        """The particles now (world positions, float32); starts the next video frame's substep count."""
        self._frame_substeps = 0
        self._frame_time = 0.0
        pos = self.x.to_numpy()[: self.n].astype(np.float64) + self.grid_lo
        return LiquidFrame(
            position=pos.astype(np.float32),
            velocity=self.v.to_numpy()[: self.n],
            particle_volume=float(self.p_vol),
            cell_size=self.dx,
            origin=self.origin.copy(),
            grid_shape=tuple(int(s) for s in self.shape),
            material=self.material,
        )

    def positions(self) -> np.ndarray:
        """(N, 3) float64 world positions of the particles now (no other effect, unlike ``frame``)."""
        return self.x.to_numpy()[: self.n].astype(np.float64) + self.grid_lo

    def volume(self) -> float:
        """Sum of particle rest volume x J (water) or x det F (solids), m^3."""
        return float(_volume_sum(self.J, self.F, self.n, self.mat, self._vol_parts)) * self.p_vol

    def close(self) -> None:
        """Drop the particle and grid arrays and release the backend (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for name in (
            "x", "v", "C", "J", "F", "Jp", "gv", "gp", "_gv_out", "gm", "stats", "_vol_parts", "_blk", "_counts",
            "_start", "_total", "_occupied", "_n_occupied", "_affine", "_spare",
        ):
            self.__dict__.pop(name, None)
        backend.release()
