"""The HDR beauty pass: linear float radiance against the shading formula worked out by hand.

The beauty pass (hybrid.render.beauty) writes unclamped linear radiance into an
RGBA16F target. Its shading model, term for term pyrender's (beauty.frag states it),
for one light of radiance E, with n.l and n.v clamped to [0.001, 1],
r = clamp(roughness, 0.04, 1), base the linear base colour:

    L = E nl [ (1 - F) c_diff / pi + F G D / (4 nl nv + 0.001) ]
    F = f0 + (1 - f0) (1 - vh)^5,  G = g(nl) g(nv),  g(x) = x / (x (1 - k) + k),  k = (r + 1)^2 / 8
    D = r^4 / (pi (nh^2 (r^4 - 1) + 1)^2),  c_diff = 0.96 base (1 - metallic),  f0 = mix(0.04, base, metallic)

Half floats keep about 11 significant bits: relative error at most 2^-11 (4.9e-4)
per stored value, once when drawn and once when the 4 samples are resolved.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.camera import camera_track
from hybrid.render.beauty import BeautyPrograms, encode_display
from hybrid.render.post import apply_chain
from hybrid.render.post.color import gamma_to_linear
from hybrid.scene.spec import Scene
from hybrid.state import State
from hybrid.transforms import look_at_cam_to_world

HALF_RTOL = 2e-3  # two half-float roundings (2 x 4.9e-4) plus float32 shading, with margin

# Straight down from 2 m: OpenCV camera x = world x, y = -world y, z = -world z.
CAM_HEIGHT = 2.0
DOWN = np.array([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, CAM_HEIGHT], [0, 0, 0, 1]])


def _state(scene: Scene) -> State:
    n = len(scene.objects)
    return State(
        frame=0, time_s=0.0, names=tuple(o.name for o in scene.objects),
        position=np.array([o.position for o in scene.objects], dtype=float),
        quaternion=np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)), linear_velocity=np.zeros((n, 3)),
        angular_velocity=np.zeros((n, 3)),
    )


def _plane_scene(intensity: float, roughness: float = 1.0, metallic: float = 0.0, color="white") -> Scene:
    """A 20 m square floor, no ambient light, one directional light shining straight down."""
    return Scene.model_validate(dict(
        name="hdr-plane", frames=1, resolution=[64, 48], camera=dict(fov_deg=50), background=[0, 0, 0],
        lights=[dict(type="directional", direction=[0, 0, -1], intensity=intensity, shadows=False)],
        objects=[dict(name="floor", shape=dict(type="plane", size=[20, 20]), physics=dict(body="static"),
                      look=dict(color=color, roughness=roughness, metallic=metallic))],
    ))


def _render(scene: Scene, cam: np.ndarray, hdr: bool = True) -> dict:
    from hybrid.render import Rasterizer

    with Rasterizer(scene) as rast:
        return rast.render(_state(scene), cam, hdr=hdr)


def _shader_radiance(n, v, l, E, base, roughness, metallic):
    """The shading formula of the module docstring, float64, for arrays of unit vectors (..., 3)."""
    r = np.clip(roughness, 0.04, 1.0)
    h = (l + v) / np.linalg.norm(l + v, axis=-1, keepdims=True)
    dot = lambda a, b: np.sum(a * b, axis=-1)  # noqa: E731
    nl = np.clip(dot(n, l), 0.001, 1.0)[..., None]
    nv = np.clip(np.abs(dot(n, v)), 0.001, 1.0)[..., None]
    nh = np.clip(dot(n, h), 0.0, 1.0)[..., None]
    vh = np.clip(dot(v, h), 0.0, 1.0)[..., None]
    base = np.asarray(base, dtype=np.float64)
    f0 = 0.04 * (1 - metallic) + base * metallic
    c_diff = base * 0.96 * (1 - metallic)
    F = f0 + (1 - f0) * (1 - vh) ** 5
    k = (r + 1) ** 2 / 8
    G = nv / (nv * (1 - k) + k) * nl / (nl * (1 - k) + k)
    a2 = r**4
    D = a2 / (np.pi * (nh**2 * (a2 - 1) + 1) ** 2)
    return E * nl * ((1 - F) * c_diff / np.pi + F * G * D / (4 * nl * nv + 0.001))


def _plane_geometry(scene: Scene):
    """Per pixel: the unit vector from the floor point seen through the pixel centre to the camera, (H, W, 3)."""
    K = camera_track(scene).K
    u, v = np.meshgrid(np.arange(scene.width) + 0.5, np.arange(scene.height) + 0.5)
    dirs = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ DOWN[:3, :3].T
    t = CAM_HEIGHT / -dirs[..., 2]
    to_cam = -t[..., None] * dirs
    return to_cam / np.linalg.norm(to_cam, axis=-1, keepdims=True)


@pytest.mark.parametrize(
    "intensity, roughness, metallic, color",
    [(1.0, 1.0, 0.0, "white"), (20.0, 1.0, 0.0, "white"), (20.0, 0.3, 0.0, "#c08040"), (6.0, 0.35, 0.8, "#d0d0d0")],
)
def test_radiance_is_the_shading_formula_unclamped(intensity, roughness, metallic, color):
    """Plane lit head-on (l = n = +z), camera straight above: every pixel against the formula at its own v.

    At the image centre v = n too, so nl = nv = nh = vh = 1, F = f0, D = 1 / (pi r^4),
    G = 1, and for a white dielectric of roughness 1 (D = 1/pi, k = 1/2):
    L = I / pi [0.96 x 0.96 + 0.04 / 4.001] = 0.296528 I; I = 20 gives 5.93: far above 1,
    so nothing is clamped.
    """
    scene = _plane_scene(intensity, roughness, metallic, color)
    hdr = _render(scene, DOWN)["hdr"]
    assert hdr.dtype == np.float32 and hdr.shape == (48, 64, 3)
    v = _plane_geometry(scene)
    n = l = np.broadcast_to([0.0, 0.0, 1.0], v.shape)
    base = np.power(np.asarray(scene.objects[0].look.color), 2.2)  # display colour -> linear (materials.py)
    expected = _shader_radiance(n, v, l, intensity, base, roughness, metallic)
    np.testing.assert_allclose(hdr, expected, rtol=HALF_RTOL, atol=1e-6)
    if (roughness, metallic, color) == (1.0, 0.0, "white"):
        centre = hdr[23:25, 31:33].mean(axis=(0, 1))
        np.testing.assert_allclose(centre, 0.296528 * intensity, rtol=HALF_RTOL)
    if intensity == 20.0:
        assert hdr.max() > 2.0


def _specular_albedo(f0, r, nv):
    """S = f0 A + B: Lazarov's fit of the split-sum GGX table, the shader's formula in float64."""
    q = r * np.array([-1.0, -0.0275, -0.572, 0.022]) + np.array([1.0, 0.0425, 1.04, -0.04])
    a004 = np.minimum(q[0] ** 2, np.exp2(-9.28 * nv)) * q[0] + q[1]
    return f0 * (-1.04 * a004 + q[2]) + (1.04 * a004 + q[3])


@pytest.mark.parametrize("roughness, metallic, color", [(0.4, 0.0, "#c08040"), (0.95, 0.0, "white"), (0.3, 1.0, "#d0a060")])
def test_ambient_light_is_reflected_by_the_split_sum(roughness, metallic, color):
    """A floor under ambient light of radiance L alone, camera straight above: every pixel is
    (1 - S) base (1 - metallic) L + S L at its own n.v (beauty.frag's header). At the centre of a
    white rough floor (r = 0.95, n.v = 1: a004 = 0.05 x 2^-9.28 + 0.016375 = 0.016456,
    A = 0.4966 - 1.04 a004 = 0.4795, B = 1.04 a004 - 0.0191 = -0.0020) S = 0.04 A + B = 0.0172:
    98 % of the light comes back diffuse. A metal keeps no diffuse term and reflects f0 A + B of L."""
    L = 0.5
    scene = Scene.model_validate(dict(
        name="ambient-plane", frames=1, resolution=[64, 48], camera=dict(fov_deg=50), background=[0, 0, 0],
        lights=[dict(type="ambient", intensity=L)],
        objects=[dict(name="floor", shape=dict(type="plane", size=[20, 20]), physics=dict(body="static"),
                      look=dict(color=color, roughness=roughness, metallic=metallic))],
    ))
    hdr = _render(scene, DOWN)["hdr"]
    nv = _plane_geometry(scene)[..., 2:3]  # n = +z
    base = np.power(np.asarray(scene.objects[0].look.color), 2.2)
    f0 = 0.04 * (1 - metallic) + base * metallic
    S = _specular_albedo(f0, np.clip(roughness, 0.04, 1.0), nv)
    expected = (1 - S) * base * (1 - metallic) * L + S * L
    np.testing.assert_allclose(hdr, expected, rtol=HALF_RTOL, atol=1e-6)
    if metallic == 0 and color == "white":
        assert S[24, 32, 0] == pytest.approx(0.0172, abs=1e-4)


def test_radiance_scales_linearly_with_light_intensity():
    """Doubling every light doubles the radiance of every lit or shadowed pixel (no clamp, no curve); the
    display-encoded rgb saturates instead. Shadow maps do not depend on intensity, so this holds in shadow too."""
    def scene(scale: float) -> Scene:
        return Scene.model_validate(dict(
            name="hdr-linear", frames=1, resolution=[96, 64], camera=dict(fov_deg=50), background=[0, 0, 0],
            lights=[dict(type="directional", direction=[-0.3, 0.2, -1], intensity=2.0 * scale, shadows=True),
                    dict(type="spot", position=[1.5, -1.0, 2.5], look_at=[0, 0, 0], intensity=15.0 * scale,
                         shadows=True),
                    dict(type="point", position=[-1.0, -1.0, 1.0], intensity=2.0 * scale)],
            objects=[dict(name="floor", shape=dict(type="plane", size=[6, 6]), physics=dict(body="static")),
                     dict(name="ball", shape=dict(type="sphere", radius=0.4), position=[0, 0, 0.6],
                          look=dict(color="#3366cc", roughness=0.3)),
                     dict(name="crate", shape=dict(type="box", size=[0.4, 0.4, 0.4]), position=[0.8, 0.5, 0.2],
                          look=dict(color="orange", metallic=0.7, roughness=0.4))],
        ))

    cam = look_at_cam_to_world((0.5, -3.0, 2.2), (0.0, 0.2, 0.3))
    one = _render(scene(1.0), cam)
    two = _render(scene(2.0), cam)
    drawn = one["instance"] > 0
    assert drawn.sum() > 0.5 * drawn.size
    # A black background keeps silhouette pixels (object and background samples averaged)
    # linear too. Exact in binary floating point (scaling by 2 commutes with every
    # rounding) but for half-float subnormals below 6e-5, whose absolute step is 6e-8.
    np.testing.assert_allclose(two["hdr"], 2.0 * one["hdr"], rtol=1e-6, atol=1.2e-7)
    bright = drawn[..., None] & (one["hdr"] > 0.6) & (one["hdr"] < 1.0)
    assert bright.sum() > 20 and two["hdr"][bright].min() > 1.0
    assert np.all(encode_display(two["hdr"])[bright] == 255)  # what the 8-bit pass kept of them


def _flat_interior(instance: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood shows one object with nearly one normal (all 4 samples see one surface)."""
    h, w = instance.shape
    pad_i = np.pad(instance, 1, mode="edge")
    pad_n = np.pad(normal, ((1, 1), (1, 1), (0, 0)), mode="edge")
    keep = np.ones((h, w), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            keep &= pad_i[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] == instance
            keep &= np.abs(pad_n[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - normal).max(axis=-1) < 0.1
    return keep


def test_encoded_hdr_matches_pyrenders_own_8_bit_pass():
    """rgb = round(255 clip(L, 0, 1)^(1/2.2)) against pyrender's pass on the same scene, lights and shadows.

    Untextured: our textures are sRGB textures filtered in linear light, which pyrender's
    shader would decode a second time (their checks: test_render.py's fine checker and
    test_cycles.py's texture against Cycles).

    Inside surfaces the two differ by at most one code (half-float storage, 8-bit
    rounding before pyrender's resolve). Along edges the HDR pass averages the 4
    samples in linear light and pyrender averaged encoded bytes; min(x, 1)^(1/2.2) is
    concave, so the encoded mean of light is never below the mean of encoded values
    (Jensen): edges, and highlights that cross 1 inside a pixel (pyrender clipped each
    sample, the HDR pass clips their mean), may only come out brighter, never darker by
    more than a code.
    """
    from hybrid.render import Rasterizer
    from hybrid.render.gl import pyrender

    scene = Scene.model_validate(dict(
        name="hdr-vs-pyrender", frames=1, resolution=[128, 96], camera=dict(fov_deg=50), background="#336699",
        # No ambient light: ours reflects it by the split sum, pyrender's adds base x ambient
        # (test_ambient_light_is_reflected_by_the_split_sum checks ours).
        lights=[# Shadows are off: ours differ from pyrender's by design (directional maps fitted
                # to the casters, a bias in texels without acne), tested against geometry in
                # test_shadow_fit.py and test_soft_shadows.py.
                dict(type="directional", direction=[-0.4, 0.3, -1], intensity=3.0, shadows=False),
                dict(type="spot", position=[1.5, -1.5, 2.5], look_at=[0, 0, 0], intensity=20.0, shadows=False),
                dict(type="point", position=[-1.0, -1.0, 1.2], intensity=1.5, color="#ffd0a0")],
        objects=[dict(name="floor", shape=dict(type="plane", size=[6, 6]), physics=dict(body="static"),
                      look=dict(color="#c8a060", roughness=0.8)),
                 dict(name="ball", shape=dict(type="sphere", radius=0.45), position=[-0.2, 0.1, 0.6],
                      look=dict(color="#3366cc", roughness=0.25)),
                 dict(name="crate", shape=dict(type="box", size=[0.5, 0.4, 0.6]), position=[0.9, 0.3, 0.3],
                      look=dict(color="orange", metallic=0.6, roughness=0.4))],
    ))
    cam = look_at_cam_to_world((0.3, -3.2, 1.8), (0.0, 0.2, 0.4))
    state = _state(scene)
    with Rasterizer(scene) as rast:
        buffers = rast.render(state, cam)
        hdr = rast.render_hdr(state, cam)
        rast.make_current()
        rast.set_frame(state, cam)
        old, _ = rast.renderer.render(rast.pyrender_scene, rast.rgb_flags | pyrender.RenderFlags.OFFSCREEN)
    assert np.array_equal(buffers["rgb"], encode_display(hdr))
    diff = buffers["rgb"].astype(int) - old.astype(int)
    # Below 0.9 on average no sample of a flat interior pixel reaches 1; nearer to 1 a
    # highlight may cross 1 inside the pixel (the ball's, under the unshadowed sun), where
    # the HDR pass is brighter by design (the docstring's Jensen case; checked below).
    interior = _flat_interior(buffers["instance"], buffers["normal"]) & (hdr.max(axis=-1) < 0.9)
    assert interior.sum() > 0.8 * interior.size
    assert np.abs(diff[interior]).max() <= 1
    assert diff.min() >= -1
    assert (np.abs(diff) > 1).any()  # edges do change: linear-light anti-aliasing is visible


def test_post_chain_sees_highlights_above_one():
    """Bloom with threshold 1 (no knee) leaves a frame with nothing above 1 unchanged, bit for bit; on the
    HDR frame of a plane lit at I = 20 (L ~ 5.9) it adds light, and ACES maps the HDR values above the
    ACES(1) = 0.80 that the 8-bit pass's clipped frame stops at."""
    scene = _plane_scene(20.0)
    buffers = _render(scene, DOWN, hdr=True)
    hdr = buffers["hdr"]
    clipped = gamma_to_linear(encode_display(hdr))  # what the chain received from the 8-bit pass
    assert clipped.max() <= 1.0 and hdr.min() > 1.0
    bloom = [{"type": "bloom", "threshold": 1.0, "soft_knee": 0.0, "intensity": 0.5}]
    tonemap = [{"type": "tonemap", "operator": "aces"}]
    assert np.array_equal(apply_chain(clipped, bloom + tonemap, rng=0), apply_chain(clipped, tonemap, rng=0))
    with_bloom = apply_chain(hdr, bloom + tonemap, rng=0).astype(int)
    without = apply_chain(hdr, tonemap, rng=0).astype(int)
    assert with_bloom.min() >= without.min() and (with_bloom > without).mean() > 0.5
    assert without.mean() > apply_chain(clipped, tonemap, rng=0).astype(int).mean() + 10


def test_unsupported_material_features_are_refused_by_name():
    from hybrid.render.gl import GLContext

    ctx = GLContext(8, 8)  # the program cache is a GL object: it needs a current context to exist
    try:
        with pytest.raises(ValueError, match="HAS_NORMAL_TEX"):
            BeautyPrograms().get_program("mesh.vert", "mesh.frag", defines={"INST_M_LOC": 1, "HAS_NORMAL_TEX": 1})
        with pytest.raises(RuntimeError, match="only replaces pyrender's mesh shader"):
            BeautyPrograms().get_program("text.vert", "text.frag")
    finally:
        ctx.close()
