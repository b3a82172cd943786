"""`hybrid dataset generate`: clips sampled from a recipe, rendered in parallel, committed shard by shard.

Work unit: one shard (a fixed range of clip indices). Clip i depends only on
(recipe, seed, i), so a shard's bytes depend only on (recipe, seed, its range):
any shard can be regenerated alone, and a rerun after a crash regenerates exactly
the shards that are missing or damaged and nothing else. A worker writes its shard
atomically (temporary name, fsync, rename); the driver then records it in the
manifest (also atomically). A shard renamed into place but not yet in the manifest
when the run died is regenerated, which rewrites identical bytes.

Fan-out: Ray tasks, one CPU each, on a local Ray instance by default or a cluster
with `ray_address`. Each worker is held to one thread (NumPy/BLAS, torch and Mesa's
llvmpipe rasteriser would otherwise each spread over every core), so N workers use
N cores. With one worker and no address, shards run in this process without Ray.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

# Environment for every worker process: one thread each, headless GL.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "LP_NUM_THREADS": "1",  # Mesa llvmpipe rasteriser threads
    "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl"),
}

STAGES = ("sample", "physics", "raster", "flow", "post", "encode", "write")


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over clips (for the benchmark's breakdown)."""

    seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})

    def add(self, other: "StageTimes") -> None:
        for k, v in other.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v


@dataclass(frozen=True)
class ShardResult:
    shard: int
    name: str
    sha256: str
    bytes: int
    first_clip: int
    clip_count: int
    times: StageTimes


def limit_this_process_to_one_thread() -> None:
    """Apply WORKER_ENV to this process (before NumPy/torch start thread pools, where possible)."""
    os.environ.update(WORKER_ENV)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # torch is optional for generation
        pass


# ---------------------------------------------------------------- one shard (runs in a worker)

_RECIPES: dict[tuple[str, float], object] = {}  # per worker process: recipe path, mtime -> Recipe


def _recipe(path: str):
    from hybrid.data.recipe import load_recipe

    key = (path, os.path.getmtime(path))
    if key not in _RECIPES:
        _RECIPES[key] = load_recipe(path)
    return _RECIPES[key]


def render_dataset_clip(recipe, seed: int, index: int, times: Optional[StageTimes] = None):
    """Clip `index` of the dataset: (buffers, metadata, mp4 bytes), depending only on (recipe, seed, index)."""
    from hybrid.camera import camera_track
    from hybrid.data.sampler import sample_scene
    from hybrid.io.metadata import build_metadata
    from hybrid.io.video import mp4_bytes
    from hybrid.pipeline import object_poses, rasterize, simulate
    from hybrid.render.flow import clip_flows

    t = StageTimes() if times is None else times
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        t.seconds[stage] += now - clock
        clock = now

    scene = sample_scene(recipe, seed, index)
    lap("sample")
    states = simulate(scene)
    lap("physics")
    track = camera_track(scene)
    # A post chain gets the beauty frames as linear HDR radiance and makes rgb from them;
    # one that starts with motion blur renders its own beauty sub-frames instead.
    blurred = recipe.post is not None and bool(recipe.post.root) and recipe.post.root[0].type == "motion_blur"
    buffers = rasterize(scene, states, track.cam_to_world, hdr=recipe.post is not None, beauty=not blurred)
    lap("raster")
    buffers["flow_fwd"], buffers["flow_bwd"] = clip_flows(
        buffers["depth"], buffers["instance"], track.K, track.cam_to_world, object_poses(states)
    )
    lap("flow")
    if recipe.post is not None:
        hdr = buffers.pop("hdr", None)
        buffers["rgb"] = apply_post(scene, states, hdr, buffers["depth"], recipe.post, track.K, seed, index)
    lap("post")
    if recipe.fields is not None and scene.fields is None:
        # Every clip of a recipe with fields holds the field buffers (zeros here), so
        # the dataset has one buffer layout.
        from hybrid.fields.frames import empty_field_buffers

        buffers.update(empty_field_buffers(scene.frame_count, scene.height, scene.width))
    metadata = build_metadata(scene, states, track.K, track.cam_to_world)
    metadata["dataset"] = {"recipe": recipe.name, "seed": seed, "index": index}
    video = mp4_bytes(buffers["rgb"], scene.fps)
    lap("encode")
    return buffers, metadata, video


