"""Clip storage formats: every one reads back into the rendered arrays within its documented bound."""

import json
from pathlib import Path

import numpy as np
import pytest

from hybrid import buffers as reg
from hybrid.cli import EXIT_SCENE_ERROR, main
from hybrid.io.clip import STORAGES, read_clip, write_clip
from hybrid.io.codecs import check_bound
from hybrid.pipeline import render_clip
from hybrid.scene.load import load_scene

REPO = Path(__file__).resolve().parents[1]
SCENE = REPO / "scenes" / "bouncing_balls.yaml"


@pytest.fixture(scope="module")
def clip():
    return render_clip(load_scene(SCENE, {"frames": 4, "resolution": [40, 24]}))


@pytest.mark.parametrize("storage", STORAGES)
def test_every_storage_reads_back_within_its_bound(clip, storage, tmp_path):
    out = tmp_path / storage
    write_clip(clip, out, storage=storage)
    back = read_clip(out)
    meta = json.loads((out / "metadata.json").read_text())
    assert set(back.buffers) == set(clip.buffers)
    for name, want in clip.buffers.items():
        got = back.buffers[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        if storage in ("npz", "exr") or want.dtype.kind in "ui":
            assert np.array_equal(got, want, equal_nan=True), name  # these keep every bit
        elif storage == "compact":
            check_bound(reg.codec(name), want, got)  # the registry codec's documented bound
        else:  # png: 16-bit codes over the buffer's range; half a step at most
            entry = meta["storage"]["buffers"][name]
            finite = np.isfinite(want)
            assert np.array_equal(finite, np.isfinite(got)), name
            # Half a code step, plus rounding the decoded value to float32 (half a unit in the last place).
            bound = entry["scale"] / 2 + float(np.spacing(np.abs(want[finite]).max())) / 2
            assert np.abs(got[finite].astype(np.float64) - want[finite]).max() <= bound, name


def test_compact_is_much_smaller_than_npz_on_a_real_clip(tmp_path):
    clip = render_clip(load_scene(SCENE, {"frames": 6, "resolution": [160, 96]}))
    write_clip(clip, tmp_path / "npz", storage="npz")
    write_clip(clip, tmp_path / "compact")
    npz = (tmp_path / "npz" / "buffers.npz").stat().st_size
    compact = (tmp_path / "compact" / "buffers.hyb").stat().st_size
    assert compact < npz / 3, (compact, npz)


def test_buffers_picks_what_is_written_and_frames_folders_are_replaceable(clip, tmp_path):
    out = tmp_path / "clip"
    write_clip(clip, out, storage="png", buffers=["depth", "instance"])
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["depth", "instance"]
    assert len(list((out / "frames" / "depth").iterdir())) == 4
    meta = json.loads((out / "metadata.json").read_text())
    assert set(meta["buffers"]) == {"depth", "instance"}
    assert set(read_clip(out, buffers=["instance"]).buffers) == {"instance"}
    # A folder of frames we wrote is ours to replace; one with a stray file in it is not.
    write_clip(clip, out, storage="exr")
    (out / "frames" / "depth" / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="notes.txt"):
        write_clip(clip, out)
    assert (out / "frames" / "depth" / "notes.txt").read_text() == "mine"


def test_cli_storage_and_buffers(tmp_path, capsys):
    out = tmp_path / "clip"
    args = ["render", str(SCENE), "--out", str(out), "--frames", "2", "--resolution", "32x24", "-q"]
    assert main([*args, "--storage", "exr", "--buffers", "rgb,depth,flow_fwd"]) == 0
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["depth", "flow_fwd", "rgb"]
    assert (out / "frames" / "depth" / "00001.exr").is_file()
    code = main([*args, "--buffers", "rgb,gas_density"])
    err = capsys.readouterr().err
    assert code == EXIT_SCENE_ERROR and "'gas_density' not among this clip's buffers" in err and "pick from rgb" in err
    assert (out / "frames").is_dir(), "a refused run leaves the previous clip as it was"
