"""Errors raised while building or stepping the rigid-body simulation.

Both derive from ``PhysicsError`` so a caller can stop a run cleanly on either:
``BodyBuildError`` when a scene object cannot become a pybullet body (unreadable
mesh file, a shape without volume), ``SimulationError`` when the simulation blew
up (non-finite numbers, speeds above ``physics.max_speed``).
"""

from __future__ import annotations


class PhysicsError(Exception):
    """Base of every error from ``hybrid.physics`` and ``hybrid.world``."""


class BodyBuildError(PhysicsError, ValueError):
    """A scene object could not be turned into a pybullet body; the message names the object and what to change."""


class SimulationError(PhysicsError, RuntimeError):
    """The simulation produced non-finite or implausibly fast motion.

    Attributes say where: ``name`` of the object, ``frame`` index, ``time_s``
    simulated seconds, ``quantity`` (e.g. ``"speed"``) and ``value``.
    """

    def __init__(self, message: str, *, name: str, frame: int, time_s: float, quantity: str, value: object):
        super().__init__(message)
        self.name = name
        self.frame = frame
        self.time_s = time_s
        self.quantity = quantity
        self.value = value

    def __reduce__(self):
        # Pickled when it crosses a process boundary (a dataset worker on Ray, a DataLoader
        # worker): the default rebuilds from ``args`` alone and loses the keywords.
        return _rebuild_simulation_error, (
            type(self), str(self), self.name, self.frame, self.time_s, self.quantity, self.value
        )


def _rebuild_simulation_error(cls, message, name, frame, time_s, quantity, value):
    return cls(message, name=name, frame=frame, time_s=time_s, quantity=quantity, value=value)
