"""Dataset recipes: the shipped ones load, distributions parse and draw within their
support, and each kind of mistake fails at its line, column and field path.

Each invalid case has exactly one problem; positions are counted by hand from the
YAML text (lines and columns from 1).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hybrid.data.distributions import Choice, Constant, Normal, RandInt, Uniform
from hybrid.data.recipe import MATERIAL_PRESETS, Recipe, RecipeError, load_recipe, load_recipe_text
from hybrid.data.textures import TEXTURES, procedural_texture, texture_file, texture_key
from hybrid.scene import SceneError

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
ASSETS = REPO / "scenes" / "assets"

# The smallest valid recipe's object block, for cases about other parts.
OBJECTS = "objects: {count: 2, shapes: [sphere], size: 0.2}"


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# ---------------------------------------------------------------- shipped recipes


def test_movi_a_recipe_matches_kubric_settings():
    recipe = load_recipe(DATASETS / "movi_a.yaml")
    assert recipe.name == "movi_a"
    assert (recipe.clip.frames, recipe.clip.fps, recipe.clip.resolution) == (24, 12.0, (256, 256))
    assert recipe.objects.count.support() == (3.0, 10.0)
    assert sorted(s.type for s in recipe.objects.shapes) == ["box", "cylinder", "sphere"]
    assert sorted(recipe.objects.size.choice) == [0.7, 1.4]
    assert sorted(m.preset for m in recipe.objects.materials) == ["metal", "rubber"]
    assert len(recipe.objects.color.palette) == 8
    assert recipe.camera.motion[0].type == "static"


def test_textured_motion_recipe_resolves_mesh_files():
    recipe = load_recipe(DATASETS / "textured_motion.yaml")
    files = sorted(Path(s.file).name for s in recipe.objects.shapes if s.type == "mesh")
    assert files == ["cup.obj", "rock.obj", "torus.obj", "vase.obj"]
    for s in recipe.objects.shapes:
        if s.type == "mesh":
            assert Path(s.file).is_absolute() and Path(s.file).parent == ASSETS
    assert {m.type for m in recipe.camera.motion} == {"static", "orbit", "linear"}
    assert recipe.objects.textures is not None and recipe.floor.texture is not None


def test_recipe_round_trips_through_its_dump():
    recipe = load_recipe(DATASETS / "textured_motion.yaml")
    assert Recipe.model_validate(recipe.model_dump()) == recipe
    assert Recipe.model_validate_json(recipe.model_dump_json()) == recipe


# ---------------------------------------------------------------- distributions


@pytest.mark.parametrize(
    "text, cls, support",
    [
        ("0.25", Constant, (0.25, 0.25)),
        ("{constant: 2}", Constant, (2.0, 2.0)),
        ("{uniform: [0.1, 0.4]}", Uniform, (0.1, 0.4)),
        ("{normal: [0.3, 0.05], clip: [0.2, 0.35]}", Normal, (0.2, 0.35)),
        ("{choice: [0.1, 0.5, 0.2], weights: [1, 0, 3]}", Choice, (0.1, 0.5)),
        ("{randint: [1, 4]}", RandInt, (1.0, 4.0)),
    ],
)
def test_distribution_forms_draw_inside_their_support(text, cls, support):
    recipe = load_recipe_text(f"name: t\nobjects: {{count: 2, shapes: [sphere], size: {text}}}\n", "inline.yaml")
    dist = recipe.objects.size
    assert isinstance(dist, cls)
    assert dist.support() == pytest.approx(support)
    rng = np.random.default_rng(0)
    draws = np.array([dist.sample(rng) for _ in range(500)])
    assert draws.min() >= support[0] and draws.max() <= support[1]
    if cls is Choice:
        assert set(draws) == {0.1, 0.2}, "a value with weight 0 is never drawn"
        assert np.mean(draws == 0.2) == pytest.approx(0.75, abs=0.06)
    if cls is RandInt:
        assert set(draws) == {1.0, 2.0, 3.0, 4.0}, "both ends are included"


def test_material_presets_fill_unset_values():
    recipe = load_recipe_text(
        "name: t\nobjects: {count: 1, shapes: [sphere], size: 0.2, materials: [metal, {preset: rubber, friction: 0.1}]}\n",
        "inline.yaml",
    )
    metal, rubber = recipe.objects.materials
    assert metal.value("density").constant == MATERIAL_PRESETS["metal"]["density"]
    assert rubber.value("friction").constant == 0.1
    assert rubber.value("restitution").constant == MATERIAL_PRESETS["rubber"]["restitution"]


# ---------------------------------------------------------------- located errors

# (id, YAML text, "line:column", field path, phrase in the message, suggestion)
INVALID = [
    (
        "misspelled key",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: 0.2
          matrials: [rubber]
        """,
        "6:3", "objects.matrials", "unknown key `matrials` in objects", "materials",
    ),
    (
        "misspelled distribution form",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: {unifrom: [0.1, 0.2]}
        """,
        "5:19", "objects.size.unifrom", "unknown distribution `unifrom`", "uniform",
    ),
    (
        "a list where a distribution belongs",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: [0.1, 0.2]
        """,
        "5:9", "objects.size", "write {choice: [0.1, 0.2]}", None,
    ),
    (
        "two forms in one distribution",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: {uniform: [0.1, 0.2], choice: [0.3]}
        """,
        "5:39", "objects.size.choice", "one form, got both `uniform` and `choice`", None,
    ),
    (
        "uniform with lo > hi",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: {uniform: [0.5, 0.1]}
        """,
        "5:19", "objects.size.uniform", "needs lo <= hi, got [0.5, 0.1]", None,
    ),
    (
        "randint with lo > hi",
        """
        name: t
        objects:
          count: {randint: [9, 3]}
          shapes: [sphere]
          size: 0.2
        """,
        "3:20", "objects.count.randint", "needs lo <= hi", None,
    ),
    (
        "weights of the wrong length",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: {choice: [0.1, 0.2], weights: [1]}
        """,
        "5:39", "objects.size.weights", "`weights` has 1 entries but `choice` has 2", None,
    ),
    (
        "a count that is not whole",
        """
        name: t
        objects:
          count: {uniform: [1, 3]}
          shapes: [sphere]
          size: 0.2
        """,
        "3:10", "objects.count", "must be a whole number", None,
    ),
    (
        "an unclipped normal for a positive size",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: {normal: [0.3, 0.1]}
        """,
        "5:9", "objects.size", "add `clip: [lo, hi]`", None,
    ),
    (
        "a size range reaching below zero",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: {uniform: [-0.1, 0.3]}
        """,
        "5:9", "objects.size", "greater than 0, but this distribution can give -0.1", None,
    ),
    (
        "unknown shape (bare name)",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere, cone]
          size: 0.2
        """,
        "4:20", "objects.shapes[1].type", "unknown shape type 'cone'", "cylinder",
    ),
    (
        "unknown shape (mapping)",
        """
        name: t
        objects:
          count: 2
          shapes:
            - {type: cilinder, aspect: 2}
          size: 0.2
        """,
        "5:14", "objects.shapes[0].type", "unknown shape type 'cilinder'", "cylinder",
    ),
    (
        "missing mesh file",
        """
        name: t
        objects:
          count: 2
          shapes:
            - {type: mesh, file: assets/missing.obj}
          size: 0.2
        """,
        "5:26", "objects.shapes[0].file", "file not found", None,
    ),
    (
        "unknown material preset",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: 0.2
          materials: [rubber, metall]
        """,
        "6:23", "objects.materials[1].preset", "unknown `preset` value 'metall'", "metal",
    ),
    (
        "unknown texture parameter",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: 0.2
          textures:
            kinds:
              - {kind: wood, params: {ringz: 4}}
        """,
        "8:38", "objects.textures.kinds[0].params.ringz", "texture kind 'wood' has no parameter `ringz`", "rings",
    ),
    (
        "unknown texture kind",
        f"""
        name: t
        floor:
          texture: {{kinds: [wod]}}
        {OBJECTS}
        """,
        "3:21", "floor.texture.kinds[0].kind", "unknown `kind` value 'wod'", "wood",
    ),
    (
        "unknown camera motion",
        f"""
        name: t
        camera:
          motion: [static, {{type: orbitt}}]
        {OBJECTS}
        """,
        "3:27", "camera.motion[1].type", "unknown motion type 'orbitt'", "orbit",
    ),
    (
        "hsv saturation out of 0..1",
        f"""
        name: t
        background: {{hsv: [0.5, {{uniform: [0, 2]}}, 1]}}
        {OBJECTS}
        """,
        "2:25", "background.hsv[1]", "saturation must stay in 0..1", None,
    ),
    (
        "region min above max",
        """
        name: t
        objects:
          count: 2
          shapes: [sphere]
          size: 0.2
          placement:
            region: {min: [0, 0, 2], max: [1, 1, 1]}
        """,
        "7:26", "objects.placement.region.min[2]", "region min z (2) is above max z (1)", None,
    ),
    (
        "too many directional lights",
        f"""
        name: t
        lights:
          extra:
            - {{type: directional}}
            - {{type: directional}}
            - {{type: directional}}
            - {{type: directional}}
        {OBJECTS}
        """,
        "7:7", "lights.extra[3]", "more than 4 directional lights", None,
    ),
    (
        "a light wider than the renderer allows",
        f"""
        name: t
        lights:
          key: {{angular_diameter_deg: {{uniform: [1, 45]}}}}
        {OBJECTS}
        """,
        "3:31", "lights.key.angular_diameter_deg", "at most 30, but this distribution can give 45", None,
    ),
    (
        "an unclipped normal for a light's size",
        f"""
        name: t
        lights:
          key: {{angular_diameter_deg: {{normal: [2, 1]}}}}
        {OBJECTS}
        """,
        "3:31", "lights.key.angular_diameter_deg", "add `clip: [lo, hi]`", None,
    ),
    (
        "too few shadow samples",
        f"""
        name: t
        lights:
          key:
            angular_diameter_deg: 2
            shadow_samples: 1
        {OBJECTS}
        """,
        "5:21", "lights.key.shadow_samples", "expected a whole number from 2 to 64, got 1", None,
    ),
    (
        "shadow samples that are not whole",
        f"""
        name: t
        lights:
          key: {{angular_diameter_deg: 2, shadow_samples: 4.5}}
        {OBJECTS}
        """,
        "3:50", "lights.key.shadow_samples", "whole number from 2 to 64, got 4.5", None,
    ),
    (
        "a soft extra light without shadows",
        f"""
        name: t
        lights:
          extra:
            - {{type: directional, angular_diameter_deg: {{choice: [0, 3]}}}}
        {OBJECTS}
        """,
        "4:49", "lights.extra[0].angular_diameter_deg", "it has `shadows: false`; set `shadows: true`", None,
    ),
    (
        "a timestep that does not divide the frame time",
        f"""
        name: t
        clip: {{fps: 24}}
        physics: {{timestep: 0.007}}
        {OBJECTS}
        """,
        "3:21", "physics.timestep", "must divide the simulated time per frame", None,
    ),
    (
        "a field option that is not a mapping",
        f"""
        name: t
        fields: {{smoke: true}}
        {OBJECTS}
        """,
        "2:17", "fields.smoke", "expected a mapping", None,
    ),
    (
        "a shape without a size, and no objects.size",
        """
        name: t
        objects:
          count: 2
          shapes:
            - {type: sphere, size: 0.2}
            - box
        """,
        "6:7", "objects.shapes[1]", "this shape has no `size`", None,
    ),
    (
        "no objects block",
        """
        name: t
        clip: {frames: 12}
        """,
        "1:1", "objects", "missing required field `objects`", None,
    ),
]


