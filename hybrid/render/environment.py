"""The scene's environment (``Scene.environment``): linear radiance arriving from every world direction.

``EnvironmentMap.radiance(directions)`` is the one definition both back ends use:
the rasteriser looks its background pixels up with it and projects it onto spherical
harmonics for its diffuse light (``hybrid.render.sh``); Cycles gets its ``table``, the
equirectangular float image that its Environment Texture node samples (a sky is baked
into one from the same function, the image environment is its own table).

Equirectangular convention (Blender's default, so Cycles needs no extra turn). With a
unit world direction d (z up), azimuth phi = atan2(d_y, d_x) (0 along +x, pi/2 along
+y) and elevation theta = asin(d_z):

    u = 0.5 - (phi - rotation) / (2 pi)   wrapped into [0, 1)    (u = 0 the image's left edge)
    v = 0.5 - theta / pi                   (v = 0 the top row: straight up)

so the centre column (u = 0.5) looks along azimuth ``rotation`` (+x when it is 0),
azimuth grows to the left across the image (seen from inside the sphere the picture
is not mirrored), and a positive ``rotation`` turns the image counterclockwise about
+z seen from above: what the unturned image shows at azimuth phi appears at phi +
rotation. A W x H table has texel (column i, row j) centred at u = (i + 0.5) / W,
v = (j + 0.5) / H; between centres the lookup is bilinear, wrapping around in u and
holding the first and last rows' values towards the poles.

Image files: PNG and JPEG are sRGB-encoded (8 or 16 bit, decoded with the sRGB curve
like textures); OpenEXR (.exr, through the OpenEXR module) and Radiance RGBE (.hdr,
read here: imageio has no reader for it without FreeImage) are linear radiance.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

# A sky is baked into a table this size for Cycles (about 0.35 degrees per texel):
# bilinear lookup of the bake differs from the formula by well under 1 % (test_environment).
SKY_TABLE_SIZE = (1024, 512)


# ---------------------------------------------------------------- directions <-> (u, v)


def direction_to_equirect(directions: np.ndarray, rotation_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) world directions (any length > 0) -> (u in [0, 1), v in [0, 1]) by the module's convention."""
    d = np.asarray(directions, dtype=np.float64)
    length = np.linalg.norm(d, axis=-1)
    phi = np.arctan2(d[..., 1], d[..., 0])
    theta = np.arcsin(np.clip(d[..., 2] / np.maximum(length, 1e-300), -1.0, 1.0))
    u = np.mod(0.5 - (phi - math.radians(rotation_deg)) / (2.0 * math.pi), 1.0)
    v = 0.5 - theta / math.pi
    return u, v


def equirect_to_direction(u: np.ndarray, v: np.ndarray, rotation_deg: float = 0.0) -> np.ndarray:
    """(u, v) -> (..., 3) unit world directions: the inverse of ``direction_to_equirect``."""
    phi = (0.5 - np.asarray(u, dtype=np.float64)) * (2.0 * math.pi) + math.radians(rotation_deg)
    theta = (0.5 - np.asarray(v, dtype=np.float64)) * math.pi
    phi, theta = np.broadcast_arrays(phi, theta)
    c = np.cos(theta)
    return np.stack([c * np.cos(phi), c * np.sin(phi), np.sin(theta)], axis=-1)


def texel_directions(width: int, height: int, rotation_deg: float = 0.0) -> np.ndarray:
    """(H, W, 3) unit directions of a W x H table's texel centres (row 0 the top)."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    return equirect_to_direction(u[None, :], v[:, None], rotation_deg)


def sample_table(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of an (H, W, C) table at (u, v), wrapping in u and clamping in v -> (..., C) float64."""
    h, w = table.shape[:2]
    x = np.asarray(u, dtype=np.float64) * w - 0.5
    y = np.clip(np.asarray(v, dtype=np.float64) * h - 0.5, 0.0, h - 1.0)
    x0 = np.floor(x)
    y0 = np.minimum(np.floor(y), max(h - 2, 0))
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    i0 = np.mod(x0.astype(np.int64), w)
    i1 = np.mod(i0 + 1, w)
    j0 = y0.astype(np.int64)
    j1 = np.minimum(j0 + 1, h - 1)
    t = np.asarray(table, dtype=np.float64)
    top = t[j0, i0] * (1.0 - fx) + t[j0, i1] * fx
    bottom = t[j1, i0] * (1.0 - fx) + t[j1, i1] * fx
    return top * (1.0 - fy) + bottom * fy


# ---------------------------------------------------------------- the environment


