"""One render path for scenes and recipes: a scene's `post:` chain, pluggable beauty back ends."""

import json
from pathlib import Path

import numpy as np
import pytest

from hybrid.camera import camera_track
from hybrid.cli import main
from hybrid.io.clip import read_clip
from hybrid.pipeline import render_buffers, render_clip, simulate
from hybrid.render import backends
from hybrid.render.beauty import encode_display
from hybrid.render.post import apply_chain
from hybrid.render.raster import Rasterizer
from hybrid.scene.load import load_scene

REPO = Path(__file__).resolve().parents[1]
SMALL = {"frames": 3, "resolution": [48, 32]}
POST = """
post:
  - {type: exposure, ev: 0.5}
  - {type: vignette, amount: 0.4}
  - {type: tonemap, operator: aces}
  - {type: film_grain, intensity: 0.05}
"""


def _scene_text(post: str = "") -> str:
    text = (REPO / "scenes" / "bouncing_balls.yaml").read_text()
    return text.replace("assets/checker.png", str(REPO / "scenes" / "assets" / "checker.png")) + post


def _load(text: str, tmp_path: Path):
    path = tmp_path / "scene.yaml"
    path.write_text(text)
    return load_scene(path, SMALL), path


def test_a_scene_post_chain_makes_rgb_from_the_hdr_frames(tmp_path):
    """rgb is the chain applied to the beauty pass's radiance, grain seeded (seed, frame); nothing else changes."""
    plain, _ = _load(_scene_text(), tmp_path)
    graded, path = _load(_scene_text(POST), tmp_path)
    assert graded.post is not None and plain.post is None
    a, b = render_clip(plain), render_clip(graded)
    assert not np.array_equal(a.buffers["rgb"], b.buffers["rgb"])
    for name in ("depth", "instance", "normal", "albedo", "flow_fwd", "flow_bwd"):
        assert np.array_equal(a.buffers[name], b.buffers[name]), name
    # The same frames made by hand: the rasteriser's HDR pass and the chain, frame by frame.
    states = simulate(graded)
    track = camera_track(graded)
    with Rasterizer(graded) as raster:
        for k, state in enumerate(states):
            frame = raster.render(state, track.cam_to_world[k], hdr=True)
            want = apply_chain(
                frame["hdr"], graded.post, depth=frame["depth"], K=track.K, rng=np.random.default_rng([graded.seed, k])
            )
            assert np.array_equal(b.buffers["rgb"][k], want), k
    # And through the command line, into a clip folder.
    out = tmp_path / "clip"
    assert main(["render", str(path), "--out", str(out), "--frames", "3", "--resolution", "48x32", "-q"]) == 0
    assert np.array_equal(read_clip(out).buffers["rgb"], b.buffers["rgb"])
    assert json.loads((out / "metadata.json").read_text())["scene_spec"]["post"][0]["type"] == "exposure"


def test_a_scene_without_post_keeps_the_metadata_it_had(tmp_path):
    plain, _ = _load(_scene_text(), tmp_path)
    assert "post" not in plain.model_dump(mode="json")


class _Flat:
    """A toy beauty back end: uniform radiance 0.25 everywhere."""

    def __init__(self, scene):
        self.shape = (scene.height, scene.width, 3)
        self.calls = 0

    def render_hdr(self, state, cam_to_world):
        self.calls += 1
        return np.full(self.shape, 0.25, np.float32)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def flat_backend(monkeypatch):
    monkeypatch.setattr(backends, "BEAUTY_BACKENDS", dict(backends.BEAUTY_BACKENDS))
    backends.register_beauty("flat")(_Flat)
    yield "flat"


def test_a_registered_beauty_back_end_draws_the_frames_and_the_raster_the_rest(tmp_path, flat_backend):
    scene, _ = _load(_scene_text(), tmp_path)
    ref = render_clip(scene)
    flat = render_clip(scene, beauty=flat_backend)
    assert np.all(flat.buffers["rgb"] == encode_display(np.float32([0.25, 0.25, 0.25]))[0])
    for name in ("depth", "instance", "normal", "albedo", "flow_fwd", "flow_bwd"):
        assert np.array_equal(ref.buffers[name], flat.buffers[name]), name


def test_motion_blur_sub_frames_come_from_the_chosen_back_end(tmp_path, flat_backend):
    """Averaging sub-frames of a uniform image gives the same image: the blur used the back end, not the raster."""
    blur = "\npost:\n  - {type: motion_blur, samples: 3, shutter: box, shutter_angle_deg: 180}\n"
    scene, _ = _load(_scene_text(blur), tmp_path)
    states = simulate(scene)
    buffers = render_buffers(scene, states, camera_track(scene), beauty=flat_backend)
    # What the rest of the (empty) chain makes of one uniform frame: its display encoding.
    want = apply_chain(np.full((32, 48, 3), 0.25, np.float32), [], rng=np.random.default_rng(0))
    assert np.all(buffers["rgb"] == want[0, 0])


def test_unknown_back_end_is_refused_with_the_list(tmp_path):
    scene, _ = _load(_scene_text(), tmp_path)
    with pytest.raises(ValueError, match="unknown beauty back end 'mitsuba'; use one of cycles, raster"):
        backends.open_beauty("mitsuba", scene)
