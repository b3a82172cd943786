"""The neural renderer's cost: sampling time per frame against the raster pass it replaces, and training throughput.

Sampling: a held-out clip of the dataset (default out/neural_pt/heldout, made by
datasets/neural_pt.yaml) rendered by ``NeuralRenderer.render`` (overlapping windows,
warped noise, and for a detail_transfer checkpoint the upsampling to the clip's
size) at several step counts, with the checkpoint given (default
checkpoints/neural_pt). Baseline: the raster passes that make the same clip's
frames and buffers (``Rasterizer.render``: the beauty pass and the G-buffer) for its
scene at the same resolution, re-simulated from its recipe, in this process. The
neural renderer needs those buffers too, so its total is raster + sampling.

Training: steps of the loop's ``diffusion_loss`` + backward + AdamW on random
windows of the checkpoint's config, in windows (of `window` frames) per second.
Baseline: the same on one process; then two processes under DDP (gloo), one thread
each, for the scaling ratio.

Run: python benchmarks/bench_neural.py [--checkpoint DIR] [--dataset DIR] [--steps 1,2,4,10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def raster_seconds_per_frame(metadata: dict, repeats: int) -> float:
    """Seconds per frame of the raster passes for the clip's scene (its physics is not timed)."""
    from hybrid.camera import camera_track
    from hybrid.data.recipe import load_recipe
    from hybrid.data.sampler import sample_scene
    from hybrid.pipeline import simulate
    from hybrid.render import Rasterizer

    info = metadata["dataset"]
    recipe = load_recipe(os.path.join(REPO, "datasets", f"{info['recipe']}.yaml"))
    scene = sample_scene(recipe, info["seed"], info["index"], draw=info.get("draw", 0))
    states = simulate(scene)
    track = camera_track(scene)
    times = []
    with Rasterizer(scene) as raster:
        raster.render(states[0], track.cam_to_world[0])  # uploads meshes and shadow maps: not timed
        for _ in range(repeats):
            start = time.perf_counter()
            for t, state in enumerate(states):
                raster.render(state, track.cam_to_world[t])
            times.append((time.perf_counter() - start) / len(states))
    return statistics.median(times)


def train_windows_per_second(config, batch: int, steps: int, rank: int = 0, world: int = 1) -> float:
    """Windows per second of full training steps on random inputs (after one warm-up step)."""
    from hybrid.neural.model import VideoDenoiser
    from hybrid.neural.schedulers import make_scheduler
    from hybrid.train.loop import diffusion_loss

    torch.manual_seed(0)
    model = VideoDenoiser(config)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = make_scheduler("ddpm", config)
    h, w = config.resolution
    batch_data = {
        "cond": torch.randn(batch, config.window, config.condition_channels, h, w),
        "target": torch.rand(batch, config.window, 3, h, w) * 2 - 1,
        "context_mask": torch.zeros(batch, config.window, dtype=torch.bool),
    }
    generator = torch.Generator().manual_seed(rank)
    elapsed = 0.0
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = diffusion_loss(net, schedule, batch_data, generator, config.prediction_type)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:  # the first step builds caches and allocates: not timed
            elapsed += time.perf_counter() - start
    return steps * batch * world / elapsed


def _ddp_worker(rank: int, world: int, config_json: str, batch: int, steps: int, out) -> None:
    import torch.distributed as dist

    from hybrid.neural.config import NeuralConfig

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29517")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rate = train_windows_per_second(NeuralConfig.model_validate_json(config_json), batch, steps, rank, world)
        if rank == 0:
            out.put(rate)
    finally:
        dist.destroy_process_group()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "checkpoints", "neural_pt"))
    parser.add_argument("--dataset", default=os.path.join(REPO, "out", "neural_pt", "heldout"))
    parser.add_argument("--steps", default="1,2,4,10", help="comma-separated sampling step counts")
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2, help="windows per training step per process")
    args = parser.parse_args()

    from hybrid.neural.sampler import NeuralRenderer
    from hybrid.train.data import heldout_clips

    torch.set_num_threads(1)  # one core, like a dataset worker; the raster pass runs on one thread too
    renderer = NeuralRenderer.from_checkpoint(args.checkpoint)
    ((buffers, metadata),) = heldout_clips(args.dataset, 1)
    frames = buffers["rgb"].shape[0]
    raster = raster_seconds_per_frame(metadata, repeats=3)
    print(f"clip: {frames} frames at {buffers['rgb'].shape[2]}x{buffers['rgb'].shape[1]}; one thread")
    print(f"  raster passes (baseline)            {raster * 1e3:8.1f} ms/frame   1.00x")
    for steps in [int(s) for s in args.steps.split(",")]:
        start = time.perf_counter()
        renderer.render(buffers, metadata, steps=steps, seed=0)
        per_frame = (time.perf_counter() - start) / frames
        print(f"  neural sampling, {steps:3d} steps          {per_frame * 1e3:8.1f} ms/frame {per_frame / raster:8.1f}x")

    config = renderer.config
    one = train_windows_per_second(config, args.batch, args.train_steps)
    print(f"training, batch {args.batch} windows of {config.window} frames at {config.resolution[0]}x{config.resolution[1]}:")
    print(f"  1 process, 1 thread (baseline)      {one:8.2f} windows/s   1.00x")
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(
        _ddp_worker, args=(2, config.model_dump_json(), args.batch, args.train_steps, out), nprocs=2, start_method="spawn"
    )
    two = out.get()
    print(f"  2 processes DDP (gloo), 1 thread    {two:8.2f} windows/s {two / one:8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
