"""Contact events: the compiled and the NumPy point scans agree, and the reduction means what it says.

Physics checks of impulses (impulse-momentum theorem, resting weight) live in
test_physics.py; here: the per-step scan, the first-step position of an impact,
and pairs that pybullet lists both ways round.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from hybrid.physics import contacts
from hybrid.physics.contacts import ContactAccumulator, scan_step_numpy
from hybrid.scene.spec import Scene
from hybrid.world import World

G = 9.81


def point(a: int, b: int, force: float, on_b=(0.0, 0.0, 0.0), normal=(0.0, 0.0, 1.0), distance=0.0) -> tuple:
    """A tuple laid out as pybullet's getContactPoints gives one point (links -1, no friction data)."""
    on_a = tuple(p + distance * n for p, n in zip(on_b, normal))
    return (0, a, b, -1, -1, on_a, tuple(on_b), tuple(normal), distance, force, 0.0, (1.0, 0.0, 0.0), 0.0, (0.0, 1.0, 0.0))


def _c_compiler() -> str | None:
    """The C compiler setuptools builds _contact_scan.c with at install time, if this machine has one."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("cc")


NO_COMPILED_SCAN = (
    "hybrid.physics._contact_scan is not built (hybrid was installed without a C compiler): "
    "contacts use scan_step_numpy, which the other tests here check"
)
needs_compiled_scan = pytest.mark.skipif(not contacts.ACCELERATED, reason=NO_COMPILED_SCAN)


def test_the_compiled_scan_is_built():
    """`make setup` compiles _contact_scan.c where a C compiler is installed; without it contacts are slower."""
    if not contacts.ACCELERATED and _c_compiler() is None:
        pytest.skip("no C compiler on this machine: " + NO_COMPILED_SCAN)
    assert contacts.ACCELERATED, "hybrid.physics._contact_scan did not compile: reinstall with a C compiler present"


def _buffers(rows: int) -> list[np.ndarray]:
    """new_a, new_b, new_force, new_step, position, normal for `rows` rows."""
    return [np.zeros(rows, np.int64), np.zeros(rows, np.int64), np.zeros(rows), np.zeros(rows, np.int64), np.zeros(3 * rows), np.zeros(3 * rows)]


def _scan_both(points: tuple, stride: int, seen: np.ndarray, force_sum: np.ndarray, offset: int = 2):
    """Both scans on copies of the tables, writing after `offset` rows already in the buffers."""
    outs = []
    for scan in (contacts.scan_step, scan_step_numpy):
        s, f = seen.copy(), force_sum.copy()
        bufs = _buffers(offset + len(points))
        k = scan(points, stride, s, f, 7, offset, *bufs)
        for i, x in enumerate(bufs):  # rows before `offset` are left alone
            assert not x[: 3 * offset if i >= 4 else offset].any()
        outs.append((k, s, f, [x[3 * offset : 3 * (offset + k)] if i >= 4 else x[offset : offset + k] for i, x in enumerate(bufs)]))
    return outs


def test_scans_agree_on_edge_cases():
    """Zero force, bodies outside the table, a pair already seen, a new pair with two points."""
    stride = 4
    seen = np.zeros(stride * stride, np.uint8)
    seen[1 * stride + 2] = 1  # (1, 2) already pushed this frame
    force_sum = np.zeros(stride * stride)
    points = (
        point(1, 2, 5.0),  # seen: summed, not copied
        point(0, 3, 0.0, on_b=(9, 9, 9)),  # no force: ignored
        point(0, 3, 2.0, on_b=(1, 2, 3), normal=(0, 1, 0), distance=-0.01),
        point(7, 1, 4.0),  # body 7 is outside the table: skipped
        point(0, 3, 6.0, on_b=(3, 2, 1), normal=(0, 0, -1), distance=0.02),
    )
    (k, s, f, out), (k2, s2, f2, out2) = _scan_both(points, stride, seen, force_sum)
    assert k == k2 == 2
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(f, f2)
    for x, y in zip(out, out2):
        np.testing.assert_array_equal(x, y)
    assert f[1 * stride + 2] == 5.0 and f[0 * stride + 3] == 8.0 and f.sum() == 13.0
    assert s[0 * stride + 3] == 1
    a, b, force, step, position, normal = out
    assert a.tolist() == [0, 0] and b.tolist() == [3, 3] and force.tolist() == [2.0, 6.0] and step.tolist() == [7, 7]
    # Midway between the surfaces: on_b + distance / 2 * normal.
    np.testing.assert_allclose(position.reshape(2, 3), [[1, 1.995, 3], [3, 2, 0.99]], atol=1e-15)
    np.testing.assert_array_equal(normal.reshape(2, 3), [[0, 1, 0], [0, 0, -1]])


def test_scans_reject_what_is_not_a_contact_tuple():
    for scan in (contacts.scan_step, scan_step_numpy):
        with pytest.raises((TypeError, IndexError)):
            scan(((1, 2),), 4, np.zeros(16, np.uint8), np.zeros(16), 0, 0, *_buffers(1))


@needs_compiled_scan
def test_compiled_scan_refuses_buffers_too_small():
    with pytest.raises(ValueError, match="new_a"):
        contacts.scan_step((point(0, 1, 1.0),), 2, np.zeros(4, np.uint8), np.zeros(4), 0, 1, *_buffers(1))


def test_pair_listed_both_ways_adds_up_and_takes_the_earlier_steps_point():
    """pybullet may list a pair (A, B) and later (B, A): one contact, impulses summed, first step's position."""
    acc = ContactAccumulator(["ball", "box"], [5, 6], [True, True], impulse_per_force=0.01)
    acc.add_step((point(5, 6, 10.0, on_b=(1, 0, 0), normal=(-1, 0, 0)),))
    acc.add_step((point(6, 5, 30.0, on_b=(2, 0, 0), normal=(1, 0, 0)),))
    acc.add_step(())
    cs = acc.flush()
    assert cs.pairs.tolist() == [[0, 1]]
    assert cs.impulse_Ns[0] == pytest.approx((10.0 + 30.0) * 0.01, rel=1e-15)
    np.testing.assert_array_equal(cs.position[0], (1, 0, 0))
    np.testing.assert_array_equal(cs.normal[0], (-1, 0, 0))  # first step's normal on B (box = b) towards A (ball = a)
    assert len(acc.flush()) == 0  # the next frame starts empty
    acc.add_step((point(6, 5, 1.0, on_b=(4, 0, 0)),))
    assert acc.flush().position.tolist() == [[4.0, 0.0, 0.0]]  # per-pair tables were cleared


