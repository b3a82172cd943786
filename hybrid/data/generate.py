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

Clips that cannot be drawn. Random placement can fail for one clip (its objects do
not fit) while most clips are fine; so can a draw whose bodies start inside each
other or whose simulation blows up. Such a clip is drawn again (``draw_clip``):
draw k uses the sampler's stream k of (seed, index), up to ``MAX_DRAWS`` draws,
so the clip that lands in the dataset depends on (recipe, seed, index) alone, on
every run and with any number of workers; metadata["dataset"]["draw"] records which
draw it is. A recipe is refused before anything is written when most of
``PROBE_DRAWS`` sample draws fail, with the first failure's message.

Errors and exits. A worker's error reaches the caller unwrapped from Ray's: the
project's own errors as they are (so the command reports them as it would without
Ray), anything else as a one-line DatasetError naming the shard. A local Ray
instance started here is shut down on every way out that runs Python (an error,
Ctrl-C, SIGTERM through the command's handler). For the ways that do not (SIGKILL,
a crash) a small watchdog process, in its own session so that killing the
command's process group spares it, waits on a pipe from this process; when the
pipe closes it kills what this run's Ray instance started: every process that
carries the run's mark in its environment (what ray.init starts inherits it) and
their descendants (Linux, through /proc). Ray's fate sharing takes its head
processes (GCS, raylet) down with the driver, but its agents stayed about a minute
here and its workers a few seconds; with the watchdog all are gone in about 2 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

# Environment for every worker process: one thread each, headless GL.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "LP_NUM_THREADS": "1",  # Mesa llvmpipe rasteriser threads
    "HYBRID_FIELD_THREADS": "1",  # Taichi's CPU threads (hybrid.fields.backend); same bytes at any count
    "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl"),
}

STAGES = ("sample", "physics", "raster", "flow", "post", "encode", "write")

# A clip gets this many draws before the run stops on it. The probe below refuses
# recipes where most draws fail, so a clip that still fails 32 times in a row (about
# 1 in 4 billion at a 50 % failure rate) means something other than bad luck.
MAX_DRAWS = 32
# Draws of clip 0 tried before anything is written; more than half failing refuses the recipe.
PROBE_DRAWS = 8


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
    redrawn: int = 0  # clips of the shard that needed more than one draw


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


def sampling_errors() -> tuple[type[BaseException], ...]:
    """Errors that say one draw of a clip cannot be sampled (the next draw may well work)."""
    from pydantic import ValidationError

    from hybrid.data.sampler import PlacementError

    return (PlacementError, ValidationError)


def draw_errors() -> tuple[type[BaseException], ...]:
    """Errors that say one draw of a clip cannot be made: sampling, bodies placed inside each
    other (found when the World is built) or a simulation that blew up. A body that cannot be
    built at all (an unreadable mesh) is the recipe's fault and is not among them."""
    from hybrid.fields.errors import FieldError
    from hybrid.physics.errors import SimulationError
    from hybrid.physics.overlaps import OverlapError

    return (*sampling_errors(), OverlapError, SimulationError, FieldError)


def one_line(err: BaseException, limit: int = 400) -> str:
    """An error's message on one line: a pydantic error's first issue, any other's text with
    its whitespace collapsed, cut at `limit` characters."""
    errors = getattr(err, "errors", None)
    if callable(errors) and type(err).__name__ == "ValidationError":
        first = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        text = f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
    else:
        text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def draw_clip(recipe, seed: int, index: int, times: Optional[StageTimes] = None):
    """(scene, states, draw) of clip `index`: the first of draws 0, 1, ... that samples and
    simulates; DatasetError when all MAX_DRAWS draws fail (the message has the first failure).
    `times` gets the seconds spent sampling and simulating, failed draws included."""
    from hybrid.data.sampler import sample_scene
    from hybrid.data.shards import DatasetError
    from hybrid.pipeline import simulate

    t = StageTimes() if times is None else times
    redraw = draw_errors()
    first: Optional[BaseException] = None
    for draw in range(MAX_DRAWS):
        clock = time.perf_counter()
        stage = "sample"
        try:
            scene = sample_scene(recipe, seed, index, draw=draw)
            t.seconds[stage] += time.perf_counter() - clock
            clock, stage = time.perf_counter(), "physics"
            states = simulate(scene)
            t.seconds[stage] += time.perf_counter() - clock
            return scene, states, draw
        except redraw as err:
            t.seconds[stage] += time.perf_counter() - clock
            first = first or err
    assert first is not None
    raise DatasetError(
        f"recipe {recipe.name!r}, seed {seed}: clip {index} failed in all {MAX_DRAWS} draws; "
        f"the first: {one_line(first)}"
    ) from first


