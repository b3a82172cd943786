"""Constitutive models of the particle solver: stresses and plastic return maps.

Every model gives the Kirchhoff stress ``tau = J sigma`` (Pa; ``sigma`` the Cauchy
stress, ``J = det F``) of a particle, the quantity MLS-MPM scatters to the grid:
the particle's affine momentum gains ``-dt * V0 * (4 / dx^2) * tau`` (``V0`` its rest
volume, ``4 / dx^2`` the inverse inertia tensor of the quadratic B-spline).

- water: weakly compressible fluid, equation of state ``p = K (1 - J)`` with bulk
  modulus ``K = density * sound_speed^2``, so ``tau = K (J - 1) J I``; optional
  Newtonian viscosity ``tau += J mu (grad v + grad v^T)`` (``mu`` dynamic, Pa s).
- jelly: fixed-corotated hyperelasticity (Stomakhin et al. 2012),
  ``tau = 2 mu (F - R) F^T + lambda (J - 1) J I``.
- snow: the same with plasticity: singular values of F clamped to
  ``[1 - 2.5e-2, 1 + 4.5e-3]`` and hardening ``exp(10 (1 - Jp))`` (clamped to
  [0.1, 5]) of the Lame parameters (Stomakhin et al. 2013).
- sand: Drucker-Prager plasticity on the Hencky (logarithmic) strain with the
  St Venant-Kirchhoff response ``tau = U (2 mu eps + lambda tr(eps) I) U^T``
  (Klar et al. 2016), volume gained in tension carried as ``log_jp`` (Tampubolon et
  al. 2017): a cohesionless material.

Default Young's moduli (Pa) when the scene gives none: ``DEFAULT_YOUNGS``. Lame
parameters from (E, nu): ``mu = E / (2 (1 + nu))``, ``lambda = E nu / ((1 + nu) (1 - 2 nu))``.
"""

# No `from __future__ import annotations`: Taichi reads ti.func annotations as objects.
import math

import numpy as np

from hybrid.fields.backend import _import_taichi

ti = _import_taichi()

WATER, SAND, SNOW, JELLY = 0, 1, 2, 3
MATERIAL_IDS = {"water": WATER, "sand": SAND, "snow": SNOW, "jelly": JELLY}

# Young's modulus defaults, Pa: sand as Klar et al. 2016 (3.537e5, density ~2200), snow
# as Stomakhin et al. 2013 (1.4e5, density ~400), jelly a soft gel that visibly wobbles.
DEFAULT_YOUNGS = {"sand": 3.537e5, "snow": 1.4e5, "jelly": 5.0e4}

SNOW_COMPRESSION = 2.5e-2  # theta_c
SNOW_STRETCH = 4.5e-3  # theta_s
SNOW_HARDENING = 10.0  # xi
SNOW_MAX_HARDENING = 5.0


def lame(youngs: float, poisson: float) -> tuple[float, float]:
    """(mu, lambda) in Pa from Young's modulus (Pa) and Poisson's ratio."""
    mu = youngs / (2.0 * (1.0 + poisson))
    lam = youngs * poisson / ((1.0 + poisson) * (1.0 - 2.0 * poisson))
    return mu, lam


def geostatic_stretch(material: int, load: np.ndarray, mu: float, lam: float) -> np.ndarray:
    """Stretch (N,) along gravity of a solid at rest under its own weight in a container that keeps it
    from spreading sideways (uniaxial strain, as sand poured into a box or jelly set in a mould), the
    sideways stretches staying 1. `load` = rho |g| depth (Pa), the weight of what lies above.

    The particles are seeded where they sit now, with their seeded volume as the rest volume the
    scatter multiplies stresses by, so the stress that balances the load is tau_zz = -load. The
    oedometric modulus M = lambda + 2 mu carries it: Hencky (sand) tau_zz = M ln f, so
    f = exp(-load / M); fixed-corotated (jelly, snow) tau_zz = M (f - 1) f, so
    f = (1 + sqrt(1 - 4 load / M)) / 2. Snow stays within its elastic range (1 - SNOW_COMPRESSION):
    deeper it compacts plastically in the first substep. A solid too soft to hold its own weight
    (load / M over 1/4) gets f = 1/2 there and sags."""
    a = np.asarray(load, np.float64) / (lam + 2.0 * mu)
    if material == SAND:
        f = np.exp(-a)
    else:
        f = 0.5 * (1.0 + np.sqrt(np.maximum(1.0 - 4.0 * a, 0.0)))
        if material == SNOW:
            f = np.maximum(f, 1.0 - SNOW_COMPRESSION)
    return np.clip(f, 0.5, 1.0)


