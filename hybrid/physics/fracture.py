"""Fracture geometry: an object's convex parts cut into Voronoi cells, every cell a fragment.

A breakable object is given to ``fracture`` as the convex parts of its collision
shape (one part for a box or a convex hull; a concave mesh's convex decomposition
otherwise), each part a point set whose convex hull it is. The sites of a
``FracturePattern`` split space into Voronoi cells, and each fragment is one cell
clipped to every part (the union of the pieces; a piece of a convex part is convex,
so a fragment is a compound of at most one convex piece per part, exactly what
pybullet collides).

Why clip with planes. A cell is the intersection of the half-spaces "closer to my
site than to site j"; a convex part is the convex hull of its points. Cutting a
convex polytope P by a plane keeps the vertices of P on the inner side plus the
plane's crossings of segments from inner to outer vertices: the convex hull of those
is exactly P cut by the plane (every crossing of any such segment lies in P and on
the plane, and the crossings of P's edges are among them). So a cell piece needs only
convex hulls (Qhull, through scipy), no linear programs, and its volume is exact to
rounding: the pieces of all cells tile each part, so their volumes sum to the part's
to about 1e-13 relative (tested: 1e-9).

Patterns (``FracturePattern.kind``):

- ``voronoi``: sites uniform over the object's volume.
- ``impact``: site density falling as (r0 / (r + r0))^2 with the distance r from
  the impact point, so cells are small where the object was hit and large far from
  it (r0 is ``impact_radius``, by default a tenth of the object's size).

``grain`` (a unit axis in the object frame) with ``grain_stretch`` s > 1 measures
distances along the axis s times shorter when assigning points to sites, so cells
come out about s times longer along the grain than across it: wood's splinters. A
linear change of metric keeps every cell a convex polytope.

Everything is in the object's frame (its centre of mass at the origin for bodies
built by ``hybrid.physics``) and depends only on the parts, the pattern and its
seed: the same inputs give the same bytes. ``cached_fracture`` keeps each cut under
``<cache>/fractures/`` like the convex decompositions (a sealed entry named by the
SHA-256 of the parts, the pattern, our format and the NumPy and SciPy versions), and
gives back exactly the fragments a fresh cut would.

The material a point of the object ends up in is the cell of its nearest site in
the pattern's metric, which is how optical flow can follow a surface point through
the break.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np

# Volumes below this share of the object's are rounding, not fragments: a site's own
# cell always holds a ball around the site, so no real piece comes near it.
SLIVER_SHARE = 1e-14
# A vertex counts as on a cutting plane within this share of the object's size.
PLANE_TOLERANCE = 1e-12
# Most fragments a pattern may ask for (the issue asks for at least 64).
MAX_PIECES = 512


class FractureError(ValueError):
    """A pattern or shape that cannot be fractured; the message says what to change."""


@dataclass(frozen=True)
class FracturePattern:
    """How an object breaks: ``pieces`` cells of kind ``voronoi`` or ``impact`` (see the module docstring)."""

    pieces: int
    seed: int = 0
    kind: Literal["voronoi", "impact"] = "voronoi"
    impact: Optional[tuple[float, float, float]] = None  # object frame; required by "impact"
    impact_radius: Optional[float] = None  # r0 in metres; default a tenth of the object's size
    grain: Optional[tuple[float, float, float]] = None  # object-frame axis of elongated cells
    grain_stretch: float = 1.0

    def check(self) -> None:
        if isinstance(self.pieces, bool) or not isinstance(self.pieces, (int, np.integer)) or not 2 <= self.pieces <= MAX_PIECES:
            raise FractureError(f"fracture pieces must be an integer from 2 to {MAX_PIECES}, got {self.pieces!r}")
        if self.kind not in ("voronoi", "impact"):
            raise FractureError(f"fracture pattern must be 'voronoi' or 'impact', got {self.kind!r}")
        if self.kind == "impact" and self.impact is None:
            raise FractureError("an 'impact' fracture pattern needs the impact point (object frame, metres)")
        if self.impact_radius is not None and not self.impact_radius > 0:
            raise FractureError(f"impact_radius must be positive, got {self.impact_radius!r}")
        if not (np.isfinite(self.grain_stretch) and self.grain_stretch >= 1.0):
            raise FractureError(f"grain_stretch must be at least 1 (1: no grain), got {self.grain_stretch!r}")
        if self.grain is not None and not np.linalg.norm(self.grain) > 0:
            raise FractureError("grain must be a non-zero axis in the object's frame")


@dataclass(frozen=True)
class Piece:
    """One convex piece of a fragment: a closed triangle mesh (outward faces) in the object frame.

    ``inner[f]`` is True where face f lies on a cut (the fragment's broken surface, drawn
    with the object's inner material) and False where it lies on the object's surface.
    """

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64, counter-clockwise seen from outside
    inner: np.ndarray  # (F,) bool
    volume: float
    centroid: np.ndarray  # (3,)


@dataclass(frozen=True)
class Fragment:
    """One cell of the pattern: its site and its pieces (one per convex part it reaches)."""

    site: np.ndarray  # (3,) object frame
    pieces: tuple[Piece, ...]
    volume: float = field(init=False)
    centroid: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        volume = float(sum(p.volume for p in self.pieces))
        centroid = sum(p.volume * p.centroid for p in self.pieces) / volume
        object.__setattr__(self, "volume", volume)
        object.__setattr__(self, "centroid", np.asarray(centroid, dtype=np.float64))

    def inertia(self, density: float) -> np.ndarray:
        """(3, 3) inertia tensor (kg m^2) about the fragment's centroid, axes of the object frame.

        Each piece is split into tetrahedra (the centroid and a face); a tetrahedron with
        vertices v0..v3 has second moment  integral x x^T dV = 6|V| / 120 (sum v v^T + s s^T),
        s = v0 + ... + v3, and the inertia tensor is density (trace(C) 1 - C).
        """
        C = np.zeros((3, 3))
        c = self.centroid
        for p in self.pieces:
            tri = p.vertices[p.faces] - c  # (F, 3, 3), relative to the centroid
            o = np.broadcast_to(p.centroid - c, (len(tri), 3))
            verts = np.concatenate([o[:, None, :], tri], axis=1)  # (F, 4, 3)
            det = np.abs(np.einsum("ij,ij->i", tri[:, 0] - o, np.cross(tri[:, 1] - o, tri[:, 2] - o)))
            S = np.einsum("fki,fkj->fij", verts, verts)
            sv = verts.sum(axis=1)
            C += np.einsum("f,fij->ij", det / 120.0, S + np.einsum("fi,fj->fij", sv, sv))
        return density * (np.trace(C) * np.eye(3) - C)


def _hull(points: np.ndarray):
    """scipy's ConvexHull of `points`, or None where they span no volume."""
    from scipy.spatial import ConvexHull, QhullError

    if len(points) < 4:
        return None
    try:
        return ConvexHull(points)
    except QhullError:
        return None


def _clip(points: np.ndarray, normal: np.ndarray, offset: float, tol: float) -> np.ndarray:
    """The vertices of conv(points) cut by {x : normal . x <= offset} (see the module docstring)."""
    side = points @ normal - offset
    inside = side <= tol
    if inside.all():
        return points
    if not inside.any():
        return points[:0]
    a, b = points[inside], points[~inside]
    sa, sb = side[inside][:, None], side[~inside][None, :]
    t = sa / (sa - sb)  # (in, out): where the segment a -> b crosses the plane
    crossings = a[:, None, :] + t[..., None] * (b[None, :, :] - a[:, None, :])
    return np.concatenate([a, crossings.reshape(-1, 3)])


def _metric(pattern: FracturePattern) -> np.ndarray:
    """(3, 3) A with distances measured as |A (x - s)|: shortened along the grain by grain_stretch."""
    if pattern.grain is None or pattern.grain_stretch == 1.0:
        return np.eye(3)
    g = np.asarray(pattern.grain, dtype=np.float64)
    g = g / np.linalg.norm(g)
    return np.eye(3) - (1.0 - 1.0 / pattern.grain_stretch) * np.outer(g, g)


def _inside(parts: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray, tol: float) -> np.ndarray:
    """bool (N,): points inside any part, each part given by its hull's (normals, offsets)."""
    hit = np.zeros(len(x), dtype=bool)
    for normals, offsets in parts:
        hit |= np.all(x @ normals.T <= offsets + tol, axis=1)
    return hit


def sample_sites(parts: Sequence[np.ndarray], pattern: FracturePattern) -> np.ndarray:
    """(pieces, 3) sites inside the object, drawn for `pattern` from its seed alone."""
    pattern.check()
    planes = [_planes(p) for p in parts]
    lo = np.min([p.min(axis=0) for p in parts], axis=0)
    hi = np.max([p.max(axis=0) for p in parts], axis=0)
    size = float(np.linalg.norm(hi - lo))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([pattern.seed, 0x46524143])))
    impact = None if pattern.kind != "impact" else np.asarray(pattern.impact, dtype=np.float64)
    r0 = pattern.impact_radius if pattern.impact_radius is not None else 0.1 * size
    sites: list[np.ndarray] = []
    for _ in range(10_000):
        x = lo + (hi - lo) * rng.random((4 * pattern.pieces, 3))
        keep = _inside(planes, x, -1e-9 * size)  # strictly inside: no site on the surface
        if impact is not None:
            r = np.linalg.norm(x - impact, axis=1)
            keep &= rng.random(len(x)) < (r0 / (r + r0)) ** 2
        sites.extend(x[keep])
        if len(sites) >= pattern.pieces:
            return np.asarray(sites[: pattern.pieces])
    raise FractureError("could not place the fracture sites inside the object: is its volume zero?")


