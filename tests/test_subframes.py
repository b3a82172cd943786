"""Sub-frame beauty renders for motion blur: interpolated poses, exact at frame times, blur along the path."""

import math

import numpy as np

from hybrid.pipeline import rasterize, simulate
from hybrid.camera import camera_track
from hybrid.render.post import apply_chain
from hybrid.render.post.motion_blur import accumulate_subframes, subframe_schedule
from hybrid.render.post.spec import MotionBlur
from hybrid.render.subframes import camera_at, interpolate_state, render_beauty_subframes
from hybrid.scene.spec import Scene
from hybrid.state import State


def _scene(frames=3):
    # A white ball sliding along +x at 6 m/s with no gravity, seen from the side on black.
    return Scene.model_validate(
        {
            "name": "slide",
            "fps": 10,
            "frames": frames,
            "resolution": [192, 96],
            "background": [0, 0, 0],
            "physics": {"gravity": [0, 0, 0]},
            "camera": {"position": [0, -4, 0], "look_at": [0, 0, 0], "fov_deg": 40},
            "lights": [{"type": "ambient", "intensity": 1.0}],
            "objects": [
                {"name": "ball", "shape": {"type": "sphere", "radius": 0.4},
                 "position": [-0.6, 0, 0], "physics": {"mass": 1, "linear_velocity": [6, 0, 0]},
                 "look": {"color": "white"}}
            ],
        }
    )


def test_interpolated_state_is_the_linear_and_slerp_midpoint():
    q0 = (0.0, 0.0, 0.0, 1.0)
    q1 = (0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))  # 90 degrees about z
    mk = lambda f, p, q: State(f, f * 0.1, ("a",), np.array([p], float), np.array([q], float), np.zeros((1, 3)), np.zeros((1, 3)))  # noqa: E731
    states = [mk(0, (0, 0, 0), q0), mk(1, (1, 2, 0), q1)]
    mid = interpolate_state(states, 0.5)
    np.testing.assert_allclose(mid.position[0], (0.5, 1.0, 0.0))
    np.testing.assert_allclose(mid.quaternion[0], (0, 0, math.sin(math.pi / 8), math.cos(math.pi / 8)), atol=1e-12)
    assert interpolate_state(states, -3.0) is states[0]  # clamped to the clip
    np.testing.assert_allclose(interpolate_state(states, 7.0).position, states[1].position)


def test_camera_at_integer_times_matches_the_camera_track():
    scene = _scene()
    np.testing.assert_allclose(camera_at(scene, np.arange(3.0)), camera_track(scene).cam_to_world)


def test_a_zero_offset_sub_frame_is_the_plain_hdr_frame():
    scene = _scene()
    states = simulate(scene)
    plain = rasterize(scene, states, camera_track(scene).cam_to_world, hdr=True)["hdr"]
    sub = render_beauty_subframes(scene, states, np.array([0.0]))
    assert sub.dtype == np.float32 and sub.shape == (3, 1, 96, 192, 3)
    np.testing.assert_array_equal(sub[:, 0], plain)


def test_motion_blur_spreads_the_ball_along_its_path_and_keeps_its_light():
    """Box shutter of 180 degrees at 10 fps: the ball moves 6 m/s x 0.05 s = 0.3 m while the shutter is open, smeared along x
    over about that distance, while the total light it reflects stays the same."""
    scene = _scene()
    states = simulate(scene)
    buffers = rasterize(scene, states, camera_track(scene).cam_to_world, hdr=True)
    spec = MotionBlur(samples=8, shutter="box", shutter_angle_deg=180)
    offsets, _ = subframe_schedule(spec)
    sub = render_beauty_subframes(scene, states, offsets)
    sharp = buffers["hdr"][1]
    blurred = accumulate_subframes(sub[1], "box")
    lit_sharp = (sharp.sum(axis=2) > 0.1).any(axis=0).sum()  # image columns the ball covers
    lit_blur = (blurred.sum(axis=2) > 0.1 / 8).any(axis=0).sum()  # seen in at least one of 8 sub-frames
    # 0.3 m of travel seen from 4 m with a 40 degree vertical fov on 96 rows: ~9.9 px.
    px_per_m = 96 / (2 * 4 * math.tan(math.radians(20)))
    travel_px = 0.3 * px_per_m
    assert abs((lit_blur - lit_sharp) - travel_px) <= 2, (lit_blur, lit_sharp, travel_px)
    # Averaging sub-frames in linear light conserves the light the ball sends to the camera.
    assert abs(blurred.sum() - sharp.sum()) / sharp.sum() < 0.05
    # Through the whole chain the frame is valid sRGB bytes.
    chain = [{"type": "motion_blur", "samples": 8, "shutter": "box", "shutter_angle_deg": 180},
             {"type": "tonemap", "operator": "reinhard"}]
    out = apply_chain(sub[1], chain, rng=0)
    assert out.dtype == np.uint8 and out.shape == (96, 192, 3)
    # The exact buffers are untouched: the instance mask is the sharp ball at the frame time.
    assert (buffers["instance"][1] > 0).any(axis=0).sum() <= lit_sharp + 1


def test_sub_frames_across_a_break_show_the_fragments_coming_out_of_the_object():
    """Between the last intact frame and the first broken one, a sub-frame draws the later frame's
    objects (the fragments), posed between their rows: at the start of the interval those rows are
    the object's pose, so the fragments begin exactly where it was."""
    scene = Scene.model_validate(dict(name="t", frames=20, objects=[
        dict(name="floor", shape=dict(type="plane"), physics=dict(body="static")),
        dict(name="box", shape=dict(type="box", size=[0.1, 0.1, 0.1]), position=[0, 0, 0.5],
             physics=dict(mass=0.3, breakable=dict(threshold_Ns=0.2, pieces=6))),
    ]))
    states = simulate(scene)
    (event,) = states[-1].breaks
    a = event.frame - 1
    early = interpolate_state(states, a + 1e-9)
    assert early.present.tolist() == states[a + 1].present.tolist() and early.breaks == states[a + 1].breaks
    for slot in event.fragments:
        np.testing.assert_allclose(early.position[slot], states[a].position[1], atol=1e-9)
    middle = interpolate_state(states, a + 0.5)
    slot = event.fragments[0]
    np.testing.assert_allclose(middle.position[slot], 0.5 * (states[a].position[slot] + states[a + 1].position[slot]))
