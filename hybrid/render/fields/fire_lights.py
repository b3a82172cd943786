"""Flames as the rasteriser's lights: the gas's emission summed into a few shadowed lights per frame.

The path tracer lights a scene with a fire's emission by itself; the rasteriser needs
lights. ``fire_lights`` turns a frame's emission field (``gas.flame_emission``:
linear radiance per metre of path, per cell) into at most ``count`` lights:

- a cell of volume V emitting j per metre has radiant intensity j V in every direction
  (radiance times area), so a group of cells seen from afar is a point light of
  intensity sum(j V) per channel at its intensity-weighted centroid: the colour is that
  sum over its luminance, the intensity its luminance (the beauty shader's point and
  spot lights give colour x intensity / d^2);
- groups by median cut: the emitting cells split, again and again, across the longest
  axis of the group with the most intensity x extent, at its intensity-weighted
  median, until there are ``count`` groups (or single cells). A group of one centre is
  exact; the error of a point light for an extended group falls as 1 / d^2 farther out.

Each light is drawn as a spot light looking straight down with a cone of
``CONE_DEG`` (``scene_build.show_fire_lights``): pyrender casts shadows from spot and
directional lights only, and a fire lights mostly what lies below and around it (the
ground, the logs, whatever stands near). Surfaces more than CONE_DEG from straight
below the light (above the flame's centre, or far out on the ground) get no fire light
in the rasteriser; the smoke is not lit by it either (the gas march reads the scene's
own lights). Both are documented limits of this first method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONE_DEG = 70.0  # outer cone half-angle of a fire light's spot
CONE_SOFT_DEG = 8.0  # the cone fades to zero over its last this many degrees
MIN_INTENSITY = 1e-6  # below this a fire light is switched off
DARK_POSITION = (0.0, 0.0, 1.0e4)  # where a switched-off fire light waits: far from every surface

LUMINANCE = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709, linear


@dataclass(frozen=True)
class FireLight:
    """One light standing for a group of burning cells: world `position` (3,), linear `color` (3,)
    of unit luminance, `intensity` (its luminance: colour x intensity / d^2 is the irradiance), and
    the group's emitting cell count."""

    position: np.ndarray
    color: np.ndarray
    intensity: float
    cells: int


def fire_lights(emission: np.ndarray, origin, cell_size: float, count: int) -> list[FireLight]:
    """At most `count` lights for `emission` (nx, ny, nz, 3) (see the module docstring), brightest first.

    `origin`: the grid's min corner; cell (i, j, k) is centred at origin + cell_size (ijk + 0.5).
    """
    emission = np.asarray(emission, dtype=np.float64)
    power = emission.reshape(-1, 3) * cell_size**3  # radiant intensity per cell, per channel
    lum = power @ LUMINANCE
    idx = np.flatnonzero(lum > 0)
    if count <= 0 or len(idx) == 0:
        return []
    centres = np.asarray(origin, dtype=np.float64) + cell_size * (
        np.stack(np.unravel_index(idx, emission.shape[:3]), axis=1) + 0.5
    )
    groups = [np.arange(len(idx))]
    weight = lum[idx]
    while len(groups) < count:
        scores = []
        for g in groups:
            if len(g) < 2:
                scores.append(-1.0)
                continue
            extent = centres[g].max(axis=0) - centres[g].min(axis=0)
            scores.append(float(weight[g].sum() * extent.max()))
        k = int(np.argmax(scores))
        if scores[k] <= 0:
            break
        g = groups.pop(k)
        axis = int(np.argmax(centres[g].max(axis=0) - centres[g].min(axis=0)))
        # Stable sort along the axis, then cut where half the intensity lies on each side.
        order = g[np.argsort(centres[g, axis], kind="stable")]
        cum = np.cumsum(weight[order])
        cut = int(np.searchsorted(cum, 0.5 * cum[-1]))
        cut = min(max(cut, 1), len(order) - 1)
        # Keep cells of one plane together, so the cut does not depend on their order.
        plane = centres[order[cut], axis]
        left = order[centres[order, axis] < plane]
        right = order[centres[order, axis] >= plane]
        if len(left) == 0 or len(right) == 0:
            left, right = order[:cut], order[cut:]
        groups[k:k] = [left, right]
    lights = []
    for g in groups:
        rgb = power[idx[g]].sum(axis=0)
        y = float(rgb @ LUMINANCE)
        if y <= MIN_INTENSITY:
            continue
        w = weight[g] / weight[g].sum()
        lights.append(FireLight(position=w @ centres[g], color=rgb / y, intensity=y, cells=len(g)))
    lights.sort(key=lambda light: -light.intensity)
    return lights
