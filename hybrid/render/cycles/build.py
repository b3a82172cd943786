"""Scene spec -> Blender scene, built in process through bpy (no .blend file, no Blender binary).

Everything here maps one thing a scene says onto Blender's data, with the units
chosen so that Cycles and the rasteriser light a surface the same way where both
can (``hybrid.render.scene_build`` is the rasteriser's side):

- Colours: scene colours are display values; both back ends decode them with
  gamma 2.2 (``materials.display_to_linear``) and textures with the sRGB curve.
- Directional light: ``intensity`` is the irradiance on a surface facing it, as in
  pyrender; a Blender sun's strength is that irradiance, so it maps one to one (a
  white Lambertian surface shows radiance E/pi in both). ``angular_diameter_deg`` is
  the sun's angle, so its soft shadows come from the path tracer itself.
- Point and spot lights: ``intensity`` is the radiant intensity I (irradiance I/d^2
  at distance d, pyrender's convention); Blender's point and spot power P radiates
  I = P / (4 pi), so P = 4 pi I. The spot cone maps to Blender's size (twice the
  outer angle) and blend, chosen so that full brightness starts at the inner cone.
  Both are points (radius 0): hard shadows, as the rasteriser's.
- Area light: a one-sided rectangle whose ``intensity`` is the radiant intensity
  on its axis; Blender's area power P radiates P / pi there, so P = pi I.
- Ambient light: pyrender adds albedo x ambient to every pixel; a uniform world of
  radiance L gives a Lambertian surface exactly albedo x L where nothing occludes it
  (and less where something does: the path tracer's ambient occlusion). Camera rays
  that miss everything see the scene's ``background`` instead, as in the rasteriser.
- Environment: the world's colour for every ray but camera rays is the environment's
  equirect table (``EnvironmentMap.table``: the image, or the sky baked from the same
  function the rasteriser evaluates) plus the ambient radiance; camera rays that miss
  see the environment alone when it is visible, else the background. The table is a
  float image filled from NumPy (no file, so no format differs between the back
  ends) on an Environment Texture node with bilinear lookup, whose (u, v) convention
  is ``hybrid.render.environment``'s; a Mapping node turns it by ``rotation_deg``.
- Camera: the pinhole K exactly (focal length from fx over a horizontal sensor fit,
  pixel aspect from fy / fx, lens shift from the principal point); per-frame pose
  from the OpenCV cam_to_world (Blender cameras look down their -z, y up).
- Objects: the rasteriser's own triangle meshes (``geometry.build_mesh``) with their
  vertex normals and UVs; ``pass_index`` = instance id (object i -> i + 1), so
  Cycles' object-index pass is the instance buffer. A flammable object has its burn
  map's mesh and a ``char`` colour attribute that multiplies its base colour, set per
  frame from the State (``show_burn``) with the rasteriser's factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from hybrid.camera import intrinsics
from hybrid.geometry import build_mesh
from hybrid.render.environment import EnvironmentMap, environment_map
from hybrid.render.materials import ambient_radiance, display_to_linear
from hybrid.transforms import CV_TO_GL, frame_with_z
from hybrid.scene.spec import AmbientLight, AreaLight, DirectionalLight, Look, PointLight, Scene, SpotLight

# Blender's point and spot lights radiate P / (4 pi) W/sr for a power of P watts.
POINT_POWER_PER_INTENSITY = 4.0 * math.pi
# A Blender area light of power P is a one-sided Lambertian emitter of radiance
# P / (pi A): on its axis it radiates L A = P / pi W/sr.
AREA_POWER_PER_INTENSITY = math.pi
SENSOR_WIDTH_MM = 36.0  # any width works: the focal length is scaled to it


class MappingError(ValueError):
    """Something in the scene has no faithful Cycles counterpart; the message names it."""


@dataclass
class BlenderScene:
    """Handles into the built Blender scene: what changes per frame and what tests read back."""

    scene: Any  # bpy.types.Scene
    objects: list = field(default_factory=list)  # bpy objects, scene order (instance id i + 1)
    materials: list = field(default_factory=list)
    lights: list = field(default_factory=list)  # bpy light objects in the scene's light order (ambient excluded)
    camera: Any = None
    world: Any = None
    # Breakables (hybrid.roster): objects has one entry per roster entry, None for a fragment
    # until a State's breaks make it (add_fragment_objects).
    roster: Any = None
    images: dict = field(default_factory=dict)
    built_breaks: set = field(default_factory=set)
    # Flammable objects by scene index: (Blender mesh, scene_build.BurnDrawing).
    burn: dict = field(default_factory=dict)


def spot_blend(inner_deg: float, outer_deg: float) -> float:
    """Blender's spot_blend that makes full brightness start at the inner cone.

    Cycles ramps a spot from 0 at cos(outer) to 1 at cos(outer) + blend x (1 - cos(outer)).
    """
    c_in, c_out = math.cos(math.radians(inner_deg)), math.cos(math.radians(outer_deg))
    return float(np.clip((c_in - c_out) / (1.0 - c_out), 0.0, 1.0))


def camera_settings(K: np.ndarray, width: int, height: int) -> dict[str, float]:
    """Blender camera settings that reproduce the pinhole K at width x height pixels.

    With a horizontal sensor fit the frame is ``sensor_width`` wide at focal length
    ``lens``, so fx = lens x width / sensor_width; fy differs from fx through the
    pixel aspect. Lens shift is in units of the frame width for both axes: a point
    on the optical axis lands at u = W/2 - shift_x W and v = H/2 + shift_y W (v down).
    """
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    if abs(K[0, 1]) > 1e-9 * fx:
        raise MappingError("a skewed K (K[0, 1] != 0) has no Blender camera; use square pixel axes")
    return {
        "lens": fx * SENSOR_WIDTH_MM / width,
        "sensor_width": SENSOR_WIDTH_MM,
        "shift_x": (width / 2.0 - cx) / width,
        "shift_y": (cy - height / 2.0) / width,
        # Blender stretches pixels by aspect_y / aspect_x; fy = fx x aspect_x / aspect_y.
        "pixel_aspect_x": max(1.0, fx / fy),
        "pixel_aspect_y": max(1.0, fy / fx),
    }


def _matrix(pose: np.ndarray):
    from mathutils import Matrix

    return Matrix(np.asarray(pose, dtype=np.float64).tolist())


def fill_mesh(me, verts: np.ndarray, faces: np.ndarray) -> None:
    """Give the empty Blender mesh `me` these vertices (V, 3) and triangles (F, 3), smooth-shaded."""
    verts = np.ascontiguousarray(verts, dtype=np.float32)
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    me.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    me.update()


CHAR_ATTRIBUTE = "char"  # a flammable object's per-vertex colour factor (scene_build.char_multiplier)


def _mesh(bpy, name: str, obj, seed: int, burn=None):
    """The rasteriser's triangle mesh of `obj` as a Blender mesh, with its vertex normals and UVs
    (with `burn`, a ``BurnDrawing``: its burn-map mesh, as the rasteriser draws it, with a `char`
    colour attribute)."""
    tri = burn.mesh if burn is not None else build_mesh(obj.shape, seed=seed)
    verts = np.asarray(tri.vertices, dtype=np.float32)
    faces = np.asarray(tri.faces, dtype=np.int32)
    me = bpy.data.meshes.new(name)
    fill_mesh(me, verts, faces)
    uv = getattr(tri.visual, "uv", None)
    if uv is not None and len(uv) == len(verts):
        layer = me.uv_layers.new(name="UVMap")
        # The same (u, v) as the rasteriser: pyrender flips an image's rows before the
        # upload, so there as in Blender v = 0 is the image's bottom row.
        loop_uv = np.asarray(uv, dtype=np.float32)[faces.ravel()]
        layer.data.foreach_set("uv", loop_uv.ravel())
    me.normals_split_custom_set_from_vertices(np.asarray(tri.vertex_normals, dtype=np.float64).tolist())
    if burn is not None:
        attr = me.color_attributes.new(name=CHAR_ATTRIBUTE, type="FLOAT_COLOR", domain="POINT")
        attr.data.foreach_set("color", np.ones(4 * len(verts), dtype=np.float32))
    return me


def _char_factor(nt, bsdf) -> None:
    """Multiply the Base Color by the mesh's `char` attribute (linear factors, as the rasteriser's)."""
    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_name = CHAR_ATTRIBUTE
    mix = nt.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MULTIPLY"
    mix.inputs["Factor"].default_value = 1.0
    base = bsdf.inputs["Base Color"]
    if base.is_linked:
        nt.links.new(base.links[0].from_socket, mix.inputs[6])
    else:
        mix.inputs[6].default_value = tuple(base.default_value)
    nt.links.new(attr.outputs["Color"], mix.inputs[7])
    nt.links.new(mix.outputs[2], base)


def show_burn(built: "BlenderScene", burn) -> None:
    """Set every flammable object's char from ``burn`` (``BurnFrame``), as the rasteriser draws it."""
    if burn is None or not built.burn:
        return
    for k, index in enumerate(burn.index):
        entry = built.burn.get(index)
        if entry is None:
            continue
        me, drawing = entry
        rgba = drawing.colors(burn.char[k])
        if rgba is None:
            continue
        me.color_attributes[CHAR_ATTRIBUTE].data.foreach_set("color", rgba.ravel())
        me.update()


