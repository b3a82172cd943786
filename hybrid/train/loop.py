"""The training loop of the neural renderer, one function read top to bottom: ``train``.

What one step does: take a batch of windows (condition stack, clean target frames,
context mask; ``hybrid.train.data``), draw a diffusion timestep per window and
Gaussian noise, noise the target with diffusers' DDPMScheduler (``add_noise``), ask
the model for its prediction (noise, v or the clean frames, as the config says;
v = ``get_velocity``), and minimise the mean squared error on the frames the model
has to make (context frames are given, so they carry no loss). Then AdamW with a
clipped gradient, an EMA of the weights, and the learning rate of a linear warm-up
and cosine decay.

Processes. Run it plainly for one process (CPU or one GPU), or under ``torchrun``
for DistributedDataParallel: the environment torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK) selects the process group, gloo on CPUs and NCCL on GPUs; the code is
the same. Each rank reads its own shards; DDP averages gradients, so every rank
holds the same weights after every step. Rank 0 alone writes logs, checkpoints and
the export.

Determinism. The weights start from ``seed``; the windows are fixed by
(seed, epoch, clip) and the noise and timesteps of a step by (seed, rank, step)
through a generator seeded afresh each step, so no random stream has to be carried
across a restart. A checkpoint holds the model, the EMA, AdamW's moments, the step,
the data position and each rank's global RNG states (for anything else random, such
as dropout); resuming from it continues bit for bit as if the run had never
stopped (on a CPU; GPU kernels may not be deterministic).

Outputs in the run folder:

    checkpoints/step-XXXXXXXX/  training state (hybrid.train.state), the newest `keep`
    tb/                         TensorBoard: train/loss, train/lr, train/grad_norm,
                                train/it_per_s, train/samples_per_s, val/loss,
                                val/loss_ema, and sample images (EMA samples under
                                their targets)
    final/                      the EMA weights as a renderer checkpoint
                                (hybrid.neural.checkpoint: config.json,
                                model.safetensors, info.json)
    train_config.json           the validated config of the run
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hybrid.data.manifest import read_manifest
from hybrid.neural.checkpoint import (
    CheckpointError,
    check_checkpoint_target,
    init_from_checkpoint,
    load_config,
    load_info,
    save_checkpoint,
    tensors_sha256,
)
from hybrid.neural.model import VideoDenoiser, parameter_count
from hybrid.neural.sampler import NeuralRenderer
from hybrid.neural.schedulers import make_scheduler
from hybrid.train.config import TrainConfig
from hybrid.train.data import HeldoutWindows, heldout_clips, heldout_windows, train_loader
from hybrid.train.ema import EMA
from hybrid.train.state import (
    StateError,
    latest_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    prefixed,
    read_checkpoint_state,
    save_checkpoint_state,
)

# Diffusion timesteps per held-out window in the validation loss, spread evenly over
# the schedule: one random t per window would make the curve jump with the draw.
VAL_TIMESTEPS = 4


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (none given, or it holds another run's checkpoints)."""


@dataclass
class TrainResult:
    """What a finished (or stopped) call of ``train`` reached."""

    step: int
    run_dir: Path
    final_dir: Optional[Path]  # the exported checkpoint, when the last step was reached
    train_loss: float  # mean over the last log interval, all ranks
    val_loss: Optional[float] = None
    val_loss_ema: Optional[float] = None
    seconds: float = 0.0  # wall time of this call's steps
    samples_per_s: float = 0.0  # windows per second over all ranks, this call
    weights_sha256: str = ""  # of the trained (not EMA) weights, the same on every rank
    start_val_loss: Optional[float] = None  # held-out loss of the untrained model (fresh runs only)
    history: list[dict] = field(default_factory=list)  # one entry per log interval


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: rank, world size, device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start_processes() -> Processes:
    """Join torchrun's process group when WORLD_SIZE > 1 (gloo on CPU, NCCL on GPU); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Processes(0, 1, 0, torch.device("cuda" if cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    return Processes(dist.get_rank(), dist.get_world_size(), local_rank, device)


def autocast(device: torch.device, mode: str):
    """bfloat16 autocast where the config asks for it (auto: on CUDA only); otherwise full float32."""
    if mode == "no" or (mode == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """A generator for one step's noise and timesteps, a fixed function of (seed, rank, step)."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state))


