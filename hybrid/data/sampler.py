"""One concrete scene from a recipe: ``sample_scene(recipe, seed, index) -> Scene``.

The scene is a pure function of (recipe, seed, index): every random draw comes from
``numpy.random.SeedSequence([seed, index])``, never from global state, so clip 5 is
the same whether it is made first, last or alone, in any process. The sequence is
split into independent child streams (camera, lights, floor, object count, one per
object slot), so the draws of one part never shift because another part drew more.

A clip whose draw cannot be used (its objects do not fit: PlacementError) is drawn
again by the dataset generator with ``draw=1, 2, ...``: draw k > 0 seeds from
``SeedSequence([seed, index, k])``, so every redraw is as reproducible as the first
(see ``hybrid.data.generate.draw_clip``). Draw 0 is the sequence above, so clips that
never needed a redraw are what they always were.

What the scene guarantees:

- objects are named ``obj_00``, ``obj_01``, ... (width fixed by the recipe's largest
  count), after the floor, which is always ``floor`` (instance id 1);
- no two objects' bounding spheres overlap at the start, and none reaches below
  the floor (overlapping bodies would be pushed apart violently by the physics);
- with ``placement.in_view``, every object's bounding sphere lies wholly inside the
  first frame's view;
- mesh and texture paths are absolute. Texture files are written into the texture
  cache (``hybrid.data.textures.texture_file``), so the path depends on the cache
  folder (``$HYBRID_CACHE_DIR``), not on anything random.

Placement positions are bounding-sphere centres: shapes are built centred on their
origin (meshes re-centred at their bounding-box centre).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np

from hybrid.data import recipe as rc
from hybrid.data.distributions import ColorDist, pick_index
from hybrid.data.textures import texture_file
from hybrid.scene.spec import Scene
from hybrid.shapes import DrawnShape
from hybrid.transforms import look_at_cam_to_world, quat_to_matrix

# Objects start this far above the floor when resting on it (metres): contact at the
# first step without any initial penetration from rounding.
FLOOR_CLEARANCE = 1e-3

# New streams go at the end: SeedSequence children are numbered, so adding one leaves
# the draws of the others (and every clip of older recipes) unchanged.
_STREAMS = ("scene", "camera", "lights", "floor", "count", "objects", "fields", "environment")


class PlacementError(ValueError):
    """The recipe's placement rules could not be met for one clip (region too crowded)."""


