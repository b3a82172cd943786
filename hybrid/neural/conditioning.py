"""Condition groups: the buffer channels a neural renderer sees, one registry entry per group.

A group turns clip buffers (and, for lights, the clip's metadata) into float32 channels
per frame, ``(T, C, H, W)``, at the model's size. A checkpoint's ``config.json`` lists
the groups it was trained with (``condition``), and they are stacked in that order.
Adding a group is one function decorated with ``@condition_group(...)``.

Resizing: buffers are point-sampled at the centres of the new pixels (nearest) before
a group reads them. The training buffers come from an un-antialiased pass that sees
one surface through each pixel centre (README, "The beauty pass"), so point sampling
gives the model the same kind of input at any source resolution; averaging would blend
surfaces at edges (non-unit normals, mixed albedo, fractional ids) that the model never
saw. Groups that look at neighbours (instance edges) run after resizing, so their
lines keep one-pixel width at the model's size. The beauty target is an anti-aliased
image and is resized with area averaging instead (``target_frames``).
"""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

# Metadata keys a group may need besides buffers: the validated scene (for its lights)
# and the per-frame camera poses (to turn world light directions into camera axes).
LIGHT_METADATA = ("scene_spec", "cam_to_world")

DEPTH_SCALE_M = 5.0  # depth channel = 1 / (1 + depth / 5 m): 0.5 at 5 m, keeps near objects spread out
KEY_ILLUMINANCE_REFERENCE = 3.0  # lux-like units of a scene's default directional light: key channels ~1


class ConditionError(ValueError):
    """A clip cannot supply what a condition group needs; the message names the group, the input and the fix."""


@dataclass(frozen=True)
class ConditionGroup:
    """One registry entry: `make(buffers, metadata, size)` -> float32 (T, channels, h, w).

    `buffers` holds only the group's own buffers, already at `size` = (h, w).
    """

    name: str
    channels: int
    buffers: tuple[str, ...]
    metadata: tuple[str, ...]
    make: Callable[[Mapping[str, np.ndarray], Mapping, tuple[int, int]], np.ndarray]
    doc: str
    # True for field buffers: a clip without them (a scene without `fields:`) has no
    # smoke or liquid anywhere, so the group's channels are exactly 0 there.
    absent_is_zero: bool = False
    # How the group's buffers reach `size`: "nearest" (the surface at each pixel centre,
    # for exact buffers) or "area" (float mean over the pixel, for anti-aliased images
    # such as a beauty frame, the way the target is resized).
    resize: str = "nearest"


CONDITIONS: dict[str, ConditionGroup] = {}


def condition_group(
    name: str,
    channels: int,
    buffers: Sequence[str] = (),
    metadata: Sequence[str] = (),
    absent_is_zero: bool = False,
    resize: str = "nearest",
):
    """Register the decorated function as condition group `name` (its docstring documents the channels).

    ``absent_is_zero``: a clip lacking all of the group's buffers gets zero channels
    instead of an error (for buffers that only scenes with some feature write).
    ``resize``: "nearest" or "area" (see ConditionGroup).
    """
    if resize not in ("nearest", "area"):
        raise ValueError(f"resize must be 'nearest' or 'area', got {resize!r}")

    def register(fn: Callable[[Mapping[str, np.ndarray], Mapping, tuple[int, int]], np.ndarray]):
        if name in CONDITIONS:
            raise ValueError(f"condition group {name!r} is registered twice")
        CONDITIONS[name] = ConditionGroup(
            name, channels, tuple(buffers), tuple(metadata), fn, (fn.__doc__ or "").strip(), absent_is_zero, resize
        )
        return fn

    return register


# ---------------------------------------------------------------- the groups


def _channels_first(x: np.ndarray) -> np.ndarray:
    """(T, H, W) -> (T, 1, H, W); (T, H, W, C) -> (T, C, H, W); float32."""
    x = np.asarray(x, dtype=np.float32)
    return x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@condition_group("albedo", 3, buffers=["albedo"])
def _albedo(buffers, metadata, size):
    """Base colour, sRGB bytes mapped to [-1, 1] (the target's range)."""
    return _channels_first(buffers["albedo"]) / 127.5 - 1.0


