"""The roster: every object a clip can show, scene objects first, then the fragments breakables may become.

A scene without breakable objects has exactly its objects. Each breakable object
(``physics.breakable``) adds one slot per fragment its pattern makes, named
``<object>#<k>`` (k from 0), right after the scene objects in scene order; with
``rebreak`` each fragment slot gets slots of its own, ``<object>#<k>.<j>``, after all
first-level slots. A slot's index is fixed before the clip starts, so its instance
id (index + 1) is stable for the whole clip and never reused: a fragment is a new,
persistent object, not a renamed piece of its parent.

Each row of a ``State`` is one roster entry. ``State.present`` says which exist in
that frame: a breakable's row until it breaks, its fragments' rows from then on.
A fragment's frame is its parent's object frame at the break (its shape is the
parent's material in the parent's coordinates), so until it exists a fragment's row
repeats its parent's pose and velocity, and at the break the rows continue without
a jump (exact flow and motion blur across the break; ``hybrid.render.flow``).

``BreakEvent`` is the plain record of one break; ``State.breaks`` lists every break
up to that frame, which is all a renderer needs to rebuild the fragments' shapes
(``hybrid.physics.breakables.event_fragments``): fracture is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from hybrid.physics.fracture import FracturePattern
    from hybrid.scene.spec import Scene


@dataclass(frozen=True)
class BreakEvent:
    """One break: object ``parent`` (roster index) became fragments ``fragments`` (roster indices,
    fragment k of the pattern in ``fragments[k]``).

    ``step``: the physics step (counted from 0 over the clip) after which the switch
    happened; ``time_s``: simulated seconds at its end; ``frame``: the first video frame
    that shows the fragments. ``impact_point`` (world, metres) and ``impact_local``
    (the parent's object frame): the contact-force-weighted mean of the parent's
    contact points in that step; ``impulse_Ns``: the total normal contact impulse on
    the parent in that step. ``momentum`` (kg m/s) and ``angular_momentum`` (kg m^2/s,
    about ``centre_of_mass``, the parent's at the switch, world metres) the parent
    carried into the switch, which the fragments carry out; ``kick_J``: the kinetic energy added to push them apart.
    ``pattern``: the fracture pattern, in the parent's object frame.
    """

    parent: int
    fragments: tuple[int, ...]
    step: int
    time_s: float
    frame: int
    impact_point: tuple[float, float, float]
    impact_local: tuple[float, float, float]
    impulse_Ns: float
    centre_of_mass: tuple[float, float, float]
    momentum: tuple[float, float, float]
    angular_momentum: tuple[float, float, float]
    kick_J: float
    pattern: "FracturePattern"


@dataclass(frozen=True)
class Roster:
    """``names`` (all entries), ``parent`` (-1 for scene objects, else the roster index of the
    object a slot is a fragment of), ``root`` (the scene object every entry comes from),
    ``slots[i]`` (the roster indices of entry i's fragment slots, empty when it cannot break)
    and ``pieces[i]`` (how many fragments entry i breaks into, 0 when it cannot break)."""

    names: tuple[str, ...]
    parent: tuple[int, ...]
    root: tuple[int, ...]
    slots: tuple[tuple[int, ...], ...]
    pieces: tuple[int, ...]
    scene_objects: int

    @staticmethod
    def from_scene(scene: "Scene") -> "Roster":
        names = [obj.name for obj in scene.objects]
        parent = [-1] * len(names)
        root = list(range(len(names)))
        pieces = [0] * len(names)
        slots: list[list[int]] = [[] for _ in names]
        second: list[tuple[int, int]] = []  # (first-level slot, its pieces)
        for i, obj in enumerate(scene.objects):
            spec = obj.physics.break_spec()
            if spec is None:
                continue
            settings = spec.resolved()
            n = int(settings["pieces"])
            pieces[i] = n
            for k in range(n):
                slots[i].append(len(names))
                names.append(f"{obj.name}#{k}")
                parent.append(i)
                root.append(i)
                pieces.append(0)
                slots.append([])
                if settings["rebreak"]:
                    second.append((len(names) - 1, rebreak_pieces(n)))
        for slot, n in second:
            pieces[slot] = n
            for j in range(n):
                slots[slot].append(len(names))
                names.append(f"{names[slot]}.{j}")
                parent.append(slot)
                root.append(root[slot])
                pieces.append(0)
                slots.append([])
        if len(names) > np.iinfo(np.uint16).max:
            raise ValueError(
                f"{len(names)} objects and fragment slots: the uint16 instance buffer holds at most 65535; "
                "ask for fewer `pieces` or fewer breakable objects"
            )
        return Roster(tuple(names), tuple(parent), tuple(root), tuple(tuple(s) for s in slots), tuple(pieces), len(scene.objects))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_breakables(self) -> bool:
        return len(self.names) > self.scene_objects

    def initially_present(self) -> np.ndarray:
        """(N,) bool: the scene objects exist at frame 0, no fragment does."""
        present = np.zeros(len(self.names), dtype=bool)
        present[: self.scene_objects] = True
        return present

    def depth(self, index: int) -> int:
        """0 for a scene object, 1 for its fragments, 2 for theirs."""
        d = 0
        while self.parent[index] >= 0:
            index = self.parent[index]
            d += 1
        return d


def rebreak_pieces(pieces: int) -> int:
    """How many fragments a fragment breaks into when its object's preset lets it break again."""
    return max(2, pieces // 4)


def event_of(breaks: tuple[BreakEvent, ...], index: int) -> Optional[BreakEvent]:
    """The break that made roster entry `index` (None for a scene object or a slot not made yet)."""
    for event in breaks:
        if index in event.fragments:
            return event
    return None
