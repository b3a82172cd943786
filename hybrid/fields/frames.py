"""Plain per-frame snapshots of the fields: what the simulation hands to the renderer.

NumPy arrays only (no Taichi), like ``hybrid.state``: a renderer, a test or a dataset
writer can build or read them without a solver.

Grids are cell-centred and indexed ``[i, j, k]`` along world x, y, z: cell (i, j, k)
spans ``origin + cell_size * ([i, j, k], [i, j, k] + 1)``, its centre at
``origin + cell_size * ([i, j, k] + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Optional, Union

import numpy as np

def empty_field_buffers(*lead: int) -> dict[str, np.ndarray]:
    """The field buffers (``hybrid.buffers`` group "fields") where there is no field at all (zeros),
    shaped (*lead, ...): ``empty_field_buffers(H, W)`` for a frame, ``empty_field_buffers(T, H, W)`` for a clip."""
    from hybrid.buffers import empty_buffers, names

    return empty_buffers(names("fields"), *lead)


@dataclass(frozen=True)
class GasFrame:
    """The gas grid at the end of a frame.

    density (nx, ny, nz) float32: smoke concentration (0 clear, ~1 thick);
    temperature (nx, ny, nz) float32: kelvin above ambient;
    fuel (nx, ny, nz) float32: unburnt fuel;
    flame (nx, ny, nz) float32: fuel burnt per second in the last substep (glows);
    velocity (nx, ny, nz, 3) float32: m/s at cell centres, world axes;
    solid (nx, ny, nz) uint8: 1 where a rigid body covers the cell centre.
    """

    origin: np.ndarray  # (3,) float64, world position of the grid's min corner
    cell_size: float  # metres
    ambient_temperature: float  # kelvin
    density: np.ndarray
    temperature: np.ndarray
    fuel: np.ndarray
    flame: np.ndarray
    velocity: np.ndarray
    solid: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.density.shape)  # type: ignore[return-value]

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.asarray(self.origin, dtype=np.float64)
        return lo, lo + self.cell_size * np.asarray(self.shape, dtype=np.float64)


@dataclass(frozen=True)
class LiquidFrame:
    """The particles of the liquid (or sand, snow, jelly) at the end of a frame.

    position (N, 3) float32 metres; velocity (N, 3) float32 m/s; ``particle_volume``
    m^3 each at rest; ``cell_size`` of the solver's grid (the natural resolution for a
    surface); ``material`` as in the scene.
    """

    position: np.ndarray
    velocity: np.ndarray
    particle_volume: float
    cell_size: float
    origin: np.ndarray  # (3,) grid min corner
    grid_shape: tuple[int, int, int]
    material: str

    @property
    def count(self) -> int:
        return int(len(self.position))


# The statistics of one frame, in metadata order, each with its value when nothing ran
# (which is also its type: counts are int, measurements float).
_ZERO_STATS: dict[str, Union[int, float]] = {
    "gas_substeps": 0, "pressure_iterations": 0, "pressure_residual": 0.0, "max_divergence": 0.0,
    "liquid_substeps": 0, "liquid_volume": 0.0,
}


def _stats_to_dict(self) -> dict:
    return {k: getattr(self, k) for k in self.__dataclass_fields__}


FieldStats = make_dataclass(
    "FieldStats",
    [(name, type(zero), field(default=zero)) for name, zero in _ZERO_STATS.items()],
    namespace={"to_dict": _stats_to_dict, "__module__": __name__},
    frozen=True,
)
FieldStats.__doc__ = """What the solvers did during the frame (goes to metadata).

gas_substeps / liquid_substeps: solver steps taken inside the frame;
pressure_iterations: the most CG iterations of one projection in the frame;
pressure_residual: the largest final residual (max norm of the divergence, 1/s);
max_divergence: max |div u| over fluid cells after the last projection (1/s);
liquid_volume: sum of particle volumes times their volume ratio J (m^3).
"""


# The states of a flammable object, by their code in ``BurnFrame.state`` (hybrid.fields.burning).
BURN_STATES = ("intact", "burning", "charred", "consumed")


@dataclass(frozen=True)
class BurnFrame:
    """Every flammable object at the end of a frame (plain arrays, one row per flammable object).

    index: roster indices of the flammable objects; names: theirs; state: uint8 codes
    (``BURN_STATES``); mass_kg: mass now; burnt_kg: mass burnt so far (= fuel vapour given
    off); heat_J: heat that vapour releases when it burns (burnt x heat_release);
    burning_area_m2: area burning now; ignition_time_s / consumed_time_s: simulated
    seconds (nan: not yet); cause: what lit it ('' while intact); char: per object, per
    node of its burn map (``burn_surface``), 0 unburnt .. 1 fully charred (float32).
    """

    index: tuple[int, ...]
    names: tuple[str, ...]
    state: np.ndarray
    mass_kg: np.ndarray
    burnt_kg: np.ndarray
    heat_J: np.ndarray
    burning_area_m2: np.ndarray
    ignition_time_s: np.ndarray
    consumed_time_s: np.ndarray
    cause: tuple[str, ...]
    char: tuple[np.ndarray, ...]

    def state_name(self, k: int) -> str:
        return BURN_STATES[int(self.state[k])]


@dataclass(frozen=True)
class FieldFrame:
    """Every field at the end of one frame; a part is None when the scene has no such field
    (``burn``: None without flammable objects)."""

    gas: Optional[GasFrame] = None
    liquid: Optional[LiquidFrame] = None
    stats: FieldStats = field(default_factory=FieldStats)
    burn: Optional[BurnFrame] = None
