"""Nothing the project did not write is ever deleted, and what killed writers leave behind is cleaned up.

Clip folders, dataset folders, neural checkpoints and training states are replaced
or written into only when they provably are this project's (a format marker and
nothing but the contract's files); anything else is refused and survives byte for
byte. Hidden staging leftovers of dead processes are removed by the next write into
the same place; a live process's are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hybrid.data.manifest import MANIFEST_NAME, buffer_specs, open_dataset, read_manifest
from hybrid.data.shards import DatasetError
from hybrid.io.atomic import OLD, PARTIAL, clean_stale_staging, pid_alive, replace_dir, staging_path
from hybrid.io.clip import CLIP_FILES, CLIP_FORMAT, Clip, OutputError, check_clip_target, read_clip, write_clip
from hybrid.neural.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hybrid.neural.config import NeuralConfig
from hybrid.neural.model import VideoDenoiser
from hybrid.train.state import StateError, checkpoint_dir, list_checkpoints, save_checkpoint_state


def tiny_clip(t: int = 2, h: int = 16, w: int = 16, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    buffers = {
        "rgb": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "depth": rng.uniform(0, 5, (t, h, w)).astype(np.float32),
        "instance": rng.integers(0, 4, (t, h, w)).astype(np.uint16),
    }
    return Clip(buffers=buffers, metadata={"fps": 12.0, "scene": f"tiny{seed}"})


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (relative) -> its bytes, None for a folder."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited (and been reaped), so os.kill(pid, 0) finds nothing."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    if pid_alive(proc.pid):  # reused already: vanishingly rare
        pytest.skip("the exited child's process id was taken again")
    return proc.pid


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def hidden_siblings(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- clip folders


def _users_folder_with_metadata(folder: Path) -> None:
    folder.mkdir()
    (folder / "metadata.json").write_text('{"experiment": 7, "notes": "my own metadata"}')
    (folder / "results.csv").write_text("a,b\n1,2\n")
    (folder / "rgb.mp4").write_bytes(b"my holiday video")
    (folder / "runs").mkdir()
    (folder / "runs" / "log.txt").write_text("three weeks of logs")


def _clip_plus_users_files(folder: Path) -> None:
    write_clip(tiny_clip(), folder)
    (folder / "thesis.tex").write_text("precious")
    (folder / "figures").mkdir()
    (folder / "figures" / "plot.pdf").write_bytes(b"%PDF")


@pytest.mark.parametrize("make", [_users_folder_with_metadata, _clip_plus_users_files],
                         ids=["metadata.json not ours", "a clip plus the user's files"])
def test_a_folder_with_the_users_files_is_refused_and_every_byte_survives(tmp_path, make):
    folder = tmp_path / "out"
    make(folder)
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="does not hold a clip") as err:
        check_clip_target(folder)
    message = str(err.value)
    assert str(folder) in message and "choose another --out folder" in message and "delete the folder yourself" in message
    with pytest.raises(OutputError, match="does not hold a clip"):
        write_clip(tiny_clip(seed=1), folder)
    assert snapshot(tmp_path) == before  # no staging folder left either


def test_the_refusal_names_what_the_folder_holds(tmp_path):
    _clip_plus_users_files(tmp_path / "out")
    with pytest.raises(OutputError, match=r"figures/, thesis\.tex, which hybrid did not write"):
        check_clip_target(tmp_path / "out")


def test_a_genuine_previous_clip_is_replaced_with_its_extra_videos(tmp_path):
    out = tmp_path / "clip"
    frames = tiny_clip().buffers["rgb"]
    write_clip(tiny_clip(t=2), out, extra_videos={"compare.mp4": frames, "side.mp4": frames}, storage="npz")
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["format"] == CLIP_FORMAT and meta["files"] == [*CLIP_FILES, "compare.mp4", "side.mp4"]
    check_clip_target(out)
    write_clip(tiny_clip(t=3, seed=2), out, storage="npz")
    assert sorted(p.name for p in out.iterdir()) == sorted(CLIP_FILES)
    assert read_clip(out).buffers["rgb"].shape[0] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_a_clip_written_before_the_file_list_is_read_and_replaced(tmp_path):
    """Clips of earlier versions: metadata.json has the format but no `files`; compare.mp4 was the only extra."""
    out = tmp_path / "clip"
    write_clip(tiny_clip(), out, extra_videos={"compare.mp4": tiny_clip().buffers["rgb"]}, storage="npz")
    meta = json.loads((out / "metadata.json").read_text())
    del meta["files"]
    (out / "metadata.json").write_text(json.dumps(meta))
    write_clip(tiny_clip(seed=3), out, storage="npz")
    assert read_clip(out).metadata["scene"] == "tiny3"


def test_a_clip_without_the_format_marker_stays_readable_but_is_not_replaced(tmp_path):
    out = tmp_path / "clip"
    write_clip(tiny_clip(), out)
    meta = json.loads((out / "metadata.json").read_text())
    del meta["format"], meta["files"]
    (out / "metadata.json").write_text(json.dumps(meta))
    assert read_clip(out).metadata["scene"] == "tiny0"
    with pytest.raises(OutputError, match='no "format": "hybrid-clip/1"'):
        write_clip(tiny_clip(seed=1), out)


def test_files_the_user_adds_while_the_clip_is_written_are_not_deleted(tmp_path, monkeypatch):
    out = tmp_path / "clip"
    write_clip(tiny_clip(), out, storage="npz")
    import hybrid.io.clip as clip_module

    real = clip_module.save_npz

    def save_and_meanwhile(path, arrays):
        real(path, arrays)
        (out / "notes.txt").write_text("written during the render")

    monkeypatch.setattr(clip_module, "save_npz", save_and_meanwhile)
    with pytest.raises(OutputError, match="notes.txt"):
        write_clip(tiny_clip(seed=1), out, storage="npz")
    assert (out / "notes.txt").read_text() == "written during the render"
    assert read_clip(out).metadata["scene"] == "tiny0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def test_out_under_a_file_is_refused_naming_the_file(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    for out in (blocker / "clip", blocker / "deeper" / "clip"):
        with pytest.raises(OutputError, match=f"{blocker} is a file"):
            check_clip_target(out)
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_clip_target(blocker)
    assert snapshot(tmp_path) == {"a_file": b"mine"}


def test_out_in_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root) may write into a read-only folder")
        for out in (locked / "clip", locked / "new" / "clip"):
            with pytest.raises(OutputError, match=f"cannot write into {locked}"):
                check_clip_target(out)
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_out_on_a_file_system_that_refuses_writes_is_refused():
    """sysfs refuses new entries even to root, which the permission test above cannot lock out."""
    target = Path("/sys/hybrid-no-such-folder/clip")
    try:
        target.parent.mkdir()
    except OSError:
        pass
    else:
        target.parent.rmdir()
        pytest.skip("/sys takes new folders here")
    with pytest.raises(OutputError, match="cannot write into /sys"):
        check_clip_target(target)


def test_the_pre_check_makes_missing_parents_and_then_leaves_nothing(tmp_path):
    check_clip_target(tmp_path / "a" / "b" / "clip")
    check_clip_target(tmp_path / "empty")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "empty").mkdir()
    check_clip_target(tmp_path / "empty")
    assert [p.name for p in tmp_path.iterdir()] == ["empty"] and list((tmp_path / "empty").iterdir()) == []


# ---------------------------------------------------------------- staging leftovers


def test_a_dead_writers_partial_is_cleaned_and_a_live_ones_is_kept(tmp_path, dead_pid, live_pid):
    out = tmp_path / "clip"
    dead = staging_path(out, PARTIAL, dead_pid)
    live = staging_path(out, PARTIAL, live_pid)
    other = staging_path(tmp_path / "other", PARTIAL, dead_pid)  # another destination's: not this write's business
    for folder in (dead, live, other):
        folder.mkdir()
        (folder / "rgb.mp4").write_bytes(b"x" * 1000)
    write_clip(tiny_clip(), out)
    assert not dead.exists()
    assert (live / "rgb.mp4").read_bytes() == b"x" * 1000
    assert other.exists()
    assert hidden_siblings(tmp_path) == sorted([live.name, other.name])


def test_a_previous_clip_moved_aside_by_a_killed_swap_is_put_back(tmp_path, dead_pid):
    """Killed between replace_dir's two renames: `out` is gone and `.out.old-PID` is the last good clip."""
    out = tmp_path / "clip"
    write_clip(tiny_clip(seed=5), out)
    os.rename(out, staging_path(out, OLD, dead_pid))
    assert clean_stale_staging(tmp_path, "clip") == []
    assert read_clip(out).metadata["scene"] == "tiny5" and hidden_siblings(tmp_path) == []


