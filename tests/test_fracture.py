"""Fracture geometry (hybrid/physics/fracture.py): Voronoi cells clipped to an object's convex parts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import trimesh

from hybrid.physics.fracture import FractureError, FracturePattern, fracture, fragment_of, voronoi_cells

# The fragments tile the object: their volumes are sums of tetrahedra over the same
# space, so only rounding separates their total from the object's (about 1e-16 per
# tetrahedron); the issue asks for 1e-9.
TILING = 1e-9


def _box(size, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    half = np.asarray(size, dtype=np.float64) / 2
    return np.array(list(itertools.product(*[(-h, h) for h in half]))) + np.asarray(centre)


def _separated(a, b, tol) -> bool:
    """Whether the bisector of the two fragments' sites keeps each on its own side (no overlap)."""
    normal = b.site - a.site
    offset = (b.site @ b.site - a.site @ a.site) / 2
    va = np.concatenate([p.vertices for p in a.pieces])
    vb = np.concatenate([p.vertices for p in b.pieces])
    return bool((va @ normal <= offset + tol).all() and (vb @ normal >= offset - tol).all())


def test_two_sites_split_a_box_at_their_bisector():
    """Sites at x = -0.05 and +0.05 in a 0.2 x 0.1 x 0.04 m box: two halves x < 0 and x > 0,
    each 4e-4 m^3 with its centroid at x = -+0.05, and one cut face each, 0.1 x 0.04 m at x = 0."""
    fragments = voronoi_cells([_box([0.2, 0.1, 0.04])], np.array([[-0.05, 0.0, 0.0], [0.05, 0.0, 0.0]]))
    assert len(fragments) == 2
    for sign, fragment in zip((-1, 1), fragments):
        assert fragment.volume == pytest.approx(4e-4, rel=1e-12)
        assert fragment.centroid == pytest.approx([sign * 0.05, 0.0, 0.0], abs=1e-12)
        (piece,) = fragment.pieces
        tri = piece.vertices[piece.faces]
        area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2
        assert area[piece.inner].sum() == pytest.approx(0.1 * 0.04, rel=1e-12)
        assert np.abs(tri[piece.inner][..., 0]).max() < 1e-12  # the cut lies on x = 0
        # The rest is the box's own surface: a 0.1 x 0.1 x 0.04 m half box has 0.036 m^2, less the cut.
        assert area[~piece.inner].sum() == pytest.approx(2 * (0.1 * 0.1 + 0.1 * 0.04 + 0.1 * 0.04) - 0.1 * 0.04, rel=1e-12)


@pytest.mark.parametrize("pieces", [2, 8, 64])
@pytest.mark.parametrize("size", [[0.2, 0.1, 0.04], [2.0, 1.5, 0.1]])
def test_fragments_tile_a_box_without_overlap(pieces, size):
    box = _box(size)
    fragments = fracture([box], FracturePattern(pieces=pieces, seed=3))
    assert len(fragments) == pieces
    volume = float(np.prod(size))
    assert abs(sum(f.volume for f in fragments) / volume - 1) <= TILING
    # The volume-weighted centroids average to the box's centre (its centre of mass).
    centre = sum(f.volume * f.centroid for f in fragments) / volume
    assert np.abs(centre).max() <= TILING * max(size)
    lo, hi = box.min(axis=0), box.max(axis=0)
    tol = 1e-12 * max(size)
    for f in fragments:
        for p in f.pieces:
            assert (p.vertices >= lo - tol).all() and (p.vertices <= hi + tol).all()
            # Faces wound outwards: each face's normal points away from the piece's centroid.
            tri = p.vertices[p.faces]
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            assert (np.einsum("ij,ij->i", n, tri.mean(axis=1) - p.centroid) > 0).all()
    for a, b in itertools.combinations(fragments, 2):
        assert _separated(a, b, tol)


def _box_inertia(mass, size) -> np.ndarray:
    a, b, c = size
    return mass / 12 * np.diag([b * b + c * c, a * a + c * c, a * a + b * b])


