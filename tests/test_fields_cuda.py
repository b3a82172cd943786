"""Both field solvers on Taichi's CUDA backend, against the same closed forms as on the CPU.

Run where a CUDA driver is present, skipped with the reason elsewhere. Each case runs in
its own process: Taichi has one runtime per process, and the test process runs the CPU one.

- Couette flow under a moving wall (tests/test_fields_gas_walls.py derives the bound):
  the gas solver's kernels, its multigrid projection and its wall conditions.
- A crate of density 500 floating in water (tests/test_fields_world.py derives the
  depth and its tolerance): the MPM solver with the GPU's atomic particle-to-grid
  adds, two-way coupling with the integer impulse sums, and pybullet in lockstep.
"""

import ctypes.util
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

pytestmark = pytest.mark.skipif(
    ctypes.util.find_library("cuda") is None,
    reason="no CUDA driver on this machine: the CUDA backend is checked where one is",
)


def _run(code: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1].split()


@pytest.mark.timeout(1000)
def test_couette_on_cuda_is_within_the_closed_form_bound():
    arch, err, bound = _run(
        """
        import math
        import numpy as np
        from hybrid.fields import backend
        b = backend.ensure("cuda", True)
        from hybrid.fields.gas import GasSolver
        from hybrid.scene.fields_spec import GasSpec
        H, NU, U, cells, seconds = 0.32, 0.01, 0.1, 16, 7.0
        dx = H / cells
        spec = GasSpec.model_validate(dict(
            domain=dict(min=[0, 0, 0], max=[4 * dx, 4 * dx, H]), resolution=cells, vorticity=0.0, cooling=0.0,
            viscosity=NU, buoyancy=dict(thermal=0.0, smoke_weight=0.0), pressure=dict(tolerance=1e-6, max_iterations=500),
            boundaries=dict(x_min="pass_through", x_max="pass_through", y_min="wall", y_max="wall", z_min="no_slip",
                            z_max=dict(type="moving_wall", velocity=[U, 0, 0])),
            max_substeps=1000))
        gas = GasSolver(spec)
        t = 0.0
        while t < seconds - 1e-9:
            gas.advance(0.1, t)
            gas.frame()
            t += 0.1
        u, _, _ = gas.face_velocity()
        z = (np.arange(cells) + 0.5) * gas.dx
        err = np.abs(u[2, 2] - U * z / H).max()
        lam1 = 4.0 / gas.dx**2 * math.sin(math.pi * gas.dx / (2 * H)) ** 2
        bound = (2 * U / math.pi) * math.exp(-lam1 * NU * seconds) + 1e-5 * U
        gas.close()
        print(b.arch, err, bound)
        """
    )
    assert arch == "cuda"
    assert float(err) <= float(bound)


@pytest.mark.timeout(1000)
def test_a_crate_floats_at_archimedes_depth_on_cuda():
    """d = s rho_b / rho_w = 0.075 m below the surface, which stands at h + s^2 d / A;
    0.02 m (two thirds of a cell) as on the CPU."""
    arch, depth = _run(
        """
        import sys
        import numpy as np
        from hybrid.scene import load_scene_text
        from hybrid.world import World
        sys.path.insert(0, "tests")
        from test_fields_world import TANK
        s, h = 0.15, 0.24
        text = TANK.format(frames=48, s=s, rho=500.0, h=h, z0=h + s / 2 - 0.02, coupling="two_way")
        with World(load_scene_text(text.replace("fields:\\n", "fields:\\n  arch: cuda\\n", 1), "cuda_float.yaml")) as world:
            arch = world.fields.backend.arch
            states = world.run()
        surface = h + s * s * (s * 0.5) / (0.6 * 0.6)
        z = np.mean([st.position[1, 2] for st in states[-12:]])
        print(arch, surface - (z - s / 2))
        """
    )
    assert arch == "cuda"
    assert float(depth) == pytest.approx(0.075, abs=0.02)
