"""Every bad input either works or gets a one-line, located error with the README's exit code.

Each case runs the command as a user types it and checks four things: the exit
code, that the message names the file and the place, that no traceback is
printed, and that nothing is left in --out. Bad scenes one by one are in
test_validate_parity.py; here are command-line flags, recipes, checkpoints, the
runtime failures (a solver that gives up mid-run, a full disk, an unusable --out),
folder mode, and kills during a render.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hybrid.cli import ERROR_TABLE, main

from conftest import REPO, SCENES

BALLS = str(SCENES / "bouncing_balls.yaml")
TINY = ["--frames", "2", "--resolution", "32x24", "-q"]


def run(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `hybrid ARGV` in this process; argparse's own exits included."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse refuses a flag with exit 2 and its usage line
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def assert_clean_failure(code: int, text: str, expected_code: int, *phrases: str) -> None:
    assert code == expected_code, text
    assert "Traceback" not in text, text
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in:\n{text}"


def leftovers(folder: Path) -> list[str]:
    """Everything in `folder`, hidden partials included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_every_error_class_in_the_exit_code_table_exists():
    """The table names classes instead of importing them; a rename must not silently drop an exit code."""
    import importlib

    for name, _code, _lead in ERROR_TABLE:
        module, cls = name.rsplit(".", 1)
        assert isinstance(getattr(importlib.import_module(module), cls), type), name


# ---------------------------------------------------------------- command-line flags

FLAGS = [
    # (case, argv after the command, exit code, phrases the message must hold)
    ("render frames 0", ["render", BALLS, "--frames", "0"], 2, ["frames", "at least 1"]),
    ("render frames negative", ["render", BALLS, "--frames", "-4"], 2, ["frames"]),
    ("render resolution not WxH", ["render", BALLS, "--resolution", "big"], 2, ["--resolution", "WIDTHxHEIGHT"]),
    ("render resolution zero", ["render", BALLS, "--resolution", "0x24"], 2, ["resolution[0]", "from 8"]),
    ("render seed negative", ["render", BALLS, "--seed", "-1"], 2, ["seed", "at least 0"]),
    ("render steps zero", ["render", BALLS, "--renderer", "neural", "--steps", "0"], 2, ["--steps"]),
    ("render unknown renderer", ["render", BALLS, "--renderer", "magic"], 2, ["--renderer", "magic"]),
    ("render compare without neural", ["render", BALLS, "--compare"], 2, ["--renderer neural"]),
    ("render missing scene", ["render", "no/such/scene.yaml"], 2, ["no/such/scene.yaml"]),
    ("generate clips zero", ["dataset", "generate", "datasets/movi_a.yaml", "--clips", "0"], 2, ["--clips"]),
    ("generate workers zero", ["dataset", "generate", "datasets/movi_a.yaml", "--clips", "1", "--workers", "0"], 2,
     ["--workers"]),
    ("generate seed negative", ["dataset", "generate", "datasets/movi_a.yaml", "--clips", "1", "--seed", "-1"], 2,
     ["--seed"]),
    ("generate shard size zero",
     ["dataset", "generate", "datasets/movi_a.yaml", "--clips", "1", "--clips-per-shard", "0"], 2,
     ["--clips-per-shard"]),
    ("generate unknown compression",
     ["dataset", "generate", "datasets/movi_a.yaml", "--clips", "1", "--compression", "zip"], 2, ["--compression"]),
    ("generate missing recipe", ["dataset", "generate", "datasets/nothing.yaml", "--clips", "1"], 2,
     ["datasets/nothing.yaml"]),
    ("eval clips zero", ["eval", "checkpoints/neural_pt", "nowhere", "--clips", "0"], 2, ["--clips"]),
]


@pytest.mark.parametrize("case, argv, expected, phrases", FLAGS, ids=[c[0] for c in FLAGS])
def test_bad_flags_are_refused_before_any_work(tmp_path, capsys, monkeypatch, case, argv, expected, phrases):
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    code, text = run(_with_out(argv, out), capsys)
    assert_clean_failure(code, text, expected, *phrases)
    assert not out.exists()