@pytest.mark.parametrize("case, text, where, path, phrase, suggestion", INVALID, ids=[c[0] for c in INVALID])
def test_bad_recipe_is_located(tmp_path, case, text, where, path, phrase, suggestion):
    file = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(file)
    issues = info.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    assert f"{issue.line}:{issue.column}" == where
    assert issue.path == path
    assert phrase in issue.message
    assert issue.suggestion == suggestion
    text_out = str(info.value)
    assert text_out.startswith(f"{file}:{where}: {path}: ")
    if suggestion:
        assert f"did you mean '{suggestion}'?" in text_out


def test_recipe_error_is_a_scene_error_with_its_own_help_line(tmp_path):
    file = write(tmp_path, "name: t\nobjects: {count: 1, shapes: [sphere], size: 0}\n")
    with pytest.raises(SceneError) as info:
        load_recipe(file)
    assert isinstance(info.value, RecipeError)
    assert str(info.value).splitlines()[-1].startswith("recipe fields are described in hybrid/data/recipe.py")


def test_every_problem_is_reported_at_once(tmp_path):
    file = write(
        tmp_path,
        """
        name: t
        objects:
          count: {randint: [5, 1]}
          shapes: [sphere, cone]
          size: {uniform: [0.3, 0.1]}
        """,
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(file)
    assert [i.path for i in info.value.issues] == ["objects.count.randint", "objects.shapes[1].type", "objects.size.uniform"]


def test_unreadable_mesh_file_is_located(tmp_path):
    (tmp_path / "broken.obj").write_text("this is not a mesh\n")
    file = write(
        tmp_path,
        """
        name: t
        objects:
          count: 1
          shapes: [{type: mesh, file: broken.obj}]
          size: 0.2
        """,
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(file)
    (issue,) = info.value.issues
    assert (issue.line, issue.path) == (4, "objects.shapes[0].file")
    assert "broken.obj" in issue.message


@pytest.mark.parametrize(
    "make, phrase",
    [
        (lambda d: d / "absent.yaml", "recipe file not found"),
        (lambda d: d, "this is a folder"),
        (lambda d: write(d, ""), "the file is empty"),
        (lambda d: write(d, "- a\n- b\n"), "must be a mapping"),
        (lambda d: write(d, "name: [unclosed\n"), "YAML syntax error"),
    ],
)
def test_unusable_files_give_recipe_errors(tmp_path, make, phrase):
    with pytest.raises(RecipeError) as info:
        load_recipe(make(tmp_path))
    assert phrase in str(info.value)


# ---------------------------------------------------------------- procedural textures


def test_procedural_textures_are_deterministic_and_distinct():
    images = {}
    for kind in TEXTURES:
        a = procedural_texture(kind, 7, {"size": 64})
        b = procedural_texture(kind, 7, {"size": 64})
        assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
        assert np.array_equal(a, b), f"{kind} is not a pure function of its inputs"
        assert a.std() > 5, f"{kind} is nearly flat"
        images[kind] = a
    kinds = list(images)
    for i, k1 in enumerate(kinds):
        for k2 in kinds[i + 1 :]:
            assert not np.array_equal(images[k1], images[k2]), f"{k1} and {k2} drew the same image"
    for kind in ("wood", "marble", "noise"):
        assert not np.array_equal(procedural_texture(kind, 7, {"size": 64}), procedural_texture(kind, 8, {"size": 64}))


@pytest.mark.parametrize("kind", ["wood", "marble", "noise"])
def test_procedural_textures_tile_without_a_seam(kind):
    # Across the wrap-around edge the image changes no more than between neighbouring
    # columns inside it (a seam would be a jump far above the typical step).
    img = procedural_texture(kind, 3).astype(np.float64)
    inner = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))
    wrap_x = np.abs(img[:, 0] - img[:, -1]).mean()
    wrap_y = np.abs(img[0] - img[-1]).mean()
    inner_y = np.abs(np.diff(img, axis=0)).mean(axis=(1, 2))
    assert wrap_x <= 3 * inner.mean() and wrap_y <= 3 * inner_y.mean()


