"""Training configuration: YAML -> validated ``TrainConfig``, with located errors.

A training config (``training/*.yaml``) names the data, the model (every field of
``hybrid.neural.config.NeuralConfig``, which is saved with the checkpoint), the
optimiser and the logging and checkpoint cadence. It is read like a scene: the YAML
keeps line and column of every value, pydantic validates, and each problem is
reported as ``file:line:column: path: message`` (``optim.lr: expected a number
greater than 0, got -1``), all problems at once.

Paths in the file (``data.train``, ``data.heldout``, ``out``) are relative to the
config file's folder, as paths in scenes and recipes are. Values given on the
command line (``--steps``) go through the same validation and are named as such in
messages.

Example (``training/neural_pt.yaml`` is the full one)::

    seed: 0
    out: ../out/neural/run_64
    data: {train: ../out/neural/train, heldout: ../out/neural/heldout, num_workers: 1}
    model: {resolution: [64, 64], window: 8, context_frames: 2, condition: [albedo, normal]}
    optim: {batch_size: 8, steps: 3000, lr: 3.0e-4, warmup_steps: 100}
    log: {every: 10, val_every: 250, sample_every: 500}
    checkpoint: {every: 250, keep: 3}
"""

from __future__ import annotations

import math
import os
from typing import Literal, Mapping, Optional, Union

from pydantic import Field, model_validator

from hybrid.neural.config import NeuralConfig
from hybrid.spec.errors import Issue, SourceMap, SpecError
from hybrid.spec.load import apply_overrides, parse_yaml, read_source, validate_located
from hybrid.spec.types import Spec, SpecValueError

TRAIN_HELP_LINE = "training config fields are described in hybrid/train/config.py; training/neural_pt.yaml is a complete example"


class TrainConfigError(SpecError):
    """A training config that cannot be used, with every located problem in ``issues``."""

    help_line = TRAIN_HELP_LINE


class TrainSpec(Spec):
    """Base of the config sections: frozen, unknown keys and non-finite numbers are errors."""


class DataConfig(TrainSpec):
    train: Union[str, list[str]] = Field(
        description="dataset folder written by `hybrid dataset generate` (manifest.json inside), or a list of "
        "them: each epoch reads every clip of every one, their shards shuffled together"
    )
    heldout: Optional[str] = Field(None, description="held-out dataset folder for the validation loss and sample images")
    num_workers: int = Field(
        1,
        ge=0,
        description="DataLoader worker processes per rank reading shards and building conditions; 0 reads in the "
        "training process. Each worker needs at least one shard of its rank's share.",
    )
    val_windows: int = Field(16, ge=1, description="held-out windows in the validation loss (the first clips, fixed)")

    @model_validator(mode="after")
    def _check_train(self) -> "DataConfig":
        if isinstance(self.train, list):
            if not self.train:
                raise SpecValueError("give at least one dataset folder")
            if len(set(self.train)) != len(self.train):
                raise SpecValueError("a dataset folder is listed twice; list each once")
        return self

    @property
    def train_dirs(self) -> list[str]:
        """The training dataset folders, one or several, in the order given."""
        return [self.train] if isinstance(self.train, str) else list(self.train)


class OptimConfig(TrainSpec):
    batch_size: int = Field(8, ge=1, description="windows per step on each rank (global batch = this x ranks)")
    steps: int = Field(ge=1, description="optimiser steps in all")
    lr: float = Field(3e-4, gt=0, description="peak learning rate of AdamW")
    min_lr: float = Field(3e-5, ge=0, description="learning rate at the end of the cosine decay")
    warmup_steps: int = Field(100, ge=0, description="steps of linear warm-up from 0 to `lr`")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay (not on biases and norm scales)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas, each in [0, 1)")
    grad_clip: float = Field(1.0, ge=0, description="clip the global gradient norm to this; 0 turns clipping off")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA decay per step (warmed up as min(decay, (1+s)/(10+s)))")
    mixed_precision: Literal["auto", "bf16", "no"] = Field(
        "auto", description="auto: bfloat16 autocast on CUDA, full float32 on a CPU; bf16: autocast wherever; no: float32"
    )

    @model_validator(mode="after")
    def _check(self) -> "OptimConfig":
        for i, beta in enumerate(self.betas):
            if not 0 <= beta < 1:
                raise SpecValueError(f"each beta must lie in [0, 1), got {beta:g}", at=("betas", i))
        if self.min_lr > self.lr:
            raise SpecValueError(f"min_lr ({self.min_lr:g}) must not exceed lr ({self.lr:g})", at=("min_lr",))
        if self.warmup_steps >= self.steps:
            raise SpecValueError(
                f"warmup_steps ({self.warmup_steps}) must be fewer than steps ({self.steps})", at=("warmup_steps",)
            )
        return self


