"""Per-frame contacts: pybullet's contact points of every step, reduced per pair of objects.

pybullet reports, after each step, the points of every touching pair with the
normal force that step applied (``normalForce`` = impulse / step). For each pair
of objects that pushed on each other during the frame:

- impulse_Ns: sum over all points of all the frame's steps of normalForce * dt, so
  an impact that lasts a single step counts in full;
- position: force-weighted mean of the pair's points in the first step of the frame
  in which they pushed, each point midway between the two surfaces (B's surface
  point plus half the signed distance along the normal): the point of impact for a
  pair that collides during the frame, where a lasting contact was at the frame's
  start otherwise;
- normal: force-weighted mean of the same points' unit normals, re-normalised,
  pointing from b to a;
- a and b ordered by scene order, the list sorted by (a, b) in scene order.

Why the first step, and why per step: a pile of 100 bodies has ~300 points per
step, each a tuple of ~26 Python objects. pybullet's building (and freeing) of them
is the cost nobody avoids; anything more is read while the step's tuple is still hot
in the cache and then let go, as a bare ``getContactPoints`` loop would. Each step
adds every pushing point's force to its pair's running sum and copies positions and
normals only for pairs that start pushing (a bitmap of the pairs seen this frame
tells). A pair's *last* step would need every step's points held until a later step
shows the pair has stopped; held tuples go cold, and holding every step's points for
one reduction at the end of the frame cost about a tenth of the physics itself.

That per-step reading is ``scan_step``: compiled from ``_contact_scan.c`` where a C
compiler was at hand when hybrid was installed (``ACCELERATED`` is True), otherwise
``scan_step_numpy``, which gives the same arrays bit for bit (a World with it steps about a tenth slower
in a pile of 100 bodies).

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


def scan_step_numpy(points, stride, seen, force_sum, step, offset, new_a, new_b, new_force, new_step, position, normal) -> int:
    """The NumPy version of ``_contact_scan.scan_step``; _contact_scan.c states the contract.

    Adds each pushing point's force (> 0) to ``force_sum[a * stride + b]`` in point order;
    writes the pushing points of pairs not set in `seen` to rows offset.. of
    new_a/new_b/new_force/new_step and of position/normal (flat, 3 per row), then sets
    those pairs; returns how many rows it wrote.
    """
    n = len(points)
    force = np.fromiter(map(_FORCE, points), dtype=np.float64, count=n)
    a = np.fromiter(map(_BODY_A, points), dtype=np.int64, count=n)
    b = np.fromiter(map(_BODY_B, points), dtype=np.int64, count=n)
    pushing = np.flatnonzero((force > 0.0) & (a >= 0) & (b >= 0) & (a < stride) & (b < stride))
    keys = a[pushing] * stride + b[pushing]
    np.add.at(force_sum, keys, force[pushing])  # unbuffered, in point order: as the C loop adds
    rows = pushing[seen[keys] == 0]
    k = len(rows)
    if k:
        end = offset + k
        new_a[offset:end], new_b[offset:end], new_force[offset:end] = a[rows], b[rows], force[rows]
        new_step[offset:end] = step
        picked = [points[i] for i in rows.tolist()]
        on_b = np.fromiter(_flatten(map(_POS_ON_B, picked)), dtype=np.float64, count=3 * k).reshape(k, 3)
        nrm = np.fromiter(_flatten(map(_NORMAL_ON_B, picked)), dtype=np.float64, count=3 * k).reshape(k, 3)
        half = 0.5 * np.fromiter(map(_DISTANCE, picked), dtype=np.float64, count=k)
        position[3 * offset : 3 * end] = (on_b + half[:, None] * nrm).ravel()
        normal[3 * offset : 3 * end] = nrm.ravel()
        seen[a[rows] * stride + b[rows]] = 1
    return k


try:
    from hybrid.physics._contact_scan import scan_step

    ACCELERATED = True
except ImportError:  # installed without a C compiler: the same results, slower
    scan_step = scan_step_numpy
    ACCELERATED = False


class ContactAccumulator:
    """Collects pybullet contact points step by step and reduces them to a ``ContactSet`` per frame."""

    def __init__(
        self,
        names: Sequence[str],
        body_ids: Sequence[int],
        moving: Sequence[bool],
        impulse_per_force: float,
        *,
        scan=None,
        max_body_id: int = 0,
    ):
        """`names`/`moving` per object (scene order, then fragment slots: ``hybrid.roster``),
        `body_ids` per object that exists at the start; `impulse_per_force` = seconds per
        step's force.

        `moving` marks dynamic and kinematic objects; a pair of two non-moving objects
        never collides in Bullet and is ignored. `scan` replaces ``scan_step`` (tests
        run both versions). `max_body_id` reserves room for pybullet ids of bodies added
        later (``bind``).
        """
        self.names = tuple(names)
        ids = np.asarray(body_ids, dtype=np.int64)
        size = max(int(ids.max()) + 1 if len(ids) else 1, int(max_body_id))
        self._index_of_body = np.full(size, -1, dtype=np.int64)
        self._index_of_body[ids] = np.arange(len(ids))
        self._pending: list[ContactSet] = []
        self._moving = np.asarray(moving, dtype=bool)
        self.impulse_per_force = float(impulse_per_force)
        self._scan = scan or scan_step
        # Per pair in pybullet's own (A, B) order, key A * stride + B. np.zeros is calloc'd:
        # only the pages of pairs that ever touch are ever allocated (5000 objects would
        # reserve 200 MB of address space, of which a pile touches a few pages).
        self._stride = len(self._index_of_body)
        self._seen = np.zeros(self._stride * self._stride, dtype=np.uint8)
        self._force_sum = np.zeros(self._stride * self._stride, dtype=np.float64)
        # The frame's rows (the points of pairs in the step they started pushing), in
        # buffers that grow by doubling and are reused frame after frame.
        self._rows = 0
        self._steps = 0
        self._allocate(1024)

    def _allocate(self, capacity: int) -> None:
        old = getattr(self, "_a", None)
        a, b = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64)
        force, step = np.empty(capacity), np.empty(capacity, dtype=np.int64)
        position, normal = np.empty(3 * capacity), np.empty(3 * capacity)
        if old is not None:
            n = self._rows
            a[:n], b[:n], force[:n], step[:n] = self._a[:n], self._b[:n], self._force[:n], self._step[:n]
            position[: 3 * n], normal[: 3 * n] = self._position[: 3 * n], self._normal[: 3 * n]
        self._a, self._b, self._force, self._step, self._position, self._normal = a, b, force, step, position, normal

    def add_step(self, points: tuple) -> None:
        """Take the tuple ``p.getContactPoints()`` returned after one step (not kept)."""
        step = self._steps
        self._steps = step + 1
        n = len(points)
        if not n:
            return
        if self._rows + n > len(self._a):
            self._allocate(max(2 * len(self._a), self._rows + n))
        self._rows += self._scan(
            points, self._stride, self._seen, self._force_sum, step, self._rows,
            self._a, self._b, self._force, self._step, self._position, self._normal,
        )  # fmt: skip

    def rebind(self, unbind: Sequence[int], bind: dict[int, int]) -> None:
        """Bodies were removed (pybullet ids `unbind`) and added (`bind`: pybullet id -> object index).

        pybullet reuses the ids of removed bodies, so the points gathered so far are
        reduced first under the old ids (``flush`` merges them with the rest of the frame).
        """
        steps = self._steps
        self._pending.append(self._reduce())
        self._steps = steps
        self._index_of_body[np.asarray(list(unbind), dtype=np.int64)] = -1
        for body_id, index in bind.items():
            if body_id >= self._stride:
                raise ValueError(
                    f"pybullet id {body_id} is beyond the {self._stride} ids this accumulator was sized for"
                )
            self._index_of_body[body_id] = index

    def flush(self) -> ContactSet:
        """The frame's contacts since the last flush, in deterministic (a, b) scene order."""
        last = self._reduce()
        self._steps = 0
        if not self._pending:
            return last
        parts, self._pending = self._pending + [last], []
        return merge_contact_sets(parts)

    def _reduce(self) -> ContactSet:
        """The contacts of the rows gathered since the last reduction; clears them."""
        n, self._rows = self._rows, 0
        if not n:  # no point pushed
            return ContactSet.empty()
        a, b, force, step = self._a[:n], self._b[:n], self._force[:n], self._step[:n]

        # Every pybullet pair that pushed this frame started pushing once, so it has rows
        # here: read its force sum, and clear both per-pair tables for the next frame.
        raw = a * self._stride + b
        impulse = self._force_sum[raw] * self.impulse_per_force  # the row's pair's, on each row
        self._force_sum[raw] = 0.0
        self._seen[raw] = 0

        # Scene pairs: a < b in scene order. pybullet may list one pair both ways round
        # (after rebuilding its manifold), as two pybullet pairs that add up.
        ia, ib = self._index_of_body[a], self._index_of_body[b]
        first, second = np.minimum(ia, ib), np.maximum(ia, ib)
        known = first >= 0
        known &= self._moving[first] | self._moving[second]
        rows = np.flatnonzero(known)
        if not len(rows):
            return ContactSet.empty()
        keys = first[rows] * len(self.names) + second[rows]
        order = np.lexsort((raw[rows], step[rows], keys))  # by scene pair, step, pybullet pair
        rows, keys = rows[order], keys[order]
        s, r = step[rows], raw[rows]
        new_pair = np.empty(len(rows), dtype=bool)
        new_pair[0] = True
        np.not_equal(keys[1:], keys[:-1], out=new_pair[1:])
        new_raw = new_pair.copy()
        new_raw[1:] |= r[1:] != r[:-1]
        pair_of_row = np.cumsum(new_pair) - 1
        pairs = int(pair_of_row[-1]) + 1
        total = np.bincount(pair_of_row[new_raw], weights=impulse[rows[new_raw]], minlength=pairs)

        # Positions and normals from each pair's first pushing step: its leading rows.
        use = s == s[new_pair][pair_of_row]
        used = rows[use]
        starts = np.flatnonzero(new_pair[use])
        w = force[used]
        flip = np.where(ia[used] > ib[used], -w, w)  # pybullet's normal points from its B to its A
        pos_sum = np.add.reduceat(self._position.reshape(-1, 3)[used] * w[:, None], starts, axis=0)
        nrm_sum = np.add.reduceat(self._normal.reshape(-1, 3)[used] * flip[:, None], starts, axis=0)
        weight = np.add.reduceat(w, starts)
        length = np.sqrt((nrm_sum * nrm_sum).sum(axis=1))
        heads = rows[new_pair]
        return ContactSet(
            pairs=np.stack([first[heads], second[heads]], axis=1),
            position=pos_sum / weight[:, None],
            normal=nrm_sum / np.where(length > 0, length, 1.0)[:, None],
            impulse_Ns=total,
        )


def merge_contact_sets(parts: Sequence[ContactSet]) -> ContactSet:
    """One frame's contacts from consecutive stretches of it (oldest first): impulses add up; a
    pair's position and normal are those of the first stretch it pushed in."""
    parts = [c for c in parts if len(c)]
    if not parts:
        return ContactSet.empty()
    if len(parts) == 1:
        return parts[0]
    pairs = np.concatenate([c.pairs for c in parts])
    position = np.concatenate([c.position for c in parts])
    normal = np.concatenate([c.normal for c in parts])
    impulse = np.concatenate([c.impulse_Ns for c in parts])
    order = np.lexsort((np.arange(len(pairs)), pairs[:, 1], pairs[:, 0]))  # by pair, then stretch
    pairs, position, normal, impulse = pairs[order], position[order], normal[order], impulse[order]
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = (pairs[1:] != pairs[:-1]).any(axis=1)
    group = np.cumsum(first) - 1
    return ContactSet(
        pairs=pairs[first],
        position=position[first],
        normal=normal[first],
        impulse_Ns=np.bincount(group, weights=impulse, minlength=int(group[-1]) + 1),
    )
