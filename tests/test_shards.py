"""Dataset storage: tar shards, the manifest, resuming, and verification (small synthetic clips, no rendering)."""

import gzip
import hashlib
import json
import os
import tarfile
import time

import numpy as np
import pytest

from hybrid.data.manifest import (
    MANIFEST_NAME,
    BufferSpec,
    buffer_specs,
    check_clip_buffers,
    commit_shard,
    missing_shards,
    open_dataset,
    plan_shards,
    read_manifest,
    record_shard,
    shard_path,
)
from hybrid.data.shards import (
    COMPRESSIONS,
    DatasetError,
    ShardReadError,
    encode_array,
    encode_clip,
    gunzip_bytes,
    gzip_bytes,
    iter_shard,
    read_shard,
    write_shard,
)
from hybrid.data.verify import verify_dataset

RECIPE = {"name": "toy", "objects": {"count": [1, 3]}}


def fake_clip(index, t=4, h=16, w=16):
    """Buffers of the contract's dtypes, different for every clip; instance ids above int16 on purpose."""
    rng = np.random.default_rng(index)
    flow = rng.normal(size=(t, h, w, 2)).astype(np.float32)
    flow[0, 0, 0, 0] = np.nan  # flow may hold NaN (point behind the camera)
    buffers = {
        "rgb": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "depth": rng.uniform(0, 5, (t, h, w)).astype(np.float32),
        "instance": rng.integers(0, 65536, (t, h, w)).astype(np.uint16),
        "flow_fwd": flow,
    }
    metadata = {"scene": f"clip{index}", "fps": 12.0, "objects": [{"name": "ball", "position": [[0.0, 0.0, index]] * t}]}
    mp4 = f"fake mp4 of clip {index}".encode()
    return buffers, metadata, mp4


def shard_members(clips):
    return [m for i in clips for m in encode_clip(i, *fake_clip(i))]


def make_dataset(root, n_clips=6, per_shard=2, commit=None, seed=0):
    """A dataset folder with every shard (or the shard indices in `commit`) written and recorded."""
    manifest = open_dataset(root, RECIPE, seed, n_clips, per_shard, buffer_specs(fake_clip(0)[0]))
    for k, clips in enumerate(manifest.plan()):
        if commit is None or k in commit:
            commit_shard(root, manifest, k, shard_members(clips))
    return manifest


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path, keep_fraction=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


# --- shards -----------------------------------------------------------------------------------


def test_encode_write_read_round_trip_is_exact(tmp_path):
    path = tmp_path / "shard.tar"
    written = write_shard(path, shard_members([3, 4]))
    back = read_shard(path)
    assert sorted(back) == [3, 4]
    for i in (3, 4):
        buffers, metadata, mp4 = fake_clip(i)
        assert back[i]["metadata"] == metadata
        assert back[i]["mp4"] == mp4
        assert sorted(back[i]["buffers"]) == sorted(buffers)
        for name, arr in buffers.items():
            got = back[i]["buffers"][name]
            assert got.dtype == arr.dtype and got.shape == arr.shape
            assert np.array_equal(got, arr, equal_nan=True), name
    assert written.bytes == path.stat().st_size
    assert written.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_members_come_in_a_fixed_order_with_normalised_headers(tmp_path):
    path = tmp_path / "shard.tar"
    write_shard(path, shard_members([7, 8]))
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos[:6]] == [
        "00000007.metadata.json",
        "00000007.rgb.mp4",
        "00000007.depth.npy.gz",
        "00000007.flow_fwd.npy.gz",
        "00000007.instance.npy.gz",
        "00000007.rgb.npy.gz",
    ]
    assert [i.name.split(".")[0] for i in infos] == ["00000007"] * 6 + ["00000008"] * 6
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)


