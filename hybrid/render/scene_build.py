"""Scene spec -> pyrender scene: one mesh node per object, the camera, lights and background.

Built once per ``Rasterizer``; per frame only node poses change. Meshes come from
``geometry.build_mesh`` in each object's own (shape) frame, so a node's pose is the
object's pose from ``State`` unchanged.

Breakable objects (``hybrid.roster``): ``object_nodes`` has one entry per roster
entry, None for a fragment until a State's breaks make it (``add_fragment_nodes``:
the fragment's outer faces with its object's material, its broken faces with
``look.inner``, ``hybrid.render.fragments``); ``show_present`` hides whatever does
not exist in the frame.

Environment (``Scene.environment``): its nine spherical-harmonic coefficients
(``sh.environment_sh``) light every surface in the beauty shader, unoccluded, on top
of the ambient term; the beauty pass composites its radiance behind the surfaces
where camera rays miss when it is visible.

Flammable objects (``physics.flammable``) are drawn with their burn map's mesh
(``hybrid.fields.burn_surface``: the same surface, finer) and, once they char, a
per-vertex colour that both passes multiply in (``show_burn``), so the albedo buffer
holds the charred colour exactly as the beauty frame lights it.

Fire (``fields.gas.combustion``): ``fields.gas.look.fire_lights`` spot lights,
after the scene's own, that ``show_fire_lights`` places and sets from each frame's
flames (``hybrid.render.fields.fire_lights``), with shadows.

Lights: ambient lights add up into the scene's ambient term; directional, point and
spot lights become pyrender lights. pyrender's shadow switches are per light type,
so ``RenderScene.shadow_flags`` turns on a type when any of its lights asks, and
``RenderScene.shadowless`` lists the lights of such a type that did not ask (the
beauty pass keeps their shadow maps empty). pyrender has no point-light shadows:
a point light asking for them warns and renders unshadowed. pyrender draws at most
``MAX_N_LIGHTS`` lights of each type (the nearest ones per object).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from hybrid.camera import intrinsics
from hybrid.geometry import build_mesh
from hybrid.render.environment import EnvironmentMap, environment_map
from hybrid.render.gl import pyrender
from hybrid.render.materials import MaterialLibrary, SurfaceMaterial, ambient_radiance, display_to_linear
from hybrid.roster import Roster
from hybrid.scene.spec import AreaLight, DirectionalLight, PointLight, Scene, SpotLight
from hybrid.transforms import frame_with_z, pose_matrix, rotation_quat


@dataclass
class RenderScene:
    """A pyrender scene and the handles the passes need.

    object_nodes[i] draws scene object i (instance id i + 1); surfaces[i] is its
    material; camera_node carries an ``IntrinsicsCamera`` whose pose is in OpenGL
    axes; shadow_flags are the pyrender ``RenderFlags`` for the lights' shadows;
    light_nodes are the light nodes in the order the scene lists its lights.

    The passes walk ``object_nodes`` and ``light_nodes`` rather than the pyrender
    scene's node sets: those sets hash nodes by memory address, so their order (and
    with it the order in which the shader sums the lights, which changes the last bit
    of a float) would follow whatever the process allocated before this scene.
    """

    scene: "pyrender.Scene"
    object_nodes: list
    surfaces: list[SurfaceMaterial]
    camera_node: "pyrender.Node"
    background: np.ndarray  # (3,) display colour 0..1
    shadow_flags: int
    shadowless: list = field(default_factory=list)
    # Area-like directional lights: (node, base pose 4x4, cone half-angle in radians).
    soft_lights: list = field(default_factory=list)
    soft_samples: int = 1
    light_nodes: list = field(default_factory=list)
    # The scene's environment (None without one) and its shader coefficients env_sh (9, 3).
    environment: Optional[EnvironmentMap] = None
    environment_sh: Optional[np.ndarray] = None
    # Breakables: the roster, the broken faces' material per fragment entry, the breaks drawn so far.
    roster: Optional[Roster] = None
    inner_surfaces: dict = field(default_factory=dict)
    built_breaks: set = field(default_factory=set)
    library: Optional[MaterialLibrary] = None
    # Flammable objects by scene index: their burn map's mesh and the char drawn on it (show_burn).
    burn: dict = field(default_factory=dict)
    # The lights the flames become each frame (show_fire_lights), after the scene's own in light_nodes.
    fire_nodes: list = field(default_factory=list)

    def surface_for(self, index: int, primitive) -> SurfaceMaterial:
        """The material entry `index` draws `primitive` with (a fragment's broken faces have their own)."""
        inner = self.inner_surfaces.get(index)
        if inner is not None and primitive.material is inner.material:
            return inner
        return self.surfaces[index]

    def drawn_nodes(self) -> list:
        """(index, node) of every entry that has a node."""
        return [(i, node) for i, node in enumerate(self.object_nodes) if node is not None]


@dataclass
class BurnDrawing:
    """How a flammable object's char is drawn, by either back end: its burn map's mesh
    (``hybrid.fields.burn_surface``), the node of each vertex, its look's colour and char colour
    (display values), the back end's material, and the char last drawn."""

    mesh: object
    node: np.ndarray
    base: np.ndarray
    char_color: np.ndarray
    material: object = None
    drawn: Optional[np.ndarray] = None

    @staticmethod
    def of(obj, seed: int, material=None) -> Optional["BurnDrawing"]:
        """The drawing of `obj` (None when it is not flammable): its burn map built once."""
        flammable = obj.physics.flammable
        if flammable is None:
            return None
        from hybrid.fields.burn_surface import burn_surface

        settings = flammable.resolved()
        surf = burn_surface(obj.shape, seed, float(settings["spacing"]))
        return BurnDrawing(
            mesh=surf.mesh, node=surf.node, base=np.asarray(obj.look.color, dtype=np.float64),
            char_color=np.asarray(settings["char_color"], dtype=np.float64), material=material,
        )

    def colors(self, char) -> Optional[np.ndarray]:
        """float32 (V, 4) vertex colours for the burn map's `char` (per node; ``char_multiplier``), or None
        when it is the char last drawn (nothing to send)."""
        char = np.asarray(char, dtype=np.float32)
        if self.drawn is not None and np.array_equal(self.drawn, char):
            return None
        self.drawn = char.copy()
        factor = char_multiplier(self.base, self.char_color, char[self.node])
        return np.concatenate([factor, np.ones((len(factor), 1))], axis=1).astype(np.float32)


def _primitive(mesh, material, color=None) -> "pyrender.Primitive":
    # A Primitive built directly keeps the material (and its texture) shared with
    # the G-buffer pass; Mesh.from_trimesh would deep-copy it.
    return pyrender.Primitive(
        positions=np.asarray(mesh.vertices, dtype=np.float32),
        normals=np.asarray(mesh.vertex_normals, dtype=np.float32),
        texcoord_0=np.asarray(mesh.visual.uv, dtype=np.float32),
        color_0=color,
        indices=np.asarray(mesh.faces, dtype=np.uint32),
        material=material,
    )


def _mesh_node(obj, surface: SurfaceMaterial, seed: int) -> tuple["pyrender.Node", Optional[BurnDrawing]]:
    burn = BurnDrawing.of(obj, seed, surface.material)
    mesh = burn.mesh if burn is not None else build_mesh(obj.shape, seed=seed)
    primitive = _primitive(mesh, surface.material)
    initial = pose_matrix(obj.position, rotation_quat(obj.rotation_deg, obj.quaternion))
    return pyrender.Node(name=obj.name, mesh=pyrender.Mesh([primitive], name=obj.name), matrix=initial), burn


def char_multiplier(base: np.ndarray, char_color: np.ndarray, char: np.ndarray) -> np.ndarray:
    """(V, 3) linear-light factors that turn a surface of display colour `base` into
    (1 - char) base + char x `char_color` (display values) where `char` (V,) is 0..1: the
    beauty shader multiplies radiance by them and the G-buffer its decoded albedo. A
    channel too dark to scale (linear < 1e-4) keeps its factor 1. Textured looks get the
    same factor, so their texture darkens toward the char colour in proportion."""
    from hybrid.render.mipmaps import srgb_decode

    c = np.clip(np.asarray(char, dtype=np.float64), 0.0, 1.0)[:, None]
    target = (1.0 - c) * base[None] + c * char_color[None]
    # The G-buffer decodes and encodes with the exact sRGB curve, so its albedo is `target`.
    lin_base = srgb_decode(np.asarray(base, dtype=np.float64))
    lin_target = srgb_decode(target)
    return np.where(lin_base[None] > 1e-4, lin_target / np.maximum(lin_base[None], 1e-4), 1.0)


def show_fire_lights(rs: "RenderScene", scene: Scene, gas) -> list:
    """Place and set the fire lights from the frame's flames (``hybrid.render.fields.fire_lights``);
    lights without flames go dark. Returns the ``FireLight`` list used."""
    if not rs.fire_nodes:
        return []
    from hybrid.render.fields.fire_lights import DARK_POSITION, fire_lights
    from hybrid.render.fields.gas import flame_emission

    lights = []
    if gas is not None:
        emission = flame_emission(gas, scene.fields.gas.look)
        lights = fire_lights(emission, gas.origin, gas.cell_size, len(rs.fire_nodes))
    for k, node in enumerate(rs.fire_nodes):
        if k < len(lights):
            light = lights[k]
            node.light.color = light.color.astype(np.float32)
            node.light.intensity = float(light.intensity)
            rs.scene.set_pose(node, frame_with_z((0.0, 0.0, 1.0), light.position))
        else:
            # Dark, and far from every surface: the shader divides the intensity by the squared
            # distance, and 0 / 0 on a surface at the light would not be 0.
            node.light.intensity = 0.0
            rs.scene.set_pose(node, frame_with_z((0.0, 0.0, 1.0), DARK_POSITION))
    return lights


def show_burn(rs: "RenderScene", burn) -> None:
    """Draw every flammable object's char as ``burn`` (``BurnFrame``) has it; unchanged maps are not re-sent."""
    if burn is None or not rs.burn:
        return
    for k, index in enumerate(burn.index):
        drawing = rs.burn.get(index)
        if drawing is None:
            continue
        color = drawing.colors(burn.char[k])
        if color is None:
            continue
        node = rs.object_nodes[index]
        visible = node.mesh.is_visible
        node.mesh = pyrender.Mesh([_primitive(drawing.mesh, drawing.material, color)], name=node.name)
        node.mesh.is_visible = visible


def build_render_scene(scene: Scene) -> RenderScene:
    """The pyrender scene for ``scene``, objects at their initial poses, camera at the identity."""
    ambient = ambient_radiance(scene.lights)
    background = np.asarray(scene.background, dtype=np.float64)
    pr_scene = pyrender.Scene(bg_color=np.array([*background, 1.0]), ambient_light=ambient)

    library = MaterialLibrary()
    surfaces = [library.surface(obj.look) for obj in scene.objects]
    built = [_mesh_node(obj, surf, scene.seed) for obj, surf in zip(scene.objects, surfaces)]
    nodes = [node for node, _ in built]
    burn = {i: drawing for i, (_, drawing) in enumerate(built) if drawing is not None}
    for node in nodes:
        pr_scene.add_node(node)
    roster = Roster.from_scene(scene)
    slots = len(roster) - len(nodes)

    flags = pyrender.RenderFlags.NONE
    light_nodes: list = []
    shadowed: list = []
    unshadowed: list = []
    soft: list = []
    soft_samples = 1
    for light in scene.lights:
        if isinstance(light, AreaLight):
            light = light.as_spot()
        color = display_to_linear(light.color)
        if isinstance(light, DirectionalLight):
            node = pyrender.Node(
                light=pyrender.DirectionalLight(color=color, intensity=light.intensity),
                matrix=frame_with_z(-np.asarray(light.direction, dtype=np.float64)),
            )
            kind_flag = pyrender.RenderFlags.SHADOWS_DIRECTIONAL
        elif isinstance(light, SpotLight):
            direction = np.asarray(light.look_at, dtype=np.float64) - np.asarray(light.position, dtype=np.float64)
            if np.linalg.norm(direction) < 1e-12:
                raise ValueError("a spot light's position and look_at coincide")
            node = pyrender.Node(
                light=pyrender.SpotLight(
                    color=color,
                    intensity=light.intensity,
                    innerConeAngle=np.radians(light.inner_cone_deg),
                    outerConeAngle=np.radians(light.outer_cone_deg),
                ),
                matrix=frame_with_z(-direction, light.position),
            )
            kind_flag = pyrender.RenderFlags.SHADOWS_SPOT
        elif isinstance(light, PointLight):
            node = pyrender.Node(
                light=pyrender.PointLight(color=color, intensity=light.intensity),
                matrix=frame_with_z((0.0, 0.0, 1.0), light.position),
            )
            if light.shadows:
                warnings.warn("pyrender has no point-light shadows: this point light renders without them", stacklevel=2)
            kind_flag = None
        else:
            continue
        pr_scene.add_node(node)
        light_nodes.append(node)
        if kind_flag is not None:
            (shadowed if light.shadows else unshadowed).append((node, kind_flag))
        if isinstance(light, DirectionalLight) and light.shadows and light.angular_diameter_deg > 0:
            soft.append((node, node.matrix.copy(), np.radians(light.angular_diameter_deg) / 2.0))
            soft_samples = max(soft_samples, light.shadow_samples)
    fire_nodes = []
    for _ in range(scene.fire_light_count):
        # Off (intensity 0) until show_fire_lights finds flames; looking straight down.
        from hybrid.render.fields.fire_lights import CONE_DEG, CONE_SOFT_DEG, DARK_POSITION

        node = pyrender.Node(
            light=pyrender.SpotLight(
                color=np.ones(3),
                intensity=0.0,
                innerConeAngle=np.radians(CONE_DEG - CONE_SOFT_DEG),
                outerConeAngle=np.radians(CONE_DEG),
            ),
            matrix=frame_with_z((0.0, 0.0, 1.0), DARK_POSITION),
        )
        pr_scene.add_node(node)
        light_nodes.append(node)
        fire_nodes.append(node)
        shadowed.append((node, pyrender.RenderFlags.SHADOWS_SPOT))
    if nodes:  # shadow cameras are fitted to the scene's bounds: none without objects
        for _, kind_flag in shadowed:
            flags |= kind_flag
    shadowless = [node for node, kind_flag in unshadowed if flags & kind_flag]

    cam = scene.camera
    K = intrinsics(cam.fov_deg, scene.width, scene.height)
    camera_node = pyrender.Node(
        camera=pyrender.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], znear=cam.near, zfar=cam.far),
        matrix=np.eye(4),
    )
    pr_scene.add_node(camera_node)
    pr_scene.main_camera_node = camera_node
    env = environment_map(scene)
    if env is not None:
        from hybrid.render.sh import environment_sh, shader_coefficients

        env_sh = shader_coefficients(environment_sh(env))
    return RenderScene(
        scene=pr_scene,
        object_nodes=nodes + [None] * slots,
        surfaces=surfaces + [None] * slots,
        camera_node=camera_node,
        background=background,
        shadow_flags=int(flags),
        shadowless=shadowless,
        soft_lights=soft if nodes else [],
        soft_samples=soft_samples,
        light_nodes=light_nodes,
        environment=env,
        environment_sh=env_sh if env is not None else None,
        roster=roster,
        library=library,
        burn=burn,
        fire_nodes=fire_nodes,
    )