def probe_recipe(recipe, seed: int):
    """The first usable scene among PROBE_DRAWS draws of clip 0; DatasetError when most fail."""
    from hybrid.data.sampler import sample_scene
    from hybrid.data.shards import DatasetError

    failures: list[BaseException] = []
    scene = None
    successes = 0
    for draw in range(PROBE_DRAWS):
        try:
            drawn = sample_scene(recipe, seed, 0, draw=draw)
        except sampling_errors() as err:
            failures.append(err)
            continue
        scene = scene or drawn
        successes += 1
        if successes >= PROBE_DRAWS - PROBE_DRAWS // 2:
            break  # the rest could no longer make failures the majority
    if scene is None or len(failures) > PROBE_DRAWS // 2:
        raise DatasetError(
            f"recipe {recipe.name!r} cannot make clips: {len(failures)} of {PROBE_DRAWS} draws failed; "
            f"the first: {one_line(failures[0])}"
        ) from failures[0]
    return scene


def dataset_beauty(recipe, seed: int, index: int):
    """The beauty back end of clip `index`: the rasteriser, or Cycles with the recipe's settings.

    Cycles' sampling seed is drawn from (recipe seed x 2^31 + the recipe's cycles seed,
    clip index), so clips do not share one noise pattern and each stays reproducible.
    """
    import numpy as np

    from hybrid.render.backends import DEFAULT_BEAUTY, BeautyChoice

    if not recipe.path_traced:
        return DEFAULT_BEAUTY
    options = recipe.beauty.options()
    key = np.random.SeedSequence([seed, options["seed"], index]).generate_state(1)[0]
    options["seed"] = int(key % 2**31)
    return BeautyChoice("cycles", options)


def dataset_buffer_names(recipe) -> tuple[str, ...]:
    """Every clip's buffers: the clip's own, field buffers when the recipe has fields, rgb_raster when path traced."""
    from hybrid.buffers import clip_buffer_names

    return clip_buffer_names(recipe.fields is not None) + (("rgb_raster",) if recipe.path_traced else ())


def render_dataset_clip(recipe, seed: int, index: int, times: Optional[StageTimes] = None):
    """Clip `index` of the dataset: (buffers, metadata, mp4 bytes), depending only on (recipe, seed, index).

    The drawn scene goes through the same render path as ``hybrid render``
    (``hybrid.pipeline.render_buffers``), with the recipe's post chain (the drawn
    scene carries it) and film grain seeded per (seed, index, frame).
    """
    from hybrid.buffers import empty_buffers, names
    from hybrid.camera import camera_track
    from hybrid.io.metadata import build_metadata
    from hybrid.io.video import mp4_bytes
    from hybrid.pipeline import render_buffers

    t = StageTimes() if times is None else times
    scene, states, draw = draw_clip(recipe, seed, index, t)  # times "sample" and "physics" itself
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        t.seconds[stage] += now - clock
        clock = now

    track = camera_track(scene)
    buffers = render_buffers(
        scene, states, track, grain_key=(seed, index), lap=lap, beauty=dataset_beauty(recipe, seed, index),
        keep_raster=recipe.path_traced,
    )
    if recipe.fields is not None and scene.fields is None:
        # Every clip of a recipe with fields holds the field buffers (zeros here), so
        # the dataset has one buffer layout.
        buffers.update(empty_buffers(names("fields"), scene.frame_count, scene.height, scene.width))
    metadata = build_metadata(scene, states, track.K, track.cam_to_world)
    metadata["dataset"] = {"recipe": recipe.name, "seed": seed, "index": index, "draw": draw}
    video = mp4_bytes(buffers["rgb"], scene.fps)
    lap("encode")
    return buffers, metadata, video