def test_texture_parameters_change_the_image_and_are_checked():
    assert not np.array_equal(procedural_texture("checker", 1, {"size": 32, "squares": 4}), procedural_texture("checker", 1, {"size": 32}))
    with pytest.raises(ValueError, match="did you mean 'squares'"):
        procedural_texture("checker", 1, {"sqares": 4})
    with pytest.raises(ValueError, match="unknown texture kind 'wod'"):
        procedural_texture("wod", 1)


def test_texture_file_is_cached_by_content(tmp_path):
    from PIL import Image

    path = texture_file("marble", 2, {"size": 32}, tmp_path)
    assert Path(path) == tmp_path.resolve() / "textures" / f"{texture_key('marble', 2, {'size': 32})}.png"
    assert np.array_equal(np.asarray(Image.open(path)), procedural_texture("marble", 2, {"size": 32}))
    mtime = Path(path).stat().st_mtime_ns
    assert texture_file("marble", 2, {"size": 32.0}, tmp_path) == path  # same content, same file, not rewritten
    assert Path(path).stat().st_mtime_ns == mtime
    assert texture_file("marble", 3, {"size": 32}, tmp_path) != path
    assert texture_file("marble", 2, {"size": 32, "veins": 5}, tmp_path) != path
    assert not [p for p in (tmp_path / "textures").iterdir() if p.name.startswith(".tmp-")], "a temporary file was left"


