"""Per-frame contacts: pybullet's contact points of every step, summed per pair of objects.

pybullet reports, after each step, the points of every touching pair with the
normal force that step applied (``normalForce`` = impulse / step). A frame spans
several steps, so we copy each step's points into arrays and reduce them once per
frame with NumPy:

- impulse_Ns: sum over points and steps of normalForce * dt;
- position: impulse-weighted mean of the points midway between the two surfaces
  (B's surface point plus half the signed distance along the normal);
- normal: impulse-weighted mean of the unit normals, re-normalised, pointing from b to a;
- a and b ordered by scene order, the list sorted by (a, b) in scene order.

Points that pushed with no force (pybullet also lists pairs closer than its contact
margin) make no contact. With ``physics.substeps`` > 1 pybullet keeps only the last
substep's points, so each step's impulse is that substep's times the substep count:
exact for steady contacts, an estimate for an impact that starts mid-step.
"""

from __future__ import annotations

from itertools import chain, compress
from operator import itemgetter
from typing import Sequence

import numpy as np

from hybrid.state import Contact

# Fields of a pybullet contact-point tuple.
_BODY_A, _BODY_B = itemgetter(1), itemgetter(2)
_POS_ON_B, _NORMAL_ON_B, _DISTANCE, _FORCE = itemgetter(6), itemgetter(7), itemgetter(8), itemgetter(9)
_flatten = chain.from_iterable


class ContactAccumulator:
    """Collects pybullet contact points step by step and reduces them to ``Contact`` tuples per frame."""

    def __init__(self, names: Sequence[str], body_ids: Sequence[int], moving: Sequence[bool], impulse_per_force: float):
        """`names`/`body_ids`/`moving` per object in scene order; `impulse_per_force` = seconds per step's force.

        `moving` marks dynamic and kinematic objects; a pair of two non-moving objects
        never collides in Bullet and is ignored.
        """
        self.names = tuple(names)
        ids = np.asarray(body_ids, dtype=np.int64)
        self._index_of_body = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, dtype=np.int64)
        self._index_of_body[ids] = np.arange(len(ids))
        self._moving = np.asarray(moving, dtype=bool)
        self.impulse_per_force = float(impulse_per_force)
        self._steps: list[tuple[np.ndarray, ...]] = []

    def add_step(self, points: tuple) -> None:
        """Take the tuple ``p.getContactPoints()`` returned after one step.

        Its numbers are copied into arrays at once and the tuples dropped: keeping a
        frame's worth of them (~30 Python objects per point) alive makes the garbage
        collector rescan them over and over.
        """
        if not points:
            return
        # C-level iterators only (map, itemgetter, chain, fromiter): a pile of 100
        # bodies has ~300 points per step, and a Python loop over them would cost a
        # good part of the physics step itself.
        force = np.fromiter(map(_FORCE, points), dtype=np.float64, count=len(points))
        keep = force > 0.0
        if not keep.all():
            points = list(compress(points, keep.tolist()))
            force = force[keep]
        n = len(points)
        if n == 0:
            return
        self._steps.append(
            (
                force,
                np.fromiter(map(_BODY_A, points), dtype=np.int64, count=n),
                np.fromiter(map(_BODY_B, points), dtype=np.int64, count=n),
                np.fromiter(map(_DISTANCE, points), dtype=np.float64, count=n),
                np.fromiter(_flatten(map(_POS_ON_B, points)), dtype=np.float64, count=3 * n),
                np.fromiter(_flatten(map(_NORMAL_ON_B, points)), dtype=np.float64, count=3 * n),
            )
        )

    def flush(self) -> tuple[Contact, ...]:
        """The frame's contacts since the last flush, in deterministic (a, b) scene order."""
        steps, self._steps = self._steps, []
        if not steps:
            return ()
        force, body_a, body_b, distance, on_b, normal = (np.concatenate(col) for col in zip(*steps))
        n = len(force)
        on_b, normal = on_b.reshape(n, 3), normal.reshape(n, 3)
        # Midway between the surfaces: B's surface point moved half the signed distance along the normal.
        position = on_b + (0.5 * distance)[:, None] * normal

        ia = self._index_of_body[body_a]
        ib = self._index_of_body[body_b]
        swap = ia > ib  # order each pair by scene index; pybullet's normal points from its B to its A
        first = np.where(swap, ib, ia)
        second = np.where(swap, ia, ib)
        normal[swap] *= -1.0
        valid = (first >= 0) & (self._moving[first] | self._moving[second])
        impulse = force * self.impulse_per_force

        names_n = len(self.names)
        keys = np.where(valid, first * names_n + second, -1)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        start = int(np.searchsorted(keys, 0))  # invalid rows (-1) sort to the front
        if start == n:
            return ()
        order, keys = order[start:], keys[start:]
        w = impulse[order][:, None]
        weighted = np.concatenate([w, position[order] * w, normal[order] * w], axis=1)
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sums = np.add.reduceat(weighted, bounds, axis=0)  # per pair: impulse, sum w*pos, sum w*normal
        total = sums[:, 0]
        mean_pos = sums[:, 1:4] / total[:, None]
        length = np.linalg.norm(sums[:, 4:7], axis=1, keepdims=True)
        unit = sums[:, 4:7] / np.where(length > 0, length, 1.0)

        # One tolist() per array and a comprehension: ~150 pairs a frame in a pile, and
        # per-element NumPy scalar conversions would cost more than the reduction above.
        names = self.names
        firsts, seconds = np.divmod(keys[bounds], names_n)
        return tuple(
            Contact(a=names[a], b=names[b], position=tuple(pos), normal=tuple(nrm), impulse_Ns=imp)
            for a, b, pos, nrm, imp in zip(
                firsts.tolist(), seconds.tolist(), mean_pos.tolist(), unit.tolist(), total.tolist()
            )
        )
