"""End to end: every example scene validates and renders; clips are deterministic and self-consistent."""

import re

import numpy as np
import pytest

from hybrid.pipeline import render_clip
from hybrid.scene import load_scene

from conftest import REPO, SCENES

SCENE_FILES = sorted(SCENES.glob("*.yaml"))
SMALL = {"frames": 3, "resolution": [96, 64]}
# A scene with fields costs 7-30 s here whatever its size, almost all of it Taichi compiling
# the solvers' kernels: they render in `make test-slow`. The fast suite keeps fields through
# World in test_fields_world and their rendering in test_render_fields.
SLOW_SCENES = {"ball_into_tank", "burning_dominoes", "campfire", "dam_break", "smoke_plume", "wind_tunnel"}
FAST_OR_SLOW_SCENES = [
    pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW_SCENES else p for p in SCENE_FILES
]


def test_there_are_at_least_six_example_scenes():
    assert len(SCENE_FILES) >= 6


def check_clip_geometry(scene, clip, frames: int, height: int, width: int) -> None:
    """What every clip must satisfy, rigid or broken: buffer dtypes and shapes, finite values, one
    background in depth and instance, unit normals, zero flow at the clip's ends, instance ids of
    objects that exist in their frame, and metadata naming every object and fragment slot in id order."""
    from hybrid.roster import Roster

    b = clip.buffers
    t, h, w = frames, height, width
    expected = {
        "rgb": (np.uint8, (t, h, w, 3)),
        "depth": (np.float32, (t, h, w)),
        "instance": (np.uint16, (t, h, w)),
        "normal": (np.float32, (t, h, w, 3)),
        "albedo": (np.uint8, (t, h, w, 3)),
        "flow_fwd": (np.float32, (t, h, w, 2)),
        "flow_bwd": (np.float32, (t, h, w, 2)),
    }
    if scene.fields is not None:
        expected.update(
            {
                "gas_density": (np.float32, (t, h, w)),
                "gas_temperature": (np.float32, (t, h, w)),
                "liquid_mask": (np.uint8, (t, h, w)),
                "liquid_thickness": (np.float32, (t, h, w)),
                "fluid_velocity": (np.float32, (t, h, w, 2)),
                "heat_haze": (np.float32, (t, h, w, 2)),
            }
        )
    assert set(b) == set(expected)
    for name, (dtype, shape) in expected.items():
        assert b[name].dtype == dtype and b[name].shape == shape, name
        if name.startswith("flow"):  # NaN is allowed: a point that moved behind the other camera
            assert not np.isinf(b[name]).any(), name
        elif b[name].dtype.kind == "f":
            assert np.isfinite(b[name]).all(), name
    hit = b["instance"] > 0
    assert hit.any(), "the camera sees no object"
    roster = Roster.from_scene(scene)
    assert b["instance"].max() <= len(roster)
    # Buffers agree on what is background.
    assert (b["depth"][hit] > 0).all() and (b["depth"][~hit] == 0).all()
    norms = np.linalg.norm(b["normal"][hit], axis=-1)
    assert np.abs(norms - 1).max() < 1e-3
    assert (b["flow_fwd"][-1] == 0).all() and (b["flow_bwd"][0] == 0).all()
    meta = clip.metadata
    assert meta["frame_count"] == t and len(meta["cam_to_world"]) == t
    assert [o["name"] for o in meta["objects"]] == list(roster.names)
    assert [o["instance_id"] for o in meta["objects"]] == list(range(1, len(roster) + 1))
    # Only what exists in a frame is drawn in it.
    for k in range(t):
        seen = np.unique(b["instance"][k])
        for ident in seen[seen > 0].tolist():
            obj = meta["objects"][ident - 1]
            assert obj.get("present", [True] * t)[k], (k, obj["name"])


