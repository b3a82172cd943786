"""Stream a dataset folder into PyTorch: shards read sequentially, split across ranks and workers.

Each epoch the committed shards are put in an order (shuffled with a RNG seeded by
(seed, epoch), or in index order), dealt to DDP ranks round-robin
(`order[rank::world_size]`), and each rank's share dealt to its DataLoader workers
(`share[worker::num_workers]`). Every clip is therefore read by exactly one
(rank, worker) per epoch, and a rank's share does not depend on its worker count.
Ranks can receive different numbers of clips when the shard count is not a multiple
of the world size; a DDP loop that needs equal step counts should use a shard count
that divides evenly (or torch's `Join`).

The rank comes from torch.distributed when it is initialised, else from the RANK
and WORLD_SIZE environment variables that torchrun sets (so spawned workers agree).

Call `set_epoch(e)` before iterating each epoch. DataLoader workers receive a copy
of the dataset when they start, so with `persistent_workers=True` a later
`set_epoch` does not reach them; leave persistent workers off.

Shards may store buffers gzip-compressed (`depth.npy.gz`, the default) or not
(`depth.npy`), in any mix; the arrays read back are the same, bit for bit.

Reading a shard without this class (any tar reader works; see hybrid.data.shards):

    import webdataset as wds
    for sample in wds.WebDataset("out/ds/shards/shard-000000.tar", shardshuffle=False).decode():
        sample["__key__"]        # "00000012" (the clip index, 8 digits)
        sample["depth.npy.gz"]   # float32 (T, H, W) ndarray: .decode() inflates .gz, then loads the .npy
                                 # ("depth.npy" in a dataset made with compression "none")
        sample["metadata.json"]  # dict
        sample["rgb.mp4"]        # bytes
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from hybrid.data.manifest import read_manifest, shard_path
from hybrid.data.shards import DatasetError, iter_shard

# torch has no arithmetic on uint16/uint32, so those widen to the next signed type.
_WIDEN = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64}


def shard_order(n_shards: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The epoch's shard order: a permutation seeded by (seed, epoch) when `shuffle`, else 0..n-1."""
    if not shuffle:
        return list(range(n_shards))
    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(n_shards)]


def assign_shards(order: Sequence[int], rank: int, world_size: int, worker: int, num_workers: int) -> list[int]:
    """The shards that (rank, worker) reads, in reading order."""
    return list(order[rank::world_size][worker::num_workers])