@condition_group("normal", 3, buffers=["normal"])
def _normal(buffers, metadata, size):
    """Unit surface normal in camera (OpenCV) axes; 0 on background."""
    return np.nan_to_num(_channels_first(buffers["normal"]))


def depth_channel(depth: np.ndarray) -> np.ndarray:
    """float32, the shape of `depth`: 1 / (1 + depth / 5 m) on surfaces, in (0, 1]; 0 on background."""
    d = np.asarray(depth, dtype=np.float32)
    return np.where(d > 0, 1.0 / (1.0 + d / DEPTH_SCALE_M), 0.0).astype(np.float32)


@condition_group("depth", 1, buffers=["depth"])
def _depth(buffers, metadata, size):
    """1 / (1 + depth / 5 m) on surfaces, in (0, 1]; 0 on background (nothing hit)."""
    return _channels_first(depth_channel(buffers["depth"]))


@condition_group("mask", 1, buffers=["depth"])
def _mask(buffers, metadata, size):
    """1 where a surface was hit, 0 on background."""
    return _channels_first(np.asarray(buffers["depth"]) > 0)


@condition_group("instance_edges", 1, buffers=["instance"])
def _instance_edges(buffers, metadata, size):
    """1 on both sides of a boundary between instance ids (4-neighbours), else 0: object outlines."""
    return _channels_first(instance_boundaries(buffers["instance"]))


def instance_boundaries(instance: np.ndarray) -> np.ndarray:
    """bool, the shape of `instance` (T, H, W): True on both sides of every change of id between 4-neighbours."""
    ids = np.asarray(instance)
    edge = np.zeros(ids.shape, dtype=bool)
    dx = ids[:, :, 1:] != ids[:, :, :-1]
    dy = ids[:, 1:, :] != ids[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge


GAS_TEMPERATURE_SCALE_K = 500.0  # temperature channel = 1 - exp(-T / 500 K): 0.86 at a 1000 K flame
LIQUID_THICKNESS_SCALE_M = 0.1  # thickness channel = 1 - exp(-t / 0.1 m)
FLUID_MOTION_SCALE_PX = 4.0  # motion channels = tanh(v / 4 px per frame)


@condition_group("gas", 2, buffers=["gas_density", "gas_temperature"], absent_is_zero=True)
def _gas(buffers, metadata, size):
    """Smoke and fire seen through each pixel: 1 - exp(-integrated concentration) and
    1 - exp(-hottest temperature above ambient / 500 K); 0 without gas."""
    dens = np.asarray(buffers["gas_density"], dtype=np.float32)
    temp = np.asarray(buffers["gas_temperature"], dtype=np.float32)
    return np.stack([1.0 - np.exp(-np.maximum(dens, 0)), 1.0 - np.exp(-np.maximum(temp, 0) / GAS_TEMPERATURE_SCALE_K)], axis=1)


@condition_group("liquid", 2, buffers=["liquid_mask", "liquid_thickness"], absent_is_zero=True)
def _liquid(buffers, metadata, size):
    """Liquid surface in front (mask 0/1) and 1 - exp(-thickness / 0.1 m); 0 without liquid."""
    mask = np.asarray(buffers["liquid_mask"], dtype=np.float32)
    thick = np.asarray(buffers["liquid_thickness"], dtype=np.float32)
    return np.stack([mask, 1.0 - np.exp(-np.maximum(thick, 0) / LIQUID_THICKNESS_SCALE_M)], axis=1)


@condition_group("fluid_motion", 2, buffers=["fluid_velocity"], absent_is_zero=True)
def _fluid_motion(buffers, metadata, size):
    """tanh(screen motion of the fluid / 4 px per frame), (dx, dy); 0 without fluids."""
    return np.tanh(_channels_first(np.nan_to_num(buffers["fluid_velocity"])) / FLUID_MOTION_SCALE_PX)


@condition_group("light", 9, metadata=LIGHT_METADATA)
def _light(buffers, metadata, size):
    """Per frame, constant over the image: direction towards the key light in camera axes (3, unit),
    key light colour x illuminance / 3 lux (3), ambient colour x intensity (3)."""
    light = scene_lights(metadata)
    to_light = key_direction_camera(metadata)  # (T, 3)
    t, (h, w) = to_light.shape[0], size
    per_frame = np.concatenate(
        [to_light, np.broadcast_to(light.key_rgb, (t, 3)), np.broadcast_to(light.ambient_rgb, (t, 3))], axis=1
    ).astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(per_frame[:, :, None, None], (t, 9, h, w)))