def test_same_clips_give_byte_identical_shards(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_shard(tmp_path / "a" / "s.tar", shard_members([0, 1, 2]))
    os.utime(tmp_path / "a" / "s.tar", (1, 1))  # file times must not leak into the bytes
    second = write_shard(tmp_path / "b" / "s.tar", shard_members([0, 1, 2]))
    assert first == second
    assert (tmp_path / "a" / "s.tar").read_bytes() == (tmp_path / "b" / "s.tar").read_bytes()
    other = write_shard(tmp_path / "b" / "t.tar", shard_members([0, 1, 3]))
    assert other.sha256 != first.sha256


def test_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "shard-000000.tar"
    write_shard(path, shard_members([0]))
    before = path.read_bytes()

    def members_then_crash():
        yield from encode_clip(1, *fake_clip(1))
        raise KeyboardInterrupt("simulated kill mid-write")

    with pytest.raises(KeyboardInterrupt):
        write_shard(path, members_then_crash())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar"]

    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / "fresh.tar", members_then_crash())
    assert not (tmp_path / "fresh.tar").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar"]


def test_reading_refuses_a_shard_cut_at_a_member_boundary_or_with_a_broken_header(tmp_path):
    # tarfile alone treats both as a shorter archive; the shard reader must not.
    path = tmp_path / "shard.tar"
    write_shard(path, shard_members([0, 1]))
    with tarfile.open(path) as tar:
        second_clip = [i.offset for i in tar.getmembers() if i.name.startswith("00000001")][0]
    blob = path.read_bytes()
    path.write_bytes(blob[:second_clip])
    with pytest.raises(ShardReadError, match=f"ends at byte {second_clip} without the tar end marker"):
        read_shard(path)
    path.write_bytes(blob)
    flip_byte(path, second_clip + 3)
    with pytest.raises(ShardReadError, match=f"unreadable tar header at byte {second_clip}"):
        read_shard(path)


def test_write_shard_refuses_clips_out_of_order_or_repeated(tmp_path):
    with pytest.raises(DatasetError, match="ascending"):
        write_shard(tmp_path / "s.tar", shard_members([2, 1]))
    with pytest.raises(DatasetError, match="twice"):
        write_shard(tmp_path / "s.tar", shard_members([1, 1]))
    with pytest.raises(DatasetError, match="not a clip member"):
        write_shard(tmp_path / "s.tar", [("depth.npy", b"")])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b, m: b.update({"Depth": b["depth"]}), "lower-case letters"),
        (lambda b, m: b.update({"a.b": b["depth"]}), "lower-case letters"),
        (lambda b, m: b.update({"index": b["depth"]}), "reserved"),
        (lambda b, m: b.update({"depth": np.array([object()] * 4)}), "plain numeric"),
        (lambda b, m: m.update({"K": np.eye(3)}), "tolist"),
    ],
)
def test_encode_clip_rejects_bad_input_with_a_fix(change, message):
    buffers, metadata, mp4 = fake_clip(0)
    change(buffers, metadata)
    with pytest.raises(DatasetError, match=message) as err:
        encode_clip(5, buffers, metadata, mp4)
    assert "clip 5" in str(err.value)


# --- compression ------------------------------------------------------------------------------


def every_dtype(t=3, h=5, w=7):
    """One buffer per dtype a clip may hold, with the values lossy or careless codecs get wrong."""
    rng = np.random.default_rng(9)
    floats = rng.normal(size=(t, h, w)).astype(np.float32)
    floats[0, 0, :6] = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 1e-45]  # signed NaN, infinities, -0, a denormal
    floats.view(np.uint32)[0, 1, 0] = 0x7FC12345  # a NaN with a payload: bit-exact means these bits too
    return {
        "u8": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "u16": rng.integers(0, 65536, (t, h, w)).astype(np.uint16),
        "u32": rng.integers(0, 2**32, (t, h, w), dtype=np.uint64).astype(np.uint32),
        "i32": rng.integers(-(2**31), 2**31, (t, h, w), dtype=np.int64).astype(np.int32),
        "f16": rng.normal(size=(t, h, w)).astype(np.float16),
        "f32": floats,
        "f64": rng.normal(size=(t, h, w, 2)),
        "flag": rng.random((t, h, w)) < 0.5,
        "big_endian": rng.normal(size=(t, h, w)).astype(">f4"),
        "fortran": np.asfortranarray(rng.normal(size=(t, h, w)).astype(np.float32)),
    }


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_round_trip_is_bit_exact_for_every_dtype(tmp_path, compression):
    buffers = every_dtype()
    path = tmp_path / "s.tar"
    write_shard(path, encode_clip(0, buffers, {"k": 1}, b"mp4", compression=compression))
    ((index, record),) = list(iter_shard(path))
    assert index == 0 and record["compression"] == {name: compression for name in buffers}
    for name, arr in buffers.items():
        got = record["buffers"][name]
        want = arr.astype(arr.dtype.newbyteorder("<"))  # shards are little-endian whatever the host or input
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert got.tobytes() == np.ascontiguousarray(want).tobytes(), f"{name} is not bit-exact"
        assert got.flags.writeable, "arrays must be writable for torch.from_numpy"


