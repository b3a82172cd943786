"""Checkpoint folders: ``config.json`` + ``model.safetensors`` + ``info.json``, written atomically.

    CHECKPOINT/config.json        NeuralConfig (architecture, window, condition groups, noise schedule)
    CHECKPOINT/model.safetensors  the weights, float32, named as VideoDenoiser.state_dict();
                                  header metadata: format and the sha256 of the tensor bytes
    CHECKPOINT/info.json          facts about training (dataset, steps, hardware, time, metrics)

The layout follows diffusers' (a JSON config plus safetensors weights, loadable by
path). Weights are never pickled and never read with torch.load: safetensors holds
plain tensors, so loading a checkpoint cannot run code. Safetensors checks its
header but not the bytes after it, so the writer stores a sha256 of every tensor's
bytes and the reader compares it: a flipped bit is an error, not a silently wrong
renderer.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import nn

from hybrid.io.atomic import ownership_problem, refuse_unless_replaceable, staged_dir
from hybrid.neural.config import FORMAT, SAMPLING_FIELDS, NeuralConfig, NeuralConfigError

CONFIG_FILE, WEIGHTS_FILE, INFO_FILE = "config.json", "model.safetensors", "info.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, INFO_FILE)
TRAIN_HINT = "train one with `python training/train.py training/neural_pt.yaml`"

PathLike = Union[str, os.PathLike]


class CheckpointError(Exception):
    """A checkpoint that cannot be written or used; the message names the file and what to do."""


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor in name order: identifies the weights exactly."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def checkpoint_folder_problem(folder: Path) -> str | None:
    """Why the existing, non-empty `folder` is not a checkpoint this project wrote (None when it is).

    Ours: config.json has a "hybrid-neural/N" format and the folder holds nothing but
    CHECKPOINT_FILES. Replacing it deletes only those.
    """
    return ownership_problem(folder, CONFIG_FILE, FORMAT, lambda _: CHECKPOINT_FILES)


def check_checkpoint_target(out: Path) -> None:
    """CheckpointError unless save_checkpoint may write `out`: absent, an empty folder, or a checkpoint of ours."""
    refuse_unless_replaceable(
        out, checkpoint_folder_problem, CheckpointError, f"{out} is a file; a checkpoint is a folder, give a folder path",
        lambda why: f"{out} does not hold a checkpoint written by hybrid ({why}); saving there would delete "
        "what it holds, so nothing was written: choose another folder, or move those files away or "
        "delete the folder yourself",
    )


def save_checkpoint(path: PathLike, model: nn.Module, config: NeuralConfig, info: Mapping[str, Any] | None = None) -> Path:
    """Write the checkpoint folder `path` atomically (a temporary sibling renamed into place); returns it.

    An existing checkpoint at `path` is replaced when it is provably one this project
    wrote (see checkpoint_folder_problem); any other non-empty folder is refused with
    CheckpointError and left as it is. `info` must be JSON-serialisable.
    """
    from safetensors.torch import save_file

    out = Path(path).resolve()
    check_checkpoint_target(out)
    # Unwrap DistributedDataParallel (.module) and torch.compile (._orig_mod): their state
    # dicts prefix every name, and the reader builds a bare VideoDenoiser.
    while isinstance(getattr(model, "module", None), nn.Module) or isinstance(getattr(model, "_orig_mod", None), nn.Module):
        model = getattr(model, "module", None) or model._orig_mod
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    with staged_dir(out, check=check_checkpoint_target) as tmp:
        (tmp / CONFIG_FILE).write_text(config.to_json())
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT, "sha256": tensors_sha256(tensors)})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp / WEIGHTS_FILE, 0o666 & ~umask)  # safetensors creates it owner-only; match the other files
        (tmp / INFO_FILE).write_text(json.dumps(dict(info or {}), indent=1) + "\n")
    return out


def checkpoint_dir(path: PathLike) -> Path:
    """The checkpoint folder for `path` (a folder, or a file inside one); CheckpointError when there is none."""
    p = Path(path)
    if p.is_file() and p.name in CHECKPOINT_FILES:
        p = p.parent
    if not p.exists():
        raise CheckpointError(
            f"checkpoint folder {p} does not exist: pass the folder that holds {CONFIG_FILE} and {WEIGHTS_FILE}, "
            f"or {TRAIN_HINT}"
        )
    if not p.is_dir():
        raise CheckpointError(f"{p} is a file, not a checkpoint folder (one holding {CONFIG_FILE} and {WEIGHTS_FILE})")
    return p


def load_config(path: PathLike) -> NeuralConfig:
    """The NeuralConfig of checkpoint folder `path` (reads config.json only)."""
    folder = checkpoint_dir(path)
    file = folder / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: {folder} is not a complete checkpoint; re-export it or {TRAIN_HINT}")
    data = _json_object(file, "restore it from the checkpoint's source", ", got {}")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise CheckpointError(
            f"{file}: format {fmt!r} is not one this version of hybrid reads ({FORMAT!r}); "
            "use the hybrid version that wrote it, or re-export the checkpoint with this one"
        )
    try:
        return NeuralConfig.from_dict(data, source=str(file))
    except NeuralConfigError as err:
        raise CheckpointError(f"{err}\n(fix config.json, or re-export the checkpoint)") from None


def _json_object(file: Path, fix: str, got: str) -> dict:
    """The JSON object in `file`; CheckpointError saying `fix` when it is not JSON, or when it
    is not an object (`got`, if not empty, a format for the type found, e.g. ", got {}")."""
    try:
        data = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{file} is not valid JSON ({err}); {fix}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file} must hold a JSON object" + got.format(type(data).__name__))
    return data


def load_info(path: PathLike) -> dict:
    """info.json of checkpoint folder `path` ({} when the folder has none)."""
    file = checkpoint_dir(path) / INFO_FILE
    if not file.is_file():
        return {}
    return _json_object(file, "restore it or delete it (it only holds training facts)", "")


def _read_weights(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not file.is_file():
        raise CheckpointError(f"{file} is missing: the checkpoint has no weights; re-export it or {TRAIN_HINT}")
    try:
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError) for damaged files
        raise CheckpointError(
            f"{file} is not a readable safetensors file ({err}): it is truncated or corrupt; "
            "copy or download it again, or re-export the checkpoint"
        ) from None
    return tensors, meta


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[nn.Module, NeuralConfig, dict]:
    """(model in eval mode on `device`, its NeuralConfig, info dict) from checkpoint folder `path`.

    Raises CheckpointError for a missing folder or file, damaged JSON or safetensors,
    an unknown format, or weights that do not match config.json (names or shapes).
    """
    from hybrid.neural.model import VideoDenoiser

    folder = checkpoint_dir(path)
    config = load_config(folder)
    info = load_info(folder)
    file = folder / WEIGHTS_FILE
    tensors, meta = _read_weights(file)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{file}: format {meta.get('format')!r} is not one this version of hybrid reads ({FORMAT!r}); "
            "use the hybrid version that wrote it, or re-export the checkpoint with this one"
        )
    if "sha256" in meta and tensors_sha256(tensors) != meta["sha256"]:
        raise CheckpointError(
            f"{file}: the tensor bytes do not match the checksum stored with them: the file is corrupt; "
            "copy or download it again, or re-export the checkpoint"
        )

    model = VideoDenoiser(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [(k, tuple(tensors[k].shape), tuple(v.shape)) for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or wrong:
        lines = [f"{file} does not match {folder / CONFIG_FILE}:"]
        for k, got, want in wrong[:5]:
            lines.append(f"  tensor {k!r} has shape {got}, the config needs {want}")
            if k == "conv_in.weight" and got[1] != want[1]:
                got_cond = got[1] - (model.in_channels - config.condition_channels)
                lines.append(
                    f"  (the weights take {got_cond} condition channels; config.json's condition "
                    f"{list(config.condition)} gives {config.condition_channels})"
                )
        if missing:
            lines.append(f"  {len(missing)} tensors missing, e.g. {missing[:3]}")
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}")
        lines.append("config.json and model.safetensors must come from the same export; re-export the checkpoint")
        raise CheckpointError("\n".join(lines))
    for k, v in tensors.items():
        if not v.is_floating_point() or not torch.isfinite(v).all():
            raise CheckpointError(f"{file}: tensor {k!r} is not finite floating point; the checkpoint is damaged")
    model.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    return model.to(device).eval(), config, info


def _condition_slices(config: NeuralConfig) -> dict[str, slice]:
    """Where each condition group's channels sit in the model's input (after the 3 noisy channels)."""
    from hybrid.neural.conditioning import condition_channels

    out, at = {}, 3
    for name in config.condition:
        width = condition_channels([name])
        out[name] = slice(at, at + width)
        at += width
    return out


def init_from_checkpoint(model: nn.Module, config: NeuralConfig, source: PathLike) -> dict[str, list[str]]:
    """Start `model` (built from `config`) from the weights of checkpoint folder `source`.

    The two configs must agree on everything but ``condition`` and the sampling settings
    (``SAMPLING_FIELDS``): a fine-tune may add
    condition groups (their input weights start at zero, so the model first ignores
    them and computes exactly what the source did) and drop groups (their weights are
    left out). Every other tensor is copied as it is. Returns ``{"kept": [...],
    "added": [...], "dropped": [...]}`` condition groups. Raises CheckpointError when
    the architectures differ.
    """
    src_model, src_config, _ = load_checkpoint(source)
    folder = checkpoint_dir(source)
    mine, theirs = config.model_dump(mode="json"), src_config.model_dump(mode="json")
    # Sampling settings do not shape the weights: the fine-tune's own apply (and `auto` is measured again).
    differ = sorted(k for k in mine if k != "condition" and k not in SAMPLING_FIELDS and mine[k] != theirs.get(k))
    if differ:
        details = ", ".join(f"{k}: {theirs.get(k)!r} there, {mine[k]!r} here" for k in differ)
        raise CheckpointError(
            f"{folder / CONFIG_FILE}: init_from needs the same model but for `condition`; these differ: {details}. "
            "Copy those values into the training config's `model:` section, or start from scratch without init_from"
        )
    tensors = src_model.state_dict()
    target = model.state_dict()
    new_slices, old_slices = _condition_slices(config), _condition_slices(src_config)
    weight = torch.zeros_like(target["conv_in.weight"])
    old = tensors["conv_in.weight"]
    weight[:, :3] = old[:, :3]  # the noisy frame
    weight[:, 3 + config.condition_channels:] = old[:, 3 + src_config.condition_channels:]  # context, mask
    for name, where in new_slices.items():
        if name in old_slices:
            weight[:, where] = old[:, old_slices[name]]
    tensors["conv_in.weight"] = weight
    model.load_state_dict({k: v.to(target[k].dtype) for k, v in tensors.items()})
    return {
        "kept": [n for n in config.condition if n in old_slices],
        "added": [n for n in config.condition if n not in old_slices],
        "dropped": [n for n in src_config.condition if n not in new_slices],
    }