def test_fragment_inertia_is_the_solids_and_sums_to_the_parents():
    """A half of a 0.2 x 0.1 x 0.04 m box has the inertia of a 0.1 x 0.1 x 0.04 box; and the
    fragments' inertias moved to the parent's centre (parallel axes) sum to the whole box's,
    m / 12 (b^2 + c^2, ...), as their volumes do: to rounding."""
    size, density = np.array([0.2, 0.1, 0.04]), 2500.0
    halves = voronoi_cells([_box(size)], np.array([[-0.05, 0.0, 0.0], [0.05, 0.0, 0.0]]))
    half = halves[0].inertia(density)
    assert np.allclose(half, _box_inertia(density * 4e-4, [0.1, 0.1, 0.04]), rtol=1e-12, atol=1e-18)
    for pieces in (8, 64):
        total = np.zeros((3, 3))
        for f in fracture([_box(size)], FracturePattern(pieces=pieces, seed=9)):
            d, m = f.centroid, density * f.volume
            total += f.inertia(density) + m * (d @ d * np.eye(3) - np.outer(d, d))
        expected = _box_inertia(density * size.prod(), size)
        assert np.abs(total - expected).max() <= TILING * np.abs(expected).max()


def test_a_round_and_a_compound_object_are_tiled_too():
    """An icosphere's hull (one convex part) and an L of two boxes (two parts): the fragments'
    volumes sum to the parts' volumes."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.05).vertices
    fragments = fracture([sphere], FracturePattern(pieces=32, seed=0))
    assert abs(sum(f.volume for f in fragments) / trimesh.convex.convex_hull(sphere).volume - 1) <= TILING
    parts = [_box([0.2, 0.05, 0.05], (0.0, 0.0, 0.0)), _box([0.05, 0.15, 0.05], (0.075, 0.1, 0.0))]
    fragments = fracture(parts, FracturePattern(pieces=24, seed=5))
    total = 0.2 * 0.05 * 0.05 + 0.05 * 0.15 * 0.05
    assert abs(sum(f.volume for f in fragments) / total - 1) <= TILING
    assert any(len(f.pieces) == 2 for f in fragments)  # a cell across the joint holds a piece of each part


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_fragments():
    def digest(seed):
        return b"".join(p.vertices.tobytes() + p.faces.tobytes() for f in fracture([_box([0.3, 0.2, 0.1])], FracturePattern(pieces=16, seed=seed)) for p in f.pieces)

    assert digest(7) == digest(7)
    assert digest(7) != digest(8)


def test_impact_cells_are_small_near_the_point_of_impact():
    """Site density falls as (r0 / (r + r0))^2 with r0 a tenth of the box's diagonal (0.036 m),
    so a cell's volume grows about as (r + r0)^2: from r ~ 0 to r ~ 0.3 m that is a factor
    of about 100. The 16 cells nearest the impact must average less than a third of the
    16 farthest, a bound far inside that."""
    box = _box([0.3, 0.2, 0.1])
    impact = np.array([0.15, 0.0, 0.0])  # the middle of the +x face
    fragments = fracture([box], FracturePattern(pieces=64, seed=2, kind="impact", impact=tuple(impact)))
    order = np.argsort([np.linalg.norm(f.centroid - impact) for f in fragments])
    volumes = np.array([f.volume for f in fragments])[order]
    assert volumes[:16].mean() < volumes[-16:].mean() / 3
    uniform = fracture([box], FracturePattern(pieces=64, seed=2))
    order = np.argsort([np.linalg.norm(f.centroid - impact) for f in uniform])
    volumes = np.array([f.volume for f in uniform])[order]
    assert volumes[:16].mean() > volumes[-16:].mean() / 3  # without the pattern, no such gradient


def _elongation(fragment, axis) -> float:
    """Extent along `axis` over the mean extent along the two axes across it."""
    v = np.concatenate([p.vertices for p in fragment.pieces])
    extent = v.max(axis=0) - v.min(axis=0)
    across = [k for k in range(3) if k != axis]
    return float(extent[axis] / extent[across].mean())


def test_grain_makes_splinters_along_it():
    """A stretch of 4 along x makes cells about 4 times longer along x than across; walls of the
    0.2 m cube clip the longest, so the median must pass 2 (and stay near 1 without grain)."""
    cube = _box([0.2, 0.2, 0.2])
    grained = fracture([cube], FracturePattern(pieces=64, seed=4, grain=(1.0, 0.0, 0.0), grain_stretch=4.0))
    plain = fracture([cube], FracturePattern(pieces=64, seed=4))
    assert np.median([_elongation(f, 0) for f in grained]) > 2.0
    assert 0.7 < np.median([_elongation(f, 0) for f in plain]) < 1.4
    assert abs(sum(f.volume for f in grained) / 0.008 - 1) <= TILING


@pytest.mark.parametrize(
    "pattern, message",
    [
        (FracturePattern(pieces=1), "from 2 to"),
        (FracturePattern(pieces=8, kind="impact"), "needs the impact point"),
        (FracturePattern(pieces=8, kind="shards"), "'voronoi' or 'impact'"),  # type: ignore[arg-type]
        (FracturePattern(pieces=8, grain_stretch=0.5), "at least 1"),
    ],
)
def test_bad_patterns_say_what_to_change(pattern, message):
    with pytest.raises(FractureError, match=message):
        fracture([_box([0.1, 0.1, 0.1])], pattern)


def test_pybullet_sees_no_fragment_overlap_at_spawn():
    """The issue's check: 64 fragments of a box spawned where they lie, each a convex hull
    with the 0 collision margin hybrid's hull bodies use (physics/bodies.py): every contact
    pybullet reports is at distance >= -0.5 mm (shared faces touch at 0 to its rounding)."""
    from hybrid.physics.pybullet_quiet import pybullet as p

    fragments = fracture([_box([0.2, 0.1, 0.04])], FracturePattern(pieces=64, seed=1))
    client = p.connect(p.DIRECT)
    try:
        for f in fragments:
            (piece,) = f.pieces
            shape = p.createCollisionShape(p.GEOM_MESH, vertices=(piece.vertices - f.centroid).tolist(), physicsClientId=client)
            body = p.createMultiBody(baseMass=1.0, baseCollisionShapeIndex=shape, basePosition=f.centroid.tolist(), physicsClientId=client)
            p.changeDynamics(body, -1, collisionMargin=0.0, physicsClientId=client)
        p.performCollisionDetection(physicsClientId=client)
        distances = [c[8] for c in p.getContactPoints(physicsClientId=client)]
    finally:
        p.disconnect(client)
    assert len(distances) > 64  # neighbours do touch
    assert min(distances) >= -0.5e-3


def test_the_cache_gives_the_fresh_cut_bit_for_bit_and_rebuilds_a_damaged_entry(tmp_path, monkeypatch):
    from hybrid.physics.fracture import cached_fracture

    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    parts = [_box([0.3, 0.2, 0.1])]
    pattern = FracturePattern(pieces=12, seed=4, kind="impact", impact=(0.15, 0.0, 0.0))

    def digest(fragments):
        return b"".join(
            f.site.tobytes() + p.vertices.tobytes() + p.faces.tobytes() + p.inner.tobytes() + np.float64(p.volume).tobytes()
            for f in fragments for p in f.pieces
        )

    fresh = digest(fracture(parts, pattern))
    assert digest(cached_fracture(parts, pattern)) == fresh  # built
    (entry,) = (tmp_path / "fractures").glob("*.json")
    assert digest(cached_fracture(parts, pattern)) == fresh  # read back
    entry.write_bytes(entry.read_bytes()[:-100])  # cut short
    assert digest(cached_fracture(parts, pattern)) == fresh  # rebuilt
    assert digest(cached_fracture(parts, FracturePattern(pieces=12, seed=5))) != fresh


@pytest.mark.parametrize("pattern", [
    FracturePattern(pieces=32, seed=6),
    FracturePattern(pieces=32, seed=6, grain=(0.0, 1.0, 1.0), grain_stretch=5.0),
])
def test_every_point_of_a_fragment_is_found_in_that_fragment(pattern):
    """Points drawn inside each fragment (convex combinations of its vertices, pulled 1 % towards
    its centroid off the shared faces) are assigned to it: what flow through the break needs."""
    fragments = fracture([_box([0.3, 0.2, 0.1])], pattern)
    sites = np.array([f.site for f in fragments])
    rng = np.random.default_rng(0)
    for k, f in enumerate(fragments):
        for piece in f.pieces:
            w = rng.dirichlet(np.ones(len(piece.vertices)), size=50)
            points = 0.99 * (w @ piece.vertices) + 0.01 * piece.centroid
            assert (fragment_of(points, sites, pattern) == k).all()
