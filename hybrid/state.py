"""Plain per-frame simulation state: what ``World.step()`` emits and every later stage reads.

Objects appear in scene order; object ``i`` of the scene has ``instance_id = i + 1``
for the whole clip (0 is background). Poses are the object's own frame (the frame its
shape is defined in), not pybullet's centre-of-mass frame.

A scene with breakable objects has more rows than objects: after the scene's objects
come the slots of the fragments they may break into (``hybrid.roster``), each with a
fixed instance id; ``present`` says which rows exist in the frame and ``breaks``
records every break so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Optional

import numpy as np

if TYPE_CHECKING:
    from hybrid.fields.frames import FieldFrame
    from hybrid.roster import BreakEvent


class Contact(NamedTuple):
    """Contact between two objects during one frame, summed over its physics steps.

    ``normal`` points from ``b`` to ``a``; ``impulse_Ns`` is the total normal impulse
    in newton-seconds; ``position`` the impulse-weighted mean contact point in metres
    (see ``hybrid.physics.contacts`` for exactly which points).
    """

    a: str
    b: str
    position: tuple[float, float, float]
    normal: tuple[float, float, float]
    impulse_Ns: float


@dataclass(frozen=True)
class ContactSet:
    """One frame's contacts as arrays, one row per pair of objects that pushed on each other.

    pairs (K, 2) int64: scene indices (a, b) with a < b, rows sorted;
    position (K, 3) metres; normal (K, 3) unit, from b to a; impulse_Ns (K,) newton-seconds.
    ``State.contacts`` gives the same as named ``Contact`` tuples.
    """

    pairs: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    impulse_Ns: np.ndarray

    @staticmethod
    def empty() -> "ContactSet":
        return ContactSet(np.zeros((0, 2), np.int64), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.impulse_Ns)


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
    contact_set: ContactSet = field(default_factory=ContactSet.empty)
    # Smoke, fire and liquid at the end of the frame (hybrid.fields.frames); None without `fields:`.
    fields: Optional["FieldFrame"] = None
    # (N,) bool, which rows exist in this frame; None when every row always does (no breakables).
    present: Optional[np.ndarray] = None
    # Every break up to the end of this frame, oldest first (hybrid.roster.BreakEvent).
    breaks: tuple["BreakEvent", ...] = ()

    @property
    def present_mask(self) -> np.ndarray:
        """(N,) bool: which rows exist in this frame (all of them without breakables)."""
        if self.present is None:
            return np.ones(len(self.names), dtype=bool)
        return np.asarray(self.present, dtype=bool)

    @property
    def contacts(self) -> tuple[Contact, ...]:
        """The frame's contacts by object name (built from ``contact_set`` on access)."""
        cs, names = self.contact_set, self.names
        return tuple(
            Contact(names[a], names[b], tuple(pos), tuple(nrm), imp)
            for (a, b), pos, nrm, imp in zip(
                cs.pairs.tolist(), cs.position.tolist(), cs.normal.tolist(), cs.impulse_Ns.tolist()
            )
        )

    @property
    def instance_ids(self) -> np.ndarray:
        return np.arange(1, len(self.names) + 1, dtype=np.uint16)
