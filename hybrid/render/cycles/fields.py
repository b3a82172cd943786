"""The fields in Cycles: the liquid as a refracting surface, smoke and fire as a volume.

Liquid
------
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

Smoke and fire
--------------
Each frame's gas grid becomes an OpenVDB file (bpy ships the ``openvdb`` module
beside its own Python packages) loaded into a Blender volume object: grid
``density`` (the smoke concentration) and the vector grid ``emission`` (the flame's
radiance per metre), both cell-centred on the solver's cells, so Cycles samples
them trilinearly at the same points as the rasteriser's march. Material, the
rasteriser's ``GasLook`` (``hybrid.render.fields.gas``) made physical:

- extinction sigma = ``look.extinction`` x density, split into scattering
  sigma x albedo and absorption sigma x (1 - albedo) with albedo ``look.color``
  decoded to linear light, as the rasteriser's; the path tracer scatters with the
  true isotropic phase function and follows every bounce (the rasteriser's single
  scattering uses a phase four times too large in place of the multiple scattering
  it omits, so thick sunlit smoke is brighter here in its depth and the two agree
  where the smoke is thin);
- emission: burning cells emit the rasteriser's blackbody glow per metre
  (``flame_emission``: flame x (K / FLAME_REFERENCE_K)^4 x the Wien chroma of K), so
  fire lights the scene and casts moving shadows by itself, through the path
  tracer's own light transport;
- cells inside rigid bodies need nothing: the bodies themselves are in the scene.
"""

from __future__ import annotations

import math
import os

import numpy as np

from hybrid.fields.frames import GasFrame, LiquidFrame
from hybrid.render.cycles.build import MappingError, by_ray, fill_mesh
from hybrid.render.fields.gas import flame_emission
from hybrid.render.fields.liquid import IOR, ISO, REFERENCE_DEPTH, splat_liquid
from hybrid.render.materials import display_to_linear
from hybrid.scene.fields_spec import GasLook, LiquidLook

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
    nt.links.new(add_shaders(nt, absorb.outputs[0], scatter.outputs[0]), out.inputs["Volume"])
    return mat


def add_shaders(nt, first, *more):
    """The sum of shader sockets as one socket (a chain of Add Shader nodes)."""
    total = first
    for socket in more:
        node = nt.nodes.new("ShaderNodeAddShader")
        nt.links.new(total, node.inputs[0])
        nt.links.new(socket, node.inputs[1])
        total = node.outputs[0]
    return total


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


# ---------------------------------------------------------------------------- gas


def import_openvdb():
    """The ``openvdb`` module bpy ships next to its own Python packages (it is not on sys.path by default)."""
    import glob
    import importlib.util
    import sys

    try:
        import openvdb

        return openvdb
    except ImportError:
        pass
    spec = importlib.util.find_spec("bpy")
    root = os.path.dirname(spec.origin) if spec is not None and spec.origin else None
    found = sorted(glob.glob(os.path.join(root, "*", "python", "lib", "python3*", "site-packages"))) if root else []
    for path in found:
        if glob.glob(os.path.join(path, "openvdb*")):
            if path not in sys.path:
                sys.path.append(path)
            import openvdb

            return openvdb
    raise MappingError(
        "fields.gas: smoke and fire reach Cycles as OpenVDB grids, and this bpy install has no openvdb module "
        f"(looked under {root}); reinstall bpy 5.0.1 (pip install 'hybrid[cycles]'), or render with --renderer raster"
    )