@dataclass(frozen=True)
class EnvironmentMap:
    """A scene environment ready to evaluate: the sky's decoded colours or the image's linear table.

    kind: "sky" or "image". For a sky, ``zenith``, ``horizon``, ``ground`` are (3,)
    linear colours and ``sharpness`` the exponent k (see ``SkyEnvironment``); for an
    image, ``image`` is the (H, W, 3) float32 linear table (row 0 the top) and
    ``rotation_deg`` its turn. ``strength`` multiplies either; ``visible`` says whether
    camera rays that miss see it.
    """

    kind: str
    strength: float
    visible: bool
    zenith: Optional[np.ndarray] = None
    horizon: Optional[np.ndarray] = None
    ground: Optional[np.ndarray] = None
    sharpness: float = 1.0
    image: Optional[np.ndarray] = None
    rotation_deg: float = 0.0

    @classmethod
    def from_spec(cls, env) -> "EnvironmentMap":
        """From a ``SkyEnvironment`` or ``ImageEnvironment`` (the image file is read here, once)."""
        from hybrid.render.materials import display_to_linear

        if env.type == "sky":
            return cls(
                kind="sky", strength=float(env.strength), visible=bool(env.visible),
                zenith=display_to_linear(env.zenith), horizon=display_to_linear(env.horizon),
                ground=display_to_linear(env.ground), sharpness=float(env.sharpness),
            )
        if env.type == "image":
            return cls(
                kind="image", strength=float(env.strength), visible=bool(env.visible),
                image=read_environment_image(env.path), rotation_deg=float(env.rotation_deg),
            )
        raise ValueError(f"unknown environment type {env.type!r}")

    def radiance(self, directions: np.ndarray) -> np.ndarray:
        """Linear radiance (..., 3) float64 arriving along world directions (..., 3) (any length > 0)."""
        d = np.asarray(directions, dtype=np.float64)
        if self.kind == "sky":
            z = d[..., 2:3] / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-300)
            t = np.clip(np.abs(z), 0.0, 1.0)
            w = 1.0 - (1.0 - t) ** self.sharpness
            end = np.where(z >= 0.0, self.zenith, self.ground)
            return self.strength * (self.horizon + (end - self.horizon) * w)
        u, v = direction_to_equirect(d, self.rotation_deg)
        return self.strength * sample_table(self.image, u, v)

    def table(self) -> tuple[np.ndarray, float]:
        """(the (H, W, 3) float32 linear equirect table that a renderer samples bilinearly, its rotation in degrees).

        An image environment's table is its image times ``strength``; a sky is baked at
        ``SKY_TABLE_SIZE`` from ``radiance`` at the texel centres (rotation 0).
        """
        if self.kind == "sky":
            w, h = SKY_TABLE_SIZE
            return self.radiance(texel_directions(w, h)).astype(np.float32), 0.0
        return (self.image * np.float32(self.strength)).astype(np.float32), self.rotation_deg


def environment_map(scene) -> Optional[EnvironmentMap]:
    """The scene's environment ready to evaluate, or None when it has none."""
    env = getattr(scene, "environment", None)
    return None if env is None else EnvironmentMap.from_spec(env)


def environment_radiance(env: Union[EnvironmentMap, object], directions: np.ndarray) -> np.ndarray:
    """Linear radiance (..., 3) of an environment (an ``EnvironmentMap`` or its spec) along world directions (..., 3)."""
    if not isinstance(env, EnvironmentMap):
        env = EnvironmentMap.from_spec(env)
    return env.radiance(directions)


# ---------------------------------------------------------------- camera rays


def pixel_ray_directions(K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) world directions (not unit) of the rays through the pixel centres, rows top-down.

    Pixel (row r, column c) has its centre at (c + 0.5, r + 0.5) (``hybrid.camera``); its
    ray leaves along K^-1 (c + 0.5, r + 0.5, 1) in camera (OpenCV) axes, turned by the
    rotation of the (4, 4) OpenCV ``cam_to_world``.
    """
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    v = np.arange(height, dtype=np.float64)[:, None] + 0.5
    u = np.arange(width, dtype=np.float64)[None, :] + 0.5
    y = (v - cy) / fy
    x = (u - cx - skew * y) / fx
    cam = np.stack(np.broadcast_arrays(x, y, np.ones_like(x)), axis=-1)
    return cam @ np.asarray(cam_to_world, dtype=np.float64)[:3, :3].T


def background_radiance(
    env: EnvironmentMap, K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int
) -> np.ndarray:
    """(H, W, 3) float64 linear radiance the camera sees where its rays miss: the environment along each pixel's centre ray."""
    return env.radiance(pixel_ray_directions(K, cam_to_world, width, height))