def sample_scene(
    recipe: rc.Recipe,
    seed: int,
    index: int,
    *,
    draw: int = 0,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
) -> Scene:
    """Clip ``index`` of the dataset made from ``recipe`` with ``seed``, as a validated Scene.

    ``seed``, ``index`` and ``draw`` are whole numbers >= 0; ``draw`` picks one of the
    clip's independent alternatives (0, the default, is the clip as first drawn).
    ``cache_dir`` is where procedural textures are written (default
    ``$HYBRID_CACHE_DIR`` or ``~/.cache/hybrid``).
    Raises PlacementError when the objects cannot be placed by the recipe's rules.
    """
    for label, value in (("seed", seed), ("index", index), ("draw", draw)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{label} must be a whole number >= 0, got {value!r}")
    # SeedSequence pads its entropy with zeros, so [seed, index, 0] would be draw 0 again:
    # only later draws add a word.
    root = np.random.SeedSequence([int(seed), int(index)] + ([int(draw)] if draw else []))
    streams = dict(zip(_STREAMS, root.spawn(len(_STREAMS))))
    rng = {name: np.random.default_rng(s) for name, s in streams.items() if name != "objects"}

    clip = recipe.clip
    view = _sample_camera(recipe, rng["camera"])
    textures = functools.partial(_texture, cache_dir=cache_dir)
    objects = [_sample_floor(recipe.floor, rng["floor"], textures)]
    objects += _sample_objects(recipe, streams["objects"], rng["count"], view, textures, seed, index)
    data = {
        "name": f"{recipe.name}_s{int(seed)}_{int(index):06d}",
        "seed": int(streams["scene"].generate_state(1)[0]),
        "fps": clip.fps,
        "frames": clip.frames,
        "resolution": list(clip.resolution),
        "time_scale": clip.time_scale,
        "background": _color(recipe.background, rng["scene"]),
        "physics": recipe.physics.model_dump(),
        "camera": view.spec,
        "lights": _sample_lights(recipe.lights, streams["lights"], view.azimuth_deg),
        "objects": objects,
    }
    if recipe.fields is not None:
        fields = _sample_fields(recipe.fields, rng["fields"])
        if fields is not None:
            data["fields"] = fields
            if "liquid" in fields:  # breakables and a liquid do not go together yet: these stay whole
                for obj in objects:
                    obj["physics"].pop("breakable", None)
        _keep_burnable(objects, data.get("fields"))
    if recipe.environment is not None:
        sky = _sample_sky(recipe.environment, rng["environment"])
        if sky is not None:
            data["environment"] = sky
    if recipe.post is not None:
        data["post"] = recipe.post  # the same effects for every clip: drawn from nothing
    return Scene.model_validate(data)


def _sample_fields(fields: rc.FieldsRecipe, rng: np.random.Generator) -> Optional[dict]:
    """The scene's `fields:` section for one clip, or None when the draws give it no field.

    Draw order (fixed, so one part never shifts another): the gas choice, the emitter
    points, the liquid choice, the liquid level.
    """
    out: dict = {"arch": fields.arch, "deterministic": fields.deterministic, "coupling": fields.coupling}
    u = float(rng.random())
    gas = None
    if fields.fire is not None and u < fields.fire.probability:
        gas = fields.fire
    elif fields.smoke is not None and u < (fields.fire.probability if fields.fire else 0.0) + fields.smoke.probability:
        gas = fields.smoke
    if gas is not None:
        section = gas.gas.model_dump(mode="json")
        if gas.emitter_region is not None:
            lo, hi = np.asarray(gas.emitter_region.min), np.asarray(gas.emitter_region.max)
            for emitter in section["emitters"]:
                emitter["center"] = _floats(lo + (hi - lo) * rng.random(3))
        out["gas"] = section
    if fields.liquid is not None and float(rng.random()) < fields.liquid.probability:
        option = fields.liquid
        section = option.liquid.model_dump(mode="json")
        if option.level is not None:
            level = float(option.level.sample(rng))
            for region in section["fill"]:
                if region["shape"] == "box":
                    region["max"][2] = region["min"][2] + level
        out["liquid"] = section
    return out if ("gas" in out or "liquid" in out) else None


# ---------------------------------------------------------------- small draws


def _sample_sky(sky: rc.SkyDist, rng: np.random.Generator) -> Optional[dict]:
    if rng.random() >= sky.probability:
        return None
    return {
        "type": "sky",
        "zenith": _color(sky.zenith, rng),
        "horizon": _color(sky.horizon, rng),
        "ground": _color(sky.ground, rng),
        "sharpness": sky.sharpness.sample(rng),
        "strength": sky.strength.sample(rng),
        "visible": sky.visible,
    }


def _pick(rng: np.random.Generator, options: Sequence) -> object:
    return options[pick_index(rng, [o.weight for o in options], len(options))]


def _color(dist: ColorDist, rng: np.random.Generator) -> list[float]:
    """sRGB [r, g, b] in 0..1."""
    return dist.sample(rng)


def _texture(
    dist: Optional[rc.TextureDist], rng: np.random.Generator, cache_dir: Optional[Union[str, os.PathLike]]
) -> Optional[str]:
    """A texture file path with the distribution's probability, else None. Always draws the
    same number of values, so whether a texture is used never shifts later draws."""
    if dist is None:
        return None
    use = rng.random() < dist.probability
    option = _pick(rng, dist.kinds)
    variant = int(rng.integers(dist.variants))
    if not use:
        return None
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in option.params.items()}
    return texture_file(option.kind, variant, {**params, "size": dist.size}, cache_dir)


