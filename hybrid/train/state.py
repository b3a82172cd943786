"""Training-state checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is a folder ``RUN/checkpoints/step-00001000/`` holding

    state.safetensors   every tensor: model weights ("model.<name>"), EMA weights
                        ("ema.<name>"), AdamW moments and step counts
                        ("optim.<param index>.<key>"), and each rank's RNG states as
                        uint8 tensors ("rng.<rank>.cpu", "rng.<rank>.cuda")
    state.json          the rest: format, step, data position, AdamW hyper-parameters,
                        accumulated wall time, the latest losses, the training config

Nothing is pickled: safetensors holds raw tensors and JSON the plain values, so a
checkpoint cannot run code when it is read.

Writes are atomic: the folder is written under a temporary name, each file is
fsync'ed, then the folder is renamed into place and its parent fsync'ed. A run killed
at any moment leaves either the previous checkpoints or the new one complete, never
a half-written folder under a checkpoint's name. Older checkpoints beyond ``keep``
are deleted only after the new one is in place.

Only folders this project wrote are replaced or deleted: a step folder whose
state.json carries a "hybrid-train-state/N" format and which holds nothing but
STATE_FILES. One holding anything else is refused (when saving that step again) or
kept (when pruning). Hidden staging folders that a killed run left in
``checkpoints/`` are removed by the next save (see hybrid.io.atomic).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hybrid.io.atomic import clean_stale_staging, ownership_problem, refuse_unless_replaceable, staged_dir

STATE_FORMAT = "hybrid-train-state/1"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
STATE_FILES = (STATE_TENSORS, STATE_JSON)
CHECKPOINTS_DIR = "checkpoints"
_STEP_NAMES = r"step-\d{8}"
_NAME = re.compile(r"^step-(\d{8})$")


class StateError(RuntimeError):
    """A training-state checkpoint that cannot be used; the message names the folder and the problem."""


def state_folder_problem(folder: Path) -> Optional[str]:
    """Why the existing, non-empty `folder` is not a training checkpoint this project wrote (None when it is)."""
    return ownership_problem(folder, STATE_JSON, STATE_FORMAT, lambda _: STATE_FILES)


def check_state_target(folder: Path) -> None:
    """StateError unless `folder` is absent, empty, or a training checkpoint this project wrote."""
    refuse_unless_replaceable(
        folder, state_folder_problem, StateError,
        f"{folder} is a file where a checkpoint folder goes; move it away, or use another run folder",
        lambda why: f"{folder} does not hold a training checkpoint written by hybrid ({why}); saving there would "
        "delete what it holds, so nothing was written: move those files away, or use another run folder",
    )


def checkpoint_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / f"step-{step:08d}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match and (entry / STATE_TENSORS).is_file() and (entry / STATE_JSON).is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Optional[Path]:
    """The newest complete checkpoint folder of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint_state(
    run_dir: str | os.PathLike, step: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int
) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep``; returns its folder.

    tensors: name -> tensor (any device; copied to the CPU, made contiguous); meta:
    JSON-serialisable dict, stored with "format" and "step" added.
    """
    final = checkpoint_dir(run_dir, step)
    check_state_target(final)
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    # Earlier killed runs may have left staging folders for other steps than this one.
    clean_stale_staging(final.parent, _STEP_NAMES)
    # A step saved again (a run stopped exactly at a checkpoint step) replaces the old one.
    with staged_dir(final, check=check_state_target) as tmp:
        save_file(cpu, str(tmp / STATE_TENSORS))
        (tmp / STATE_JSON).write_text(json.dumps({"format": STATE_FORMAT, "step": step, **meta}, indent=1) + "\n")
    for _, older in list_checkpoints(run_dir)[:-keep]:
        if state_folder_problem(older) is None:  # a folder holding anything else is kept whole
            shutil.rmtree(older, ignore_errors=True)
    return final


def read_checkpoint_state(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors on the CPU, meta) of a checkpoint folder; StateError when it cannot be read."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / STATE_JSON).read_text())
    except FileNotFoundError:
        raise StateError(f"{folder}: no {STATE_JSON}; not a training checkpoint") from None
    except (OSError, json.JSONDecodeError) as err:
        raise StateError(f"{folder / STATE_JSON}: cannot be read ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise StateError(f"{folder / STATE_JSON}: format {got!r}, expected {STATE_FORMAT!r}")
    try:
        tensors = load_file(str(folder / STATE_TENSORS))
    except FileNotFoundError:
        raise StateError(f"{folder}: no {STATE_TENSORS}") from None
    except (SafetensorError, OSError) as err:
        raise StateError(f"{folder / STATE_TENSORS}: not a readable safetensors file ({err})") from None
    return tensors, meta


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix + '.'``, with it removed."""
    cut = len(prefix) + 1
    return {name[cut:]: t for name, t in tensors.items() if name.startswith(prefix + ".")}


# ---------------------------------------------------------------- optimizer state as flat tensors


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state as ({"optim.<param>.<key>": tensor}, JSON meta of hyper-parameters).

    Per-parameter values that are not tensors (none for AdamW, whose step count is a
    tensor) go into the meta, as do the param groups without their parameter lists.
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Load what ``optimizer_to_flat`` saved into ``optimizer`` (built over the same parameters)."""
    state: dict[int, dict] = {}
    for name, value in prefixed(tensors, "optim").items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise StateError(f"the saved optimizer state does not fit this model's parameters ({err})") from None