def _material(bpy, name: str, look: Look, images: dict):
    """A Principled BSDF for `look`: every Look field lands on one BSDF input."""
    mat = bpy.data.materials.new(name)
    nt = mat.node_tree
    bsdf = nt.nodes.get("Principled BSDF")
    if bsdf is None:  # pragma: no cover - bpy builds new materials with one
        raise MappingError("this Blender's new materials have no Principled BSDF node")
    color = (*display_to_linear(look.color), 1.0)
    bsdf.inputs["Base Color"].default_value = color
    bsdf.inputs["Metallic"].default_value = float(look.metallic)
    bsdf.inputs["Roughness"].default_value = float(look.roughness)
    bsdf.inputs["Transmission Weight"].default_value = float(look.transmission)
    bsdf.inputs["IOR"].default_value = float(look.ior)
    bsdf.inputs["Emission Color"].default_value = (*display_to_linear(look.emission), 1.0)
    bsdf.inputs["Emission Strength"].default_value = float(look.emission_strength)
    if look.texture:
        import os

        path = os.path.abspath(look.texture)
        if path not in images:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"texture image not found: {look.texture}")
            image = bpy.data.images.load(path, check_existing=True)
            image.colorspace_settings.name = "sRGB"
            images[path] = image
        tex = nt.nodes.new("ShaderNodeTexImage")
        tex.image = images[path]
        tex.interpolation = "Linear"
        tex.extension = "REPEAT"  # planes tile in metres, as in the rasteriser
        mix = nt.nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.blend_type = "MULTIPLY"
        mix.inputs["Factor"].default_value = 1.0
        mix.inputs[6].default_value = color  # A (RGBA)
        nt.links.new(tex.outputs["Color"], mix.inputs[7])  # B (RGBA)
        nt.links.new(mix.outputs[2], bsdf.inputs["Base Color"])
    return mat


