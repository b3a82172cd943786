"""Diffuse light from an environment as order-2 spherical harmonics (Ramamoorthi & Hanrahan 2001).

The irradiance on a surface with unit normal n under a distant environment L is
E(n) = integral of L(w) max(0, n.w) dw. Its spherical-harmonic expansion has
coefficients A_l L_lm, where L_lm are the environment's own and A_l the clamped
cosine's (A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4, A_3 = 0, A_4 = -pi / 24, ...); nine
terms (l <= 2) keep all but a few per cent of E for smooth lighting (their paper: under
1 % on average for typical environments, 9 % at worst for a point light). The
rasteriser adds base colour x E(n) / pi per pixel (``shaders/beauty.frag``), the
convention of its ambient term: a uniform environment of radiance L gives E = pi L,
so base x L, as an ambient light of radiance L. Nothing occludes it: the raster has
no shadows from the environment.

Basis: the real spherical harmonics in Cartesian form (x, y, z the unit direction),
in the order (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2).
"""

from __future__ import annotations

import math

import numpy as np

from hybrid.render.environment import EnvironmentMap

# The clamped cosine's coefficients per band, repeated for each of a band's 2l + 1 terms.
COSINE_LOBE = np.array([math.pi] + [2.0 * math.pi / 3.0] * 3 + [math.pi / 4.0] * 5)


def sh_basis(directions: np.ndarray) -> np.ndarray:
    """(..., 3) unit directions -> (..., 9) real spherical harmonics up to l = 2."""
    d = np.asarray(directions, dtype=np.float64)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    return np.stack(
        [
            np.full_like(x, 0.5 * math.sqrt(1.0 / math.pi)),
            math.sqrt(3.0 / (4.0 * math.pi)) * y,
            math.sqrt(3.0 / (4.0 * math.pi)) * z,
            math.sqrt(3.0 / (4.0 * math.pi)) * x,
            0.5 * math.sqrt(15.0 / math.pi) * x * y,
            0.5 * math.sqrt(15.0 / math.pi) * y * z,
            0.25 * math.sqrt(5.0 / math.pi) * (3.0 * z * z - 1.0),
            0.5 * math.sqrt(15.0 / math.pi) * x * z,
            0.25 * math.sqrt(15.0 / math.pi) * (x * x - y * y),
        ],
        axis=-1,
    )


def project_table(table: np.ndarray, rotation_deg: float = 0.0) -> np.ndarray:
    """(9, 3) coefficients L_lm of an (H, W, 3) equirect table (``hybrid.render.environment``'s convention).

    Each texel is taken as constant over its own cell (elevation e from e0 to e1,
    azimuth from p0 to p1) and the basis is integrated over the cell exactly, with
    dw = cos(e) de dp: every basis function is a product of a polynomial in (cos e,
    sin e) and cos/sin of p or 2p, whose integrals are closed forms. So a uniform
    table gives exactly L_00 = sqrt(4 pi) L and nothing else (to rounding), whatever
    its size, and a large table costs nine matrix-vector products.
    """
    h, w = table.shape[:2]
    e = (0.5 - np.arange(h + 1) / h) * math.pi  # row edges' elevation, top first: e[j] > e[j + 1]
    s, c = np.sin(e), np.cos(e)

    def rows(f):  # integral over each row's elevation band of an antiderivative f
        return f(e[:-1], s[:-1], c[:-1]) - f(e[1:], s[1:], c[1:])

    cos1 = rows(lambda e, s, c: s)  # cos e (the measure alone)
    cos2 = rows(lambda e, s, c: e / 2.0 + np.sin(2.0 * e) / 4.0)  # cos^2 e
    sincos = rows(lambda e, s, c: s * s / 2.0)  # sin e cos e
    cos3 = rows(lambda e, s, c: s - s**3 / 3.0)  # cos^3 e
    cos2sin = rows(lambda e, s, c: -(c**3) / 3.0)  # cos^2 e sin e
    sin2cos = rows(lambda e, s, c: s**3 / 3.0)  # sin^2 e cos e
    # Column edges' azimuth: u = i / W looks along p = (0.5 - u) 2 pi + rotation, decreasing in i.
    p = (0.5 - np.arange(w + 1) / w) * (2.0 * math.pi) + math.radians(rotation_deg)

    def cols(f):
        return f(p[:-1]) - f(p[1:])

    one = cols(lambda p: p)
    sin_p = cols(lambda p: -np.cos(p))
    cos_p = cols(lambda p: np.sin(p))
    sincos_p = cols(lambda p: np.sin(p) ** 2 / 2.0)
    cos2p = cols(lambda p: np.sin(2.0 * p) / 2.0)
    a, b = 0.5 * math.sqrt(1.0 / math.pi), math.sqrt(3.0 / (4.0 * math.pi))
    q, r, t = 0.5 * math.sqrt(15.0 / math.pi), 0.25 * math.sqrt(5.0 / math.pi), 0.25 * math.sqrt(15.0 / math.pi)
    # (row factor, column factor) of each basis function's integral, in sh_basis order.
    factors = [
        (a * cos1, one),
        (b * cos2, sin_p),  # y = cos e sin p
        (b * sincos, one),  # z = sin e
        (b * cos2, cos_p),  # x = cos e cos p
        (q * cos3, sincos_p),  # x y
        (q * cos2sin, sin_p),  # y z
        (r * (3.0 * sin2cos - cos1), one),  # 3 z^2 - 1
        (q * cos2sin, cos_p),  # x z
        (t * cos3, cos2p),  # x^2 - y^2 = cos^2 e cos 2p
    ]
    flat = np.asarray(table, dtype=np.float64).reshape(h, w * 3)
    coeffs = np.empty((9, 3))
    for k, (row, col) in enumerate(factors):
        coeffs[k] = col @ (row @ flat).reshape(w, 3)
    return coeffs


def environment_sh(env: EnvironmentMap) -> np.ndarray:
    """(9, 3) SH coefficients of an environment's radiance, projected from the table Cycles samples too."""
    table, rotation = env.table()
    return project_table(table, rotation)


def irradiance(coeffs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Irradiance E(n) (..., 3) from (9, 3) radiance coefficients at unit normals (..., 3), clamped at 0.

    (Order-2 ringing can dip below zero opposite a very bright, small source.)
    """
    return np.maximum(sh_basis(normals) @ (COSINE_LOBE[:, None] * np.asarray(coeffs)), 0.0)


def shader_coefficients(coeffs: np.ndarray) -> np.ndarray:
    """(9, 3) float32 A_l L_lm / pi: the beauty shader's ``env_sh``, whose sum against the basis at n is E(n) / pi."""
    return (COSINE_LOBE[:, None] * np.asarray(coeffs) / math.pi).astype(np.float32)
