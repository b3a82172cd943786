"""Heat haze against a hot column worked out by hand (hybrid.render.fields.haze).

A vertical column of hot air, dT(r) = T0 exp(-r^2 / s^2) cut to 0 beyond 3 s, seen
side-on by a camera looking along +y: a ray passing at distance x from the axis turns
by eps(x) = integral of dn/dx dy with n - 1 = C / (T_a + dT) (Gladstone-Dale at
constant pressure). n grows away from the hot axis, so rays bend outward: the shift
has the sign of x, and it is exactly 0 for rays that cross only ambient air. The
reference integral is a fine 1-D quadrature of the closed-form dn/dx, independent of
the grid; the renderer differences the grid (central, O(h^2)) and samples it
trilinearly, so its error must shrink as the cells do.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.fields import backend
from hybrid.fields.frames import GasFrame
from hybrid.render.fields.haze import INDEX_CONSTANT, bend, haze_shift

backend.ensure("cpu", True)

T_AMB = 293.15
T0 = 600.0
SIGMA = 0.08
HALF = 0.3  # the grid spans [-HALF, HALF] in x and y, [0, 0.4] in z
W, H = 121, 41
DIST = 1.5  # camera at y = -DIST, looking along +y
FX = 200.0


def _column(cells: int) -> GasFrame:
    h = 2 * HALF / cells
    nz = int(round(0.4 / h))
    c = -HALF + h * (np.arange(cells) + 0.5)
    x, y = np.meshgrid(c, c, indexing="ij")
    r2 = x**2 + y**2
    dT = np.where(r2 < (3 * SIGMA) ** 2, T0 * np.exp(-r2 / SIGMA**2), 0.0)
    temp = np.repeat(dT[:, :, None], nz, axis=2).astype(np.float32)
    zeros = np.zeros_like(temp)
    return GasFrame(
        origin=np.array([-HALF, -HALF, 0.0]), cell_size=h, ambient_temperature=T_AMB, density=zeros,
        temperature=temp, fuel=zeros, flame=zeros, velocity=np.zeros(temp.shape + (3,), np.float32),
        solid=np.zeros(temp.shape, np.uint8),
    )


def _camera():
    K = np.array([[FX, 0, W / 2], [0, FX, H / 2], [0, 0, 1.0]])
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2] = (1, 0, 0), (0, 0, -1), (0, 1, 0)
    c2w[:3, 3] = (0.0, -DIST, 0.2)
    return K, c2w


def _reference(x: float) -> float:
    """eps_x for a ray at offset x (parallel to y), by quadrature of dn/dx = -C dT'(r) x / (r T^2)."""
    y = np.linspace(-HALF, HALF, 200001)
    r2 = x**2 + y**2
    dT = np.where(r2 < (3 * SIGMA) ** 2, T0 * np.exp(-r2 / SIGMA**2), 0.0)
    d_dT_dx = -2 * x / SIGMA**2 * dT
    dn_dx = -INDEX_CONSTANT * d_dT_dx / (T_AMB + dT) ** 2
    return float(np.trapz(dn_dx, y))


def _shift_row(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    K, c2w = _camera()
    shift = haze_shift(_column(cells), K, c2w, np.zeros((H, W), np.float32))
    row = H // 2
    cols = np.arange(W)
    # Each pixel's ray crosses the column's axis plane (y = 0) at x = (u - cx) / fx x DIST.
    x = (cols + 0.5 - W / 2) / FX * DIST
    return shift[row, :, 0], shift[row, :, 1], x


def test_zero_in_ambient_air_and_outward_where_hot():
    du, dv, x = _shift_row(30)
    h = 2 * HALF / 30
    ambient = np.abs(x) > 3 * SIGMA + 2 * h  # the ray sees no heated cell nor a difference with one
    assert np.all(du[ambient] == 0) and np.all(dv == 0)
    hot = (np.abs(x) > 0.01) & (np.abs(x) < 2 * SIGMA)
    assert np.all(np.sign(du[hot]) == np.sign(x[hot]))


def test_shift_matches_the_closed_form_and_converges():
    """Background infinitely far: du = fx eps_x |d|, |d| = 1 / cos(angle) of the pixel's ray."""
    errors = []
    for cells in (30, 60):
        du, _, x = _shift_row(cells)
        pick = (np.abs(x) > 0.02) & (np.abs(x) < 1.5 * SIGMA)
        # Offsets of the rays at the axis plane; their slope in x across the column adds a
        # second-order error far below the grid's.
        want = np.array([FX * _reference(xi) * np.sqrt(1 + (xi / DIST) ** 2) for xi in x[pick]])
        err = np.abs(du[pick] - want).max() / np.abs(want).max()
        errors.append(err)
    # h = 2 cm and 1 cm against s = 8 cm: central differences and trilinear sampling of a
    # Gaussian each err by a constant of order one times (h / s)^2 of the peak (6% and 1.6%
    # here); the rays cross the column at up to 3 degrees (x / DIST), which the reference
    # ignores (0.1%). Second order: halving h must cut the error about four times.
    for cells, err in zip((30, 60), errors):
        assert err < (2 * HALF / cells / SIGMA) ** 2
    assert errors[1] < errors[0] / 3


def test_bend_samples_the_frame_at_the_shifted_pixel():
    frame = np.arange(5 * 7 * 1, dtype=np.float32).reshape(5, 7, 1)  # value = 7 r + c
    shift = np.zeros((5, 7, 2), np.float32)
    shift[2, 3] = (1.5, -1.0)  # look at (r, c) = (1, 4.5)
    out = bend(frame, shift)
    assert out[2, 3, 0] == pytest.approx(7 * 1 + 4.5)
    assert np.array_equal(np.delete(out.reshape(-1), 2 * 7 + 3), np.delete(frame.reshape(-1), 2 * 7 + 3))
