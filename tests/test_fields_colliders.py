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

    @ti.kernel
    def push_each(self, b: ti.i32, J: ti.types.ndarray(dtype=ti.math.vec3, ndim=1)):
        for i in range(self.n):
            self.c.add_impulse(b, self.p[i], J[i])


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


def test_impulse_sums_are_exact_and_independent_of_order():
    """The accumulators are integers of 2^-40 N s. Contributions that are whole multiples
    of 2^-20 N s need no rounding, so 20,000 of them, added by every thread at once, sum
    to exactly the integer sum (float32 atomics could not: the total needs 35 bits), and
    any order of the same contributions gives the same bits, angular sums included."""
    from hybrid.fields.colliders import IMPULSE_QUANTUM

    c = _colliders([_obj({"type": "sphere", "radius": 0.5})])
    _place(c, (0.0, 0.0, 0.0))
    assert c.fixed_point
    rng = np.random.default_rng(7)
    n = 20000
    k = rng.integers(-(2**20), 2**20, size=(n, 3))
    J = (k * 2.0**-20).astype(np.float32)
    points = rng.uniform(-0.6, 0.6, size=(n, 3))
    results = []
    for order in (np.arange(n), rng.permutation(n), np.arange(n)[::-1]):
        probe = _Probe(c, points[order])
        probe.push_each(0, np.ascontiguousarray(J[order]))
        results.append(c.take_impulses())
    exact = k.sum(axis=0) * 2.0**-20  # integers below 2^53: exact in float64
    assert np.array_equal(results[0][0][0], exact)
    for lin, ang in results[1:]:
        assert np.array_equal(lin, results[0][0]) and np.array_equal(ang, results[0][1])
    # Torque r x J is made in float32 before it is rounded to quanta: within float32's rounding
    # of each product (|r x J| <= 1.04 * 1, relative 2^-23 each) of the float64 sum.
    torque = np.cross(points, J.astype(np.float64)).sum(axis=0)
    assert np.abs(results[0][1][0] - torque).max() < n * 1.04 * 2.0**-22
    # Each contribution is rounded to the nearest quantum: a quarter of one is lost, three quarters make one.
    probe = _Probe(c, [(0.0, 0.0, 0.0)])
    probe.push_each(0, np.array([[IMPULSE_QUANTUM / 4, 3 * IMPULSE_QUANTUM / 4, -3 * IMPULSE_QUANTUM / 4]], np.float32))
    lin, _ = c.take_impulses()
    assert list(lin[0]) == [0.0, IMPULSE_QUANTUM, -IMPULSE_QUANTUM]


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
