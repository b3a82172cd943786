"""VideoDenoiser and schedulers: shapes, frames tied by temporal layers, and a fixed batch it can overfit."""

from __future__ import annotations

import pytest
import torch

from hybrid.neural.config import NeuralConfig
from hybrid.neural.model import VideoDenoiser
from hybrid.neural.schedulers import SCHEDULERS, make_scheduler

TINY = dict(
    resolution=(16, 16), window=2, context_frames=1, condition=("albedo", "mask"), base_channels=8,
    channel_mults=(1, 2), res_blocks=1, attention_heads=2, groups=4,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(config: NeuralConfig, b: int = 1, t: int = 2, h: int = 16, w: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    noisy = torch.randn(b, t, 3, h, w, generator=g)
    cond = torch.randn(b, t, config.condition_channels, h, w, generator=g)
    context = torch.randn(b, t, 3, h, w, generator=g)
    mask = torch.zeros(b, t, dtype=torch.bool)
    return noisy, torch.full((b,), 500), cond, context, mask


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give the zero-initialised output layers weights too, as after some training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("temporal", ["attention", "conv"])
def test_shapes_and_frames_tied_together(temporal):
    config = NeuralConfig(**TINY, temporal=temporal)
    model = VideoDenoiser(config)
    noisy, t, cond, ctx, mask = _inputs(config, b=2, t=3, h=16, w=24)
    assert torch.all(model(noisy, t, cond, ctx, mask) == 0)  # zero-initialised output layer: a calm start
    model = _randomize(model).eval()
    with torch.no_grad():
        out = model(noisy, t, cond, ctx, mask)
        assert out.shape == (2, 3, 3, 16, 24)
        changed = noisy.clone()
        changed[:, 0] += 1.0
        diff = (model(changed, t, cond, ctx, mask) - out).abs().amax(dim=(0, 2, 3, 4))
        assert diff[1] > 1e-4 and diff[2] > 1e-6  # frame 0's input reaches the other frames
        # context is used only where the mask says so
        other_ctx = ctx.clone()
        other_ctx[:, 1:] = 0
        mask[:, 0] = True
        assert torch.equal(model(noisy, t, cond, ctx, mask), model(noisy, t, cond, other_ctx, mask))
        assert model(noisy[:, :1], t, cond[:, :1], ctx[:, :1], mask[:, :1]).shape == (2, 1, 3, 16, 24)
        with pytest.raises(ValueError, match="multiple of 2"):
            model(noisy[..., :15], t, cond[..., :15], ctx[..., :15], mask)
        with pytest.raises(ValueError, match="condition has 3 channels .* built for 4"):
            model(noisy, t, cond[:, :, :3], ctx, mask)


@pytest.mark.parametrize("prediction", ["sample", "v_prediction"])
def test_overfitting_a_fixed_batch_drives_the_loss_down(prediction):
    """40 Adam steps on one fixed (clean frames, noise, timesteps) batch: the MSE of the configured prediction
    (the default's clean frame, and v) falls below a fifth of where it started."""
    torch.manual_seed(0)
    config = NeuralConfig(**TINY, prediction_type=prediction)
    model = VideoDenoiser(config)
    sched = make_scheduler("ddpm", config)
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(2, 2, 3, 16, 16, generator=g) * 2 - 1
    noise = torch.randn(clean.shape, generator=g)
    t = torch.tensor([150, 650])
    cond = torch.randn(2, 2, config.condition_channels, 16, 16, generator=g)
    noisy = sched.add_noise(clean, noise, t)
    target = clean if prediction == "sample" else sched.get_velocity(clean, noise, t)
    ctx, mask = torch.zeros_like(clean), torch.zeros(2, 2, dtype=torch.bool)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(model(noisy, t, cond, ctx, mask), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.2 * losses[0], losses


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_shares_the_config_betas(name):
    config = NeuralConfig(**TINY)
    sched = make_scheduler(name, config)
    assert sched.config.num_train_timesteps == config.train_timesteps
    assert sched.config.prediction_type == config.prediction_type
    ref = make_scheduler("ddpm", config)
    torch.testing.assert_close(sched.alphas_cumprod, ref.alphas_cumprod)
    sched.set_timesteps(4)
    assert int(sched.timesteps[0]) == config.train_timesteps - 1  # starts from pure noise
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("heun", config)


def test_a_residual_model_starts_at_the_raster_frame():
    """With residual: true and the zero-initialised output layer, the prediction is exactly the raster_beauty
    channels, whatever the noise; once trained, the output is those channels plus the network's correction."""
    config = NeuralConfig(**{**TINY, "condition": ("albedo", "raster_beauty", "mask")}, residual=True)
    model = VideoDenoiser(config)
    noisy, t, cond, context, mask = _inputs(config)
    out = model(noisy, t, cond, context, mask)
    assert torch.equal(out, cond[:, :, 3:6])
    plain = VideoDenoiser(config.model_copy(update={"residual": False}))
    plain.load_state_dict(_randomize(model).state_dict())
    assert torch.allclose(model(noisy, t, cond, context, mask), plain(noisy, t, cond, context, mask) + cond[:, :, 3:6])
    with pytest.raises(ValueError, match="residual"):
        NeuralConfig(**TINY, residual=True)