def write_gas_grids(path: str, frame: GasFrame, look: GasLook) -> None:
    """Write `frame` as an OpenVDB file: float grid ``density``, vector grid ``emission`` (radiance per metre).

    Voxel (i, j, k) of both grids is solver cell (i, j, k), its centre at
    origin + (i + 1/2, j + 1/2, k + 1/2) x cell_size in world metres; zero cells are inactive.
    """
    vdb = import_openvdb()
    h = float(frame.cell_size)
    # One ring of zero cells around the grid, every voxel active: Cycles bounds a
    # volume by its active leaf nodes, and where the smoke ended on a leaf's face it
    # lost the half cell over which the interpolation falls to zero outside.
    corner = np.asarray(frame.origin, dtype=np.float64) - 0.5 * h
    matrix = [[h, 0.0, 0.0, 0.0], [0.0, h, 0.0, 0.0], [0.0, 0.0, h, 0.0], [*corner.tolist(), 1.0]]
    grids = []
    # A negative tolerance leaves every voxel active.
    for name, grid, values, tolerance in (
        ("density", vdb.FloatGrid(), np.maximum(frame.density, 0.0), -1.0),
        ("emission", vdb.Vec3SGrid(), flame_emission(frame, look), (-1.0, -1.0, -1.0)),
    ):
        padded = np.zeros(tuple(s + 2 for s in frame.shape) + values.shape[3:], dtype=np.float32)
        padded[1:-1, 1:-1, 1:-1] = values
        grid.copyFromArray(padded, tolerance=tolerance)
        grid.name = name
        grid.transform = vdb.createLinearTransform(matrix)
        grids.append(grid)
    vdb.write(path, grids=grids)


def gas_material(bpy, look: GasLook):
    """Scatter sigma x albedo, absorb sigma x (1 - albedo), emit the ``emission`` grid; sigma = extinction x density."""
    mat = bpy.data.materials.new("gas")
    nt = mat.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    rho = nt.nodes.new("ShaderNodeAttribute")
    rho.attribute_type = "GEOMETRY"
    rho.attribute_name = "density"
    sigma = nt.nodes.new("ShaderNodeMath")
    sigma.operation = "MULTIPLY"
    nt.links.new(rho.outputs["Fac"], sigma.inputs[0])
    sigma.inputs[1].default_value = float(look.extinction)
    albedo = (*display_to_linear(look.color), 1.0)
    # Cycles' Volume Scatter has coefficient density x colour and Volume Absorption
    # density x (1 - colour): with colour = albedo they add up to sigma per channel.
    scatter = nt.nodes.new("ShaderNodeVolumeScatter")
    scatter.inputs["Color"].default_value = albedo
    scatter.inputs["Anisotropy"].default_value = 0.0
    absorb = nt.nodes.new("ShaderNodeVolumeAbsorption")
    absorb.inputs["Color"].default_value = albedo
    for node in (scatter, absorb):
        nt.links.new(sigma.outputs[0], node.inputs["Density"])
    glow = nt.nodes.new("ShaderNodeAttribute")
    glow.attribute_type = "GEOMETRY"
    glow.attribute_name = "emission"
    emit = nt.nodes.new("ShaderNodeEmission")
    emit.inputs["Strength"].default_value = 1.0
    nt.links.new(glow.outputs["Color"], emit.inputs["Color"])
    nt.links.new(add_shaders(nt, scatter.outputs[0], absorb.outputs[0], emit.outputs[0]), out.inputs["Volume"])
    return mat


class GasObject:
    """The gas's Blender volume object; every frame loads that frame's grids from a new file in `folder`."""

    def __init__(self, bpy, bscene, look: GasLook, folder: str) -> None:
        import_openvdb()  # fail now, not at the first frame
        self.look = look
        self.folder = folder
        self.material = gas_material(bpy, look)
        self.volume = bpy.data.volumes.new("gas")
        self.volume.render.precision = "FULL"  # float32 grids: no half-float rounding of thin smoke
        self.volume.render.space = "OBJECT"
        self.volume.render.step_size = 0.0  # automatic: one voxel
        self.volume.render.clipping = 0.0  # no density is empty space: thin smoke still dims
        self.volume.materials.append(self.material)
        self.object = bpy.data.objects.new("gas", self.volume)
        self.object.pass_index = 0  # not an instance: the field buffers describe it
        self.object.hide_render = True
        bscene.collection.objects.link(self.object)
        self._frame = 0
        self._path: str | None = None

    def update(self, frame: GasFrame | None) -> None:
        """Show this frame's gas (none for None)."""
        old = self._path
        if frame is None:
            self.object.hide_render = True
            self._path = None
        else:
            self._frame += 1
            # A new name each frame: Blender caches a volume file's grids by path.
            self._path = os.path.join(self.folder, f"gas{self._frame:06d}.vdb")
            write_gas_grids(self._path, frame, self.look)
            self.volume.filepath = self._path
            self.volume.grids.load()
            self.object.hide_render = False
        if old is not None:
            try:
                os.remove(old)
            except FileNotFoundError:
                pass
