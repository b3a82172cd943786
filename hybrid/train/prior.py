"""The correction prior of a detail-transfer renderer, measured on its training data.

A renderer with ``output: detail_transfer`` and several noise draws shrinks the draws'
mean correction to the raster beauty by prior / (prior + their variance)
(``NeuralConfig.correction_prior``, ``NeuralRenderer._trusted_mean``): a Wiener-style
gain, where the prior is how large a correction typically is. That is a property of the
data, not a knob, so the trainer measures it when the config says ``correction_prior:
auto``: the mean over pixels, channels and frames of (target - raster beauty)^2, in the
model's [-1, 1] units at its working size, exactly as the model sees both (the
condition's area-resized raster beauty, the area-resized target), over every whole
window of the first ``PRIOR_CLIPS`` clips of the training set. The number goes into the
exported checkpoint's config.json.
"""

from __future__ import annotations

import os
from typing import Sequence

from hybrid.data.manifest import shard_path
from hybrid.data.shards import DatasetError, iter_shard
from hybrid.neural.conditioning import condition_offsets
from hybrid.neural.config import NeuralConfig
from hybrid.train.data import check_dataset, dataset_list, make_window, window_buffers

PRIOR_CLIPS = 48  # a third of the shipped training set: the estimate's spread between halves is about 5 %


def mean_squared_correction(
    datasets: str | os.PathLike | Sequence[str | os.PathLike], config: NeuralConfig, clips: int = PRIOR_CLIPS
) -> tuple[float, int]:
    """(mean squared correction, clips read) over the whole windows of a dataset's first `clips` clips.

    With several datasets, each gives its first share of `clips` in proportion to its
    size (at least one clip each), so the prior weighs them as training does.
    Needs ``raster_beauty`` in the config's condition (the dataset's rgb_raster).
    """
    if "raster_beauty" not in config.condition:
        raise ValueError("the correction is measured against the raster beauty: the condition must list 'raster_beauty'")
    dirs = dataset_list(datasets)
    manifests = [check_dataset(d, config) for d in dirs]
    sizes = [m.clips for m in manifests]
    shares = [max(1, round(clips * n / sum(sizes))) for n in sizes]
    at = condition_offsets(config.condition)["raster_beauty"]
    total, count, seen = 0.0, 0, 0
    for dataset_dir, manifest, share in zip(dirs, manifests, shares):
        buffers = window_buffers(config, manifest.buffers)
        taken = 0
        for shard in sorted(manifest.shards):
            if taken >= share:
                break
            for _, record in iter_shard(shard_path(dataset_dir, shard), buffers=buffers, video=False):
                if taken >= share:
                    break
                taken += 1
                frames = min(record["buffers"][b].shape[0] for b in buffers)
                for start in range(0, frames - config.window + 1, config.window):
                    item = make_window(record["buffers"], record["metadata"], config, start, 0)
                    diff = item["target"].double() - item["cond"][:, at : at + 3].double()
                    total += float((diff**2).sum())
                    count += diff.numel()
        seen += taken
    if not count:
        raise DatasetError(f"{', '.join(map(str, dirs))}: no clips to measure the correction prior on")
    return total / count, seen