def build_shard(
    recipe_path: str, seed: int, shard: int, first_clip: int, clip_count: int, dataset_dir: str, compression: str
) -> ShardResult:
    """Render clips [first_clip, first_clip + clip_count) and write shard `shard` atomically,
    buffers stored with `compression` ("gzip", "none" or "compact", the dataset's)."""
    from hybrid.data.manifest import shard_name, shard_path
    from hybrid.data.shards import encode_clip, write_shard

    recipe = _recipe(recipe_path)
    times = StageTimes()
    members: list[tuple[str, bytes]] = []
    redrawn = 0
    for index in range(first_clip, first_clip + clip_count):
        buffers, metadata, video = render_dataset_clip(recipe, seed, index, times)
        redrawn += metadata["dataset"]["draw"] > 0
        start = time.perf_counter()
        members.extend(encode_clip(index, buffers, metadata, video, compression))
        times.seconds["encode"] += time.perf_counter() - start
    start = time.perf_counter()
    written = write_shard(shard_path(dataset_dir, shard), members)
    times.seconds["write"] += time.perf_counter() - start
    return ShardResult(shard, shard_name(shard), written.sha256, written.bytes, first_clip, clip_count, times, redrawn)


def _remote_build_shard(*args) -> ShardResult:
    limit_this_process_to_one_thread()
    return build_shard(*args)


# ---------------------------------------------------------------- the driver

@dataclass
class GenerateSummary:
    out_dir: Path
    clips: int
    shards_written: int
    clips_written: int
    seconds: float
    workers: int
    times: StageTimes
    redrawn: int = 0  # clips made now that needed more than one draw

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
    `compression`: how buffer members are stored, "gzip", "none" or "compact" (see hybrid.data.shards);
    None keeps an existing folder's and uses gzip for a new one.
    """
    from hybrid.data.card import CARD_NAME, write_card
    from hybrid.data.manifest import BufferSpec, missing_shards, open_dataset, record_shard
    from hybrid.data.shards import WrittenShard

    recipe_path = str(Path(recipe_path).resolve())
    recipe = _recipe(recipe_path)
    scene0 = probe_recipe(recipe, seed)  # before the folder exists: a refused recipe leaves nothing behind
    t, h, w = scene0.frame_count, scene0.height, scene0.width
    from hybrid.buffers import layout

    specs = {
        name: BufferSpec(dtype, shape)
        for name, (dtype, shape) in layout(dataset_buffer_names(recipe), t, h, w).items()
    }
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
    redrawn = 0
    start = time.perf_counter()

    def commit(result: ShardResult) -> None:
        nonlocal manifest, done, redrawn
        manifest = record_shard(out, manifest, result.shard, WrittenShard(result.sha256, result.bytes))
        times.add(result.times)
        redrawn += result.redrawn
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
    return GenerateSummary(out, clips, len(jobs), sum(j[4] for j in jobs), seconds, n_workers, times, redrawn)


# Set in the environment of every process of a local Ray instance started here (they
# inherit it from this one, workers also get it through the runtime env), so the
# watchdog can find them all after this process is gone.
RUN_MARK = "HYBRID_RAY_RUN"

# The watchdog. Its stdin is a pipe whose only writer is the driver, so EOF comes when
# the driver closes it or dies in any way. Until then it notes, every second, the
# processes that carry the run's mark and all their descendants (Ray's agents rewrite
# their process title over their environment, so they are known as the raylet's
# children); then it kills those still running (same pid and start time), a few
# rounds, as a dying raylet may still be starting one. Plain Python with no imports
# from hybrid: it starts in milliseconds.
_WATCHDOG = r"""
import os, select, signal, sys, time
entry, driver = b"HYBRID_RAY_RUN=" + sys.argv[1].encode(), int(sys.argv[2])
def table():
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/" + name + "/stat", "rb") as fh:
                    stat = fh.read()
                rest = stat[stat.rindex(b")") + 2:].split()
                procs[int(name)] = (int(rest[1]), rest[19], rest[0])
            except (OSError, ValueError, IndexError):
                pass
    return procs
def marked(pid):
    try:
        with open("/proc/%d/environ" % pid, "rb") as fh:
            return entry in fh.read().split(b"\0")
    except OSError:
        return False
def family(known):
    procs = table()
    found = {pid: procs[pid][1] for pid in procs if pid not in known and marked(pid)}
    found.update({pid: start for pid, start in known.items() if procs.get(pid, (0, None))[1] == start})
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start, state) in procs.items():
            if ppid in found and pid not in found:
                found[pid] = start
                grew = True
    found.pop(driver, None)
    found.pop(os.getpid(), None)
    return found, procs
known = {}
while True:
    ready = select.select([0], [], [], 1.0)[0]
    if ready and not os.read(0, 4096):
        break
    known, _ = family(known)