def test_compact_members_keep_each_buffer_to_its_registry_bound(tmp_path):
    """Unregistered names are kept exactly (above); the contract's buffers by their codecs' bounds."""
    buffers, metadata, mp4 = fake_clip(0)
    path = tmp_path / "s.tar"
    write_shard(path, encode_clip(0, buffers, metadata, mp4, compression="compact"))
    ((_, record),) = list(iter_shard(path))
    got = record["buffers"]
    assert set(record["compression"].values()) == {"compact"}
    assert np.array_equal(got["rgb"], buffers["rgb"]) and np.array_equal(got["instance"], buffers["instance"])
    # depth: 13 mantissa bits, a relative error of at most 2**-14.
    assert np.all(np.abs(got["depth"] - buffers["depth"]) <= 2.0**-14 * np.abs(buffers["depth"]))
    # flow: multiples of 1/64 px, an absolute error of at most 1/128 px; NaN kept.
    assert np.array_equal(np.isnan(got["flow_fwd"]), np.isnan(buffers["flow_fwd"]))
    ok = ~np.isnan(buffers["flow_fwd"])
    assert np.all(np.abs(got["flow_fwd"][ok] - buffers["flow_fwd"][ok]) <= 1 / 128)
    damaged = dict(encode_clip(0, buffers, metadata, mp4, compression="compact"))
    damaged["00000000.depth.hyb"] = damaged["00000000.depth.hyb"][:-20]
    write_shard(path, list(damaged.items()))
    with pytest.raises(ShardReadError, match=r"member '00000000.depth.hyb' holds damaged compact data"):
        list(iter_shard(path))


def test_gzip_members_are_standard_gzip_around_the_npy_bytes(tmp_path):
    buffers = fake_clip(0)[0]
    members = dict(encode_clip(0, buffers, {}, b"mp4", compression="gzip"))
    for name, arr in buffers.items():
        payload = members[f"00000000.{name}.npy.gz"]
        assert gzip.decompress(payload) == encode_array(arr), name  # Python's gzip module reads it
        # RFC 1952 header: deflate, no flags (so no file name), mtime 0, XFL 4 (fastest), OS 255 (unknown).
        assert payload[:10] == bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 4, 255])
    assert members["00000000.metadata.json"] == b"{}" and members["00000000.rgb.mp4"] == b"mp4"


def test_compressed_shards_are_byte_identical_whenever_they_are_written(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_shard(tmp_path / "a" / "s.tar", shard_members([0, 1]))
    # A gzip header written with the wall clock would differ a day later.
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    second = write_shard(tmp_path / "b" / "s.tar", shard_members([0, 1]))
    assert first == second
    assert (tmp_path / "a" / "s.tar").read_bytes() == (tmp_path / "b" / "s.tar").read_bytes()


def test_gzip_compresses_real_buffers_and_none_stores_them_as_they_are():
    t, h, w = 4, 32, 32
    yy, xx = np.mgrid[0:h, 0:w]
    depth = np.broadcast_to((2.0 + 0.01 * yy).astype(np.float32), (t, h, w)).copy()  # a floor seen at a slant
    instance = np.zeros((t, h, w), np.uint16)
    instance[:, 8:16, 8:16] = 3
    raw = encode_array(depth)
    assert COMPRESSIONS["none"].encode("depth", depth) == raw
    assert len(gzip_bytes(raw)) < len(raw) / 4
    assert len(gzip_bytes(encode_array(instance))) < instance.nbytes / 20


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda z: z[: len(z) // 2], "stops before its end"),
        (lambda z: z + b"junk", "4 bytes follow the end of the stream"),
        (lambda z: z[:-8] + bytes(8), "incorrect data check"),  # CRC-32 and length zeroed
        (lambda z: b"PK" + z[2:], "incorrect header check"),
    ],
)
def test_gunzip_names_what_is_wrong(damage, message):
    good = gzip_bytes(encode_array(np.arange(1000, dtype=np.float32)))
    assert bytes(gunzip_bytes(bytearray(good))) == encode_array(np.arange(1000, dtype=np.float32))
    with pytest.raises(ValueError, match=message):
        gunzip_bytes(bytearray(damage(good)))


