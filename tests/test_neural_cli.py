"""`hybrid render --renderer neural`: the clip folder with neural frames, and clear errors that write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hybrid.cli import EXIT_CHECKPOINT_ERROR, main
from hybrid.io.clip import read_clip
from hybrid.io.video import read_mp4
from hybrid.neural.checkpoint import save_checkpoint
from hybrid.neural.conditioning import CONDITIONS, condition_group
from hybrid.neural.config import NeuralConfig
from hybrid.neural.model import VideoDenoiser

from conftest import SCENES

SCENE = str(SCENES / "bouncing_balls.yaml")
SMALL = ["--frames", "3", "--resolution", "48x32", "-q"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _checkpoint(path, condition=None):
    """A randomly initialised tiny checkpoint (16 x 16 native, windows of 2)."""
    fields = dict(resolution=(16, 16), window=2, context_frames=1, base_channels=8, channel_mults=(1, 2),
                  res_blocks=1, attention_heads=2, groups=4)
    if condition is not None:
        fields["condition"] = condition
    config = NeuralConfig(**fields)
    torch.manual_seed(0)
    return save_checkpoint(path, VideoDenoiser(config), config, {"note": "random weights, for tests"})


def test_neural_render_writes_the_clip_folder_with_neural_frames(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "ckpt")
    out = tmp_path / "clip"
    code = main(["render", SCENE, "--out", str(out), "--renderer", "neural", "--checkpoint", str(ckpt),
                 "--steps", "2", "--compare", *SMALL])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "neural frames made at 20x14" in stdout and "resized to the scene's 48x32" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["buffers.hyb", "compare.mp4", "metadata.json", "preview.png", "rgb.mp4"]
    data = read_clip(out).buffers
    rgb, raster = data["rgb"], data["rgb_raster"]
    assert {"depth", "instance", "normal", "albedo", "flow_fwd", "flow_bwd"} <= set(data)
    assert rgb.shape == raster.shape == (3, 32, 48, 3) and not np.array_equal(rgb, raster)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["renderer"]["name"] == "neural" and meta["renderer"]["render_size"] == [20, 14]
    assert meta["renderer"]["steps"] == 2 and "rgb_raster" in meta["buffers"]
    video, _ = read_mp4(str(out / "rgb.mp4"))
    assert video.shape == (3, 32, 48, 3)
    side_by_side, _ = read_mp4(str(out / "compare.mp4"))
    assert side_by_side.shape == (3, 32, 96, 3)


def test_missing_or_corrupt_checkpoint_fails_before_anything_is_written(tmp_path, capsys, monkeypatch):
    out = tmp_path / "clip"
    monkeypatch.setattr("hybrid.neural.sampler.DEFAULT_CHECKPOINT", tmp_path / "checkpoints" / "neural_pt")
    assert main(["render", SCENE, "--out", str(out), "--renderer", "neural", *SMALL]) == EXIT_CHECKPOINT_ERROR
    err = capsys.readouterr().err
    assert "default neural checkpoint" in err and "training/train.py" in err and "--checkpoint" in err

    ckpt = _checkpoint(tmp_path / "ckpt")
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 40)
    assert main(["render", SCENE, "--out", str(out), "--renderer", "neural", "--checkpoint", str(ckpt), *SMALL]) == 6
    assert "model.safetensors" in capsys.readouterr().err

    ckpt = _checkpoint(tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**cfg, "condition": ["albedo", "normal"]}))
    assert main(["render", SCENE, "--out", str(out), "--renderer", "neural", "--checkpoint", str(ckpt), *SMALL]) == 6
    assert "condition channels" in capsys.readouterr().err
    assert main(["render", SCENE, "--out", str(out), "--compare", *SMALL]) == 2
    assert "add --renderer neural" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_condition_the_scene_cannot_supply_names_group_and_buffer_and_writes_nothing(tmp_path, capsys):
    @condition_group("test_smoke", 1, buffers=["smoke_density"])
    def _smoke(buffers, metadata, size):
        return np.asarray(buffers["smoke_density"], np.float32)[:, None]

    try:
        ckpt = _checkpoint(tmp_path / "ckpt", condition=["albedo", "test_smoke"])
        out = tmp_path / "clip"
        code = main(["render", SCENE, "--out", str(out), "--renderer", "neural", "--checkpoint", str(ckpt), *SMALL])
    finally:
        del CONDITIONS["test_smoke"]
    assert code == EXIT_CHECKPOINT_ERROR
    err = capsys.readouterr().err
    assert "'test_smoke' needs the buffer 'smoke_density'" in err and "condition" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_residual_detail_transfer_checkpoint_starts_at_the_raster_frame_at_full_resolution(tmp_path, capsys):
    """Untrained, a residual model predicts exactly its raster_beauty input, so the correction is zero and
    the neural frames are the 48x32 raster frames themselves (to a code of float rounding), not a 20x14 enlargement."""
    fields = dict(resolution=(16, 16), window=2, context_frames=1, base_channels=8, channel_mults=(1, 2),
                  res_blocks=1, attention_heads=2, groups=4, condition=("albedo", "normal", "material", "raster_beauty"),
                  residual=True, output="detail_transfer")
    config = NeuralConfig(**fields)
    ckpt = save_checkpoint(tmp_path / "ckpt", VideoDenoiser(config), config, {"note": "untrained, for tests"})
    out = tmp_path / "clip"
    assert main(["render", SCENE, "--out", str(out), "--renderer", "neural", "--checkpoint", str(ckpt),
                 "--steps", "2", *SMALL]) == 0
    assert "upsampled to the scene's 48x32 by its buffers" in capsys.readouterr().out
    data = read_clip(out).buffers
    assert data["rgb"].shape == (3, 32, 48, 3)
    assert np.abs(data["rgb"].astype(int) - data["rgb_raster"].astype(int)).max() <= 1
