"""Surface looks (``Look``: colour, texture, metallic, roughness) -> pyrender materials.

Colour convention. Colours in a scene file and texels in an image are display
(sRGB-encoded) values in 0..1, as a colour picker shows them. The albedo buffer
stores exactly that, multiplied per channel: albedo = color x texel, as bytes
(round(255 x value)); an untextured object's albedo is its colour. The beauty pass
shades in linear light: base-colour textures are sRGB textures whose texels the
sampler decodes before it filters (``mipmaps.py``: far-off texels average as light
does), and the rgb buffer encodes its radiance with gamma 1/2.2 (``beauty.encode_display``),
so the colour factor is decoded here with gamma 2.2, the inverse of that output
curve: an untextured surface under unit white ambient light alone shows its own colour,
apart from the ambient light's specular reflection (the split sum in ``beauty.frag``:
(1 - S) colour + S, with S about 0.016 for a rough dielectric seen head on and more at
grazing angles and on glossy or metallic surfaces). Light colours and the background are decoded the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hybrid.render.gl import pyrender
from hybrid.render.mipmaps import LinearMipTexture
from hybrid.scene.spec import Look

# The rgb buffer's output curve is pow(linear, 1/2.2), as pyrender's was; decoding with
# its inverse keeps colours as written.
DISPLAY_GAMMA = 2.2


def display_to_linear(rgb) -> np.ndarray:
    """Display colour (3,) in 0..1 -> linear colour for pyrender's shading."""
    return np.power(np.asarray(rgb, dtype=np.float64), DISPLAY_GAMMA)


def ambient_radiance(lights) -> np.ndarray:
    """(3,) linear radiance of a scene's ambient lights, summed in scene order (both back ends' ambient term)."""
    total = np.zeros(3)
    for light in lights:
        if light.type == "ambient":
            total += display_to_linear(light.color) * light.intensity
    return total


def load_texture_image(path: str) -> np.ndarray:
    """An image file -> (H, W, 4) uint8 RGBA with opaque alpha (row 0 is the top of the image).

    Grey images are spread to RGB, 16-bit images scaled to 8 bits; alpha is dropped
    because looks are opaque (a translucent texel would make pyrender blend).
    """
    import imageio.v3 as iio

    if not os.path.isfile(path):
        raise FileNotFoundError(f"texture image not found: {path}")
    img = np.asarray(iio.imread(path))
    if img.dtype == np.uint16:
        img = (img.astype(np.float64) / 257.0).round()
    elif np.issubdtype(img.dtype, np.floating):
        img = np.clip(img, 0.0, 1.0) * 255.0
    img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] < 3:
        img = np.repeat(img[..., :1], 3, axis=2)
    rgba = np.full(img.shape[:2] + (4,), 255, dtype=np.uint8)
    rgba[..., :3] = img[..., :3]
    return rgba


@dataclass
class SurfaceMaterial:
    """What both passes need to draw one object's surface.

    material: the pyrender PBR material of the beauty pass.
    color: (3,) display colour 0..1 for the albedo buffer.
    texture: the pyrender texture (shared by both passes), or None.
    """

    material: "pyrender.MetallicRoughnessMaterial"
    color: np.ndarray
    texture: Optional["pyrender.Texture"]


class MaterialLibrary:
    """Builds materials for looks, loading each texture file once per renderer."""

    def __init__(self) -> None:
        self._textures: dict[str, "pyrender.Texture"] = {}

    def texture(self, path: str) -> "pyrender.Texture":
        key = os.path.abspath(path)
        if key not in self._textures:
            self._textures[key] = LinearMipTexture(
                name=os.path.basename(path),
                source=load_texture_image(path),
                source_channels="RGBA",
                sampler=pyrender.Sampler(),  # repeat wrap: planes tile in metres
            )
        return self._textures[key]

    def surface(self, look: Look) -> SurfaceMaterial:
        texture = self.texture(look.texture) if look.texture else None
        # No refraction here: a transmissive surface keeps only the share of its base
        # colour that it does not let through, and lets what is behind it show through
        # by its transmission less its Fresnel reflectance (alpha blending, beauty.frag:
        # the base colour's alpha carries 1 - transmission). Cycles' principled BSDF
        # refracts and tints.
        linear = display_to_linear(look.color) * (1.0 - look.transmission)
        emissive = display_to_linear(look.emission) * look.emission_strength
        see_through = look.transmission > 0.0
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=np.array([*linear, 1.0 - float(look.transmission)]),
            emissiveFactor=emissive if emissive.any() else None,
            metallicFactor=float(look.metallic),
            roughnessFactor=float(look.roughness),
            baseColorTexture=texture,
            alphaMode="BLEND" if see_through else "OPAQUE",
        )
        return SurfaceMaterial(material=material, color=np.asarray(look.color, dtype=np.float64), texture=texture)