def test_a_buffer_stored_in_both_layouts_is_refused(tmp_path):
    buffers, metadata, mp4 = fake_clip(0)
    members = encode_clip(0, buffers, metadata, mp4, compression="gzip")
    members.append(("00000000.depth.npy", encode_array(buffers["depth"])))
    write_shard(tmp_path / "s.tar", members)
    with pytest.raises(ShardReadError, match=r"clip 00000000 stores buffer 'depth' twice \(depth.npy.gz and depth.npy\)"):
        read_shard(tmp_path / "s.tar")


def test_an_unknown_compression_is_refused_with_the_choices():
    with pytest.raises(DatasetError, match=r"clip 2: compression 'zstd' is not one this version writes; use one of 'none', 'gzip'"):
        encode_clip(2, *fake_clip(2), compression="zstd")


def member_span(path, name):
    """(offset of the data, size) of a member in a tar file."""
    with tarfile.open(path) as tar:
        info = tar.getmember(name)
    return info.offset_data, info.size


# --- manifest ---------------------------------------------------------------------------------


def test_plan_shards_puts_clip_i_in_shard_i_div_k():
    plan = plan_shards(10, 4)
    assert plan == [range(0, 4), range(4, 8), range(8, 10)]
    assert all(i in plan[i // 4] for i in range(10))
    assert plan_shards(4, 4) == [range(0, 4)]
    with pytest.raises(DatasetError, match="clips_per_shard must be a positive integer"):
        plan_shards(10, 0)
    with pytest.raises(DatasetError, match="clips must be a positive integer"):
        plan_shards(0, 4)


def test_manifest_records_committed_shards(tmp_path):
    make_dataset(tmp_path / "ds", n_clips=5, per_shard=2)
    data = json.loads((tmp_path / "ds" / MANIFEST_NAME).read_text())
    assert data["format"] == "hybrid-dataset/2"
    assert (data["recipe"], data["seed"], data["clips"], data["clips_per_shard"]) == (RECIPE, 0, 5, 2)
    assert data["compression"] == "gzip"
    assert data["buffers"]["depth"] == {"dtype": "float32", "shape": [4, 16, 16]}
    assert data["buffers"]["instance"] == {"dtype": "uint16", "shape": [4, 16, 16]}
    assert [(s["name"], s["first_clip"], s["clip_count"]) for s in data["shards"]] == [
        ("shard-000000.tar", 0, 2),
        ("shard-000001.tar", 2, 2),
        ("shard-000002.tar", 4, 1),
    ]
    for k, entry in enumerate(data["shards"]):
        blob = shard_path(tmp_path / "ds", k).read_bytes()
        assert entry["bytes"] == len(blob) and entry["sha256"] == hashlib.sha256(blob).hexdigest()


def test_manifest_update_is_atomic(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    manifest = make_dataset(root, n_clips=4, per_shard=2, commit={0})
    before = (root / MANIFEST_NAME).read_bytes()
    written = write_shard(shard_path(root, 1), shard_members([2, 3]))

    def crash(*_args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        record_shard(root, manifest, 1, written)
    monkeypatch.undo()
    assert (root / MANIFEST_NAME).read_bytes() == before
    assert [p.name for p in root.iterdir() if ".tmp-" in p.name] == []
    assert sorted(read_manifest(root).shards) == [0]


def test_missing_shards_finds_absent_truncated_corrupted_and_deletes_leftovers(tmp_path):
    root = tmp_path / "ds"
    manifest = make_dataset(root, n_clips=12, per_shard=2, commit={0, 1, 2, 3, 5})
    shard_path(root, 1).unlink()
    truncate(shard_path(root, 2))
    flip_byte(shard_path(root, 3), 2000)  # inside the first clip's data: size stays, hash changes
    leftovers = [root / "shards" / "shard-000004.tar.tmp-4242", root / f"{MANIFEST_NAME}.tmp-4242"]
    for p in leftovers:
        p.write_bytes(b"half a file")
    manifest = read_manifest(root)
    assert missing_shards(root, manifest) == [1, 2, 3, 4]
    assert not any(p.exists() for p in leftovers)
    # Size-only checking is cheaper and misses a flipped byte: that is the trade.
    assert missing_shards(root, manifest, check_sha256=False) == [1, 2, 4]


def test_rerun_with_the_same_settings_resumes(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_clips=6, per_shard=2, commit={0, 2})
    again = open_dataset(root, dict(RECIPE), 0, 6, 2, buffer_specs(fake_clip(0)[0]))
    assert sorted(again.shards) == [0, 2]
    assert missing_shards(root, again) == [1]


def test_rerun_with_more_clips_replans_only_the_partial_last_shard(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_clips=5, per_shard=2)
    grown = open_dataset(root, RECIPE, 0, 8, 2, buffer_specs(fake_clip(0)[0]))
    assert read_manifest(root).clips == 8
    assert missing_shards(root, grown) == [2, 3]  # shard 2 held clip 4 alone, now must hold 4 and 5


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"seed": 1}, "seed: 0 in the folder, 1 in this run"),
        ({"clips_per_shard": 3}, "clips_per_shard: 2 in the folder, 3 in this run"),
        ({"recipe": {"name": "toy", "objects": {"count": [1, 4]}}}, "recipe.objects.count[1]: 3 in the folder, 4 in this run"),
        ({"buffers": {"depth": BufferSpec("float32", (4, 8, 8))}}, "buffers.depth"),
        ({"clips": 4}, "cannot shrink"),
    ],
)
def test_rerun_with_different_settings_is_refused(tmp_path, kwargs, expected):
    root = tmp_path / "ds"
    make_dataset(root, n_clips=6, per_shard=2, commit={0})
    args = {"recipe": RECIPE, "seed": 0, "clips": 6, "clips_per_shard": 2, "buffers": buffer_specs(fake_clip(0)[0])}
    args.update(kwargs)
    before = (root / MANIFEST_NAME).read_bytes()
    with pytest.raises(DatasetError) as err:
        open_dataset(root, **args)
    assert expected in str(err.value)
    assert "new --out" in str(err.value)
    assert (root / MANIFEST_NAME).read_bytes() == before