def apply_post(scene, states, hdr, depth, chain, K, seed: int, index: int):
    """The recipe's post chain on every beauty frame -> uint8 (T, H, W, 3) rgb; the other buffers stay as they are.

    hdr: float32 (T, H, W, 3), the beauty pass's linear radiance, unclamped, so
    exposure, bloom and tone mapping act on highlights brighter than white. depth:
    float32 (T, H, W) metres (depth of field). A chain that starts with motion_blur
    gets HDR beauty sub-frames rendered around each frame's time instead (``hdr`` may
    then be None).
    Grain is seeded per (seed, clip, frame), so a clip's frames stay reproducible one
    by one.
    """
    import numpy as np

    from hybrid.render.post import apply_chain
    from hybrid.render.post.motion_blur import subframe_schedule

    effects = chain.root
    frames = hdr
    if effects and effects[0].type == "motion_blur":
        from hybrid.render.subframes import iter_beauty_subframes

        offsets, _ = subframe_schedule(effects[0])
        frames = iter_beauty_subframes(scene, states, offsets)
    if frames is None:
        raise ValueError("apply_post needs the hdr beauty frames unless the chain starts with motion_blur")
    out = np.empty(depth.shape + (3,), dtype=np.uint8)
    for k, frame in enumerate(frames):
        out[k] = apply_chain(frame, chain, depth=depth[k], K=K, rng=np.random.default_rng([seed, index, k]))
    return out


def build_shard(
    recipe_path: str, seed: int, shard: int, first_clip: int, clip_count: int, dataset_dir: str, compression: str
) -> ShardResult:
    """Render clips [first_clip, first_clip + clip_count) and write shard `shard` atomically,
    buffers stored with `compression` ("gzip" or "none", the dataset's)."""
    from hybrid.data.manifest import shard_name, shard_path
    from hybrid.data.shards import encode_clip, write_shard

    recipe = _recipe(recipe_path)
    times = StageTimes()
    members: list[tuple[str, bytes]] = []
    for index in range(first_clip, first_clip + clip_count):
        buffers, metadata, video = render_dataset_clip(recipe, seed, index, times)
        start = time.perf_counter()
        members.extend(encode_clip(index, buffers, metadata, video, compression))
        times.seconds["encode"] += time.perf_counter() - start
    start = time.perf_counter()
    written = write_shard(shard_path(dataset_dir, shard), members)
    times.seconds["write"] += time.perf_counter() - start
    return ShardResult(shard, shard_name(shard), written.sha256, written.bytes, first_clip, clip_count, times)


def _remote_build_shard(*args) -> ShardResult:
    limit_this_process_to_one_thread()
    return build_shard(*args)


# ---------------------------------------------------------------- the driver

BUFFER_LAYOUT = {  # name -> (dtype, trailing shape after (T, H, W))
    "rgb": ("uint8", (3,)),
    "depth": ("float32", ()),
    "instance": ("uint16", ()),
    "normal": ("float32", (3,)),
    "albedo": ("uint8", (3,)),
    "flow_fwd": ("float32", (2,)),
    "flow_bwd": ("float32", (2,)),
}


@dataclass
class GenerateSummary:
    out_dir: Path
    clips: int
    shards_written: int
    clips_written: int
    seconds: float
    workers: int
    times: StageTimes

    @property
    def clips_per_second(self) -> float:
        return self.clips_written / self.seconds if self.seconds > 0 else 0.0


