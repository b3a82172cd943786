"""metadata.json: everything about a clip that is not per-pixel, as plain JSON."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

import hybrid
from hybrid import buffers as buffer_registry
from hybrid.io.clip import CLIP_FORMAT
from hybrid.scene.spec import Scene
from hybrid.state import State

def _fields_metadata(states: Sequence[State]) -> dict:
    """Per-frame solver statistics and the fields' fixed facts (grid, particle count)."""
    first = states[0].fields
    out: dict = {"frames": [s.fields.stats.to_dict() for s in states]}
    if first.gas is not None:
        g = first.gas
        out["gas"] = {
            "origin": _rows(g.origin),
            "cell_size": g.cell_size,
            "grid_shape": list(g.shape),
            "ambient_temperature_K": g.ambient_temperature,
        }
    if first.liquid is not None:
        q = first.liquid
        out["liquid"] = {
            "material": q.material,
            "particles": q.count,
            "particle_volume": q.particle_volume,
            "cell_size": q.cell_size,
            "origin": _rows(q.origin),
            "grid_shape": list(q.grid_shape),
        }
    return out


def _burn_metadata(states: Sequence[State], objects: list) -> None:
    """Adds `burn` to each flammable object's entry: its state, mass, mass burnt and burning area
    per frame, and when and by what it was lit and consumed (``hybrid.fields.burning``)."""
    first = states[0].fields.burn if states[0].fields is not None else None
    if first is None:
        return
    frames = [s.fields.burn for s in states]
    last = frames[-1]

    def when(x: float):
        return None if np.isnan(x) else float(x)

    for k, index in enumerate(first.index):
        objects[index]["burn"] = {
            "state": [b.state_name(k) for b in frames],
            "mass_kg": [float(b.mass_kg[k]) for b in frames],
            "burnt_kg": [float(b.burnt_kg[k]) for b in frames],
            "burning_area_m2": [float(b.burning_area_m2[k]) for b in frames],
            "ignition_time_s": when(last.ignition_time_s[k]),
            "ignition_cause": last.cause[k] or None,
            "consumed_time_s": when(last.consumed_time_s[k]),
        }


def _breaks_metadata(scene: Scene, states: Sequence[State], objects: list, positions, quats, lin, ang) -> Optional[list]:
    """With breakable objects: their settings and per-frame presence, one entry per fragment slot
    (appended to `objects`, with its parent and root object), and the list of breaks; None without."""
    if states[0].present is None:
        return None
    from hybrid.roster import Roster

    roster = Roster.from_scene(scene)
    present = np.stack([s.present_mask for s in states])
    for i, obj in enumerate(scene.objects):
        if obj.physics.breakable is not None:
            objects[i]["breakable"] = obj.physics.breakable.resolved()
            objects[i]["present"] = present[:, i].tolist()
    for i in range(roster.scene_objects, len(roster)):
        objects.append(
            {
                "name": roster.names[i],
                "instance_id": i + 1,
                "shape": "fragment",
                "body": "dynamic",
                "parent": roster.names[roster.parent[i]],
                "root": roster.names[roster.root[i]],
                "present": present[:, i].tolist(),
                "position": _rows(positions[:, i]),
                "quaternion": _rows(quats[:, i]),
                "linear_velocity": _rows(lin[:, i]),
                "angular_velocity": _rows(ang[:, i]),
            }
        )
    out = []
    for event in states[-1].breaks:
        pattern = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(event.pattern).items()}
        out.append(
            {
                "object": roster.names[event.parent],
                "instance_id": event.parent + 1,
                "time_s": event.time_s,
                "step": event.step,
                "frame": event.frame,
                "impact_point": list(event.impact_point),
                "impact_point_local": list(event.impact_local),
                "impulse_Ns": event.impulse_Ns,
                "centre_of_mass": list(event.centre_of_mass),
                "momentum": list(event.momentum),
                "angular_momentum": list(event.angular_momentum),
                "kick_J": event.kick_J,
                "fragments": [roster.names[i] for i in event.fragments],
                "fragment_ids": [i + 1 for i in event.fragments],
                "pattern": pattern,
            }
        )
    return out


def _rows(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


def build_metadata(
    scene: Scene,
    states: Sequence[State],
    K: np.ndarray,
    cam_to_world: np.ndarray,
    buffers: Optional[Mapping[str, np.ndarray]] = None,
) -> dict:
    """The metadata.json dict: scene facts, camera per frame, objects per frame, contacts per frame.

    Its ``buffers`` entry describes, from the registry (``hybrid.buffers``), the
    buffers in `buffers` (by default those a clip of this scene holds).
    """
    positions = np.stack([s.position for s in states]) if states[0].names else np.zeros((len(states), 0, 3))
    quats = np.stack([s.quaternion for s in states]) if states[0].names else np.zeros((len(states), 0, 4))
    lin = np.stack([s.linear_velocity for s in states]) if states[0].names else positions
    ang = np.stack([s.angular_velocity for s in states]) if states[0].names else positions
    objects = []
    for i, obj in enumerate(scene.objects):
        objects.append(
            {
                "name": obj.name,
                "instance_id": i + 1,
                "shape": obj.shape.type,
                "body": obj.physics.body,
                "position": _rows(positions[:, i]),
                "quaternion": _rows(quats[:, i]),
                "linear_velocity": _rows(lin[:, i]),
                "angular_velocity": _rows(ang[:, i]),
            }
        )
    _burn_metadata(states, objects)
    breaks = _breaks_metadata(scene, states, objects, positions, quats, lin, ang)
    has_fields = states[0].fields is not None
    contacts = []
    for s in states:
        cs = s.contact_set
        contacts.append(
            [
                {"a": s.names[a], "b": s.names[b], "position": pos, "normal": nrm, "impulse_Ns": imp}
                for (a, b), pos, nrm, imp in zip(
                    cs.pairs.tolist(), cs.position.tolist(), cs.normal.tolist(), cs.impulse_Ns.tolist()
                )
            ]
        )
    return {
        "format": CLIP_FORMAT,
        "hybrid_version": hybrid.__version__,
        "scene": scene.name,
        "seed": scene.seed,
        "fps": scene.fps,
        "frame_count": len(states),
        "resolution": [scene.width, scene.height],
        "time_scale": scene.time_scale,
        "frame_dt_sim": scene.frame_dt_sim,
        "time_s": [s.time_s for s in states],
        "units": "SI: metres, kilograms, seconds, radians; world frame right-handed, z up",
        "quaternion_order": "x, y, z, w",
        "camera_convention": "OpenCV: x right, y down, z forward; pixel (u, v) centres at integer + 0.5",
        "K": _rows(K),
        "cam_to_world": _rows(cam_to_world),
        "buffers": buffer_registry.docs(
            buffer_registry.clip_buffer_names(has_fields) if buffers is None else [n for n in buffer_registry.names() if n in buffers]
        ),
        "objects": objects,
        "contacts": contacts,
        **({"breaks": breaks} if breaks is not None else {}),
        **({"fields": _fields_metadata(states)} if has_fields else {}),
        "scene_spec": scene.model_dump(mode="json"),
    }
