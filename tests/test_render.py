"""Rasterizer buffers against geometry worked out by hand (ray-sphere, ray-box, ray-plane)."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.camera import camera_track
from hybrid.geometry import build_mesh
from hybrid.scene.spec import Scene
from hybrid.shapes import SphereShape
from hybrid.state import State
from hybrid.transforms import euler_deg_to_quat, look_at_cam_to_world, quat_to_matrix

W, H = 128, 96
SPHERE_C = np.array([0.3, 0.0, 0.6])
SPHERE_R = 0.5
BOX_C = np.array([-0.9, 0.3, 0.5])
BOX_SIZE = np.array([0.5, 0.4, 0.6])
BOX_YAW = 30.0
SPHERE_COLOR = "#3366cc"  # exact bytes (0x33, 0x66, 0xcc)
BACKGROUND = "#336699"
CAM = look_at_cam_to_world((0.0, -3.2, 1.1), (-0.2, 0.0, 0.55))


def _state(names, positions, quaternions) -> State:
    n = len(names)
    return State(
        frame=0, time_s=0.0, names=tuple(names), position=np.asarray(positions, float),
        quaternion=np.asarray(quaternions, float), linear_velocity=np.zeros((n, 3)), angular_velocity=np.zeros((n, 3)),
    )


def _scene() -> Scene:
    return Scene.model_validate(dict(
        name="render-test", frames=2, resolution=[W, H], background=BACKGROUND,
        camera=dict(fov_deg=50),
        lights=[dict(type="ambient", intensity=0.25),
                dict(type="directional", direction=[-1.0, 0.0, -0.3], intensity=4.0, shadows=False)],
        objects=[
            dict(name="ball", shape=dict(type="sphere", radius=SPHERE_R), position=SPHERE_C.tolist(),
                 look=dict(color=SPHERE_COLOR)),
            dict(name="crate", shape=dict(type="box", size=BOX_SIZE.tolist()), position=BOX_C.tolist(),
                 rotation_deg=[0, 0, BOX_YAW], look=dict(color="orange")),
        ],
    ))


def _rays(K: np.ndarray, cam_to_world: np.ndarray):
    """World-frame origin and (H, W, 3) ray directions through pixel centres (u, v) = (c + 0.5, r + 0.5).

    Directions have camera-z component 1, so a ray parameter is the z-depth.
    """
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    cam_dirs = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return cam_to_world[:3, 3], cam_dirs @ cam_to_world[:3, :3].T


def _ray_sphere(origin, dirs, centre, radius):
    """Entry and exit ray parameters of |o + t d - c| = radius (NaN where missed)."""
    oc = origin - centre
    a = np.sum(dirs * dirs, -1)
    b = 2 * dirs @ oc
    c = oc @ oc - radius**2
    disc = b * b - 4 * a * c
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def _ray_box(origin, dirs, centre, size, rotation):
    """Slab test in the box frame: entry parameter (NaN where missed) and the entry face's outward normal (world)."""
    o = (origin - centre) @ rotation
    d = dirs @ rotation
    half = size / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - o) / d, (half - o) / d
    t_near, t_far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_in, axis = t_near.max(-1), t_near.argmax(-1)
    hit = t_in <= t_far.min(-1)
    local = np.zeros(dirs.shape)
    np.put_along_axis(local, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
    return np.where(hit, t_in, np.nan), local @ rotation.T


def _near_edge(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel (8-neighbourhood) of the boundary of ``mask``."""
    pad = np.pad(mask, 1, mode="edge")
    shifts = [pad[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.any(shifts, axis=0) & ~np.all(shifts, axis=0)


@pytest.fixture(scope="module")
def frames():
    from hybrid.render import Rasterizer

    scene = _scene()
    names = [o.name for o in scene.objects]
    box_q = euler_deg_to_quat((0, 0, BOX_YAW))
    # Frame 1 swaps the two objects' places and turns the box: ids must follow the objects.
    box_q1 = euler_deg_to_quat((0, 0, -50.0))
    c1_sphere = np.array([-0.9, 0.3, 0.6])
    c1_box = np.array([0.3, 0.0, 0.5])
    states = [
        _state(names, [SPHERE_C, BOX_C], [(0, 0, 0, 1), box_q]),
        _state(names, [c1_sphere, c1_box], [(0, 0, 0, 1), box_q1]),
    ]
    with Rasterizer(scene) as rast:
        buffers = [rast.render(s, CAM) for s in states]
    K = camera_track(scene).K
    geometry = [
        dict(sphere_c=SPHERE_C, box_c=BOX_C, box_r=quat_to_matrix(box_q)),
        dict(sphere_c=c1_sphere, box_c=c1_box, box_r=quat_to_matrix(box_q1)),
    ]
    return scene, K, buffers, geometry


def test_buffer_contract(frames):
    _, _, buffers, _ = frames
    expected = {
        "rgb": (np.uint8, (H, W, 3)), "depth": (np.float32, (H, W)), "instance": (np.uint16, (H, W)),
        "normal": (np.float32, (H, W, 3)), "albedo": (np.uint8, (H, W, 3)),
    }
    for b in buffers:
        assert set(b) == set(expected)
        for name, (dtype, shape) in expected.items():
            assert b[name].dtype == dtype and b[name].shape == shape, name


def _sphere_hits(K, centre):
    origin, dirs = _rays(K, CAM)
    t_in, t_out = _ray_sphere(origin, dirs, centre, SPHERE_R)
    return origin, dirs, t_in, t_out


def _inscribed_radius() -> float:
    """Smallest distance from the centre to a face plane of the tessellated sphere.

    The mesh is convex with its vertices on the sphere, so it lies between this
    inner sphere and the true one: the chord deviation of the tessellation.
    """
    mesh = build_mesh(SphereShape(type="sphere", radius=SPHERE_R))
    tri = mesh.vertices[mesh.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return float(np.abs(np.sum(n * tri[:, 0], axis=1)).min())


def test_depth_matches_ray_sphere_within_tessellation_bound(frames):
    _, K, buffers, _ = frames
    origin, dirs, t_in, t_out = _sphere_hits(K, SPHERE_C)
    r_in = _inscribed_radius()
    assert 0.99 * SPHERE_R < r_in < SPHERE_R
    # The mesh surface lies between the inner and the true sphere, so along each ray
    # its hit lies between the true entry and the inner entry (or the true exit when
    # the ray misses the inner sphere). 1e-4 m covers float32 arithmetic.
    inner_in, _ = _ray_sphere(origin, dirs, SPHERE_C, r_in)
    far_bound = np.where(np.isnan(inner_in), t_out, inner_in)
    depth = buffers[0]["depth"]
    both = (buffers[0]["instance"] == 1) & ~np.isnan(t_in)
    assert both.sum() > 500
    assert np.all(depth[both] >= t_in[both] - 1e-4)
    assert np.all(depth[both] <= far_bound[both] + 1e-4)
    # Facing the camera the bound is a few millimetres: the test is not vacuous.
    facing = both & ((far_bound - t_in) < 0.01)
    assert facing.sum() > 300


def test_silhouette_within_one_pixel(frames):
    _, K, buffers, _ = frames
    _, _, t_in, _ = _sphere_hits(K, SPHERE_C)
    analytic = ~np.isnan(t_in)
    rendered = buffers[0]["instance"] == 1
    mismatch = analytic ^ rendered
    assert not np.any(mismatch & ~_near_edge(analytic))
    assert mismatch.sum() < 0.2 * _near_edge(analytic).sum()


def test_instance_ids_exact_and_follow_objects(frames):
    _, K, buffers, geometry = frames
    origin, dirs = _rays(K, CAM)
    for b, g in zip(buffers, geometry):
        sphere = ~np.isnan(_ray_sphere(origin, dirs, g["sphere_c"], SPHERE_R)[0])
        box = ~np.isnan(_ray_box(origin, dirs, g["box_c"], BOX_SIZE, g["box_r"])[0])
        assert not np.any(sphere & box), "the test scene keeps the objects apart on screen"
        inst = b["instance"]
        assert set(np.unique(inst)) == {0, 1, 2}
        inner = ~_near_edge(sphere) & ~_near_edge(box)
        assert np.all(inst[sphere & inner] == 1)
        assert np.all(inst[box & inner] == 2)
        assert np.all(inst[~sphere & ~box & inner] == 0)


def test_sphere_normals_are_radial_in_camera_axes(frames):
    _, K, buffers, _ = frames
    origin, dirs, t_in, t_out = _sphere_hits(K, SPHERE_C)
    inner_in, _ = _ray_sphere(origin, dirs, SPHERE_C, _inscribed_radius())
    far_bound = np.where(np.isnan(inner_in), t_out, inner_in)
    both = (buffers[0]["instance"] == 1) & ~np.isnan(t_in)
    p = origin + t_in[..., None] * dirs
    expected = ((p - SPHERE_C) / SPHERE_R) @ CAM[:3, :3]  # world -> camera: R^T n
    normal = buffers[0]["normal"]
    assert np.allclose(np.linalg.norm(normal[both], axis=-1), 1.0, atol=1e-5)
    # Interpolated vertex normals of a sphere mesh point radially at the mesh surface
    # point; that point lies on the same ray between the true entry and far_bound, so
    # the angle is at most the one between the radial directions at those two ends.
    q = origin + np.nan_to_num(far_bound)[..., None] * dirs - SPHERE_C
    cos_bound = np.sum((p - SPHERE_C) * q, -1) / (SPHERE_R * np.linalg.norm(q, axis=-1))
    bound = np.arccos(np.clip(cos_bound, -1, 1)) + 1e-3
    angle = np.arccos(np.clip(np.sum(normal * expected, -1), -1, 1))
    assert np.all(angle[both] <= bound[both])
    facing = both & (bound < 0.01)
    assert facing.sum() > 300


def test_box_face_normals_exact(frames):
    _, K, buffers, geometry = frames
    origin, dirs = _rays(K, CAM)
    for b, g in zip(buffers, geometry):
        t, face_normal = _ray_box(origin, dirs, g["box_c"], BOX_SIZE, g["box_r"])
        # Stay one pixel away from face boundaries: there the pixel centre may fall on the other face.
        faces = [np.all(np.isclose(face_normal, f), -1) & ~np.isnan(t) for f in np.unique(face_normal[~np.isnan(t)], axis=0)]
        checked = []
        for f in faces:
            inner = f & ~_near_edge(f)
            expected = face_normal[inner] @ CAM[:3, :3]
            assert np.allclose(b["normal"][inner], expected, atol=1e-5)
            checked.append(int(inner.sum()))
        assert sum(n > 0 for n in checked) >= 2 and sum(checked) > 100  # two faces in view


def test_albedo_is_base_colour_untextured(frames):
    """sRGB convention: albedo stores the colour as written (display-encoded), round(255 x c)."""
    _, K, buffers, _ = frames
    _, _, t_in, _ = _sphere_hits(K, SPHERE_C)
    sphere = (~np.isnan(t_in)) & ~_near_edge(~np.isnan(t_in))
    assert np.all(buffers[0]["albedo"][sphere] == [0x33, 0x66, 0xCC])


def test_rgb_brighter_on_lit_side(frames):
    """The directional light travels towards -x: the sphere's +x half (image right) faces it."""
    _, K, buffers, _ = frames
    origin, dirs, t_in, _ = _sphere_hits(K, SPHERE_C)
    p = origin + t_in[..., None] * dirs
    sphere = ~np.isnan(t_in) & ~_near_edge(~np.isnan(t_in))
    lum = buffers[0]["rgb"].astype(float).sum(-1)
    lit = sphere & (p[..., 0] > SPHERE_C[0] + 0.2)
    dark = sphere & (p[..., 0] < SPHERE_C[0] - 0.2)
    assert lit.sum() > 50 and dark.sum() > 50
    assert lum[lit].mean() > 1.5 * lum[dark].mean()


def test_background(frames):
    _, K, buffers, geometry = frames
    origin, dirs = _rays(K, CAM)
    for b, g in zip(buffers, geometry):
        hit = ~np.isnan(_ray_sphere(origin, dirs, g["sphere_c"], SPHERE_R)[0])
        hit |= ~np.isnan(_ray_box(origin, dirs, g["box_c"], BOX_SIZE, g["box_r"])[0])
        bg = ~hit & ~_near_edge(hit)
        assert bg.sum() > 1000
        assert np.all(b["depth"][bg] == 0)
        assert np.all(b["instance"][bg] == 0)
        assert np.all(b["normal"][bg] == 0)
        assert np.all(b["albedo"][bg] == [0x33, 0x66, 0x99])
        assert np.all(b["rgb"][bg] == [0x33, 0x66, 0x99])


def test_texture_in_albedo(tmp_path):
    """A 2 x 2 checker on a plane: UVs are metres x texture_scale, v up (image row 0 is v = 1)."""
    import imageio.v3 as iio

    from hybrid.render import Rasterizer

    blocks = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    image = np.repeat(np.repeat(blocks, 32, axis=0), 32, axis=1)  # (64, 64, 3)
    path = tmp_path / "checker.png"
    iio.imwrite(path, image)
    tint = np.array([1.0, 0x80 / 255, 0x40 / 255])
    scene = Scene.model_validate(dict(
        name="texture-test", frames=1, resolution=[64, 48], camera=dict(fov_deg=60),
        objects=[dict(name="floor", shape=dict(type="plane", size=[2, 2]), physics=dict(body="static"),
                      look=dict(color="#ff8040", texture=str(path)))],
    ))
    cam = look_at_cam_to_world((0.0, -0.4, 1.6), (0.0, 0.0, 0.0))
    state = _state(["floor"], [(0, 0, 0)], [(0, 0, 0, 1)])
    with Rasterizer(scene) as rast:
        albedo = rast.render(state, cam)["albedo"]
    K = camera_track(scene).K
    u, v = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
    dirs = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ cam[:3, :3].T
    t = -cam[2, 3] / dirs[..., 2]
    x, y = cam[0, 3] + t * dirs[..., 0], cam[1, 3] + t * dirs[..., 1]
    fu, fv = np.mod(x, 1.0), np.mod(y, 1.0)
    col, row = (fu >= 0.5).astype(int), (fv < 0.5).astype(int)  # image row 0 holds v in [0.5, 1)
    # Block centres only: filtering across block edges is not what this test is about.
    inside = (np.abs(np.mod(fu, 0.5) - 0.25) < 0.15) & (np.abs(np.mod(fv, 0.5) - 0.25) < 0.15) & (np.abs(x) < 0.95) & (np.abs(y) < 0.95)
    assert inside.sum() > 100
    expected = np.floor(tint * blocks[row, col] + 0.5)
    assert np.abs(albedo[inside].astype(int) - expected[inside]).max() <= 1
    assert len({tuple(c) for c in expected[inside].astype(int)}) == 4  # all four blocks seen


@pytest.mark.parametrize("repeats", [64.0, 160.0])
def test_a_checker_too_fine_to_see_shows_the_mean_of_its_light(tmp_path, repeats):
    """A black-and-white checker far finer than a pixel reflects half the light of white.

    Seen straight down from 1.6 m (64 x 48 pixels, 60 degree field), a pixel spans
    2 x 1.6 x tan 30 / 64 = 0.029 m of floor: 118 texels of the 64-texel image at
    64 repeats per metre, 295 at 160, so the sampler reads the 1 x 1 level, the
    image's mean light: encode(0.5) = 0.7354 -> 188 in the albedo buffer (within one
    byte of rounding). Averaging the encoded values instead (OpenGL's stock mipmaps)
    gives 128. In the beauty pass under unit white ambient light the floor's
    radiance is (1 - S) 0.5 + S with S, the ambient specular albedo, in 0..0.04
    (beauty.frag's split sum for roughness 0.5 seen head on), so the rgb bytes,
    radiance^(1/2.2) x 255, lie in 186..190 (averaging the code: 126).
    """
    import imageio.v3 as iio

    from hybrid.render import Rasterizer

    cells = (np.indices((2, 2)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(np.repeat(cells, 32, axis=0), 32, axis=1)
    path = tmp_path / "checker.png"
    iio.imwrite(path, np.repeat(image[..., None], 3, axis=2))
    scene = Scene.model_validate(dict(
        name="fine-checker", frames=1, resolution=[64, 48], camera=dict(fov_deg=60),
        lights=[dict(type="ambient", intensity=1.0)],
        objects=[dict(name="floor", shape=dict(type="plane", size=[4, 4], texture_scale=repeats),
                      physics=dict(body="static"), look=dict(color="#ffffff", texture=str(path), roughness=0.5))],
    ))
    cam = look_at_cam_to_world((0.0, -1e-3, 1.6), (0.0, 0.0, 0.0))
    state = _state(["floor"], [(0, 0, 0)], [(0, 0, 0, 1)])
    with Rasterizer(scene) as rast:
        out = rast.render(state, cam)
    assert np.abs(out["albedo"].astype(int) - 188).max() <= 1
    assert out["rgb"].min() >= 186 and out["rgb"].max() <= 190


def test_shadows_as_lights_ask():
    """A box above the floor, light straight down: its footprint is shadowed only when the light asks."""
    from hybrid.render import Rasterizer

    def floor_lum(shadows: bool) -> tuple[float, float]:
        lights = [dict(type="ambient", intensity=0.2),
                  dict(type="directional", direction=[0, 0, -1], intensity=3.0, shadows=shadows)]
        if not shadows:
            # A dim shadowing light elsewhere turns directional shadows on for the type,
            # so the first light must be kept unshadowed one light at a time.
            lights.append(dict(type="directional", direction=[1, 0, -1], intensity=0.01, shadows=True))
        scene = Scene.model_validate(dict(
            name="shadow-test", frames=1, resolution=[64, 48], camera=dict(fov_deg=60), lights=lights,
            objects=[dict(name="floor", shape=dict(type="plane", size=[4, 4]), physics=dict(body="static")),
                     dict(name="lid", shape=dict(type="box", size=[0.6, 0.6, 0.1]), position=[0, 0, 1.0])],
        ))
        cam = look_at_cam_to_world((0.0, -2.5, 2.0), (0.0, 0.0, 0.0))
        state = _state(["floor", "lid"], [(0, 0, 0), (0, 0, 1.0)], [(0, 0, 0, 1)] * 2)
        with Rasterizer(scene) as rast:
            b = rast.render(state, cam)
        K = camera_track(scene).K
        u, v = np.meshgrid(np.arange(64) + 0.5, np.arange(48) + 0.5)
        dirs = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ cam[:3, :3].T
        t = -cam[2, 3] / dirs[..., 2]
        x, y = cam[0, 3] + t * dirs[..., 0], cam[1, 3] + t * dirs[..., 1]
        floor = b["instance"] == 1
        under = floor & (np.abs(x) < 0.2) & (np.abs(y) < 0.2)
        around = floor & (np.maximum(np.abs(x), np.abs(y)) > 0.6) & (np.maximum(np.abs(x), np.abs(y)) < 1.2)
        assert under.sum() > 5 and around.sum() > 50
        lum = b["rgb"].astype(float).sum(-1)
        return lum[under].mean(), lum[around].mean()

    under_on, around_on = floor_lum(True)
    under_off, around_off = floor_lum(False)
    assert under_on < 0.6 * around_on  # the footprint is in shadow
    assert under_off > 0.9 * around_off  # no shadow ...
    assert around_off > 0.9 * around_on  # ... and the unshadowed light still lights the floor


def test_two_rasterizers_in_one_process(frames):
    from hybrid.render import Rasterizer

    scene, _, buffers, _ = frames
    names = [o.name for o in scene.objects]
    state = _state(names, [SPHERE_C, BOX_C], [(0, 0, 0, 1), euler_deg_to_quat((0, 0, BOX_YAW))])
    first = Rasterizer(scene)
    second = Rasterizer(scene)
    try:
        a = first.render(state, CAM)
        b = second.render(state, CAM)
        second.close()
        again = first.render(state, CAM)  # still works after the other context is gone
    finally:
        first.close()
        second.close()
    for name in ("depth", "instance", "normal", "albedo", "rgb"):
        assert np.array_equal(a[name], b[name]) and np.array_equal(a[name], again[name]), name
        assert np.array_equal(a[name], buffers[0][name]), name


def test_state_must_match_scene(frames):
    from hybrid.render import Rasterizer

    scene = frames[0]
    with Rasterizer(scene) as rast:
        with pytest.raises(ValueError, match="do not match"):
            rast.render(_state(["crate", "ball"], np.zeros((2, 3)), [(0, 0, 0, 1)] * 2), CAM)


def test_gbuffer_alone_matches_the_full_render(frames):
    """beauty=False (a fresh rasterizer whose first pass has no beauty): no rgb, the same four buffers bit for bit."""
    from hybrid.render import Rasterizer

    scene, _, buffers, _ = frames
    names = [o.name for o in scene.objects]
    state = _state(names, [SPHERE_C, BOX_C], [(0, 0, 0, 1), euler_deg_to_quat((0, 0, BOX_YAW))])
    with Rasterizer(scene) as rast:
        alone = rast.render(state, CAM, beauty=False)
    assert set(alone) == {"depth", "instance", "normal", "albedo"}
    for name, arr in alone.items():
        assert arr.tobytes() == buffers[0][name].tobytes(), name


def test_a_glass_pane_lets_through_its_transmission_less_the_fresnel_reflectance():
    """The rasteriser's documented glass approximation (materials.py, beauty.frag): a pane of
    transmission t seen head-on passes t (1 - F0) of the light behind it, F0 = 0.04, and the
    instance buffer holds the first surface hit (the pane). Behind it an emitting wall (radiance
    independent of lighting); no lights, so the pane adds nothing of its own."""
    from hybrid.render.raster import Rasterizer

    wall = dict(name="wall", shape=dict(type="box", size=[2.0, 0.1, 2.0]), position=[0.0, 1.0, 0.0],
                physics=dict(body="static"), look=dict(color="black", emission="#ffffff", emission_strength=0.8))
    for t in (1.0, 0.6):
        pane = dict(name="pane", shape=dict(type="box", size=[0.6, 0.02, 0.6]), position=[0.0, 0.0, 0.0],
                    physics=dict(body="static"), look=dict(color="black", transmission=t, roughness=1.0))
        scene = Scene.model_validate(dict(
            name="glass", frames=1, resolution=[64, 48], background="#000000", lights=[],
            camera=dict(position=[0.0, -2.0, 0.0], look_at=[0.0, 0.0, 0.0], fov_deg=30), objects=[wall, pane],
        ))
        track = camera_track(scene)
        with Rasterizer(scene) as rast:
            state = _state(["wall", "pane"], [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], [[0, 0, 0, 1]] * 2)
            frame = rast.render(state, track.cam_to_world[0], hdr=True)
        centre = frame["hdr"][22:26, 30:34].mean(axis=(0, 1))
        edge = frame["hdr"][22:26, 2:4].mean(axis=(0, 1))  # the wall beside the pane
        assert (frame["instance"][22:26, 30:34] == 2).all() and (frame["instance"][22:26, 2:4] == 1).all()
        # At 2 m a 30 degree view meets the pane within 4 degrees of its normal: F differs
        # from F0 by 0.96 (1 - cos 4 deg)^5 < 1e-14.
        np.testing.assert_allclose(centre / edge, t * (1 - 0.04), rtol=2e-3)