def test_the_breaking_recipe_makes_some_objects_breakable_and_leaves_others_whole():
    """datasets/breaking.yaml: about half the objects get a glass or ceramic `breakable` with a drawn
    seed and a threshold between the preset's and 20 times it; the rest stay plain."""
    from hybrid.data.sampler import sample_scene
    from hybrid.scene.spec import BREAK_PRESETS

    recipe = load_recipe(REPO / "datasets" / "breaking.yaml")
    blocks, plain = [], 0
    for index in range(40):
        for obj in sample_scene(recipe, 5, index).objects:
            if obj.physics.body != "dynamic":
                continue
            if obj.physics.breakable is None:
                plain += 1
                continue
            blocks.append(obj.physics.breakable)
    total = plain + len(blocks)
    assert 0.35 < len(blocks) / total < 0.65  # probability 0.5, ~180 objects: 4.5 sigma either way
    assert {b.preset for b in blocks} == {"glass", "ceramic"}
    for b in blocks:
        base = BREAK_PRESETS[b.preset]["threshold_Ns"]
        assert base <= b.threshold_Ns <= 20 * base
    assert len({b.seed for b in blocks}) == len(blocks)


def test_breakables_go_with_smoke_and_stay_whole_in_clips_with_a_liquid(tmp_path):
    from hybrid.data.sampler import sample_scene

    base = (REPO / "datasets" / "breaking.yaml").read_text()
    smoke = textwrap.dedent("""
        fields:
          smoke:
            probability: 1.0
            emitter_region: {min: [-1, -1, 0.3], max: [1, 1, 0.6]}
            gas:
              domain: {min: [-2, -2, 0], max: [2, 2, 2]}
              resolution: 16
              emitters:
                - {shape: sphere, center: [0, 0, 0.5], radius: 0.3, density: 1.0}
    """)
    assert load_recipe(write(tmp_path, base + smoke)).objects.breakable is not None
    liquid = textwrap.dedent("""
        fields:
          liquid:
            probability: 1.0
            level: 0.1
            liquid:
              domain: {min: [-1, -1, 0], max: [1, 1, 1]}
              resolution: 16
              fill:
                - {min: [-1, -1, 0], max: [1, 1, 0.1]}
    """)
    recipe = load_recipe(write(tmp_path, base + liquid, "liquid.yaml"))
    # A clip with the liquid keeps its objects whole; without the liquid draw (probability 0)
    # the same seed gives the same objects, breakable.
    wet = sample_scene(recipe, seed=0, index=0)
    assert wet.fields is not None and wet.fields.liquid is not None
    assert all(o.physics.breakable is None for o in wet.objects)
    dry = sample_scene(load_recipe(write(tmp_path, base + liquid.replace("probability: 1.0", "probability: 0.0"), "dry.yaml")), seed=0, index=0)
    assert dry.fields is None
    assert any(o.physics.breakable is not None for o in dry.objects)
    assert [o.position for o in dry.objects] == [o.position for o in wet.objects]