@pytest.mark.parametrize("path", FAST_OR_SLOW_SCENES, ids=lambda p: p.stem)
def test_example_scene_renders_a_few_frames(path):
    scene = load_scene(path, overrides=SMALL)
    clip = render_clip(scene)
    b = clip.buffers
    if scene.fields is not None:
        if scene.fields.liquid is not None:
            assert b["liquid_mask"].any(), "the camera sees no liquid"
            assert (b["liquid_thickness"][b["liquid_mask"] == 1] > 0).all()
        stats = clip.metadata["fields"]["frames"]
        assert len(stats) == 3
        if scene.fields.gas is not None:
            assert all(f["gas_substeps"] >= 1 for f in stats[1:])
            assert (b["gas_density"] >= 0).all()
    check_clip_geometry(scene, clip, 3, 64, 96)


def test_a_clip_with_breaks_passes_the_same_checks():
    """The wine glass past its break: fragments appear with their own ids and the glass's id is gone.
    (That a break gives the same bytes again is checked where it is made: the simulation in
    test_breakables, the fragments in test_fracture; the raster pass is checked for bytes in
    test_same_scene_and_seed_give_bit_identical_clips.)"""
    scene = load_scene(SCENES / "wine_glass.yaml", overrides={"frames": 12, "resolution": [96, 64]})
    clip = render_clip(scene)
    check_clip_geometry(scene, clip, 12, 64, 96)
    (event,) = clip.metadata["breaks"]
    assert event["object"] == "wine_glass" and event["frame"] < 12
    glass_id = event["instance_id"]
    after = clip.buffers["instance"][event["frame"]:]
    assert not (after == glass_id).any()
    assert len(set(np.unique(after).tolist()) & set(event["fragment_ids"])) >= 5


def _project(meta, t, point):
    K = np.array(meta["K"])
    c2w = np.array(meta["cam_to_world"][t])
    p = np.linalg.inv(c2w) @ np.append(point, 1.0)
    uv = K @ (p[:3] / p[2])
    return uv[:2], p[2]


def test_instance_ids_follow_the_simulated_objects():
    """Project each ball's simulated centre with K and cam_to_world: the instance buffer there is that ball."""
    scene = load_scene(SCENES / "bouncing_balls.yaml", overrides={"frames": 12, "resolution": [160, 90]})
    clip = render_clip(scene)
    meta = clip.metadata
    checked = 0
    for obj in meta["objects"]:
        if obj["shape"] != "sphere":
            continue
        for t in range(meta["frame_count"]):
            (u, v), z = _project(meta, t, obj["position"][t])
            assert z > 0
            assert clip.buffers["instance"][t, int(v), int(u)] == obj["instance_id"]
            # The depth of a sphere's centre pixel is the centre's depth minus at most the radius.
            assert z - 0.15 - 0.01 <= clip.buffers["depth"][t, int(v), int(u)] <= z
            checked += 1
    assert checked == 4 * 12


def test_same_scene_and_seed_give_bit_identical_clips():
    scene = load_scene(SCENES / "mesh_tower.yaml", overrides={"frames": 4, "resolution": [80, 60]})
    a, b = render_clip(scene), render_clip(scene)
    assert a.buffers.keys() == b.buffers.keys()
    for name in a.buffers:
        assert a.buffers[name].tobytes() == b.buffers[name].tobytes(), name
    assert a.metadata["objects"] == b.metadata["objects"]
    assert a.metadata["contacts"] == b.metadata["contacts"]


def test_readme_walkthrough_scene_renders_as_written(tmp_path):
    text = (REPO / "README.md").read_text()
    block = re.search(r"```yaml\n(# A red ball.*?)```", text, re.S)
    assert block, "README walk-through scene not found"
    # The walk-through saves the file next to scenes/, so its asset paths resolve from there.
    (tmp_path / "scenes").symlink_to(SCENES)
    path = tmp_path / "my_scene.yaml"
    path.write_text(block.group(1))
    scene = load_scene(path)
    full = render_clip(load_scene(path, overrides={"resolution": [80, 60]}))
    meta = full.metadata
    assert meta["frame_count"] == scene.frame_count == 48
    names = [o["name"] for o in meta["objects"]]
    ball = meta["objects"][names.index("ball")]
    box = meta["objects"][names.index("box")]
    # The walk-through promises the ball rolls off the ramp and knocks the box over.
    assert ball["position"][-1][0] > 0.3
    start_q, end_q = np.array(box["quaternion"][0]), np.array(box["quaternion"][-1])
    assert abs(np.dot(start_q, end_q)) < np.cos(np.radians(30) / 2), "the box did not tip over"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole example scene at its own length and resolution