def _direction(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """Unit vector from the centre towards a point at this elevation and azimuth."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    n = np.linalg.norm(v)
    return v / n if n > 1e-12 else np.array([0.0, 0.0, 1.0])


def _floats(values) -> list[float]:
    return [float(v) for v in values]


# ---------------------------------------------------------------- camera


@dataclass(frozen=True)
class _View:
    """The sampled camera: its scene spec and what placement needs of the first frame."""

    spec: dict
    azimuth_deg: float
    cam_to_world: np.ndarray  # (4, 4) first frame, OpenCV axes
    tan_half_fov: tuple[float, float]  # (horizontal, vertical)
    near: float


def _sample_camera(recipe: rc.Recipe, rng: np.random.Generator) -> _View:
    cam = recipe.camera
    target = np.array([d.sample(rng) for d in cam.look_at])
    distance = cam.distance.sample(rng)
    elevation = cam.elevation_deg.sample(rng)
    azimuth = cam.azimuth_deg.sample(rng)
    fov = cam.fov_deg.sample(rng)
    motion = _pick(rng, cam.motion)
    eye = target + distance * _direction(elevation, azimuth)
    out = {
        "motion": "static",
        "position": _floats(eye),
        "look_at": _floats(target),
        "fov_deg": float(fov),
        "near": cam.near,
        "far": cam.far,
    }
    if motion.type == "orbit":
        out.update(
            motion="orbit",
            orbit_radius=float(distance * math.cos(math.radians(elevation))),
            orbit_height=float(eye[2] - target[2]),
            orbit_start_deg=float(azimuth),
            orbit_deg_per_s=float(motion.deg_per_s.sample(rng)),
        )
    elif motion.type == "linear":
        speed = motion.speed.sample(rng)
        heading = rng.uniform(0.0, 2.0 * math.pi)
        clip = recipe.clip
        duration = max(clip.frames - 1, 1) / clip.fps  # video seconds from the first to the last frame
        end = eye + speed * duration * np.array([math.cos(heading), math.sin(heading), 0.0])
        out.update(
            motion="path",
            keyframes=[
                {"t": 0.0, "position": _floats(eye), "look_at": _floats(target)},
                {"t": float(duration), "position": _floats(end), "look_at": _floats(target)},
            ],
        )
    width, height = recipe.clip.resolution
    tan_v = math.tan(math.radians(fov) / 2.0)
    return _View(
        spec=out,
        azimuth_deg=float(azimuth),
        cam_to_world=look_at_cam_to_world(eye, target),
        tan_half_fov=(tan_v * width / height, tan_v),
        near=cam.near,
    )


def sphere_in_view(view_cam_to_world: np.ndarray, tan_half_fov: tuple[float, float], near: float, centre, radius: float) -> bool:
    """Whether a sphere lies wholly inside a pinhole camera's view (OpenCV axes).

    Each side plane of the view frustum passes through the eye; the sphere is inside
    when its centre is at least ``radius`` from every side plane (on the inner side)
    and at least ``radius`` beyond the near plane.
    """
    rot, eye = view_cam_to_world[:3, :3], view_cam_to_world[:3, 3]
    x, y, z = rot.T @ (np.asarray(centre, dtype=np.float64) - eye)
    if z - radius < near:
        return False
    for offset, tan_half in ((x, tan_half_fov[0]), (y, tan_half_fov[1])):
        half = math.atan(tan_half)
        # Distance from the centre to the plane through the eye at angle `half` off the axis.
        if z * math.sin(half) - abs(offset) * math.cos(half) < radius:
            return False
    return True


# ---------------------------------------------------------------- lights


def _sample_lights(lights: rc.LightsSpec, stream: np.random.SeedSequence, camera_azimuth: float) -> list[dict]:
    rngs = [np.random.default_rng(s) for s in stream.spawn(2 + len(lights.extra))]
    turn = camera_azimuth if lights.relative_to_camera else 0.0
    centre = np.asarray(lights.center, dtype=np.float64)
    amb = lights.ambient
    out = [{"type": "ambient", "intensity": amb.intensity.sample(rngs[0]), "color": _color(amb.color, rngs[0])}]
    if lights.key is not None:
        key, rng = lights.key, rngs[1]
        towards = _direction(key.elevation_deg.sample(rng), key.azimuth_deg.sample(rng) + turn)
        out.append(
            {
                "type": "directional",
                "direction": _floats(-towards),  # the way the light travels
                "intensity": key.intensity.sample(rng),
                "color": _color(key.color, rng),
                "shadows": key.shadows,
                # Drawn after the light's other values, so recipes without soft shadows
                # (a constant 0 draws nothing) keep the scenes they always gave.
                "angular_diameter_deg": key.angular_diameter_deg.sample(rng),
                "shadow_samples": key.shadow_samples,
            }
        )
    for light, rng in zip(lights.extra, rngs[2:]):
        present = rng.random() < light.probability
        towards = _direction(light.elevation_deg.sample(rng), light.azimuth_deg.sample(rng) + turn)
        common = {"type": light.type, "intensity": light.intensity.sample(rng), "color": _color(light.color, rng)}
        if light.type == "directional":
            common.update(
                direction=_floats(-towards),
                shadows=light.shadows,
                angular_diameter_deg=light.angular_diameter_deg.sample(rng),
                shadow_samples=light.shadow_samples,
            )
        else:
            position = centre + light.distance.sample(rng) * towards
            common["position"] = _floats(position)
            if light.type == "spot":
                common.update(
                    look_at=_floats(centre),
                    inner_cone_deg=light.inner_cone_deg,
                    outer_cone_deg=light.outer_cone_deg,
                    shadows=light.shadows,
                )
        if present:
            out.append(common)
    return out


# ---------------------------------------------------------------- floor


def _sample_floor(floor: rc.FloorSpec, rng: np.random.Generator, textures: Callable) -> dict:
    color = _color(floor.color, rng)
    texture = textures(floor.texture, rng)
    look = {
        "color": [1.0, 1.0, 1.0] if texture and not floor.texture.tint else color,  # type: ignore[union-attr]
        "metallic": floor.metallic.sample(rng),
        "roughness": floor.roughness.sample(rng),
    }
    if texture:
        look["texture"] = texture
    return {
        "name": "floor",
        "shape": {"type": "plane", "size": list(floor.size), "texture_scale": floor.texture_scale.sample(rng)},
        "physics": {"body": "static", "friction": floor.friction.sample(rng), "restitution": floor.restitution.sample(rng)},
        "look": look,
    }


# ---------------------------------------------------------------- object poses


def _rotation(mode: str, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A quaternion (x, y, z, w): identity, a uniform yaw, or uniform over all rotations."""
    if mode == "yaw":
        half = rng.uniform(0.0, math.pi)
        return (0.0, 0.0, math.sin(half), math.cos(half))
    if mode == "free":
        # A normalised 4D Gaussian is uniform on the unit quaternions (Haar measure).
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        return tuple(float(c) for c in q)  # type: ignore[return-value]
    return (0.0, 0.0, 0.0, 1.0)


# ---------------------------------------------------------------- objects


def _sample_objects(
    recipe: rc.Recipe,
    stream: np.random.SeedSequence,
    count_rng: np.random.Generator,
    view: _View,
    textures: Callable,
    seed: int,
    index: int,
) -> list[dict]:
    objs = recipe.objects
    count = int(round(objs.count.sample(count_rng)))
    slots = recipe.max_objects
    width = max(2, len(str(max(slots - 1, 0))))
    streams = stream.spawn(slots)
    placed: list[tuple[np.ndarray, float]] = []
    out = []
    for i in range(count):
        rng = np.random.default_rng(streams[i])
        name = f"obj_{i:0{width}d}"
        option = _pick(rng, objs.shapes)
        size = (option.size or objs.size).sample(rng)  # type: ignore[union-attr]
        geometry = option.draw(size, rng)
        material = _pick(rng, objs.materials)
        values = {k: material.value(k).sample(rng) for k in ("metallic", "roughness", "friction", "restitution", "density")}
        color = _color(objs.color, rng)
        texture = textures(objs.textures, rng)
        mass = objs.mass.sample(rng) if objs.mass is not None else None
        position, quaternion = _place(recipe, geometry, rng, view, placed, name, seed, index)
        placed.append((position, geometry.radius))
        physics = {
            "friction": values["friction"],
            "restitution": values["restitution"],
            **({"mass": mass} if mass is not None else {"density": values["density"]}),
        }
        if objs.throw is not None:
            physics.update(_throw(objs.throw, position, rng))
        # Drawn last: constants draw nothing, so recipes without glass keep their clips.
        optics = {k: material.value(k).sample(rng) for k in ("transmission", "ior")}
        look = {
            "color": [1.0, 1.0, 1.0] if texture and not objs.textures.tint else color,  # type: ignore[union-attr]
            "metallic": values["metallic"],
            "roughness": values["roughness"],
            **optics,
        }
        if texture:
            look["texture"] = texture
        if objs.breakable is not None:  # drawn last: recipes without breakables keep their clips
            breakable = _breakable(objs.breakable, rng)
            if breakable is not None:
                physics["breakable"] = breakable
        if objs.flammable is not None:  # after those: recipes without flammables keep their clips
            flammable = _flammable(objs.flammable, rng)
            if flammable is not None:
                physics["flammable"] = flammable
        out.append(
            {
                "name": name,
                "shape": geometry.shape,
                "position": _floats(position),
                "quaternion": list(quaternion),
                "physics": physics,
                "look": look,
            }
        )
    return out


def _place(
    recipe: rc.Recipe,
    geometry: DrawnShape,
    rng: np.random.Generator,
    view: _View,
    placed: list[tuple[np.ndarray, float]],
    name: str,
    seed: int,
    index: int,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Rejection sampling of a pose by the recipe's placement rules (see rc.Placement)."""
    rules = recipe.objects.placement
    lo, hi = np.asarray(rules.region.min), np.asarray(rules.region.max)
    for _ in range(rules.max_attempts):
        quaternion = _rotation(rules.rotation, rng)
        position = rng.uniform(lo, hi)
        drop = geometry.drop(quat_to_matrix(quaternion))
        if rules.on_floor:
            position[2] = drop + FLOOR_CLEARANCE
        elif position[2] < drop + FLOOR_CLEARANCE:
            continue
        if any(np.linalg.norm(position - c) < geometry.radius + r + rules.gap for c, r in placed):
            continue
        if rules.in_view and not sphere_in_view(view.cam_to_world, view.tan_half_fov, view.near, position, geometry.radius):
            continue
        return position, quaternion
    rules_text = "without overlapping the objects already placed" + (
        " and wholly inside the first frame's view" if rules.in_view else ""
    )
    raise PlacementError(
        f"recipe {recipe.name!r}, seed {seed}, index {index}: could not place {name} (a {geometry.shape['type']} "
        f"with bounding radius {geometry.radius:.3g} m) in {rules.max_attempts} attempts {rules_text}; enlarge "
        "objects.placement.region, lower objects.count or objects.size, or raise objects.placement.max_attempts"
    )


def _breakable(dist: rc.BreakableDist, rng: np.random.Generator) -> Optional[dict]:
    """The scene's `physics.breakable` block for one object, or None when this one does not break."""
    from hybrid.scene.spec import BREAK_PRESETS

    if not rng.random() < dist.probability:
        return None
    preset = dist.presets[int(rng.integers(len(dist.presets)))]
    out: dict = {"preset": preset, "seed": int(rng.integers(2**31))}
    if dist.pieces is not None:
        out["pieces"] = int(round(dist.pieces.sample(rng)))
    scale = float(dist.threshold_scale.sample(rng))
    if scale != 1.0:
        out["threshold_Ns"] = float(BREAK_PRESETS[preset]["threshold_Ns"]) * scale  # type: ignore[arg-type]
    return out


def _flammable(dist: rc.FlammableDist, rng: np.random.Generator) -> Optional[dict]:
    """The scene's `physics.flammable` block for one object, or None when this one does not burn."""
    if not rng.random() < dist.probability:
        return None
    out: dict = {"preset": dist.presets[int(rng.integers(len(dist.presets)))]}
    lit = rng.random() < dist.lit
    t = float(dist.lit_at.sample(rng))
    if lit:
        out["ignite"] = {"t": t}
    return out


def _keep_burnable(objects: list[dict], fields: Optional[dict]) -> None:
    """Drop `flammable` from every object unless the clip has fire (a gas with combustion) around it,
    and from breakable objects (a scene cannot have both on one object yet); in a clip with a liquid
    the burning objects keep their shape (`collapse: 0`)."""
    gas = (fields or {}).get("gas")
    for obj in objects:
        physics = obj["physics"]
        if "flammable" not in physics:
            continue
        keep = gas is not None and gas.get("combustion") is not None and "breakable" not in physics
        if keep:
            lo, hi = gas["domain"]["min"], gas["domain"]["max"]
            keep = all(lo[a] <= obj["position"][a] <= hi[a] for a in range(3))
        if not keep:
            physics.pop("flammable")
        elif (fields or {}).get("liquid") is not None:
            physics["flammable"]["collapse"] = 0  # no char fragments in a liquid (the scene's rule)


def _throw(throw: rc.Throw, position: np.ndarray, rng: np.random.Generator) -> dict:
    thrown = rng.random() < throw.probability
    velocity = np.array([d.sample(rng) for d in throw.velocity])
    velocity[:2] += throw.pull * (np.asarray(throw.pull_to) - position[:2])
    spin = throw.spin.sample(rng) * _unit_vector(rng)
    if not thrown:
        return {}
    return {"linear_velocity": _floats(velocity), "angular_velocity": _floats(spin)}