def write_old_dataset(root, n_clips=4, per_shard=2):
    """A dataset as written before compression existed: format 1, no compression field, plain .npy members."""
    manifest = open_dataset(root, RECIPE, 0, n_clips, per_shard, buffer_specs(fake_clip(0)[0]), compression="none")
    for k, clips in enumerate(manifest.plan()):
        members = [m for i in clips for m in encode_clip(i, *fake_clip(i), compression="none")]
        commit_shard(root, manifest, k, members)
    data = json.loads((root / MANIFEST_NAME).read_text())
    data["format"] = "hybrid-dataset/1"
    del data["compression"]
    (root / MANIFEST_NAME).write_text(json.dumps(data))
    return root


def test_compression_is_a_setting_of_the_dataset_folder(tmp_path):
    specs = buffer_specs(fake_clip(0)[0])
    assert open_dataset(tmp_path / "new", RECIPE, 0, 4, 2, specs).compression == "gzip"
    assert open_dataset(tmp_path / "new", RECIPE, 0, 4, 2, specs).compression == "gzip"  # resumed: the folder's
    assert open_dataset(tmp_path / "plain", RECIPE, 0, 4, 2, specs, compression="none").compression == "none"
    assert read_manifest(tmp_path / "plain").compression == "none"
    assert open_dataset(tmp_path / "plain", RECIPE, 0, 4, 2, specs).compression == "none"
    with pytest.raises(DatasetError) as err:
        open_dataset(tmp_path / "plain", RECIPE, 0, 4, 2, specs, compression="gzip")
    assert 'compression: "none" in the folder, "gzip" in this run' in str(err.value) and "new --out" in str(err.value)
    with pytest.raises(DatasetError, match="compression 'lzma' is not one this version writes"):
        open_dataset(tmp_path / "other", RECIPE, 0, 4, 2, specs, compression="lzma")
    assert not (tmp_path / "other").exists()


