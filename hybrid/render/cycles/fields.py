"""The liquid in Cycles: the rasteriser's own surface as a mesh, with a water material.

Surface: the particles are splatted onto the same node grid as the rasteriser's
liquid (``hybrid.render.fields.liquid.splat_liquid``) and the iso-surface phi = ISO
is extracted with marching cubes (scikit-image), so both back ends draw one surface;
the grid keeps MARGIN empty nodes around the particles, so the mesh is closed.

Material (``LiquidLook``), the rasteriser's approximations made physical:

- the surface: a principled BSDF that transmits everything it does not reflect,
  IOR 1.33, ``roughness``; light refracts through it and reflects off it. Shadow rays
  cross it unbent, so what lies under the water is lit directly (no caustics);
- colour: the rasteriser tints what lies behind d metres of liquid by
  color^(d / REFERENCE_DEPTH); here a volume absorbs with coefficient
  sigma_c = -ln(color_c) / REFERENCE_DEPTH per channel, the same transmittance;
- ``opacity``: the rasteriser replaces 1 - (1 - opacity)^(d / REFERENCE_DEPTH) of what
  lies behind with the liquid's own lit colour; here a volume scatters with
  coefficient -ln(1 - opacity) / REFERENCE_DEPTH and albedo ``color``, which takes
  the same share of the light out of the straight path. An opacity of 1 (sand, snow)
  makes an opaque surface of that colour instead.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid.fields.frames import LiquidFrame
from hybrid.render.cycles.build import by_ray, fill_mesh
from hybrid.render.fields.liquid import IOR, ISO, REFERENCE_DEPTH, splat_liquid
from hybrid.render.materials import display_to_linear
from hybrid.scene.fields_spec import LiquidLook

OPAQUE = 0.999  # an opacity above this draws an opaque surface
MIN_TINT = 1e-4  # colour channels are clamped here before the logarithm (a black liquid absorbs all but this)


def liquid_surface(frame: LiquidFrame, refine: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float32 world metres, triangles (F, 3) int32) of the liquid's surface, facing out."""
    from skimage.measure import marching_cubes

    grid, lo, h = splat_liquid(frame, refine)
    phi = grid[..., 0]
    if phi.max() <= ISO:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
    verts, faces, _, _ = marching_cubes(phi, level=ISO, spacing=(h, h, h))
    # scikit-image winds these triangles clockwise seen from outside the liquid (phi > ISO);
    # Blender takes counter-clockwise as the front, so the winding is reversed.
    return (verts + lo).astype(np.float32), np.ascontiguousarray(faces[:, ::-1], dtype=np.int32)


def absorption(look: LiquidLook) -> tuple[float, tuple[float, float, float]]:
    """(density, colour) of Cycles' Volume Absorption giving sigma_c = -ln(color_c) / REFERENCE_DEPTH.

    Cycles absorbs with coefficient density x (1 - colour_c) per channel.
    """
    tint = np.clip(display_to_linear(look.color), MIN_TINT, 1.0)
    sigma = -np.log(tint) / REFERENCE_DEPTH
    density = float(sigma.max())
    if density <= 0:
        return 0.0, (1.0, 1.0, 1.0)
    return density, tuple(float(c) for c in 1.0 - sigma / density)


def scattering(look: LiquidLook) -> float:
    """Volume Scatter density that takes the rasteriser's `opacity` share out of the straight path per REFERENCE_DEPTH."""
    return -math.log(max(1.0 - look.opacity, 1e-12)) / REFERENCE_DEPTH


def liquid_material(bpy, look: LiquidLook):
    mat = bpy.data.materials.new("liquid")
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    color = (*display_to_linear(look.color), 1.0)
    bsdf.inputs["Roughness"].default_value = float(look.roughness)
    bsdf.inputs["IOR"].default_value = IOR
    out = nt.nodes["Material Output"]
    if look.opacity >= OPAQUE:
        bsdf.inputs["Base Color"].default_value = color
        return mat
    bsdf.inputs["Base Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    bsdf.inputs["Transmission Weight"].default_value = 1.0
    # Shadow rays pass the surface unbent (still absorbed by the volume below): light
    # from a lamp or the sun cannot be sampled through a refracting interface, so
    # without this the floor under the water would see no direct light at all. The
    # cost: no caustics.
    clear = nt.nodes.new("ShaderNodeBsdfTransparent")
    nt.links.new(by_ray(nt, "Is Shadow Ray", bsdf.outputs[0], clear.outputs[0]), out.inputs["Surface"])
    density, tint = absorption(look)
    absorb = nt.nodes.new("ShaderNodeVolumeAbsorption")
    absorb.inputs["Density"].default_value = density
    absorb.inputs["Color"].default_value = (*tint, 1.0)
    scatter = nt.nodes.new("ShaderNodeVolumeScatter")
    scatter.inputs["Density"].default_value = scattering(look)
    scatter.inputs["Color"].default_value = color
    both = nt.nodes.new("ShaderNodeAddShader")
    nt.links.new(absorb.outputs[0], both.inputs[0])
    nt.links.new(scatter.outputs[0], both.inputs[1])
    nt.links.new(both.outputs[0], out.inputs["Volume"])
    return mat


class LiquidObject:
    """The liquid's Blender object; its mesh is rebuilt in place for every frame's surface."""

    def __init__(self, bpy, bscene, look: LiquidLook, arch: str = "cpu", deterministic: bool = True) -> None:
        from hybrid.fields import backend

        if backend.current() is None:  # the splat is a Taichi kernel (as in the rasteriser)
            backend.ensure(arch, deterministic)
        self.material = liquid_material(bpy, look)
        self.object = bpy.data.objects.new("liquid", bpy.data.meshes.new("liquid"))
        self.object.data.materials.append(self.material)
        self.object.pass_index = 0  # not an instance: the field buffers describe it
        bscene.collection.objects.link(self.object)

    def update(self, frame: LiquidFrame | None) -> None:
        """Give the mesh this frame's surface (none for None or no particles)."""
        me = self.object.data
        me.clear_geometry()
        if frame is not None and frame.count:
            fill_mesh(me, *liquid_surface(frame))
        else:
            me.update()
