"""Recipes with `fields:`: which clips get smoke, fire or liquid, and where."""

import numpy as np
import pytest

from hybrid.data.recipe import load_recipe, load_recipe_text
from hybrid.data.sampler import sample_scene
from hybrid.scene.errors import SceneError

OBJECTS = "objects: {count: 2, shapes: [{type: sphere, size: 0.5}], placement: {in_view: false}}"

FIRE = """
    gas:
      domain: {min: [-2, -2, 0], max: [2, 2, 3]}
      resolution: 16
      emitters: [{center: [0, 0, 0.3], radius: 0.3, fuel: 2}]
      combustion: {}"""
SMOKE = """
    gas:
      domain: {min: [-2, -2, 0], max: [2, 2, 3]}
      resolution: 16
      emitters: [{center: [0, 0, 0.3], radius: 0.3}]"""


def _recipe(fire=0.25, smoke=0.35, liquid=0.5, region="emitter_region: {min: [-1, -1, 0.2], max: [1, 1, 0.4]}"):
    text = f"""
name: fields_recipe
{OBJECTS}
fields:
  fire:
    probability: {fire}
    {region}
{FIRE}
  smoke:
    probability: {smoke}
{SMOKE}
  liquid:
    probability: {liquid}
    level: {{uniform: [0.2, 0.5]}}
    liquid:
      domain: {{min: [-2, -2, 0], max: [2, 2, 2]}}
      resolution: 16
      fill: [{{min: [-2, -2, 0], max: [2, 2, 1]}}]
"""
    return load_recipe_text(text, "fields.yaml")


def test_clip_field_choices_follow_probabilities_and_are_reproducible():
    recipe = _recipe()
    n = 400
    kinds = {"fire": 0, "smoke": 0, "liquid": 0}
    for i in range(n):
        scene = sample_scene(recipe, 7, i)
        again = sample_scene(recipe, 7, i)
        assert scene == again
        f = scene.fields
        if f is None:
            continue
        if f.gas is not None:
            kinds["fire" if f.gas.combustion is not None else "smoke"] += 1
        if f.liquid is not None:
            kinds["liquid"] += 1
    # Binomial counts: within 4 standard deviations of n p.
    for kind, p in (("fire", 0.25), ("smoke", 0.35), ("liquid", 0.5)):
        assert abs(kinds[kind] - n * p) < 4 * np.sqrt(n * p * (1 - p)), (kind, kinds)


def test_emitters_land_in_region_and_level_sets_the_fill():
    recipe = _recipe(fire=1.0, smoke=0.0, liquid=1.0)
    for i in range(20):
        f = sample_scene(recipe, 0, i).fields
        c = np.asarray(f.gas.emitters[0].center)
        assert np.all(c >= [-1, -1, 0.2]) and np.all(c <= [1, 1, 0.4])
        top = f.liquid.fill[0].max[2]
        assert 0.2 <= top <= 0.5


def test_recipes_without_fields_sample_the_same_scenes_as_before():
    """Adding the fields stream at the end of the seed sequence leaves every other draw unchanged."""
    recipe = load_recipe("datasets/neural_movi_a.yaml")
    with_fields = load_recipe("datasets/neural_fields.yaml")
    for i in range(5):
        a, b = sample_scene(recipe, 0, i), sample_scene(with_fields, 0, i)
        assert a.objects == b.objects and a.camera == b.camera and a.lights == b.lights
        assert a.fields is None


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"fire": 0.7, "smoke": 0.5}, ["add up to 1.2"]),
        ({"region": "emitter_region: {min: [1, 0, 0], max: [0, 1, 1]}"}, ["region min x"]),
    ],
)
def test_bad_field_recipes_are_located(kw, words):
    with pytest.raises(SceneError) as err:
        _recipe(**kw)
    msg = str(err.value)
    assert msg.startswith("fields.yaml:")
    for w in words:
        assert w in msg, msg


def test_clips_without_fields_in_a_fields_recipe_get_zero_field_buffers():
    """One buffer layout per dataset: a clip that drew no field still holds the five field buffers, all zero."""
    from hybrid.data.generate import render_dataset_clip
    from hybrid.buffers import layout, names

    text = f"""
name: no_fields_drawn
clip: {{frames: 3, fps: 12, resolution: [32, 24]}}
{OBJECTS}
fields:
  liquid:
    probability: 0.0
    liquid:
      domain: {{min: [-2, -2, 0], max: [2, 2, 2]}}
      fill: [{{min: [-2, -2, 0], max: [2, 2, 1]}}]
"""
    recipe = load_recipe_text(text, "no_fields.yaml")
    buffers, metadata, _ = render_dataset_clip(recipe, 0, 0)
    for name, (dtype, tail) in layout(names("fields")).items():
        assert buffers[name].dtype == np.dtype(dtype)
        assert buffers[name].shape == (3, 24, 32, *tail)
        assert not buffers[name].any()
    assert "fields" not in metadata