def test_flammable_objects_burn_only_in_clips_with_fire_around_them(tmp_path):
    from hybrid.data.sampler import sample_scene

    base = (REPO / "datasets" / "burning.yaml").read_text()
    recipe = load_recipe(write(tmp_path, base))
    assert recipe.objects.flammable is not None
    scenes = [sample_scene(recipe, seed=0, index=i) for i in range(6)]
    burning = [o for s in scenes for o in s.objects if o.physics.flammable is not None]
    assert burning and all(o.physics.flammable.preset in ("dry_wood", "paper", "cloth") for o in burning)
    assert any(o.physics.flammable.ignite is not None for o in burning)
    # Without fire (probability 0) the same seeds give the same objects, none flammable.
    cold = load_recipe(write(tmp_path, base.replace("probability: 1.0", "probability: 0.0"), "cold.yaml"))
    for i, hot in enumerate(scenes):
        s = sample_scene(cold, seed=0, index=i)
        assert s.fields is None and all(o.physics.flammable is None for o in s.objects)
        assert [o.position for o in s.objects] == [o.position for o in hot.objects]


@pytest.mark.slow  # a clip with fire, generated and verified
def test_a_dataset_holds_burning_clips(tmp_path):
    """Generated and verified: every flammable object's burn record reaches metadata.json in the shard."""
    from hybrid.data.generate import generate
    from hybrid.data.shards import iter_shard
    from hybrid.data.verify import verify_dataset

    text = (REPO / "datasets" / "burning.yaml").read_text()
    text = text.replace("frames: 24", "frames: 6").replace("resolution: [160, 160]", "resolution: [48, 48]")
    text = text.replace("resolution: 32", "resolution: 16").replace("lit: 0.3", "lit: 1.0").replace(
        "lit_at: {uniform: [0.0, 0.5]}", "lit_at: 0.0").replace("probability: 0.8", "probability: 1.0")
    recipe = write(tmp_path, text)
    generate(recipe, tmp_path / "ds", 1, seed=0, workers=1)
    assert verify_dataset(tmp_path / "ds").ok
    (shard,) = sorted((tmp_path / "ds" / "shards").iterdir())
    ((_, clip),) = list(iter_shard(shard))
    burns = [o["burn"] for o in clip["metadata"]["objects"] if "burn" in o]
    assert burns
    for burn in burns:
        assert burn["ignition_cause"] == "ignite" and burn["ignition_time_s"] == 0.0
        # Lit at t = 0, each burns; it need not burn to the end: a tossed object can land on its
        # flame, and the nodes pressed to the floor have no air (hybrid.fields.burning), so it
        # goes out as "charred" (in this clip one does, 0.1 s after it lands).
        assert "burning" in burn["state"]
        burnt, mass, area = (np.asarray(burn[k]) for k in ("burnt_kg", "mass_kg", "burning_area_m2"))
        assert burnt[-1] > 0 and (np.diff(burnt) >= 0).all()
        # The mass the metadata reports is the initial mass less what burnt (float64: a few ulps).
        assert np.abs((mass[0] - mass) - burnt).max() <= 4 * np.spacing(mass[0])
        # A frame whose state is not "burning" ends with no area burning.
        out = np.array([state != "burning" for state in burn["state"]])
        assert (area[out] == 0).all() and (area[~out] > 0).all()
    assert "heat_haze" in clip["buffers"]