def drucker_prager_alpha(friction_angle_deg: float) -> float:
    """Klar et al.'s yield-cone parameter alpha = sqrt(2/3) 2 sin(phi) / (3 - sin(phi))."""
    s = math.sin(math.radians(friction_angle_deg))
    return math.sqrt(2.0 / 3.0) * 2.0 * s / (3.0 - s)


@ti.func
def water_tau(J, C, K, mu):
    """Kirchhoff stress (3x3) of water with volume ratio J, velocity gradient C, bulk modulus K, viscosity mu."""
    return ti.Matrix.identity(ti.f32, 3) * (K * (J - 1.0) * J) + (mu * J) * (C + C.transpose())


@ti.func
def fixed_corotated_tau(F, mu, lam):
    """(Kirchhoff stress, J) of fixed-corotated elasticity for deformation gradient F."""
    U, sig, V = ti.svd(F)
    J = sig[0, 0] * sig[1, 1] * sig[2, 2]
    R = U @ V.transpose()
    tau = 2.0 * mu * (F - R) @ F.transpose() + ti.Matrix.identity(ti.f32, 3) * (lam * (J - 1.0) * J)
    return tau, J


@ti.func
def snow_update(F, Jp, mu0, lam0):
    """Plastic clamp and hardening of snow: (new F, new Jp, Kirchhoff stress, hardening factor)."""
    h = ti.min(SNOW_MAX_HARDENING, ti.max(0.1, ti.exp(SNOW_HARDENING * (1.0 - Jp))))
    mu, lam = mu0 * h, lam0 * h
    U, sig, V = ti.svd(F)
    J = 1.0
    for d in ti.static(range(3)):
        s = ti.min(ti.max(sig[d, d], 1.0 - SNOW_COMPRESSION), 1.0 + SNOW_STRETCH)
        Jp *= sig[d, d] / s
        sig[d, d] = s
        J *= s
    Fe = U @ sig @ V.transpose()
    tau = 2.0 * mu * (Fe - U @ V.transpose()) @ Fe.transpose() + ti.Matrix.identity(ti.f32, 3) * (lam * (J - 1.0) * J)
    return Fe, Jp, tau, h


@ti.func
def sand_update(F, log_jp, mu, lam, alpha):
    """Drucker-Prager return map on the Hencky strain: (new F, new log_jp, Kirchhoff stress)."""
    U, sig, V = ti.svd(F)
    eps = ti.Vector([ti.log(ti.max(ti.abs(sig[d, d]), 1e-4)) for d in ti.static(range(3))])
    tr = eps.sum() + log_jp
    eps_hat = eps - tr / 3.0
    eps_hat_norm = eps_hat.norm() + 1e-20
    new_eps = ti.Vector([0.0, 0.0, 0.0])  # tension: back to the cone's tip (stress free)
    new_log_jp = tr
    if tr < 0.0:
        new_log_jp = 0.0
        dgamma = eps_hat_norm + (3.0 * lam + 2.0 * mu) / (2.0 * mu) * tr * alpha
        new_eps = eps - ti.max(0.0, dgamma) / eps_hat_norm * eps_hat
    new_sig = ti.Matrix([[ti.exp(new_eps[0]), 0.0, 0.0], [0.0, ti.exp(new_eps[1]), 0.0], [0.0, 0.0, ti.exp(new_eps[2])]])
    Fe = U @ new_sig @ V.transpose()
    d = 2.0 * mu * new_eps + lam * new_eps.sum()
    tau = U @ ti.Matrix([[d[0], 0.0, 0.0], [0.0, d[1], 0.0], [0.0, 0.0, d[2]]]) @ U.transpose()
    return Fe, new_log_jp, tau
