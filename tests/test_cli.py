"""The `hybrid` command as a user types it."""

import json
import os
import subprocess
import sys

from hybrid.cli import main

from conftest import SCENES


def test_validate_all_example_scenes(capsys):
    assert main(["validate", str(SCENES)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == len(list(SCENES.glob("*.yaml")))


def test_validate_reports_located_error_and_fails(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nobjects:\n  - name: a\n    shape: {type: sphere, radius: 0.1}\n    physics: {restitusion: 0.5}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "objects[0].physics" in err and "restitution" in err


def test_schema_is_json_with_scene_fields(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"objects", "camera", "lights", "physics", "fps"} <= set(schema["properties"])


def test_render_command_writes_the_clip_folder(tmp_path):
    """Through the installed console script, as in the README."""
    out = tmp_path / "clip"
    proc = subprocess.run(
        [sys.executable, "-m", "hybrid", "render", str(SCENES / "bouncing_balls.yaml"),
         "--out", str(out), "--frames", "3", "--resolution", "64x48", "--seed", "5", "-q"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("rgb.mp4", "buffers.hyb", "metadata.json", "preview.png"):
        assert (out / name).is_file() and name in proc.stdout
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["seed"] == 5 and meta["frame_count"] == 3 and meta["resolution"] == [64, 48]


def test_render_a_folder_renders_each_scene(tmp_path):
    src = tmp_path / "scenes"
    src.mkdir()
    for name in ("bouncing_balls.yaml", "valley_terrain.yaml"):
        (src / name).write_text((SCENES / name).read_text())
    (src / "assets").symlink_to(SCENES / "assets")
    assert main(["render", str(src), "--out", str(tmp_path / "out"), "--frames", "2", "--resolution", "48x32", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bouncing_balls", "valley_terrain"]


def test_bad_override_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "clip"
    code = main(["render", str(SCENES / "bouncing_balls.yaml"), "--out", str(out), "--frames", "0", "-q"])
    assert code == 2
    assert "frames" in capsys.readouterr().err
    assert not out.exists()


def test_unreadable_mesh_names_object_and_file_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "broken.obj").write_text("this is not a mesh\n")
    scene = tmp_path / "scene.yaml"
    scene.write_text(
        "name: m\nframes: 2\nresolution: [32, 32]\nobjects:\n"
        "  - name: statue\n    shape: {type: mesh, file: broken.obj}\n"
    )
    out = tmp_path / "clip"
    assert main(["render", str(scene), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "statue" in err and "broken.obj" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken.obj", "scene.yaml"]


def test_unusable_gl_platform_is_a_clear_setup_error(tmp_path):
    env = dict(os.environ, PYOPENGL_PLATFORM="nonsense")
    proc = subprocess.run(
        [sys.executable, "-m", "hybrid", "render", str(SCENES / "bouncing_balls.yaml"),
         "--out", str(tmp_path / "clip"), "--frames", "2", "--resolution", "32x32", "-q"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 5
    assert "Traceback" not in proc.stderr and "PYOPENGL_PLATFORM='nonsense'" in proc.stderr
    assert not (tmp_path / "clip").exists()


def test_schema_out_writes_a_file_editors_can_use(tmp_path, capsys):
    target = tmp_path / "scene.schema.json"
    assert main(["schema", "--out", str(target)]) == 0
    schema = json.loads(target.read_text())
    assert schema["$schema"].startswith("https://json-schema.org/") and "objects" in schema["properties"]
    assert str(target) in capsys.readouterr().out
