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

The MP4s are pinned by what they hold, not by their bytes: x264's and ffmpeg's
assembly paths are chosen by CPU, and the same frames through the same ffmpeg give
other bytes on another CPU (with ``-cpuflags 0``, or ``-x264-params asm=0``). What a
refactor must keep is pinned instead: the encoder's settings as x264 writes them into
the stream, the index before the data (``+faststart``), the frame count, size and rate,
and pictures that are the pinned ``rgb`` frames up to what H.264 in 4:2:0 loses.
"""

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hybrid.data.generate import generate
from hybrid.io.clip import write_clip
from hybrid.io.video import read_mp4
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
CLIP_FILES = {"buffers.npz": "377ee6c824cdcd6f"}
# The options string x264 writes into the stream: crf 18, preset veryfast, one thread.
# keyint_min is x264's automatic min(keyint / 10, fps): 25 here, at 25 fps or more.
X264_OPTIONS = (
    "cabac=1 ref=1 deblock=1:0:0 analyse=0x3:0x113 me=hex subme=2 psy=1 psy_rd=1.00:0.00 mixed_ref=0"
    " me_range=16 chroma_me=1 trellis=0 8x8dct=1 cqm=0 deadzone=21,11 fast_pskip=1 chroma_qp_offset=0"
    " threads=1 lookahead_threads=1 sliced_threads=0 nr=0 decimate=1 interlaced=0 bluray_compat=0"
    " constrained_intra=0 bframes=3 b_pyramid=2 b_adapt=1 b_bias=0 direct=1 weightb=1 open_gop=0 weightp=1"
    " keyint=250 keyint_min=25 scenecut=40 intra_refresh=0 rc_lookahead=10 rc=crf mbtree=1 crf=18.0"
    " qcomp=0.60 qpmin=0 qpmax=69 qpstep=4 ip_ratio=1.40 aq=1:1.00"
)
SHARD_MEMBERS = {
    "00000000.metadata.json": "2756c811c7b09902",
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


def _x264_options(data: bytes) -> str:
    """The settings x264 records in its SEI message ("... - options: cabac=1 ref=1 ...")."""
    found = re.search(rb"x264 - core \d+.*? - options: ([ -~]+)", data)
    assert found, "no x264 settings in the video: was it encoded by x264?"
    return found.group(1).decode()


def _subsampled_420(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` through an ideal 4:2:0 round trip: BT.601 Y'CbCr, chroma averaged over 2x2, back."""
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    t, h, w, _ = rgb.shape
    ycc = rgb.astype(np.float64) @ m.T
    chroma = ycc[..., 1:].reshape(t, h // 2, 2, w // 2, 2, 2).mean(axis=(2, 4))
    ycc[..., 1:] = chroma.repeat(2, axis=1).repeat(2, axis=2)
    return np.clip(np.round(ycc @ np.linalg.inv(m).T), 0, 255)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _check_video(data: bytes, rgb: np.ndarray, fps: float, tmp_path: Path) -> None:
    """The MP4 holds ``rgb`` at ``fps``, encoded with the pinned settings and its index first."""
    options = dict(item.split("=", 1) for item in _x264_options(data).split())
    pinned = dict(item.split("=", 1) for item in X264_OPTIONS.split())
    pinned["keyint_min"] = str(min(int(pinned["keyint"]) // 10, int(fps)))
    assert options == pinned
    assert 0 <= data.find(b"moov") < data.find(b"mdat"), "the index (moov) must come before the data"
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    frames, got_fps = read_mp4(str(path))
    assert frames.shape == rgb.shape and got_fps == pytest.approx(fps)
    # 4:2:0 alone loses the chroma detail _subsampled_420 loses; at crf 18 ("visually
    # lossless") the quantisation may add at most as much error energy again: 3 dB.
    floor = _psnr(_subsampled_420(rgb), rgb)
    assert _psnr(frames, rgb) >= floor - 3.0, (_psnr(frames, rgb), floor)


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
    _check_video((out / "rgb.mp4").read_bytes(), small_clip.buffers["rgb"], small_clip.fps, tmp_path)


def test_gzip_dataset_shard_keeps_its_bytes(tmp_path):
    text = (REPO / "datasets" / "movi_a.yaml").read_text()
    text = text.replace("frames: 24", "frames: 4").replace("resolution: [256, 256]", "resolution: [48, 48]")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(text)
    generate(recipe, tmp_path / "ds", 1, seed=3, clips_per_shard=1, workers=1, compression="gzip")
    (shard,) = sorted((tmp_path / "ds").rglob("*.tar"))
    with tarfile.open(shard) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}
    video = members.pop("00000000.rgb.mp4")
    got = {name: (_metadata_digest if name.endswith(".json") else _digest)(data) for name, data in members.items()}
    assert got == SHARD_MEMBERS
    rgb = np.load(io.BytesIO(gzip.decompress(members["00000000.rgb.npy.gz"])))
    fps = json.loads(members["00000000.metadata.json"])["fps"]
    _check_video(video, rgb, fps, tmp_path)