def _world(bpy, scene: Scene):
    """Camera rays that miss see the background (or the visible environment); every other ray sees
    the ambient light plus the environment."""
    ambient = ambient_radiance(scene.lights)
    env = environment_map(scene)
    world = bpy.data.worlds.new("world")
    nt = world.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputWorld")
    lit = nt.nodes.new("ShaderNodeBackground")
    lit.inputs["Color"].default_value = (*ambient, 1.0)
    lit.inputs["Strength"].default_value = 1.0
    seen = nt.nodes.new("ShaderNodeBackground")
    seen.inputs["Color"].default_value = (*display_to_linear(scene.background), 1.0)
    seen.inputs["Strength"].default_value = 1.0
    if env is not None:
        radiance = environment_texture(bpy, nt, env)
        # ambient + environment, one Background node (ambient radiance as a constant colour).
        add = nt.nodes.new("ShaderNodeMix")
        add.data_type = "RGBA"
        add.blend_type = "ADD"
        add.clamp_result = False
        add.inputs["Factor"].default_value = 1.0
        add.inputs[6].default_value = (*ambient, 1.0)  # A (RGBA)
        nt.links.new(radiance, add.inputs[7])  # B (RGBA)
        nt.links.new(add.outputs[2], lit.inputs["Color"])
        if env.visible:
            nt.links.new(radiance, seen.inputs["Color"])
    nt.links.new(by_ray(nt, "Is Camera Ray", lit.outputs[0], seen.outputs[0]), out.inputs["Surface"])
    return world


def environment_texture(bpy, nt, env: EnvironmentMap):
    """A colour socket of world node tree `nt`: the environment's linear radiance along each ray.

    The equirect table becomes a 32-bit float image (Blender stores rows bottom-up),
    sampled bilinearly by an Environment Texture node; the ray direction reaches it
    through a Mapping node that turns it by -rotation about z, so that what the
    unturned table shows at azimuth phi is seen at phi + rotation.
    """
    table, rotation_deg = env.table()
    h, w = table.shape[:2]
    image = bpy.data.images.new("environment", width=w, height=h, alpha=True, float_buffer=True)
    image.colorspace_settings.name = "Linear Rec.709"
    rgba = np.ones((h, w, 4), dtype=np.float32)
    rgba[..., :3] = table[::-1]
    image.pixels.foreach_set(rgba.ravel())
    image.update()
    tex = nt.nodes.new("ShaderNodeTexEnvironment")
    tex.image = image
    tex.interpolation = "Linear"
    tex.projection = "EQUIRECTANGULAR"
    coords = nt.nodes.new("ShaderNodeTexCoord")
    mapping = nt.nodes.new("ShaderNodeMapping")
    mapping.vector_type = "POINT"
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, -math.radians(rotation_deg))
    nt.links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    return tex.outputs["Color"]


