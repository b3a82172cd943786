"""Training the neural renderer: config errors, data order, overfitting, exact resume, 2-process DDP.

Everything runs on tiny datasets rendered here (MOVi-A at 32 x 32, 6 frames) and a
tiny model (8 base channels, two levels, 16 x 16 windows of 4 frames) so each run
takes seconds on one CPU thread.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from hybrid.neural.model import VideoDenoiser
from hybrid.neural.schedulers import make_scheduler
from hybrid.train.config import TrainConfigError, load_train_config, load_train_config_text
from hybrid.train.data import TrainWindows, heldout_windows, train_loader
from hybrid.train.ema import EMA
from hybrid.train.loop import RunFolderError, diffusion_loss, step_generator, train
from hybrid.train.state import StateError, latest_checkpoint, list_checkpoints, read_checkpoint_state

from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN_SCRIPT = REPO / "training" / "train.py"

# A model small enough to train a step in a few hundredths of a second on one thread.
TINY_CONFIG = """\
seed: 0
data: {train: train, heldout: heldout, num_workers: 0, val_windows: 2}
model:
  resolution: [16, 16]
  window: 4
  context_frames: 1
  base_channels: 8
  channel_mults: [1, 2]
  groups: 4
  attention_heads: 2
  condition: [albedo, normal, depth, mask, instance_edges, light, ndotl]
