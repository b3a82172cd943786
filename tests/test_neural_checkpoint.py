"""Checkpoint folders: save and load give the same model; every way a checkpoint can be bad is a clear error."""

from __future__ import annotations

import json

import pytest
import torch

from hybrid.neural.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hybrid.neural.config import NeuralConfig
from hybrid.neural.model import VideoDenoiser

TINY = dict(
    resolution=(16, 16), window=2, context_frames=1, condition=("albedo", "mask"), base_channels=8,
    channel_mults=(1, 2), res_blocks=1, attention_heads=2, groups=4,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def saved(tmp_path):
    config = NeuralConfig(**TINY)
    torch.manual_seed(0)
    model = VideoDenoiser(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = save_checkpoint(tmp_path / "ckpt", model, config, {"steps": 3, "dataset": "tiny"})
    return path, model, config


def test_save_then_load_gives_identical_outputs(saved, tmp_path):
    path, model, config = saved
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "info.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folders left behind
    loaded, loaded_config, info = load_checkpoint(path)
    assert loaded_config == config and info == {"steps": 3, "dataset": "tiny"} and not loaded.training
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(1, 2, 3, 16, 16, generator=g), torch.tensor([10]),
            torch.randn(1, 2, 4, 16, 16, generator=g), torch.zeros(1, 2, 3, 16, 16), torch.zeros(1, 2, dtype=torch.bool))
    with torch.no_grad():
        assert torch.equal(model.eval()(*args), loaded(*args))
    save_checkpoint(path, loaded, config, {"steps": 4})  # replacing a checkpoint is fine
    assert load_checkpoint(path / "config.json")[2] == {"steps": 4}  # a file inside the folder works too


def test_refuses_to_overwrite_a_folder_that_is_not_a_checkpoint(saved, tmp_path):
    _, model, config = saved
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not hold a checkpoint"):
        save_checkpoint(other, model, config)
    assert (other / "todo.txt").read_text() == "keep me"


def test_missing_folder_and_files(saved, tmp_path):
    path, _, _ = saved
    with pytest.raises(CheckpointError, match=r"does not exist.*training/train.py"):
        load_checkpoint(tmp_path / "nowhere")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model.safetensors is missing"):
        load_checkpoint(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config.json is missing"):
        load_checkpoint(path)


def test_truncated_and_corrupt_weights(saved):
    path, _, _ = saved
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors is not a readable safetensors file .* truncated or corrupt"):
        load_checkpoint(path)
    flipped = bytearray(data)
    flipped[-10] ^= 0x40  # one bit inside the last tensor's bytes: the header still parses
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=r"model.safetensors: the tensor bytes do not match the checksum"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config_name_the_tensor_and_the_condition_channels(saved):
    path, _, _ = saved
    cfg = json.loads((path / "config.json").read_text())
    cfg["condition"] = ["albedo", "normal", "mask"]  # 7 condition channels; the weights take 4
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "conv_in.weight" in msg and "take 4 condition channels" in msg and "gives 7" in msg
    cfg["condition"], cfg["base_channels"] = ["albedo", "mask"], 16
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="has shape .* the config needs"):
        load_checkpoint(path)


def test_unknown_format_and_bad_config(saved):
    path, _, _ = saved
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "format": "hybrid-neural/9"}))
    with pytest.raises(CheckpointError, match=r"format 'hybrid-neural/9' is not one this version of hybrid reads"):
        load_checkpoint(path)
    (path / "config.json").write_text(json.dumps({**cfg, "window": "eight"}))
    with pytest.raises(CheckpointError, match=r"config.json: window: "):
        load_checkpoint(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON"):
        load_checkpoint(path)


def test_init_from_adds_condition_groups_that_change_nothing_until_trained(saved):
    """A fine-tune that adds the field groups starts exactly where the checkpoint is: the new
    input weights are zero, so whatever the new channels hold, the output is the old one."""
    from hybrid.neural.checkpoint import init_from_checkpoint
    from hybrid.neural.conditioning import condition_channels

    path, model, config = saved
    grown = NeuralConfig(**{**TINY, "condition": ("albedo", "gas", "mask", "liquid")})
    torch.manual_seed(5)
    new = VideoDenoiser(grown)
    report = init_from_checkpoint(new, grown, path)
    assert report == {"kept": ["albedo", "mask"], "added": ["gas", "liquid"], "dropped": []}
    g = torch.Generator().manual_seed(2)
    noisy, t = torch.randn(1, 2, 3, 16, 16, generator=g), torch.tensor([10])
    albedo, mask = torch.randn(1, 2, 3, 16, 16, generator=g), torch.randn(1, 2, 1, 16, 16, generator=g)
    fields = torch.randn(1, 2, condition_channels(["gas"]) + condition_channels(["liquid"]), 16, 16, generator=g)
    context, context_mask = torch.randn(1, 2, 3, 16, 16, generator=g), torch.tensor([[True, False]])
    with torch.no_grad():
        before = model.eval()(noisy, t, torch.cat([albedo, mask], 2), context, context_mask)
        after = new.eval()(noisy, t, torch.cat([albedo, fields[:, :, :2], mask, fields[:, :, 2:]], 2), context, context_mask)
    assert torch.allclose(before, after, atol=1e-6, rtol=0)

    # Dropping a group keeps the rest of its weights where they were.
    shrunk = NeuralConfig(**{**TINY, "condition": ("mask",)})
    smaller = VideoDenoiser(shrunk)
    assert init_from_checkpoint(smaller, shrunk, path)["dropped"] == ["albedo"]
    assert torch.equal(smaller.conv_in.weight[:, 3:4], model.conv_in.weight[:, 6:7])


def test_init_from_refuses_another_architecture(saved):
    from hybrid.neural.checkpoint import init_from_checkpoint

    path, _, _ = saved
    wider = NeuralConfig(**{**TINY, "base_channels": 16})
    with pytest.raises(CheckpointError, match=r"base_channels: 8 there, 16 here") as err:
        init_from_checkpoint(VideoDenoiser(wider), wider, path)
    assert "config.json" in str(err.value)


def test_init_from_lets_a_fine_tune_change_how_it_samples(saved):
    """Sampling settings (steps, draws, context between windows, the correction prior, the
    flow blend) do not shape the weights: a fine-tune may set them anew (the shipped dusk
    stage says `correction_prior: auto` over a checkpoint that holds the measured number)."""
    from hybrid.neural.checkpoint import init_from_checkpoint
    from hybrid.neural.config import SAMPLING_FIELDS

    path, model, _ = saved
    resampled = NeuralConfig(**{**TINY, "sample_steps": 3, "sample_draws": 2, "sample_context_frames": 0,
                                "temporal_blend": 0.25})
    assert {"sample_steps", "sample_draws", "sample_context_frames", "correction_prior", "temporal_blend"} <= SAMPLING_FIELDS
    new = VideoDenoiser(resampled)
    assert init_from_checkpoint(new, resampled, path)["added"] == []
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), model.state_dict().values()))
