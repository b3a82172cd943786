"""Signed distances, velocities and impulse sums of rigid bodies as fluid boundaries, checked by hand."""

import math

import numpy as np
import pytest

from hybrid.fields import backend

backend.ensure("cpu", True)

from hybrid.fields.colliders import Colliders, collider_shape, ti  # noqa: E402
from hybrid.scene.spec import ObjectSpec  # noqa: E402


def _obj(shape, **kw):
    return ObjectSpec.model_validate({"name": "o", "shape": shape, **kw})


@ti.data_oriented
class _Probe:
    def __init__(self, colliders, points):
        self.c = colliders
        self.n = len(points)
        self.p = ti.Vector.field(3, ti.f32, self.n)
        self.p.from_numpy(np.asarray(points, np.float32))
        self.d = ti.field(ti.f32, self.n)
        self.nrm = ti.Vector.field(3, ti.f32, self.n)
        self.v = ti.Vector.field(3, ti.f32, self.n)

    @ti.kernel
    def run(self, b: ti.i32):
        for i in range(self.n):
            self.d[i] = self.c.sdf(b, self.p[i])
            self.nrm[i] = self.c.normal(b, self.p[i])
            self.v[i] = self.c.velocity(b, self.p[i])

    @ti.kernel
    def push(self, b: ti.i32):
        for i in range(self.n):
            self.c.add_impulse(b, self.p[i], ti.Vector([0.0, 0.0, 1.0]))


def _colliders(objs, receives=None):
    shapes = [collider_shape(o) for o in objs]
    return Colliders(shapes, receives or [True] * len(objs))


def _place(c, position, quat=(0, 0, 0, 1), lin=(0, 0, 0), ang=(0, 0, 0), com=None):
    c.set_state(np.array([position]), np.array([quat]), np.array([lin]), np.array([ang]), np.array([com or position]))


def test_sphere_distance_normal_and_rigid_velocity():
    c = _colliders([_obj({"type": "sphere", "radius": 0.5})])
    _place(c, (1.0, 2.0, 3.0), lin=(1.0, 0.0, 0.0), ang=(0.0, 0.0, 2.0))
    pts = [(1.0, 2.0, 3.0 + 2.0), (1.0 + 0.3, 2.0, 3.0), (1.0, 2.0 + 1.0, 3.0)]
    probe = _Probe(c, pts)
    probe.run(0)
    assert probe.d.to_numpy() == pytest.approx([1.5, -0.2, 0.5], abs=1e-5)
    assert probe.nrm.to_numpy()[0] == pytest.approx([0, 0, 1], abs=1e-3)
    # v = v0 + w x r: at r = (0, 1, 0), w = (0, 0, 2): w x r = (-2, 0, 0).
    assert probe.v.to_numpy()[2] == pytest.approx([1.0 - 2.0, 0, 0], abs=1e-5)


def test_rotated_box_distance():
    c = _colliders([_obj({"type": "box", "size": [2.0, 1.0, 0.5]})])
    # 90 degrees about z: the box's x extent (half 1.0) lies along world y.
    s = math.sqrt(0.5)
    _place(c, (0.0, 0.0, 0.0), quat=(0.0, 0.0, s, s))
    probe = _Probe(c, [(0.0, 1.5, 0.0), (1.5, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 1.0 + 3.0, 0.25 + 4.0)])
    probe.run(0)
    assert probe.d.to_numpy() == pytest.approx([0.5, 1.0, -0.25, 5.0], abs=1e-5)


def test_capsule_cylinder_and_plane():
    objs = [
        _obj({"type": "capsule", "radius": 0.2, "length": 1.0}),
        _obj({"type": "cylinder", "radius": 0.2, "length": 1.0}),
        _obj({"type": "plane"}, physics={"body": "static"}),
    ]
    c = _colliders(objs)
    n = 3
    c.set_state(np.zeros((n, 3)), np.tile([0, 0, 0, 1.0], (n, 1)), np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 3)))
    pts = [(0.0, 0.0, 0.5 + 0.2 + 0.3), (0.5, 0.0, 0.0), (0.3 + 0.2, 0.0, 0.5 + 0.1)]
    probe = _Probe(c, pts)
    probe.run(0)  # capsule: cap tip at z = 0.7
    assert probe.d.to_numpy()[:2] == pytest.approx([0.3, 0.3], abs=1e-5)
    probe.run(1)  # cylinder: corner distance sqrt(0.3^2 + 0.1^2) for the third point
    assert probe.d.to_numpy()[1:] == pytest.approx([0.3, math.hypot(0.3, 0.1)], abs=1e-5)
    probe.run(2)
    assert probe.d.to_numpy() == pytest.approx([p[2] for p in pts], abs=1e-6)


def test_mesh_hull_is_exact_inside_and_on_faces(tmp_path):
    import trimesh

    path = tmp_path / "cube.obj"
    trimesh.creation.box(extents=(1.0, 1.0, 1.0)).export(path)
    obj = _obj({"type": "mesh", "file": str(path)})
    c = _colliders([obj])
    _place(c, (0.0, 0.0, 0.0))
    probe = _Probe(c, [(0.0, 0.0, 0.0), (0.0, 0.0, 0.7), (0.2, 0.1, -0.45)])
    probe.run(0)
    assert probe.d.to_numpy() == pytest.approx([-0.5, 0.2, -0.05], abs=1e-5)


def test_impulses_sum_with_torque_about_com_and_respect_receives():
    objs = [_obj({"type": "sphere", "radius": 0.5}), _obj({"type": "sphere", "radius": 0.5})]
    c = _colliders(objs, receives=[True, False])
    c.set_state(np.zeros((2, 3)), np.tile([0, 0, 0, 1.0], (2, 1)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))
    probe = _Probe(c, [(1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)])
    probe.push(0)
    probe.push(1)
    lin, ang = c.take_impulses()
    assert lin[0] == pytest.approx([0, 0, 3.0])
    # r x J: (1,0,0)x(0,0,1) = (0,-1,0); (-1,0,0)x(0,0,1) = (0,1,0); (0,1,0)x(0,0,1) = (1,0,0)
    assert ang[0] == pytest.approx([1.0, 0.0, 0.0])
    assert not lin[1].any() and not ang[1].any()
    lin, _ = c.take_impulses()
    assert not lin.any()


def test_advance_moves_and_rotates():
    c = _colliders([_obj({"type": "box", "size": [2.0, 0.2, 0.2]})])
    _place(c, (0.0, 0.0, 0.0), lin=(1.0, 0.0, 0.0), ang=(0.0, 0.0, math.pi / 2))
    for _ in range(100):
        c.advance(0.01)
    # After 1 s: moved 1 m along x, turned 90 degrees about z: the long axis lies along y.
    probe = _Probe(c, [(1.0, 0.9, 0.0), (1.9, 0.0, 0.0)])
    probe.run(0)
    d = probe.d.to_numpy()
    assert d[0] < 0 and d[1] > 0.7
