"""Blow-up detection: a State with non-finite numbers or implausible speeds stops the run.

A rigid-body solver that diverges does not crash; it returns NaN or bodies flying
off at thousands of metres per second, which would otherwise end up in a rendered
clip and its metadata. We check every State before it leaves the world.
"""

from __future__ import annotations

import numpy as np

from hybrid.physics.errors import SimulationError
from hybrid.state import State

_FIXES = (
    "try a smaller physics.timestep or more physics.substeps, check that no objects overlap "
    "in their initial placement, and avoid extreme mass ratios between touching objects "
    "(more than about 1:100)"
)


def check_state(state: State, max_speed: float) -> None:
    """Raise ``SimulationError`` if any value is non-finite or a linear speed exceeds `max_speed` (m/s)."""
    for quantity, values, unit in (
        ("position", state.position, "m"),
        ("orientation", state.quaternion, ""),
        ("linear velocity", state.linear_velocity, "m/s"),
        ("angular velocity", state.angular_velocity, "rad/s"),
    ):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SimulationError(
                f"object {state.names[i]!r} has a non-finite {quantity} {values[i].tolist()} {unit} "
                f"at frame {state.frame} (t = {state.time_s:.4f} s simulated): the simulation blew up; {_FIXES}",
                name=state.names[i],
                frame=state.frame,
                time_s=state.time_s,
                quantity=quantity,
                value=values[i].tolist(),
            )
    speed = np.linalg.norm(state.linear_velocity, axis=1)
    fast = speed > max_speed
    if fast.any():
        i = int(np.flatnonzero(fast)[0])
        raise SimulationError(
            f"object {state.names[i]!r} moves at {speed[i]:.4g} m/s at frame {state.frame} "
            f"(t = {state.time_s:.4f} s simulated), above physics.max_speed = {max_speed:g} m/s: "
            f"the simulation probably blew up; {_FIXES}; if such speeds are intended, raise physics.max_speed",
            name=state.names[i],
            frame=state.frame,
            time_s=state.time_s,
            quantity="speed",
            value=float(speed[i]),
        )