def test_commit_shard_refuses_members_stored_otherwise_than_the_dataset(tmp_path):
    root = tmp_path / "ds"
    manifest = open_dataset(root, RECIPE, 0, 2, 2, buffer_specs(fake_clip(0)[0]), compression="none")
    with pytest.raises(DatasetError, match=r"stored with compression 'gzip', but this dataset stores 'none'; .*compression='none'"):
        commit_shard(root, manifest, 0, shard_members([0, 1]))
    assert not shard_path(root, 0).exists()


def test_a_dataset_from_before_compression_reads_verifies_and_resumes_uncompressed(tmp_path):
    root = write_old_dataset(tmp_path / "old", n_clips=4, per_shard=2)
    manifest = read_manifest(root)
    assert manifest.compression == "none" and sorted(manifest.shards) == [0, 1]
    assert verify_dataset(root).ok
    grown = open_dataset(root, RECIPE, 0, 6, 2, buffer_specs(fake_clip(0)[0]))  # resumed with more clips
    assert grown.compression == "none" and missing_shards(root, grown) == [2]
    commit_shard(root, grown, 2, [m for i in (4, 5) for m in encode_clip(i, *fake_clip(i), compression="none")])
    data = json.loads((root / MANIFEST_NAME).read_text())
    assert (data["format"], data["compression"]) == ("hybrid-dataset/2", "none")
    assert verify_dataset(root).ok


def test_verify_accepts_shards_of_both_layouts_in_one_dataset(tmp_path):
    root = write_old_dataset(tmp_path / "ds", n_clips=4, per_shard=2)
    manifest = read_manifest(root)
    # Shard 1 rewritten gzip-compressed (as a tool recompressing old shards would): same arrays, other bytes.
    record_shard(root, manifest, 1, write_shard(shard_path(root, 1), shard_members([2, 3])))
    report = verify_dataset(root)
    assert report.ok, report.summary()
    layouts = {i: set(r["compression"].values()) for k in (0, 1) for i, r in iter_shard(shard_path(root, k))}
    assert layouts == {0: {"none"}, 1: {"none"}, 2: {"gzip"}, 3: {"gzip"}}


def test_open_dataset_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="non-empty folder without manifest.json"):
        open_dataset(tmp_path, RECIPE, 0, 4, 2, buffer_specs(fake_clip(0)[0]))


def test_clip_buffers_must_match_the_manifest(tmp_path):
    manifest = make_dataset(tmp_path / "ds", n_clips=2, per_shard=2, commit=set())
    buffers = fake_clip(0)[0]
    check_clip_buffers(manifest, 0, buffers)
    buffers["depth"] = buffers["depth"][:, :8]
    with pytest.raises(DatasetError, match=r"clip 0: buffer 'depth' is float32 \(4, 8, 16\)"):
        check_clip_buffers(manifest, 0, buffers)


def test_commit_shard_refuses_the_wrong_clips(tmp_path):
    root = tmp_path / "ds"
    manifest = make_dataset(root, n_clips=4, per_shard=2, commit=set())
    with pytest.raises(DatasetError, match="shard holds clips 2..3"):
        commit_shard(root, manifest, 1, shard_members([2]))
    assert not shard_path(root, 1).exists() and read_manifest(root).shards == {}


def test_read_manifest_explains_what_is_wrong(tmp_path):
    with pytest.raises(DatasetError, match="not a dataset folder"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"format": "hybrid-dataset/1",\n "seed": }')
    with pytest.raises(DatasetError, match="line 2, column"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"format": "other/9"}')
    with pytest.raises(DatasetError, match="reads 'hybrid-dataset/1' and 'hybrid-dataset/2'"):
        read_manifest(tmp_path)
    fields = {"format": "hybrid-dataset/2", "recipe": {}, "buffers": {"depth": {"dtype": "float32", "shape": [4, 8, 8]}}, "shards": []}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({**fields, "compression": "zip"}))
    with pytest.raises(DatasetError, match="field 'compression' must be one of 'none', 'gzip', 'compact', found 'zip'"):
        read_manifest(tmp_path)