def distributed_rank() -> tuple[int, int]:
    """(rank, world_size): torch.distributed when initialised, else env RANK/WORLD_SIZE, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    raw_rank, raw_world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    try:
        rank, world = int(raw_rank), int(raw_world)
    except ValueError:
        raise DatasetError(f"RANK={raw_rank!r} and WORLD_SIZE={raw_world!r} must be integers (torchrun sets them)") from None
    if not 0 <= rank < world:
        raise DatasetError(f"RANK={rank} must lie in [0, WORLD_SIZE={world}); fix the environment or launch with torchrun")
    return rank, world


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """A buffer as a tensor of the same dtype (uint8, float32 ...), uint16 -> int32 and uint32 -> int64."""
    widen = _WIDEN.get(arr.dtype)
    return torch.from_numpy(arr.astype(widen) if widen is not None else arr)


class ClipDataset(IterableDataset):
    """Clips of a dataset folder as dicts, streamed shard by shard without extracting.

    Each item: {"index": int (global clip index), "metadata": dict, "first_frame": int
    (start of the temporal crop, 0 without one), <buffer>: tensor (T, ...) for each of
    `buffers`}. dtypes are kept (rgb uint8 (T,H,W,3), depth float32 (T,H,W), ...) except
    instance uint16 -> int32. `clip_frames=k` takes a random window of k consecutive
    frames from every buffer (one window per clip, seeded by (seed, epoch, index));
    the metadata stays whole, so index its per-frame lists from `first_frame`.

    `buffers=None` reads every buffer of the manifest. Only committed shards exist to
    the loader; an unfinished dataset is refused unless `allow_partial`.
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        buffers: Optional[Sequence[str]] = None,
        shuffle_shards: bool = True,
        seed: int = 0,
        clip_frames: Optional[int] = None,
        allow_partial: bool = False,
    ):
        super().__init__()
        self.dataset_dir = Path(dataset_dir)
        self.manifest = read_manifest(self.dataset_dir)
        available = sorted(self.manifest.buffers)
        self.buffers = tuple(available if buffers is None else buffers)
        unknown = [b for b in self.buffers if b not in self.manifest.buffers]
        if unknown:
            raise DatasetError(f"{self.dataset_dir}: buffers {unknown} are not in this dataset; it holds {available}")
        if not self.buffers:
            raise DatasetError("buffers is empty; name at least one buffer, or pass None for all")
        frames = min(spec.shape[0] for spec in self.manifest.buffers.values())
        if clip_frames is not None and not (isinstance(clip_frames, int) and 1 <= clip_frames <= frames):
            raise DatasetError(f"clip_frames must be an integer in [1, {frames}] (the clips' frame count), got {clip_frames!r}")
        planned = len(self.manifest.plan())
        self.shards = sorted(i for i in self.manifest.shards if i < planned)
        if len(self.shards) < planned and not allow_partial:
            raise DatasetError(
                f"{self.dataset_dir}: only {len(self.shards)} of {planned} shards are committed; finish generating "
                "with the same --out, or pass allow_partial=True to train on what exists"
            )
        self.shuffle_shards = shuffle_shards
        self.seed = int(seed)
        self.clip_frames = clip_frames
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shard order and crops; call before iterating each epoch."""
        self.epoch = int(epoch)

    def my_shards(self) -> list[int]:
        """Shard indices this process (rank, DataLoader worker) reads this epoch, in order."""
        rank, world = distributed_rank()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        order = [self.shards[k] for k in shard_order(len(self.shards), self.seed, self.epoch, self.shuffle_shards)]
        return assign_shards(order, rank, world, worker, workers)

    def __iter__(self) -> Iterator[dict]:
        for shard in self.my_shards():
            path = shard_path(self.dataset_dir, shard)
            for index, record in iter_shard(path, buffers=self.buffers, video=False):
                yield self._item(path, index, record)

    def _item(self, path: Path, index: int, record: dict) -> dict:
        missing = [b for b in self.buffers if b not in record["buffers"]]
        if missing or record["metadata"] is None:
            raise DatasetError(
                f"{path}: clip {index} lacks {missing or 'metadata.json'}; check the dataset with `hybrid dataset verify DIR`"
            )
        start = 0
        if self.clip_frames is not None:
            frames = min(record["buffers"][b].shape[0] for b in self.buffers)
            start = int(np.random.default_rng([self.seed, self.epoch, index]).integers(0, frames - self.clip_frames + 1))
        item: dict = {"index": index, "metadata": record["metadata"], "first_frame": start}
        for name in self.buffers:
            arr = record["buffers"][name]
            if self.clip_frames is not None:
                arr = arr[start : start + self.clip_frames]
            item[name] = to_tensor(np.ascontiguousarray(arr))
        return item

    def __repr__(self) -> str:
        return f"ClipDataset({str(self.dataset_dir)!r}, shards={len(self.shards)}, buffers={list(self.buffers)}, epoch={self.epoch})"


def collate_clips(items: list[dict]) -> dict:
    """DataLoader collate_fn: buffers stacked to (B, T, ...), index/first_frame as int64 (B,), metadata a list.

    The default collate cannot batch metadata (clips hold different object counts).
    """
    if not items:
        raise ValueError("collate_clips needs at least one item")
    batch: dict = {"metadata": [it["metadata"] for it in items]}
    for key in ("index", "first_frame"):
        batch[key] = torch.tensor([it[key] for it in items], dtype=torch.int64)
    for name in items[0]:
        if name not in batch:
            batch[name] = torch.stack([it[name] for it in items])
    return batch
