"""NeuralRenderer: deterministic for a seed, overlapping windows fed with the frames already made."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybrid.neural.conditioning import ConditionError, frames_to_uint8
from hybrid.neural.config import NeuralConfig
from hybrid.neural.model import VideoDenoiser
from hybrid.neural.sampler import NeuralRenderer, plan_windows, render_size

CONFIG = NeuralConfig(
    resolution=(16, 16), window=4, context_frames=2, condition=("albedo", "depth", "light"), base_channels=8,
    channel_mults=(1, 2), res_blocks=1, attention_heads=2, groups=4,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clip(frames: int = 11, height: int = 16, width: int = 16, speed: int = 1):
    """A 6x6 square (instance 1) sliding `speed` px right per frame over a background floor (instance 2)."""
    instance = np.full((frames, height, width), 2, np.uint16)
    fwd = np.zeros((frames, height, width, 2), np.float32)
    bwd = np.zeros((frames, height, width, 2), np.float32)
    for t in range(frames):
        x = 2 + speed * t
        instance[t, 5:11, x : x + 6] = 1
        if t + 1 < frames:
            fwd[t][instance[t] == 1] = (speed, 0)
        if t > 0:
            bwd[t][instance[t] == 1] = (-speed, 0)
    albedo = np.where(instance[..., None] == 1, [200, 40, 40], [90, 90, 90]).astype(np.uint8)
    buffers = {
        "instance": instance, "depth": np.full((frames, height, width), 4.0, np.float32), "albedo": albedo,
        "flow_fwd": fwd, "flow_bwd": bwd,
    }
    metadata = {
        "seed": 3,
        "cam_to_world": [np.eye(4).tolist()] * frames,
        "scene_spec": {"lights": [{"type": "directional", "direction": [0, 1, 1], "intensity": 3.0, "color": [1, 1, 1]}]},
    }
    return buffers, metadata


class Spy(torch.nn.Module):
    """Wraps a model and records every call's inputs."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, noisy, t, cond, context, mask):
        self.calls.append({k: v.clone() for k, v in dict(noisy=noisy, cond=cond, context=context, mask=mask).items()})
        return self.model(noisy, t, cond, context, mask)


def _renderer(seed: int = 0) -> NeuralRenderer:
    torch.manual_seed(seed)
    model = VideoDenoiser(CONFIG)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return NeuralRenderer(Spy(model), CONFIG)


def test_window_plan_and_render_size():
    assert plan_windows(11, 4, 2) == [(0, 0), (2, 2), (4, 2), (6, 2), (8, 2)]  # the last runs to frame 11: padded
    assert plan_windows(4, 4, 2) == [(0, 0)] and plan_windows(3, 4, 2) == [(0, 0)]
    assert plan_windows(5, 1, 0) == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)]
    default = NeuralConfig()
    assert render_size(default, 64, 64) == (64, 64)
    assert render_size(default, 240, 320) == (56, 72)  # 4:3 at about 64 x 64 pixels, multiples of 8
    assert render_size(default, 1080, 1920) == (48, 88)


def test_long_clip_windows_overlap_with_the_frames_already_made_as_context():
    """T = 11 with windows of 4 and 2 context frames: 5 windows; each later window's first two frames are the
    previous windows' output, marked as context; the last window is padded with the last frame's buffers."""
    renderer = _renderer()
    spy = renderer.model
    buffers, metadata = _clip()
    ticks = []
    out = renderer.render(buffers, metadata, steps=3, seed=0, progress=lambda d, n: ticks.append((d, n)))
    assert out.shape == (11, 16, 16, 3) and out.dtype == np.uint8
    assert len(spy.calls) == 15 and ticks[-1] == (15, 15) and len(ticks) == 15
    starts = [0, 2, 4, 6, 8]
    for w, start in enumerate(starts):
        for call in spy.calls[3 * w : 3 * w + 3]:
            mask = call["mask"][0]
            assert mask.tolist() == ([False] * 4 if w == 0 else [True, True, False, False])
            if w:
                np.testing.assert_array_equal(frames_to_uint8(call["context"][0, :2]), out[start : start + 2])
                assert torch.all(call["context"][0, 2:] == 0)
    last_cond = spy.calls[-1]["cond"][0]
    assert torch.equal(last_cond[3], last_cond[2])  # frame 11 does not exist: frame 10's buffers again