@functools.lru_cache(maxsize=64)
def _scene_surroundings(lights_json: str, environment_json: str):
    """(ambient (3,) linear radiance, EnvironmentMap or None, its (9, 3) SH coefficients or None) from the
    JSON of a scene_spec's lights and environment; cached, as every window of a clip asks again."""
    from pydantic import TypeAdapter

    from hybrid.render.environment import EnvironmentMap
    from hybrid.render.materials import ambient_radiance
    from hybrid.render.sh import environment_sh
    from hybrid.scene.spec import Environment, Light

    lights = TypeAdapter(list[Light]).validate_python(json.loads(lights_json))
    env_spec = json.loads(environment_json)
    if env_spec is None:
        return ambient_radiance(lights), None, None
    try:
        env = EnvironmentMap.from_spec(TypeAdapter(Environment).validate_python(env_spec))
    except (OSError, ValueError) as err:
        raise ConditionError(
            f"condition group 'environment': the clip's environment ({env_spec.get('type')!r}) cannot be "
            f"read: {err}; keep its image file where metadata.json's scene_spec.environment.path points, "
            f"or use a checkpoint whose config.json `condition` does not list 'environment'"
        ) from err
    return ambient_radiance(lights), env, environment_sh(env)


ENVIRONMENT_SCALE = 1.0  # environment channels = 1 - exp(-radiance / 1): 0.63 for radiance 1 (a white ambient light of intensity 1)
# Metadata the environment group reads: the scene (ambient lights, background, environment),
# the per-frame camera poses and intrinsics, and the clip's full resolution (to scale K).
ENVIRONMENT_METADATA = ("scene_spec", "cam_to_world", "K", "resolution")


@condition_group("environment", 6, buffers=["normal", "depth"], metadata=ENVIRONMENT_METADATA)
def _environment(buffers, metadata, size):
    """Light from all around, 1 - exp(-linear radiance) per pixel: (0-2) the ambient lights plus the
    environment's irradiance over pi at the surface normal, E(n) / pi (the diffuse light a white
    matte surface there would send back, before shadowing); (3-5) the ambient plus the environment's
    radiance along the view ray mirrored about the normal (what a mirror there would show). On the
    background both hold what the camera sees there: the environment along the pixel's ray when it is
    visible, else the scene's background colour."""
    from hybrid.render.environment import pixel_ray_directions
    from hybrid.render.materials import display_to_linear
    from hybrid.render.sh import irradiance

    spec = metadata["scene_spec"]
    ambient, env, coeffs = _scene_surroundings(json.dumps(spec.get("lights", []), sort_keys=True),
                                               json.dumps(spec.get("environment"), sort_keys=True))
    background = display_to_linear(spec.get("background", (0.0, 0.0, 0.0)))

    h, w = size
    full_w, full_h = (int(v) for v in metadata["resolution"])
    K = np.asarray(metadata["K"], dtype=np.float64).copy()
    K[0] *= w / full_w  # the same camera at the model's size: pixel units scale with the image
    K[1] *= h / full_h
    cam_to_world = np.asarray(metadata["cam_to_world"], dtype=np.float64)  # (T, 4, 4)
    normals = np.nan_to_num(np.asarray(buffers["normal"], dtype=np.float64))  # (T, h, w, 3) camera axes
    hit = np.asarray(buffers["depth"]) > 0  # (T, h, w)
    out = np.empty((normals.shape[0], 6, h, w), dtype=np.float32)
    for t in range(normals.shape[0]):
        rot = cam_to_world[t, :3, :3]
        rays = pixel_ray_directions(K, cam_to_world[t], w, h)
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        n = normals[t] @ rot.T  # camera -> world axes
        mirror = rays - 2.0 * np.sum(rays * n, axis=-1, keepdims=True) * n
        diffuse = np.broadcast_to(ambient, n.shape).copy()
        specular = diffuse.copy()
        if env is not None:
            diffuse += irradiance(coeffs, n) / np.pi
            specular += env.radiance(mirror)
        seen = env.radiance(rays) if env is not None and env.visible else np.broadcast_to(background, n.shape)
        diffuse = np.where(hit[t][..., None], diffuse, seen)
        specular = np.where(hit[t][..., None], specular, seen)
        out[t] = (1.0 - np.exp(-np.concatenate([diffuse, specular], axis=-1) / ENVIRONMENT_SCALE)).transpose(2, 0, 1)
    return out