class LogConfig(TrainSpec):
    every: int = Field(10, ge=1, description="steps between TensorBoard scalars and progress-bar updates")
    val_every: int = Field(250, ge=1, description="steps between validation losses on the held-out windows")
    sample_every: int = Field(500, ge=1, description="steps between sample images of the EMA model")
    sample_clips: int = Field(2, ge=0, description="held-out clips rendered whole in each sample image (0: none)")
    sample_steps: int = Field(20, ge=1, description="denoising steps per window of the sample images")


class CheckpointConfig(TrainSpec):
    every: int = Field(250, ge=1, description="steps between training-state checkpoints (and one at the end)")
    keep: int = Field(3, ge=1, description="training-state checkpoints kept; older ones are deleted")


class TrainConfig(TrainSpec):
    """Everything a training run needs; see the module docstring for the YAML form."""

    seed: int = Field(0, ge=0, description="seeds weights, data order, windows, masks and noise")
    out: Optional[str] = Field(None, description="run folder (checkpoints, TensorBoard, final export); --out replaces it")
    init_from: Optional[str] = Field(
        None,
        description="a checkpoint folder to start from (a fine-tune): same model but for `condition`; added "
        "condition groups start with zero input weights, so training begins where that checkpoint is",
    )
    data: DataConfig
    model: NeuralConfig
    optim: OptimConfig
    log: LogConfig = LogConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based): linear warm-up, then cosine down to min_lr."""
        o = self.optim
        if step < o.warmup_steps:
            return o.lr * (step + 1) / o.warmup_steps
        progress = (step - o.warmup_steps) / max(1, o.steps - 1 - o.warmup_steps)
        return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


# Fields that name a folder, relative to the config file, and what it must hold when the
# config is loaded: a dataset (manifest.json), a checkpoint (config.json) or nothing yet.
_PATH_FIELDS: tuple[tuple[tuple[str, ...], Optional[str]], ...] = (
    (("data", "train"), "dataset"),
    (("data", "heldout"), "dataset"),
    (("init_from",), "checkpoint"),
    (("out",), None),
)
_MUST_HOLD = {
    "dataset": ("manifest.json", "dataset folder", "make it with `hybrid dataset generate RECIPE --out DIR`"),
    "checkpoint": ("config.json", "checkpoint folder", "give a folder written by training (e.g. checkpoints/neural_pt)"),
}


def load_train_config(
    path: Union[str, os.PathLike], overrides: Optional[Mapping[str, object]] = None, check_datasets: bool = True
) -> TrainConfig:
    """Load and validate the training config at ``path``; raise ``TrainConfigError`` with every problem.

    ``overrides`` maps dotted field paths (``"optim.steps"``) to command-line values;
    None values are skipped. ``check_datasets`` also requires the dataset folders to
    exist with a manifest.json (off for tools that only read the config).
    """
    filename = os.fspath(path)
    text = read_source(filename, "training config", TrainConfigError)
    return load_train_config_text(text, filename, overrides=overrides, check_datasets=check_datasets)


def load_train_config_text(
    text: str,
    filename: str,
    base_dir: Optional[Union[str, os.PathLike]] = None,
    overrides: Optional[Mapping[str, object]] = None,
    check_datasets: bool = True,
) -> TrainConfig:
    """Validate training-config YAML given as text. ``filename`` is used in messages; relative
    paths resolve against ``base_dir`` (default: the folder of ``filename``)."""
    base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.path.dirname(os.path.abspath(filename))
    data, source = parse_yaml(text, filename, TrainConfigError)
    if overrides:
        apply_overrides(data, source, overrides)
    issues = _resolve_paths(data, source, base, check_datasets)
    return validate_located(TrainConfig, data, source, issues, TrainConfigError)


def _resolve_paths(data: dict, source: SourceMap, base_dir: str, check_datasets: bool) -> list[Issue]:
    """Make folder paths absolute (in place); report dataset or checkpoint folders that do not hold one."""
    issues: list[Issue] = []
    for where, kind in _PATH_FIELDS:
        parent = data
        for part in where[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        value = parent.get(where[-1]) if isinstance(parent, dict) else None
        # data.train may list several folders: each item resolves and is checked alone.
        items = list(enumerate(value)) if isinstance(value, list) and where == ("data", "train") else [(None, value)]
        # A command-line value is relative to the working directory, like any CLI path.
        root = os.getcwd() if where in source.overrides else base_dir
        for i, item in items:
            if not isinstance(item, str) or not item.strip():
                continue  # validation words those errors
            at = where if i is None else (*where, i)
            resolved = os.path.normpath(os.path.join(root, os.path.expanduser(item)))
            if i is None:
                parent[where[-1]] = resolved
            else:
                value[i] = resolved
            if kind is None or not check_datasets:
                continue
            marker, noun, fix = _MUST_HOLD[kind]
            if not os.path.isfile(os.path.join(resolved, marker)):
                note = "" if os.path.isabs(os.path.expanduser(item)) or where in source.overrides else (
                    f" (relative paths start at the config's folder, {base_dir})"
                )
                what = f"no {noun}" if not os.path.isdir(resolved) else f"no {marker} in"
                issues.append(source.issue(at, f"{what} {resolved}{note}; {fix}"))
    return issues
