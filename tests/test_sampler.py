"""Sampling scenes from recipes: deterministic in (recipe, seed, index) alone, inside
the recipe's ranges, free of initial overlaps, in view, and renderable.

Geometric checks use the triangle meshes the physics and renderer build
(hybrid.geometry.build_mesh) rather than the sampler's own bounding formulas, so a
wrong formula in the sampler shows up here.
"""

from __future__ import annotations

import colorsys
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hybrid.camera import camera_track
from hybrid.data.recipe import MATERIAL_PRESETS, Recipe, load_recipe, load_recipe_text
from hybrid.data.sampler import PlacementError, sample_scene
from hybrid.geometry import build_mesh
from hybrid.scene.spec import Scene
from hybrid.transforms import quat_to_matrix

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
RECIPES = ["movi_a", "textured_motion"]

CLEVR_COLOURS = {"#2a4bd7", "#814a19", "#29d0d0", "#575757", "#1d6914", "#8126c0", "#ad2323", "#ffee05"}


@pytest.fixture(scope="module")
def recipes() -> dict[str, Recipe]:
    return {name: load_recipe(DATASETS / f"{name}.yaml") for name in RECIPES}


@pytest.fixture(scope="module")
def movi_samples(recipes) -> list[Scene]:
    return [sample_scene(recipes["movi_a"], 11, i) for i in range(200)]


@pytest.fixture(scope="module")
def textured_samples(recipes) -> list[Scene]:
    return [sample_scene(recipes["textured_motion"], 11, i) for i in range(200)]


def dynamic(scene: Scene):
    return [o for o in scene.objects if o.name != "floor"]


def hexcolour(rgb) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


_MESHES: dict = {}


def world_vertices(obj) -> np.ndarray:
    """(N, 3) vertices of an object's mesh at its initial pose, world metres."""
    key = obj.shape.model_dump_json()
    if key not in _MESHES:
        _MESHES[key] = np.asarray(build_mesh(obj.shape).vertices, dtype=np.float64)
    rot = quat_to_matrix(obj.quaternion or (0.0, 0.0, 0.0, 1.0))
    return _MESHES[key] @ rot.T + np.asarray(obj.position)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", RECIPES)
def test_same_inputs_give_the_same_scene_whatever_was_sampled_before(recipes, name):
    recipe = recipes[name]
    first = sample_scene(recipe, 3, 5).model_dump()
    for i in (9, 0, 5, 2):
        sample_scene(recipe, 3, i)
    np.random.seed(1234)  # global numpy state must not matter
    np.random.random(17)
    assert sample_scene(recipe, 3, 5).model_dump() == first
    # A recipe rebuilt from its own dump samples the same scenes.
    assert sample_scene(Recipe.model_validate(recipe.model_dump()), 3, 5).model_dump() == first


def test_a_fresh_process_samples_the_same_scene(recipes):
    code = (
        "import json, sys\n"
        "from hybrid.data.recipe import load_recipe\n"
        "from hybrid.data.sampler import sample_scene\n"
        "r = load_recipe(sys.argv[1])\n"
        "print(json.dumps(sample_scene(r, 3, 5).model_dump(mode='json'), sort_keys=True))\n"
    )
    here = {
        name: json.dumps(sample_scene(recipes[name], 3, 5).model_dump(mode="json"), sort_keys=True) for name in RECIPES
    }
    for name in RECIPES:
        out = subprocess.run(
            [sys.executable, "-c", code, str(DATASETS / f"{name}.yaml")],
            capture_output=True, text=True, check=True, cwd=REPO, env=dict(os.environ),
        )
        assert out.stdout.strip() == here[name], f"{name}: index 5 differs in a fresh process"


def test_different_indices_and_seeds_differ(recipes):
    recipe = recipes["movi_a"]
    dumps = [sample_scene(recipe, 0, i).model_dump() for i in range(10)]
    assert all(dumps[i] != dumps[j] for i in range(10) for j in range(i + 1, 10))
    assert sample_scene(recipe, 1, 0).model_dump() != dumps[0]
    positions = {tuple(o.position) for d in range(10) for o in dynamic(sample_scene(recipe, 0, d))}
    assert len(positions) == sum(len(dynamic(sample_scene(recipe, 0, d))) for d in range(10))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_seed_and_index_must_be_whole_and_non_negative(recipes, bad):
    with pytest.raises(ValueError, match="whole number >= 0"):
        sample_scene(recipes["movi_a"], bad, 0)
    with pytest.raises(ValueError, match="whole number >= 0"):
        sample_scene(recipes["movi_a"], 0, bad)


# ---------------------------------------------------------------- the recipe's ranges