def _planes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normals (F, 3), offsets (F,)) of the hull of `points`: inside where normals . x <= offsets."""
    hull = _hull(np.asarray(points, dtype=np.float64))
    if hull is None:
        raise FractureError("a convex part of the object spans no volume (flat or degenerate)")
    return hull.equations[:, :3], -hull.equations[:, 3]


def _piece(points: np.ndarray, cut_planes: list[tuple[np.ndarray, float]], tol: float) -> Optional[Piece]:
    """The hull of `points` as a Piece, faces on any of `cut_planes` marked inner; None when flat."""
    hull = _hull(points)
    if hull is None:
        return None
    vertices = points[hull.vertices]
    remap = np.full(len(points), -1)
    remap[hull.vertices] = np.arange(len(hull.vertices))
    faces = remap[hull.simplices]
    # Qhull's simplices have no fixed winding: turn each to face along its outward normal.
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    wrong = np.einsum("ij,ij->i", np.cross(v1 - v0, v2 - v0), hull.equations[:, :3]) < 0
    faces[wrong] = faces[wrong][:, ::-1]
    inner = np.zeros(len(faces), dtype=bool)
    centres = (v0 + v1 + v2) / 3.0
    for normal, offset in cut_planes:
        inner |= np.abs(centres @ normal - offset) <= tol * max(1.0, float(np.linalg.norm(normal)))
    return _mesh_piece(vertices, faces.astype(np.int64), inner)


def _mesh_piece(vertices: np.ndarray, faces: np.ndarray, inner: np.ndarray) -> Piece:
    """A Piece from its closed convex mesh: volume and centroid from the tetrahedra the faces
    make with the vertices' mean (the same arithmetic for a fresh piece and a cached one)."""
    o = vertices.mean(axis=0)
    a, b, c = (vertices[faces[:, k]] - o for k in range(3))
    tet = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    volume = float(tet.sum())
    centroid = o + (tet[:, None] * (a + b + c) / 4.0).sum(axis=0) / volume
    return Piece(vertices=vertices, faces=faces, inner=inner, volume=volume, centroid=centroid)


