"""`hybrid validate` refuses every scene that `hybrid render` would refuse, with a located message.

Each case below once passed `validate` and then died in `render` (or would have)
with a Python traceback. Now `validate` answers exit 2 with a message naming the
file and the field, and no traceback. A few focused checks at the end prove that
what used to fail in pybullet (heightfields over 296 x 296, huge convex hulls) now
builds, and that no number in the scene or recipe models takes a boolean.
"""

from __future__ import annotations

import textwrap
import time
import types
import typing
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, BeforeValidator

from hybrid.cli import main


def scene_text(body: str) -> str:
    frames = "" if "frames:" in body else "frames: 2\n"
    return f"name: parity\n{frames}resolution: [32, 24]\n" + textwrap.dedent(body)


def _assets(tmp_path: Path) -> None:
    """Every asset a case refers to."""
    np.save(tmp_path / "wide.npy", np.zeros((40, 1100)))
    np.save(tmp_path / "nan.npy", np.array([[0.0, 1.0], [np.nan, 0.0]]))
    np.save(tmp_path / "row.npy", np.zeros((1, 16)))
    (tmp_path / "garbage.obj").write_bytes(b"\x00\x01 this is not a mesh \xff" * 20)
    (tmp_path / "quad.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3\nf 1 3 4\n")
    from PIL import Image

    Image.new("RGB", (64, 64), (90, 90, 90)).save(tmp_path / "big.png")


OBJ = "objects:\n  - name: thing\n"
GAS = "fields:\n  arch: cpu\n  gas:\n    domain: {min: [-1, -1, 0], max: [1, 1, 2]}\n    resolution: 8\n"

CASES = [
    # (case, scene body, phrases the message must hold besides the file name)
    ("heightfield file wider than 1024", OBJ + "    shape: {type: heightfield, size: [4, 4], file: wide.npy}\n"
     "    physics: {body: static}\n", ["objects[0].shape.file", "1100 x 40", "1024"]),
    ("heightfield file with NaN", OBJ + "    shape: {type: heightfield, size: [4, 4], file: nan.npy}\n"
     "    physics: {body: static}\n", ["objects[0].shape.file", "NaN"]),
    ("heightfield file of one row", OBJ + "    shape: {type: heightfield, size: [4, 4], file: row.npy}\n"
     "    physics: {body: static}\n", ["objects[0].shape.file", "at least 2 x 2"]),
    ("unreadable mesh file", OBJ + "    shape: {type: mesh, file: garbage.obj}\n    physics: {body: static}\n",
     ["objects[0].shape.file", "cannot read the mesh"]),
    ("flat mesh as a dynamic body", OBJ + "    shape: {type: mesh, file: quad.obj}\n    physics: {mass: 1}\n",
     ["objects[0].shape.file", "solid", "body: static"]),
    ("flat mesh as a boundary of the fields", OBJ + "    shape: {type: mesh, file: quad.obj}\n"
     "    physics: {body: static}\n" + GAS, ["objects[0].shape.file", "flat"]),
    ("static camera on its target", "camera: {position: [1, 2, 3], look_at: [1, 2, 3]}\n",
     ["camera.look_at", "looks nowhere"]),
    ("path keyframe on its target", "camera:\n  motion: path\n  keyframes:\n"
     "    - {t: 0, position: [3, 0, 1], look_at: [0, 0, 0]}\n    - {t: 1, position: [0, 0, 1], look_at: [0, 0, 1]}\n",
     ["camera.keyframes[1].look_at"]),
    ("path through its target between keyframes", "fps: 24\nframes: 20\ncamera:\n  motion: path\n  keyframes:\n"
     "    - {t: 0, position: [0, 0, 1], look_at: [2, 0, 1]}\n    - {t: 1, position: [2, 0, 1], look_at: [0, 0, 1]}\n",
     ["camera.keyframes", "frame 12"]),
    ("orbit around its own position", "camera: {motion: orbit, position: [0, 0, 1], look_at: [0, 0, 1]}\n",
     ["camera.position", "radius 0"]),
    ("spot light on its target", "lights:\n  - {type: spot, position: [1, 1, 3], look_at: [1, 1, 3]}\n",
     ["lights[0].look_at"]),
    ("directional light without direction", "lights:\n  - {type: directional, direction: [0, 0, 0]}\n",
     ["lights[0].direction", "non-zero"]),
    ("closed gas domain with an inflow", "fields:\n  arch: cpu\n  gas:\n    domain: {min: [0, 0, 0], max: [1, 1, 1]}\n"
     "    resolution: 8\n    boundaries: {x_min: {type: inflow, velocity: [1, 0, 0]}, z_max: wall}\n",
     ["fields.gas.boundaries.x_min", "open"]),
    ("true for a length", OBJ + "    shape: {type: sphere, radius: true}\n",
     ["objects[0].shape.radius", "got true"]),
    ("true in a position", OBJ + "    shape: {type: sphere, radius: 0.5}\n    position: [true, 0, 0]\n",
     ["objects[0].position[0]", "got true"]),
    ("false for a frame count", "frames: false\n", ["frames", "got false"]),
    ("true in a colour", OBJ + "    shape: {type: sphere, radius: 0.5}\n    look: {color: [true, 0, 0]}\n",
     ["objects[0].look.color"]),
    ("true in a gas setting", "fields:\n  gas:\n    domain: {min: [0, 0, 0], max: [1, 1, 1]}\n    resolution: true\n",
     ["fields.gas.resolution", "got true"]),
    ("flow lists nested thousands deep", "objects: " + "[" * 3000 + "]" * 3000 + "\n", ["nest"]),
    ("a ball inside a crate", "objects:\n"
     "  - {name: crate, shape: {type: box, size: [0.6, 0.6, 0.6]}, position: [0, 0, 0.3]}\n"
     "  - {name: ball, shape: {type: sphere, radius: 0.1}, position: [0.1, 0, 0.3]}\n",
     ["objects[1].position", "'crate' and 'ball' overlap", "resolve_overlaps"]),
    ("block mappings nested a hundred deep", "objects:\n" + "".join("  " * (k + 1) + f"k{k}:\n" for k in range(100))
     + "  " * 101 + "v: 1\n", ["nested more than 64"]),
]


