"""The neural renderer's correction carried along the exact flow (hybrid.neural.temporal), checked by hand."""

import numpy as np
import pytest

from hybrid.neural.temporal import carry_along_flow
from hybrid.render.warp import covisible_clip


def _translating(frames=6, h=12, w=20, shift=2):
    """A surface sliding `shift` pixels right per frame: flows exact, pixels entering on the left disoccluded."""
    flow_bwd = np.zeros((frames, h, w, 2), np.float32)
    flow_bwd[..., 0] = -shift  # frame t's pixel p was at p - shift in frame t-1
    flow_fwd = np.zeros((frames, h, w, 2), np.float32)
    flow_fwd[..., 0] = shift
    instance = np.ones((frames, h, w), np.int64)
    return flow_bwd, flow_fwd, instance


def test_a_correction_attached_to_a_moving_surface_is_kept_exactly():
    """A pattern fixed on the surface is what every frame predicts: carrying it changes nothing."""
    flow_bwd, flow_fwd, instance = _translating()
    frames, h, w = instance.shape
    cols = np.arange(w)[None, :] - 2 * np.arange(frames)[:, None]  # surface coordinate of each pixel
    values = np.broadcast_to(np.sin(0.7 * cols)[:, None, None, :], (frames, 2, h, w)).astype(np.float32)
    visible = covisible_clip(flow_bwd, flow_fwd, instance)
    out = carry_along_flow(values, flow_bwd, visible, 0.3)
    assert np.abs(out - values).max() < 1e-6  # whole-pixel shifts: bilinear warping is exact


def test_independent_errors_shrink_by_blend_over_two_minus_blend_and_disocclusions_start_afresh():
    """A static surface, each frame's value the truth plus independent noise of variance s^2: after the
    recursion has settled the variance is s^2 blend / (2 - blend) (geometric series of (1 - blend)^2)."""
    rng = np.random.default_rng(0)
    frames, h, w, blend = 60, 40, 40, 0.4
    flow = np.zeros((frames, h, w, 2), np.float32)
    instance = np.ones((frames, h, w), np.int64)
    visible = covisible_clip(flow, flow, instance)
    visible[:, :, :5] = False  # a strip disoccluded every frame
    noise = rng.standard_normal((frames, 1, h, w)).astype(np.float32)
    out = carry_along_flow(noise, flow, visible, blend)
    settled = out[30:, :, :, 5:]
    expected = blend / (2 - blend)  # 0.25
    # 30 x 1400 samples, correlated along time over about 1 / blend frames: the variance
    # estimate's relative standard error is about sqrt(2 / (30 x 1400 x blend)) < 2 %; allow 8 %.
    assert abs(settled.var() / expected - 1) < 0.08
    assert np.array_equal(out[:, :, :, :5], noise[:, :, :, :5])  # nothing carried into disoccluded pixels
    assert np.array_equal(carry_along_flow(noise, flow, visible, 1.0), noise)


def test_blend_outside_its_range_is_refused():
    flow_bwd, flow_fwd, instance = _translating(frames=2)
    with pytest.raises(ValueError, match="blend"):
        carry_along_flow(np.zeros((2, 1, 12, 20), np.float32), flow_bwd, np.zeros((2, 12, 20), bool), 0.0)