def test_movi_a_samples_stay_in_the_recipe_ranges(movi_samples):
    counts = [len(dynamic(s)) for s in movi_samples]
    assert min(counts) == 3 and max(counts) == 10 and set(counts) == set(range(3, 11))
    shapes, sizes, colours, materials = set(), set(), set(), set()
    for scene in movi_samples:
        assert scene.frame_count == 24 and scene.fps == 12 and scene.resolution == (256, 256)
        assert scene.objects[0].name == "floor" and scene.objects[0].physics.restitution == 0.5
        names = [o.name for o in dynamic(scene)]
        assert names == [f"obj_{i:02d}" for i in range(len(names))]
        for obj in dynamic(scene):
            kind = obj.shape.type
            shapes.add(kind)
            if kind == "sphere":
                size = 2 * obj.shape.radius
            elif kind == "box":
                assert len(set(obj.shape.size)) == 1, "CLEVR boxes are cubes"
                size = obj.shape.size[0]
            else:
                assert kind == "cylinder" and obj.shape.length == pytest.approx(2 * obj.shape.radius)
                size = obj.shape.length
            sizes.add(round(size, 9))
            colours.add(hexcolour(obj.look.color))
            p, look = obj.physics, obj.look
            preset = "metal" if look.metallic == 1.0 else "rubber"
            materials.add(preset)
            m = MATERIAL_PRESETS[preset]
            assert (look.roughness, p.friction, p.restitution, p.density) == (
                m["roughness"], m["friction"], m["restitution"], m["density"],
            )
            # Kubric's toss: U(-4, 4) per horizontal axis, minus the position.
            v = np.asarray(p.linear_velocity)
            toss = v[:2] + np.asarray(obj.position[:2])
            assert np.all(np.abs(toss) <= 4 + 1e-9) and v[2] == 0
            x, y, z = obj.position
            assert -5 <= x <= 5 and -5 <= y <= 5 and 1 <= z <= 5
    assert shapes == {"sphere", "box", "cylinder"}
    assert sizes == {0.7, 1.4}
    assert colours == CLEVR_COLOURS
    assert materials == {"metal", "rubber"}


def test_textured_motion_samples_stay_in_the_recipe_ranges(textured_samples):
    counts = [len(dynamic(s)) for s in textured_samples]
    assert min(counts) == 4 and max(counts) == 8
    kinds, motions, textured, meshes = set(), set(), 0, set()
    for scene in textured_samples:
        motions.add(scene.camera.motion)
        h, s, v = colorsys.rgb_to_hsv(*scene.background)
        assert 0.52 - 1e-9 <= h <= 0.66 + 1e-9 and 0.1 - 1e-9 <= s <= 0.5 + 1e-9 and 0.6 - 1e-9 <= v <= 1 + 1e-9
        assert 2.6 - 1e-9 <= np.linalg.norm(np.subtract(scene.camera.position, scene.camera.look_at)) <= 3.6 + 1e-9
        for obj in dynamic(scene):
            kinds.add(obj.shape.type)
            if obj.look.texture:
                textured += 1
                assert os.path.isabs(obj.look.texture) and os.path.isfile(obj.look.texture)
                assert obj.look.color == (1.0, 1.0, 1.0)
            if obj.shape.type == "mesh":
                assert os.path.isabs(obj.shape.file) and os.path.isfile(obj.shape.file)
                meshes.add(Path(obj.shape.file).name)
                extent = np.ptp(world_vertices(obj) @ quat_to_matrix(obj.quaternion), axis=0).max()
                limits = {"cup.obj": (0.2, 0.28), "vase.obj": (0.25, 0.32), "torus.obj": (0.22, 0.3), "rock.obj": (0.15, 0.3)}
                lo, hi = limits[Path(obj.shape.file).name]
                assert lo - 1e-6 <= extent <= hi + 1e-6
            elif obj.shape.type == "sphere":
                assert 0.15 - 1e-9 <= 2 * obj.shape.radius <= 0.35 + 1e-9
            elif obj.shape.type == "box":
                assert all(0.15 * 0.7 - 1e-9 <= e <= 0.35 * 1.4 + 1e-9 for e in obj.shape.size)
    assert kinds == {"sphere", "box", "cylinder", "capsule", "mesh"}
    assert meshes == {"cup.obj", "vase.obj", "torus.obj", "rock.obj"}
    assert motions == {"static", "orbit", "path"}
    total = sum(counts)
    assert 0.35 < textured / total < 0.65, "textures.probability is 0.5"


# ---------------------------------------------------------------- soft shadows

