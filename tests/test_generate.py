"""`hybrid dataset generate`: determinism per (recipe, seed, i), crash-safe resume, Ray fan-out, card, preview."""

import os
import random
import signal
import subprocess
import sys

import pytest

from hybrid.cli import main
from hybrid.data.generate import generate
from hybrid.data.manifest import read_manifest
from hybrid.data.shards import read_shard
from hybrid.data.verify import verify_dataset

from conftest import REPO

CLIPS = 6


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
    """MOVi-A as shipped, but 4 frames at 48 x 48 so a clip renders in a fraction of a second."""
    text = (REPO / "datasets" / "movi_a.yaml").read_text()
    assert "frames: 24" in text and "resolution: [256, 256]" in text
    text = text.replace("frames: 24", "frames: 4").replace("resolution: [256, 256]", "resolution: [48, 48]")
    path = tmp_path_factory.mktemp("recipe") / "tiny_movi_a.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def reference(tiny_recipe, tmp_path_factory):
    """An uninterrupted single-process run: the bytes every other run must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    generate(tiny_recipe, out, CLIPS, seed=3, clips_per_shard=1, workers=1)
    return out


def _shard_hashes(out):
    return {k: (e.sha256, e.bytes) for k, e in read_manifest(out).shards.items()}


def test_reference_run_is_complete_and_verifies(reference):
    report = verify_dataset(reference)
    assert report.ok, report.summary()
    assert sum(e.clip_count for e in read_manifest(reference).shards.values()) == CLIPS


def test_same_recipe_seed_and_index_give_identical_bytes(tiny_recipe, reference, tmp_path):
    """A second run gives byte-identical shards; a clip regenerated in another grouping is the same clip."""
    again = tmp_path / "again"
    generate(tiny_recipe, again, CLIPS, seed=3, clips_per_shard=1, workers=1)
    assert _shard_hashes(again) == _shard_hashes(reference)

    grouped = tmp_path / "grouped"
    generate(tiny_recipe, grouped, 4, seed=3, clips_per_shard=4, workers=1)
    clips = read_shard(grouped / "shards" / "shard-000000.tar")
    for i in range(4):
        ref = read_shard(reference / "shards" / f"shard-{i:06d}.tar")[i]
        assert clips[i]["mp4"] == ref["mp4"] and clips[i]["metadata"] == ref["metadata"]
        for name, arr in ref["buffers"].items():
            assert clips[i]["buffers"][name].tobytes() == arr.tobytes(), name


def test_another_seed_gives_other_clips(tiny_recipe, reference, tmp_path):
    other = tmp_path / "other"
    generate(tiny_recipe, other, 1, seed=4, clips_per_shard=1, workers=1)
    a = read_shard(other / "shards" / "shard-000000.tar")[0]["buffers"]["rgb"]
    b = read_shard(reference / "shards" / "shard-000000.tar")[0]["buffers"]["rgb"]
    assert a.tobytes() != b.tobytes()


@pytest.mark.slow  # several runs of the command, killed and resumed
@pytest.mark.timeout(900)
def test_run_killed_at_random_points_resumes_to_exactly_the_same_dataset(tiny_recipe, reference, tmp_path):
    """SIGKILL the command at random moments, rerun it each time: the end is every clip once, same bytes."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hybrid", "dataset", "generate", str(tiny_recipe), "--out", str(out),
           "--clips", str(CLIPS), "--seed", "3", "--clips-per-shard", "1", "--workers", "1", "-q"]
    rng = random.Random(1234)
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        if kills < 3:
            try:
                proc.wait(timeout=rng.uniform(0.8, 3.0))  # the whole run takes ~3.5 s here
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        out_text, err_text = proc.communicate(timeout=300)
        assert proc.returncode == 0, err_text.decode()
        break
    else:
        pytest.fail("the run never finished")
    assert kills >= 1, "no kill landed mid-run; the test did not test resuming"
    report = verify_dataset(out)
    assert report.ok, report.summary()
    assert _shard_hashes(out) == _shard_hashes(reference)
    assert not list((out / "shards").glob("*.tmp*"))


def test_ray_with_two_workers_makes_the_same_dataset(tiny_recipe, reference, tmp_path):
    out = tmp_path / "ray"
    summary = generate(tiny_recipe, out, CLIPS, seed=3, clips_per_shard=1, workers=2)
    assert summary.workers == 2 and summary.clips_written == CLIPS
    assert _shard_hashes(out) == _shard_hashes(reference)


