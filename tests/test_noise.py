"""Flow-warped sampling noise: exactly N(0, 1) per pixel, independent pixels, glued to moving surfaces."""

from __future__ import annotations

import numpy as np

from hybrid.neural.noise import clip_noise, clip_visibility, resize_flow, warp_noise, warp_noise_anchored


def _zoom_flow(size: int, scale: float) -> np.ndarray:
    """Backward flow of a zoom by `scale` about the image centre: frame t's pixel p was at c + (p - c) / scale.

    With scale > 1 the picture grows, so several pixels of frame t come from the same pixel of t-1:
    the case where copying the nearest sample would give two pixels the same value.
    """
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = (size - 1) / 2
    flow = np.zeros((size, size, 2))
    flow[..., 0] = (centre + (cols - centre) / scale) - cols
    flow[..., 1] = (centre + (rows - centre) / scale) - rows
    return flow


def test_integer_translation_carries_noise_exactly_and_fills_the_entering_strip_with_fresh_noise():
    rng = np.random.default_rng(0)
    prev = rng.standard_normal((3, 16, 20)).astype(np.float32)
    flow = np.zeros((16, 20, 2))
    flow[..., 0], flow[..., 1] = -2.0, 1.0  # every point was 2 px left and 1 px down in frame t-1
    visible = np.ones((16, 20), bool)
    visible[:, :2] = visible[-1:, :] = False  # their points were outside frame t-1
    out = warp_noise(prev, flow, visible, rng)
    np.testing.assert_array_equal(out[:, :-1, 2:], prev[:, 1:, :-2])
    entering = out[:, ~visible]
    assert not np.isin(entering, prev).any()  # fresh draws, not copies of any old sample


def test_subpixel_motion_accumulates_instead_of_sticking_to_the_screen():
    """A surface sliding 0.25 px right per frame has moved 2 px after 8 frames: so has its noise."""
    size, frames = 24, 9
    flow = np.zeros((frames, size, size, 2))
    flow[1:, ..., 0] = -0.25
    visible = np.ones((frames, size, size), bool)
    visible[0] = False
    noise = clip_noise(frames, 2, size, size, flow, visible, seed=3)
    np.testing.assert_array_equal(noise[8][:, :, 4:], noise[0][:, :, 2:-2])


def test_warped_noise_is_standard_normal_and_never_shares_a_sample():
    """Zooming in by 1.3x three times over (sources claimed by several pixels, disocclusions at the border):
    over 400 draws of a 32x32 field, the mean is 0 and the variance 1 within 5 standard errors
    (mean: 5/sqrt(n); variance: 5 sqrt(2/n) for Gaussian samples), no pixel's mean strays beyond
    5/sqrt(400), neighbours are uncorrelated within 5/sqrt(n), and no two pixels hold the same sample."""
    size, draws = 32, 400
    flow = _zoom_flow(size, 1.3)
    rows, cols = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    src = np.stack([centre + (cols - centre) / 1.3, centre + (rows - centre) / 1.3], -1)
    visible = ((src >= -0.5) & (src <= size - 0.5)).all(-1)
    fields = np.empty((draws, size, size), np.float32)
    ids = 1000.0 + np.arange(size * size, dtype=np.float32).reshape(1, size, size)  # exact in float32
    rng = np.random.default_rng(11)
    for i in range(draws):
        noise, anchor = rng.standard_normal((1, size, size), dtype=np.float32), None
        for _ in range(3):
            # A second channel of distinct ids moves with the noise: carried ids must stay distinct
            # (fresh draws there are N(0, 1) values, far below 1000).
            noise, anchor = warp_noise_anchored(np.concatenate([noise, ids]), anchor, flow, visible, rng)
            carried = noise[1][noise[1] >= 1000]
            assert len(carried) > size * size // 2 and len(np.unique(carried)) == len(carried)
            noise = noise[:1]
        fields[i] = noise[0]
    n = fields.size
    assert abs(fields.mean()) < 5 / np.sqrt(n)
    assert abs(fields.var() - 1) < 5 * np.sqrt(2 / n)
    assert np.abs(fields.mean(axis=0)).max() < 5 / np.sqrt(draws)
    pairs = (fields[:, :, 1:] * fields[:, :, :-1]).ravel()
    assert abs(pairs.mean()) < 5 / np.sqrt(pairs.size)


def test_disoccluded_pixels_are_fresh_and_uncorrelated_with_the_previous_frame():
    """Pixels marked not visible take new noise: correlation with the old field at the same pixel and at the
    flow's source is 0 within 5/sqrt(n) over many draws."""
    size, draws = 16, 500
    flow = np.zeros((size, size, 2))
    flow[..., 0] = -3.0
    visible = np.ones((size, size), bool)
    visible[4:12, 4:10] = False  # e.g. uncovered behind an object that moved away
    same, source = [], []
    rng = np.random.default_rng(5)
    for _ in range(draws):
        prev = rng.standard_normal((1, size, size), dtype=np.float32)
        out = warp_noise(prev, flow, visible, rng)
        same.append(out[0][~visible] * prev[0][~visible])
        source.append(out[0, 4:12, 4:10] * prev[0, 4:12, 1:7])
    for products in (np.concatenate(same), np.concatenate(source)):
        assert abs(products.mean()) < 5 / np.sqrt(products.size)


def test_nan_flow_gives_fresh_noise_and_clip_noise_is_deterministic():
    rng = np.random.default_rng(0)
    prev = rng.standard_normal((1, 8, 8), dtype=np.float32)
    flow = np.zeros((8, 8, 2))
    flow[2, 3] = np.nan
    out = warp_noise(prev, flow, np.ones((8, 8), bool), rng)
    assert out[0, 2, 3] != prev[0, 2, 3]
    assert np.array_equal(np.delete(out.ravel(), 19), np.delete(prev.ravel(), 19))

    flows, vis = np.zeros((4, 8, 8, 2)), np.ones((4, 8, 8), bool)
    a = clip_noise(4, 3, 8, 8, flows, vis, seed=1)
    assert np.array_equal(a, clip_noise(4, 3, 8, 8, flows, vis, seed=1))
    assert not np.array_equal(a, clip_noise(4, 3, 8, 8, flows, vis, seed=2))
    assert a.dtype == np.float32 and np.array_equal(a[3], a[0])  # nothing moved: the same noise throughout


def test_visibility_of_a_moving_square_and_flow_resizing():
    """A square moving 2 px right: frame 1 sees everything frame 0 saw except the strip the square uncovered."""
    inst = np.zeros((2, 16, 16), np.uint16)
    inst[0, 4:10, 4:10] = 1
    inst[1, 4:10, 6:12] = 1
    fwd, bwd = np.zeros((2, 16, 16, 2), np.float32), np.zeros((2, 16, 16, 2), np.float32)
    fwd[0][inst[0] == 1] = (2, 0)
    bwd[1][inst[1] == 1] = (-2, 0)
    vis = clip_visibility(fwd, bwd, inst)
    assert not vis[0].any()
    hidden = np.zeros((16, 16), bool)
    hidden[4:10, 4:6] = True
    assert not vis[1][hidden].any() and vis[1][~hidden].all()

    small = resize_flow(bwd, (8, 8))
    assert small.shape == (2, 8, 8, 2) and small[1, 3, 4, 0] == -1.0  # 2 px at 16 px wide = 1 px at 8
