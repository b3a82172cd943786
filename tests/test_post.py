"""Post-processing of the beauty frame (hybrid.render.post): each effect against its formula.

Effects are called on planar (3, H, W) float32 frames, as the chain runs them; the
chain itself is tested end to end on (H, W, 3) input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from hybrid.camera import intrinsics
from hybrid.render.post import (
    EFFECTS,
    GAME_LOOK,
    Frame,
    PostError,
    accumulate_subframes,
    apply_chain,
    decode_srgb8,
    encode_srgb8,
    gamma_to_linear,
    linear_to_srgb,
    parse_chain,
    shutter_weights,
    srgb_to_linear,
    subframe_schedule,
)
from hybrid.render.post import spec as S
from hybrid.render.post.aberration import chromatic_aberration
from hybrid.render.post.bloom import bloom
from hybrid.render.post.dof import _tile_spread, coc_diameter_px, depth_of_field, focal_length_m
from hybrid.render.post.exposure import exposure
from hybrid.render.post.filters import COLS, ROWS, blur121, downsample2, upsample2
from hybrid.render.post.grade import color_grade, planck_xy, white_xy, RGB_TO_XYZ
from hybrid.render.post.grain import film_grain
from hybrid.render.post.tonemap import aces_fit, reinhard
from hybrid.render.post.vignette import vignette

RNG = np.random.default_rng(0)


def planar(h: int, w: int, value=0.0) -> np.ndarray:
    return np.full((3, h, w), value, dtype=np.float32)


def run(fn, rgb, params, depth=None, K=None, seed=0):
    return fn(Frame(rgb=rgb, depth=depth, K=K), params, np.random.default_rng(seed))


# ---------------------------------------------------------------- colour


def test_srgb_bytes_round_trip_exactly():
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(encode_srgb8(decode_srgb8(codes)), codes)
    assert np.array_equal(encode_srgb8(srgb_to_linear(codes.astype(np.float32) / 255)), codes)


def test_linear_to_srgb_is_the_piecewise_curve():
    x = np.concatenate([np.linspace(0, 0.01, 1001), np.linspace(0.01, 1, 1001)])
    ref = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
    assert np.abs(linear_to_srgb(x) - ref).max() < 2e-6
    assert np.abs(srgb_to_linear(linear_to_srgb(x)) - x).max() < 2e-6
    # Out of range light is clipped: the display cannot show it.
    assert linear_to_srgb(np.array([-1.0, 5.0])).tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_gamma_to_linear_inverts_pyrender_output_curve():
    codes = np.arange(256, dtype=np.uint8)
    linear = gamma_to_linear(codes)
    assert np.array_equal(np.round(255 * linear.astype(np.float64) ** (1 / 2.2)).astype(np.uint8), codes)
    # The two curves differ in the shadows: decoding pyrender's bytes as sRGB is wrong there.
    assert np.abs(encode_srgb8(linear).astype(int) - codes).max() >= 8


# ---------------------------------------------------------------- shared filters


@pytest.mark.parametrize("n", [1, 2, 5, 16])
@pytest.mark.parametrize("step", [1, 2, 8])
def test_blur121_is_the_reflected_binomial_and_keeps_the_sum(n, step):
    x = RNG.random((2, n, n), dtype=np.float32)
    i = np.arange(n)

    def reflect(j):  # half-sample symmetric: -1 -> 0, n -> n - 1
        j = np.mod(j, 2 * n)
        return np.where(j < n, j, 2 * n - 1 - j)

    ref = 0.25 * x[:, reflect(i - step)] + 0.5 * x + 0.25 * x[:, reflect(i + step)]
    assert np.allclose(blur121(x, ROWS, step), ref, atol=1e-6)
    transposed = np.ascontiguousarray(np.swapaxes(x, 1, 2))
    assert np.allclose(blur121(transposed, COLS, step), np.swapaxes(ref, 1, 2), atol=1e-6)
    assert blur121(x, ROWS, step).sum() == pytest.approx(x.sum(), rel=1e-5)


def test_down_and_upsampling_keep_the_mean_and_upsampling_is_bilinear():
    x = RNG.random((3, 8, 6), dtype=np.float32)
    assert downsample2(x).shape == (3, 4, 3)
    assert downsample2(x).mean() == pytest.approx(x.mean(), rel=1e-6)
    up = upsample2(x, (16, 12))
    assert up.mean() == pytest.approx(x.mean(), rel=1e-6)
    # Output pixel (r, c) has its centre at input coordinate ((r + 0.5) / 2 - 0.5, ...), clamped.
    r = np.clip((np.arange(16) + 0.5) / 2 - 0.5, 0, 7)
    c = np.clip((np.arange(12) + 0.5) / 2 - 0.5, 0, 5)
    r0, c0 = np.minimum(r.astype(int), 6), np.minimum(c.astype(int), 4)
    fr, fc = (r - r0)[:, None], (c - c0)[None, :]
    ref = ((1 - fr) * (1 - fc) * x[:, r0][:, :, c0] + (1 - fr) * fc * x[:, r0][:, :, c0 + 1]
           + fr * (1 - fc) * x[:, r0 + 1][:, :, c0] + fr * fc * x[:, r0 + 1][:, :, c0 + 1])
    assert np.allclose(up, ref, atol=1e-6)
    assert upsample2(x, (15, 11)).shape == (3, 15, 11)


@pytest.mark.parametrize("shape", [(64, 64), (40, 72), (17, 9)])
def test_tile_spread_is_the_max_over_neighbouring_tiles(shape):
    a = RNG.random(shape).astype(np.float32) * (RNG.random(shape) > 0.95)
    got = _tile_spread(a)
    t = 16
    for i in range(0, shape[0], 5):
        for j in range(0, shape[1], 5):
            ti, tj = i // t, j // t
            block = a[max(0, (ti - 1) * t) : (ti + 2) * t, max(0, (tj - 1) * t) : (tj + 2) * t]
            assert got[i, j] == block.max()


# ---------------------------------------------------------------- exposure, tone mapping


def test_exposure_doubles_linear_values_per_stop():
    rgb = RNG.random((3, 8, 8), dtype=np.float32) * 4
    assert np.array_equal(run(exposure, rgb, S.Exposure(ev=1)), rgb * 2)
    assert np.array_equal(run(exposure, rgb, S.Exposure(ev=-2)), rgb / 4)


@pytest.mark.parametrize("curve", [aces_fit, reinhard, lambda x: reinhard(x, 4.0)], ids=["aces", "reinhard", "reinhard_white"])
def test_tone_curves_monotonic_zero_and_saturating(curve):
    x = np.concatenate([np.linspace(0, 4, 4001), np.geomspace(4, 1e5, 200)]).astype(np.float32)
    y = curve(x)
    assert y[0] == 0
    assert np.all(np.diff(y) >= 0)
    assert np.all(y <= 1)
    assert y[-1] > 0.999
    assert curve(np.float32([-1.0]))[0] == 0  # negative light counts as black


def test_reinhard_white_point_maps_to_one():
    assert reinhard(np.float32([4.0]), 4.0)[0] == pytest.approx(1.0, abs=1e-6)
    assert reinhard(np.float32([1.0]))[0] == pytest.approx(0.5)


def test_tonemap_white_only_for_reinhard():
    with pytest.raises(ValidationError, match="white"):
        S.ToneMap(operator="aces", white=2.0)


# ---------------------------------------------------------------- bloom


def test_bloom_leaves_a_frame_below_the_knee_unchanged():
    params = S.Bloom(threshold=1.0, soft_knee=0.5, intensity=2.0)
    rgb = RNG.random((3, 32, 32), dtype=np.float32) * 0.5  # max channel <= t (1 - knee) = 0.5
    assert np.array_equal(run(bloom, rgb, params), rgb)


def test_bloom_adds_intensity_times_energy_above_threshold():
    # A grey 2x2 block aligned with the half-resolution grid: its half-resolution pixel
    # has value v, of which v - t per channel passes the hard threshold; the pyramid
    # keeps the sum, so the frame gains intensity * 4 * 3 (v - t).
    t, v, intensity = 1.0, 5.0, 0.7
    rgb = planar(64, 64)
    rgb[:, 30:32, 30:32] = v
    out = run(bloom, rgb, S.Bloom(threshold=t, soft_knee=0.0, intensity=intensity, levels=4))
    gained = out.astype(np.float64).sum() - rgb.astype(np.float64).sum()
    assert gained == pytest.approx(intensity * 4 * 3 * (v - t), rel=1e-4)
    glow = out - rgb
    assert np.all(glow >= -1e-6)
    assert glow[0, 31, 40] > 0 and glow[0, 31, 50] > 0  # spread beyond the block
    assert glow[0, 31, 40] > glow[0, 31, 50]  # falling off with distance


def test_bloom_soft_knee_starts_below_threshold():
    rgb = planar(8, 8, 0.9)  # inside the knee [0.5, 1.5] of threshold 1
    out = run(bloom, rgb, S.Bloom(threshold=1.0, soft_knee=0.5, intensity=1.0, levels=2))
    # soft = (0.9 - 1 + 0.5)^2 / (4 * 0.5) = 0.08 of 0.9 per channel, spread evenly over a flat frame.
    assert np.allclose(out - rgb, 0.9 * 0.08 / 0.9, atol=1e-5)


# ---------------------------------------------------------------- depth of field


H = W = 96
C = 48  # the centre pixel
K = intrinsics(45.0, W, H)
# A large sensor and a wide aperture, so blur at this small size spans many pixels.
DOF = S.DepthOfField(focus_distance_m=2.0, f_number=0.7, sensor_height_mm=100.0, max_coc_px=24.0)


def second_moment(img: np.ndarray, r: int, c: int) -> float:
    """Per-axis second moment (pixels^2) of a non-negative (H, W) spread about pixel (r, c)."""
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    w = img / img.sum()
    return float(((ys - r) ** 2 * w).sum() + ((xs - c) ** 2 * w).sum()) / 2


def thin_lens_coc(z: float) -> float:
    f = focal_length_m(K, H, DOF.sensor_height_mm)
    s = DOF.focus_distance_m
    return min(K[1, 1] * (f / DOF.f_number) * s / (s - f) * abs(1 / z - 1 / s), DOF.max_coc_px)


def test_focal_length_from_field_of_view():
    # A 36 mm sensor height with a 45 degree vertical field of view: f = 18 mm / tan(22.5 deg).
    assert focal_length_m(K, H, 36.0) == pytest.approx(0.018 / math.tan(math.radians(22.5)))
    assert focal_length_m(intrinsics(45.0, 640, 480), 480, 36.0) == pytest.approx(focal_length_m(K, H, 36.0))


def test_dof_leaves_the_focus_plane_unchanged():
    rgb = RNG.random((3, H, W), dtype=np.float32) * 3
    depth = np.full((H, W), DOF.focus_distance_m, dtype=np.float32)
    assert np.array_equal(run(depth_of_field, rgb, DOF, depth, K), rgb)


@pytest.mark.parametrize("z", [0.5, 0.7, 1.0, 1.3, 1.6, 2.6, 4.0, 8.0, 0.0], ids=lambda z: f"z{z}")
def test_dof_blur_matches_thin_lens_coc(z):
    # A dot on a plane at depth z spreads like a disc of the thin-lens CoC diameter c:
    # per-axis second moment c^2 / 16, so c = 4 sqrt(moment). z = 0 is the background at
    # infinity; z = 0.5 hits the max_coc_px cap.
    rgb = planar(H, W)
    rgb[:, C, C] = 100.0
    depth = np.full((H, W), z, dtype=np.float32)
    out = run(depth_of_field, rgb, DOF, depth, K)
    assert out.sum() == pytest.approx(rgb.sum(), rel=1e-4)  # blur moves light, never makes it
    measured = 4 * math.sqrt(second_moment(out[0], C, C))
    expected = thin_lens_coc(z if z > 0 else math.inf)
    assert expected > 1.5
    assert measured == pytest.approx(expected, abs=0.25)


def test_dof_blur_grows_with_inverse_depth_distance():
    def spread(z):
        rgb = planar(H, W)
        rgb[:, C, C] = 1.0
        out = run(depth_of_field, rgb, DOF, np.full((H, W), z, dtype=np.float32), K)
        return second_moment(out[1], C, C)

    # Same |1/z - 1/s| on both sides of the focus plane (s = 2): same blur.
    assert spread(1.0) == pytest.approx(spread(0.0), rel=1e-3)
    far = [spread(z) for z in (2.0, 2.5, 3.5, 6.0, 0.0)]
    near = [spread(z) for z in (2.0, 1.8, 1.5, 1.2)]
    assert far[0] == 0 and near[0] == 0
    assert all(np.diff(far) > 0) and all(np.diff(near) > 0)


def test_dof_coc_formula_background_at_infinity():
    depth = np.tile(np.array([[0.0, 2.0, 4.0]], dtype=np.float32), (H, 1))
    c = coc_diameter_px(depth, K, 2.0, 1.4, 36.0)
    f = focal_length_m(K, H, 36.0)
    assert c[0, 0] == pytest.approx(K[1, 1] * f / (1.4 * (2.0 - f)), rel=1e-5)
    assert c[0, 1] == 0
    assert c[0, 2] == pytest.approx(c[0, 0] / 2, rel=1e-5)


def test_dof_sharp_object_does_not_bleed_into_blurred_background():
    # Left: a bright object in focus; right: a dark background far behind it.
    rgb = planar(H, W)
    rgb[:, :, :C] = 4.0
    depth = np.full((H, W), 0.0, dtype=np.float32)
    depth[:, :C] = DOF.focus_distance_m
    out = run(depth_of_field, rgb, DOF, depth, K)
    assert np.array_equal(out[:, :, :C], rgb[:, :, :C])
    # A plain blur would put half the object's light on the background's first columns.
    assert out[:, :, C:].max() < 0.02 * 4.0


def test_dof_blurred_foreground_spreads_over_sharp_background():
    rgb = planar(H, W)
    rgb[:, :, :C] = 1.0  # a white foreground object in front of the focus plane
    depth = np.full((H, W), DOF.focus_distance_m, dtype=np.float32)
    depth[:, :C] = 1.0
    out = run(depth_of_field, rgb, DOF, depth, K)
    assert out[1, C, C] > 0.2  # its blur covers the in-focus background next to it
    assert out[1, C, C] > out[1, C, C + 2] > out[1, C, C + 4] > 0
    assert 0.5 < out[1, C, C - 1] < 1  # and its own edge softens
    assert np.array_equal(out[:, :, C + 40 :], rgb[:, :, C + 40 :])  # out of reach: untouched


def test_dof_needs_depth_and_k():
    rgb = np.zeros((8, 8, 3), dtype=np.float32)
    with pytest.raises(PostError, match="depth_of_field needs depth and K"):
        apply_chain(rgb, [{"type": "depth_of_field", "focus_distance_m": 2.0}], rng=0)
    with pytest.raises(PostError, match="needs K"):
        apply_chain(rgb, [{"type": "depth_of_field", "focus_distance_m": 2.0}], depth=np.ones((8, 8)), rng=0)


# ---------------------------------------------------------------- motion blur


@pytest.mark.parametrize("shutter", ["box", "triangle"])
def test_motion_blur_spreads_a_moving_dot_over_its_path(shutter):
    n, v = 8, 10.0
    frames = []
    for i in range(n):
        f = np.zeros((16, 32, 3), dtype=np.float32)
        f[5, 10 + i] = v  # one pixel per sub-frame
        frames.append(f)
    out = accumulate_subframes(frames, shutter)
    assert out.sum() == pytest.approx(3 * v, rel=1e-6)  # energy conserved
    path = out[5, 10 : 10 + n, 0]
    assert np.allclose(path, v * shutter_weights(n, shutter), rtol=1e-6)
    assert np.count_nonzero(out[..., 0]) == n
    if shutter == "box":
        assert np.allclose(path, v / n)
    else:
        assert np.allclose(path, path[::-1]) and path.argmax() in (n // 2 - 1, n // 2)


def test_subframe_schedule_is_centred_on_the_frame():
    offsets, weights = subframe_schedule(S.MotionBlur(samples=4, shutter_angle_deg=180))
    assert offsets.tolist() == pytest.approx([-0.1875, -0.0625, 0.0625, 0.1875])
    assert weights.sum() == pytest.approx(1.0)


def test_motion_blur_in_the_chain_needs_its_sub_frames():
    chain = [{"type": "motion_blur", "samples": 4}]
    stack = np.zeros((4, 8, 8, 3), dtype=np.float32)
    stack[:, 2, 2] = 0.5
    out = apply_chain(stack, chain, rng=0)
    assert np.array_equal(out, encode_srgb8(stack[0]))  # a static scene stays sharp
    with pytest.raises(PostError, match="sub-frames"):
        apply_chain(stack[0], chain, rng=0)
    with pytest.raises(PostError, match="samples=4"):
        apply_chain(stack[:3], chain, rng=0)


# ---------------------------------------------------------------- vignette, aberration


def test_vignette_keeps_the_centre_and_darkens_corners_by_amount():
    amount = 0.4
    rgb = planar(65, 65, 1.0)  # odd size: one pixel sits exactly at the centre
    out = run(vignette, rgb, S.Vignette(amount=amount, falloff=2.0))
    assert np.all(out[:, 32, 32] == 1.0)
    # The corner pixel's centre is at r = 64 / 65 of the centre-to-corner distance.
    assert out[0, 0, 0] == pytest.approx(1 - amount * (64 / 65) ** 2, rel=1e-6)
    assert out[0, 0, 0] == pytest.approx(1 - amount, abs=0.02)
    row = out[0, 32, 32:]
    assert np.all(np.diff(row) < 0)


def test_chromatic_aberration_moves_red_out_and_blue_in():
    rgb = planar(64, 64, 0.3)
    assert np.allclose(run(chromatic_aberration, rgb, S.ChromaticAberration(shift_px=2.0)), rgb, atol=1e-6)
    dot = planar(64, 64)
    dot[:, 8, 8] = 1.0  # near the top-left corner
    out = run(chromatic_aberration, dot, S.ChromaticAberration(shift_px=2.0))
    assert np.array_equal(out[1], dot[1])

    def centroid(img):
        ys, xs = np.mgrid[0:64, 0:64]
        return np.array([(ys * img).sum(), (xs * img).sum()]) / img.sum()

    radial = np.array([8.5 - 32, 8.5 - 32]) / math.hypot(32, 32)
    moved_r = (centroid(out[0]) - centroid(dot[0])) @ radial / np.linalg.norm(radial)
    moved_b = (centroid(out[2]) - centroid(dot[2])) @ radial / np.linalg.norm(radial)
    # Displacement at radius r: shift * r / R, with r / R the dot's relative radius.
    expected = 2.0 * math.hypot(23.5, 23.5) / math.hypot(32, 32)
    assert moved_r == pytest.approx(expected, abs=0.1)
    assert moved_b == pytest.approx(-expected, abs=0.1)


# ---------------------------------------------------------------- grain


def test_grain_is_zero_mean_on_flat_grey_and_scales_with_midtones():
    intensity = 0.05
    grey = planar(256, 256, 0.5)
    out = run(film_grain, grey, S.FilmGrain(intensity=intensity), seed=3)
    noise = (out - grey)[0].astype(np.float64)
    assert np.allclose(out[0], out[1]) and np.allclose(out[0], out[2])  # monochrome
    assert abs(noise.mean()) < 4 * intensity / 256  # 4 standard errors
    assert noise.std() == pytest.approx(intensity, rel=0.03)  # 4 Y (1 - Y) = 1 at Y = 0.5
    ends = planar(4, 4)
    ends[:, :2] = 1.0
    assert np.array_equal(run(film_grain, ends, S.FilmGrain(intensity=intensity)), ends)


def test_grain_is_deterministic_per_seed():
    rgb = RNG.random((32, 32, 3)).astype(np.float32)
    chain = [{"type": "tonemap"}, {"type": "film_grain", "intensity": 0.1}]
    a = apply_chain(rgb, chain, rng=np.random.default_rng(7))
    assert np.array_equal(a, apply_chain(rgb, chain, rng=np.random.default_rng(7)))
    assert not np.array_equal(a, apply_chain(rgb, chain, rng=np.random.default_rng(8)))


# ---------------------------------------------------------------- grading


def test_neutral_grade_is_the_identity():
    rgb = RNG.random((3, 16, 16), dtype=np.float32) * 5
    assert np.array_equal(run(color_grade, rgb, S.ColorGrade()), rgb)


def linear_rgb_of_xy(x: float, y: float) -> np.ndarray:
    xyz = np.array([x / y, 1.0, (1 - x - y) / y])
    return np.linalg.solve(RGB_TO_XYZ, xyz).astype(np.float32)


@pytest.mark.parametrize("temperature,tint", [(3000.0, 0.0), (9000.0, 0.0), (6504.0, 0.5), (4500.0, -0.3)])
def test_white_balance_renders_its_white_neutral(temperature, tint):
    white = linear_rgb_of_xy(*white_xy(temperature, tint))
    rgb = np.broadcast_to(white[:, None, None], (3, 2, 2)).copy()
    out = run(color_grade, rgb, S.ColorGrade(temperature_k=temperature, tint=tint))
    assert np.allclose(out[:, 0, 0], out[1, 0, 0], rtol=1e-4)


def test_white_balance_direction():
    grey = planar(2, 2, 0.5)
    cool = run(color_grade, grey, S.ColorGrade(temperature_k=3000))
    warm = run(color_grade, grey, S.ColorGrade(temperature_k=10000))
    magenta = run(color_grade, grey, S.ColorGrade(tint=0.5))
    assert cool[2, 0, 0] > cool[0, 0, 0] and warm[0, 0, 0] > warm[2, 0, 0]
    assert magenta[1, 0, 0] < min(magenta[0, 0, 0], magenta[2, 0, 0])
    assert planck_xy(6500) == pytest.approx((0.3135, 0.3237), abs=2e-4)  # black body at 6500 K


def test_contrast_pivots_on_mid_grey_and_saturation_zero_is_grey():
    rgb = planar(1, 3)
    rgb[:, 0, :] = np.array([0.18, 0.9, 0.05], dtype=np.float32)
    out = run(color_grade, rgb, S.ColorGrade(contrast=1.5))
    assert out[0, 0].tolist() == pytest.approx([0.18, 0.18 * 5**1.5, 0.18 * (0.05 / 0.18) ** 1.5], rel=1e-5)
    colour = RNG.random((3, 4, 4), dtype=np.float32)
    flat = run(color_grade, colour, S.ColorGrade(saturation=0.0))
    luma = 0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2]
    assert np.allclose(flat, luma[None], atol=1e-6)


def test_lift_gamma_gain_is_an_asc_cdl():
    rgb = RNG.random((3, 4, 4), dtype=np.float32)
    params = S.ColorGrade(lift=(0.01, 0.0, -0.01), gamma=(1.0, 2.0, 0.5), gain=(1.2, 1.0, 0.8))
    out = run(color_grade, rgb, params)
    slope = np.array(params.gain)[:, None, None]
    offset = np.array(params.lift)[:, None, None]
    power = 1 / np.array(params.gamma)[:, None, None]
    assert np.allclose(out, np.maximum(rgb * slope + offset, 0) ** power, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- the chain


def test_every_spec_type_has_an_effect():
    members = S.EffectSpec.__origin__.__args__  # Annotated[Union[...], ...]
    assert {m.model_fields["type"].default for m in members} == set(EFFECTS)


def test_chain_validates_from_plain_dicts():
    specs = parse_chain([dict(d) for d in GAME_LOOK])
    assert [s.type for s in specs] == ["exposure", "bloom", "color_grade", "vignette", "tonemap", "film_grain"]
    assert isinstance(specs[1], S.Bloom) and specs[1].threshold == 1.0


def test_chain_errors_are_located():
    with pytest.raises(ValidationError) as err:
        parse_chain([{"type": "exposure"}, {"type": "bloom", "threshold": -1}])
    assert err.value.errors()[0]["loc"] == (1, "bloom", "threshold")
    with pytest.raises(ValidationError) as err:
        parse_chain([{"type": "bloom", "treshold": 1}])
    assert err.value.errors()[0]["loc"] == (0, "bloom", "treshold")
    assert err.value.errors()[0]["type"] == "extra_forbidden"
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        parse_chain([{"type": "blom"}])


@pytest.mark.parametrize(
    "chain,message",
    [
        ([{"type": "tonemap"}, {"type": "vignette"}], "vignette works on linear scene light: move it before the tonemap at \\[0\\]"),
        ([{"type": "film_grain"}, {"type": "bloom"}], "move it before film_grain at \\[0\\]"),
        ([{"type": "exposure"}, {"type": "motion_blur"}], "motion_blur must be the first effect"),
        ([{"type": "tonemap"}, {"type": "tonemap", "operator": "reinhard"}], "tone-maps once"),
    ],
)
def test_chain_order_errors_name_the_effect(chain, message):
    with pytest.raises(ValidationError, match=message) as err:
        parse_chain(chain)
    assert getattr(err.value.errors()[0]["ctx"]["error"], "at") == (1,)


def test_apply_chain_is_deterministic_and_leaves_its_inputs_alone():
    rgb = (RNG.random((48, 40, 3)) ** 2 * 3).astype(np.float32)
    depth = np.where(RNG.random((48, 40)) > 0.5, 1.5, 4.0).astype(np.float32)
    k = intrinsics(50.0, 40, 48)
    chain = [
        {"type": "exposure", "ev": 0.5},
        {"type": "depth_of_field", "focus_distance_m": 1.5, "f_number": 2.0, "sensor_height_mm": 36},
        {"type": "chromatic_aberration"},
        *GAME_LOOK,
    ]
    before = rgb.copy(), depth.copy()
    out = apply_chain(rgb, chain, depth=depth, K=k, rng=np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == (48, 40, 3)
    assert np.array_equal(rgb, before[0]) and np.array_equal(depth, before[1])
    assert np.array_equal(out, apply_chain(rgb, chain, depth=depth, K=k, rng=np.random.default_rng(1)))


def test_empty_chain_clips_and_encodes():
    rgb = np.array([[[0.0, 0.5, 2.0]]], dtype=np.float32)
    assert apply_chain(rgb, [], rng=0).tolist() == [[[0, 188, 255]]]


def test_apply_chain_rejects_bytes():
    with pytest.raises(PostError, match="gamma_to_linear"):
        apply_chain(np.zeros((4, 4, 3), dtype=np.uint8), [], rng=0)