def test_a_moved_aside_clip_is_deleted_once_the_new_one_is_in_place(tmp_path, dead_pid, live_pid):
    """Killed after the second rename: `out` is the new clip, `.out.old-PID` the replaced one."""
    out = tmp_path / "clip"
    write_clip(tiny_clip(seed=5), out)
    stale, busy = staging_path(out, OLD, dead_pid), staging_path(out, OLD, live_pid)
    for folder in (stale, busy):
        folder.mkdir()
        (folder / "metadata.json").write_text("{}")
    write_clip(tiny_clip(seed=6), out)
    assert read_clip(out).metadata["scene"] == "tiny6"
    assert hidden_siblings(tmp_path) == [busy.name]


def test_a_failed_swap_puts_the_previous_folder_back(tmp_path, monkeypatch):
    out, tmp = tmp_path / "clip", tmp_path / ".clip.partial-1"
    out.mkdir()
    (out / "a").write_text("old")
    tmp.mkdir()
    import hybrid.io.atomic as atomic

    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError):
        replace_dir(tmp, out)
    monkeypatch.undo()
    assert (out / "a").read_text() == "old" and not staging_path(out, OLD).exists()


# ---------------------------------------------------------------- dataset folders

RECIPE = {"name": "toy"}
SPECS = buffer_specs({"depth": np.zeros((2, 4, 4), np.float32)})


