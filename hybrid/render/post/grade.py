"""Colour grading in linear light: white balance, contrast, saturation, lift/gamma/gain.

Each stage is skipped when its parameters are neutral, so the default grade returns
the frame unchanged, bit for bit (and costs nothing).
"""

from __future__ import annotations

import functools

import numpy as np

from hybrid.render.post.color import luma_planar
from hybrid.render.post.registry import Frame, register
from hybrid.render.post.spec import ColorGrade
from hybrid.render.post.workspace import scratch

NEUTRAL_K = 6504.0

# Linear sRGB (D65) -> CIE XYZ, and the Bradford cone-response matrix.
RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
# D65 as the sRGB matrix defines it (linear rgb (1, 1, 1)), so grey stays exactly grey.
_D65_XYZ = RGB_TO_XYZ.sum(axis=1)
D65_XY = (_D65_XYZ[0] / _D65_XYZ.sum(), _D65_XYZ[1] / _D65_XYZ.sum())
# CIE xy shift of the white per unit of tint (about 3x a just-noticeable difference at 1).
TINT_XY = 0.02


def planck_xy(temperature_k: float) -> tuple[float, float]:
    """CIE 1931 xy of a black body at ``temperature_k`` (1667..25000 K), Kim et al.'s cubic spline fit."""
    t = float(temperature_k)
    if t <= 4000.0:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222.0:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000.0:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def white_xy(temperature_k: float, tint: float) -> tuple[float, float]:
    """The white that the grade renders as neutral: the black-body locus shifted to pass through D65 at 6504 K.

    The shift (under 0.006 in xy) makes the neutral setting the identity exactly, instead
    of the slight green cast of the black body at 6504 K compared with D65.
    """
    x, y = planck_xy(temperature_k)
    x0, y0 = planck_xy(NEUTRAL_K)
    # Tint > 0 assumes a greener white, which the adaptation removes: the image turns magenta.
    return x + D65_XY[0] - x0, y + D65_XY[1] - y0 + TINT_XY * tint


def _xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


@functools.lru_cache(maxsize=64)
def white_balance_matrix(temperature_k: float, tint: float) -> np.ndarray:
    """(3, 3) float32 M acting on column vectors, rgb' = M rgb: von Kries in Bradford space from ``white_xy`` to D65.

    The source white (in linear sRGB) maps to a neutral grey of the same luminance.
    """
    src = BRADFORD @ _xy_to_xyz(*white_xy(temperature_k, tint))
    dst = BRADFORD @ _xy_to_xyz(*D65_XY)
    m = XYZ_TO_RGB @ np.linalg.inv(BRADFORD) @ np.diag(dst / src) @ BRADFORD @ RGB_TO_XYZ
    m = m.astype(np.float32)
    m.setflags(write=False)
    return m


@register(ColorGrade)
def color_grade(frame: Frame, params: ColorGrade, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) linear light -> (3, H, W) graded linear light (see ColorGrade for the formulas)."""
    rgb = frame.rgb
    spare = frame.out
    out = None  # the result array, once a stage has made it; later stages work in place

    if params.temperature_k != NEUTRAL_K or params.tint != 0:
        m = white_balance_matrix(params.temperature_k, params.tint)
        flat = None if spare is None else spare.reshape(3, -1)
        out = np.matmul(m, rgb.reshape(3, -1), out=flat).reshape(rgb.shape)
    if params.contrast != 1:
        y = luma_planar(out if out is not None else rgb, out=scratch("grade.luma", rgb.shape[1:]))
        # Scale rgb by Y'/Y = (Y/pivot)**(contrast - 1), so chromaticity stays; black stays black.
        np.maximum(y, np.float32(1e-30), out=y)
        y *= np.float32(1.0 / params.pivot)
        np.power(y, np.float32(params.contrast - 1.0), out=y)
        out = np.multiply(rgb if out is None else out, y, out=spare if out is None else out)
    if params.saturation != 1:
        src = out if out is not None else rgb
        y = luma_planar(src, out=scratch("grade.luma", rgb.shape[1:]))
        y *= np.float32(1.0 - params.saturation)
        out = np.multiply(src, np.float32(params.saturation), out=spare if out is None else out)
        out += y
    gain, lift, gamma = (np.asarray(v, dtype=np.float32).reshape(3, 1, 1) for v in (params.gain, params.lift, params.gamma))
    if np.any(gain != 1) or np.any(lift != 0):
        out = np.multiply(rgb if out is None else out, gain, out=spare if out is None else out)
        out += lift
        np.maximum(out, np.float32(0.0), out=out)
    if np.any(gamma != 1):
        out = np.maximum(rgb if out is None else out, np.float32(0.0), out=spare if out is None else out)
        np.power(out, np.float32(1.0) / gamma, out=out)
    return rgb if out is None else out
