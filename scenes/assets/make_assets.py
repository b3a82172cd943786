"""Regenerate the example assets in this folder (meshes and textures), deterministically.

    python scenes/assets/make_assets.py

Meshes are OBJ in metres with their origin at the base centre; textures are sRGB PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

HERE = Path(__file__).resolve().parent


def revolve(profile: list[tuple[float, float]], sections: int = 40) -> trimesh.Trimesh:
    """A solid of revolution about z from an (r, z) outline that starts and ends on the axis."""
    mesh = trimesh.creation.revolve(np.asarray(profile, dtype=np.float64), sections=sections)
    assert mesh.is_watertight and mesh.volume > 0, "profile must be closed and counter-clockwise"
    return mesh


def cup() -> trimesh.Trimesh:
    # Outer wall up, rim, inner wall down to a 12 mm thick floor: concave, holds things.
    return revolve([(0, 0), (0.07, 0), (0.08, 0.14), (0.07, 0.14), (0.06, 0.012), (0, 0.012)])


def vase() -> trimesh.Trimesh:
    return revolve(
        [(0, 0), (0.05, 0), (0.075, 0.06), (0.06, 0.14), (0.035, 0.19), (0.045, 0.22), (0.035, 0.22), (0.025, 0.19), (0.045, 0.14), (0.06, 0.06), (0.04, 0.01), (0, 0.01)]
    )


def torus() -> trimesh.Trimesh:
    mesh = trimesh.creation.torus(major_radius=0.09, minor_radius=0.035, major_sections=40, minor_sections=20)
    mesh.apply_translation((0, 0, 0.035))
    return mesh


def rock(seed: int = 7) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(60, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    pts *= rng.uniform(0.8, 1.0, size=(60, 1)) * np.array([0.1, 0.08, 0.07])
    mesh = trimesh.convex.convex_hull(pts)
    mesh.apply_translation((0, 0, -mesh.bounds[0, 2]))
    return mesh


def checker(n: int = 256, squares: int = 8) -> np.ndarray:
    i = (np.arange(n) * squares // n)
    board = (i[:, None] + i[None, :]) % 2
    light, dark = np.array([235, 235, 225]), np.array([60, 62, 70])
    return np.where(board[..., None] == 1, light, dark).astype(np.uint8)


def wood(n: int = 256, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] / n
    wobble = 0.04 * np.sin(2 * np.pi * (3 * y + rng.uniform())) + 0.02 * np.sin(2 * np.pi * (11 * y + rng.uniform()))
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * 5 * (x + wobble))
    grain = rng.normal(0, 0.04, size=(n, 1)) * np.ones((1, n))
    t = np.clip(rings * 0.7 + grain + 0.15, 0, 1)[..., None]
    dark, light = np.array([110, 66, 34]), np.array([205, 155, 100])
    return (dark + (light - dark) * t).astype(np.uint8)


def marble(n: int = 256, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] / n
    noise = sum(
        (0.5**k) * np.sin(2 * np.pi * (2**k) * (rng.uniform() * x + rng.uniform() * y + rng.uniform())) for k in range(1, 6)
    )
    veins = np.abs(np.sin(2 * np.pi * (2 * x + 3 * y + 1.5 * noise)))
    t = (veins**0.35)[..., None]
    return (np.array([70, 72, 80]) + (np.array([240, 240, 236]) - np.array([70, 72, 80])) * t).astype(np.uint8)


def main() -> None:
    for name, mesh in {"cup": cup(), "vase": vase(), "torus": torus(), "rock": rock()}.items():
        mesh.export(HERE / f"{name}.obj")
    for name, img in {"checker": checker(), "wood": wood(), "marble": marble()}.items():
        Image.fromarray(img).save(HERE / f"{name}.png")
    print(f"wrote assets to {HERE}")


if __name__ == "__main__":
    main()
