"""Per-frame contacts: pybullet's contact points of every step, reduced per pair of objects.

pybullet reports, after each step, the points of every touching pair with the
normal force that step applied (``normalForce`` = impulse / step). For each pair
of objects that pushed on each other during the frame:

- impulse_Ns: sum over all points of all the frame's steps of normalForce * dt, so
  an impact that lasts a single step counts in full;
- position: impulse-weighted mean of the pair's points in the last step of the frame
  in which they touched, each point midway between the two surfaces (B's surface
  point plus half the signed distance along the normal): where they touch at the
  end of the frame, or where they last touched;
- normal: impulse-weighted mean of the same points' unit normals, re-normalised,
  pointing from b to a;
- a and b ordered by scene order, the list sorted by (a, b) in scene order.

Each step's points are kept as pybullet returned them (a reference, no copy) and
read once per frame: the impulses of every point, the positions and normals only of
each pair's last step. That reads a tenth of the fields a per-step copy would, which
matters because a pile of 100 bodies has ~300 points per step.

Points that pushed with no force (pybullet also lists pairs closer than its contact
margin) make no contact. With ``physics.substeps`` > 1 pybullet keeps only the last
substep's points, so each step's impulse is that substep's times the substep count:
exact for steady contacts, an estimate for an impact that starts mid-step.
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Sequence

import numpy as np

from hybrid.state import ContactSet

# Fields of a pybullet contact-point tuple.
_BODY_A, _BODY_B = itemgetter(1), itemgetter(2)
_POS_ON_B, _NORMAL_ON_B, _DISTANCE, _FORCE = itemgetter(6), itemgetter(7), itemgetter(8), itemgetter(9)
_flatten = chain.from_iterable


class ContactAccumulator:
    """Collects pybullet contact points step by step and reduces them to a ``ContactSet`` per frame."""

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
        self._steps: list[tuple] = []  # each step's contact points, as pybullet returned them

    def add_step(self, points: tuple) -> None:
        """Take the tuple ``p.getContactPoints()`` returned after one step (kept until ``flush``)."""
        if points:
            self._steps.append(points)

    def flush(self) -> ContactSet:
        """The frame's contacts since the last flush, in deterministic (a, b) scene order."""
        steps, self._steps = self._steps, []
        if not steps:
            return ContactSet.empty()
        # C-level iterators only (map, itemgetter, fromiter): a Python loop over ~3000
        # points a frame would cost a good part of the physics itself.
        points = list(_flatten(steps))
        n = len(points)
        force = np.fromiter(map(_FORCE, points), dtype=np.float64, count=n)
        body_a = np.fromiter(map(_BODY_A, points), dtype=np.int64, count=n)
        body_b = np.fromiter(map(_BODY_B, points), dtype=np.int64, count=n)
        step = np.repeat(np.arange(len(steps)), [len(s) for s in steps])

        ia = self._index_of_body[body_a]
        ib = self._index_of_body[body_b]
        swap = ia > ib  # order each pair by scene index; pybullet's normal points from its B to its A
        first = np.where(swap, ib, ia)
        second = np.where(swap, ia, ib)
        valid = (force > 0.0) & (first >= 0) & (self._moving[first] | self._moving[second])
        if not valid.any():
            return ContactSet.empty()
        names_n = len(self.names)
        keys = first * names_n + second
        rows = np.flatnonzero(valid)
        rows = rows[np.lexsort((step[rows], keys[rows]))]  # by pair, then by step
        keys_sorted = keys[rows]
        bounds = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
        impulse = force * self.impulse_per_force
        total = np.add.reduceat(impulse[rows], bounds)

        # Positions and normals from each pair's last step with contact.
        pair_of_row = np.repeat(np.arange(len(bounds)), np.diff(np.r_[bounds, len(rows)]))
        last_step = step[rows[np.r_[bounds[1:], len(rows)] - 1]]
        last = rows[step[rows] == last_step[pair_of_row]]
        pair_of_last = pair_of_row[step[rows] == last_step[pair_of_row]]
        picked = [points[i] for i in last.tolist()]
        m = len(picked)
        on_b = np.fromiter(_flatten(map(_POS_ON_B, picked)), dtype=np.float64, count=3 * m).reshape(m, 3)
        normal = np.fromiter(_flatten(map(_NORMAL_ON_B, picked)), dtype=np.float64, count=3 * m).reshape(m, 3)
        distance = np.fromiter(map(_DISTANCE, picked), dtype=np.float64, count=m)
        position = on_b + (0.5 * distance)[:, None] * normal
        normal[swap[last]] *= -1.0
        w = force[last]
        pairs = len(bounds)
        weights = np.bincount(pair_of_last, weights=w, minlength=pairs)[:, None]
        pos_sum = np.stack([np.bincount(pair_of_last, weights=position[:, k] * w, minlength=pairs) for k in range(3)], 1)
        nrm_sum = np.stack([np.bincount(pair_of_last, weights=normal[:, k] * w, minlength=pairs) for k in range(3)], 1)
        length = np.linalg.norm(nrm_sum, axis=1, keepdims=True)
        a, b = np.divmod(keys_sorted[bounds], names_n)
        return ContactSet(
            pairs=np.stack([a, b], axis=1),
            position=pos_sum / weights,
            normal=nrm_sum / np.where(length > 0, length, 1.0),
            impulse_Ns=total,
        )
