"""Triangle meshes shared by physics and rendering, and the tessellation helpers shapes build them with.

Physics and the rasteriser both take their geometry from ``build_mesh``, so what
collides is exactly what is drawn (primitives use their analytic collision shape in
pybullet, but the same dimensions). Every mesh carries per-vertex UVs so image and
procedural textures can be applied. Each shape builds its own mesh (``mesh`` of its
model in ``hybrid.shapes``); the helpers here are the ones several shapes share.

Conventions: cylinders and capsules run along local z and are centred at the
origin; boxes are centred; a plane is z = 0; a heightfield spans ``size`` centred
on the origin in x and y with heights z from the height map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import trimesh

if TYPE_CHECKING:
    from hybrid.shapes import ShapeSpec

# Tessellation: fine enough that silhouettes and depth match the analytic shape to
# well under a pixel at typical resolutions.
SPHERE_SEGMENTS = (48, 24)  # around, from pole to pole
CYLINDER_SEGMENTS = 48


def uv_sphere(radius: float, n_lon: int, n_lat: int, z_offsets: tuple[float, float] = (0.0, 0.0)) -> trimesh.Trimesh:
    """A UV sphere (or capsule when z_offsets split the hemispheres) with equirectangular UVs.

    The seam column is duplicated so UVs do not wrap; poles are rows of coincident
    vertices so each has its own u.
    """
    lat_rows = n_lat + 1
    if z_offsets != (0.0, 0.0):
        # Capsule: duplicate the equator row so the straight part is a band.
        thetas = np.concatenate([np.linspace(0, np.pi / 2, n_lat // 2 + 1), np.linspace(np.pi / 2, np.pi, n_lat // 2 + 1)])
        lat_rows = len(thetas)
    else:
        thetas = np.linspace(0.0, np.pi, lat_rows)
    phis = np.linspace(0.0, 2 * np.pi, n_lon + 1)
    th, ph = np.meshgrid(thetas, phis, indexing="ij")
    x = radius * np.sin(th) * np.cos(ph)
    y = radius * np.sin(th) * np.sin(ph)
    z = radius * np.cos(th)
    if z_offsets != (0.0, 0.0):
        half = lat_rows // 2
        z[:half] += z_offsets[0]
        z[half:] += z_offsets[1]
    verts = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    u = (ph / (2 * np.pi)).reshape(-1)
    v = 1.0 - (np.arange(lat_rows)[:, None] / (lat_rows - 1) * np.ones_like(ph)).reshape(-1)
    faces = []
    cols = n_lon + 1
    for i in range(lat_rows - 1):
        for j in range(n_lon):
            a, b = i * cols + j, i * cols + j + 1
            c, d = (i + 1) * cols + j, (i + 1) * cols + j + 1
            faces.append((a, c, b))
            faces.append((b, c, d))
    faces = np.array(faces, dtype=np.int64)
    # Drop triangles that collapsed at the poles (two coincident corners).
    tri = verts[faces]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    faces = faces[area2 > 1e-12 * radius * radius]
    # Smooth normals: exact for a sphere/capsule, radial from the nearest cap centre.
    centers = np.zeros_like(verts)
    if z_offsets != (0.0, 0.0):
        centers[:, 2] = np.clip(verts[:, 2], z_offsets[1], z_offsets[0])
    normals = verts - centers
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    mesh = trimesh.Trimesh(verts, faces, vertex_normals=normals, process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.stack([u, v], axis=1))
    return mesh


def grid_mesh(gx: np.ndarray, gy: np.ndarray, gz: np.ndarray, texture_scale: float) -> trimesh.Trimesh:
    """A height grid (indexing 'ij': [ix, iy]) as triangles facing +z, UVs in metres x texture_scale."""
    nx, ny = gx.shape
    verts = np.stack([gx, gy, gz], axis=-1).reshape(-1, 3)
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
    c, d = idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    mesh = trimesh.Trimesh(verts, faces, process=False)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64).copy()  # area-weighted smooth normals
    mesh = trimesh.Trimesh(verts, faces, vertex_normals=normals, process=False)
    uv = np.stack([gx.ravel(), gy.ravel()], 1) * texture_scale
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv)
    return mesh


def build_mesh(shape: "ShapeSpec", seed: int = 0) -> trimesh.Trimesh:
    """The triangle mesh of a shape in its object frame, with `visual.uv` and vertex normals.

    `seed` drives procedural shapes (terrain generators) so they follow the scene seed.
    """
    return shape.mesh(seed)


def shape_volume(shape: "ShapeSpec") -> float:
    """Volume in m^3 used to turn density into mass (analytic for primitives; 0 for planes and terrain)."""
    return shape.volume()