def test_same_seed_same_frames_other_seed_other_frames():
    buffers, metadata = _clip(frames=5)
    a = _renderer().render(buffers, metadata, steps=2, seed=7)
    b = _renderer().render(buffers, metadata, steps=2, seed=7)
    c = _renderer().render(buffers, metadata, steps=2, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    d = _renderer().render(buffers, metadata, steps=2, seed=7, scheduler="ddim")
    assert np.array_equal(d, _renderer().render(buffers, metadata, steps=2, seed=7, scheduler="ddim"))


def test_noise_follows_the_flow_and_frame_by_frame_uses_windows_of_one():
    buffers, metadata = _clip(frames=4, speed=1)
    renderer = _renderer()
    renderer.render(buffers, metadata, steps=1, seed=0)
    x = renderer.model.calls[0]["noisy"][0]  # the first step's input: the warped noise itself
    square_now, square_before = x[1, :, 5:11, 3:9], x[0, :, 5:11, 2:8]
    assert torch.equal(square_now, square_before)  # the square's noise moved with it
    assert torch.equal(x[1, :, 0, :], x[0, :, 0, :])  # so did the static floor's (it stayed put)

    renderer = _renderer()
    out = renderer.render(buffers, metadata, steps=2, seed=0, frame_by_frame=True)
    assert out.shape == (4, 16, 16, 3) and len(renderer.model.calls) == 8
    assert all(c["noisy"].shape[1] == 1 and not c["mask"].any() for c in renderer.model.calls)
    first = [c["noisy"][0, 0] for c in renderer.model.calls[::2]]
    assert not torch.equal(first[1][:, 0, :], first[0][:, 0, :])  # independent noise per frame


def test_non_square_clips_render_at_the_native_pixel_count_and_missing_inputs_are_named():
    buffers, metadata = _clip(frames=2, height=16, width=24)
    out = _renderer().render(buffers, metadata, steps=1)
    assert out.shape == (2, 14, 20, 3)  # 256 pixels at 3:2 -> 13.1 x 19.6, rounded to multiples of 2
    del buffers["flow_bwd"]
    with pytest.raises(ConditionError, match="need the buffers .* lacks flow_bwd"):
        _renderer().render(buffers, metadata, steps=1)
    assert _renderer().render(buffers, metadata, steps=1, warp_noise=False).shape == (2, 14, 20, 3)
    del buffers["albedo"]
    with pytest.raises(ConditionError, match="group 'albedo' needs the buffer 'albedo'"):
        _renderer().render(buffers, metadata, steps=1, warp_noise=False)


def test_detail_transfer_output_is_at_the_clip_resolution_and_keeps_the_raster_detail():
    """A 64x48 clip with a 16x16 model: frames come back at 48x64. Where the model's frame equals the
    raster beauty at its size (a model that copies its raster_beauty input), the output is the raster
    frame itself, every pixel and texel (the correction is zero)."""
    config = CONFIG.model_copy(update={"condition": ("albedo", "depth", "raster_beauty"), "output": "detail_transfer"})
    buffers, metadata = _clip(frames=3, height=48, width=64)
    rng = np.random.default_rng(0)
    buffers["normal"] = np.tile(np.array([0, 0, -1], np.float32), (3, 48, 64, 1))
    raster = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)  # fine texture the model never sees whole
    buffers["rgb"] = raster

    class CopyRaster(torch.nn.Module):
        def forward(self, noisy, t, cond, context, mask):
            return cond[:, :, 4:7]  # albedo 0-2, depth 3, raster_beauty 4-6; a "sample" prediction

    out = NeuralRenderer(CopyRaster(), config).render(buffers, metadata, steps=2, warp_noise=False)
    assert out.shape == (3, 48, 64, 3)
    assert np.abs(out.astype(int) - raster.astype(int)).max() <= 1  # float round trip of the codes