def by_ray(nt, ray: str, usual, on_ray):
    """A shader socket that is `on_ray` for rays of kind `ray` (a Light Path output) and `usual` for the rest."""
    path = nt.nodes.new("ShaderNodeLightPath")
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(path.outputs[ray], mix.inputs["Fac"])
    nt.links.new(usual, mix.inputs[1])
    nt.links.new(on_ray, mix.inputs[2])
    return mix.outputs[0]


def _light(bpy, index: int, light) -> Optional[Any]:
    color = tuple(float(c) for c in display_to_linear(light.color))
    if isinstance(light, DirectionalLight):
        data = bpy.data.lights.new(f"light{index}", "SUN")
        data.energy = float(light.intensity)
        data.angle = math.radians(light.angular_diameter_deg)
        pose = frame_with_z(-np.asarray(light.direction, dtype=np.float64))
    elif isinstance(light, PointLight):
        data = bpy.data.lights.new(f"light{index}", "POINT")
        data.energy = float(light.intensity) * POINT_POWER_PER_INTENSITY
        data.shadow_soft_size = 0.0
        pose = frame_with_z((0.0, 0.0, 1.0), light.position)
    elif isinstance(light, SpotLight):
        data = bpy.data.lights.new(f"light{index}", "SPOT")
        data.energy = float(light.intensity) * POINT_POWER_PER_INTENSITY
        data.shadow_soft_size = 0.0
        data.spot_size = 2.0 * math.radians(light.outer_cone_deg)
        data.spot_blend = spot_blend(light.inner_cone_deg, light.outer_cone_deg)
        direction = np.asarray(light.look_at, dtype=np.float64) - np.asarray(light.position, dtype=np.float64)
        pose = frame_with_z(-direction, light.position)
    elif isinstance(light, AreaLight):
        data = bpy.data.lights.new(f"light{index}", "AREA")
        data.shape = "RECTANGLE"
        data.size, data.size_y = float(light.size[0]), float(light.size[1])
        data.energy = float(light.intensity) * AREA_POWER_PER_INTENSITY
        direction = np.asarray(light.look_at, dtype=np.float64) - np.asarray(light.position, dtype=np.float64)
        pose = frame_with_z(-direction, light.position)
    elif isinstance(light, AmbientLight):
        return None
    else:
        raise MappingError(f"lights[{index}]: light type {light.type!r} has no Cycles mapping")
    data.color = color
    data.use_shadow = bool(light.shadows)
    ob = bpy.data.objects.new(f"light{index}", data)
    ob.matrix_world = _matrix(pose)
    return ob


def build_blender_scene(bpy, scene: Scene, bscene) -> BlenderScene:
    """Fill the empty Blender scene `bscene` with `scene`'s objects (at their initial poses), lights, world and camera.

    The caller owns bpy's global state: ``hybrid.render.cycles.renderer`` resets it
    first and renders one scene at a time.
    """
    from hybrid.transforms import pose_matrix, rotation_quat

    from hybrid.roster import Roster

    from hybrid.render.scene_build import BurnDrawing

    built = BlenderScene(scene=bscene, roster=Roster.from_scene(scene))
    images = built.images
    for i, obj in enumerate(scene.objects):
        mat = _material(bpy, f"look:{obj.name}", obj.look, images)
        drawing = BurnDrawing.of(obj, scene.seed) if obj.physics.flammable is not None else None
        me = _mesh(bpy, f"mesh:{obj.name}", obj, scene.seed, drawing)
        me.materials.append(mat)
        if drawing is not None:
            _char_factor(mat.node_tree, mat.node_tree.nodes.get("Principled BSDF"))
            built.burn[i] = (me, drawing)
        ob = bpy.data.objects.new(obj.name, me)
        ob.pass_index = i + 1
        ob.matrix_world = _matrix(pose_matrix(obj.position, rotation_quat(obj.rotation_deg, obj.quaternion)))
        bscene.collection.objects.link(ob)
        built.objects.append(ob)
        built.materials.append(mat)
    built.objects.extend([None] * (len(built.roster) - len(scene.objects)))
    for i, light in enumerate(scene.lights):
        ob = _light(bpy, i, light)
        if ob is not None:
            bscene.collection.objects.link(ob)
            built.lights.append(ob)
    built.world = _world(bpy, scene)
    bscene.world = built.world

    cam_data = bpy.data.cameras.new("camera")
    cam_data.type = "PERSP"
    cam_data.sensor_fit = "HORIZONTAL"
    cam_data.clip_start = float(scene.camera.near)
    cam_data.clip_end = float(scene.camera.far)
    cam = bpy.data.objects.new("camera", cam_data)
    bscene.collection.objects.link(cam)
    bscene.camera = cam
    built.camera = cam
    set_camera(built, intrinsics(scene.camera.fov_deg, scene.width, scene.height), scene.width, scene.height)
    return built