def _with_out(argv: list[str], out: Path) -> list[str]:
    if argv[0] == "eval":
        return [*argv, "--out", str(out / "EVAL.md"), "-q"]
    return [*argv, "--out", str(out), "-q"]


# ---------------------------------------------------------------- recipes

RECIPE_OBJECTS = """
objects:
  count: 1
  shapes: [{type: sphere, size: 0.3}]
"""

RECIPES = [
    # (case, recipe text, where the message must point)
    ("misspelled key", "name: r\nclip: {frames: 2, resoluton: [32, 32]}\n" + RECIPE_OBJECTS, ":2:", "resolution"),
    ("wrong type", "name: r\nclip: {frames: two}\n" + RECIPE_OBJECTS, ":2:", "clip.frames"),
    ("not a mapping", "- a\n- b\n", ":1:", "mapping"),
    ("empty file", "", ":1:", "objects"),
    ("YAML syntax error", "name: r\nclip: {frames: 2\n" + RECIPE_OBJECTS, ":", "YAML"),
    ("missing mesh", "name: r\nobjects:\n  count: 1\n  shapes: [{type: mesh, file: nowhere.obj, size: 0.3}]\n",
     ":4:", "nowhere.obj"),
    ("deeply nested", "name: r\nextra: " + "[" * 400 + "]" * 400 + "\n" + RECIPE_OBJECTS, ":", "extra"),
]


@pytest.mark.parametrize("case, text, where, phrase", RECIPES, ids=[c[0] for c in RECIPES])
def test_bad_recipes_are_located_and_write_nothing(tmp_path, capsys, case, text, where, phrase):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    out = tmp_path / "data"
    code, message = run(["dataset", "generate", str(recipe), "--out", str(out), "--clips", "1", "--workers", "1", "-q"],
                        capsys)
    assert_clean_failure(code, message, 2, f"{recipe}{where}", phrase)
    assert not out.exists()


# ---------------------------------------------------------------- checkpoints


def _damage_config(ckpt: Path) -> None:
    (ckpt / "config.json").write_text("{ not json")


def _wrong_config_field(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["base_channels"] = "many"
    (ckpt / "config.json").write_text(json.dumps(cfg))


def _truncate_weights(ckpt: Path) -> None:
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])


def _empty_weights(ckpt: Path) -> None:
    (ckpt / "model.safetensors").write_bytes(b"")


def _no_weights(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()


def _a_pickle_instead(ckpt: Path) -> None:
    import pickle

    (ckpt / "model.safetensors").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))


