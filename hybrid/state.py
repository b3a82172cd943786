"""Plain per-frame simulation state: what ``World.step()`` emits and every later stage reads.

Objects appear in scene order; object ``i`` of the scene has ``instance_id = i + 1``
for the whole clip (0 is background). Poses are the object's own frame (the frame its
shape is defined in), not pybullet's centre-of-mass frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Contact(NamedTuple):
    """Contact between two objects during one frame, summed over its physics steps.

    ``normal`` points from ``b`` to ``a``; ``impulse_Ns`` is the total normal impulse
    in newton-seconds; ``position`` the impulse-weighted mean contact point in metres
    (see ``hybrid.physics.contacts`` for exactly which points). A NamedTuple rather
    than a dataclass: a pile of bodies makes hundreds of these a frame.
    """

    a: str
    b: str
    position: tuple[float, float, float]
    normal: tuple[float, float, float]
    impulse_Ns: float


@dataclass(frozen=True)
class State:
    """Every object's state at the end of one frame.

    Arrays have one row per object, in scene order:
    position (N, 3) metres; quaternion (N, 4) as (x, y, z, w);
    linear_velocity (N, 3) m/s; angular_velocity (N, 3) rad/s, world axes.
    """

    frame: int
    time_s: float  # simulated seconds since the start
    names: tuple[str, ...]
    position: np.ndarray
    quaternion: np.ndarray
    linear_velocity: np.ndarray
    angular_velocity: np.ndarray
    contacts: tuple[Contact, ...] = field(default_factory=tuple)

    @property
    def instance_ids(self) -> np.ndarray:
        return np.arange(1, len(self.names) + 1, dtype=np.uint16)