optim: {batch_size: 2, steps: 6, lr: 2.0e-3, min_lr: 1.0e-4, warmup_steps: 1}
log: {every: 1, val_every: 3, sample_every: 3, sample_clips: 1, sample_steps: 2}
checkpoint: {every: 3, keep: 2}
"""


def make_tiny_datasets(root):
    """train/ (4 clips, one per shard) and heldout/ (2 clips, another seed) from the MOVi-A recipe
    at 32 x 32 and 6 frames, plus the recipe itself as tiny_movi_a.yaml; returns root."""
    from hybrid.data.generate import generate

    text = (REPO / "datasets" / "neural_movi_a.yaml").read_text()
    assert "frames: 24" in text and "resolution: [64, 64]" in text
    recipe = root / "tiny_movi_a.yaml"
    recipe.write_text(text.replace("frames: 24", "frames: 6").replace("resolution: [64, 64]", "resolution: [32, 32]"))
    generate(recipe, root / "train", 4, seed=3, clips_per_shard=1, workers=1)
    generate(recipe, root / "heldout", 2, seed=4, clips_per_shard=1, workers=1)
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_datasets(tmp_path_factory.mktemp("train_data"))


def tiny_config(data_root, text=TINY_CONFIG, name="tiny.yaml", overrides=None):
    path = data_root / name
    path.write_text(text)
    return load_train_config(path, overrides=overrides)


# ---------------------------------------------------------------- config


def test_shipped_config_loads_with_paths_relative_to_its_folder():
    config = load_train_config(REPO / "training" / "neural_64.yaml", check_datasets=False)
    assert config.data.train == str(REPO / "out" / "neural" / "train")
    assert config.data.heldout == str(REPO / "out" / "neural" / "heldout")
    assert tuple(config.model.resolution) == (64, 64)
    assert (config.model.window, config.model.context_frames) == (8, 2)


def test_shipped_fine_tune_config_starts_from_the_field_free_run_with_the_same_model():
    base = load_train_config(REPO / "training" / "neural_64.yaml", check_datasets=False)
    fine = load_train_config(REPO / "training" / "neural_fields.yaml", check_datasets=False)
    assert fine.init_from == str(REPO / "out" / "neural" / "run_64" / "final")
    assert base.out == str(REPO / "out" / "neural" / "run_64")
    assert fine.model.condition == (*base.model.condition, "gas", "liquid", "fluid_motion")
    assert fine.model.model_copy(update={"condition": base.model.condition}) == base.model


def test_shipped_dusk_stage_fine_tunes_the_path_traced_run_on_both_datasets():
    base = load_train_config(REPO / "training" / "neural_pt.yaml", check_datasets=False)
    dusk = load_train_config(REPO / "training" / "neural_pt_dusk.yaml", check_datasets=False)
    assert dusk.init_from == str(REPO / "out" / "neural_pt" / "run_64" / "final") == base.out + "/final"
    assert dusk.data.train_dirs == [base.data.train, str(REPO / "out" / "neural_pt" / "dusk_train")]
    assert dusk.model == base.model and dusk.out != base.out


@pytest.mark.parametrize(
    "old, new, where, path, phrase",
    [
        ("optim: {batch_size: 2,", "optim: {bach_size: 2,", ":12:9:", "optim.bach_size", "did you mean 'batch_size'"),
        ("lr: 2.0e-3", "lr: -1", ":12:38:", "optim.lr", "greater than 0"),
        ("  window: 4", "  windw: 4", ":5:3:", "model.windw", "did you mean 'window'"),
        ("context_frames: 1", "context_frames: 4", ":3:1:", "model", "must be smaller than window"),
        ("condition: [albedo,", "condition: [albedoo,", ":11:14:", "model.condition", "did you mean 'albedo'"),
        ("train: train,", "train: nowhere,", ":2:15:", "data.train", "no dataset folder"),
        ("warmup_steps: 1}", "warmup_steps: 6}", ":12:76:", "optim.warmup_steps", "fewer than steps"),
    ],
)
def test_config_errors_name_file_line_column_and_field(data_root, old, new, where, path, phrase):
    assert old in TINY_CONFIG
    with pytest.raises(TrainConfigError) as err:
        tiny_config(data_root, TINY_CONFIG.replace(old, new), name="bad.yaml")
    text = str(err.value)
    first = text.splitlines()[0]
    assert f"bad.yaml{where}" in first and f" {path}: " in first and phrase in first, text


def test_command_line_values_are_validated_and_named(data_root):
    with pytest.raises(TrainConfigError) as err:
        tiny_config(data_root, overrides={"optim.steps": 0})
    assert "optim.steps" in str(err.value) and "set on the command line: optim.steps=0" in str(err.value)
    assert tiny_config(data_root, overrides={"optim.steps": 9}).optim.steps == 9


def test_broken_yaml_is_located():
    with pytest.raises(TrainConfigError) as err:
        load_train_config_text("seed: 0\ndata: [\n", "broken.yaml")
    assert "broken.yaml:" in str(err.value) and "YAML syntax error" in str(err.value)


def test_learning_rate_warms_up_linearly_then_follows_a_cosine(data_root):
    text = TINY_CONFIG.replace("optim: {batch_size: 2, steps: 6, lr: 2.0e-3, min_lr: 1.0e-4, warmup_steps: 1}",
                               "optim: {batch_size: 2, steps: 111, lr: 1.0e-3, min_lr: 1.0e-4, warmup_steps: 10}")
    config = tiny_config(data_root, text, name="lr.yaml")
    assert config.lr_at(0) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert config.lr_at(9) == pytest.approx(1e-3)
    assert config.lr_at(10) == pytest.approx(1e-3)  # the cosine starts at the peak
    # Half-way through the decay (step 10 + 50 of 100): the mean of peak and floor.
    assert config.lr_at(60) == pytest.approx((1e-3 + 1e-4) / 2)
    assert config.lr_at(110) == pytest.approx(1e-4)  # the last step is at the floor


def test_ema_follows_its_recurrence_with_warm_up():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    expected = 0.0
    for step in range(30):
        with torch.no_grad():
            model.weight.fill_(float(step + 1))
        ema.update(model, step)
        d = min(0.9, (1 + step) / (10 + step))  # warm-up, then the configured decay
        expected = d * expected + (1 - d) * (step + 1)
    assert ema.shadow["weight"].item() == pytest.approx(expected, rel=1e-6)
    target = torch.nn.Linear(1, 1, bias=False)
    ema.copy_to(target)
    assert target.weight.item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- data


def _stream(data_root, config, batches, workers, skip=0, rank=0, world=1):
    it = train_loader(data_root / "train", config.model, 0, rank, world, 2, workers, skip_batches=skip)
    return [next(it) for _ in range(batches)]


def _same_batches(a, b):
    return all(all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b)) and len(a) == len(b)


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_data_stream_continues_exactly_where_it_stopped(data_root, workers):
    config = tiny_config(data_root)
    full = _stream(data_root, config, 7, workers)  # 14 windows: more than three epochs of 4 clips
    assert _same_batches(full, _stream(data_root, config, 7, workers))  # a fixed function of its arguments
    for skip in (1, 3, 5):
        assert _same_batches(full[skip:], _stream(data_root, config, 7 - skip, workers, skip=skip)), skip
    # Each epoch reads every clip once, and windows differ between epochs.
    indices = torch.cat([b["index"] for b in full]).tolist()
    assert sorted(indices[:4]) == [0, 1, 2, 3] and sorted(indices[4:8]) == [0, 1, 2, 3]
    starts = {(b["index"][k].item(), b["first_frame"][k].item()) for b in full for k in range(2)}
    assert len(starts) > 4


def test_ranks_read_disjoint_clips_each_epoch(data_root):
    config = tiny_config(data_root)
    seen = [torch.cat([b["index"] for b in _stream(data_root, config, 1, 0, rank=r, world=2)]).tolist() for r in (0, 1)]
    assert sorted(seen[0] + seen[1]) == [0, 1, 2, 3]


def test_windows_hold_condition_target_and_leading_context(data_root):
    config = tiny_config(data_root)
    windows = TrainWindows(data_root / "train", config.model, 0, 0, 1, 0, 2)
    masks = []
    for k, item in zip(range(12), windows):
        assert item["cond"].shape == (4, config.model.condition_channels, 16, 16)
        assert item["target"].shape == (4, 3, 16, 16) and item["target"].abs().max() <= 1
        mask = item["context_mask"]
        k_context = int(mask.sum())
        assert mask[:k_context].all() and not mask[k_context:].any() and k_context <= config.model.context_frames
        masks.append(k_context)
    assert set(masks) == {0, 1}  # fresh windows and continuations both occur


def test_several_datasets_are_read_whole_each_epoch_and_one_alone_reads_as_before(data_root):
    config = tiny_config(data_root)
    # The held-out folder (2 clips, another seed) stands in for a second recipe's dataset.
    both = TrainWindows([data_root / "train", data_root / "heldout"], config.model, 0, 0, 1, 0, 2)
    items = [item for _, item in zip(range(12), both)]
    seen = [(int(it["dataset"]), int(it["index"])) for it in items]
    # Two epochs of 4 + 2 clips: each reads every clip of both datasets exactly once.
    expected = sorted([(0, i) for i in range(4)] + [(1, i) for i in range(2)])
    assert sorted(seen[:6]) == expected and sorted(seen[6:]) == expected
    # A list of one dataset is the single-dataset stream, window for window.
    one = TrainWindows([data_root / "train"], config.model, 0, 0, 1, 0, 2)
    alone = TrainWindows(data_root / "train", config.model, 0, 0, 1, 0, 2)
    for a, b in zip(range(8), zip(one, alone)):
        assert all(torch.equal(b[0][k], b[1][k]) for k in b[0])


def test_config_lists_several_training_datasets_and_locates_a_missing_one(data_root):
    text = TINY_CONFIG.replace("train: train,", "train: [train, heldout],")
    config = tiny_config(data_root, text, name="two.yaml")
    assert config.data.train_dirs == [str(data_root / "train"), str(data_root / "heldout")]
    assert tiny_config(data_root).data.train_dirs == [str(data_root / "train")]
    with pytest.raises(TrainConfigError) as err:
        tiny_config(data_root, TINY_CONFIG.replace("train: train,", "train: [train, nowhere],"), name="bad2.yaml")
    first = str(err.value).splitlines()[0]
    assert "bad2.yaml:2:23:" in first and "data.train[1]: no dataset folder" in first, first
    with pytest.raises(TrainConfigError, match="listed twice"):
        tiny_config(data_root, TINY_CONFIG.replace("train: train,", "train: [train, train],"), name="bad3.yaml")


def test_too_many_readers_for_the_shards_is_refused(data_root):
    from hybrid.data.shards import DatasetError

    config = tiny_config(data_root)
    with pytest.raises(DatasetError, match="4 shards cannot feed 2 rank"):
        TrainWindows(data_root / "train", config.model, 0, 0, 2, 3, 2)


# ---------------------------------------------------------------- learning


def test_overfitting_a_fixed_batch_drives_the_loss_down_tenfold(data_root):
    """Same two windows, same noise and timesteps every step: the loss must fall by 10x in 100 AdamW steps."""
    config = tiny_config(data_root)
    batch = heldout_windows(data_root / "train", config.model, 2, seed=0).slice(0, 2)
    torch.manual_seed(0)
    model = VideoDenoiser(config.model)
    scheduler = make_scheduler("ddpm", config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(100):
        generator = step_generator(0, 0, 0, torch.device("cpu"))  # the same draw each step
        loss = diffusion_loss(model, scheduler, batch, generator, config.model.prediction_type)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 10, losses[::10]


def test_context_frames_carry_no_loss(data_root):
    """A model that is wrong only on context frames scores zero loss: those frames are given, not made."""
    config = tiny_config(data_root)
    batch = heldout_windows(data_root / "train", config.model, 2, seed=0).slice(0, 2)
    batch["context_mask"] = torch.tensor([[True, False, False, False], [True, False, False, False]])
    scheduler = make_scheduler("ddpm", config.model)

    class Oracle(torch.nn.Module):
        """Predicts the exact v target on made frames and garbage on context frames."""

        def forward(self, noisy, timesteps, cond, context, mask):
            g = step_generator(0, 0, 0, torch.device("cpu"))
            noise = torch.randn(noisy.shape, generator=g)
            v = scheduler.get_velocity(batch["target"], noise, timesteps)
            return torch.where(mask[:, :, None, None, None], torch.full_like(v, 7.0), v)

    timesteps = torch.tensor([100, 900])
    loss = diffusion_loss(Oracle(), scheduler, batch, step_generator(0, 0, 0, torch.device("cpu")), "v_prediction", timesteps)
    assert float(loss) == pytest.approx(0.0, abs=1e-10)


def _all_tensors(run_dir):
    tensors, meta = read_checkpoint_state(latest_checkpoint(run_dir))
    return tensors, meta


def test_resume_after_a_stop_equals_an_uninterrupted_run_bit_for_bit(data_root, tmp_path):
    config = tiny_config(data_root)
    straight = train(config, tmp_path / "straight", progress=False)
    first = train(config, tmp_path / "resumed", stop_at=3, progress=False)
    assert first.step == 3 and first.final_dir is None
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed")] == [3]
    second = train(config, tmp_path / "resumed", resume=True, progress=False)
    assert second.step == straight.step == 6

    a, meta_a = _all_tensors(tmp_path / "straight")
    b, meta_b = _all_tensors(tmp_path / "resumed")
    assert sorted(a) == sorted(b)
    assert {k.split(".")[0] for k in a} == {"model", "ema", "optim", "rng"}
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []  # weights, EMA, AdamW moments and step counts, RNG states: all identical
    assert meta_a["optimizer"] == meta_b["optimizer"] and meta_a["data"] == meta_b["data"]
    # The exported EMA weights too.
    from safetensors.torch import load_file

    ea = load_file(str(straight.final_dir / "model.safetensors"))
    eb = load_file(str(second.final_dir / "model.safetensors"))
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    info = json.loads((second.final_dir / "info.json").read_text())
    assert info["steps"] == 6 and info["weights"] == "EMA" and info["recipe"]["name"] == "neural_movi_a"
    assert {"train_loss", "val_loss", "val_loss_ema", "start_val_loss"} <= set(info["final"])
    assert info["hardware"]["device"] == "cpu" and info["wall_seconds"] > 0
    # Only the newest `keep` checkpoints stay.
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed")] == [3, 6]


def test_a_run_folder_with_checkpoints_is_not_overwritten(data_root, tmp_path):
    config = tiny_config(data_root)
    train(config, tmp_path / "run", stop_at=3, progress=False)
    with pytest.raises(RunFolderError, match="--resume"):
        train(config, tmp_path / "run", progress=False)
    other = tiny_config(data_root, TINY_CONFIG.replace("base_channels: 8", "base_channels: 16"), name="wider.yaml")
    with pytest.raises(StateError, match="another model config"):
        train(other, tmp_path / "run", resume=True, progress=False)


def test_fine_tune_adds_field_groups_and_starts_where_the_checkpoint_ended(data_root, tmp_path):
    """init_from: the field groups are added with zero input weights and the tiny dataset has no
    field buffers (its clips read zeros there), so the fine-tune's first held-out loss is the
    base export's, on the same windows with the same noise."""
    base = train(tiny_config(data_root), tmp_path / "base", progress=False)
    text = TINY_CONFIG.replace("ndotl]", "ndotl, gas, liquid, fluid_motion]") + f"init_from: {base.final_dir}\n"
    tuned = train(tiny_config(data_root, text, name="fine.yaml"), tmp_path / "tuned", progress=False)
    assert tuned.step == 6 and tuned.final_dir is not None
    assert tuned.start_val_loss == pytest.approx(base.val_loss_ema, rel=1e-5, abs=0)
    info = json.loads((tuned.final_dir / "info.json").read_text())
    assert info["init_from"]["steps"] == 6 and "gas" not in info["init_from"]["condition"]
    assert json.loads((tuned.final_dir / "config.json").read_text())["condition"][-3:] == ["gas", "liquid", "fluid_motion"]