def diffusion_loss(
    model: nn.Module,
    scheduler,
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    prediction_type: str,
    timesteps: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean squared error of the model's prediction on the frames it has to make (a scalar).

    batch: cond (B, T, C, H, W), target (B, T, 3, H, W) in [-1, 1], context_mask (B, T).
    Timesteps are drawn uniformly from the training schedule unless given (B,).
    """
    x0, mask = batch["target"], batch["context_mask"]
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    if timesteps is None:
        timesteps = torch.randint(
            0, scheduler.config.num_train_timesteps, (b,), generator=generator, device=x0.device
        )
    noisy = scheduler.add_noise(x0, noise, timesteps)
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = scheduler.get_velocity(x0, noise, timesteps)
    else:  # "sample": the clean frames themselves
        target = x0
    context = x0 * mask[:, :, None, None, None].to(x0.dtype)
    prediction = model(noisy, timesteps, batch["cond"], context, mask)
    per_frame = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(2, 3, 4))  # (B, T)
    made = (~mask).to(per_frame.dtype)
    return (per_frame * made).sum() / made.sum()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and kernels only; biases and norm scales (1-D) are left alone."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def validation_loss(
    model: nn.Module, scheduler, windows: HeldoutWindows, config: TrainConfig, device: torch.device
) -> float:
    """Mean loss over the held-out windows, each at VAL_TIMESTEPS fixed timesteps, with fixed noise."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    steps = scheduler.config.num_train_timesteps
    generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    for k in range(VAL_TIMESTEPS):
        for lo in range(0, len(windows), config.optim.batch_size):
            batch = {name: t.to(device) for name, t in windows.slice(lo, lo + config.optim.batch_size).items()}
            n = batch["target"].shape[0]
            # Evenly spaced quantiles of the schedule, shifted per window so they do not coincide.
            q = (k + (torch.arange(lo, lo + n, dtype=torch.float64) % 7 + 0.5) / 7) / VAL_TIMESTEPS
            timesteps = (q * steps).long().clamp(0, steps - 1).to(device)
            with autocast(device, config.optim.mixed_precision):
                loss = diffusion_loss(model, scheduler, batch, generator, config.model.prediction_type, timesteps)
            total += float(loss) * n
            count += n
    model.train(was_training)
    return total / count


def sample_grid(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """uint8 (3, rows*H, T*W) image from (target, sample) uint8 (T, H, W, 3) pairs: each clip's
    target frames in a row, its samples in the row below (samples resized to the target's size)."""
    from hybrid.neural.conditioning import resize_uint8_frames

    rows = []
    for target, made in pairs:
        if made.shape[1:3] != target.shape[1:3]:
            made = resize_uint8_frames(made, target.shape[1:3])
        for frames in (target, made):
            rows.append(np.concatenate(list(frames), axis=1))  # (H, T*W, 3)
    return np.concatenate(rows, axis=0).transpose(2, 0, 1).copy()


def hardware_summary(procs: Processes) -> dict:
    """What the run ran on, for info.json: device kind, CPU model, cores, ranks, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"device": procs.device.type, "cpu": cpu, "cpu_cores": os.cpu_count(), "ranks": procs.world_size,
            "torch": torch.__version__, "threads_per_rank": torch.get_num_threads()}
    if procs.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(procs.device)
    return info


def gather_rng_states(procs: Processes) -> dict[str, torch.Tensor]:
    """Every rank's global RNG states as uint8 tensors named rng.<rank>.cpu / rng.<rank>.cuda (a collective)."""
    mine = {"cpu": torch.get_rng_state()}
    if procs.device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(procs.device)
    if not procs.distributed:
        return {f"rng.0.{k}": v for k, v in mine.items()}
    out = {}
    # NCCL moves CUDA tensors only; gloo moves CPU tensors.
    carrier = procs.device if procs.device.type == "cuda" else torch.device("cpu")
    for kind, state in mine.items():
        parts = [torch.empty_like(state, device=carrier) for _ in range(procs.world_size)]
        dist.all_gather(parts, state.to(carrier))
        out.update({f"rng.{r}.{kind}": p.cpu() for r, p in enumerate(parts)})
    return out


def mean_over_ranks(value: float, procs: Processes) -> float:
    """The mean of a per-rank number over all ranks (a collective when distributed)."""
    if not procs.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=procs.device)
    dist.all_reduce(t)
    return float(t) / procs.world_size


def same_weights_on_all_ranks(model: nn.Module, procs: Processes) -> str:
    """The sha256 of the weights, after checking every rank holds the very same bytes (a collective).

    DDP keeps replicas equal by construction; a mismatch means a rank diverged (a
    non-deterministic kernel, a bug), and exporting rank 0's weights would hide it.
    """
    digest = tensors_sha256(model.state_dict())
    if procs.distributed:
        mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=procs.device)
        parts = [torch.empty_like(mine) for _ in range(procs.world_size)]
        dist.all_gather(parts, mine)
        others = {bytes(p.cpu().tolist()).hex() for p in parts}
        if others != {digest}:
            raise RuntimeError(f"the {procs.world_size} ranks ended with different weights: {sorted(others)}")
        if procs.main:
            print(f"weights identical on all {procs.world_size} ranks (sha256 {digest[:16]})", flush=True)
    return digest


