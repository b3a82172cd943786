"""Training windows from dataset shards: condition, target and context mask per window.

A *window* is ``window`` consecutive frames of one clip (``NeuralConfig.window``):
its condition stack ``cond`` float32 (T, C, H, W) from
``hybrid.neural.conditioning.build_condition``, its target ``target`` float32
(T, 3, H, W) in [-1, 1] (the rgb frames) and a ``context_mask`` bool (T,) whose
first k entries are True: those frames are given to the model clean, as when a
long clip is sampled in overlapping windows and the previous window's last frames
are already made. k is drawn from 0..context_frames, so the model learns both fresh
windows (k = 0) and continuations.

Several datasets. A run may train on a list of dataset folders (a base recipe and
one that adds a regime it lacks): their shards form one list, dataset by dataset,
which each epoch shuffles as one, so every clip of every dataset is read once per
epoch and a dataset's share of the windows is its share of the clips.

Determinism. Everything random about a window (its first frame, its k) is drawn
from a generator seeded by (seed, epoch, clip index) (and the dataset's place in
the list after the first), and the shard order of an epoch by (seed, epoch) as in
``hybrid.data.loader``. A rank's shards are dealt to
its DataLoader workers as the loader does, so every clip is read once per epoch per
run, and the stream each (rank, worker) produces is a fixed function of
(seed, rank, world size, worker, worker count).

Each worker's stream is endless (epoch after epoch), so the DataLoader hands out
batches round-robin from the workers for ever: batch b of a rank comes from worker
``b % num_workers``. That makes the data position a single number, the batches a
rank has consumed, and lets a resumed run skip straight to it (whole epochs and
shards by arithmetic, at most one shard's clips by reading) instead of replaying
the stream. Ranks never run dry at different times either, so DDP needs no Join.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from hybrid.data.loader import assign_shards, shard_order
from hybrid.data.manifest import Manifest, read_manifest, shard_path
from hybrid.data.shards import DatasetError, iter_shard
from hybrid.neural.conditioning import build_condition, read_buffers, required_buffers, target_frames
from hybrid.neural.config import NeuralConfig


def window_buffers(config: NeuralConfig, held: Optional[Iterable[str]] = None) -> tuple[str, ...]:
    """The dataset buffers a window reads: the condition's plus rgb (the target), sorted.

    held: the buffers a dataset holds; given, buffers of groups that may be absent
    (fields, for a dataset without them: their channels are zeros) are read only when held.
    """
    wanted = required_buffers(config.condition) if held is None else read_buffers(config.condition, held)
    return tuple(sorted(wanted | {"rgb"}))


def dataset_list(datasets: str | os.PathLike | Sequence[str | os.PathLike]) -> list:
    """One dataset folder or several, as a list (a path is one folder, not a sequence of characters)."""
    return [datasets] if isinstance(datasets, (str, os.PathLike)) else list(datasets)


def check_dataset(dataset_dir: str | os.PathLike, config: NeuralConfig) -> Manifest:
    """The dataset's manifest, after checking it holds the buffers and frames a window needs.

    A dataset may lack every buffer of an ``absent_is_zero`` group (the field groups, for
    data made without fields), not some of them.
    """
    manifest = read_manifest(dataset_dir)
    missing = [b for b in window_buffers(config, manifest.buffers) if b not in manifest.buffers]
    if missing:
        raise DatasetError(
            f"{dataset_dir}: the model's condition {list(config.condition)} needs buffers {missing}, which this "
            f"dataset does not hold (it has {sorted(manifest.buffers)})"
        )
    frames = min(spec.shape[0] for spec in manifest.buffers.values())
    if frames < config.window:
        raise DatasetError(f"{dataset_dir}: clips have {frames} frames, fewer than the model's window of {config.window}")
    planned = len(manifest.plan())
    if len(manifest.shards) < planned:
        raise DatasetError(
            f"{dataset_dir}: only {len(manifest.shards)} of {planned} shards are committed; finish generating it "
            "(rerun the same `hybrid dataset generate` command) before training on it"
        )
    return manifest


def make_window(
    buffers: Mapping[str, np.ndarray], metadata: dict, config: NeuralConfig, start: int, context: int
) -> dict[str, torch.Tensor]:
    """One window of a clip as tensors.

    buffers: the clip's whole buffers (T_clip, ...); metadata: its metadata.json dict
    (per-frame lists from frame 0); start: first frame; context: k,
    the number of leading frames marked as clean context. Returns {"cond": float32
    (T, C, H, W), "target": float32 (T, 3, H, W) in [-1, 1], "context_mask": bool (T,)}
    with T = config.window and (H, W) = config.resolution.
    """
    frames = slice(start, start + config.window)
    cut = {name: arr[frames] for name, arr in buffers.items()}
    # The per-frame camera poses (light direction in camera axes) are cut like the buffers.
    meta = dict(metadata, cam_to_world=metadata["cam_to_world"][frames]) if "cam_to_world" in metadata else metadata
    cond = build_condition(cut, meta, config.condition, size=tuple(config.resolution))
    target = target_frames(buffers["rgb"][frames], size=tuple(config.resolution))
    mask = np.zeros(config.window, dtype=bool)
    mask[:context] = True
    return {
        "cond": torch.from_numpy(np.ascontiguousarray(cond, dtype=np.float32)),
        "target": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
        "context_mask": torch.from_numpy(mask),
    }


def window_draw(
    seed: int, epoch: int, index: int, clip_frames: int, config: NeuralConfig, dataset: int = 0
) -> tuple[int, int]:
    """(first frame, context frame count k) of clip ``index``'s window in ``epoch``: a fixed function of its arguments.

    dataset: the clip's dataset's place in the run's list; clips of the first draw as a run on one dataset does.
    """
    rng = np.random.default_rng([seed, epoch, index] if dataset == 0 else [seed, epoch, index, dataset])
    start = int(rng.integers(0, clip_frames - config.window + 1))
    context = int(rng.integers(0, config.context_frames + 1))
    return start, context


class TrainWindows(IterableDataset):
    """Endless stream of training windows for one rank (and, inside a DataLoader, one worker).

    Items: {"cond", "target", "context_mask"} as ``make_window`` gives them, plus
    "index" (the clip), "dataset" (its dataset's place in the list) and "first_frame".
    ``skip_batches`` is the number of batches of ``batch_size`` this rank has already
    consumed (the data position of a resumed run). ``datasets``: one dataset folder or
    a list of them.
    """

    def __init__(
        self,
        datasets: str | os.PathLike | Sequence[str | os.PathLike],
        config: NeuralConfig,
        seed: int,
        rank: int,
        world_size: int,
        num_workers: int,
        batch_size: int,
        skip_batches: int = 0,
    ):
        super().__init__()
        dirs = dataset_list(datasets)
        self.dataset_dirs = [Path(d) for d in dirs]
        self.manifests = [check_dataset(d, config) for d in dirs]
        self.config = config
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.num_workers, self.batch_size, self.skip_batches = int(num_workers), int(batch_size), int(skip_batches)
        # Per dataset: a dataset made without fields does not hold their buffers (zeros stand in).
        self.buffers = [window_buffers(config, m.buffers) for m in self.manifests]
        # (dataset, shard) pairs, dataset by dataset: with one dataset, the order a single-dataset run shuffles.
        self.shards = [(k, shard) for k, m in enumerate(self.manifests) for shard in sorted(m.shards)]
        readers = world_size * max(1, num_workers)
        if len(self.shards) < readers:
            where = ", ".join(str(d) for d in self.dataset_dirs)
            raise DatasetError(
                f"{where}: {len(self.shards)} shards cannot feed {world_size} rank(s) x {max(1, num_workers)} "
                f"reader(s): each reads whole shards. Lower data.num_workers, or regenerate with a smaller "
                "--clips-per-shard"
            )

    def _my_shards(self, epoch: int, worker: int, workers: int) -> list[tuple[int, int]]:
        order = [self.shards[k] for k in shard_order(len(self.shards), self.seed, epoch, shuffle=True)]
        return assign_shards(order, self.rank, self.world_size, worker, workers)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # Batches are dealt round-robin from the workers, each a run of batch_size items
        # of one worker's stream, starting with worker 0 whenever an iterator starts.
        # Batch b of the original run came from worker b % workers, so after `skip`
        # batches this worker plays the part of worker (worker + skip) % workers, and
        # that part's share of the batches consumed is skipped.
        role = (worker + self.skip_batches) % workers
        skip = len(range(role, self.skip_batches, workers)) * self.batch_size
        epoch = 0
        while True:
            shards = self._my_shards(epoch, role, workers)
            sizes = [self.manifests[k].shards[s].clip_count for k, s in shards]
            if skip >= sum(sizes):  # the whole epoch was consumed before the resume
                skip -= sum(sizes)
                epoch += 1
                continue
            for (k, shard), size in zip(shards, sizes):
                if skip >= size:
                    skip -= size
                    continue
                path = shard_path(self.dataset_dirs[k], shard)
                for index, record in iter_shard(path, buffers=self.buffers[k], video=False):
                    if skip > 0:
                        skip -= 1
                        continue
                    yield self._window(k, shard, index, record, epoch)
            epoch += 1

    def _window(self, dataset: int, shard: int, index: int, record: dict, epoch: int) -> dict:
        wanted = self.buffers[dataset]
        missing = [b for b in wanted if b not in record["buffers"]]
        if missing or record["metadata"] is None:
            raise DatasetError(
                f"{shard_path(self.dataset_dirs[dataset], shard)}: clip {index} lacks {missing or 'metadata.json'}; "
                "check the dataset with `hybrid dataset verify DIR`"
            )
        buffers = record["buffers"]
        clip_frames = min(buffers[b].shape[0] for b in wanted)
        start, context = window_draw(self.seed, epoch, index, clip_frames, self.config, dataset)
        item = make_window(buffers, record["metadata"], self.config, start, context)
        item["index"] = torch.tensor(index, dtype=torch.int64)
        item["dataset"] = torch.tensor(dataset, dtype=torch.int64)
        item["first_frame"] = torch.tensor(start, dtype=torch.int64)
        return item


def train_loader(
    datasets: str | os.PathLike | Sequence[str | os.PathLike],
    config: NeuralConfig,
    seed: int,
    rank: int,
    world_size: int,
    batch_size: int,
    num_workers: int,
    skip_batches: int = 0,
) -> Iterator[dict]:
    """Endless iterator of training batches for this rank: cond (B, T, C, H, W), target (B, T, 3, H, W), context_mask (B, T)."""
    dataset = TrainWindows(datasets, config, seed, rank, world_size, num_workers, batch_size, skip_batches)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        # Workers copy the dataset when they start; the stream is endless, so they never restart.
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
        # Starting an iterator draws a seed for the workers from this generator; without
        # one it would draw from the global RNG, whose state a checkpoint restores.
        generator=torch.Generator().manual_seed(seed),
    )
    return iter(loader)


@dataclass(frozen=True)
class HeldoutWindows:
    """A fixed set of held-out windows, stacked: the same every time they are built.

    cond float32 (N, T, C, H, W); target float32 (N, T, 3, H, W) in [-1, 1];
    context_mask bool (N, T); index int64 (N,) clip indices; first_frame int64 (N,).
    """

    cond: torch.Tensor
    target: torch.Tensor
    context_mask: torch.Tensor
    index: torch.Tensor
    first_frame: torch.Tensor

    def __len__(self) -> int:
        return int(self.cond.shape[0])

    def slice(self, lo: int, hi: int) -> dict[str, torch.Tensor]:
        return {"cond": self.cond[lo:hi], "target": self.target[lo:hi], "context_mask": self.context_mask[lo:hi]}


def heldout_windows(dataset_dir: str | os.PathLike, config: NeuralConfig, count: int, seed: int) -> HeldoutWindows:
    """One window from each of the first ``count`` clips of a dataset (in index order), drawn with (seed, epoch 0).

    A dataset with fewer clips gives fewer windows.
    """
    manifest = check_dataset(dataset_dir, config)
    buffers = window_buffers(config, manifest.buffers)
    items: list[dict] = []
    for shard in sorted(manifest.shards):
        if len(items) >= count:
            break
        for index, record in iter_shard(shard_path(dataset_dir, shard), buffers=buffers, video=False):
            if len(items) >= count:
                break
            frames = min(record["buffers"][b].shape[0] for b in buffers)
            start, context = window_draw(seed, 0, index, frames, config)
            item = make_window(record["buffers"], record["metadata"], config, start, context)
            item["index"], item["first_frame"] = index, start
            items.append(item)
    if not items:
        raise DatasetError(f"{dataset_dir}: no clips to take held-out windows from")
    return HeldoutWindows(
        cond=torch.stack([it["cond"] for it in items]),
        target=torch.stack([it["target"] for it in items]),
        context_mask=torch.stack([it["context_mask"] for it in items]),
        index=torch.tensor([it["index"] for it in items], dtype=torch.int64),
        first_frame=torch.tensor([it["first_frame"] for it in items], dtype=torch.int64),
    )


def heldout_clips(dataset_dir: str | os.PathLike, count: int) -> list[tuple[dict[str, np.ndarray], dict]]:
    """The first ``count`` clips of a dataset, whole: (buffers {name: (T, ...) ndarray}, metadata) each."""
    manifest = read_manifest(dataset_dir)
    clips: list[tuple[dict[str, np.ndarray], dict]] = []
    for shard in sorted(manifest.shards):
        for _, record in iter_shard(shard_path(dataset_dir, shard), video=False):
            if len(clips) >= count:
                return clips
            clips.append((record["buffers"], record["metadata"]))
    return clips