SOFT = """
name: soft
lights:
  key: {angular_diameter_deg: {uniform: [1.5, 4]}, shadow_samples: 6}
  extra:
    - {type: directional, shadows: true, angular_diameter_deg: {choice: [0, 2.5]}, shadow_samples: 3}
objects: {count: 2, shapes: [sphere], size: 0.2}
"""


def _directional(scene: Scene):
    return [light for light in scene.lights if light.type == "directional"]


def test_soft_lights_carry_their_sampled_angular_diameter():
    recipe = load_recipe_text(SOFT, "soft.yaml")
    keys, extras = [], []
    for i in range(60):
        scene = sample_scene(recipe, 4, i)
        key, extra = _directional(scene)
        assert key.shadows and 1.5 <= key.angular_diameter_deg <= 4 and key.shadow_samples == 6
        assert extra.shadows and extra.angular_diameter_deg in (0.0, 2.5) and extra.shadow_samples == 3
        keys.append(key.angular_diameter_deg)
        extras.append(extra.angular_diameter_deg)
    assert len(set(keys)) == 60, "a continuous range gives each clip its own size"
    assert set(extras) == {0.0, 2.5}
    # Clip i's lights depend on (recipe, seed, i) alone: not on what was sampled
    # before, nor on whether the recipe came from YAML or from its own dump.
    again = Recipe.model_validate(recipe.model_dump())
    for i in (31, 5, 59):
        assert _directional(sample_scene(again, 4, i)) == _directional(sample_scene(recipe, 4, i))
        assert _directional(sample_scene(recipe, 4, i))[0].angular_diameter_deg == keys[i]
    assert _directional(sample_scene(recipe, 5, 0))[0].angular_diameter_deg != keys[0]


def test_soft_shadows_change_nothing_but_the_lights_size():
    """The size is drawn after everything else of its light, so turning it on keeps every other draw."""
    soft = load_recipe_text(SOFT, "soft.yaml")
    hard = load_recipe_text(
        SOFT.replace("angular_diameter_deg: {uniform: [1.5, 4]}, ", "").replace("angular_diameter_deg: {choice: [0, 2.5]}, ", ""),
        "hard.yaml",
    )
    for i in range(10):
        a, b = sample_scene(soft, 0, i).model_dump(), sample_scene(hard, 0, i).model_dump()
        for light in a["lights"] + b["lights"]:
            light.pop("angular_diameter_deg", None)
            light.pop("shadow_samples", None)
        assert a == b


def test_shipped_recipes_keep_hard_shadows(movi_samples, textured_samples):
    # Kubric's MOVi-A has hard shadows; textured_motion leaves soft ones off for their cost (see its comments).
    for scene in movi_samples + textured_samples:
        assert all(light.angular_diameter_deg == 0 for light in _directional(scene))


SKY_AND_GLASS = """
name: sky_and_glass
environment:
  probability: 0.5
  zenith: {hsv: [{uniform: [0.55, 0.65]}, 0.6, 0.9]}
  strength: {uniform: [0.5, 1.5]}
objects:
  count: 4
  shapes: [sphere]
  size: 0.2
  materials: [rubber, glass, {preset: glass, transmission: {uniform: [0.5, 0.9]}, ior: 1.33}]
"""


def test_skies_and_glass_are_drawn_without_moving_other_draws():
    """About half the clips get a sky whose strength lies in its range; glass looks are clear with their ior;
    a recipe without them draws every other value as before (the new draws come last or in their own stream)."""
    recipe = load_recipe_text(SKY_AND_GLASS, "sky_and_glass.yaml")
    scenes = [sample_scene(recipe, 2, i) for i in range(80)]
    skies = [s.environment for s in scenes if s.environment is not None]
    assert 20 <= len(skies) <= 60  # Binomial(80, 0.5): 40 +- 20 is over 4 standard deviations
    assert all(0.5 <= sky.strength <= 1.5 and sky.type == "sky" for sky in skies)
    looks = [o.look for s in scenes for o in dynamic(s)]
    clear = [lk for lk in looks if lk.transmission == 1.0]
    partial = [lk for lk in looks if 0.5 <= lk.transmission <= 0.9]
    assert clear and partial and all(lk.ior == 1.5 and lk.roughness == 0.02 for lk in clear)
    assert all(lk.ior == 1.33 for lk in partial)
    assert len(clear) + len(partial) + sum(lk.transmission == 0 for lk in looks) == len(looks)
    plain = load_recipe_text(SKY_AND_GLASS.replace("glass, {preset: glass, transmission: {uniform: [0.5, 0.9]}, ior: 1.33}", "plastic, metal"), "plain.yaml")
    without_sky = load_recipe_text(SKY_AND_GLASS.split("environment:")[0] + "objects:" + SKY_AND_GLASS.split("objects:")[1], "nosky.yaml")
    for i in range(5):
        a, b = sample_scene(recipe, 2, i).model_dump(), sample_scene(without_sky, 2, i).model_dump()
        a.pop("environment", None), b.pop("environment", None)
        assert a == b
        # Same number of options, so the picks agree; only the picked material's values differ.
        for x, y in zip(dynamic(sample_scene(recipe, 2, i)), dynamic(sample_scene(plain, 2, i))):
            assert x.position == y.position and x.look.color == y.look.color


