"""Fragments as drawable surfaces: the parent's skin on their outer faces, the inner look on their broken faces.

A fragment (``hybrid.physics.fracture.Fragment``) is a set of convex pieces in its
parent's object frame, each face marked inner (on a cut) or outer (on the object's
surface). Drawn, an outer face must look exactly like the part of the parent it
was: each is matched to the parent triangle it lies in (the same plane and facing,
its centre inside the triangle or nearest to it), and its corners take that
triangle's texture coordinates and vertex normals by barycentric interpolation,
which is exact for a flat triangle (an affine map). A face of a concave object cut
from its convex decomposition lies on the decomposition's hull rather than on a
drawn triangle; it takes the nearest triangle's, the best available.

Broken faces get flat normals and texture coordinates from a projection on their
plane (metres), so a textured inner look shows its texture at a fixed scale.

Both renderers use ``fragment_surfaces``: the rasteriser (``scene_build``) and
Cycles (``hybrid.render.cycles.build``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class SurfaceMesh:
    """Unshared triangles: vertices (3F, 3), normals (3F, 3), uv (3F, 2), faces (F, 3) = arange."""

    vertices: np.ndarray
    normals: np.ndarray
    uv: np.ndarray
    faces: np.ndarray


@dataclass(frozen=True)
class FragmentSurfaces:
    """One fragment drawn: ``outer`` with the parent's look, ``inner`` with the inner look (either may be None)."""

    outer: Optional[SurfaceMesh]
    inner: Optional[SurfaceMesh]


def _barycentric(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(..., 3) barycentric coordinates of points projected on the planes of triangles (a, b, c)."""
    v0, v1, v2 = b - a, c - a, points - a
    d00 = (v0 * v0).sum(-1)
    d01 = (v0 * v1).sum(-1)
    d11 = (v1 * v1).sum(-1)
    d20 = (v2 * v0).sum(-1)
    d21 = (v2 * v1).sum(-1)
    denom = d00 * d11 - d01 * d01
    denom = np.where(np.abs(denom) > 0, denom, 1.0)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    return np.stack([1.0 - v - w, v, w], axis=-1)


def _face_normals(tri: np.ndarray) -> np.ndarray:
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.where(length > 0, length, 1.0)


def _outer(tri: np.ndarray, parent) -> SurfaceMesh:
    """Outer faces (F, 3, 3) with the parent's uv and normals (see the module docstring)."""
    P = np.asarray(parent.vertices, dtype=np.float64)[np.asarray(parent.faces)]  # (T, 3, 3)
    uv_all = np.asarray(getattr(parent.visual, "uv", None) if getattr(parent.visual, "uv", None) is not None
                        else np.zeros((len(parent.vertices), 2)), dtype=np.float64)
    uv_t = uv_all[np.asarray(parent.faces)]  # (T, 3, 2)
    vn_t = np.asarray(parent.vertex_normals, dtype=np.float64)[np.asarray(parent.faces)]  # (T, 3, 3)
    n_t = _face_normals(P)
    size_t = np.linalg.norm(P[:, 1] - P[:, 0], axis=1) + np.linalg.norm(P[:, 2] - P[:, 0], axis=1)
    n_f = _face_normals(tri)
    centre = tri.mean(axis=1)  # (F, 3)
    chosen = np.empty(len(tri), dtype=np.int64)
    for start in range(0, len(tri), 256):  # (faces x triangles) blocks
        c = centre[start : start + 256, None, :]
        dist = np.abs(((c - P[None, :, 0]) * n_t[None]).sum(-1))
        bary = _barycentric(c, P[None, :, 0], P[None, :, 1], P[None, :, 2])
        outside = np.maximum(0.0, -bary.min(axis=-1)) * size_t[None]
        facing = (n_f[start : start + 256, None, :] * n_t[None]).sum(-1)
        score = dist + outside + np.where(facing > 0.5, 0.0, np.inf)
        chosen[start : start + 256] = np.argmin(score, axis=1)
    Pc = P[chosen]
    bary = _barycentric(tri, Pc[:, None, 0], Pc[:, None, 1], Pc[:, None, 2])  # (F, 3 corners, 3)
    uv = np.einsum("fkj,fjd->fkd", bary, uv_t[chosen])
    normals = np.einsum("fkj,fjd->fkd", bary, vn_t[chosen])
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = np.where(length > 1e-12, normals / np.where(length > 0, length, 1.0), n_f[:, None, :])
    return _pack(tri, normals, uv)


def _inner(tri: np.ndarray) -> SurfaceMesh:
    """Broken faces (F, 3, 3): flat normals, uv from a projection on the dominant plane (metres)."""
    n = _face_normals(tri)
    axis = np.abs(n).argmax(axis=1)
    u_axis = np.where(axis == 0, 1, 0)
    v_axis = np.where(axis == 2, 1, 2)
    rows = np.arange(len(tri))[:, None]
    uv = np.stack([tri[rows, np.arange(3)[None, :], u_axis[:, None]], tri[rows, np.arange(3)[None, :], v_axis[:, None]]], -1)
    return _pack(tri, np.repeat(n[:, None, :], 3, axis=1), uv)


def _pack(tri: np.ndarray, normals: np.ndarray, uv: np.ndarray) -> SurfaceMesh:
    f = len(tri)
    return SurfaceMesh(
        vertices=tri.reshape(3 * f, 3),
        normals=normals.reshape(3 * f, 3),
        uv=uv.reshape(3 * f, 2),
        faces=np.arange(3 * f, dtype=np.int64).reshape(f, 3),
    )


def fragment_surfaces(fragment, parent_mesh) -> FragmentSurfaces:
    """The drawable surfaces of `fragment` (its parent's object frame), `parent_mesh` the parent's
    drawn mesh (``geometry.build_mesh``: vertices, faces, ``visual.uv``, vertex normals)."""
    outer, inner = [], []
    for piece in fragment.pieces:
        tri = np.asarray(piece.vertices, dtype=np.float64)[np.asarray(piece.faces)]
        outer.append(tri[~piece.inner])
        inner.append(tri[piece.inner])
    outer_tri, inner_tri = np.concatenate(outer), np.concatenate(inner)
    return FragmentSurfaces(
        outer=_outer(outer_tri, parent_mesh) if len(outer_tri) else None,
        inner=_inner(inner_tri) if len(inner_tri) else None,
    )