@pytest.mark.parametrize("case,body,phrases", CASES, ids=[c[0] for c in CASES])
def test_validate_refuses_what_render_would(tmp_path, capsys, case, body, phrases):
    _assets(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(scene_text(body))
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 2, text
    assert "Traceback" not in text, text
    assert str(path) in out.err, text
    for phrase in phrases:
        assert phrase in out.err, f"{phrase!r} not in:\n{text}"


def test_oversized_texture_is_refused_as_a_decompression_bomb(tmp_path, capsys, monkeypatch):
    """PIL refuses images over its pixel limit (DecompressionBombError, or a warning below twice it)."""
    from PIL import Image

    _assets(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (40, 64):  # 1600 pixels: PIL's warning (over the limit); 4096: its error (over twice the limit)
        Image.new("RGB", (side, side)).save(tmp_path / "big.png")
        path = tmp_path / "bomb.yaml"
        path.write_text(scene_text(OBJ + "    shape: {type: sphere, radius: 0.5}\n    look: {texture: big.png}\n"))
        code = main(["validate", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert str(path) in err and "objects[0].look.texture" in err and "too large" in err, err


def test_texture_wider_than_opengl_takes_is_refused(tmp_path, capsys):
    """17000 pixels wide: pyrender failed with a GLError uploading it."""
    from PIL import Image

    Image.new("L", (17000, 2)).save(tmp_path / "strip.png")
    path = tmp_path / "strip.yaml"
    path.write_text(scene_text(OBJ + "    shape: {type: sphere, radius: 0.5}\n    look: {texture: strip.png}\n"))
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "objects[0].look.texture" in err and "16384" in err, err


def test_huge_liquid_is_refused_before_anything_is_allocated(tmp_path, capsys):
    """512^3 cells filled: refused by the estimate alone (it took 70 s and 7.6 GB to count them before)."""
    path = tmp_path / "flood.yaml"
    path.write_text(scene_text(
        "fields:\n  arch: cpu\n  liquid:\n    domain: {min: [0, 0, 0], max: [1, 1, 1]}\n    resolution: 512\n"
        "    max_particles: 2000000000\n    fill:\n      - {min: [0, 0, 0], max: [1, 1, 1]}\n"
    ))
    start = time.perf_counter()
    code = main(["validate", str(path)])
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "fields.liquid.resolution" in err and "GiB" in err, err
    assert took < 10, f"the refusal took {took:.1f} s"


def test_a_frame_count_too_big_for_memory_names_frames(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYBRID_MAX_MEMORY_GB", "1")
    path = tmp_path / "long.yaml"
    path.write_text("name: long\nresolution: [320, 240]\nframes: 100000\n")
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{path}:3:9: frames:" in err, err


def test_the_fill_count_matches_the_solver_seeding():
    from hybrid.fields.memory import particle_count
    from hybrid.fields.seeding import count_particles
    from hybrid.scene.fields_spec import LiquidSpec

    spec = LiquidSpec(
        domain={"min": [-1, 0, 0], "max": [1, 1, 2]},
        resolution=40,
        fill=[
            {"shape": "sphere", "center": [0.9, 0.5, 1.9], "radius": 0.4},
            {"shape": "sphere", "center": [0, 0.5, 1], "radius": 0.25},
            {"min": [-3, -3, -3], "max": [-0.2, 3, 0.3]},
        ],
    )
    assert particle_count(spec) == count_particles(spec) > 0


# ---------------------------------------------------------------- what used to fail in pybullet


def test_heightfield_over_pybullets_command_limit_builds(tmp_path, monkeypatch):
    """297 x 297 and more used to end in pybullet's bare SystemError; they now go through a file."""
    from hybrid.physics.bodies import create_body
    from hybrid.physics.pybullet_quiet import pybullet as p
    from hybrid.scene.spec import ObjectSpec

    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    obj = ObjectSpec.model_validate(
        {"name": "ground", "physics": {"body": "static"},
         "shape": {"type": "heightfield", "size": [10, 10], "resolution": [300, 300], "generator": {"type": "flat"}}}
    )
    client = p.connect(p.DIRECT)
    try:
        body = create_body(client, obj, 0, seed=0, step_dt=1 / 240)
        lo, hi = p.getAABB(body.body_id, physicsClientId=client)
        assert np.allclose(lo[:2], (-5, -5), atol=1e-4) and np.allclose(hi[:2], (5, 5), atol=1e-4)
    finally:
        p.disconnect(physicsClientId=client)


def test_a_hull_over_pybullets_vertex_limit_is_reduced_to_extreme_points():
    from hybrid.physics.pybullet_quiet import pybullet as p
    from hybrid.physics.shapes import HULL_DIRECTIONS, MAX_COMMAND_VERTICES, hull_points

    rng = np.random.default_rng(0)
    points = rng.normal(size=(MAX_COMMAND_VERTICES + 5000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)  # all on the unit sphere: all hull vertices
    kept = hull_points(types.SimpleNamespace(vertices=points))
    assert 0.9 * HULL_DIRECTIONS < len(kept) <= HULL_DIRECTIONS
    assert np.allclose(np.linalg.norm(kept, axis=1), 1.0)  # real hull vertices, inscribed hull
    client = p.connect(p.DIRECT)
    try:
        assert p.createCollisionShape(p.GEOM_MESH, vertices=kept.tolist(), physicsClientId=client) >= 0
    finally:
        p.disconnect(physicsClientId=client)


# ---------------------------------------------------------------- no number takes a boolean


def _unguarded_numbers(root: type[BaseModel], modules: tuple[str, ...]) -> list[str]:
    """'Model.field' for every float or int in the models under `root` defined in `modules`
    that is not spec.Float / spec.Int."""
    from hybrid.spec.types import _not_bool

    found: list[str] = []
    seen: set[type] = set()
    todo = [root]

    def walk(ann, where: str, guarded: bool) -> None:
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if origin is typing.Annotated:
            guard = any(isinstance(m, BeforeValidator) and m.func is _not_bool for m in ann.__metadata__)
            walk(args[0], where, guarded or guard)
            return
        if ann in (float, int):
            if not guarded:
                found.append(where)
            return
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if ann not in seen:
                seen.add(ann)
                todo.append(ann)
            return
        for arg in args:
            if arg is not Ellipsis:
                walk(arg, where, False)

    while todo:
        model = todo.pop()
        if not model.__module__.startswith(modules):
            continue
        for name, info in model.model_fields.items():
            ann = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            walk(ann, f"{model.__name__}.{name}", False)
    return found


def test_no_number_in_a_scene_or_recipe_takes_a_boolean():
    from hybrid.data.recipe import Recipe
    from hybrid.scene.spec import Scene

    assert _unguarded_numbers(Scene, ("hybrid.scene", "hybrid.spec", "hybrid.shapes", "hybrid.render.post")) == []
    assert _unguarded_numbers(Recipe, ("hybrid.scene", "hybrid.spec", "hybrid.shapes", "hybrid.data", "hybrid.render.post")) == []


@pytest.mark.parametrize("resolution", [8, 13, 32])
def test_memory_estimate_counts_the_cells_the_seeding_fills(resolution):
    """The load-time count (no grid allocated) and the solver's seeding agree cell for cell:
    boxes and spheres, overlapping, cut by the domain, at coarse and fine grids."""
    from hybrid.fields.memory import fill_cell_count
    from hybrid.fields.seeding import fill_cells
    from hybrid.scene.fields_spec import LiquidSpec

    fills = [
        [{"min": [0.1, 0.1, 0.0], "max": [0.6, 0.9, 0.4]}],
        [{"shape": "sphere", "center": [0.5, 0.5, 0.5], "radius": 0.3}],
        [{"min": [0.0, 0.0, 0.0], "max": [0.5, 1.0, 0.3]},
         {"shape": "sphere", "center": [0.4, 0.5, 0.3], "radius": 0.25},
         {"min": [0.7, -0.5, 0.6], "max": [1.5, 0.4, 1.5]}],  # partly outside the domain
    ]
    for fill in fills:
        spec = LiquidSpec.model_validate(
            {"domain": {"min": [0, 0, 0], "max": [1, 1, 1]}, "resolution": resolution, "fill": fill}
        )
        assert fill_cell_count(spec) == len(fill_cells(spec)[0]), fill
