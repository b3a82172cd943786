"""metadata.json: everything about a clip that is not per-pixel, as plain JSON."""

from __future__ import annotations

from typing import Sequence

import numpy as np

import hybrid
from hybrid.io.clip import CLIP_FORMAT
from hybrid.scene.spec import Scene
from hybrid.state import State

BUFFER_DOC = {
    "rgb": "uint8 (T,H,W,3) final sRGB frame",
    "depth": "float32 (T,H,W) z-depth in metres along the camera axis; 0 where nothing was hit",
    "instance": "uint16 (T,H,W) instance_id of the visible surface; 0 background",
    "normal": "float32 (T,H,W,3) unit surface normal in camera OpenCV axes; 0 background",
    "albedo": "uint8 (T,H,W,3) base colour without lighting, sRGB",
    "flow_fwd": "float32 (T,H,W,2) pixel offset (dx, dy) of this pixel's surface point in the next frame; 0 in the last frame; NaN where the point moves behind the next camera",
    "flow_bwd": "float32 (T,H,W,2) pixel offset (dx, dy) of this pixel's surface point in the previous frame; 0 in the first frame",
}

# Present only in clips of scenes with `fields:` (all five, zeros where a field is absent).
FIELD_BUFFER_DOC = {
    "gas_density": "float32 (T,H,W) smoke concentration integrated along the view ray up to the opaque surface (concentration x metres)",
    "gas_temperature": "float32 (T,H,W) highest gas temperature above ambient along the view ray up to the opaque surface (kelvin)",
    "liquid_mask": "uint8 (T,H,W) 1 where a liquid surface lies in front of the opaque surface",
    "liquid_thickness": "float32 (T,H,W) metres of liquid along the view ray before the opaque surface",
    "fluid_velocity": "float32 (T,H,W,2) screen motion (dx, dy) in pixels per frame of the fluid seen at the pixel (liquid surface, else density-weighted gas); 0 where no fluid",
}


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


def _rows(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


def build_metadata(scene: Scene, states: Sequence[State], K: np.ndarray, cam_to_world: np.ndarray) -> dict:
    """The metadata.json dict: scene facts, camera per frame, objects per frame, contacts per frame."""
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
        "buffers": {**BUFFER_DOC, **(FIELD_BUFFER_DOC if has_fields else {})},
        "objects": objects,
        "contacts": contacts,
        **({"fields": _fields_metadata(states)} if has_fields else {}),
        "scene_spec": scene.model_dump(mode="json"),
    }
