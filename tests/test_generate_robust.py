"""`hybrid dataset generate` keeps going past clips that cannot be drawn, refuses recipes that
never can, reports a worker's error in one line, and leaves no Ray process behind when killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid.cli import main
from hybrid.data.generate import MAX_DRAWS, PROBE_DRAWS, draw_clip, generate
from hybrid.data.manifest import read_manifest
from hybrid.data.recipe import load_recipe
from hybrid.data.shards import DatasetError, read_shard
from hybrid.data.verify import verify_dataset

from conftest import REPO

SEED = 1
CLIPS = 8

# One or two 20 cm balls whose centres must lie in a 1 cm box: one always fits, two never
# do. A quarter of the draws ask for two, so some clips need a redraw and most do not.
RECIPE = """\
name: crowded
clip: {frames: 3, fps: 12, resolution: [32, 32]}
camera: {look_at: [0, 0, 0], distance: 4, elevation_deg: 30, azimuth_deg: 0, fov_deg: 50}
lights: {ambient: {intensity: 0.5}}
objects:
  count: COUNT
  shapes: [sphere]
  size: 0.2
  placement:
    region: {min: [0, 0, 0.5], max: [0.01, 0.01, 0.51]}
    in_view: false
    max_attempts: 20
"""


def write_recipe(path: Path, count: str) -> Path:
    path.write_text(RECIPE.replace("COUNT", count))
    return path


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    return write_recipe(tmp_path_factory.mktemp("recipe") / "crowded.yaml", "{choice: [1, 2], weights: [3, 1]}")


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "ds"
    summary = generate(recipe, out, CLIPS, seed=SEED, clips_per_shard=1, workers=1)
    return out, summary


def shard_hashes(out: Path) -> dict:
    return {k: (e.sha256, e.bytes) for k, e in read_manifest(out).shards.items()}


def draws(out: Path) -> dict[int, int]:
    found = {}
    for path in sorted((out / "shards").glob("shard-*.tar")):
        for index, clip in read_shard(path).items():
            found[index] = clip["metadata"]["dataset"]["draw"]
    return found


def test_clips_that_cannot_be_placed_are_drawn_again_and_the_draw_is_recorded(recipe, reference):
    out, summary = reference
    assert verify_dataset(out).ok
    used = draws(out)
    assert sorted(used) == list(range(CLIPS))
    redrawn = {i for i, k in used.items() if k > 0}
    assert redrawn and len(redrawn) < CLIPS, used  # the recipe fails for some draws, not for most
    assert summary.redrawn == len(redrawn)
    # The recorded draw is the one that makes the clip again, and every earlier draw fails.
    from hybrid.data.sampler import PlacementError, sample_scene

    loaded = load_recipe(recipe)
    for index, k in used.items():
        assert len(sample_scene(loaded, SEED, index, draw=k).objects) == 2  # the floor and one ball
        for earlier in range(k):
            with pytest.raises(PlacementError):
                sample_scene(loaded, SEED, index, draw=earlier)


def test_a_second_run_makes_the_same_bytes(recipe, reference, tmp_path):
    again = tmp_path / "again"
    generate(recipe, again, CLIPS, seed=SEED, clips_per_shard=1, workers=1)
    assert shard_hashes(again) == shard_hashes(reference[0])


def test_a_recipe_that_fails_for_most_draws_is_refused_with_the_reason(tmp_path, capsys):
    out = tmp_path / "never"
    for count in ("2", "{choice: [1, 2], weights: [1, 7]}"):
        recipe = write_recipe(tmp_path / "crowded.yaml", count)
        code = main(["dataset", "generate", str(recipe), "--out", str(out), "--clips", "4", "--workers", "1", "-q"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert f"of {PROBE_DRAWS} draws failed" in err and "could not place obj_01" in err, err
        assert "Traceback" not in err
        assert not out.exists(), "a refused recipe leaves nothing behind"


def test_a_draw_whose_bodies_overlap_in_the_world_is_drawn_again(recipe, monkeypatch):
    """The World refuses bodies that start inside each other; that draw is skipped like a failed placement."""
    from hybrid.data import sampler

    loaded = load_recipe(recipe)
    real = sampler.sample_scene

    def overlapping_first(recipe, seed, index, *, draw=0, cache_dir=None):
        scene = real(recipe, seed, index, draw=draw, cache_dir=cache_dir)
        if draw > 0:
            return scene
        data = scene.model_dump()
        twin = dict(data["objects"][-1], name="twin")
        data["objects"] = (*data["objects"], twin)  # the same ball twice, in one place
        return type(scene).model_validate(data)

    def places(draw: int) -> bool:
        try:
            real(loaded, SEED, 0, draw=draw)
            return True
        except sampler.PlacementError:
            return False

    assert places(0)
    monkeypatch.setattr(sampler, "sample_scene", overlapping_first)
    scene, states, draw = draw_clip(loaded, SEED, 0)
    assert draw == next(k for k in range(1, MAX_DRAWS) if places(k))
    assert scene == real(loaded, SEED, 0, draw=draw) and len(states) == scene.frame_count


def test_a_clip_that_fails_every_draw_stops_the_run_in_one_line(recipe, monkeypatch):
    from hybrid.data import sampler

    def never(recipe, seed, index, *, draw=0, cache_dir=None):
        raise sampler.PlacementError(f"no room for draw {draw}")

    monkeypatch.setattr(sampler, "sample_scene", never)
    with pytest.raises(DatasetError) as info:
        draw_clip(load_recipe(recipe), SEED, 5)
    message = str(info.value)
    assert f"clip 5 failed in all {MAX_DRAWS} draws" in message and "no room for draw 0" in message
    assert "\n" not in message


def test_worker_errors_lose_rays_wrapping():
    import ray.exceptions

    from hybrid.data.generate import _worker_error
    from hybrid.physics.errors import BodyBuildError

    job = ("recipe.yaml", SEED, 3, 24, 8, "out", "gzip")
    bug = _worker_error(ray.exceptions.RayTaskError("_remote_build_shard", "Traceback ...\n", KeyError("depth")), job)
    assert isinstance(bug, DatasetError) and isinstance(bug.__cause__, KeyError)
    assert str(bug) == "shard-000003.tar (clips 24 to 31): KeyError: 'depth'"
    own = DatasetError("clip 30 failed in all 32 draws")
    assert _worker_error(ray.exceptions.RayTaskError("f", "tb", own), job) is own
    build = BodyBuildError("object 'cup': mesh file not found")
    assert _worker_error(ray.exceptions.RayTaskError("f", "tb", build), job) is build  # keeps its own exit code
    died = _worker_error(ray.exceptions.WorkerCrashedError(), job)
    assert isinstance(died, DatasetError) and "run the same command again" in str(died) and "\n" not in str(died)


# ---------------------------------------------------------------- killed driver, Ray workers


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command name) of every process, from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        table[int(name)] = (int(ppid), state, comm)
    return table


def _descendants(pid: int) -> dict[int, str]:
    table = _processes()
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _, comm) in table.items():
            if ppid == parent and child not in found:
                found[child] = comm
                frontier.append(child)
    return found


def _alive(pids) -> dict[int, str]:
    table = _processes()
    return {pid: table[pid][2] for pid in pids if pid in table and table[pid][1] not in "ZX"}


# Slow (a Ray start of its own): the fast suite has test_generate's two-worker test for the bytes
# and the killed-driver test below for the processes.
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_workers_make_the_same_bytes_and_leave_nothing_running(recipe, reference, tmp_path):
    out = tmp_path / "ray"
    summary = generate(recipe, out, CLIPS, seed=SEED, clips_per_shard=1, workers=2)
    assert summary.workers == 2 and summary.clips_written == CLIPS
    assert shard_hashes(out) == shard_hashes(reference[0])
    assert draws(out) == draws(reference[0])
    deadline = time.monotonic() + 10
    while _alive(_descendants(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(_descendants(os.getpid()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog finds processes through /proc")
@pytest.mark.slow  # starts and kills a local Ray instance
@pytest.mark.timeout(600)
def test_killed_driver_leaves_no_ray_process_and_the_run_resumes_to_the_same_bytes(recipe, reference, tmp_path):
    """SIGKILL the command (and only it) once it has committed a shard: every process Ray
    started for it is gone within seconds, and running the command again finishes the
    dataset with the bytes of an uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hybrid", "dataset", "generate", str(recipe), "--out", str(out),
           "--clips", str(CLIPS), "--seed", str(SEED), "--clips-per-shard", "1", "--workers", "2", "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("shards/shard-*.tar")):
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
        family = _descendants(proc.pid)
        assert any(comm.startswith("ray::") for comm in family.values()), family
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic()
        left = _alive(family)
        while left and time.monotonic() - killed_at < 15:
            time.sleep(0.2)
            left = _alive(family)
        lingered = time.monotonic() - killed_at
        assert not left, f"still running {lingered:.0f} s after the driver was killed: {left}"
        assert lingered < 10
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert len(read_manifest(out).shards) < CLIPS

    # Resumed in this process on one worker: what the killed run committed and what this
    # run adds must together be the uninterrupted run's bytes.
    summary = generate(recipe, out, CLIPS, seed=SEED, clips_per_shard=1, workers=1)
    assert summary.shards_written >= 1
    assert verify_dataset(out).ok
    assert shard_hashes(out) == shard_hashes(reference[0])