# ---------------------------------------------------------------- image files


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """The exact piecewise sRGB decoding (IEC 61966-2-1), as the raster shader decodes texels."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def read_environment_image(path: str) -> np.ndarray:
    """An equirectangular image file -> (H, W, 3) float32 linear radiance, row 0 the top.

    Raises ``ValueError`` naming the file and what is wrong with it.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"environment image not found: {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        from hybrid.spec.files import image_problem

        problem, _ = image_problem(path)  # PIL's checks first: imageio can fail with a bare struct.error
        if problem is not None:
            raise ValueError(problem)
    try:
        if suffix == ".exr":
            rgb = _read_exr(path)
        elif suffix == ".hdr":
            rgb = _read_rgbe(path)
        elif suffix in (".png", ".jpg", ".jpeg"):
            rgb = _read_srgb(path)
        else:
            raise ValueError(f"{suffix or 'no'} suffix: use a .png or .jpg (sRGB) or an .exr or .hdr (linear) file")
    except ValueError as err:
        raise ValueError(f"cannot use {path} as an environment image: {err}") from None
    except IndexError:
        raise ValueError(f"cannot use {path} as an environment image: the file ends early (truncated?)") from None
    except (OSError, RuntimeError) as err:  # OpenEXR raises RuntimeError for files it cannot parse
        raise ValueError(f"cannot read the environment image {path} ({err})") from None
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"the environment image {path} is {rgb.shape[1]} x {rgb.shape[0]} pixels; it needs 2 x 2 at least")
    if not np.isfinite(rgb).all() or (rgb < 0).any():
        raise ValueError(f"the environment image {path} holds negative, infinite or NaN values; radiance is finite and >= 0")
    return np.ascontiguousarray(rgb, dtype=np.float32)


def environment_image_problem(path: str) -> Optional[str]:
    """Why the existing file ``path`` cannot be an environment image, or None (checked at scene load)."""
    try:
        read_environment_image(path)
    except (ValueError, FileNotFoundError) as err:
        return str(err)
    return None


def _to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected a 2-D image, got an array of shape {img.shape}")
    return np.repeat(img[..., :1], 3, axis=2) if img.shape[2] < 3 else img[..., :3]


def _read_srgb(path: str) -> np.ndarray:
    import imageio.v3 as iio

    img = np.asarray(iio.imread(path))
    if img.dtype == np.uint8:
        x = img.astype(np.float64) / 255.0
    elif img.dtype == np.uint16:
        x = img.astype(np.float64) / 65535.0
    else:
        raise ValueError(f"unexpected pixel type {img.dtype} for an 8- or 16-bit image")
    return srgb_to_linear(_to_rgb(x))


def _read_exr(path: str) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(path) as f:
        channels = f.channels()
        for name in ("RGBA", "RGB"):
            if name in channels:
                return _to_rgb(np.asarray(channels[name].pixels, dtype=np.float64))
        if all(c in channels for c in "RGB"):
            return np.stack([np.asarray(channels[c].pixels, dtype=np.float64) for c in "RGB"], axis=-1)
        if "Y" in channels:
            return _to_rgb(np.asarray(channels["Y"].pixels, dtype=np.float64))
        raise ValueError(f"no R, G, B (or Y) channels; it has {sorted(channels)}")


def _read_rgbe(path: str) -> np.ndarray:
    """A Radiance RGBE file (flat or run-length encoded scanlines, -Y H +X W orientation)."""
    with open(path, "rb") as f:
        data = f.read()
    if not (data.startswith(b"#?RADIANCE") or data.startswith(b"#?RGBE")):
        raise ValueError("not a Radiance .hdr file (it does not start with #?RADIANCE)")
    pos = 0
    while True:  # header lines up to an empty one
        end = data.find(b"\n", pos)
        if end < 0:
            raise ValueError("the header never ends")
        line = data[pos:end].strip()
        pos = end + 1
        if not line:
            break
        if line.startswith(b"FORMAT=") and line != b"FORMAT=32-bit_rle_rgbe":
            raise ValueError(f"{line.decode(errors='replace')}: only 32-bit_rle_rgbe is read")
    end = data.find(b"\n", pos)
    parts = data[pos:end].split()
    if len(parts) != 4 or parts[0] != b"-Y" or parts[2] != b"+X":
        raise ValueError(f"resolution line {data[pos:end]!r}: only the standard '-Y height +X width' is read")
    height, width = int(parts[1]), int(parts[3])
    pos = end + 1
    rgbe = np.empty((height, width, 4), dtype=np.uint8)
    buf = memoryview(data)
    for row in range(height):
        head = data[pos : pos + 4]
        if 8 <= width < 32768 and len(head) == 4 and head[0] == 2 and head[1] == 2 and (head[2] << 8 | head[3]) == width:
            pos += 4
            for ch in range(4):
                x = 0
                line = rgbe[row, :, ch]
                while x < width:
                    count = data[pos]
                    pos += 1
                    if count > 128:
                        count -= 128
                        line[x : x + count] = data[pos]
                        pos += 1
                    else:
                        if count == 0 or x + count > width:
                            raise ValueError(f"corrupt run in scanline {row}")
                        line[x : x + count] = np.frombuffer(buf[pos : pos + count], dtype=np.uint8)
                        pos += count
                    x += count
        else:
            n = width * 4
            if pos + n > len(data):
                raise ValueError(f"the file ends in scanline {row}")
            rgbe[row] = np.frombuffer(buf[pos : pos + n], dtype=np.uint8).reshape(width, 4)
            pos += n
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0)
    return rgbe[..., :3].astype(np.float64) * scale[..., None]