def test_a_dataset_is_not_written_into_a_folder_of_the_users(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "data.bin").write_bytes(b"\x00\x01")
    (folder / "shards").mkdir()
    (folder / "shards" / "mine.tar").write_bytes(b"tar")
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match=r"without manifest.json \(it holds data.bin, shards/\)"):
        open_dataset(folder, RECIPE, 0, 4, 2, SPECS)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("text, phrase", [
    ('{"version": 3, "files": ["a.jpg"]}', "not a hybrid dataset's"),
    ("[1, 2", "invalid JSON"),
    ('{"format": "hybrid-dataset/2", "seed": 0}', "field"),
], ids=["another program's", "broken JSON", "ours but damaged"])
def test_a_manifest_that_is_not_ours_is_refused_not_overwritten(tmp_path, text, phrase):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / MANIFEST_NAME).write_text(text)
    (folder / "a.jpg").write_bytes(b"jpeg")
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError, match=phrase):
        open_dataset(folder, RECIPE, 0, 4, 2, SPECS)
    assert snapshot(tmp_path) == before


def test_reopening_a_dataset_removes_dead_writers_temporary_files_only(tmp_path, dead_pid, live_pid):
    folder = tmp_path / "ds"
    open_dataset(folder, RECIPE, 0, 4, 2, SPECS)
    shards = folder / "shards"
    stale = [folder / f"{MANIFEST_NAME}.tmp-{dead_pid}", shards / f"shard-000001.tar.tmp-{dead_pid}"]
    kept = [shards / f"shard-000000.tar.tmp-{live_pid}", folder / f"{MANIFEST_NAME}.tmp-{live_pid}",
            shards / f"notes.txt.tmp-{dead_pid}", folder / "card.md"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    open_dataset(folder, RECIPE, 0, 4, 2, SPECS)
    assert not any(p.exists() for p in stale)
    assert all(p.read_bytes() == b"partial" for p in kept)


def test_a_folder_left_by_a_run_killed_during_its_first_manifest_is_taken(tmp_path, dead_pid, live_pid):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / f"{MANIFEST_NAME}.tmp-{dead_pid}").write_bytes(b'{"form')
    open_dataset(folder, RECIPE, 0, 4, 2, SPECS)
    assert read_manifest(folder).clips == 4
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST_NAME, "shards"]
    # A live writer's first manifest means another run is creating this dataset right now.
    other = tmp_path / "busy"
    other.mkdir()
    (other / f"{MANIFEST_NAME}.tmp-{live_pid}").write_bytes(b"{")
    with pytest.raises(DatasetError, match="non-empty folder"):
        open_dataset(other, RECIPE, 0, 4, 2, SPECS)


