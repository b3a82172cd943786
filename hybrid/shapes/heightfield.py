"""Terrain: a grid of heights over ``size`` metres, from a file, inline ``heights`` or a ``generator``; static only.

The grid spans ``size`` centred on the origin in x and y, heights along z. It
collides as the very triangles it is drawn with (a concave mesh; see
``hybrid.physics.shapes`` for why not ``GEOM_HEIGHTFIELD``), and the field solvers
see the vertical distance to its bilinear surface.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal, Optional

import numpy as np
from pydantic import Field, model_validator

from hybrid.shapes.base import ShapeSpec, register_shape
from hybrid.spec.types import Float, Int, NonNegative, Positive, Spec, SpecValueError

# The largest height grid per side, from any source: the generator's `resolution`
# allows as much, and a file may not ask for more (a 1024 x 1024 grid is two million
# triangles to collide with and draw).
MAX_HEIGHTFIELD_SIDE = 1024


class TerrainGenerator(Spec):
    """A procedural height map in metres, sampled on the heightfield grid.

    valley: a smooth trough along y, z = depth * (1 - cos(2 pi x / size_x)) / 2 shape.
    hills: a sum of smooth bumps placed from the scene seed.
    noise: fractal value noise from the scene seed.
    """

    type: Literal["valley", "hills", "noise", "flat"]
    amplitude: NonNegative = Field(1.0, description="height range in metres")
    frequency: Positive = Field(1.0, description="features per side (hills, noise) or troughs across x (valley)")
    octaves: Annotated[Int, Field(ge=1, le=8)] = 4


class HeightfieldShape(ShapeSpec):
    """Terrain: a grid of heights over `size` metres, from a file (.png/.npy), inline `heights`, or a `generator`."""

    type: Literal["heightfield"]
    size: tuple[Positive, Positive] = Field(description="extent along x and y in metres")
    resolution: tuple[Annotated[Int, Field(ge=2, le=1024)], Annotated[Int, Field(ge=2, le=1024)]] = (64, 64)
    file: Optional[str] = None
    heights: Optional[tuple[tuple[Float, ...], ...]] = None
    generator: Optional[TerrainGenerator] = None
    height_scale: Positive = Field(1.0, description="multiplies heights (a PNG's 0..1 values)")
    texture_scale: Positive = Field(1.0, description="texture repeats per metre")

    static_only = True
    file_fields = ("file",)
    build_hint = "use a grayscale png or a 2D .npy array of heights"

    @model_validator(mode="after")
    def _one_source(self) -> "HeightfieldShape":
        given = [k for k in ("file", "heights", "generator") if getattr(self, k) is not None]
        if len(given) != 1:
            raise SpecValueError(
                "a heightfield needs exactly one of `file`, `heights` or `generator`"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.heights is not None:
            rows = len(self.heights)
            cols = {len(r) for r in self.heights}
            if rows < 2 or len(cols) != 1 or cols.pop() < 2:
                raise SpecValueError("`heights` must be a rectangular list of rows, at least 2 x 2", at=("heights",))
        return self

    def mesh(self, seed: int = 0):
        from hybrid.geometry import grid_mesh

        h = heightfield_heights(self, seed)
        nx, ny = h.shape
        xs = np.linspace(-self.size[0] / 2, self.size[0] / 2, nx)
        ys = np.linspace(-self.size[1] / 2, self.size[1] / 2, ny)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        return grid_mesh(gx, gy, h, self.texture_scale)

    def volume(self) -> float:
        return 0.0  # static: no mass

    def collider(self, obj, seed: int = 0):
        from hybrid.fields.colliders import HEIGHTFIELD, ColliderShape

        vertices = np.asarray(self.mesh(seed).vertices, dtype=np.float64)
        xs, ys = np.unique(np.round(vertices[:, 0], 9)), np.unique(np.round(vertices[:, 1], 9))
        heights = np.full((len(ys), len(xs)), np.nan)
        ix = np.searchsorted(xs, np.round(vertices[:, 0], 9))
        iy = np.searchsorted(ys, np.round(vertices[:, 1], 9))
        heights[iy, ix] = vertices[:, 2]
        if np.isnan(heights).any() or not (np.allclose(xs[0], -xs[-1]) and np.allclose(ys[0], -ys[-1])):
            raise ValueError(f"object {obj.name!r}: its heightfield mesh is not a centred regular grid")
        return ColliderShape(HEIGHTFIELD, heights=heights, extent=(float(xs[-1] - xs[0]), float(ys[-1] - ys[0])))

    @classmethod
    def check_file(cls, field: str, path: str) -> Optional[str]:
        if path.lower().endswith(".npy"):
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                return f"cannot read the height map {path} ({err}); save it with numpy.save as a 2D float array"
            if arr.ndim != 2:
                return f"the height map {path} has shape {arr.shape}; it must be a 2D array of heights"
            return None
        from hybrid.spec.files import image_problem

        return image_problem(path)[0]

    def preflight(self, obj, scene, at, source):
        """A grid of fewer than 2 or more than ``MAX_HEIGHTFIELD_SIDE`` samples per side, or non-finite heights."""
        if self.generator is not None:
            return []  # `resolution` is bounded by the schema
        if self.heights is not None:
            grid = (len(self.heights[0]), len(self.heights))
            where = at + ("heights",)
            what = "`heights`"
        else:
            path = self.file or ""
            where = at + ("file",)
            what = f"the height map {path}"
            if not os.path.isfile(path):
                return []  # already reported as a missing file
            if path.lower().endswith(".npy"):
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
                if arr.ndim != 2:
                    return []  # already reported
                if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) or arr.dtype == bool:
                    return [source.issue(where, f"{what} holds {arr.dtype} values; save heights as a 2D float array")]
                grid = (arr.shape[1], arr.shape[0])
            else:
                from PIL import Image

                try:
                    with Image.open(path) as img:
                        grid = img.size
                except Exception:  # noqa: BLE001 - already reported by the file check
                    return []
        cols, rows = grid
        if min(cols, rows) < 2:
            return [source.issue(where, f"{what} is {cols} x {rows} samples; a heightfield needs at least 2 x 2")]
        if max(cols, rows) > MAX_HEIGHTFIELD_SIDE:
            return [
                source.issue(
                    where,
                    f"{what} is {cols} x {rows} samples, more than {MAX_HEIGHTFIELD_SIDE} per side; "
                    f"resample it to at most {MAX_HEIGHTFIELD_SIDE} x {MAX_HEIGHTFIELD_SIDE}",
                )
            ]
        if self.file is not None and self.file.lower().endswith(".npy"):
            arr = np.load(self.file, mmap_mode="r", allow_pickle=False)
            if not np.isfinite(np.asarray(arr, dtype=np.float64)).all():
                return [source.issue(where, f"{what} holds NaN or infinite heights; every height must be a finite number")]
        return []


register_shape(HeightfieldShape)


# ---------------------------------------------------------------- heights


def heightfield_heights(shape: HeightfieldShape, seed: int = 0) -> np.ndarray:
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


def _terrain(gen: TerrainGenerator, size: tuple[float, float], res: tuple[int, int], seed: int) -> np.ndarray:
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
