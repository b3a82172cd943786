"""Triangle meshes for every shape, in the object's own frame, shared by physics and rendering.

Physics and the rasteriser both take their geometry from here, so what collides is
exactly what is drawn (primitives use their analytic collision shape in pybullet,
but the same dimensions). Every mesh carries per-vertex UVs so image and
procedural textures can be applied. Shapes are registered in ``MESH_BUILDERS``:
adding a shape is one function plus one registry line.

Conventions: cylinders and capsules run along local z and are centred at the
origin; boxes are centred; a plane is z = 0; a heightfield spans ``size`` centred
on the origin in x and y with heights z from the height map.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import numpy as np
import trimesh

from hybrid.scene import spec

# Tessellation: fine enough that silhouettes and depth match the analytic shape to
# well under a pixel at typical resolutions.
SPHERE_SEGMENTS = (48, 24)  # around, from pole to pole
CYLINDER_SEGMENTS = 48


def _uv_sphere(radius: float, n_lon: int, n_lat: int, z_offsets: tuple[float, float] = (0.0, 0.0)) -> trimesh.Trimesh:
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


def sphere_mesh(shape: spec.SphereShape, seed: int = 0) -> trimesh.Trimesh:
    return _uv_sphere(shape.radius, *SPHERE_SEGMENTS)


def capsule_mesh(shape: spec.CapsuleShape, seed: int = 0) -> trimesh.Trimesh:
    half = shape.length / 2.0
    return _uv_sphere(shape.radius, SPHERE_SEGMENTS[0], SPHERE_SEGMENTS[1], (half, -half))


def box_mesh(shape: spec.BoxShape, seed: int = 0) -> trimesh.Trimesh:
    """24 vertices (4 per face) so each face has flat normals and its own 0..1 UV square."""
    hx, hy, hz = (s / 2.0 for s in shape.size)
    verts, normals, uvs, faces = [], [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = np.zeros(3)
            n[axis] = sign
            # Tangents with t1 x t2 = n, so corners run counter-clockwise seen from outside.
            t1 = np.eye(3)[(axis + 1) % 3]
            t2 = np.cross(n, t1)
            half = np.array([hx, hy, hz])
            base = len(verts)
            for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                p = n * half + (2 * du - 1) * t1 * half + (2 * dv - 1) * t2 * half
                verts.append(p)
                normals.append(n)
                uvs.append((du, dv))
            faces.append((base, base + 1, base + 2))
            faces.append((base, base + 2, base + 3))
    mesh = trimesh.Trimesh(np.array(verts), np.array(faces), vertex_normals=np.array(normals), process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.array(uvs, dtype=np.float64))
    return mesh


def cylinder_mesh(shape: spec.CylinderShape, seed: int = 0) -> trimesh.Trimesh:
    """Side with cylindrical UVs plus two caps with planar UVs; flat cap normals."""
    n = CYLINDER_SEGMENTS
    r, h = shape.radius, shape.length / 2.0
    phis = np.linspace(0, 2 * np.pi, n + 1)
    c, s = np.cos(phis), np.sin(phis)
    verts, normals, uvs, faces = [], [], [], []
    # side: two rings
    for k, z in enumerate((-h, h)):
        for j in range(n + 1):
            verts.append((r * c[j], r * s[j], z))
            normals.append((c[j], s[j], 0.0))
            uvs.append((j / n, float(k)))
    for j in range(n):
        a, b, cc, d = j, j + 1, (n + 1) + j, (n + 1) + j + 1
        faces += [(a, b, d), (a, d, cc)]
    # caps
    for z, nz in ((h, 1.0), (-h, -1.0)):
        center = len(verts)
        verts.append((0.0, 0.0, z))
        normals.append((0.0, 0.0, nz))
        uvs.append((0.5, 0.5))
        for j in range(n + 1):
            verts.append((r * c[j], r * s[j], z))
            normals.append((0.0, 0.0, nz))
            uvs.append((0.5 + 0.5 * c[j], 0.5 + 0.5 * s[j]))
        for j in range(n):
            a, b = center + 1 + j, center + 2 + j
            faces.append((center, a, b) if nz > 0 else (center, b, a))
    mesh = trimesh.Trimesh(np.array(verts), np.array(faces), vertex_normals=np.array(normals), process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.array(uvs))
    return mesh


def plane_mesh(shape: spec.PlaneShape, seed: int = 0) -> trimesh.Trimesh:
    """The drawn part of the plane z = 0: a grid (not two triangles) so lighting interpolates well."""
    sx, sy = shape.size
    n = 8
    xs = np.linspace(-sx / 2, sx / 2, n + 1)
    ys = np.linspace(-sy / 2, sy / 2, n + 1)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return _grid_mesh(gx, gy, np.zeros_like(gx), shape.texture_scale)


def _grid_mesh(gx: np.ndarray, gy: np.ndarray, gz: np.ndarray, texture_scale: float) -> trimesh.Trimesh:
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


# ---------------------------------------------------------------- terrain


def _value_noise(rng: np.random.Generator, nx: int, ny: int, frequency: float, octaves: int) -> np.ndarray:
    """Fractal value noise in [-1, 1] on an nx x ny grid (smooth, seeded)."""
    out = np.zeros((nx, ny))
    total = 0.0
    for o in range(octaves):
        cells = max(1, int(round(frequency * 2**o)))
        lattice = rng.uniform(-1, 1, size=(cells + 2, cells + 2))
        u = np.linspace(0, cells, nx)
        v = np.linspace(0, cells, ny)
        iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
        fu, fv = u - iu, v - iv
        fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)  # smoothstep
        g00 = lattice[iu[:, None], iv[None, :]]
        g10 = lattice[iu[:, None] + 1, iv[None, :]]
        g01 = lattice[iu[:, None], iv[None, :] + 1]
        g11 = lattice[iu[:, None] + 1, iv[None, :] + 1]
        a = g00 + (g10 - g00) * fu[:, None]
        b = g01 + (g11 - g01) * fu[:, None]
        amp = 0.5**o
        out += amp * (a + (b - a) * fv[None, :])
        total += amp
    return out / total


def _terrain(gen: spec.TerrainGenerator, size: tuple[float, float], res: tuple[int, int], seed: int) -> np.ndarray:
    nx, ny = res
    x = np.linspace(-size[0] / 2, size[0] / 2, nx)
    rng = np.random.default_rng(seed)
    if gen.type == "flat":
        return np.zeros((nx, ny))
    if gen.type == "valley":
        # Troughs across x: height 0 at the valley floor (x = 0), `amplitude` at the rims.
        prof = gen.amplitude * (1 - np.cos(2 * np.pi * gen.frequency * x / size[0])) / 2
        return np.repeat(prof[:, None], ny, axis=1)
    if gen.type == "hills":
        y = np.linspace(-size[1] / 2, size[1] / 2, ny)
        gx, gy = np.meshgrid(x, y, indexing="ij")
        h = np.zeros((nx, ny))
        count = max(1, int(round(gen.frequency * 4)))
        for _ in range(count):
            cx, cy = rng.uniform(-size[0] / 2, size[0] / 2), rng.uniform(-size[1] / 2, size[1] / 2)
            w = rng.uniform(0.1, 0.25) * min(size)
            h += rng.uniform(0.5, 1.0) * np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * w * w))
        return gen.amplitude * h / max(h.max(), 1e-9)
    if gen.type == "noise":
        return gen.amplitude * (_value_noise(rng, nx, ny, gen.frequency, gen.octaves) + 1) / 2
    raise ValueError(f"unknown terrain generator {gen.type!r}")


def heightfield_heights(shape: spec.HeightfieldShape, seed: int = 0) -> np.ndarray:
    """Heights in metres as an (nx, ny) array indexed [ix, iy], x and y increasing with the index.

    A file (.npy, or an 8/16-bit grayscale image whose rows run along -y as images do)
    or inline `heights` (rows along y, columns along x as written in YAML) sets the
    grid; `resolution` applies to generators only.
    """
    if shape.generator is not None:
        h = _terrain(shape.generator, shape.size, shape.resolution, seed)
    elif shape.heights is not None:
        # YAML rows are y (top row = largest y, like a map); columns are x.
        h = np.asarray(shape.heights, dtype=np.float64)[::-1].T
    else:
        path = shape.file or ""
        if path.lower().endswith(".npy"):
            h = np.load(path, allow_pickle=False).astype(np.float64)
            if h.ndim != 2:
                raise ValueError(f"{path}: a height map must be a 2D array, got shape {h.shape}")
            h = h[::-1].T
        else:
            import imageio.v3 as iio

            img = iio.imread(path)
            if img.ndim == 3:
                img = img[..., :3].mean(axis=-1)
            scale = 65535.0 if img.dtype == np.uint16 else 255.0
            h = (img.astype(np.float64) / scale)[::-1].T
    return h * shape.height_scale


def heightfield_mesh(shape: spec.HeightfieldShape, seed: int = 0) -> trimesh.Trimesh:
    h = heightfield_heights(shape, seed)
    nx, ny = h.shape
    xs = np.linspace(-shape.size[0] / 2, shape.size[0] / 2, nx)
    ys = np.linspace(-shape.size[1] / 2, shape.size[1] / 2, ny)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return _grid_mesh(gx, gy, h, shape.texture_scale)


# ---------------------------------------------------------------- mesh files


@functools.lru_cache(maxsize=64)
def _load_mesh_file(path: str, mtime: float) -> trimesh.Trimesh:
    loaded = trimesh.load(path, force="mesh", process=True)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError(f"{path}: no triangles found in this mesh file")
    return loaded


def mesh_file_mesh(shape: spec.MeshShape, seed: int = 0) -> trimesh.Trimesh:
    if not os.path.isfile(shape.file):
        raise FileNotFoundError(f"mesh file not found: {shape.file}")
    mesh = _load_mesh_file(os.path.abspath(shape.file), os.path.getmtime(shape.file)).copy()
    scale = np.broadcast_to(np.asarray(shape.scale, dtype=np.float64), (3,))
    mesh.apply_scale(1.0) if np.allclose(scale, 1) else mesh.apply_transform(np.diag([*scale, 1.0]))
    if shape.center == "centroid":
        mesh.apply_translation(-mesh.center_mass if mesh.is_watertight else -mesh.centroid)
    elif shape.center == "bounds":
        mesh.apply_translation(-mesh.bounds.mean(axis=0))
    uv = getattr(mesh.visual, "uv", None)
    if uv is None or len(uv) != len(mesh.vertices):
        # No UVs in the file: a box projection along the dominant normal axis, in metres.
        v = np.asarray(mesh.vertices)
        n = np.abs(np.asarray(mesh.vertex_normals))
        axis = n.argmax(axis=1)
        u = np.where(axis == 0, v[:, 1], v[:, 0])
        w = np.where(axis == 2, v[:, 1], v[:, 2])
        normals = np.asarray(mesh.vertex_normals).copy()
        mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=normals, process=False)
        mesh.visual = trimesh.visual.TextureVisuals(uv=np.stack([u, w], 1))
    return mesh


MeshBuilder = Callable[..., trimesh.Trimesh]

MESH_BUILDERS: dict[str, MeshBuilder] = {
    "sphere": sphere_mesh,
    "box": box_mesh,
    "cylinder": cylinder_mesh,
    "capsule": capsule_mesh,
    "plane": plane_mesh,
    "mesh": mesh_file_mesh,
    "heightfield": heightfield_mesh,
}


def build_mesh(shape: spec.Shape, seed: int = 0) -> trimesh.Trimesh:
    """The triangle mesh of a shape in its object frame, with `visual.uv` and vertex normals.

    `seed` drives procedural shapes (terrain generators) so they follow the scene seed.
    """
    return MESH_BUILDERS[shape.type](shape, seed)


def shape_volume(shape: spec.Shape) -> float:
    """Volume in m^3 used to turn density into mass (analytic for primitives)."""
    import math

    if shape.type == "sphere":
        return 4.0 / 3.0 * math.pi * shape.radius**3
    if shape.type == "box":
        return float(np.prod(shape.size))
    if shape.type == "cylinder":
        return math.pi * shape.radius**2 * shape.length
    if shape.type == "capsule":
        return math.pi * shape.radius**2 * shape.length + 4.0 / 3.0 * math.pi * shape.radius**3
    if shape.type == "mesh":
        m = build_mesh(shape)
        return float(abs(m.volume)) if m.is_watertight else float(m.convex_hull.volume)
    return 0.0  # planes and terrain are static: no mass
