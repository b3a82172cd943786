"""Streaming a dataset folder into PyTorch: exact arrays, rank/worker splitting, seeded shard order."""

import numpy as np
import pytest
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from hybrid.data.loader import ClipDataset, assign_shards, collate_clips, shard_order
from hybrid.data.manifest import buffer_specs, commit_shard, open_dataset, read_manifest, record_shard, shard_path
from hybrid.data.shards import DatasetError, encode_clip, write_shard


def fake_clip(index, t=4, h=16, w=16):
    rng = np.random.default_rng(100 + index)
    buffers = {
        "rgb": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "depth": rng.uniform(0, 5, (t, h, w)).astype(np.float32),
        "instance": rng.integers(0, 65536, (t, h, w)).astype(np.uint16),  # above int16 on purpose
        "flow_fwd": rng.normal(size=(t, h, w, 2)).astype(np.float32),
    }
    return buffers, {"scene": f"clip{index}", "objects": [{"name": "ball"}] * (1 + index % 3)}, b"mp4 bytes %d" % index


def make_dataset(root, n_clips, per_shard, commit=None, compression=None):
    manifest = open_dataset(root, {"name": "toy"}, 0, n_clips, per_shard, buffer_specs(fake_clip(0)[0]), compression)
    for k, clips in enumerate(manifest.plan()):
        if commit is None or k in commit:
            members = [m for i in clips for m in encode_clip(i, *fake_clip(i), compression=manifest.compression)]
            commit_shard(root, manifest, k, members)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """11 clips in 6 shards (the last holds one clip): uneven on purpose."""
    return make_dataset(tmp_path_factory.mktemp("loader") / "ds", n_clips=11, per_shard=2)


def test_loader_returns_the_arrays_that_were_written(dataset):
    items = {it["index"]: it for it in ClipDataset(dataset, shuffle_shards=False)}
    assert sorted(items) == list(range(11))
    for i, item in items.items():
        buffers, metadata, _ = fake_clip(i)
        assert item["metadata"] == metadata and item["first_frame"] == 0
        assert item["rgb"].dtype == torch.uint8 and item["depth"].dtype == torch.float32
        assert item["instance"].dtype == torch.int32  # torch has no uint16 arithmetic
        for name, arr in buffers.items():
            assert np.array_equal(item[name].numpy(), arr.astype(np.int32) if name == "instance" else arr), name


def test_loader_reads_only_the_buffers_asked_for_and_crops_time(dataset):
    ds = ClipDataset(dataset, buffers=("depth", "flow_fwd"), shuffle_shards=False, seed=5, clip_frames=2)
    starts = set()
    for item in ds:
        assert set(item) == {"index", "metadata", "first_frame", "depth", "flow_fwd"}
        start = item["first_frame"]
        starts.add(start)
        full = fake_clip(item["index"])[0]
        assert item["depth"].shape == (2, 16, 16)
        assert np.array_equal(item["depth"].numpy(), full["depth"][start : start + 2])
        assert np.array_equal(item["flow_fwd"].numpy(), full["flow_fwd"][start : start + 2])  # same window
    assert starts <= {0, 1, 2} and len(starts) > 1
    again = [it["first_frame"] for it in ds]
    assert again == [it["first_frame"] for it in ds]  # the crop is fixed by (seed, epoch, index)


def test_2_ranks_x_2_workers_see_every_clip_exactly_once(dataset, monkeypatch):
    # The pure split first, over several epochs and both orders.
    for shuffle in (False, True):
        for epoch in range(3):
            order = shard_order(6, seed=1, epoch=epoch, shuffle=shuffle)
            parts = [assign_shards(order, r, 2, w, 2) for r in range(2) for w in range(2)]
            assert sorted(s for p in parts for s in p) == list(range(6))
    # Then real DataLoader worker processes, one simulated rank at a time (torchrun sets these).
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        ds = ClipDataset(dataset, buffers=("depth",), seed=3)
        ds.set_epoch(1)
        got = [int(item["index"]) for item in DataLoader(ds, batch_size=None, num_workers=2)]
        assert got, f"rank {rank} read nothing"
        seen += got
    assert sorted(seen) == list(range(11))


def test_shard_order_is_seeded_by_seed_and_epoch(dataset):
    assert shard_order(8, seed=3, epoch=0, shuffle=True) == shard_order(8, seed=3, epoch=0, shuffle=True)
    assert sorted(shard_order(8, seed=3, epoch=0, shuffle=True)) == list(range(8))
    assert shard_order(8, seed=3, epoch=0, shuffle=True) != shard_order(8, seed=3, epoch=1, shuffle=True)
    assert shard_order(8, seed=3, epoch=0, shuffle=True) != shard_order(8, seed=4, epoch=0, shuffle=True)
    assert shard_order(8, seed=3, epoch=0, shuffle=False) == list(range(8))

    def order(epoch):
        ds = ClipDataset(dataset, buffers=("depth",), shuffle_shards=True, seed=3)
        ds.set_epoch(epoch)
        return [it["index"] for it in ds]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(1)) == list(range(11))


