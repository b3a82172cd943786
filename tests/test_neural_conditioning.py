"""Condition groups and NeuralConfig: channels computed by hand, errors that name the field or group."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.neural.conditioning import (
    CONDITIONS,
    ConditionError,
    build_condition,
    condition_channels,
    frames_to_uint8,
    key_direction_camera,
    required_buffers,
    resize_nearest,
    target_frames,
)
from hybrid.neural.config import NeuralConfig, NeuralConfigError


def _clip(frames: int = 2, size: int = 8):
    """A floor (instance 1, normal facing the camera) with a square (instance 2) on it, 4 m away; a camera
    whose axes are the world's (cam_to_world = identity); a sun travelling along +z (away from the camera)."""
    instance = np.ones((frames, size, size), np.uint16)
    instance[:, 2:5, 2:5] = 2
    instance[:, :, -1] = 0  # background column
    depth = np.where(instance > 0, 4.0, 0.0).astype(np.float32)
    normal = np.zeros((frames, size, size, 3), np.float32)
    normal[instance > 0] = (0.0, 0.0, -1.0)  # facing the camera
    albedo = np.full((frames, size, size, 3), 255, np.uint8)
    metadata = {
        "cam_to_world": [np.eye(4).tolist()] * frames,
        "scene_spec": {"lights": [
            {"type": "ambient", "intensity": 0.3, "color": [1.0, 1.0, 1.0]},
            {"type": "directional", "direction": [0.0, 0.0, 2.0], "intensity": 3.0, "color": [1.0, 1.0, 1.0]},
            {"type": "directional", "direction": [1.0, 0.0, 0.0], "intensity": 1.0, "color": [1.0, 1.0, 1.0]},
        ]},
    }
    return {"instance": instance, "depth": depth, "normal": normal, "albedo": albedo}, metadata


def test_groups_stack_in_order_with_the_registered_channels():
    buffers, metadata = _clip()
    names = ["albedo", "normal", "depth", "mask", "instance_edges", "light", "ndotl"]
    cond = build_condition(buffers, metadata, names, (8, 8))
    assert cond.shape == (2, condition_channels(names), 8, 8) == (2, 19, 8, 8) and cond.dtype == np.float32
    assert required_buffers(names) == {"albedo", "normal", "depth", "instance"}
    albedo, normal, depth, mask, edges = cond[:, 0:3], cond[:, 3:6], cond[:, 6], cond[:, 7], cond[:, 8]
    assert np.all(albedo == 1.0)  # white = 255 -> +1
    np.testing.assert_allclose(depth[0, 0, 0], 1 / (1 + 4 / 5))  # 1 / (1 + d / 5 m)
    assert depth[0, 0, -1] == 0 and mask[0, 0, -1] == 0 and mask[0, 0, 0] == 1
    assert normal[0, 2, 0, 0] == -1.0
    # edges: both sides of the square's outline and of the background column
    assert edges[0, 2, 2] == 1 and edges[0, 1, 2] == 1 and edges[0, 3, 3] == 0 and edges[0, 0, -2] == 1


def test_light_channels_put_the_key_light_in_camera_axes():
    """The brighter directional light travels along world +z; towards it is -z. A camera turned 90 degrees
    about its y axis (its z axis = world x, x axis = world -z) sees that direction as camera +x."""
    buffers, metadata = _clip()
    cond = build_condition(buffers, metadata, ["light", "ndotl"], (8, 8))
    np.testing.assert_allclose(cond[0, 0:3, 0, 0], (0, 0, -1), atol=1e-7)  # identity camera
    np.testing.assert_allclose(cond[0, 3:6, 4, 4], (1, 1, 1))  # 3 lux white key / 3 lux reference
    np.testing.assert_allclose(cond[0, 6:9, 4, 4], (0.3, 0.3, 0.3))  # ambient
    assert cond[0, 9, 0, 0] == 1.0  # n = -z faces the light head on: n . l = 1
    assert cond[0, 9, 0, -1] == 0.0  # background

    turned = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]], float)
    metadata["cam_to_world"] = [turned.tolist()] * 2
    np.testing.assert_allclose(key_direction_camera(metadata)[0], (1, 0, 0), atol=1e-12)


