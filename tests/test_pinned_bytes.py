"""Refactors keep the bytes: a small clip and a one-clip dataset shard, hashed once and pinned here.

The hashes were taken from the code as it was before the buffer registry, the shared
render path and the storage formats came in. Where the storage format did not change
(the ``npz`` clip storage, gzip dataset members) every byte must stay the same: the
arrays, ``buffers.npz``, the video and each shard member. A change that moves any of
them changes what users' existing clips and datasets would compare equal to, and must
say so by updating these pins on purpose.

Changed on purpose since: the rgb pins (rgb, buffers.npz, rgb.mp4 and the shard's rgb
members), when directional shadow maps were fitted to their casters
(hybrid/render/shadow_fit.py), and again when ambient and environment light were
reflected by the split sum (shaders/beauty.frag); every other buffer kept its bytes.
The clip's rgb and albedo pins (and its files) changed once more when textures
were mip-filtered in linear light and sampled anisotropically (render/mipmaps.py:
the clip's floor is a checker); the shard's untextured clip kept every byte.
"""

import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hybrid.data.generate import generate
from hybrid.io.clip import write_clip
from hybrid.pipeline import render_clip
from hybrid.scene.load import load_scene

REPO = Path(__file__).resolve().parents[1]

CLIP_ARRAYS = {
    "albedo": "e87ae4164ab44862",
    "depth": "fef2187e950a2195",
    "flow_bwd": "8358ddb1cb17c8da",
    "flow_fwd": "5cd4c8c0edeebe63",
    "instance": "014b6257f8384028",
    "normal": "23b325ad68f4697d",
    "rgb": "3708b3f175e855a2",
}
CLIP_FILES = {"buffers.npz": "377ee6c824cdcd6f", "rgb.mp4": "9109ad3db06985b8"}
SHARD_MEMBERS = {
    "00000000.metadata.json": "2756c811c7b09902",
    "00000000.rgb.mp4": "28e0d309c5960f1c",
    "00000000.albedo.npy.gz": "f0b3ca08ae2c3987",
    "00000000.depth.npy.gz": "52eadf6c0c762ca8",
    "00000000.flow_bwd.npy.gz": "ad6e708eab58b362",
    "00000000.flow_fwd.npy.gz": "8e877f6668871da1",
    "00000000.instance.npy.gz": "b6d375ac031528a4",
    "00000000.normal.npy.gz": "52d9be6a2980de32",
    "00000000.rgb.npy.gz": "af5f7505de5aeca5",
}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _metadata_digest(data: bytes) -> str:
    """The metadata's digest with every float rounded to 8 significant digits.

    Its floats (poses, velocities, contact impulses) come from pybullet, whose solver
    takes SIMD paths by CPU, so their last bits differ between machines: the same code
    and packages gave two digests of the raw bytes on two machines of one kind. Keys,
    layout, strings, integers and every float to 8 digits are still pinned.
    """

    def rounded(v):
        if isinstance(v, float):
            return float(f"{v:.8g}")
        if isinstance(v, list):
            return [rounded(x) for x in v]
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v

    return _digest(json.dumps(rounded(json.loads(data))).encode())


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return _digest(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())


@pytest.fixture(scope="module")
def small_clip():
    return render_clip(load_scene(REPO / "scenes" / "bouncing_balls.yaml", {"frames": 5, "resolution": [64, 36]}))


def test_rendered_arrays_keep_their_bytes(small_clip):
    assert {k: _array_digest(v) for k, v in small_clip.buffers.items()} == CLIP_ARRAYS


def test_npz_storage_keeps_its_bytes(small_clip, tmp_path):
    out = tmp_path / "clip"
    write_clip(small_clip, out, storage="npz")
    assert {name: _digest((out / name).read_bytes()) for name in CLIP_FILES} == CLIP_FILES


def test_gzip_dataset_shard_keeps_its_bytes(tmp_path):
    text = (REPO / "datasets" / "movi_a.yaml").read_text()
    text = text.replace("frames: 24", "frames: 4").replace("resolution: [256, 256]", "resolution: [48, 48]")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(text)
    generate(recipe, tmp_path / "ds", 1, seed=3, clips_per_shard=1, workers=1, compression="gzip")
    (shard,) = sorted((tmp_path / "ds").rglob("*.tar"))
    with tarfile.open(shard) as tf:
        got = {
            m.name: (_metadata_digest if m.name.endswith(".json") else _digest)(tf.extractfile(m).read())
            for m in tf.getmembers()
        }
    assert got == SHARD_MEMBERS
