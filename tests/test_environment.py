"""The scene environment (`environment:` sky or equirect image): one radiance function, both back ends.

Expected values are worked by hand from the documented formulas (the sky gradient,
the equirect convention, the SH irradiance of Ramamoorthi & Hanrahan) and from
geometry (each pixel's ray); every tolerance says where it comes from. Renders are
tiny (at most 48x32 pixels, a few samples).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hybrid.camera import camera_track, intrinsics
from hybrid.render import sh
from hybrid.render.environment import (
    EnvironmentMap,
    background_radiance,
    direction_to_equirect,
    environment_map,
    environment_radiance,
    read_environment_image,
    texel_directions,
)
from hybrid.scene.errors import SceneError
from hybrid.scene.load import load_scene_text
from hybrid.scene.spec import SkyEnvironment
from hybrid.state import State

REPO = Path(__file__).resolve().parents[1]

# Hand-checkable sky: display colours whose gamma-2.2 decoding is exact (0 and 1).
PRIMARY_SKY = SkyEnvironment(type="sky", zenith=(1, 0, 0), horizon=(0, 1, 0), ground=(0, 0, 1), strength=2.0, sharpness=3.0)


def _rest_state(scene) -> State:
    from hybrid.transforms import rotation_quat

    n = len(scene.objects)
    return State(
        frame=0, time_s=0.0, names=tuple(o.name for o in scene.objects),
        position=np.array([o.position for o in scene.objects], dtype=np.float64).reshape(n, 3),
        quaternion=np.array([rotation_quat(o.rotation_deg, o.quaternion) for o in scene.objects]).reshape(n, 4),
        linear_velocity=np.zeros((n, 3)), angular_velocity=np.zeros((n, 3)),
    )


def _scene(tmp_path: Path, body: str, resolution=(48, 32)):
    text = f"name: t\nframes: 1\nresolution: [{resolution[0]}, {resolution[1]}]\nbackground: [0.2, 0.4, 0.6]\n{body}\n"
    return load_scene_text(text, str(tmp_path / "t.yaml"))


def _write_exr(path: Path, rgb: np.ndarray) -> None:
    import OpenEXR

    OpenEXR.File({"compression": OpenEXR.NO_COMPRESSION}, {"RGB": np.ascontiguousarray(rgb, dtype=np.float32)}).write(str(path))


def _smooth_image(width: int = 64, height: int = 32, mean: float = 0.5, amplitude: float = 0.4) -> np.ndarray:
    """mean + amplitude d (per channel x, y, z) at the texel centres: smooth, distinct in every direction."""
    d = texel_directions(width, height)
    return (mean + amplitude * d).astype(np.float32)


def _rz(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------- the radiance function


def test_sky_gives_the_hand_worked_colours():
    """L = strength (H + (end - H) w(|d_z|)), w(t) = 1 - (1 - t)^k; Z = red, H = green, G = blue, strength 2, k = 3."""
    env = EnvironmentMap.from_spec(PRIMARY_SKY)
    dirs = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, -1, 0], [-0.6, 0.8, 0], [0, 0, 5.0]])
    got = env.radiance(dirs)
    # zenith: w = 1 -> 2 Z; nadir: 2 G; the horizon at any azimuth: 2 H; length does not matter.
    expect = np.array([[2, 0, 0], [0, 0, 2], [0, 2, 0], [0, 2, 0], [0, 2, 0], [2, 0, 0]], dtype=float)
    np.testing.assert_allclose(got, expect, atol=1e-12)
    # d_z = +-0.5 (30 degrees up or down): w = 1 - 0.5^3 = 0.875 -> 2 (0.875, 0.125, 0) and mirrored.
    half = np.array([[math.sqrt(0.75), 0, 0.5], [0, math.sqrt(0.75), -0.5]])
    np.testing.assert_allclose(env.radiance(half), [[1.75, 0.25, 0], [0, 0.25, 1.75]], atol=1e-12)
    # The one function, given the spec itself.
    np.testing.assert_allclose(environment_radiance(PRIMARY_SKY, dirs), expect, atol=1e-12)


def test_equirect_convention_and_rotation():
    """u = 0.5 - (azimuth - rotation) / 2 pi, v = 0.5 - elevation / pi (module docstring)."""
    dirs = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [1, 0, 1]])
    u, v = direction_to_equirect(dirs)
    np.testing.assert_allclose(u, [0.5, 0.25, 0.0, 0.75, 0.5, 0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(v, [0.5, 0.5, 0.5, 0.5, 0.0, 1.0, 0.25], atol=1e-12)
    # Turned 90 degrees counterclockwise: the image centre now looks along +y.
    u, _ = direction_to_equirect(np.array([[0, 1, 0], [-1, 0, 0]]), rotation_deg=90.0)
    np.testing.assert_allclose(u, [0.5, 0.25], atol=1e-12)


def test_image_lookup_hits_the_expected_texel(tmp_path):
    """An 8 x 4 image whose texel (column i, row j) is (i, j, 1): texel-centre directions read their texel exactly;
    with rotation 45 degrees (one column) each texel is seen 45 degrees further counterclockwise."""
    w, h = 8, 4
    img = np.zeros((h, w, 3), dtype=np.float32)
    img[..., 0] = np.arange(w)[None, :]
    img[..., 1] = np.arange(h)[:, None]
    img[..., 2] = 1.0
    path = tmp_path / "columns.exr"
    _write_exr(path, img)
    np.testing.assert_array_equal(read_environment_image(str(path)), img)
    centres = texel_directions(w, h)  # rotation 0
    still = EnvironmentMap(kind="image", strength=1.0, visible=True, image=img)
    np.testing.assert_allclose(still.radiance(centres), img, atol=1e-9)
    # Column 4 (u = 0.5625) lies just clockwise of +x: azimuth -22.5 degrees.
    np.testing.assert_allclose(still.radiance(np.array([math.cos(-math.pi / 8), math.sin(-math.pi / 8), 0.0])), [4, 1.5, 1], atol=1e-9)
    turned = EnvironmentMap(kind="image", strength=3.0, visible=True, image=img, rotation_deg=45.0)
    np.testing.assert_allclose(turned.radiance(centres @ _rz(45.0).T), 3.0 * img, atol=1e-9)
    # Halfway between two texel centres in u: the mean of the two (bilinear), here columns 2 and 3.
    mid = np.array([math.cos(math.radians(45.0)), math.sin(math.radians(45.0)), 0.0])
    u, _ = direction_to_equirect(mid)
    assert u == pytest.approx(0.375)  # the boundary of columns 2 and 3: their centres are 0.3125 and 0.4375
    np.testing.assert_allclose(still.radiance(mid)[0], 2.5, atol=1e-9)


def test_radiance_hdr_files_are_read(tmp_path):
    """A Radiance RGBE file with run-length encoded scanlines: texel = mantissa x 2^(exponent - 136)."""
    w, h = 9, 2
    rng = np.random.default_rng(3)
    mant = rng.integers(1, 256, size=(h, w, 3), dtype=np.uint8)
    rows = []
    for j in range(h):
        line = bytes([2, 2, w >> 8, w & 255])
        for ch in range(3):  # literal chunks (count <= 128, then the bytes)
            line += bytes([w]) + mant[j, :, ch].tobytes()
        line += bytes([128 + w, 129])  # the exponent as one run: 2^(129 - 136) = 1/128
        rows.append(line)
    path = tmp_path / "sky.hdr"
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {h} +X {w}\n".encode() + b"".join(rows))
    np.testing.assert_array_equal(read_environment_image(str(path)), mant.astype(np.float32) / 128.0)


def test_png_environments_are_decoded_with_the_srgb_curve(tmp_path):
    import imageio.v3 as iio

    img = np.zeros((4, 8, 3), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 128, 10
    iio.imwrite(tmp_path / "e.png", img)
    got = read_environment_image(str(tmp_path / "e.png"))
    # sRGB: 1 -> 1; 128/255 -> ((0.50196 + 0.055) / 1.055)^2.4 = 0.21586; 10/255 -> 0.039216 / 12.92 = 0.0030353.
    np.testing.assert_allclose(got[0, 0], [1.0, 0.2158605, 0.0030353], rtol=1e-5)


# ---------------------------------------------------------------- spherical harmonics


def _cosine_lobe(l: int) -> float:
    """A_l of the clamped cosine (Ramamoorthi & Hanrahan 2001, eq. 8): 0 for odd l > 1."""
    if l == 1:
        return 2.0 * math.pi / 3.0
    if l % 2:
        return 0.0
    log_ratio = math.lgamma(l + 1) - l * math.log(2.0) - 2.0 * math.lgamma(l // 2 + 1)
    return 2.0 * math.pi * (-1) ** (l // 2 - 1) / ((l + 2) * (l - 1)) * math.exp(log_ratio)


def test_uniform_environment_gives_irradiance_pi_l_for_every_normal():
    table = np.full((16, 32, 3), 0.0)
    table[...] = [0.7, 1.3, 2.0]
    coeffs = sh.project_table(table, rotation_deg=17.0)
    normals = np.random.default_rng(0).normal(size=(50, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    # Cells are integrated exactly, so only L_00 = sqrt(4 pi) L survives: E = pi L to rounding.
    np.testing.assert_allclose(sh.irradiance(coeffs, normals), np.tile(math.pi * np.array([0.7, 1.3, 2.0]), (50, 1)), rtol=1e-12)
    assert sh.COSINE_LOBE[[0, 1, 4]] == pytest.approx([_cosine_lobe(0), _cosine_lobe(1), _cosine_lobe(2)])


def test_sky_sh_irradiance_is_within_the_order_two_bound_of_the_exact_integral():
    """Brute-force E(n) = sum L(w) max(0, n.w) dw over a 2048 x 1024 grid vs the nine-term SH irradiance.

    The dropped terms are sum_{l >= 4, even} A_l sum_m L_lm Y_lm(n) (A_3 = A_5 = 0). By
    Cauchy-Schwarz and the addition theorem (sum_m Y_lm(n)^2 = (2l + 1) / 4 pi) their size is
    at most C ||L - L_(l<=2)||, C = sqrt(sum_{l >= 4 even} A_l^2 (2l + 1) / 4 pi) = 0.128, and the
    residual norm is ||L||^2 - sum L_lm^2 (Parseval), both computed here: a bound derived for
    this sky, not a guess. For the smooth sky chosen (k = 1, so L is linear in d_z on each
    hemisphere with a kink at the horizon) it comes to 1.5-1.7 % of the zenith irradiance, in
    line with Ramamoorthi & Hanrahan's "under 1 % on average, 9 % at worst (a point light)".
    The 1e-4 allowance covers the two quadratures (the 1024 x 512 table's exact cells, the
    2048 x 1024 midpoint grid), which differ by about 1e-5 here.
    """
    env = EnvironmentMap.from_spec(SkyEnvironment(type="sky", sharpness=1.0))
    coeffs = sh.environment_sh(env)
    w, h = 2048, 1024
    d = texel_directions(w, h)
    edges = (0.5 - np.arange(h + 1) / h) * math.pi
    weights = (2.0 * math.pi / w) * (np.sin(edges[:-1]) - np.sin(edges[1:]))
    L = env.radiance(d)
    residual = np.sqrt(np.maximum((L**2 * weights[:, None, None]).sum((0, 1)) - (coeffs**2).sum(0), 0.0))
    C = math.sqrt(sum(_cosine_lobe(l) ** 2 * (2 * l + 1) / (4 * math.pi) for l in range(4, 4000, 2)))
    assert C == pytest.approx(0.1279, abs=1e-4)
    bound = C * residual + 1e-4
    for n in ([0, 0, 1], [0, 0, -1], [1, 0, 0], [0.5, 0.5, 0.7071], [0.3, -0.2, -0.9]):
        n = np.asarray(n) / np.linalg.norm(n)
        exact = (L * (np.maximum(d @ n, 0.0) * weights[:, None])[..., None]).sum((0, 1))
        approx = sh.irradiance(coeffs, n)
        assert (np.abs(approx - exact) <= bound).all(), (n, approx, exact, bound)
        assert (np.abs(approx - exact) <= 0.02 * exact).all()  # the bound, as a share: under 2 % here


# ---------------------------------------------------------------- the rasteriser


SMOOTH_ENV = "environment: {type: image, path: env.exr, rotation_deg: 30, strength: 1.5}"


@pytest.mark.parametrize("resolution", [(48, 32), (33, 20)])
def test_raster_background_is_the_environment_along_each_pixel_ray(tmp_path, resolution):
    from hybrid.render.beauty import encode_display
    from hybrid.render.raster import Rasterizer

    _write_exr(tmp_path / "env.exr", _smooth_image())
    body = f"{SMOOTH_ENV}\nlights: []\ncamera: {{position: [0, 0, 1], look_at: [1, 0.5, 1.3], fov_deg: 70}}"
    scene = _scene(tmp_path, body, resolution)
    cam = camera_track(scene).cam_to_world[0]
    expect = background_radiance(environment_map(scene), intrinsics(70, *resolution), cam, *resolution)
    hidden = scene.model_copy(update={"environment": scene.environment.model_copy(update={"visible": False})})
    with Rasterizer(scene) as raster:
        hdr = raster.render_hdr(_rest_state(scene), cam)
        rgb = raster.render(_rest_state(scene), cam)["rgb"]
    # Every pixel misses (no objects): the float frame holds the environment (float32 rounding);
    # the rgb bytes are its encoding, to one code where float32 rounding lands on a .5.
    np.testing.assert_allclose(hdr, expect, rtol=1e-6)
    assert np.abs(rgb.astype(int) - encode_display(expect).astype(int)).max() <= 1
    with Rasterizer(hidden) as raster:
        rgb = raster.render(_rest_state(hidden), cam)["rgb"]
    assert (rgb == [51, 102, 153]).all()  # `visible: false`: the background colour, 255 x (0.2, 0.4, 0.6)


def test_raster_background_around_an_object_is_the_environment(tmp_path):
    from hybrid.render.raster import Rasterizer

    _write_exr(tmp_path / "env.exr", _smooth_image())
    body = (
        f"{SMOOTH_ENV}\nlights: []\ncamera: {{position: [0, -3, 1], look_at: [0, 0, 1], fov_deg: 60}}\n"
        "objects:\n  - {name: ball, shape: {type: sphere, radius: 0.5}, position: [0, 0, 1], physics: {body: static}}"
    )
    scene = _scene(tmp_path, body)
    cam = camera_track(scene).cam_to_world[0]
    with Rasterizer(scene) as raster:
        out = raster.render(_rest_state(scene), cam, hdr=True)
    ids = out["instance"]
    pad = np.pad(ids, 1, mode="edge")
    clear = (np.lib.stride_tricks.sliding_window_view(pad, (3, 3)) == 0).all(axis=(-1, -2))  # no ball within a pixel
    assert clear.sum() > 500 and (ids == 1).sum() > 50
    expect = background_radiance(environment_map(scene), intrinsics(60, 48, 32), cam, 48, 32)
    np.testing.assert_allclose(out["hdr"][clear], expect[clear], rtol=1e-6)


@pytest.mark.parametrize("color", [1.0, 0.8])
def test_raster_furnace_plane_shows_albedo_times_radiance(tmp_path, color):
    """A plane facing up under a uniform environment L (no lights): E = pi L from the SH, and the
    split sum returns (1 - S) a L diffuse + S L specular (beauty.frag's header), S = f0 A + B at
    each pixel's n.v. A white plane (a = 1) returns exactly L, the furnace test.

    a = color^2.2 (display decoding); L = strength = 0.5; roughness 0.5 (the default look).
    The RGBA16F target keeps 11 significant bits: relative error at most 2^-11 = 4.9e-4, once
    when a sample is drawn and once when the 4 samples of a pixel are resolved (whose n.v
    differ from the centre's by far less than S's rounding matters).
    """
    from hybrid.render.environment import pixel_ray_directions
    from hybrid.render.raster import Rasterizer

    body = (
        "environment: {type: sky, zenith: [1, 1, 1], horizon: [1, 1, 1], ground: [1, 1, 1], strength: 0.5}\nlights: []\n"
        "camera: {position: [0, -1, 2], look_at: [0, 0, 0], fov_deg: 40}\n"
        f"objects:\n  - {{name: floor, shape: {{type: plane, size: [6, 6]}}, physics: {{body: static}}, look: {{color: [{color}, {color}, {color}]}}}}"
    )
    scene = _scene(tmp_path, body, (32, 32))
    cam = camera_track(scene).cam_to_world[0]
    with Rasterizer(scene) as raster:
        out = raster.render(_rest_state(scene), cam, hdr=True)
    assert (out["instance"] == 1).all()
    a, L, r = color**2.2, 0.5, scene.objects[0].look.roughness
    rays = pixel_ray_directions(intrinsics(40, 32, 32), cam, 32, 32)
    nv = -(rays / np.linalg.norm(rays, axis=-1, keepdims=True))[..., 2:3]  # n = +z
    q = r * np.array([-1.0, -0.0275, -0.572, 0.022]) + np.array([1.0, 0.0425, 1.04, -0.04])
    a004 = np.minimum(q[0] ** 2, np.exp2(-9.28 * nv)) * q[0] + q[1]
    S = 0.04 * (-1.04 * a004 + q[2]) + (1.04 * a004 + q[3])
    np.testing.assert_allclose(out["hdr"], np.broadcast_to(((1 - S) * a + S) * L, out["hdr"].shape), rtol=2 * 4.9e-4)


# ---------------------------------------------------------------- the spec


def test_an_environment_replaces_the_default_ambient_light_only(tmp_path):
    with_env = _scene(tmp_path, "environment: {type: sky}")
    assert [light.type for light in with_env.lights] == ["directional"]
    kept = _scene(tmp_path, "environment: {type: sky}\nlights: [{type: ambient, intensity: 0.2}]")
    assert [light.type for light in kept.lights] == ["ambient"]
    plain = _scene(tmp_path, "")
    assert [light.type for light in plain.lights] == ["ambient", "directional"]
    assert "environment" not in plain.model_dump()  # clip metadata of scenes without one is unchanged


def test_bad_environment_images_are_located_errors(tmp_path):
    with pytest.raises(SceneError) as err:
        _scene(tmp_path, "environment: {type: image, path: sky/missing.hdr}")
    text = str(err.value)
    assert "t.yaml:5:" in text and "environment.path" in text and str(tmp_path / "sky" / "missing.hdr") in text
    assert "relative paths start at the scene's folder" in text
    (tmp_path / "broken.exr").write_bytes(b"not an exr")
    with pytest.raises(SceneError, match=r"environment\.path: .*broken\.exr"):
        _scene(tmp_path, "environment: {type: image, path: broken.exr}")
    (tmp_path / "sky.bmp").write_bytes(b"BM")
    with pytest.raises(SceneError, match=r"\.bmp suffix: use a \.png or \.jpg \(sRGB\) or an \.exr or \.hdr"):
        _scene(tmp_path, "environment: {type: image, path: sky.bmp}")
    with pytest.raises(SceneError, match=r"environment\.strength"):
        _scene(tmp_path, "environment: {type: sky, strength: -1}")
    with pytest.raises(SceneError, match=r"unknown key `rotation_deg`"):
        _scene(tmp_path, "environment: {type: sky, rotation_deg: 3}")


# ---------------------------------------------------------------- Cycles



def _cycles():
    pytest.importorskip("bpy", reason="Blender as a Python module (pip install 'hybrid[cycles]') is not installed")
    from hybrid.render.cycles.options import CyclesOptions
    from hybrid.render.cycles.renderer import CyclesRenderer

    return CyclesRenderer, CyclesOptions


@pytest.mark.parametrize("look_at", [[1, 0, 0.2], [-0.5, -1, -0.3]])
def test_cycles_background_is_the_numpy_environment(tmp_path, look_at):
    """Camera rays that miss see the table the numpy function samples, turned by rotation_deg.

    Tolerance: a pixel is a filter-weighted mean of samples within the Blackman-Harris
    support (filter_width 1.5: 0.75 px either side), so it differs from the value at the
    centre by at most |grad L| x 0.75 px. L = 1.5 (0.5 + 0.4 d): at most 0.6 per radian
    along each table axis (bilinear lookup takes secants of it), so |grad L| <= 0.6 sqrt(2);
    a pixel spans at most 1 / fx = tan(35 deg) / 24 rad (fov 70 over 48 px). Bound:
    0.85 x 0.75 x 0.0292 = 0.0186. A wrong turn or mirrored convention would be off by ~0.5.
    """
    CyclesRenderer, CyclesOptions = _cycles()
    _write_exr(tmp_path / "env.exr", _smooth_image())
    scene = _scene(tmp_path, f"{SMOOTH_ENV}\nlights: []\ncamera: {{position: [0, 0, 0], look_at: {look_at}, fov_deg: 70}}")
    cam = camera_track(scene).cam_to_world[0]
    expect = background_radiance(environment_map(scene), intrinsics(70, 48, 32), cam, 48, 32)
    with CyclesRenderer(scene, CyclesOptions(samples=4, denoise=False, threads=1)) as cycles:
        hdr = cycles.render_hdr(_rest_state(scene), cam)
    bound = 0.6 * math.sqrt(2) * 0.75 * math.tan(math.radians(35)) / 24
    assert bound == pytest.approx(0.0186, abs=1e-4)
    assert np.abs(hdr - expect).max() <= bound


def test_cycles_sky_is_the_numpy_sky_and_hidden_shows_the_background(tmp_path):
    """The sky reaches Cycles baked at 1024 x 512 texels from the same function.

    Tolerance: the sky's slope in elevation is at most strength k |Z - H| per radian
    (k = 3; the default colours' largest linear gap, red's, is under 0.55), a pixel spans under
    tan(35 deg) / 24 = 0.029 rad, the filter reaches 0.75 px: 1.65 x 0.75 x 0.029 = 0.036;
    the bake's own bilinear error (0.35 degree texels) is far below that.
    """
    CyclesRenderer, CyclesOptions = _cycles()
    body = "environment: {type: sky}\nlights: []\ncamera: {position: [0, 0, 0], look_at: [1, 0.3, 0.1], fov_deg: 70}"
    scene = _scene(tmp_path, body)
    cam = camera_track(scene).cam_to_world[0]
    expect = background_radiance(environment_map(scene), intrinsics(70, 48, 32), cam, 48, 32)
    hidden = scene.model_copy(update={"environment": scene.environment.model_copy(update={"visible": False})})
    opts = CyclesOptions(samples=4, denoise=False, threads=1)
    with CyclesRenderer(scene, opts) as cycles:
        hdr = cycles.render_hdr(_rest_state(scene), cam)
    assert np.abs(hdr - expect).max() <= 0.036
    with CyclesRenderer(hidden, opts) as cycles:
        hdr = cycles.render_hdr(_rest_state(hidden), cam)
    # A constant stays itself under any pixel filter (float32 rounding).
    np.testing.assert_allclose(hdr, np.broadcast_to(np.array([0.2, 0.4, 0.6]) ** 2.2, hdr.shape), rtol=1e-5)


def test_cycles_furnace_plane_shows_albedo_times_radiance(tmp_path):
    """A white (a = 1) plane facing up under a uniform environment L = 0.5, no lights: radiance a L.

    Cycles' principled BSDF conserves energy at albedo 1 (its specular layer takes from
    the diffuse what it reflects), so the expected value is exactly L; below 1 the
    specular layer adds about 4 % of (1 - a) L, which the rasteriser leaves out. Noise:
    the 32 x 32 pixels are independent Monte Carlo estimates of 16 samples each; the
    plane's mean lies within 5 standard errors (std of the pixels / sqrt(1024)) of L.
    Measured: per-pixel std 2.8 % at 16 samples, so the allowance is about 0.45 %.
    """
    CyclesRenderer, CyclesOptions = _cycles()
    body = (
        "environment: {type: sky, zenith: [1, 1, 1], horizon: [1, 1, 1], ground: [1, 1, 1], strength: 0.5}\nlights: []\n"
        "camera: {position: [0, -1, 2], look_at: [0, 0, 0], fov_deg: 40}\n"
        "objects:\n  - {name: floor, shape: {type: plane, size: [6, 6]}, physics: {body: static}, look: {color: [1, 1, 1]}}"
    )
    scene = _scene(tmp_path, body, (32, 32))
    with CyclesRenderer(scene, CyclesOptions(samples=16, denoise=False, threads=1)) as cycles:
        passes = cycles.render_passes(_rest_state(scene), camera_track(scene).cam_to_world[0])
    assert (passes["instance"] == 1).all()
    hdr = passes["hdr"].reshape(-1, 3).astype(np.float64)
    standard_error = hdr.std(axis=0) / math.sqrt(len(hdr))
    assert (standard_error < 0.01 * 0.5).all()  # the sample count gives a tight mean at all
    assert (np.abs(hdr.mean(axis=0) - 0.5) <= 5 * standard_error).all(), (hdr.mean(axis=0), standard_error)


def test_a_scene_with_an_environment_renders_with_both_back_ends_from_the_cli(tmp_path):
    """`hybrid render` end to end: the same exact buffers, and background pixels that agree between back ends."""
    pytest.importorskip("bpy", reason="Blender as a Python module (pip install 'hybrid[cycles]') is not installed")
    import imageio.v3 as iio

    from hybrid.cli import main
    from hybrid.io.clip import read_clip

    img = np.round(_smooth_image(128, 64, mean=0.6, amplitude=0.3) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "env.png", img)
    (tmp_path / "s.yaml").write_text(
        "name: s\nframes: 1\nresolution: [48, 32]\n"
        "environment: {type: image, path: env.png, rotation_deg: -60}\n"
        "camera: {position: [0, -3, 1.2], look_at: [0, 0, 0.8], fov_deg: 60}\n"
        "objects:\n  - {name: ball, shape: {type: sphere, radius: 0.4}, position: [0, 0, 0.4], physics: {body: static}}\n"
    )
    args = ["render", str(tmp_path / "s.yaml"), "-q"]
    assert main([*args, "--out", str(tmp_path / "raster")]) == 0
    assert main([*args, "--out", str(tmp_path / "cycles"), "--renderer", "cycles", "--samples", "4", "--no-denoise"]) == 0
    raster, traced = read_clip(tmp_path / "raster"), read_clip(tmp_path / "cycles")
    assert np.array_equal(raster.buffers["instance"], traced.buffers["instance"])
    ids = raster.buffers["instance"][0]
    pad = np.pad(ids, 1, mode="edge")
    clear = (np.lib.stride_tricks.sliding_window_view(pad, (3, 3)) == 0).all(axis=(-1, -2))
    diff = np.abs(raster.buffers["rgb"][0].astype(int) - traced.buffers["rgb"][0].astype(int))[clear]
    # Texels hold sRGB codes of 0.6 + 0.3 d, whose decoding has slope <= 1.98 (at 0.9): radiance
    # changes by <= 0.3 x 1.98 sqrt(2) = 0.84 per radian; the filter reaches 0.75 px of
    # tan(30 deg) / 24 rad: 0.0152 radiance. The rgb curve 255 L^(1/2.2) has slope <= 482 codes
    # per unit above the darkest texel (sRGB 0.3 -> 0.073): 7.3 codes, plus one for the two roundings.
    assert clear.sum() > 500 and diff.max() <= 9