deadline = time.monotonic() + 10.0
while time.monotonic() < deadline:
    known, procs = family(known)
    alive = [pid for pid in known if procs.get(pid, (0, None, b"Z"))[2] not in (b"Z", b"X")]
    if not alive:
        break
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)
"""


def start_ray(n_workers: int, ray_address: Optional[str], env: Optional[dict] = None) -> None:
    """Connect to `ray_address`, or start a local Ray instance with `n_workers` CPUs; workers get
    WORKER_ENV (plus `env`)."""
    import logging

    import ray

    env_vars = {**WORKER_ENV, **(env or {})}
    options = dict(include_dashboard=False, logging_level=logging.ERROR, runtime_env={"env_vars": env_vars})
    on_sigterm = _python_sigterm_handler()
    try:
        if ray_address is None:
            ray.init(num_cpus=n_workers, **options)
        else:
            ray.init(address=ray_address, **options)
    finally:
        if on_sigterm is not None:
            # ray.init puts its own SIGTERM handler in the driver, which dumps a stack and
            # exits at once; the caller's (the command's: raise, clean up, one line) comes back.
            signal.signal(signal.SIGTERM, on_sigterm)


@contextlib.contextmanager
def local_ray(n_workers: int) -> Iterator[None]:
    """A local Ray instance for the block, shut down when it ends, its processes killed by a
    watchdog if this process dies without running the shutdown (see the module docstring)."""
    import ray

    mark = f"{os.getpid()}-{uuid.uuid4().hex}"
    watchdog = None
    if sys.platform.startswith("linux"):
        watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, mark, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != RUN_MARK},
        )
    previous = os.environ.get(RUN_MARK)
    os.environ[RUN_MARK] = mark  # inherited by what ray.init starts, and by nothing started later
    try:
        try:
            start_ray(n_workers, None, {RUN_MARK: mark})
        finally:
            if previous is None:
                os.environ.pop(RUN_MARK, None)
            else:
                os.environ[RUN_MARK] = previous
        yield
    finally:
        try:
            ray.shutdown()
        finally:
            if watchdog is not None:
                watchdog.stdin.close()  # type: ignore[union-attr]  # the watchdog sweeps what shutdown left
                try:
                    watchdog.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass


def _python_sigterm_handler():
    """This process's SIGTERM handler as Python knows it, when it can be put back (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)  # None when it was not set from Python: left to Ray then


def _run_on_ray(jobs: list[tuple], n_workers: int, ray_address: Optional[str], commit: Callable[[ShardResult], None]) -> None:
    import ray

    if ray.is_initialized():
        session = contextlib.nullcontext()  # the caller's Ray, left running for the caller
    elif ray_address is None:
        session = local_ray(n_workers)
    else:
        session = _connected(ray_address)
    with session:
        task = ray.remote(num_cpus=1, max_retries=2)(_remote_build_shard)
        pending = {task.remote(*job): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as err:
                error = _worker_error(err, job)
                raise error from error.__cause__  # the worker's own error, never Ray's wrapper and its traceback
            commit(result)


@contextlib.contextmanager
def _connected(ray_address: str) -> Iterator[None]:
    import ray

    start_ray(0, ray_address)
    try:
        yield
    finally:
        ray.shutdown()


def _worker_error(err: BaseException, job: tuple) -> BaseException:
    """What the caller should see for a worker's failure on `job`, without Ray's wrapping and traceback.

    The project's own errors (DatasetError among them) come back as they are, as they
    would without Ray; OSError too, so a full disk still reads as one. Anything else
    becomes a one-line DatasetError naming the shard, with the original as its cause.
    """
    import ray

    from hybrid.data.manifest import shard_name
    from hybrid.data.shards import DatasetError

    shard, first, count = job[2], job[3], job[4]
    where = f"{shard_name(shard)} (clips {first} to {first + count - 1})"
    if isinstance(err, ray.exceptions.RayTaskError):
        cause = getattr(err, "cause", None)
        if cause is None:
            last = (str(err).strip().splitlines() or [type(err).__name__])[-1]  # the traceback's final line
            return DatasetError(f"{where}: a worker failed: {one_line(RuntimeError(last))}")
        if type(cause).__module__.split(".")[0] == "hybrid" or isinstance(cause, (OSError, MemoryError)):
            return cause
        error = DatasetError(f"{where}: {type(cause).__name__}: {one_line(cause)}")
        error.__cause__ = cause
        return error
    return DatasetError(
        f"{where}: a Ray worker died ({type(err).__name__}: {one_line(err, 200)}); "
        "run the same command again to resume"
    )