def fracture(parts: Sequence[np.ndarray], pattern: FracturePattern) -> list[Fragment]:
    """The object whose convex parts are the hulls of `parts` ((N_i, 3) point sets, object
    frame) cut into ``pattern.pieces`` fragments, in site order.

    Every fragment's pieces together are its Voronoi cell within the object, so the
    fragments tile the object: their volumes sum to the parts' (overlaps between parts
    aside, which a convex decomposition should not have).
    """
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    if not parts:
        raise FractureError("nothing to fracture: the object has no convex parts")
    return voronoi_cells(parts, sample_sites(parts, pattern), _metric(pattern))


def fragment_of(points: np.ndarray, sites: np.ndarray, pattern: Optional[FracturePattern] = None) -> np.ndarray:
    """int64 (N,): the fragment each object-frame point (N, 3) of the object ends up in, the cell of
    its nearest site in the pattern's metric (the exact flow of a surface point across the break)."""
    A = np.eye(3) if pattern is None else _metric(pattern)
    y = np.asarray(points, dtype=np.float64) @ A.T
    s = np.asarray(sites, dtype=np.float64) @ A.T
    # |y - s|^2 = |y|^2 - 2 y.s + |s|^2; |y|^2 is the same for every site.
    return np.argmin((s * s).sum(axis=1)[None, :] - 2.0 * y @ s.T, axis=1).astype(np.int64)


