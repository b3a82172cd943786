"""Advice, not errors: two-way coupled bodies too thin for the liquid's cells to float them accurately.

A body in the MPM liquid is a boundary on the grid (``hybrid.fields.mpm``), located to
a fraction of a cell, so the liquid's push on it, and with it the depth at which it
floats, is off by a fraction of a cell of draft whatever the body's size. For a body a
few cells thick that is a large share of its draft. ``benchmarks/convergence_archimedes.py``
measured it (README, "Bodies in the liquid"): the worst submerged volume over boxes of
density 250, 500 and 800 at two grid offsets, relative to Archimedes, is
``BUOYANCY_ERROR`` by cells across. A scene with thinner bodies still runs; ``hybrid
validate`` and ``hybrid render`` print these notes so its author can decide.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid.scene.fields_spec import grid_shape
from hybrid.scene.spec import ObjectSpec, Scene

# (cells across, worst |submerged volume / Archimedes - 1|), measured by
# benchmarks/convergence_archimedes.py (0.12 m boxes, densities 250/500/800, offsets 0 and
# 0.5 cells). The 5 % holds from WELL_RESOLVED cells across.
BUOYANCY_ERROR = ((4, 0.66), (6, 0.13), (8, 0.07))
WELL_RESOLVED = 8


def thickness(obj: ObjectSpec, seed: int = 0) -> float:
    """The object's smallest width (m) as the liquid sees it: exact for the analytic colliders (sphere,
    box, capsule, cylinder); otherwise over its mesh's convex hull's face normals, the extent of its points."""
    from hybrid.fields.colliders import BOX, CAPSULE, CYLINDER, SPHERE, collider_shape

    shape = collider_shape(obj, seed)
    r, h = float(shape.params[0]), float(shape.params[1])
    if shape.kind == SPHERE:
        return 2 * r
    if shape.kind == BOX:
        return 2 * float(min(shape.params[:3]))
    if shape.kind == CAPSULE:
        return 2 * r
    if shape.kind == CYLINDER:
        return 2 * min(r, h)
    hull = obj.shape.mesh(seed).convex_hull
    spans = np.asarray(hull.vertices) @ np.asarray(hull.face_normals).T
    return float((spans.max(axis=0) - spans.min(axis=0)).min())


def small_body_notes(scene: Scene) -> list[str]:
    """One line per dynamic body that a two-way coupled liquid resolves with fewer than
    WELL_RESOLVED cells across its thinnest side: what to expect and the resolution that fixes it."""
    fields = scene.fields
    if fields is None or fields.liquid is None or fields.coupling != "two_way":
        return []
    liquid = fields.liquid
    _, cell = grid_shape(liquid.domain, liquid.resolution)
    notes = []
    for i, obj in enumerate(scene.objects):
        if obj.physics.body != "dynamic":
            continue
        width = thickness(obj, scene.seed)
        cells = width / cell
        if cells >= WELL_RESOLVED:
            continue
        # Thinner is worse: quote the thickest measured case no thicker than this body.
        measured = [(n, err) for n, err in BUOYANCY_ERROR if n <= cells]
        n, err = measured[-1] if measured else BUOYANCY_ERROR[0]
        expect = f"{'up to' if measured else 'more than'} {err:.0%} at {n} cells"
        needed = math.ceil(WELL_RESOLVED * max(liquid.domain.size) / width)
        notes.append(
            f"objects[{i}] '{obj.name}' is {cells:.1f} cells of the liquid's {cell * 100:.3g} cm grid across its "
            f"thinnest side ({width:.3g} m): the liquid's push on it is located to a fraction of a cell, and "
            f"floating bodies this thin had their submerged volume off by {expect} (within 5 % takes about "
            f"{WELL_RESOLVED} cells); for that, raise fields.liquid.resolution to {needed} or make the body larger"
        )
    return notes