def test_a_missing_buffer_names_the_group_the_buffer_and_the_fix():
    buffers, metadata = _clip()
    del buffers["normal"]
    with pytest.raises(ConditionError) as err:
        build_condition(buffers, metadata, ["albedo", "ndotl"], (8, 8))
    msg = str(err.value)
    assert "'ndotl'" in msg and "buffer 'normal'" in msg and "hybrid render" in msg and "condition" in msg
    with pytest.raises(ConditionError, match="'light' needs 'scene_spec'"):
        build_condition(buffers, {"cam_to_world": metadata["cam_to_world"]}, ["light"], (8, 8))
    with pytest.raises(ConditionError, match="did you mean 'normal'"):
        build_condition(buffers, metadata, ["normals"], (8, 8))


def test_resizing_point_samples_buffers_and_averages_the_beauty_frame():
    ids = np.arange(16, dtype=np.uint16).reshape(1, 4, 4)
    np.testing.assert_array_equal(resize_nearest(ids, (2, 2))[0], [[5, 7], [13, 15]])  # pixel centres 1.0, 3.0
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    rgb[0, :2, :2] = 255
    small = target_frames(rgb, (2, 2))
    assert small.shape == (1, 3, 2, 2) and small[0, 0, 0, 0] == 1.0 and small[0, 0, 1, 1] == -1.0
    half = target_frames(rgb[:, :, :2], (1, 1))  # the left half: white on top, black below
    np.testing.assert_allclose(half[0, :, 0, 0], 0.0)  # averaged to mid grey
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(frames_to_uint8(target_frames(frames, (4, 6))), frames)


def test_config_errors_name_the_field():
    with pytest.raises(NeuralConfigError, match=r"cfg: condition: unknown condition group 'albedos' \(did you mean 'albedo'\?\)"):
        NeuralConfig.from_dict({"condition": ["albedos"]}, source="cfg")
    with pytest.raises(NeuralConfigError, match="context_frames .* must be smaller than window"):
        NeuralConfig.from_dict({"window": 2, "context_frames": 2})
    with pytest.raises(NeuralConfigError, match="base_chanels: unknown field \\(did you mean 'base_channels'\\?\\)"):
        NeuralConfig.from_dict({"base_chanels": 16})
    with pytest.raises(NeuralConfigError, match="resolution 60x64 must be multiples of 8"):
        NeuralConfig.from_dict({"resolution": [60, 64]})
    default = NeuralConfig()
    assert set(default.condition) <= set(CONDITIONS) and default.factor == 8
    assert NeuralConfig.from_dict(__import__("json").loads(default.to_json())) == default


def test_field_groups_may_be_absent_as_a_whole_not_in_part():
    from hybrid.neural.conditioning import read_buffers

    names = ["albedo", "gas", "liquid"]
    assert read_buffers(names, ["albedo", "rgb"]) == {"albedo"}  # no field buffers: zeros, nothing to read
    # gas_temperature is read, so a clip or dataset holding only gas_density lacks it.
    assert read_buffers(names, ["albedo", "gas_density"]) == {"albedo", "gas_density", "gas_temperature"}
    assert read_buffers(["albedo"], []) == {"albedo"}  # other groups are always read