def test_static_pairs_and_unknown_bodies_make_no_contact():
    acc = ContactAccumulator(["floor", "wall"], [0, 1], [False, False], impulse_per_force=0.01)
    acc.add_step((point(0, 1, 3.0),))
    assert len(acc.flush()) == 0


def test_impact_position_is_where_the_ball_first_touched_within_the_frame():
    """A ball thrown sideways lands mid-frame: x_hit = x0 + v_x t_hit, t_hit = sqrt(2 h / g).

    Horizontal flight is exact (no drag); contact is found within one step of the
    continuous time, so the reported point is within v_x dt of x_hit, while the ball
    itself slides on for the rest of the frame (the frame's last step would be several
    steps of travel further on).
    """
    r, h, vx = 0.1, 0.5, 2.0
    scene = Scene.model_validate(
        dict(
            name="throw",
            fps=24,
            frames=14,
            objects=[
                dict(name="floor", shape=dict(type="plane"), physics=dict(body="static", friction=0.0)),
                dict(
                    name="ball",
                    shape=dict(type="sphere", radius=r),
                    position=[0.0, 0.0, r + h],
                    physics=dict(restitution=0.0, friction=0.0, linear_velocity=[vx, 0.0, 0.0]),
                ),
            ],
        )
    )
    with World(scene) as world:
        states = world.run()
    dt = scene.physics_dt
    t_hit = math.sqrt(2 * h / G)
    assert (t_hit / dt) % scene.steps_per_frame > 2, "the impact should fall mid-frame for this test to tell"
    k = next(i for i, s in enumerate(states) if s.contacts)
    assert states[k - 1].time_s < t_hit <= states[k].time_s + dt
    (contact,) = states[k].contacts
    assert abs(contact.position[0] - vx * t_hit) <= vx * dt
    assert states[k].position[1, 0] - contact.position[0] >= 2 * vx * dt  # the ball slid on