def _other_architecture(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["base_channels"] = cfg["base_channels"] * 2
    (ckpt / "config.json").write_text(json.dumps(cfg))


CHECKPOINTS = [
    ("config not JSON", _damage_config, "config.json"),
    ("config field of the wrong type", _wrong_config_field, "base_channels"),
    ("weights truncated", _truncate_weights, "model.safetensors"),
    ("weights empty", _empty_weights, "model.safetensors"),
    ("weights missing", _no_weights, "model.safetensors"),
    ("a pickle in place of safetensors", _a_pickle_instead, "model.safetensors"),
    ("weights of another architecture", _other_architecture, "model.safetensors"),
]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised tiny checkpoint: damage tests need its files, not its quality."""
    import torch

    from hybrid.neural.checkpoint import save_checkpoint
    from hybrid.neural.config import NeuralConfig
    from hybrid.neural.model import VideoDenoiser

    config = NeuralConfig(resolution=(16, 16), window=2, context_frames=1, base_channels=8, channel_mults=(1, 2),
                          res_blocks=1, attention_heads=2, groups=4)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    return save_checkpoint(path, VideoDenoiser(config), config, {"note": "random weights, for tests"})


@pytest.mark.parametrize("case, damage, phrase", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_damaged_checkpoints_are_refused_before_rendering(tmp_path, capsys, tiny_checkpoint, case, damage, phrase):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    damage(ckpt)
    out = tmp_path / "clip"
    code, text = run(["render", BALLS, "--out", str(out), "--renderer", "neural", "--checkpoint", str(ckpt), *TINY],
                     capsys)
    assert_clean_failure(code, text, 6, str(ckpt), phrase)
    assert not out.exists()


# ---------------------------------------------------------------- runtime failures

FAST_FIRE = """
name: fast_fire
fps: 24
frames: 24
resolution: [32, 24]
camera: {position: [0, -2.4, 0.9], look_at: [0, 0, 0.6]}
objects:
  - {name: ground, shape: {type: plane, size: [4, 4]}, physics: {body: static}}
fields:
  gas:
    domain: {min: [-0.5, -0.5, 0.0], max: [0.5, 0.5, 1.0]}
    resolution: 12
    max_substeps: 1
    emitters:
      - {shape: box, center: [0, 0, 0.2], size: [0.4, 0.4, 0.1], fuel: 8.0, temperature: 600, heating: 60,
         velocity: [0, 0, 0.4]}
    combustion: {ignition_temperature: 150, burn_rate: 10, heat: 700, smoke: 0.4}
"""


@pytest.mark.slow  # a gas run until it outgrows max_substeps; the solver's own CFL error is fast in test_fields_gas
def test_a_gas_that_speeds_up_mid_run_stops_with_exit_3(tmp_path, capsys):
    """Buoyant fire accelerates until one CFL substep per frame is not enough: a located stop, not a traceback."""
    scene = tmp_path / "fire.yaml"
    scene.write_text(FAST_FIRE)
    out = tmp_path / "clip"
    code, text = run(["render", str(scene), "--out", str(out), "-q"], capsys)
    assert_clean_failure(code, text, 3, f"{scene}: simulation stopped", "max_substeps")
    assert leftovers(tmp_path) == ["fire.yaml"]


def test_a_body_that_blows_up_stops_with_exit_3(tmp_path, capsys):
    scene = tmp_path / "fast.yaml"
    scene.write_text(_with_max_speed(0.05))
    out = tmp_path / "clip"
    code, text = run(["render", str(scene), "--out", str(out), *TINY], capsys)
    assert_clean_failure(code, text, 3, f"{scene}: simulation stopped", "max_speed")
    assert leftovers(tmp_path) == ["fast.yaml"]


def _with_max_speed(speed: float) -> str:
    """A ball dropped from 1 m: it passes `speed` m/s within the first frame (v = g t)."""
    return textwrap.dedent(f"""
        name: drop
        physics: {{max_speed: {speed}}}
        camera: {{position: [0, -3, 1], look_at: [0, 0, 0.5]}}
        objects:
          - {{name: floor, shape: {{type: plane, size: [4, 4]}}, physics: {{body: static}}}}
          - {{name: ball, shape: {{type: sphere, radius: 0.1}}, position: [0, 0, 1]}}
    """)


def test_out_under_a_file_fails_with_exit_4_before_the_render(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")

    def no_render(*args, **kwargs):
        raise AssertionError("rendered although --out cannot be used")

    monkeypatch.setattr("hybrid.pipeline.render_clip", no_render)
    code, text = run(["render", BALLS, "--out", str(blocker / "clip"), *TINY], capsys)
    assert_clean_failure(code, text, 4, str(blocker))
    assert blocker.read_text() == "mine" and leftovers(tmp_path) == ["a_file"]


WRITERS = [
    # (command, argv with OUT for the unusable output path); each must refuse before its work
    ("dataset generate", ["dataset", "generate", "datasets/movi_a.yaml", "--clips", "1", "--workers", "1",
                          "--out", "OUT", "-q"]),
    ("schema", ["schema", "--out", "OUT"]),
    ("eval", ["eval", "checkpoints/neural_pt", "nowhere", "--out", "OUT", "-q"]),
    ("dataset preview", ["dataset", "preview", "nowhere", "--out", "OUT"]),
]


@pytest.mark.parametrize("command, argv", WRITERS, ids=[c[0] for c in WRITERS])
def test_every_command_refuses_an_output_under_a_file_with_exit_4(tmp_path, capsys, monkeypatch, command, argv):
    monkeypatch.chdir(REPO)
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    target = str(blocker / "out")
    code, text = run([target if a == "OUT" else a for a in argv], capsys)
    assert_clean_failure(code, text, 4, str(blocker))
    assert blocker.read_text() == "mine" and leftovers(tmp_path) == ["a_file"]


def _file_size_limit(limit: int):
    # Writes past RLIMIT_FSIZE fail with EFBIG (Python ignores SIGXFSZ), the same
    # path through the writer as a full disk, without needing a small file system.
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_write_that_runs_out_of_room_is_exit_4_and_leaves_nothing(tmp_path):
    out = tmp_path / "clip"
    proc = subprocess.run(
        [sys.executable, "-m", "hybrid", "render", BALLS, "--out", str(out), "--frames", "4", "--resolution", "64x48",
         "-q"],
        capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(20_000),
    )
    assert_clean_failure(proc.returncode, proc.stderr, 4, "cannot write", "nothing was left half-written")
    assert leftovers(tmp_path) == []


def test_a_full_disk_is_exit_4_and_leaves_nothing(tmp_path):
    """A real full file system (a 1 MB tmpfs), where this machine lets us mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root and a mount namespace that allows it")
    try:
        proc = subprocess.run(
            # npz storage: several MB for these frames, where compact storage might fit in 1 MB.
            [sys.executable, "-m", "hybrid", "render", BALLS, "--out", str(disk / "clip"), "--frames", "8",
             "--resolution", "320x240", "--storage", "npz", "-q"],
            capture_output=True, text=True, timeout=300,
        )
        assert_clean_failure(proc.returncode, proc.stderr, 4, "No space left on device", "free some space")
        assert leftovers(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_folder_mode_renders_the_rest_and_lists_every_failure(tmp_path, capsys):
    src = tmp_path / "scenes"
    src.mkdir()
    (src / "a_typo.yaml").write_text("name: a\nobjects:\n  - name: x\n    shape: {type: sphere, radius: 0.1}\n"
                                     "    physics: {restitusion: 0.5}\n")
    (src / "b_good.yaml").write_text((SCENES / "bouncing_balls.yaml").read_text())
    (src / "assets").symlink_to(SCENES / "assets")
    (src / "c_blows_up.yaml").write_text(_with_max_speed(0.05))
    out = tmp_path / "out"
    code, text = run(["render", str(src), "--out", str(out), *TINY], capsys)
    assert_clean_failure(code, text, 2, "2 of 3 scenes failed", f"exit 2  {src / 'a_typo.yaml'}",
                         f"exit 3  {src / 'c_blows_up.yaml'}")
    assert leftovers(out) == ["b_good"]
    assert (out / "b_good" / "metadata.json").is_file()


# ---------------------------------------------------------------- kills during a render


def _start_render(out: Path, frames: int = 48) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hybrid", "render", BALLS, "--out", str(out), "--frames", str(frames),
         "--resolution", "96x64", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_partial(parent: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the writer's hidden staging folder exists (the render is done and writing has begun)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(".clip.partial-") for p in parent.iterdir()):
            return
        time.sleep(0.005)


@pytest.mark.slow  # a real render in a child process, signalled mid-write
@pytest.mark.timeout(600)
def test_sigterm_during_a_render_exits_143_and_leaves_the_old_clip(tmp_path):
    out = tmp_path / "clip"
    assert main(["render", BALLS, "--out", str(out), *TINY]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = _start_render(out, frames=1200)  # a minute's work or more: still simulating or drawing when stopped
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert leftovers(tmp_path) == ["clip"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow  # two renders in child processes
@pytest.mark.timeout(600)
def test_sigkill_while_writing_keeps_the_old_clip_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "clip"
    assert main(["render", BALLS, "--out", str(out), *TINY]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = _start_render(out)
    _wait_for_partial(tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=60)
    # The old clip is whole; whatever the kill left is hidden and is removed by the next run.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["render", BALLS, "--out", str(out), *TINY]) == 0
    assert leftovers(tmp_path) == ["clip"]