def _recipe_identity(path: str, recipe) -> dict:
    import hashlib

    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return {"name": recipe.name, "file": os.path.basename(path), "sha256": digest}


def generate(
    recipe_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    clips: int,
    *,
    seed: int = 0,
    clips_per_shard: int = 8,
    workers: Optional[int] = None,
    ray_address: Optional[str] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    compression: Optional[str] = None,
) -> GenerateSummary:
    """Generate (or resume) a dataset of `clips` clips from a recipe into `out_dir`.

    `workers`: parallel single-threaded workers (default: this machine's cores); 1
    without `ray_address` runs in this process. `progress(done_clips, total_clips)` is
    called as shards are committed (also once at the start, with what already exists).
    `compression`: how buffer members are stored, "gzip" or "none" (see hybrid.data.shards);
    None keeps an existing folder's and uses gzip for a new one.
    """
    from hybrid.data.card import CARD_NAME, write_card
    from hybrid.data.manifest import BufferSpec, missing_shards, open_dataset, record_shard
    from hybrid.data.sampler import sample_scene
    from hybrid.data.shards import WrittenShard

    recipe_path = str(Path(recipe_path).resolve())
    recipe = _recipe(recipe_path)
    scene0 = sample_scene(recipe, seed, 0)
    t, h, w = scene0.frame_count, scene0.height, scene0.width
    layout = dict(BUFFER_LAYOUT)
    if recipe.fields is not None:
        from hybrid.fields.frames import FIELD_BUFFER_LAYOUT

        layout.update(FIELD_BUFFER_LAYOUT)
    specs = {name: BufferSpec(dtype, (t, h, w, *tail)) for name, (dtype, tail) in layout.items()}
    out = Path(out_dir)
    manifest = open_dataset(out, _recipe_identity(recipe_path, recipe), seed, clips, clips_per_shard, specs, compression)
    plan = manifest.plan()
    todo = missing_shards(out, manifest)
    done = clips - sum(len(plan[k]) for k in todo)
    if progress is not None:
        progress(done, clips)
    n_workers = max(1, int(workers or os.cpu_count() or 1))
    jobs = [(recipe_path, seed, k, plan[k].start, len(plan[k]), str(out), manifest.compression) for k in todo]
    times = StageTimes()
    start = time.perf_counter()

    def commit(result: ShardResult) -> None:
        nonlocal manifest, done
        manifest = record_shard(out, manifest, result.shard, WrittenShard(result.sha256, result.bytes))
        times.add(result.times)
        done += result.clip_count
        if progress is not None:
            progress(done, clips)

    if n_workers == 1 and ray_address is None:
        for job in jobs:
            commit(build_shard(*job))
    elif jobs:
        _run_on_ray(jobs, n_workers, ray_address, commit)
    seconds = time.perf_counter() - start  # making clips, not describing them
    if jobs or not (out / CARD_NAME).is_file():
        write_card(out, Path(recipe_path).read_text())
    return GenerateSummary(out, clips, len(jobs), sum(j[4] for j in jobs), seconds, n_workers, times)


def start_ray(n_workers: int, ray_address: Optional[str]) -> None:
    """Connect to `ray_address`, or start a local Ray instance with `n_workers` CPUs; workers get WORKER_ENV."""
    import logging

    import ray

    options = dict(include_dashboard=False, logging_level=logging.ERROR, runtime_env={"env_vars": WORKER_ENV})
    if ray_address is None:
        ray.init(num_cpus=n_workers, **options)
    else:
        ray.init(address=ray_address, **options)


def _run_on_ray(jobs: list[tuple], n_workers: int, ray_address: Optional[str], commit: Callable[[ShardResult], None]) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        start_ray(n_workers, ray_address)
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(_remote_build_shard)
        pending = [task.remote(*job) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            commit(ray.get(ready[0]))
    finally:
        if started_here:
            ray.shutdown()
