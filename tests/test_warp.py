"""Warping along exact flow and the covisibility mask, on motions worked out by hand."""

from __future__ import annotations

import numpy as np

from hybrid.render.warp import covisible, sample_bilinear, warp_previous


def _shifted_square(dx: int, dy: int = 0, size: int = 32):
    """Frame t-1: a square (instance 1, value 1) on background 0; frame t: the same square moved by (dx, dy).

    Exact flows: on the square, bwd = (-dx, -dy) in frame t and fwd = (dx, dy) in frame t-1;
    the static background has zero flow.
    """
    inst_prev = np.zeros((size, size), np.uint16)
    inst_prev[8:20, 8:20] = 1
    inst = np.roll(np.roll(inst_prev, dy, axis=0), dx, axis=1)
    fwd_prev = np.zeros((size, size, 2), np.float32)
    fwd_prev[inst_prev == 1] = (dx, dy)
    bwd = np.zeros((size, size, 2), np.float32)
    bwd[inst == 1] = (-dx, -dy)
    return inst_prev, inst, fwd_prev, bwd


def test_warp_moves_an_image_by_its_flow_exactly():
    rng = np.random.default_rng(0)
    prev = rng.random((16, 20, 3))
    flow = np.zeros((16, 20, 2))
    flow[..., 0], flow[..., 1] = 2.0, -1.0  # every point was 2 px right and 1 px up in the previous frame
    out = warp_previous(prev, flow)
    np.testing.assert_allclose(out[1:, :-2], prev[:-1, 2:], atol=1e-12)


def test_bilinear_interpolates_between_pixel_centres():
    image = np.array([[0.0, 10.0], [20.0, 30.0]])
    assert sample_bilinear(image, np.array(0.5), np.array(0.5)) == 15.0
    assert sample_bilinear(image, np.array(0.25), np.array(0.0)) == 2.5


def test_nan_flow_gives_nan():
    flow = np.zeros((4, 4, 2))
    flow[1, 2] = np.nan
    out = warp_previous(np.ones((4, 4)), flow)
    assert np.isnan(out[1, 2]) and np.isfinite(np.delete(out.ravel(), 6)).all()


def test_covisible_excludes_exactly_the_uncovered_and_newly_covered_strips():
    """The square moves 3 px right: in frame t its left 3 columns' old place is uncovered background,
    visible in both; the background the square now covers (its new right 3 columns) was seen in t-1 as
    background, but those pixels now show the square, whose points were all visible before. What frame t
    sees that t-1 did not: nothing on the square; on the background, the strip the square left was hidden."""
    inst_prev, inst, fwd_prev, bwd = _shifted_square(3)
    mask = covisible(bwd, fwd_prev, inst, inst_prev)
    assert mask[inst == 1].all()  # every point of the square was visible in frame t-1
    hidden = np.zeros_like(mask)
    hidden[8:20, 8:11] = True  # background just uncovered: hidden behind the square in frame t-1
    assert not mask[hidden].any()
    assert mask[~hidden & (inst == 0)].all()


def test_covisible_drops_targets_outside_the_image():
    inst_prev, inst, fwd_prev, bwd = _shifted_square(0)
    bwd[:, :2] = (-5.0, 0.0)
    mask = covisible(bwd, fwd_prev, inst, inst_prev)
    assert not mask[:, :2].any() and mask[:, 2:].all()