def set_camera(built: BlenderScene, K: np.ndarray, width: int, height: int) -> None:
    """Give the Blender camera the pinhole K for a width x height image."""
    settings = camera_settings(K, width, height)
    cam, render = built.camera.data, built.scene.render
    cam.lens, cam.sensor_width = settings["lens"], settings["sensor_width"]
    cam.shift_x, cam.shift_y = settings["shift_x"], settings["shift_y"]
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x, render.pixel_aspect_y = settings["pixel_aspect_x"], settings["pixel_aspect_y"]


def add_fragment_objects(bpy, built: BlenderScene, scene: Scene, breaks) -> None:
    """Give every fragment made by `breaks` (``State.breaks``) a Blender object, once: its outer faces
    with its object's material, its broken faces with the inner look (``hybrid.render.fragments``)."""
    from hybrid.physics.breakables import event_fragments
    from hybrid.render.fragments import fragment_surfaces
    from hybrid.render.scene_build import fragment_looks

    roster = built.roster
    for event in breaks:
        if event.parent in built.built_breaks:
            continue
        root_index = roster.root[event.parent]
        root = scene.objects[root_index]
        parent_mesh = build_mesh(root.shape, seed=scene.seed)
        outer, inner = fragment_looks(root)
        outer_mat = built.materials[root_index] if outer is None else _material(bpy, f"char:{root.name}", outer, built.images)
        inner_mat = _material(bpy, f"inner:{root.name}", inner, built.images)
        for slot, fragment in zip(event.fragments, event_fragments(scene, roster, breaks, event)):
            drawn = fragment_surfaces(fragment, parent_mesh)
            parts = [(m, k) for k, m in enumerate((drawn.outer, drawn.inner)) if m is not None]
            verts = np.concatenate([m.vertices for m, _ in parts])
            offsets = np.cumsum([0] + [len(m.vertices) for m, _ in parts])
            faces = np.concatenate([m.faces + o for (m, _), o in zip(parts, offsets)])
            me = bpy.data.meshes.new(f"mesh:{roster.names[slot]}")
            fill_mesh(me, verts, faces)
            me.materials.append(outer_mat)
            me.materials.append(inner_mat)
            me.polygons.foreach_set(
                "material_index", np.concatenate([np.full(len(m.faces), k, dtype=np.int32) for m, k in parts])
            )
            layer = me.uv_layers.new(name="UVMap")
            uv = np.concatenate([m.uv for m, _ in parts]).astype(np.float32)
            layer.data.foreach_set("uv", uv[faces.ravel()].ravel())
            me.normals_split_custom_set_from_vertices(np.concatenate([m.normals for m, _ in parts]).tolist())
            ob = bpy.data.objects.new(roster.names[slot], me)
            ob.pass_index = slot + 1
            ob.hide_render = True
            built.scene.collection.objects.link(ob)
            built.objects[slot] = ob
        built.built_breaks.add(event.parent)


def pose_frame(
    built: BlenderScene, position: np.ndarray, quaternion: np.ndarray, cam_to_world: np.ndarray, present=None
) -> None:
    """Move every object to its pose in one frame's State, and the camera to cam_to_world (OpenCV axes);
    with `present` (``State.present``), render exactly the objects that exist in the frame."""
    from hybrid.transforms import pose_matrices

    poses = pose_matrices(position, quaternion)
    shown = [True] * len(poses) if present is None else np.asarray(present, dtype=bool).tolist()
    for ob, pose, here in zip(built.objects, poses, shown):
        if ob is None:
            continue
        ob.matrix_world = _matrix(pose)
        if present is not None:
            ob.hide_render = not here
    # Blender cameras have OpenGL axes: x right, y up, looking down -z.
    built.camera.matrix_world = _matrix(np.asarray(cam_to_world, dtype=np.float64) @ CV_TO_GL)
