"""The shipped neural renderer (checkpoints/neural_pt) on a real scene at two sizes.

The model works at a fixed pixel count (its config's resolution, shaped to the
clip's aspect) and its correction to the raster frame is brought to the clip's
resolution by the buffers (``output: detail_transfer``), so one checkpoint serves
any size: this checks that 320x180 and 640x360 give the same picture.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.neural.sampler import DEFAULT_CHECKPOINT, NeuralRenderer
from hybrid.pipeline import render_clip
from hybrid.scene import load_scene
from tests.conftest import REPO

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not (DEFAULT_CHECKPOINT / "model.safetensors").exists(), reason="no default checkpoint in this copy"),
]


def _area_halve(frames: np.ndarray) -> np.ndarray:
    """float (T, H/2, W/2, C): the mean of each 2x2 block."""
    f = frames.astype(np.float64)
    t, h, w, c = f.shape
    return f.reshape(t, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def test_one_checkpoint_gives_the_same_picture_at_two_sizes():
    renderer = NeuralRenderer.from_checkpoint(DEFAULT_CHECKPOINT)
    made = {}
    for width, height in ((320, 180), (640, 360)):
        scene = load_scene(REPO / "scenes" / "bouncing_balls.yaml", {"frames": 8, "resolution": [width, height]})
        clip = render_clip(scene)
        frames = renderer.render(clip.buffers, clip.metadata, seed=0)
        assert frames.shape == (8, height, width, 3) and frames.dtype == np.uint8
        made[width] = (clip.buffers["rgb"], frames)
    raster_small, neural_small = (f.astype(np.float64) for f in made[320])
    raster_big, neural_big = (_area_halve(f) for f in made[640])
    # The output is the raster frame plus the model's correction. The model sees the
    # same pixel count at both sizes, its inputs area-averaged from the two raster
    # passes, so the corrections can differ only as much as those inputs do: by the
    # raster's own change between the sizes (anti-aliasing, shadow-map and texture
    # sampling), plus one 8-bit level for rounding the two outputs.
    correction_gap = np.abs((neural_big - raster_big) - (neural_small - raster_small)).mean()
    raster_gap = np.abs(raster_big - raster_small).mean()
    assert correction_gap <= raster_gap + 1.0, (correction_gap, raster_gap)
    # And the model does something: its correction is not zero.
    assert np.abs(neural_small - raster_small).mean() > 1.0