def test_init_from_must_name_a_checkpoint_folder(data_root):
    with pytest.raises(TrainConfigError) as err:
        tiny_config(data_root, TINY_CONFIG + "init_from: nowhere\n", name="bad_init.yaml")
    first = str(err.value).splitlines()[0]
    assert "bad_init.yaml:15:12:" in first and " init_from: " in first and "no checkpoint folder" in first


def test_tensorboard_gets_scalars_and_sample_images(data_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(data_root)
    train(config, tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/it_per_s", "val/loss", "val/loss_ema"} <= scalars
    image = events.Images("samples/target_over_ema_sample")[-1]
    assert (image.width, image.height) == (6 * 32, 2 * 32)  # 6 frames across; target row over sample row


def _tiny_run_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


@pytest.mark.slow  # torchrun: two training processes
@pytest.mark.timeout(900)
def test_two_process_gloo_ddp_trains_with_identical_weights(data_root, tmp_path):
    config_path = data_root / "ddp.yaml"
    config_path.write_text(TINY_CONFIG.replace("steps: 6,", "steps: 8,"))
    run = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(TRAIN_SCRIPT), str(config_path), "--out", str(run), "-q"],
        capture_output=True, text=True, timeout=600, env=_tiny_run_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "on 2 x cpu, global batch 4 windows" in proc.stdout
    assert "weights identical on all 2 ranks" in proc.stdout  # checked by the loop itself, all-gathered
    info = json.loads((run / "final" / "info.json").read_text())
    assert info["hardware"]["ranks"] == 2 and info["windows_seen"] == 8 * 2 * 2
    assert info["final"]["val_loss"] < info["final"]["start_val_loss"]
    tensors, meta = read_checkpoint_state(latest_checkpoint(run))
    assert {"rng.0.cpu", "rng.1.cpu"} <= set(tensors)  # each rank's RNG state
    assert meta["data"]["world_size"] == 2


@pytest.mark.slow  # three training processes
@pytest.mark.timeout(900)
def test_train_script_exit_codes(data_root, tmp_path):
    bad = data_root / "bad_cli.yaml"
    bad.write_text(TINY_CONFIG.replace("lr: 2.0e-3", "lr: 0"))
    proc = subprocess.run([sys.executable, str(TRAIN_SCRIPT), str(bad), "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=300, env=_tiny_run_env())
    assert proc.returncode == 2 and f"{bad}:12:" in proc.stderr and "optim.lr" in proc.stderr
    good = data_root / "good_cli.yaml"
    good.write_text(TINY_CONFIG)
    run = tmp_path / "run"
    args = [sys.executable, str(TRAIN_SCRIPT), str(good), "--out", str(run), "--steps", "3", "-q"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_tiny_run_env())
    assert first.returncode == 0, first.stderr[-3000:]
    assert (run / "final" / "model.safetensors").is_file()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300, env=_tiny_run_env())
    assert again.returncode == 4 and "--resume" in again.stderr


def test_checkpoint_writes_leave_no_partial_checkpoint_behind(data_root, tmp_path):
    config = tiny_config(data_root)
    train(config, tmp_path / "run", stop_at=3, progress=False)
    root = tmp_path / "run" / "checkpoints"
    # A write killed half-way leaves only a temporary folder, which is never taken for a checkpoint.
    (root / ".tmp-step-00000006-999").mkdir()
    (root / ".tmp-step-00000006-999" / "state.json").write_text("{")
    assert latest_checkpoint(tmp_path / "run").name == "step-00000003"
    (root / "step-00000003" / "state.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(StateError, match="not a readable safetensors file"):
        read_checkpoint_state(root / "step-00000003")


def test_step_noise_depends_only_on_seed_rank_and_step():
    a = torch.randn(5, generator=step_generator(1, 0, 7, torch.device("cpu")))
    b = torch.randn(5, generator=step_generator(1, 0, 7, torch.device("cpu")))
    c = torch.randn(5, generator=step_generator(1, 1, 7, torch.device("cpu")))
    assert torch.equal(a, b) and not torch.equal(a, c)
