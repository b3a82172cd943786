"""The shared spec base: immutable scenes, one error family, byte-stable dumps, no import cycles."""

from __future__ import annotations

import ast
import json

import pytest

from hybrid.cli import EXIT_SCENE_ERROR, _exit_code
from hybrid.data.recipe import load_recipe_text
from hybrid.data.sampler import sample_scene
from hybrid.render.post.spec import PostChain
from hybrid.scene import SceneError, load_scene_text
from hybrid.scene.spec import AmbientLight, Scene
from hybrid.spec.errors import SpecError
from hybrid.train.config import TrainConfigError, load_train_config_text

from conftest import REPO

SCENE = """
name: frozen
lights: [{type: ambient}]
camera: {motion: path, keyframes: [{t: 0, position: [3, 0, 1], look_at: [0, 0, 0]}, {t: 1, position: [0, 3, 1], look_at: [0, 0, 0]}]}
objects:
  - {name: floor, shape: {type: plane}, physics: {body: static}}
  - {name: ball, shape: {type: sphere, radius: 0.2}, position: [0, 0, 1]}
  - {name: lift, shape: {type: box, size: [0.2, 0.2, 0.2]}, position: [1, 0, 0.5],
     physics: {body: kinematic, keyframes: [{t: 0, position: [1, 0, 0.5]}, {t: 1, position: [1, 0, 1]}]}}
"""

RECIPE = """
name: post_recipe
clip: {frames: 2, resolution: [32, 32]}
objects: {count: 1, shapes: [sphere], size: 0.3}
post: [{type: exposure, ev: -0.5}, {type: tonemap}]
"""


@pytest.fixture(scope="module")
def scene() -> Scene:
    return load_scene_text(SCENE, "frozen.yaml")


def test_scene_lists_cannot_be_changed_in_place(scene):
    with pytest.raises(AttributeError):
        scene.objects.pop()
    with pytest.raises(AttributeError):
        scene.lights.append(AmbientLight(type="ambient"))
    with pytest.raises(TypeError):
        scene.objects[0] = scene.objects[1]  # type: ignore[index]
    with pytest.raises(AttributeError):
        scene.camera.keyframes.pop()
    with pytest.raises(AttributeError):
        scene.objects[2].physics.keyframes.append(scene.objects[2].physics.keyframes[0])
    with pytest.raises(Exception):  # pydantic's frozen-instance error
        scene.objects = ()  # type: ignore[misc]
    assert len(scene.objects) == 3 and len(scene.lights) == 1


def test_a_changed_scene_is_a_new_one(scene):
    fewer = scene.model_copy(update={"objects": scene.objects[:2]})
    assert [o.name for o in fewer.objects] == ["floor", "ball"]
    assert len(scene.objects) == 3


def test_dumps_give_json_arrays_and_leave_out_an_absent_post(scene):
    dumped = scene.model_dump(mode="json")
    assert isinstance(dumped["objects"], list) and isinstance(dumped["lights"], list)
    assert isinstance(dumped["camera"]["keyframes"], list)
    assert "post" not in dumped and "post" not in scene.model_dump() and '"post"' not in scene.model_dump_json()
    assert list(dumped)[-1] == "fields"  # the dump ends where it always did
    assert Scene.model_validate(dumped) == scene
    json.dumps(Scene.model_json_schema())  # the schema of `hybrid schema` still builds


def test_a_scene_with_post_effects_dumps_and_reloads_them(scene):
    chain = PostChain.model_validate([{"type": "exposure", "ev": 1.0}])
    with_post = scene.model_copy(update={"post": chain})
    dumped = with_post.model_dump(mode="json")
    assert dumped["post"] == [{"type": "exposure", "ev": 1.0}]
    assert Scene.model_validate(dumped).post == chain
    assert list(Scene.model_fields)[-1] == "post"


def test_a_drawn_scene_carries_its_recipes_post_chain(tmp_path):
    recipe = load_recipe_text(RECIPE, str(tmp_path / "recipe.yaml"))
    scene = sample_scene(recipe, seed=0, index=0, cache_dir=tmp_path)
    assert scene.post == recipe.post and [e.type for e in scene.post.root] == ["exposure", "tonemap"]
    without = load_recipe_text(RECIPE.replace("post:", "# post:"), str(tmp_path / "plain.yaml"))
    assert sample_scene(without, seed=0, index=0, cache_dir=tmp_path).post is None


def test_recipes_are_immutable_too(tmp_path):
    recipe = load_recipe_text(RECIPE, str(tmp_path / "recipe.yaml"))
    with pytest.raises(AttributeError):
        recipe.objects.shapes.append(recipe.objects.shapes[0])
    with pytest.raises(AttributeError):
        recipe.post.root.pop()


def test_a_bad_training_config_is_its_own_error_with_the_scene_exit_code():
    with pytest.raises(TrainConfigError) as info:
        load_train_config_text("seed: -1\n", "cfg.yaml")
    err = info.value
    assert isinstance(err, SpecError) and not isinstance(err, SceneError)
    assert _exit_code(err) == (EXIT_SCENE_ERROR, str(err))
    scene_err = SceneError(err.issues)
    assert _exit_code(scene_err) == (EXIT_SCENE_ERROR, str(scene_err))


def _imports(module: str) -> set[str]:
    """The hybrid modules a module's source imports (at any level)."""
    path = REPO / (module.replace(".", "/") + ".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hybrid"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hybrid"))
    return found


def test_the_scene_and_its_fields_section_do_not_import_each_other():
    """fields_spec and spec used to import each other; the shared types now live in hybrid.spec."""
    assert "hybrid.scene.fields_spec" in _imports("hybrid.scene.spec")
    assert not {m for m in _imports("hybrid.scene.fields_spec") if m.startswith("hybrid.scene")}
    for module in ("hybrid.spec.types", "hybrid.spec.errors", "hybrid.spec.load", "hybrid.spec.registry"):
        assert not {m for m in _imports(module) if not m.startswith("hybrid.spec")}, module
