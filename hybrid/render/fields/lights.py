"""The scene's lights as the field kernels read them, and the spot-light cone they share with the liquid shading.

Radiance E = linear colour x intensity, as the beauty pass binds it. A spot light's
cone factor is pyrender's: with s = 1 / max(0.001, cos(inner) - cos(outer)) and
offset -cos(outer) s, cone = clamp(clamp(axis . -to_light, 0, 1) s + offset, 0, 1),
and the light is scaled by cone^2.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import math

import numpy as np

from hybrid.fields.backend import _import_taichi
from hybrid.render.materials import display_to_linear
from hybrid.scene.spec import AmbientLight, AreaLight, DirectionalLight, PointLight, Scene, SpotLight

ti = _import_taichi()

# Light rows for the kernels (float32, LIGHT_ROW wide): kind, radiance (3), direction toward the light for
# directional lights or position for point and spot lights (3), spot axis (3), cone scale, cone offset.
LIGHT_DIRECTIONAL, LIGHT_POINT, LIGHT_SPOT = 1, 2, 3
LIGHT_ROW = 12


def light_table(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The scene's lights for the kernels: (ambient linear rgb (3,), rows (L, LIGHT_ROW) float32)."""
    ambient = np.zeros(3)
    rows = []
    for light in scene.lights:
        if isinstance(light, AreaLight):
            light = light.as_spot()  # as the rasteriser draws it
        color = display_to_linear(light.color) * light.intensity
        row = np.zeros(LIGHT_ROW)
        if isinstance(light, AmbientLight):
            ambient += color
            continue
        if isinstance(light, DirectionalLight):
            d = -np.asarray(light.direction, dtype=np.float64)
            row[0], row[4:7] = LIGHT_DIRECTIONAL, d / np.linalg.norm(d)
        elif isinstance(light, PointLight):
            row[0], row[4:7] = LIGHT_POINT, light.position
        elif isinstance(light, SpotLight):
            axis = np.asarray(light.look_at, dtype=np.float64) - np.asarray(light.position, dtype=np.float64)
            cos_out, cos_in = math.cos(math.radians(light.outer_cone_deg)), math.cos(math.radians(light.inner_cone_deg))
            scale = 1.0 / max(0.001, cos_in - cos_out)
            row[0], row[4:7], row[7:10] = LIGHT_SPOT, light.position, axis / np.linalg.norm(axis)
            row[10], row[11] = scale, -cos_out * scale
        else:
            continue
        row[1:4] = color
        rows.append(row)
    return ambient, np.asarray(rows, dtype=np.float32).reshape(-1, LIGHT_ROW)


@ti.func
def spot_cone(lights: ti.template(), l, to_light):
    """Cone factor (before squaring) of light row `l` of the (L, LIGHT_ROW) array `lights` at unit `to_light`."""
    axis = ti.Vector([lights[l, 7], lights[l, 8], lights[l, 9]])
    return ti.math.clamp(ti.math.clamp(axis.dot(-to_light), 0.0, 1.0) * lights[l, 10] + lights[l, 11], 0.0, 1.0)


def spot_cones(row: np.ndarray, to_light: np.ndarray) -> np.ndarray:
    """Cone factors (N,) (before squaring) of light `row` (LIGHT_ROW,) at unit directions `to_light` (N, 3)."""
    return np.clip(np.clip(np.sum(row[7:10] * -to_light, axis=1), 0, 1) * row[10] + row[11], 0, 1)