def test_collate_batches_buffers_and_keeps_metadata_as_a_list(dataset):
    ds = ClipDataset(dataset, buffers=("rgb", "instance"), shuffle_shards=False)
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_clips)))
    assert batch["rgb"].shape == (3, 4, 16, 16, 3) and batch["rgb"].dtype == torch.uint8
    assert batch["instance"].dtype == torch.int32
    assert batch["index"].tolist() == [0, 1, 2]
    assert [m["scene"] for m in batch["metadata"]] == ["clip0", "clip1", "clip2"]


@pytest.mark.parametrize("compression, suffix", [("gzip", ".npy.gz"), ("none", ".npy")])
def test_webdataset_library_reads_a_shard(tmp_path, compression, suffix):
    # webdataset's default decoder inflates `.gz` members (its gzfilter) and then loads the `.npy` inside.
    root = make_dataset(tmp_path / "ds", n_clips=4, per_shard=2, compression=compression)
    samples = list(wds.WebDataset(str(shard_path(root, 1)), shardshuffle=False).decode())
    assert [s["__key__"] for s in samples] == ["00000002", "00000003"]
    for sample in samples:
        buffers, metadata, mp4 = fake_clip(int(sample["__key__"]))
        assert sample["metadata.json"] == metadata
        assert sample["rgb.mp4"] == mp4
        assert sorted(k for k in sample if k.endswith(suffix)) == sorted(f"{name}{suffix}" for name in buffers)
        for name, arr in buffers.items():
            got = sample[f"{name}{suffix}"]
            assert got.dtype == arr.dtype and got.tobytes() == arr.tobytes(), name


def test_loader_reads_old_uncompressed_and_mixed_shards(tmp_path):
    """A dataset made before compression existed, then given a gzip shard: every clip loads, the same arrays."""
    import json

    root = make_dataset(tmp_path / "ds", n_clips=6, per_shard=2, compression="none")
    manifest_file = root / "manifest.json"
    data = json.loads(manifest_file.read_text())
    data["format"] = "hybrid-dataset/1"  # as written then: no compression field
    del data["compression"]
    manifest_file.write_text(json.dumps(data))
    manifest = read_manifest(root)
    members = [m for i in (2, 3) for m in encode_clip(i, *fake_clip(i), compression="gzip")]
    record_shard(root, manifest, 1, write_shard(shard_path(root, 1), members))
    items = {it["index"]: it for it in ClipDataset(root, shuffle_shards=False)}
    assert sorted(items) == list(range(6))
    for i, item in items.items():
        for name, arr in fake_clip(i)[0].items():
            assert np.array_equal(item[name].numpy(), arr.astype(np.int32) if name == "instance" else arr), (i, name)


def test_loader_refuses_bad_arguments_with_a_fix(dataset, tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match=r"buffers \['normals'\] are not in this dataset; it holds"):
        ClipDataset(dataset, buffers=("normals",))
    with pytest.raises(DatasetError, match=r"clip_frames must be an integer in \[1, 4\]"):
        ClipDataset(dataset, clip_frames=5)
    partial = make_dataset(tmp_path / "partial", n_clips=4, per_shard=2, commit={0})
    with pytest.raises(DatasetError, match="only 1 of 2 shards are committed"):
        ClipDataset(partial)
    assert [it["index"] for it in ClipDataset(partial, allow_partial=True)] == [0, 1]
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DatasetError, match=r"RANK=2 must lie in \[0, WORLD_SIZE=2\)"):
        list(ClipDataset(dataset))


def test_loader_stops_at_a_damaged_shard_and_names_it(tmp_path):
    root = make_dataset(tmp_path / "ds", n_clips=4, per_shard=2)
    path = shard_path(root, 1)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DatasetError, match="shard-000001.tar: .*truncated"):
        list(ClipDataset(root, shuffle_shards=False))


def test_loader_names_a_damaged_compressed_member(tmp_path):
    import tarfile

    root = make_dataset(tmp_path / "ds", n_clips=4, per_shard=2)
    path = shard_path(root, 1)
    with tarfile.open(path) as tar:
        info = tar.getmember("00000003.flow_fwd.npy.gz")
    data = bytearray(path.read_bytes())
    data[info.offset_data + info.size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"shard-000001.tar: member '00000003.flow_fwd.npy.gz' holds damaged gzip data"):
        list(ClipDataset(root, shuffle_shards=False))