# --- verify -----------------------------------------------------------------------------------


def test_verify_passes_an_intact_dataset(tmp_path):
    make_dataset(tmp_path / "ds", n_clips=5, per_shard=2)
    report = verify_dataset(tmp_path / "ds")
    assert report.ok, report.summary()
    assert (report.shards_ok, report.clips_ok) == (3, 5)
    assert report.summary().endswith("OK")


def test_verify_names_a_truncated_shard_and_a_flipped_byte(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_clips=8, per_shard=2)
    truncate(shard_path(root, 1))
    flip_byte(shard_path(root, 2), 3000)  # payload byte: the tar still parses
    report = verify_dataset(root)
    assert not report.ok
    assert [d.name for d in report.damaged] == ["shard-000001.tar", "shard-000002.tar"]
    truncated, flipped = report.damaged
    assert any("truncated" in r for r in truncated.reasons)
    assert any("missing" in r or "not a readable tar" in r for r in truncated.reasons)
    assert any("sha256" in r for r in flipped.reasons)
    assert "shard-000001.tar" in report.summary() and "shard-000002.tar" in report.summary()
    assert (report.shards_ok, report.clips_ok) == (2, 4)


def test_verify_catches_a_flipped_byte_inside_a_compressed_member(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_clips=4, per_shard=2)
    path = shard_path(root, 1)
    offset, size = member_span(path, "00000002.depth.npy.gz")
    flip_byte(path, offset + size // 2)
    (damage,) = verify_dataset(root).damaged
    assert damage.name == "shard-000001.tar"
    assert damage.reasons[0] == "sha256 differs from the manifest (contents changed or corrupted)"
    assert len(damage.reasons) == 2, damage.reasons  # that member alone: the clips around it are intact
    assert damage.reasons[1].startswith("clip 00000002: depth.npy.gz holds damaged gzip data (")
    # A reader that needs the array stops there and names the member.
    with pytest.raises(ShardReadError, match=r"member '00000002.depth.npy.gz' holds damaged gzip data"):
        read_shard(path)
    assert sorted(read_shard(shard_path(root, 0))) == [0, 1]


def test_verify_explains_a_broken_header_and_the_clips_it_loses(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_clips=4, per_shard=2)
    flip_byte(shard_path(root, 0), 512 * 2 + 10)  # the name field of the second member's header
    (reasons,) = [d.reasons for d in verify_dataset(root).damaged]
    assert reasons == [
        "sha256 differs from the manifest (contents changed or corrupted)",
        "unreadable tar header at byte 1024 (corrupted); the members from there on are lost",
        "2 of 2 clips missing (00000000, 00000001)",
    ]


def test_verify_checks_dtype_and_shape_even_when_hashes_agree(tmp_path):
    root = tmp_path / "ds"
    manifest = make_dataset(root, n_clips=2, per_shard=2, commit=set())
    buffers, metadata, mp4 = fake_clip(0)
    buffers["depth"] = buffers["depth"].astype(np.float64)
    members = encode_clip(0, buffers, metadata, mp4) + encode_clip(1, *fake_clip(1))
    record_shard(root, manifest, 0, write_shard(shard_path(root, 0), members))
    (damage,) = verify_dataset(root).damaged
    assert damage.reasons == ["clip 00000000: depth.npy.gz is float64 (4, 16, 16), manifest says float32 (4, 16, 16)"]


def test_verify_reports_unfinished_datasets_and_leftovers(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, n_clips=6, per_shard=2, commit={0, 2})
    (root / "shards" / "shard-000001.tar.tmp-77").write_bytes(b"x")
    report = verify_dataset(root)
    assert not report.ok and report.damaged == []
    assert report.uncommitted == [1]
    assert "NOT GENERATED YET (1): shard-000001.tar" in report.summary()
    assert report.notes == ["shards/shard-000001.tar.tmp-77: leftover of an interrupted write"]