# ---------------------------------------------------------------- placement


@pytest.mark.parametrize("fixture", ["movi_samples", "textured_samples"])
def test_no_initial_overlap_nothing_below_the_floor_and_all_in_view(request, fixture):
    samples = request.getfixturevalue(fixture)
    for scene in samples[:120]:
        track = camera_track(scene)
        world_to_cam = np.linalg.inv(track.cam_to_world[0])
        spheres = []
        for obj in dynamic(scene):
            verts = world_vertices(obj)
            centre = np.asarray(obj.position)
            spheres.append((centre, np.linalg.norm(verts - centre, axis=1).max()))
            assert verts[:, 2].min() >= -1e-9, f"{scene.name}/{obj.name} starts below the floor"
            cam = verts @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
            assert cam[:, 2].min() > scene.camera.near
            uv = cam @ track.K.T
            u, v = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2]
            assert u.min() >= 0 and u.max() <= scene.width and v.min() >= 0 and v.max() <= scene.height, (
                f"{scene.name}/{obj.name} is not wholly in the first frame"
            )
        for i in range(len(spheres)):
            for j in range(i + 1, len(spheres)):
                (ci, ri), (cj, rj) = spheres[i], spheres[j]
                assert np.linalg.norm(ci - cj) >= ri + rj - 1e-9, f"{scene.name}: objects {i} and {j} overlap"


def test_on_floor_placement_rests_objects_on_the_floor():
    recipe = load_recipe_text(
        textwrap.dedent(
            """
            name: rest
            objects:
              count: 6
              shapes: [box, cylinder, capsule, sphere]
              size: {uniform: [0.1, 0.3]}
              placement: {region: {min: [-1, -1, 0], max: [1, 1, 0]}, rotation: free, on_floor: true, in_view: false}
            """
        ),
        "inline.yaml",
    )
    for i in range(20):
        for obj in dynamic(sample_scene(recipe, 0, i)):
            assert world_vertices(obj)[:, 2].min() == pytest.approx(1e-3, abs=2e-3)


def test_an_impossible_placement_says_what_to_change():
    recipe = load_recipe_text(
        "name: crowded\nobjects: {count: 3, shapes: [sphere], size: 0.5, placement: {region: {min: [0, 0, 1], max: [0.1, 0.1, 1]}, in_view: false}}\n",
        "inline.yaml",
    )
    with pytest.raises(PlacementError, match="could not place obj_01 .* enlarge objects.placement.region"):
        sample_scene(recipe, 0, 0)


# ---------------------------------------------------------------- rendering


def small(scene: Scene) -> Scene:
    data = scene.model_dump()
    data.update(frames=3, resolution=(64, 64))
    return Scene.model_validate(data)


def _render_index(recipe: Recipe) -> int:
    # The torus's convex decomposition takes over ten seconds here (decomposition is
    # tested on its own); render the first clip that has mesh objects but no torus.
    for i in range(50):
        files = [o.shape.file for o in dynamic(sample_scene(recipe, 0, i)) if o.shape.type == "mesh"]
        if files and not any(f.endswith("torus.obj") for f in files):
            return i
    raise AssertionError("no clip with meshes and without a torus in the first 50")


@pytest.mark.parametrize("name", RECIPES)
def test_sampled_scenes_render(recipes, name):
    from hybrid.pipeline import render_clip

    recipe = recipes[name]
    index = 0 if name == "movi_a" else _render_index(recipe)
    scene = small(sample_scene(recipe, 0, index))
    clip = render_clip(scene)
    assert clip.buffers["rgb"].shape == (3, 64, 64, 3)
    assert clip.buffers["depth"].shape == (3, 64, 64)
    seen = set(np.unique(clip.buffers["instance"][0]).tolist())
    assert 1 in seen, "the floor is visible"
    n = len(scene.objects)
    assert seen <= set(range(n + 1))
    # Every object starts wholly in view; at 64 x 64 one may hide behind another,
    # but most must show.
    assert len(seen - {0, 1}) >= (n - 1 + 1) // 2
    assert clip.buffers["rgb"][0].std() > 3
