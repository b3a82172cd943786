"""The clip folder contract: files, dtypes, a playable MP4, atomic replacement."""

import json

import numpy as np
import pytest

from hybrid.io.clip import CLIP_FILES, Clip, OutputError, read_clip, write_clip
from hybrid.io.video import read_mp4, write_mp4


def _fake_clip(t=4, h=24, w=30):
    rng = np.random.default_rng(0)
    buffers = {
        "rgb": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "depth": rng.uniform(0, 5, (t, h, w)).astype(np.float32),
        "instance": rng.integers(0, 4, (t, h, w)).astype(np.uint16),
        "normal": np.zeros((t, h, w, 3), np.float32),
        "albedo": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "flow_fwd": rng.normal(size=(t, h, w, 2)).astype(np.float32),
        "flow_bwd": rng.normal(size=(t, h, w, 2)).astype(np.float32),
    }
    return Clip(buffers=buffers, metadata={"fps": 12.0, "scene": "fake"})


def test_mp4_roundtrip_keeps_frame_count_size_and_colour(tmp_path):
    # Flat colour frames survive H.264 to within a few levels; odd sizes are padded to even.
    frames = np.zeros((6, 21, 33, 3), np.uint8)
    for i in range(6):
        frames[i] = (40 * i, 200 - 30 * i, 128)
    write_mp4(str(tmp_path / "a.mp4"), frames, fps=12)
    back, fps = read_mp4(str(tmp_path / "a.mp4"))
    assert fps == pytest.approx(12)
    assert back.shape == (6, 22, 34, 3)
    assert np.abs(back[:, :21, :33].astype(int) - frames.astype(int)).mean() < 4


def test_write_clip_makes_every_file_and_round_trips(tmp_path):
    clip = _fake_clip()
    written = write_clip(clip, tmp_path / "clip", storage="npz")
    assert sorted(p.name for p in written.values()) == sorted(CLIP_FILES)
    back = read_clip(tmp_path / "clip")
    for k, v in clip.buffers.items():
        assert back.buffers[k].dtype == v.dtype
        np.testing.assert_array_equal(back.buffers[k], v)
    assert json.loads((tmp_path / "clip" / "metadata.json").read_text())["scene"] == "fake"


def test_replacing_a_clip_leaves_no_partial_folders(tmp_path):
    write_clip(_fake_clip(), tmp_path / "clip")
    write_clip(_fake_clip(t=2), tmp_path / "clip")
    assert read_clip(tmp_path / "clip").buffers["rgb"].shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_failed_write_leaves_previous_clip_untouched(tmp_path):
    write_clip(_fake_clip(), tmp_path / "clip")
    broken = _fake_clip()
    broken.buffers["rgb"] = broken.buffers["rgb"].astype(np.float32)  # the encoder refuses this
    with pytest.raises(ValueError):
        write_clip(broken, tmp_path / "clip")
    assert read_clip(tmp_path / "clip").buffers["rgb"].shape[0] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_refuses_to_replace_a_folder_that_is_not_a_clip(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="does not hold a clip"):
        write_clip(_fake_clip(), tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