def dataset_summary(path: Optional[str]) -> Optional[dict]:
    if path is None:
        return None
    manifest = read_manifest(path)
    return {"path": str(path), "recipe": manifest.recipe, "seed": manifest.seed, "clips": manifest.clips}


def datasets_summary(paths: list[str]) -> dict | list[dict]:
    """The training data for info.json: one dataset's summary, or a list of them for several."""
    summaries = [dataset_summary(p) for p in paths]
    return summaries[0] if len(summaries) == 1 else summaries


def train(
    config: TrainConfig,
    run_dir: Optional[str | os.PathLike] = None,
    *,
    resume: bool = False,
    stop_at: Optional[int] = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or continue training) the model of ``config``; returns where it got to.

    run_dir: the run folder (default ``config.out``). resume: continue from the
    newest checkpoint there (from scratch when there is none); without it, a folder
    that already holds checkpoints is refused rather than overwritten. stop_at: stop
    after this step with a checkpoint, as a time-boxed job would (the schedule still
    runs to ``config.optim.steps``). progress: a tqdm bar on rank 0.
    """
    # ---------------------------------------------------------------- processes, folders
    procs = start_processes()
    device = procs.device
    if run_dir is None and config.out is None:
        raise RunFolderError("no run folder: give --out DIR or set `out:` in the config")
    run_dir = Path(run_dir if run_dir is not None else config.out).resolve()
    total_steps = config.optim.steps
    last_step = min(total_steps, stop_at) if stop_at is not None else total_steps
    existing = latest_checkpoint(run_dir)
    if existing is not None and not resume:
        raise RunFolderError(
            f"{run_dir} already holds training checkpoints (newest: {existing.name}); pass --resume to continue "
            "that run, or give another --out"
        )
    try:  # the export at the end replaces only a checkpoint of ours: refuse now, not after the whole run
        check_checkpoint_target(run_dir / "final")
    except CheckpointError as err:
        raise RunFolderError(str(err)) from None
    if procs.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=1) + "\n")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # ---------------------------------------------------------------- model, EMA, optimizer
    torch.manual_seed(config.seed)  # the same initial weights on every rank and every run
    model = VideoDenoiser(config.model).to(device)
    init_report = None
    if config.init_from is not None and not (resume and existing is not None):
        # A fine-tune: every rank reads the same file, so the ranks start equal. Done before
        # the EMA copies the weights; a resumed run takes its weights from its own state.
        init_report = init_from_checkpoint(model, config.model, config.init_from)
        if procs.main:
            added = f", zero-initialised input weights for {init_report['added']}" if init_report["added"] else ""
            dropped = f", dropped {init_report['dropped']}" if init_report["dropped"] else ""
            print(f"starting from {config.init_from}{added}{dropped}", flush=True)
    ema = EMA(model, config.optim.ema_decay)
    optimizer = torch.optim.AdamW(
        param_groups(model, config.optim.weight_decay), lr=config.lr_at(0), betas=tuple(config.optim.betas)
    )
    noise_schedule = make_scheduler("ddpm", config.model)
    # Rank 0 loads the EMA weights into this copy for validation, samples and the export.
    # Built now, before any RNG state is restored, so building it draws the same numbers
    # in a fresh and in a resumed run.
    ema_model = VideoDenoiser(config.model).to(device) if procs.main else None

    # ---------------------------------------------------------------- resume
    step, wall_before = 0, 0.0
    losses: dict = {}  # the latest train and validation losses, saved with each checkpoint
    if resume and existing is not None:
        tensors, meta = read_checkpoint_state(existing)
        saved_model = meta.get("config", {}).get("model")
        if saved_model != config.model.model_dump(mode="json"):
            raise StateError(
                f"{existing}: was trained with another model config; resume with the config it was made with "
                "(see its state.json), or start a new --out"
            )
        model.load_state_dict(prefixed(tensors, "model"))
        ema.load(prefixed(tensors, "ema"))
        optimizer_from_flat(optimizer, tensors, meta["optimizer"])
        step, wall_before = int(meta["step"]), float(meta.get("wall_seconds", 0.0))
        losses = dict(meta.get("losses", {}))
        data_meta = meta["data"]
        same_layout = (data_meta["world_size"], data_meta["num_workers"], data_meta["batch_size"]) == (
            procs.world_size, config.data.num_workers, config.optim.batch_size)
        if f"rng.{procs.rank}.cpu" in tensors:
            torch.set_rng_state(tensors[f"rng.{procs.rank}.cpu"])
        if device.type == "cuda" and f"rng.{procs.rank}.cuda" in tensors:
            torch.cuda.set_rng_state(tensors[f"rng.{procs.rank}.cuda"], device)
        if procs.main:
            note = "" if same_layout else (
                " (ranks, workers or batch size differ from the saved run: the data order from here on does too)")
            print(f"resuming from {existing} at step {step}{note}", flush=True)
        del tensors
    elif resume and procs.main:
        print(f"no checkpoint in {run_dir}; starting from step 0", flush=True)

    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if procs.distributed else model

    # ---------------------------------------------------------------- data
    batches = train_loader(
        config.data.train_dirs, config.model, config.seed, procs.rank, procs.world_size,
        config.optim.batch_size, config.data.num_workers, skip_batches=step,
    )
    heldout, sample_clips = None, []
    if procs.main and config.data.heldout is not None:
        heldout = heldout_windows(config.data.heldout, config.model, config.data.val_windows, config.seed)
        sample_clips = heldout_clips(config.data.heldout, config.log.sample_clips)

    # The model config the samples use and the export ships: `correction_prior: auto` measured now.
    shipped, prior_note = config.model, None
    if procs.main and config.model.correction_prior == "auto":
        from hybrid.train.prior import mean_squared_correction

        prior, clips = mean_squared_correction(config.data.train_dirs, config.model)
        shipped = config.model.model_copy(update={"correction_prior": round(prior, 6)})
        prior_note = {"value": round(prior, 6), "clips": clips, "measured_on": config.data.train}
        print(f"correction prior {prior:.4f}: the mean squared correction over {clips} training clips", flush=True)

    # ---------------------------------------------------------------- logging (rank 0)
    writer, bar = None, None
    if procs.main:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        # purge_step drops events a stopped run logged after its last checkpoint.
        writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if step > 0 else None)
        print(
            f"training {parameter_count(model) / 1e6:.2f} M parameters on {procs.world_size} x {device.type}, "
            f"global batch {config.optim.batch_size * procs.world_size} windows of {config.model.window} frames "
            f"at {config.model.resolution[0]}x{config.model.resolution[1]}, steps {step} -> {last_step} "
            f"of {total_steps}; run folder {run_dir}",
            flush=True,
        )
        bar = tqdm(total=last_step, initial=step, desc="train", unit="step", dynamic_ncols=True, disable=not progress)

    def save_state(at_step: int, wall: float, latest: dict) -> None:
        """A training-state checkpoint (every rank takes part: the RNG states are gathered)."""
        rng = gather_rng_states(procs)
        if not procs.main:
            return
        optim_tensors, optim_meta = optimizer_to_flat(optimizer)
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in ema.items()})
        tensors.update(optim_tensors)
        tensors.update(rng)
        meta = {
            "data": {"batches_per_rank": at_step, "world_size": procs.world_size,
                     "num_workers": config.data.num_workers, "batch_size": config.optim.batch_size},
            "optimizer": optim_meta,
            "wall_seconds": wall,
            "losses": latest,
            "config": config.model_dump(mode="json"),
        }
        save_checkpoint_state(run_dir, at_step, tensors, meta, config.checkpoint.keep)

    if procs.main and heldout is not None and step == 0:
        # Where the curve starts: the untrained model's held-out loss.
        losses["start_val_loss"] = validation_loss(model, noise_schedule, heldout, config, device)
        writer.add_scalar("val/loss", losses["start_val_loss"], 0)

    # ---------------------------------------------------------------- the loop
    history: list[dict] = []
    interval_losses: list[float] = []
    first_step = step
    started = time.perf_counter()
    interval_start, interval_steps = started, 0
    model.train()
    while step < last_step:
        batch = {name: t.to(device, non_blocking=True) for name, t in next(batches).items()}
        lr = config.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr

        generator = step_generator(config.seed, procs.rank, step, device)
        with autocast(device, config.optim.mixed_precision):
            loss = diffusion_loss(net, noise_schedule, batch, generator, config.model.prediction_type)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = config.optim.grad_clip if config.optim.grad_clip > 0 else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        optimizer.step()
        ema.update(model, step)
        step += 1
        interval_losses.append(float(loss.detach()))
        interval_steps += 1

        # -------------------------------------------------------- logs, validation, samples, checkpoints
        if step % config.log.every == 0 or step == last_step:
            now = time.perf_counter()
            mean_loss = mean_over_ranks(sum(interval_losses) / len(interval_losses), procs)
            rate = interval_steps / max(now - interval_start, 1e-9)
            interval_start, interval_steps, interval_losses = now, 0, []
            losses["train_loss"] = mean_loss
            record = {"step": step, "loss": mean_loss, "lr": lr, "grad_norm": grad_norm, "it_per_s": rate,
                      "samples_per_s": rate * config.optim.batch_size * procs.world_size}
            history.append(record)
            if procs.main:
                for key in ("loss", "lr", "grad_norm", "it_per_s", "samples_per_s"):
                    writer.add_scalar(f"train/{key}", record[key], step)
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", refresh=False)
        if procs.main:
            bar.update(1)

        if procs.main and heldout is not None and (step % config.log.val_every == 0 or step == last_step):
            losses["val_loss"] = validation_loss(model, noise_schedule, heldout, config, device)
            ema.copy_to(ema_model)
            losses["val_loss_ema"] = validation_loss(ema_model, noise_schedule, heldout, config, device)
            writer.add_scalar("val/loss", losses["val_loss"], step)
            writer.add_scalar("val/loss_ema", losses["val_loss_ema"], step)
            if history and history[-1]["step"] == step:
                history[-1].update(val_loss=losses["val_loss"], val_loss_ema=losses["val_loss_ema"])

        if procs.main and sample_clips and (step % config.log.sample_every == 0 or step == last_step):
            # Whole held-out clips through the renderer users get (overlapping windows,
            # warped noise) with the EMA weights. moviepy, which TensorBoard's add_video
            # needs, is not a dependency: each clip's frames are laid out across one
            # image instead, the target above the sample.
            ema.copy_to(ema_model)
            renderer = NeuralRenderer(ema_model, shipped, device=device)
            pairs = [(buffers["rgb"], renderer.render(buffers, metadata, steps=config.log.sample_steps, seed=config.seed))
                     for buffers, metadata in sample_clips]
            writer.add_image("samples/target_over_ema_sample", sample_grid(pairs), step)

        if step % config.checkpoint.every == 0 or step == last_step:
            wall = wall_before + time.perf_counter() - started
            save_state(step, wall, dict(losses))
            if procs.main:
                writer.flush()

    # ---------------------------------------------------------------- the end: export the EMA weights
    seconds = time.perf_counter() - started
    weights = same_weights_on_all_ranks(model, procs)
    final_dir = None
    if procs.main:
        bar.close()
        if step == total_steps:
            ema.copy_to(ema_model)
            export = ema_model.to("cpu")
            final_dir = run_dir / "final"
            trained_on = datasets_summary(config.data.train_dirs)  # with several datasets, lists
            info = {
                "recipe": trained_on["recipe"] if isinstance(trained_on, dict) else [d["recipe"] for d in trained_on],
                "dataset": trained_on,
                "heldout": dataset_summary(config.data.heldout),
                "steps": total_steps,
                "batch_size_per_rank": config.optim.batch_size,
                "windows_seen": total_steps * config.optim.batch_size * procs.world_size,
                "parameters": parameter_count(export),
                "weights": "EMA",
                "ema_decay": config.optim.ema_decay,
                "hardware": hardware_summary(procs),
                "wall_seconds": round(wall_before + seconds, 1),
                "final": {k: round(v, 6) for k, v in losses.items()},
                "train_config": config.model_dump(mode="json"),
            }
            if config.init_from is not None:
                source = load_info(config.init_from)
                info["init_from"] = {
                    "path": config.init_from,
                    "condition": list(load_config(config.init_from).condition),
                    "recipe": source.get("recipe"),
                    "steps": source.get("steps"),
                    "wall_seconds": source.get("wall_seconds"),
                }
            if prior_note is not None:
                info["correction_prior"] = prior_note
            save_checkpoint(final_dir, export, shipped, info)
            print(f"exported the EMA weights to {final_dir}", flush=True)
        writer.close()
    done = step - first_step
    return TrainResult(
        step=step,
        run_dir=run_dir,
        final_dir=final_dir,
        train_loss=losses.get("train_loss", float("nan")),
        val_loss=losses.get("val_loss"),
        val_loss_ema=losses.get("val_loss_ema"),
        seconds=seconds,
        samples_per_s=done * config.optim.batch_size * procs.world_size / max(seconds, 1e-9),
        history=history,
        weights_sha256=weights,
        start_val_loss=losses.get("start_val_loss"),
    )
