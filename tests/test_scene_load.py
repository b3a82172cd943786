"""Scene loading: valid files give a Scene; invalid ones fail at the exact line, column and field.

Each invalid case below is written so it has exactly one problem; the expected
position is counted by hand from the YAML text (lines and columns from 1).
"""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest

from hybrid.scene import Issue, Scene, SceneError, load_scene, load_scene_text, scene_json_schema
from hybrid.scene.errors import HELP_LINE
from hybrid.scene.limits import MAX_OBJECTS, estimate_clip_bytes

SPHERE = "{type: sphere, radius: 0.5}"


@pytest.fixture(autouse=True)
def fixed_memory_limit(monkeypatch):
    """A fixed memory limit, so no test depends on how much memory this machine has free."""
    monkeypatch.setenv("HYBRID_MAX_MEMORY_GB", "4")


def write(tmp_path, text: str, name: str = "scene.yaml"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def only_issue(path, overrides=None) -> Issue:
    with pytest.raises(SceneError) as info:
        load_scene(path, overrides)
    issues = info.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


# (id, YAML text, "line:column", field path, phrase in the message, suggestion)
INVALID = [
    (
        "misspelled top-level key",
        """
        name: demo
        resolutoin: [64, 48]
        """,
        "2:1", "resolutoin", "unknown key `resolutoin` at the top level", "resolution",
    ),
    (
        "misspelled key in physics",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            physics:
              mass: 1
              restitusion: 0.5
        """,
        "7:7", "objects[0].physics.restitusion", "unknown key `restitusion` in objects[0].physics", "restitution",
    ),
    (
        "misspelled key in look",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            look: {{colour: red}}
        """,
        "5:12", "objects[0].look.colour", "unknown key `colour` in objects[0].look", "color",
    ),
    (
        "key one level too high",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            mass: 2
        """,
        "5:5", "objects[0].mass", "unknown key `mass` in objects[0]", "physics.mass",
    ),
    (
        "wrong type",
        """
        name: demo
        objects:
          - name: ball
            shape: {type: sphere, radius: big}
        """,
        "4:35", "objects[0].shape.radius", "expected a number greater than 0, got 'big'", None,
    ),
    (
        "negative radius",
        """
        name: demo
        objects:
          - name: ball
            shape:
              type: sphere
              radius: -1
        """,
        "6:15", "objects[0].shape.radius", "expected a number greater than 0, got -1", None,
    ),
    (
        "unknown shape type",
        """
        name: demo
        objects:
          - name: ball
            shape: {type: spere, radius: 1}
        """,
        "4:19", "objects[0].shape.type", "unknown shape type 'spere'", "sphere",
    ),
    (
        "unknown light type",
        """
        name: demo
        lights:
          - type: pont
            position: [0, 0, 3]
        """,
        "3:11", "lights[0].type", "unknown light type 'pont'", "point",
    ),
    (
        "unknown body type",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            physics: {{body: dynamc}}
        """,
        "5:21", "objects[0].physics.body", "unknown body type 'dynamc'", "dynamic",
    ),
    (
        "unknown camera motion",
        """
        name: demo
        camera:
          motion: orbt
        """,
        "3:11", "camera.motion", "unknown camera motion 'orbt'", "orbit",
    ),
    (
        "mass and density both",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            physics:
              mass: 2
              density: 500
        """,
        "7:16", "objects[0].physics.density", "give `mass` or `density`, not both", None,
    ),
    (
        "duplicate object names",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
          - name: ball
            shape: {SPHERE}
        """,
        "5:11", "objects[1].name", "object name 'ball' is used twice (objects[0] and objects[1])", None,
    ),
    (
        "duplicate YAML key",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            name: ball2
        """,
        "5:5", "objects[0].name", "duplicate key `name` (first given at line 3, column 5)", None,
    ),
    (
        "YAML syntax error",
        """
        name: demo
        resolution: [64, 48
        fps: 24
        """,
        "3:4", "", "YAML syntax error: expected ',' or ']', but got ':'", None,
    ),
    (
        "tab indentation",
        "name: demo\ncamera:\n\tfov_deg: 50\n",
        "3:1", "", "found character '\\t' that cannot start any token; indent with spaces, not tabs", None,
    ),
    (
        "object without shape",
        """
        name: demo
        objects:
          - name: ball
            position: [0, 0, 1]
        """,
        "3:5", "objects[0].shape", "missing required field `shape`", None,
    ),
    (
        "scene without name",
        """
        # a scene with everything but a name
        fps: 30
        """,
        "2:1", "name", "missing required field `name`", None,
    ),
    (
        "light without type",
        """
        name: demo
        lights:
          - intensity: 2
        """,
        "3:5", "lights[0].type", "missing required field `type`, the light type", None,
    ),
    (
        "missing mesh file",
        """
        name: demo
        objects:
          - name: teapot
            shape: {type: mesh, file: meshes/teapot.obj}
        """,
        "4:31", "objects[0].shape.file", "file not found: {tmp}/meshes/teapot.obj", None,
    ),
    (
        "empty mesh path",
        """
        name: demo
        objects:
          - name: teapot
            shape: {type: mesh, file: ""}
        """,
        "4:31", "objects[0].shape.file", "expected a file path, got an empty one", None,
    ),
    (
        "bad colour name",
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            look:
              color: redd
        """,
        "6:14", "objects[0].look.color", "unknown colour 'redd'", "red",
    ),
    (
        "box size with two numbers",
        """
        name: demo
        objects:
          - name: crate
            shape: {type: box, size: [1, 2]}
        """,
        "4:30", "objects[0].shape.size", "expected a list of 3 numbers greater than 0, got [1, 2]", None,
    ),
    (
        "mesh scale fits neither form",
        """
        name: demo
        objects:
          - name: teapot
            shape: {type: mesh, file: scene.yaml, scale: -2}
        """,
        "4:50", "objects[0].shape.scale",
        "expected a number greater than 0 or a list of 3 numbers greater than 0, got -2", None,
    ),
    (
        "camera path with one keyframe",
        """
        name: demo
        camera:
          motion: path
          keyframes:
            - {t: 0, position: [3, 0, 1], look_at: [0, 0, 0]}
        """,
        "4:3", "camera.keyframes", "`motion: path` needs `keyframes` with at least two entries (got 1)", None,
    ),
    (
        "timestep not dividing the frame time",
        """
        name: demo
        fps: 30
        physics:
          timestep: 0.007
        """,
        "4:13", "physics.timestep", "must divide the simulated time per frame", None,
    ),
    (
        "infinite number",
        """
        name: demo
        fps: .inf
        """,
        "2:6", "fps", "expected a finite number, got inf", None,
    ),
    (
        "point light asking for shadows",
        """
        name: demo
        lights:
          - {type: point, position: [0, 0, 2], shadows: true}
        """,
        "3:49", "lights[0].shadows", "point lights cannot cast shadows", None,
    ),
    (
        "more lights of one type than the rasteriser draws",
        """
        name: demo
        lights:
          - {type: directional}
          - {type: directional}
          - {type: directional}
          - {type: directional}
          - {type: directional}
        """,
        "7:5", "lights[4]", "5 directional lights: the rasteriser draws at most 4", None,
    ),
    (
        "breakable without threshold or preset",
        """
        name: demo
        objects:
          - name: cup
            shape: {type: box, size: [0.1, 0.1, 0.1]}
            physics: {breakable: {pieces: 8}}
        """,
        "5:26", "objects[0].physics.breakable.threshold_Ns", "`breakable` needs `threshold_Ns` or a `preset`", None,
    ),
    (
        "unknown break preset",
        """
        name: demo
        objects:
          - name: cup
            shape: {type: box, size: [0.1, 0.1, 0.1]}
            physics: {breakable: {preset: porcelain}}
        """,
        "5:35", "objects[0].physics.breakable.preset", "porcelain", "ceramic",
    ),
    (
        "breakable kinematic object",
        """
        name: demo
        objects:
          - name: paddle
            shape: {type: box, size: [0.1, 0.1, 0.1]}
            physics: {body: kinematic, breakable: {preset: glass}}
        """,
        "5:43", "objects[0].physics.breakable", "a kinematic object cannot break", None,
    ),
    (
        "empty file",
        "",
        "1:1", "", "the file is empty", None,
    ),
    (
        "top level is a list",
        """
        - name: demo
        """,
        "1:1", "", "the top level of a scene must be a mapping of keys", None,
    ),
]


@pytest.mark.parametrize(
    "text, where, path, phrase, suggestion", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_scene_is_located(tmp_path, text, where, path, phrase, suggestion):
    scene_file = write(tmp_path, text)
    issue = only_issue(scene_file)
    assert issue.file == str(scene_file)
    assert f"{issue.line}:{issue.column}" == where
    assert issue.path == path
    assert phrase.replace("{tmp}", str(tmp_path)) in issue.message
    assert issue.suggestion == suggestion


def test_issue_text_is_file_line_column_path_message():
    text = "name: demo\nobjects:\n  - name: ball\n    shape: {type: sphere, radius: 1}\n    physics: {mass: -1}\n"
    with pytest.raises(SceneError) as info:
        load_scene_text(text, "scenes/x.yaml")
    lines = str(info.value).splitlines()
    assert lines == [
        "scenes/x.yaml:5:21: objects[0].physics.mass: expected a number greater than 0, got -1",
        HELP_LINE,
    ]
    assert "`hybrid schema`" in HELP_LINE


def test_suggestion_and_choices_are_written_after_the_message():
    text = "name: demo\nobjects:\n  - {name: a, shape: {type: spere}}\n"
    with pytest.raises(SceneError) as info:
        load_scene_text(text, "x.yaml")
    assert str(info.value).splitlines()[0] == (
        "x.yaml:3:29: objects[0].shape.type: unknown shape type 'spere' "
        "(did you mean 'sphere'? one of: sphere, box, cylinder, capsule, plane, mesh, heightfield, lathe)"
    )


def test_every_problem_is_reported_in_file_order(tmp_path):
    scene_file = write(
        tmp_path,
        """
        name: demo
        fpz: 24
        objects:
          - name: ball
            shape: {type: sphere, radius: 0}
        """,
    )
    with pytest.raises(SceneError) as info:
        load_scene(scene_file)
    assert [(i.line, i.column, i.path) for i in info.value.issues] == [
        (2, 1, "fpz"),
        (5, 35, "objects[0].shape.radius"),
    ]


def test_missing_scene_file_is_a_scene_error(tmp_path):
    with pytest.raises(SceneError) as info:
        load_scene(tmp_path / "nope.yaml")
    assert "scene file not found" in str(info.value)


def test_alias_cycle_is_refused():
    with pytest.raises(SceneError) as info:
        load_scene_text("name: demo\nx: &a [*a]\n", "x.yaml")
    assert "cycle" in info.value.issues[0].message


# ---------------------------------------------------------------- limits


def test_clip_too_big_for_memory_is_refused_with_the_estimate(tmp_path):
    scene_file = write(
        tmp_path,
        """
        name: demo
        resolution: [1920, 1080]
        frames: 1000
        """,
    )
    issue = only_issue(scene_file)
    assert (issue.line, issue.column, issue.path) == (2, 13, "resolution")
    # 1920 x 1080 px x 1000 frames x 40 B = 82,944,000,000 B, plus the renderer's
    # 64 B per pixel of one frame (132,710,400 B) and 512 MiB: 83,613,581,312 B = 77.87 GiB.
    assert "an estimated 77.9 GiB" in issue.message
    assert "limit of 4.0 GiB" in issue.message
    assert "HYBRID_MAX_MEMORY_GB" in issue.message and "fewer frames" in issue.message


def test_bad_memory_limit_setting_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_MAX_MEMORY_GB", "lots")
    issue = only_issue(write(tmp_path, "name: demo\n"))
    assert str(issue) == "HYBRID_MAX_MEMORY_GB: must be a positive number of GiB, got 'lots'"


def test_default_memory_limit_comes_from_this_machine(tmp_path, monkeypatch):
    monkeypatch.delenv("HYBRID_MAX_MEMORY_GB")
    # 8192 x 8192 x 100,000 frames x 40 B is about 244,000 GiB: more than any machine has.
    scene_file = write(tmp_path, "name: demo\nresolution: [8192, 8192]\nframes: 100000\n")
    issue = only_issue(scene_file)
    assert "half of this machine's available memory" in issue.message


def test_estimate_counts_forty_bytes_per_pixel_per_frame():
    small = Scene(name="a", resolution=(64, 48), frames=10)
    longer = Scene(name="a", resolution=(64, 48), frames=11)
    assert estimate_clip_bytes(longer) - estimate_clip_bytes(small) == 64 * 48 * 40


def test_too_many_objects_is_refused(tmp_path):
    lines = ["name: crowd", "objects:"]
    lines += [f"  - {{name: o{i}, shape: {SPHERE}}}" for i in range(MAX_OBJECTS + 1)]
    scene_file = write(tmp_path, "\n".join(lines) + "\n")
    issue = only_issue(scene_file)
    assert (issue.line, issue.column, issue.path) == (2, 1, "objects")
    assert f"{MAX_OBJECTS + 1} objects is more than the limit of {MAX_OBJECTS}" in issue.message
    assert "every object is a physics body" in issue.message


# ---------------------------------------------------------------- valid scenes


def test_minimal_scene_loads_with_defaults(tmp_path):
    scene = load_scene(write(tmp_path, "name: demo\n"))
    assert scene.name == "demo"
    assert scene.resolution == (320, 240)
    assert scene.frame_count == 48  # two seconds at 24 fps
    assert [light.type for light in scene.lights] == ["ambient", "directional"]
    assert scene.objects == ()


def test_relative_paths_resolve_against_the_scene_folder(tmp_path, monkeypatch):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    from PIL import Image

    Image.new("RGB", (4, 4), (150, 100, 50)).save(tmp_path / "assets" / "wood.png")
    np.save(tmp_path / "assets" / "hills.npy", np.zeros((8, 8)))
    scene_file = write(
        tmp_path,
        """
        name: demo
        objects:
          - name: tri
            shape: {type: mesh, file: ../assets/tri.obj}
            physics: {body: static}
            look: {texture: ../assets/wood.png}
          - name: ground
            shape: {type: heightfield, size: [4, 4], file: ../assets/hills.npy}
            physics: {body: static}
        """,
        name="scenes/demo.yaml",
    )
    # Another working directory: paths must not depend on where the command runs.
    monkeypatch.chdir(tmp_path / "assets")
    scene = load_scene(os.path.relpath(scene_file))
    assert scene.objects[0].shape.file == str(tmp_path / "assets" / "tri.obj")
    assert scene.objects[0].look.texture == str(tmp_path / "assets" / "wood.png")
    assert scene.objects[1].shape.file == str(tmp_path / "assets" / "hills.npy")


def test_anchors_and_merge_keys_are_supported(tmp_path):
    scene = load_scene(
        write(
            tmp_path,
            """
            name: demo
            objects:
              - &ball {name: a, shape: {type: sphere, radius: 0.5}, physics: {mass: 2}}
              - {<<: *ball, name: b, position: [2, 0, 0]}
            """,
        )
    )
    assert [o.name for o in scene.objects] == ["a", "b"]
    assert scene.objects[1].physics.mass == 2.0


def test_overrides_are_applied_and_frames_replace_duration(tmp_path):
    scene_file = write(tmp_path, "name: demo\nduration: 3\nseed: 1\n")
    scene = load_scene(scene_file, {"frames": 10, "resolution": (64, 48), "seed": 3})
    assert (scene.frames, scene.duration, scene.frame_count) == (10, None, 10)
    assert scene.resolution == (64, 48)
    assert scene.seed == 3


def test_bad_override_is_reported_as_from_the_command_line(tmp_path):
    scene_file = write(tmp_path, "name: demo\nframes: 24\n")
    issue = only_issue(scene_file, {"frames": 0})
    assert (issue.line, issue.column, issue.path) == (1, 1, "frames")
    assert "expected a whole number at least 1, got 0" in issue.message
    assert "command line" in issue.message


# ---------------------------------------------------------------- JSON Schema


def test_json_schema_is_draft_2020_12_and_accepts_colour_names():
    schema = scene_json_schema()
    json.dumps(schema)  # an editor reads it as JSON
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] and schema["description"]
    assert schema["required"] == ["name"]
    assert {"name", "objects", "camera", "lights", "resolution"} <= set(schema["properties"])
    color = schema["$defs"]["Look"]["properties"]["color"]
    names = [form for form in color["anyOf"] if "enum" in form]
    assert names and "red" in names[0]["enum"]


def test_unreadable_texture_is_located_at_the_look(tmp_path):
    (tmp_path / "tex.png").write_text("not an image")
    scene_file = write(
        tmp_path,
        f"""
        name: demo
        objects:
          - name: ball
            shape: {SPHERE}
            look: {{texture: tex.png}}
        """,
    )
    issue = only_issue(scene_file)
    assert (issue.line, issue.path) == (5, "objects[0].look.texture")
    assert "cannot read the image" in issue.message and "PNG or JPEG" in issue.message


def test_height_map_that_is_not_2d_is_located(tmp_path):
    np.save(tmp_path / "h.npy", np.zeros((4, 4, 2)))
    scene_file = write(
        tmp_path,
        """
        name: demo
        objects:
          - name: ground
            shape: {type: heightfield, size: [4, 4], file: h.npy}
            physics: {body: static}
        """,
    )
    issue = only_issue(scene_file)
    assert (issue.line, issue.path) == (4, "objects[0].shape.file")
    assert "shape (4, 4, 2)" in issue.message and "2D array" in issue.message