# ---------------------------------------------------------------- neural checkpoints

TINY = dict(
    resolution=(16, 16), window=2, context_frames=1, condition=("albedo", "mask"), base_channels=8,
    channel_mults=(1, 2), res_blocks=1, attention_heads=2, groups=4,
)


@pytest.fixture(scope="module")
def model_and_config(one_torch_thread):
    config = NeuralConfig(**TINY)
    torch.manual_seed(0)
    return VideoDenoiser(config), config


def test_a_checkpoint_is_replaced_but_a_folder_with_other_files_is_not(tmp_path, model_and_config):
    model, config = model_and_config
    path = save_checkpoint(tmp_path / "ckpt", model, config, {"steps": 1})
    save_checkpoint(path, model, config, {"steps": 2})
    assert load_checkpoint(path)[2] == {"steps": 2}
    (path / "README.md").write_text("how this checkpoint was made")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"model_type": "someone else\'s"}')
    (foreign / "model.safetensors").write_bytes(b"their weights")
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"README\.md, which hybrid did not write"):
        save_checkpoint(path, model, config, {"steps": 3})
    with pytest.raises(CheckpointError, match='no "format": "hybrid-neural/1"'):
        save_checkpoint(foreign, model, config)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- training states


def _state(step: int) -> tuple[dict, dict]:
    return {"model.w": torch.full((2,), float(step))}, {"note": f"step {step}"}


def test_training_states_replace_and_prune_only_their_own_folders(tmp_path, dead_pid, live_pid):
    run = tmp_path / "run"
    save_checkpoint_state(run, 1, *_state(1), keep=5)
    save_checkpoint_state(run, 1, *_state(1), keep=5)  # the same step saved again replaces it
    (checkpoint_dir(run, 1) / "notes.txt").write_text("why step 1 matters")
    with pytest.raises(StateError, match="notes.txt"):
        save_checkpoint_state(run, 1, *_state(1), keep=5)
    root = run / "checkpoints"
    stale = root / f".step-00000007.partial-{dead_pid}"
    busy = root / f".step-00000008.partial-{live_pid}"
    for folder in (stale, busy):
        folder.mkdir()
        (folder / "state.json").write_text("{")
    for step in (2, 3, 4):
        save_checkpoint_state(run, step, *_state(step), keep=1)
    # Step 1 holds the user's notes, so pruning keeps it whole; steps 2 and 3 were ours and are gone.
    assert [s for s, _ in list_checkpoints(run)] == [1, 4]
    assert (checkpoint_dir(run, 1) / "notes.txt").read_text() == "why step 1 matters"
    assert not stale.exists() and busy.exists()
