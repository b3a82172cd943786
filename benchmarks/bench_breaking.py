"""Stepping a scene that breaks into 64 fragments against the same 64 pieces as bodies from the start.

Scene "breaks": a 0.3 m box (glass-like, 64 Voronoi fragments) dropped 0.5 m onto a
floor; it breaks on impact and its fragments scatter and settle. Scene "separate":
the same 64 fragments (the same hulls, masses and inertia, written as mesh files) as
64 bodies from the first frame, tiling the same box, dropped the same way: they
land as a loose heap. Both are stepped through the same clip in this process, in
turn, for several repeats; we print the median ratio of their stepping times (the
World's building is not timed), over the whole clip and over the frames after the
break. What the breaking scene adds: the per-step watch on its intact breakable,
the switch itself (the fracture comes from the cache: the first run fills it and
is not timed) and States with absent rows.

Run: python benchmarks/bench_breaking.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.physics.breakables import event_fragments  # noqa: E402
from hybrid.scene.spec import Scene  # noqa: E402
from hybrid.world import World  # noqa: E402

TARGET = 1.2
SIZE = [0.3, 0.3, 0.3]
HEIGHT = 0.65
DENSITY = 500.0


def breaking_scene(frames: int) -> Scene:
    return Scene.model_validate(dict(
        name="breaks", frames=frames, objects=[
            dict(name="floor", shape=dict(type="plane"), physics=dict(body="static", friction=0.6)),
            dict(name="box", shape=dict(type="box", size=SIZE), position=[0.0, 0.0, HEIGHT], rotation_deg=[0, 0, 20],
                 physics=dict(density=DENSITY, friction=0.6, restitution=0.1,
                              breakable=dict(threshold_Ns=1.0, pieces=64, pattern="voronoi", seed=1, kick=0.02))),
        ],
    ))


def separate_scene(frames: int, folder: Path) -> Scene:
    """The breaking scene's fragments as bodies from the start, from its first run's break."""
    import trimesh

    scene = breaking_scene(frames)
    with World(scene) as world:
        while not world._breaks:
            world.step()
        breaks = world._breaks
    fragments = event_fragments(scene, world.roster, breaks, breaks[0])
    objects = [dict(name="floor", shape=dict(type="plane"), physics=dict(body="static", friction=0.6))]
    for k, fragment in enumerate(fragments):
        (piece,) = fragment.pieces  # a box is one convex part: one piece per fragment
        path = folder / f"fragment{k:02d}.obj"
        trimesh.Trimesh(piece.vertices, piece.faces).export(path)  # the piece's outward faces
        objects.append(dict(
            name=f"piece{k:02d}", shape=dict(type="mesh", file=str(path)), position=[0.0, 0.0, HEIGHT],
            rotation_deg=[0, 0, 20], physics=dict(density=DENSITY, friction=0.6, restitution=0.1),
        ))
    return Scene.model_validate(dict(name="separate", frames=frames, objects=objects))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenes = {"breaks": breaking_scene(args.frames), "separate": separate_scene(args.frames, Path(tmp))}
        totals: dict[str, list[float]] = {name: [] for name in scenes}
        after: dict[str, list[float]] = {name: [] for name in scenes}
        break_frame = None
        for _ in range(args.repeats):
            for name, scene in scenes.items():
                with World(scene) as world:
                    times = []
                    for _frame in range(1, scene.frame_count):
                        start = time.perf_counter()
                        world.step()
                        times.append(time.perf_counter() - start)
                    if name == "breaks":
                        break_frame = world._breaks[0].frame
                totals[name].append(sum(times))
                after[name].append(sum(times[break_frame:]) if break_frame else float("nan"))
    ratio = statistics.median(b / s for b, s in zip(totals["breaks"], totals["separate"]))
    ratio_after = statistics.median(b / s for b, s in zip(after["breaks"], after["separate"]))
    print(f"{args.frames} frames, {args.repeats} repeats, the box breaks at frame {break_frame}")
    for name in scenes:
        print(f"  {name:9s} stepping {statistics.median(totals[name]) * 1000:8.1f} ms "
              f"(after the break {statistics.median(after[name]) * 1000:8.1f} ms)")
    print(f"breaks / separate: {ratio:.3f}x over the clip, {ratio_after:.3f}x after the break (target <= {TARGET}x)")


if __name__ == "__main__":
    main()
