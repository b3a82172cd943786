"""Breakables drawn: fragments appear with their own ids where the object was, the inner look on broken
faces, and optical flow that stays exact through the break (hybrid/render/fragments.py, hybrid/render/flow.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hybrid.camera import camera_track
from hybrid.pipeline import render_buffers, simulate
from hybrid.scene.spec import Scene
from test_flow import _bilinear, _interior  # resampling at pixel centres; pixels away from silhouettes

ASSETS = os.path.join(os.path.dirname(__file__), "..", "scenes", "assets")
W, H = 256, 192


def smooth_texture(folder) -> str:
    """A 128 x 128 PNG of slow sinusoids (a few periods per face): resampling it costs a fraction of a
    code, so a warp that lands a pixel on the wrong material shows at once."""
    from PIL import Image

    i, j = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    rgb = np.stack([
        128 + 90 * np.sin(2 * np.pi * i / 64),
        128 + 90 * np.sin(2 * np.pi * j / 48),
        128 + 90 * np.sin(2 * np.pi * (i + j) / 90),
    ], -1)
    path = os.path.join(str(folder), "smooth.png")
    Image.fromarray(np.round(rgb).astype(np.uint8)).save(path)
    return path


def _scene(texture=None) -> Scene:
    look = dict(color=[1.0, 1.0, 1.0], inner=dict(color=[0.9, 0.2, 0.1]))
    if texture:
        look["texture"] = texture
    return Scene.model_validate(dict(
        name="break", frames=14, fps=24, resolution=[W, H], seed=2,
        camera=dict(position=[0.35, -0.45, 0.35], look_at=[0.0, 0.0, 0.05]),
        lights=[dict(type="directional", direction=[-0.3, 0.4, -1.0], intensity=3.0), dict(type="ambient", intensity=0.5)],
        objects=[
            dict(name="floor", shape=dict(type="plane"), physics=dict(body="static"), look=dict(color=[0.3, 0.3, 0.3])),
            dict(name="box", shape=dict(type="box", size=[0.12, 0.12, 0.12]), position=[0.0, 0.0, 0.4],
                 rotation_deg=[10, 20, 30], physics=dict(mass=0.3, breakable=dict(threshold_Ns=0.3, pieces=12, kick=0.05)),
                 look=look),
        ],
    ))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    scene = _scene(smooth_texture(tmp_path_factory.mktemp("texture")))
    states = simulate(scene)
    track = camera_track(scene)
    return scene, states, track, render_buffers(scene, states, track)


def test_fragments_replace_the_object_with_new_ids_and_show_the_inner_look(clip):
    scene, states, track, buffers = clip
    (event,) = states[-1].breaks
    b = event.frame
    ids_before = set(np.unique(buffers["instance"][b - 1]).tolist())
    ids_after = set(np.unique(buffers["instance"][b + 2]).tolist())
    fragment_ids = {i + 1 for i in event.fragments}
    assert 2 in ids_before and not ids_before & fragment_ids
    assert 2 not in ids_after and len(ids_after & fragment_ids) >= 6
    # Broken faces carry the inner colour (0.9, 0.2, 0.1) in the albedo buffer, exactly.
    albedo = buffers["albedo"][-1].reshape(-1, 3).astype(int)
    inner = np.all(np.abs(albedo - [230, 51, 26]) <= 1, axis=1)
    assert inner.sum() > 30
    assert not np.all(np.abs(buffers["albedo"][b - 1].reshape(-1, 3).astype(int) - [230, 51, 26]) <= 1, axis=1).any()


def _warp_error(scene, states, track, buffers, a: int, allowed) -> tuple[float, float, np.ndarray]:
    """Mean |albedo_a - albedo_b warped back along flow_fwd[a]| (and without the flow) over the pixels of
    object 2 in frame a whose surface is seen in frame b on an object in `allowed`: the target is away
    from silhouettes, its depth is the moved point's (lifted with camera a, moved with the motion of the
    object seen at the target, projected with camera b, by hand) and so is its normal (a broken face
    the crack opened just behind the surface is not the surface). Also away from cracks: the 5 x 5
    neighbourhood of the pixel in frame a is carried by one fragment."""
    from hybrid.pipeline import break_carriers
    from hybrid.render.flow import carried_instances
    from hybrid.transforms import pose_matrices

    b = a + 1
    K, cams = track.K, track.cam_to_world
    inst_a, inst_b = buffers["instance"][a].astype(int), buffers["instance"][b].astype(int)
    flow = buffers["flow_fwd"][a]
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    x, y = u + flow[..., 0], v + flow[..., 1]
    inside = (x > 1) & (x < W - 1) & (y > 1) & (y < H - 1)
    xi, yi = np.clip(x.astype(int), 0, W - 1), np.clip(y.astype(int), 0, H - 1)
    target = inst_b[yi, xi]
    poses = [pose_matrices(s.position, s.quaternion) for s in (states[a], states[b])]
    d = buffers["depth"][a]
    cam_pts = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) * d[..., None]
    world = cam_pts @ cams[a][:3, :3].T + cams[a][:3, 3]
    ids = np.clip(target - 1, 0, len(states[a].names) - 1)
    motion = poses[1] @ np.linalg.inv(poses[0])
    moved = np.einsum("hwij,hwj->hwi", motion[ids][..., :3, :3], world) + motion[ids][..., :3, 3]
    z_b = ((moved - cams[b][:3, 3]) @ cams[b][:3, :3])[..., 2]
    depth_ok = np.abs(z_b - _bilinear(buffers["depth"][b][..., None], x, y)[..., 0]) < 0.01 * np.abs(z_b)
    n_world = buffers["normal"][a] @ cams[a][:3, :3].T
    n_moved = np.einsum("hwij,hwj->hwi", motion[ids][..., :3, :3], n_world) @ cams[b][:3, :3]
    normal_ok = (n_moved * buffers["normal"][b][yi, xi]).sum(-1) > 0.99
    carriers = break_carriers(scene, states).get(a, {})
    carried = carried_instances(d, inst_a, K, cams[a], poses[0], carriers) if carriers else inst_a
    mask = (inst_a == 2) & _interior(inst_a) & _interior(carried) & inside & np.isin(target, list(allowed))
    mask &= _interior(inst_b)[yi, xi] & depth_ok & normal_ok
    warped = _bilinear(buffers["albedo"][b], x, y)
    unwarped = _bilinear(buffers["albedo"][b], u, v)
    err = np.abs(warped - buffers["albedo"][a])[mask].mean()
    still = np.abs(unwarped - buffers["albedo"][a])[mask].mean()
    return float(err), float(still), mask


def test_flow_is_exact_through_the_break(clip):
    """Warp the first broken frame back along the last intact frame's forward flow: on the object's
    pixels whose material is visible in both frames, the albedo (a smooth texture) matches as well
    as it does for the rigid fall one frame earlier, and far better than without the flow."""
    scene, states, track, buffers = clip
    (event,) = states[-1].breaks
    a = event.frame - 1
    err, still, mask = _warp_error(scene, states, track, buffers, a, [i + 1 for i in event.fragments])
    rigid, rigid_still, rigid_mask = _warp_error(scene, states, track, buffers, a - 1, [2])
    assert mask.sum() > 300 and rigid_mask.sum() > 300, (mask.sum(), rigid_mask.sum())
    target = buffers["instance"][a + 1][mask]
    assert len(np.unique(target)) >= 3  # several fragments, each with its own motion
    # Resampling the texture costs about a code either way (tests/test_flow.py allows 2); a pixel
    # carried by the wrong fragment costs tens.
    assert err < 2.0 and err < 1.25 * rigid, (err, rigid)
    assert err < 0.1 * still, (err, still)


def test_fragments_drawn_where_their_object_was_look_exactly_like_it(clip):
    """Just before the break, draw the fragments instead of the object (their rows are its pose): they
    tile it, carry its texture coordinates and normals, so the G-buffer is the object's, pixel for
    pixel, apart from the ids (hybrid/render/fragments.py)."""
    import dataclasses

    from hybrid.render.raster import Rasterizer

    scene, states, track, buffers = clip
    (event,) = states[-1].breaks
    a = event.frame - 1
    present = states[a].present_mask.copy()
    present[1], present[list(event.fragments)] = False, True
    shown = dataclasses.replace(states[a], present=present, breaks=states[-1].breaks)
    with Rasterizer(scene) as rast:
        whole, pieces = rast.render(states[a], track.cam_to_world[a]), rast.render(shown, track.cam_to_world[a])
    on = whole["instance"] == 2
    assert on.sum() > 1000
    assert np.isin(pieces["instance"][on], [i + 1 for i in event.fragments]).mean() > 0.995  # cracks: rounding only
    inside = on & _interior(whole["instance"]) & _interior(pieces["instance"])
    # The same surface: depth to float32 rounding, normals and albedo (texture) to a code.
    np.testing.assert_allclose(pieces["depth"][inside], whole["depth"][inside], rtol=1e-5)
    assert np.abs(pieces["normal"][inside] - whole["normal"][inside]).max() < 1e-3
    assert np.abs(pieces["albedo"][inside].astype(int) - whole["albedo"][inside].astype(int)).max() <= 1
