"""The dataset card says how shards store buffers and what they weigh (small synthetic clips, no rendering)."""

import numpy as np
import pytest

from hybrid.data.card import storage_line, write_card
from hybrid.data.manifest import buffer_specs, commit_shard, open_dataset, read_manifest
from hybrid.data.shards import encode_clip


def clip(index, t=2, h=8, w=8):
    # Smooth, repetitive arrays, as rendered buffers are: they compress.
    buffers = {
        "rgb": np.full((t, h, w, 3), 40 + index, np.uint8),
        "depth": np.broadcast_to(np.linspace(1.0, 2.0, w, dtype=np.float32), (t, h, w)).copy(),
    }
    return buffers, {"objects": [{"name": "ball"}]}, b"mp4"


@pytest.mark.parametrize("compression, member", [("gzip", "`<key>.<buffer>.npy.gz`"), ("none", "`<key>.<buffer>.npy`")])
def test_card_states_the_layout_and_the_size_per_clip(tmp_path, compression, member):
    root = tmp_path / "ds"
    manifest = open_dataset(root, {"name": "toy"}, 0, 3, 2, buffer_specs(clip(0)[0]), compression)
    for k, clips in enumerate(manifest.plan()):
        commit_shard(root, manifest, k, [m for i in clips for m in encode_clip(i, *clip(i), compression=compression)])
    manifest = read_manifest(root)
    line = storage_line(manifest)
    on_disk = sum(e.bytes for e in manifest.shards.values())
    raw = 2 * 8 * 8 * 3 + 2 * 8 * 8 * 4  # rgb uint8 + depth float32 bytes of one clip
    assert member in line
    assert f"The shards take {on_disk / 1e6:.1f} MB, {on_disk / 3 / 1e6:.2f} MB per clip" in line
    assert f"against {raw / 1e6:.2f} MB of buffer arrays per clip" in line
    assert line in write_card(root, "name: toy\n").read_text()


def test_card_of_a_dataset_without_shards_yet_states_only_the_layout(tmp_path):
    manifest = open_dataset(tmp_path / "ds", {"name": "toy"}, 0, 3, 2, buffer_specs(clip(0)[0]))
    assert storage_line(manifest) == (
        "Buffers are stored gzip-compressed, one `<key>.<buffer>.npy.gz` member each (lossless; see hybrid/data/shards.py)."
    )