def inner_look(look):
    """The look of a breakable's broken faces: ``look.inner``, else the look without its texture."""
    if look.inner is not None:
        return look.inner
    return look.model_copy(update={"texture": None, "inner": None})


def char_look(obj):
    """The look of the char fragments a consumed flammable object collapses into (None for other objects):
    matte char colour, inside and out."""
    if obj.physics.breakable is not None or obj.physics.flammable is None:
        return None
    color = tuple(float(c) for c in obj.physics.flammable.resolved()["char_color"])
    return obj.look.model_copy(update={
        "color": color, "texture": None, "inner": None, "metallic": 0.0, "roughness": 1.0, "transmission": 0.0,
        "emission_strength": 0.0,
    })


def fragment_looks(obj):
    """(outer look or None for the object's own material, inner look) of an object's fragments."""
    char = char_look(obj)
    if char is not None:
        return char, char
    return None, inner_look(obj.look)


def add_fragment_nodes(rs: RenderScene, scene: Scene, breaks) -> None:
    """Give every fragment made by `breaks` (``State.breaks``) a node, once; new nodes start hidden."""
    from hybrid.physics.breakables import event_fragments
    from hybrid.render.fragments import fragment_surfaces

    roster = rs.roster
    for event in breaks:
        if event.parent in rs.built_breaks:
            continue
        root = scene.objects[roster.root[event.parent]]
        parent_mesh = build_mesh(root.shape, seed=scene.seed)
        outer, inner = fragment_looks(root)
        outer_surface = rs.surfaces[roster.root[event.parent]] if outer is None else rs.library.surface(outer)
        inner_surface = rs.library.surface(inner)
        for slot, fragment in zip(event.fragments, event_fragments(scene, roster, breaks, event)):
            drawn = fragment_surfaces(fragment, parent_mesh)
            primitives = [
                pyrender.Primitive(
                    positions=part.vertices.astype(np.float32),
                    normals=part.normals.astype(np.float32),
                    texcoord_0=part.uv.astype(np.float32),
                    indices=part.faces.astype(np.uint32),
                    material=surface.material,
                )
                for part, surface in ((drawn.outer, outer_surface), (drawn.inner, inner_surface))
                if part is not None
            ]
            mesh = pyrender.Mesh(primitives, name=roster.names[slot])
            mesh.is_visible = False
            node = pyrender.Node(name=roster.names[slot], mesh=mesh, matrix=np.eye(4))
            rs.scene.add_node(node)
            rs.object_nodes[slot] = node
            rs.surfaces[slot] = outer_surface
            rs.inner_surfaces[slot] = inner_surface
        rs.built_breaks.add(event.parent)


def show_present(rs: RenderScene, present) -> None:
    """Show exactly the entries that exist in the frame (`present`: ``State.present``, None = all)."""
    if present is None:
        return
    for node, here in zip(rs.object_nodes, np.asarray(present, dtype=bool).tolist()):
        if node is not None:
            node.mesh.is_visible = here
