"""Advice, not errors: floating bodies too thin for the liquid's cells to float near Archimedes' depth.

A body in the MPM liquid is a boundary on the grid (``hybrid.fields.mpm``), located to
a fraction of a cell. ``benchmarks/convergence_archimedes.py`` measured floating boxes
of density 250, 500 and 800 from 4 to 16 cells across, each at two grid offsets
(README, "Bodies in the liquid"): at 4 cells their submerged volume was off by up to
two thirds until the bodies carried the weight of the water missing next to them
(``hybrid.fields.mpm.VOID_BAND``), and is off by up to ``THIN_ERROR`` with it; from 6
cells up by at most ``RESOLVED_ERROR`` (10 %: 6 and 8 cells re-measured with that weight;
14 %: 12 and 16 cells, measured before it), an error that finer cells did not shrink. So a body under ``WELL_RESOLVED`` cells across its thinnest
side gets a note with the resolution that gives it that many; the scene still runs,
and ``hybrid validate`` and ``hybrid render`` print the notes so its author can decide.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid.scene.fields_spec import grid_shape
from hybrid.scene.spec import ObjectSpec, Scene

# Worst |submerged volume / Archimedes - 1| measured by benchmarks/convergence_archimedes.py
# (boxes of density 250/500/800, grid offsets 0 and 0.5 cells): THIN_ERROR at THIN_CELLS
# cells across, RESOLVED_ERROR over 6, 8, 12 and 16 cells.
THIN_CELLS, THIN_ERROR = 4, 0.09
RESOLVED_ERROR = 0.14
WELL_RESOLVED = 6  # cells across the thinnest side below which a floating body gets a note


def thickness(obj: ObjectSpec, seed: int = 0) -> float:
    """The object's smallest width (m) as the liquid sees it: exact for the analytic colliders (sphere,
    box, capsule, cylinder); otherwise over its mesh's convex hull's face normals, the extent of its points."""
    from hybrid.fields.colliders import BOX, CAPSULE, CYLINDER, SPHERE, collider_shape

    shape = collider_shape(obj, seed)
    r, h = float(shape.params[0]), float(shape.params[1])
    if shape.kind in (SPHERE, CAPSULE):
        return 2 * r
    if shape.kind == BOX:
        return 2 * float(min(shape.params[:3]))
    if shape.kind == CYLINDER:
        return 2 * min(r, h)
    hull = obj.shape.mesh(seed).convex_hull
    spans = np.asarray(hull.vertices) @ np.asarray(hull.face_normals).T
    return float((spans.max(axis=0) - spans.min(axis=0)).min())


def floating_draft(obj: ObjectSpec, liquid_density: float, seed: int = 0) -> tuple[float, float]:
    """(draft, thickness) in metres of the object floating on its thinnest side: the thickness times
    its density over the liquid's (exact for a box or a cylinder on its end, a guide for other shapes);
    a draft equal to the thickness means it sinks."""
    from hybrid.geometry import shape_volume
    from hybrid.physics.mass import body_mass

    width = thickness(obj, seed)
    density = body_mass(obj) / float(shape_volume(obj.shape))
    return width * min(1.0, density / liquid_density), width


def small_body_notes(scene: Scene) -> list[str]:
    """One line per dynamic body lighter than the water of a two-way coupled liquid (so it floats) that
    is fewer than WELL_RESOLVED cells across its thinnest side: what to expect and the resolution that fixes it."""
    fields = scene.fields
    if fields is None or fields.liquid is None or fields.coupling != "two_way" or fields.liquid.material != "water":
        return []
    liquid = fields.liquid
    _, cell = grid_shape(liquid.domain, liquid.resolution)
    notes = []
    for i, obj in enumerate(scene.objects):
        if obj.physics.body != "dynamic":
            continue
        draft, width = floating_draft(obj, float(liquid.density), scene.seed)
        if draft >= width or width / cell >= WELL_RESOLVED:
            continue  # it sinks, or the grid resolves it as well as finer cells would
        needed = math.ceil(WELL_RESOLVED * max(liquid.domain.size) / width)
        notes.append(
            f"objects[{i}] '{obj.name}' is {width / cell:.1f} cells of the liquid's {cell * 100:.3g} cm grid across its "
            f"thinnest side ({width:.3g} m): floating bodies {THIN_CELLS} cells across floated with their submerged "
            f"volume off by up to {THIN_ERROR:.0%}, from {WELL_RESOLVED} cells up by at most {RESOLVED_ERROR:.0%}; raise "
            f"fields.liquid.resolution to {needed} or make the body larger"
        )
    return notes