def test_reference_filter_width_softens_the_raster_frame_at_object_boundaries_only():
    """With a model that copies its raster input (zero correction) the output is the raster frame resampled
    by the pixel window where instance ids change and untouched elsewhere; a clip without the instance
    buffer is refused before any sampling, naming the setting."""
    from hybrid.neural.pixel_filter import geometric_edges, match_pixel_filter

    config = CONFIG.model_copy(update={"condition": ("albedo", "depth", "raster_beauty"), "output": "detail_transfer",
                                       "reference_filter_width": 1.5})
    buffers, metadata = _clip(frames=2, height=48, width=64)
    buffers["normal"] = np.tile(np.array([0, 0, -1], np.float32), (2, 48, 64, 1))
    buffers["instance"] = np.ones((2, 48, 64), np.uint16)
    buffers["instance"][:, 10:30, 20:40] = 2
    raster = np.where(buffers["instance"][..., None] == 2, 220, 40).astype(np.uint8).repeat(3, axis=-1)
    raster[:, 14:26, 24:36] = np.random.default_rng(0).integers(100, 255, (2, 12, 12, 3))  # texture: not an id change
    buffers["rgb"] = raster

    class CopyRaster(torch.nn.Module):
        def forward(self, noisy, t, cond, context, mask):
            return cond[:, :, 4:7]

    out = NeuralRenderer(CopyRaster(), config).render(buffers, metadata, steps=1, warp_noise=False)
    edges = geometric_edges(buffers["instance"], 1.5)
    assert np.abs(out[~edges].astype(int) - raster[~edges].astype(int)).max() <= 1  # float round trip
    want = match_pixel_filter(raster.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0, 1.5)
    want = ((want + 1) * 127.5).transpose(0, 2, 3, 1)
    assert np.abs(out[edges] - want[edges]).max() <= 1.0 and np.abs(out[edges].astype(int) - raster[edges]).max() > 10
    del buffers["instance"]
    with pytest.raises(ConditionError, match="reference_filter_width"):
        NeuralRenderer(CopyRaster(), config).render(buffers, metadata, steps=1, warp_noise=False)


def test_draws_run_as_one_batch_each_as_if_alone_and_one_draw_is_the_seeds_frames():
    """Draws are independent chains in one batch: each equals that chain run by itself (GroupNorm and
    attention never mix batch entries; float32 sums reordered by batching agree to 1e-5). One draw
    gives the frames the seed always gave, and the same seed the same averaged frames."""
    renderer = _renderer()
    buffers, metadata = _clip(frames=8)  # windows at 0, 2 and 4 end exactly at frame 8: no padding frames
    from hybrid.neural.conditioning import build_condition

    cond = build_condition(buffers, metadata, CONFIG.condition, (16, 16))
    noise = np.random.default_rng(5).standard_normal((3, 8, 3, 16, 16)).astype(np.float32)
    renderer.shared_context = False  # each draw continues from its own frames
    together = renderer._sample(cond, noise, 2, "dpmsolver++", 0, False, None)
    for d in range(3):
        alone = renderer._sample(cond, noise[d : d + 1], 2, "dpmsolver++", 0, False, None)
        assert torch.allclose(together[d], alone[0], atol=1e-5)
    renderer.shared_context = True  # every draw continues from the draws' mean (no correction_prior here)
    shared = renderer._sample(cond, noise, 2, "dpmsolver++", 0, False, None)
    assert torch.allclose(shared[:, :4], together[:, :4].mean(0).expand(3, -1, -1, -1, -1), atol=1e-6)  # first window
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[1], shared[2])
    one = renderer.render(buffers, metadata, steps=2, seed=4)
    assert np.array_equal(renderer.render(buffers, metadata, steps=2, seed=4, draws=1), one)
    three = renderer.render(buffers, metadata, steps=2, seed=4, draws=3)
    assert np.array_equal(renderer.render(buffers, metadata, steps=2, seed=4, draws=3), three)
    assert not np.array_equal(three, one)
    with pytest.raises(ValueError, match="draws"):
        renderer.render(buffers, metadata, steps=2, draws=0)


def test_correction_is_kept_where_the_draws_agree_and_shrunk_towards_the_raster_where_they_disagree():
    """prior / (prior + variance): draws that agree keep their mean correction; draws spread with variance
    equal to the prior keep half of it; no prior keeps the plain mean."""
    config = CONFIG.model_copy(update={"condition": ("albedo", "depth", "raster_beauty"), "output": "detail_transfer",
                                       "correction_prior": 0.01})
    renderer = NeuralRenderer(torch.nn.Identity(), config)
    t, h, w = 2, 8, 8
    cond = np.zeros((t, 7, h, w), np.float32)
    cond[:, 4:7] = 0.2  # the raster beauty at the working size
    made = torch.full((4, t, 3, h, w), 0.5)  # every draw says raster + 0.3
    assert torch.allclose(renderer._trusted_mean(made, cond), torch.full((t, 3, h, w), 0.5))
    spread = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1, 1, 1) * np.sqrt(0.01 * 3 / 4)  # unbiased variance 0.01
    shrunk = renderer._trusted_mean(made + spread, cond)
    assert torch.allclose(shrunk, torch.full((t, 3, h, w), 0.2 + 0.3 / 2), atol=1e-6)
    plain = NeuralRenderer(torch.nn.Identity(), config.model_copy(update={"correction_prior": 0.0}))
    assert torch.allclose(plain._trusted_mean(made + spread, cond), torch.full((t, 3, h, w), 0.5), atol=1e-6)