def voronoi_cells(parts: Sequence[np.ndarray], sites: np.ndarray, metric: Optional[np.ndarray] = None) -> list[Fragment]:
    """The Voronoi cells of `sites` ((N, 3), inside the object) clipped to the object's convex
    parts, distances measured as |metric (x - site)| (identity by default), in site order."""
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    sites = np.asarray(sites, dtype=np.float64)
    A = np.eye(3) if metric is None else np.asarray(metric, dtype=np.float64)
    y = sites @ A.T
    lo = np.min([p.min(axis=0) for p in parts], axis=0)
    hi = np.max([p.max(axis=0) for p in parts], axis=0)
    size = float(np.linalg.norm(hi - lo))
    tol = PLANE_TOLERANCE * size
    total = float(sum(_hull(p).volume for p in parts))
    fragments: list[Fragment] = []
    for i in range(len(sites)):
        # x is closer to site i than to site j in the metric A:
        # |A x - y_i|^2 <= |A x - y_j|^2  <=>  2 (y_j - y_i) . A x <= |y_j|^2 - |y_i|^2.
        others = np.delete(np.arange(len(sites)), i)
        normals = 2.0 * (y[others] - y[i]) @ A
        offsets = (y[others] ** 2).sum(axis=1) - (y[i] ** 2).sum()
        # Nearest sites first: they cut most, so the rest meet small point sets.
        order = np.argsort(np.linalg.norm(y[others] - y[i], axis=1))
        pieces = []
        for part in parts:
            points = part
            cuts = []
            for j in order:
                clipped = _clip(points, normals[j], offsets[j], tol)
                if clipped is points:
                    continue
                cuts.append((normals[j], offsets[j]))
                hull = _hull(clipped)
                if hull is None:
                    points = clipped[:0]
                    break
                points = clipped[hull.vertices]  # the crossings of inner segments are not all vertices
            piece = _piece(points, cuts, tol) if len(points) >= 4 else None
            if piece is not None and piece.volume > SLIVER_SHARE * total:
                pieces.append(piece)
        if not pieces:
            raise FractureError(f"fracture site {i} made no fragment (a site outside the object?)")
        fragments.append(Fragment(site=sites[i], pieces=tuple(pieces)))
    return fragments


# Bumped whenever the cached layout or the cutting changes.
CACHE_FORMAT = 1


def cache_key(parts: Sequence[np.ndarray], pattern: FracturePattern) -> str:
    """SHA-256 of everything a fracture depends on: the parts' bytes, the pattern, our
    format and the versions of NumPy and SciPy (Qhull) that cut it."""
    import hashlib
    import json

    from hybrid.cache import tool_version

    h = hashlib.sha256()
    for part in parts:
        a = np.ascontiguousarray(part, dtype=np.float64)
        h.update(f"{a.shape}".encode() + a.tobytes())
    fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(pattern).items()}
    h.update(json.dumps(
        [fields, CACHE_FORMAT, tool_version("numpy"), tool_version("scipy")], sort_keys=True, default=float
    ).encode())
    return h.hexdigest()


def cached_fracture(parts: Sequence[np.ndarray], pattern: FracturePattern) -> list[Fragment]:
    """``fracture(parts, pattern)``, kept under ``<cache>/fractures/<key>.json`` (sealed, rebuilt
    when damaged: ``hybrid.cache``): the same fragments, bit for bit, as a fresh cut."""
    import json

    from hybrid.cache import DamagedEntry, cache_root, cached_file, seal, unseal

    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    key = cache_key(parts, pattern)
    fresh: list[list[Fragment]] = []

    def build() -> bytes:
        fragments = fracture(parts, pattern)
        fresh.append(fragments)
        body = {
            "format": CACHE_FORMAT,
            "fragments": [
                {"site": f.site.tolist(), "pieces": [
                    {"vertices": q.vertices.tolist(), "faces": q.faces.tolist(), "inner": q.inner.tolist()}
                    for q in f.pieces
                ]}
                for f in fragments
            ],
        }
        return seal(json.dumps(body, separators=(",", ":")).encode() + b"\n", key, f"pieces={len(fragments)}")

    def parse(data: bytes) -> list[Fragment]:
        body, _ = unseal(data, key)
        try:
            doc = json.loads(body)
            if doc.get("format") != CACHE_FORMAT:
                raise DamagedEntry(f"format {doc.get('format')!r}, expected {CACHE_FORMAT}")
            fragments = [
                Fragment(site=np.asarray(f["site"], dtype=np.float64), pieces=tuple(
                    _mesh_piece(np.asarray(q["vertices"], dtype=np.float64), np.asarray(q["faces"], dtype=np.int64),
                                np.asarray(q["inner"], dtype=bool))
                    for q in f["pieces"]
                ))
                for f in doc["fragments"]
            ]
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise DamagedEntry(f"unreadable fracture entry: {err}") from None
        if len(fragments) != pattern.pieces:
            raise DamagedEntry(f"{len(fragments)} fragments, the pattern asks for {pattern.pieces}")
        return fragments

    def check(data: bytes) -> None:
        parse(data)

    path = cached_file(cache_root() / "fractures" / f"{key}.json", build, check)
    return fresh[0] if fresh else parse(path.read_bytes())