def test_material_channels_come_from_the_look_of_the_object_seen():
    """Instance 1 -> objects[0]'s look, 2 -> objects[1]'s; background 0. Emission: 1 - exp(-mean decoded colour x strength)."""
    buffers, metadata = _clip()
    metadata["scene_spec"]["objects"] = [
        {"name": "floor", "look": {"roughness": 0.9, "metallic": 0.0}},
        {"name": "lamp", "look": {"roughness": 0.2, "metallic": 1.0, "transmission": 0.5,
                                  "emission": [1.0, 1.0, 1.0], "emission_strength": 2.0}},
    ]
    cond = build_condition(buffers, metadata, ["material"], (8, 8))
    assert cond.shape == (2, 4, 8, 8)
    np.testing.assert_allclose(cond[0, :, 0, 0], [0.9, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(cond[0, :, 3, 3], [0.2, 1.0, 0.5, 1 - np.exp(-2.0)], rtol=1e-6)
    assert np.all(cond[:, :, :, -1] == 0)  # background column
    metadata["scene_spec"]["objects"] = metadata["scene_spec"]["objects"][:1]
    with pytest.raises(ConditionError, match="instance id 2 has no object"):
        build_condition(buffers, metadata, ["material"], (8, 8))


def test_the_raster_beauty_is_resized_like_the_target():
    """Area means, as target_frames does: a 2x2 checker of 0 and 255 averages to mid-grey at half size."""
    buffers, metadata = _clip(size=8)
    checker = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)
    buffers["rgb_raster"] = np.repeat(checker[None, :, :, None], 3, axis=3).repeat(2, axis=0)
    cond = build_condition(buffers, metadata, ["raster_beauty"], (4, 4))
    np.testing.assert_allclose(cond, target_frames(buffers["rgb_raster"], (4, 4)), atol=1e-6)
    np.testing.assert_allclose(cond, 0.0, atol=1e-6)
    del buffers["rgb_raster"]
    with pytest.raises(ConditionError, match="rgb_raster"):
        build_condition(buffers, metadata, ["raster_beauty"], (4, 4))


def test_detail_transfer_needs_the_raster_beauty_condition():
    with pytest.raises((NeuralConfigError, ValueError), match="raster_beauty"):
        NeuralConfig(output="detail_transfer", condition=("albedo", "depth"))
    NeuralConfig(output="detail_transfer", condition=("albedo", "depth", "raster_beauty"))


def _display(linear):
    """Display value (gamma 2.2, as scene colours) of a linear colour."""
    return (np.asarray(linear, float) ** (1 / 2.2)).tolist()


@pytest.mark.parametrize("size", [8, 4])
def test_environment_channels_follow_a_sky_worked_out_by_hand(size):
    """A sky with sharpness 1 whose ground is 2H - Z (linear) has radiance H + (Z - H) d_z in every
    direction: l <= 1 only, so the order-2 harmonics hold it exactly, and a unit normal n sees
    E(n) / pi = H + (2/3)(Z - H) n_z (the clamped cosine's A_1 / A_0 = 2/3). The camera's axes are the
    world's, so it looks straight up; the floor faces it (n = -z) and mirrors the view rays about z.
    At 4 x 4 the camera is the same one at half the pixels (K halved), so its rays pass through
    full-size pixel (2c + 1, 2r + 1)."""
    buffers, metadata = _clip(size=8)
    H, Z = np.array([0.5, 0.4, 0.3]), np.array([0.8, 0.7, 0.1])
    metadata["scene_spec"]["lights"] = metadata["scene_spec"]["lights"][1:]  # no ambient light
    metadata["scene_spec"]["environment"] = {
        "type": "sky", "zenith": _display(Z), "horizon": _display(H), "ground": _display(2 * H - Z),
        "sharpness": 1.0, "strength": 1.0, "visible": True,
    }
    metadata["K"] = [[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]]
    metadata["resolution"] = [8, 8]
    env = build_condition(buffers, metadata, ["environment"], (size, size))
    radiance = -np.log1p(-env.astype(np.float64))  # undo 1 - exp(-L)
    diffuse, mirror = radiance[0, 0:3], radiance[0, 3:6]
    # Tolerance: the sky is baked into a float32 table and projected by quadrature (sh.py); both hold
    # a gradient linear in d_z without truncation, leaving float32 rounding (~1e-7 of the values).
    np.testing.assert_allclose(diffuse[:, 0, 0], H - 2 / 3 * (Z - H), atol=1e-5)
    # The view ray through pixel (c, r) leaves along ((u - 4) / 8, (v - 4) / 8, 1) in full-size pixels u, v.
    scale = 8 // size
    u = v = (0 + 0.5) * scale  # the first row and column
    ray = np.array([(u - 4) / 8, (v - 4) / 8, 1.0])
    ray /= np.linalg.norm(ray)
    np.testing.assert_allclose(mirror[:, 0, 0], H + (Z - H) * -ray[2], rtol=1e-5)  # mirrored: d_z -> -d_z
    # The background column sees the sky along its own ray.
    u = (size - 1 + 0.5) * scale
    ray = np.array([(u - 4) / 8, (v - 4) / 8, 1.0])
    ray /= np.linalg.norm(ray)
    for channels in (diffuse, mirror):
        np.testing.assert_allclose(channels[:, 0, -1], H + (Z - H) * ray[2], rtol=1e-5)

    # Hidden from the camera, the sky still lights the floor; misses show the background colour.
    metadata["scene_spec"]["environment"]["visible"] = False
    metadata["scene_spec"]["background"] = _display([0.2, 0.1, 0.05])
    hidden = -np.log1p(-build_condition(buffers, metadata, ["environment"], (size, size)).astype(np.float64))
    np.testing.assert_allclose(hidden[0, :, :, :-1], radiance[0, :, :, :-1], rtol=1e-6)
    np.testing.assert_allclose(hidden[0, 0:3, 0, -1], [0.2, 0.1, 0.05], rtol=1e-5)


def test_environment_channels_without_an_environment_hold_the_ambient_light():
    """No environment: every surface sees the ambient lights' linear radiance, 0.3 x white here, in both halves."""
    buffers, metadata = _clip()
    metadata["K"] = [[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]]
    metadata["resolution"] = [8, 8]
    env = build_condition(buffers, metadata, ["environment"], (8, 8))
    np.testing.assert_allclose(env[:, :, :, :-1], 1.0 - np.exp(-0.3), rtol=1e-6)


def test_an_image_environment_lights_the_environment_channels_and_a_lost_image_is_a_clear_error(tmp_path):
    """A uniform PNG environment of sRGB value 128 (linear 0.2158) at strength 2: every direction sees
    L = 0.4317, so a surface gets E(n) / pi = L and its mirror L too (the ambient 0.3 adds to both)."""
    import imageio.v3 as iio

    from hybrid.neural.conditioning import _scene_surroundings

    iio.imwrite(tmp_path / "grey.png", np.full((16, 32, 3), 128, np.uint8))
    buffers, metadata = _clip()
    metadata["K"] = [[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]]
    metadata["resolution"] = [8, 8]
    metadata["scene_spec"]["environment"] = {"type": "image", "path": str(tmp_path / "grey.png"), "strength": 2.0}
    env = build_condition(buffers, metadata, ["environment"], (8, 8)).astype(np.float64)
    srgb = 128 / 255
    L = 2.0 * ((srgb + 0.055) / 1.055) ** 2.4 + 0.3  # the sRGB curve for image texels, plus the ambient light
    # Tolerance: the SH projection of a constant table is exact up to its quadrature weights' float sum (~1e-6).
    np.testing.assert_allclose(-np.log1p(-env[:, :, :, :-1]), L, rtol=1e-4)

    _scene_surroundings.cache_clear()
    (tmp_path / "grey.png").unlink()
    with pytest.raises(ConditionError, match=r"condition group 'environment'.*grey\.png.*keep its image file"):
        build_condition(buffers, metadata, ["environment"], (8, 8))


def test_material_of_a_fragment_is_its_objects():
    """Fragment slots (ids after the scene's objects, metadata.json `objects` naming their `root`) take
    the look of the object they broke from."""
    from hybrid.neural.conditioning import build_condition

    metadata = {
        "scene_spec": {"objects": [
            {"name": "floor", "look": {"roughness": 0.9}},
            {"name": "glass", "look": {"roughness": 0.05, "transmission": 1.0}},
        ]},
        "objects": [{"name": "floor"}, {"name": "glass"},
                    {"name": "glass#0", "root": "glass"}, {"name": "glass#1", "root": "glass"}],
        "cam_to_world": [np.eye(4).tolist()],
    }
    instance = np.array([[[0, 1, 2, 3, 4]]], dtype=np.uint16)  # (T, H, W)
    material = build_condition({"instance": instance}, metadata, ["material"], (1, 5))
    np.testing.assert_allclose(material[0, :, 0, 3], material[0, :, 0, 2])  # glass#0 looks like glass
    np.testing.assert_allclose(material[0, :, 0, 4], material[0, :, 0, 2])
    assert material[0, 0, 0, 2] == pytest.approx(0.05) and material[0, 2, 0, 2] == pytest.approx(1.0)