@condition_group("ndotl", 1, buffers=["normal"], metadata=LIGHT_METADATA)
def _ndotl(buffers, metadata, size):
    """max(0, n . l): Lambert's cosine between the surface normal and the direction to the key light; 0 on background."""
    n = np.nan_to_num(np.asarray(buffers["normal"], dtype=np.float32))  # (T, H, W, 3)
    to_light = key_direction_camera(metadata).astype(np.float32)  # (T, 3)
    return _channels_first(np.maximum(np.einsum("thwc,tc->thw", n, to_light), 0.0))


@condition_group("raster_beauty", 3, buffers=["rgb_raster"], resize="area")
def _raster_beauty(buffers, metadata, size):
    """The rasteriser's beauty frame (direct light, shadow maps, ambient), sRGB mapped to [-1, 1] like
    the target and area-resized the same way: what the model corrects (a clip rendered by the
    rasteriser supplies its rgb)."""
    return np.clip(_channels_first(buffers["rgb_raster"]) / 127.5 - 1.0, -1.0, 1.0)


EMISSION_SCALE = 1.0  # emission channel = 1 - exp(-radiance / 1): 0.63 for a white emitter of strength 1


@condition_group("material", 4, buffers=["instance"], metadata=("scene_spec",))
def _material(buffers, metadata, size):
    """Per pixel, from the look of the object seen (instance id -> scene object): roughness,
    metallic, transmission and 1 - exp(-emitted radiance), the decoded emission colour's mean
    x emission_strength; 0 on background. Exact: looks are uniform over an object. A fragment
    of a breakable object (ids after the scene's objects: metadata.json ``objects`` names its
    ``root``) takes its object's look, also on its broken faces."""
    from hybrid.render.materials import display_to_linear
    from hybrid.scene.spec import Look

    objects = metadata["scene_spec"].get("objects", [])
    entries = metadata.get("objects") or []
    names = [obj.get("name") for obj in objects]
    roots = [names.index(e["root"]) for e in entries[len(objects):] if e.get("root") in names]
    table = np.zeros((len(objects) + 1 + len(roots), 4), dtype=np.float32)  # row 0: background
    for i, obj in enumerate(objects):
        look = Look.model_validate(obj.get("look") or {})  # the dump leaves out defaults: the spec fills them in
        emitted = float(np.mean(display_to_linear(look.emission))) * look.emission_strength
        table[i + 1] = (look.roughness, look.metallic, look.transmission, 1.0 - np.exp(-emitted / EMISSION_SCALE))
    for k, root in enumerate(roots):
        table[len(objects) + 1 + k] = table[root + 1]
    ids = np.asarray(buffers["instance"]).astype(np.int64)
    if ids.size and ids.max() >= len(table):
        raise ConditionError(
            f"condition group 'material': instance id {int(ids.max())} has no object in the clip's scene_spec "
            f"({len(objects)} objects); the buffers and metadata.json come from different clips"
        )
    return np.ascontiguousarray(table[ids].transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- lights from metadata


@dataclass(frozen=True)
class SceneLights:
    """The key light and ambient of a scene, world axes.

    travel: (3,) unit direction the key light travels (zero when the scene has none);
    key_rgb: (3,) its colour x illuminance / KEY_ILLUMINANCE_REFERENCE; ambient_rgb: (3,)
    ambient colour x intensity (summed over ambient lights).
    """

    travel: np.ndarray
    key_rgb: np.ndarray
    ambient_rgb: np.ndarray


def scene_lights(metadata: Mapping) -> SceneLights:
    """The key light: the brightest directional light; with none, the brightest spot light (its
    illuminance where it is aimed, candela / distance^2); with neither, no key light (zeros).

    Brightness is illuminance x the colour's mean, so a dim coloured light does not win over a white sun.
    """
    spec = metadata["scene_spec"]
    ambient = np.zeros(3)
    best: Optional[tuple[float, np.ndarray, np.ndarray]] = None
    for kind in ("directional", "spot"):
        for light in spec.get("lights", []):
            color = np.asarray(light.get("color", (1.0, 1.0, 1.0)), dtype=np.float64)
            intensity = float(light.get("intensity", 0.0))
            if light["type"] == "ambient" and kind == "directional":
                ambient += color * intensity
            if light["type"] != kind:
                continue
            if kind == "directional":
                travel = np.asarray(light["direction"], dtype=np.float64)
                lux = intensity
            else:
                travel = np.asarray(light.get("look_at", (0.0, 0.0, 0.0)), float) - np.asarray(light["position"], float)
                lux = intensity / max(float(np.dot(travel, travel)), 1e-6)
            norm = np.linalg.norm(travel)
            if norm == 0:
                continue
            score = lux * float(color.mean())
            if best is None or score > best[0]:
                best = (score, travel / norm, color * lux / KEY_ILLUMINANCE_REFERENCE)
        if best is not None:
            break
    if best is None:
        return SceneLights(np.zeros(3), np.zeros(3), ambient)
    return SceneLights(best[1], best[2], ambient)


def key_direction_camera(metadata: Mapping) -> np.ndarray:
    """(T, 3) unit direction from a surface towards the key light in each frame's camera (OpenCV) axes; zeros without one."""
    cam_to_world = np.asarray(metadata["cam_to_world"], dtype=np.float64)  # (T, 4, 4)
    to_light_world = -scene_lights(metadata).travel
    # A direction transforms with the rotation only: camera = R^T world.
    return np.einsum("tji,j->ti", cam_to_world[:, :3, :3], to_light_world)


# ---------------------------------------------------------------- building the condition


def _groups(names: Iterable[str]) -> list[ConditionGroup]:
    out = []
    for name in names:
        group = CONDITIONS.get(name)
        if group is None:
            near = difflib.get_close_matches(name, list(CONDITIONS), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConditionError(f"unknown condition group {name!r}{hint}; known groups: {', '.join(CONDITIONS)}")
        out.append(group)
    return out


def required_buffers(names: Iterable[str]) -> set[str]:
    """The buffers the groups `names` read."""
    return {b for g in _groups(names) for b in g.buffers}


def read_buffers(names: Iterable[str], held: Iterable[str]) -> set[str]:
    """The buffers the groups `names` read from a clip or dataset holding `held`: all of
    each group's, but none of a group that may be absent (``absent_is_zero``: the field
    groups) and has none of its buffers there. What this lists and `held` lacks is missing."""
    held = set(held)
    return {
        b for g in _groups(names)
        if not (g.absent_is_zero and not any(x in held for x in g.buffers))
        for b in g.buffers
    }


def condition_offsets(names: Iterable[str]) -> dict[str, int]:
    """The first channel of each group in the stacked condition of groups `names`."""
    out, at = {}, 0
    for g in _groups(names):
        out[g.name], at = at, at + g.channels
    return out


def condition_channels(names: Iterable[str]) -> int:
    """Channels of the stacked condition for groups `names`."""
    return sum(g.channels for g in _groups(names))


def check_condition_inputs(buffers: Mapping[str, object], metadata: Mapping, names: Iterable[str]) -> None:
    """Raise ConditionError naming the first group whose buffer or metadata the clip lacks, and what to do."""
    for group in _groups(names):
        if group.absent_is_zero and not any(b in buffers for b in group.buffers):
            continue
        for b in group.buffers:
            if b not in buffers:
                raise ConditionError(
                    f"condition group {group.name!r} needs the buffer {b!r}, which this clip does not have "
                    f"(it has: {', '.join(sorted(buffers)) or 'none'}). Render the clip with `hybrid render` or "
                    f"`hybrid dataset generate`, which write every buffer, or use a checkpoint whose config.json "
                    f"`condition` does not list {group.name!r}"
                )
        for key in group.metadata:
            if key not in metadata:
                raise ConditionError(
                    f"condition group {group.name!r} needs {key!r} in the clip's metadata, which it does not have. "
                    f"Use the metadata.json written with the clip (it holds the scene's lights and camera poses), "
                    f"or a checkpoint whose config.json `condition` does not list {group.name!r}"
                )


def resize_nearest(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, ...) point-sampled at the centres of a (h, w) = `size` pixel grid over the same image."""
    arr = np.asarray(arr)
    height, width = arr.shape[1:3]
    h, w = size
    if (h, w) == (height, width):
        return arr
    rows = np.minimum(((np.arange(h) + 0.5) * height / h).astype(np.intp), height - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * width / w).astype(np.intp), width - 1)
    return arr[:, rows][:, :, cols]


def build_condition(
    buffers: Mapping[str, np.ndarray], metadata: Mapping, names: Sequence[str], size: tuple[int, int]
) -> np.ndarray:
    """float32 (T, C, h, w): the groups `names` stacked in order, at `size` = (h, w) pixels.

    buffers: the clip's buffers with a leading T axis (NumPy arrays or CPU tensors);
    metadata: the clip's metadata dict (metadata.json). Raises ConditionError when the
    clip lacks something a group needs.
    """
    groups = _groups(names)
    check_condition_inputs(buffers, metadata, names)
    needed = {(b, g.resize) for g in groups for b in g.buffers if b in buffers}
    small = {(b, mode): _resize_buffer(np.asarray(buffers[b]), size, mode) for b, mode in needed}
    lengths = {b: len(a) for (b, _), a in small.items()}
    if any(key in metadata for g in groups for key in g.metadata):
        lengths["metadata cam_to_world"] = len(metadata["cam_to_world"])
    if len(set(lengths.values())) > 1:
        raise ConditionError(f"the clip's inputs disagree on the frame count: {lengths}")
    frames = next(iter(lengths.values()), None)
    parts = []
    for g in groups:
        if g.absent_is_zero and not any((b, g.resize) in small for b in g.buffers):
            if frames is None:
                raise ConditionError(f"condition group {g.name!r}: the clip has no buffer to take the frame count from")
            parts.append(np.zeros((frames, g.channels, *size), dtype=np.float32))
            continue
        x = g.make({b: small[(b, g.resize)] for b in g.buffers}, metadata, tuple(size))
        if x.shape[1] != g.channels:
            raise AssertionError(f"condition group {g.name!r} made {x.shape[1]} channels, registered {g.channels}")
        parts.append(x.astype(np.float32, copy=False))
    return np.concatenate(parts, axis=1)


def _resize_buffer(arr: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """(T, H, W, ...) at `size`: point-sampled ("nearest") or float area means ("area", float32)."""
    if mode == "nearest":
        return resize_nearest(arr, size)
    x = np.asarray(arr, dtype=np.float32)
    flat = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    out = _resize_float(flat, size)
    return out[:, 0] if x.ndim == 3 else np.ascontiguousarray(out.transpose(0, 2, 3, 1))


# ---------------------------------------------------------------- frames <-> model range


def _resize_float(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 (T, C, H, W) resized to `size`: area averaging when shrinking, antialiased bilinear otherwise."""
    import torch
    import torch.nn.functional as F

    h, w = size
    if x.shape[2:] == (h, w):
        return x
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if h <= x.shape[2] and w <= x.shape[3]:
        out = F.interpolate(t, size=(h, w), mode="area")
    else:
        out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out.numpy()


def target_frames(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 sRGB (T, H, W, 3) -> float32 (T, 3, h, w) in [-1, 1], resized (in sRGB codes) to `size` = (h, w)."""
    x = np.asarray(rgb, dtype=np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    return np.clip(_resize_float(x, size), -1.0, 1.0)


def frames_to_uint8(x) -> np.ndarray:
    """float (T, 3, H, W) in [-1, 1] (NumPy or tensor) -> uint8 sRGB (T, H, W, 3), values outside clipped."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def resize_uint8_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, h, w, 3) at `size` = (h, w) (area when shrinking, bilinear when enlarging)."""
    x = np.asarray(frames, dtype=np.float32).transpose(0, 3, 1, 2)
    out = _resize_float(x, size)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()