def test_compression_none_stores_the_same_arrays_as_plain_npy(tiny_recipe, reference, tmp_path, capsys):
    out = tmp_path / "plain"
    args = ["dataset", "generate", str(tiny_recipe), "--out", str(out), "--clips", "2", "--seed", "3",
            "--clips-per-shard", "1", "--workers", "1", "-q"]
    assert main(args + ["--compression", "none"]) == 0
    assert read_manifest(out).compression == "none" and read_manifest(reference).compression == "gzip"
    for k in range(2):
        plain = read_shard(out / "shards" / f"shard-{k:06d}.tar")[k]
        ref = read_shard(reference / "shards" / f"shard-{k:06d}.tar")[k]
        assert set(plain["compression"].values()) == {"none"} and set(ref["compression"].values()) == {"gzip"}
        for name, arr in ref["buffers"].items():
            assert plain["buffers"][name].tobytes() == arr.tobytes(), name
    assert sum(e.bytes for e in read_manifest(out).shards.values()) > 2 * sum(
        read_manifest(reference).shards[k].bytes for k in range(2)
    ), "rendered buffers compress well"
    capsys.readouterr()
    assert main(args + ["--compression", "gzip"]) == 2  # a folder keeps the compression it was made with
    assert 'compression: "none" in the folder, "gzip" in this run' in capsys.readouterr().err


def test_card_preview_and_verify_commands(reference, tmp_path, capsys):
    card = (reference / "README.md").read_text()
    assert "contact_sheet.png" in card and "| depth | float32 | [4, 48, 48] |" in card
    assert (reference / "contact_sheet.png").is_file()
    assert main(["dataset", "preview", str(reference), "--out", str(tmp_path / "grid.mp4"), "--clips", "2"]) == 0
    assert main(["dataset", "preview", str(reference), "--out", str(tmp_path / "grid.png")]) == 0
    from hybrid.io.video import read_mp4

    frames, _ = read_mp4(str(tmp_path / "grid.mp4"))
    assert len(frames) == 4 and frames.shape[1] > frames.shape[2] / 6  # two rows of six buffers
    assert main(["dataset", "verify", str(reference)]) == 0
    assert "OK" in capsys.readouterr().out


def test_verify_names_a_damaged_shard(reference, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    shard = copy / "shards" / "shard-000002.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    assert main(["dataset", "verify", str(copy)]) == 2
    assert "shard-000002.tar" in capsys.readouterr().out


def test_readme_loader_example_runs_on_a_generated_dataset(reference):
    import re

    text = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(from torch.utils.data import DataLoader\nfrom hybrid.data.loader.*?)```", text, re.S)
    assert block, "README loader example not found"
    code = block.group(1).replace('"out/movi_a"', repr(str(reference)))
    env: dict = {}
    exec(compile(code, "README.md", "exec"), env)
    batch = env["batch"]
    assert batch["rgb"].dtype.__str__() == "torch.uint8" and batch["rgb"].shape[1:] == (4, 48, 48, 3)
    assert str(batch["instance"].dtype) == "torch.int32"


def test_post_chain_changes_only_the_beauty_frame(tiny_recipe, reference, tmp_path):
    """A recipe with motion blur from sub-frames and a game look: rgb changes, every other buffer is identical."""
    text = tiny_recipe.read_text() + (
        "\npost:\n"
        "  - {type: motion_blur, samples: 3, shutter: box, shutter_angle_deg: 180}\n"
        "  - {type: bloom, threshold: 0.7, intensity: 0.5}\n"
        "  - {type: depth_of_field, focus_distance_m: 8.0, f_number: 1.4, max_coc_px: 4}\n"
        "  - {type: vignette, amount: 0.3}\n"
        "  - {type: tonemap, operator: aces}\n"
        "  - {type: film_grain, intensity: 0.02}\n"
    )
    recipe = tmp_path / "post.yaml"
    recipe.write_text(text)
    out = tmp_path / "post"
    generate(recipe, out, 1, seed=3, clips_per_shard=1, workers=1)
    got = read_shard(out / "shards" / "shard-000000.tar")[0]["buffers"]
    ref = read_shard(reference / "shards" / "shard-000000.tar")[0]["buffers"]
    assert got["rgb"].tobytes() != ref["rgb"].tobytes()
    for name in ("depth", "instance", "normal", "albedo", "flow_fwd", "flow_bwd"):
        assert got[name].tobytes() == ref[name].tobytes(), name