@needs_compiled_scan
def test_compiled_and_numpy_contacts_agree_bit_for_bit_in_a_pile():
    """Thirty boxes and balls dropped in a heap: every frame's ContactSet identical with either scan."""
    rng = np.random.default_rng(3)
    objects = [dict(name="floor", shape=dict(type="plane"), physics=dict(body="static"))]
    for i in range(30):
        shape = dict(type="sphere", radius=0.07) if i % 2 else dict(type="box", size=[0.12, 0.1, 0.08])
        xy = rng.uniform(-0.25, 0.25, size=2)
        objects.append(dict(name=f"o{i}", shape=shape, position=[float(xy[0]), float(xy[1]), 0.1 + 0.16 * i]))
    scene = Scene.model_validate(dict(name="heap", fps=24, frames=30, objects=objects))

    def run(scan) -> list:
        with World(scene) as world:
            acc = world._contacts
            world._contacts = ContactAccumulator(
                acc.names, world._ids, acc._moving, acc.impulse_per_force, scan=scan
            )
            return world.run()

    compiled, numpy_ = run(contacts.scan_step), run(scan_step_numpy)
    assert sum(len(s.contact_set) for s in compiled) > 100
    for x, y in zip(compiled, numpy_):
        for field in ("pairs", "position", "normal", "impulse_Ns"):
            np.testing.assert_array_equal(getattr(x.contact_set, field), getattr(y.contact_set, field))


_WITHOUT_COMPILED_SCAN = """
import json, sys
sys.modules["hybrid.physics._contact_scan"] = None  # as if no C compiler had built it: the import fails
from hybrid.physics import contacts
assert not contacts.ACCELERATED and contacts.scan_step is contacts.scan_step_numpy
from hybrid.scene.spec import Scene
from hybrid.world import World
with World(Scene.model_validate(json.loads(sys.argv[1]))) as world:
    assert world._contacts._scan is contacts.scan_step_numpy
    states = world.run()
print(json.dumps([[getattr(s.contact_set, f).tolist() for f in ("pairs", "position", "normal", "impulse_Ns")]
                  for s in states]))
"""


def test_without_the_compiled_module_contacts_fall_back_to_numpy_with_the_same_results():
    """A fresh process where ``_contact_scan`` cannot be imported: contacts.py falls back to
    scan_step_numpy, a World steps with it, and (where the compiled scan exists here) every
    frame's contacts equal the compiled scan's bit for bit (floats survive JSON exactly)."""
    objects = [dict(name="floor", shape=dict(type="plane"), physics=dict(body="static"))]
    for i in range(8):
        shape = dict(type="sphere", radius=0.07) if i % 2 else dict(type="box", size=[0.12, 0.1, 0.08])
        objects.append(dict(name=f"o{i}", shape=shape, position=[0.03 * (i % 3), -0.02 * (i % 2), 0.1 + 0.16 * i]))
    scene = dict(name="fallback", fps=24, frames=24, objects=objects)
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_COMPILED_SCAN, json.dumps(scene)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    numpy_frames = json.loads(proc.stdout.splitlines()[-1])
    assert sum(len(pairs) for pairs, *_ in numpy_frames) > 20
    if not contacts.ACCELERATED:
        pytest.skip("compared with nothing: " + NO_COMPILED_SCAN)
    with World(Scene.model_validate(scene)) as world:
        assert world._contacts._scan is contacts.scan_step
        states = world.run()
    assert len(states) == len(numpy_frames)
    for s, theirs in zip(states, numpy_frames):
        mine = [getattr(s.contact_set, f).tolist() for f in ("pairs", "position", "normal", "impulse_Ns")]
        assert mine == theirs