@pytest.mark.parametrize("path", SCENE_FILES, ids=lambda p: p.stem)
def test_example_scene_renders_in_full_through_the_command(path, tmp_path):
    """Every example scene at its own length and resolution, as `hybrid render scenes` does."""
    from hybrid.cli import main
    from hybrid.io.clip import read_clip
    from hybrid.io.video import read_mp4

    out = tmp_path / path.stem
    assert main(["render", str(path), "--out", str(out), "-q"]) == 0
    scene = load_scene(path)
    clip = read_clip(out)
    assert clip.buffers["rgb"].shape == (scene.frame_count, scene.height, scene.width, 3)
    frames, fps = read_mp4(str(out / "rgb.mp4"))
    assert len(frames) == scene.frame_count and fps == pytest.approx(scene.fps)


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(from hybrid.scene import load_scene.*?)```", text, re.S)
    assert block, "README Python example not found"
    (tmp_path / "scenes").symlink_to(SCENES)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    assert (tmp_path / "out" / "balls" / "rgb.mp4").is_file()


BURNING_PLANK = """
name: burning_plank
fps: 24
frames: 16
resolution: [96, 64]
camera: {position: [0.0, -0.45, 0.25], look_at: [0.0, 0.0, 0.04], fov_deg: 50}
lights:
  - {type: ambient, intensity: 0.3}
  - {type: directional, direction: [0.3, 0.6, -0.7], intensity: 2.0, shadows: true}
objects:
  - name: floor
    shape: {type: box, size: [0.6, 0.6, 0.02]}
    position: [0, 0, -0.01]
    physics: {body: static}
  - name: plank
    shape: {type: box, size: [0.1, 0.1, 0.01]}
    position: [0, 0, 0.12]
    physics:
      body: static  # held in the air until it collapses; its fragments fall
      density: 600
      # A time-lapse of dry wood (as scenes/campfire.yaml): burnt through in a few frames.
      flammable: {preset: dry_wood, burn_rate: 6.0, heat_release: 3.4e4, collapse: 6, ignite: {t: 0, radius: 1.0}}
fields:
  gas:
    domain: {min: [-0.15, -0.15, 0.0], max: [0.15, 0.15, 0.3]}
    resolution: 16
    cooling: 3.0
    max_substeps: 60
    combustion: {ignition_temperature: 150, burn_rate: 10, heat: 700, smoke: 0.4}
"""


@pytest.mark.slow  # a World with gas: its kernels compile
def test_a_clip_in_which_an_object_burns_and_collapses_passes_the_same_checks():
    """A wooden plank held in the air, lit all over, burns, is consumed and collapses into char
    fragments that fall to the floor: the clip passes every check a rigid clip does, before, while
    and after it burns."""
    from hybrid.scene import load_scene_text

    scene = load_scene_text(BURNING_PLANK, "burning_plank.yaml")
    clip = render_clip(scene)
    check_clip_geometry(scene, clip, 16, 64, 96)
    meta = clip.metadata
    (event,) = meta["breaks"]
    assert event["object"] == "plank" and 0 < event["frame"] < 16
    plank = next(o for o in meta["objects"] if o["name"] == "plank")
    after = clip.buffers["instance"][event["frame"]:]
    assert not (after == plank["instance_id"]).any()
    assert set(np.unique(after).tolist()) & set(event["fragment_ids"])
    burn = plank["burn"]
    assert burn["state"][:2] == ["intact", "burning"] and burn["ignition_cause"] == "ignite"
    consumed = burn["state"].index("consumed")
    assert consumed < event["frame"] and burn["mass_kg"][consumed] < burn["mass_kg"][0]
    # Once it is char fragments, nothing of it burns.
    assert all(a == 0.0 for a in burn["burning_area_m2"][event["frame"]:])
