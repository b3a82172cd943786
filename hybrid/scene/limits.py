"""Refuse scenes too big for this machine before any work starts, with numbers.

A clip's buffers are held in memory until it is written, so a scene with a huge
resolution or frame count would otherwise run for minutes and then die for lack of
memory. ``check_limits`` estimates that cost up front and refuses, at the line of
the scene file that sets it, clips that would not fit.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from hybrid import buffers as buffer_registry
from hybrid.scene.errors import Issue, SceneError, SourceMap
from hybrid.scene.spec import Scene

GIB = 1024**3

# Bytes per pixel per frame of every buffer a clip of a scene without fields holds
# (the registry's core and flow groups, hybrid.buffers): 40.
BUFFER_BYTES_PER_PIXEL = {name: buffer_registry.get(name).bytes_per_pixel for name in buffer_registry.names("core", "flow")}

# The renderer's working set on top of the stored clip: float32 copies of one
# frame's passes while they are converted (colour RGBA, depth, normals, positions),
# 64 bytes per pixel, plus a fixed allowance for the GL context, meshes and the
# interpreter itself.
RENDER_BYTES_PER_PIXEL = 64
RENDER_BASE_BYTES = 512 * 1024**2

# Each object is a pybullet body stepped at every physics step, a node drawn in
# every render pass, and per-frame pose records in the metadata, so cost grows
# with every object; beyond this the per-object overhead dominates everything.
MAX_OBJECTS = 5000

MEMORY_ENV = "HYBRID_MAX_MEMORY_GB"

# ... and what the field buffers add in clips of scenes with fields: 21.
FIELD_BUFFER_BYTES_PER_PIXEL = buffer_registry.bytes_per_pixel(buffer_registry.names("fields"))
# Per cell per frame held in a clip's States until rendered: density, temperature,
# fuel, flame, velocity (7 float32) and the solid flag; per particle per frame:
# position and velocity (6 float32). The solvers' own working sets come from
# hybrid.fields.memory.
GAS_SNAPSHOT_BYTES_PER_CELL = 29
LIQUID_SNAPSHOT_BYTES_PER_PARTICLE = 24


def field_particle_count(liquid) -> int:
    """Particles a liquid's fill seeds (the solver's own count), found without allocating the grid."""
    from hybrid.fields.memory import particle_count

    return particle_count(liquid)


def estimate_field_bytes(scene: Scene, frames: Optional[int] = None) -> tuple[int, dict[str, int]]:
    """Bytes the fields need: solver working sets, per-frame snapshots, field buffers; and the parts.

    Every term is computed from the spec alone, nothing the size of a grid is allocated.
    `frames` replaces the scene's frame count (to tell what the frame count adds).
    """
    fields = scene.fields
    parts: dict[str, int] = {}
    if fields is None:
        return 0, parts
    from hybrid.fields.memory import gas_bytes, liquid_bytes
    from hybrid.scene.fields_spec import grid_shape

    frames = scene.frame_count if frames is None else frames
    if fields.gas is not None:
        shape, _ = grid_shape(fields.gas.domain, fields.gas.resolution)
        parts["gas"] = gas_bytes(fields.gas) + int(np.prod(shape)) * GAS_SNAPSHOT_BYTES_PER_CELL * frames
    if fields.liquid is not None:
        n = field_particle_count(fields.liquid)
        parts["liquid"] = liquid_bytes(
            fields.liquid, bodies=bool(scene.objects), gravity=any(g != 0 for g in scene.physics.gravity)
        ) + n * LIQUID_SNAPSHOT_BYTES_PER_PARTICLE * frames
    parts["buffers"] = scene.width * scene.height * frames * FIELD_BUFFER_BYTES_PER_PIXEL
    return sum(parts.values()), parts


def _written(source: SourceMap, *paths: tuple) -> Optional[tuple]:
    """The first of `paths` that the file or the command line sets, else None."""
    return next((p for p in paths if p in source.values or p in source.overrides), None)


def _frames_to_blame(scene: Scene, source: SourceMap, fits_with_few_frames: bool) -> Optional[tuple]:
    """`frames` or `duration` (whichever was written) when the frame count is what makes the
    estimate too big: the same scene with its first BLAME_FRAMES frames would fit."""
    if not fits_with_few_frames or scene.frame_count <= BLAME_FRAMES:
        return None
    return _written(source, ("frames",), ("duration",))


# A clip's cost is what every frame holds times the frame count, plus fixed parts: when
# the scene would fit at this many frames, the frame count is what to lower.
BLAME_FRAMES = 48


def _field_issues(scene: Scene, source: SourceMap) -> list[Issue]:
    """Fields too big for memory, or whose CFL condition needs more substeps than allowed."""
    import math

    from hybrid.scene.fields_spec import grid_shape

    fields = scene.fields
    issues: list[Issue] = []
    if fields is None:
        return issues
    total, parts = estimate_field_bytes(scene)
    limit = fields.memory_limit_gb * GIB
    if total > limit:
        few = estimate_field_bytes(scene, frames=min(scene.frame_count, BLAME_FRAMES))[0]
        worst = max((k for k in parts if k != "buffers"), key=parts.get, default="buffers")
        at = _frames_to_blame(scene, source, few <= limit)
        if at is None:
            at = ("fields", worst, "resolution") if worst in ("gas", "liquid") else ("resolution",)
        detail = ", ".join(f"{k} {v / GIB:.2f} GiB" for k, v in parts.items())
        issues.append(
            source.issue(
                at,
                f"the fields need an estimated {total / GIB:.1f} GiB ({detail}), more than fields.memory_limit_gb = "
                f"{fields.memory_limit_gb:g}; lower the grid `resolution`, shrink the `domain` or the fill, use fewer "
                "frames, or raise `fields.memory_limit_gb` if this machine has the memory",
            )
        )
    frame_dt = scene.frame_dt_sim
    gas = fields.gas
    if gas is not None:
        _, cell = grid_shape(gas.domain, gas.resolution)
        fastest = gas.prescribed_speed
        need = math.ceil(frame_dt * fastest / (gas.cfl * cell) - 1e-9)
        if need > gas.max_substeps:
            issues.append(
                source.issue(
                    ("fields", "gas", "max_substeps"),
                    f"CFL: gas moving at {fastest:.3g} m/s (the fastest inflow or emitter) crosses {fastest * frame_dt / cell:.1f} "
                    f"cells of {cell:.3g} m per frame, which needs {need} substeps at cfl {gas.cfl:g}, more than "
                    f"max_substeps = {gas.max_substeps}; raise `max_substeps` to at least {need}, use a coarser "
                    "`resolution`, a higher `cfl` (less accurate), or slower inflow",
                )
            )
    liquid = fields.liquid
    if liquid is not None:
        _, cell = grid_shape(liquid.domain, liquid.resolution)
        wave = liquid.sound_speed if liquid.material == "water" or liquid.youngs_modulus is None else math.sqrt(liquid.youngs_modulus / liquid.density)
        need = math.ceil(frame_dt * wave / (liquid.cfl * cell) - 1e-9)
        if need > liquid.max_substeps:
            knob = "sound_speed" if liquid.material == "water" else "youngs_modulus"
            issues.append(
                source.issue(
                    ("fields", "liquid", "max_substeps"),
                    f"CFL: waves at {wave:.3g} m/s cross {wave * frame_dt / cell:.0f} cells of {cell:.3g} m per frame, which "
                    f"needs {need} substeps at cfl {liquid.cfl:g}, more than max_substeps = {liquid.max_substeps}; raise "
                    f"`max_substeps` to at least {need}, lower `{knob}`, or use a coarser `resolution`",
                )
            )
        count = field_particle_count(liquid)
        if count > liquid.max_particles:
            issues.append(
                source.issue(
                    ("fields", "liquid", "fill"),
                    f"the fill seeds {count:,} particles, more than max_particles = {liquid.max_particles:,}; shrink the fill "
                    "regions, lower `particles_per_cell` or `resolution`, or raise `max_particles`",
                )
            )
        if count == 0:
            issues.append(
                source.issue(
                    ("fields", "liquid", "fill"),
                    "the fill regions cover no grid cell centre, so no particle would exist; make them larger than one "
                    "cell and put them inside the liquid's `domain`",
                )
            )
    return issues


def estimate_clip_bytes(scene: Scene, frames: Optional[int] = None) -> int:
    """Bytes needed to hold the whole clip's buffers in memory, plus the renderer's margin.

    `frames` replaces the scene's frame count (to tell what the frame count adds)."""
    pixels = scene.width * scene.height
    stored = pixels * (scene.frame_count if frames is None else frames) * sum(BUFFER_BYTES_PER_PIXEL.values())
    return stored + pixels * RENDER_BYTES_PER_PIXEL + RENDER_BASE_BYTES


def _available_bytes() -> Optional[int]:
    """Memory available to new work now: MemAvailable from /proc/meminfo, else sysconf."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def memory_limit_bytes() -> tuple[int, str]:
    """The largest clip estimate allowed, and where that limit comes from (for messages).

    ``HYBRID_MAX_MEMORY_GB`` (in GiB) overrides the default of half the memory
    available now; half leaves room for the rest of the machine's work.
    """
    text = os.environ.get(MEMORY_ENV)
    if text is not None and text.strip():
        try:
            gib = float(text)
            if not gib > 0 or gib == float("inf"):
                raise ValueError
        except ValueError:
            raise SceneError(
                [Issue(MEMORY_ENV, 0, 0, "", f"must be a positive number of GiB, got {text!r}")]
            ) from None
        return int(gib * GIB), f"set by {MEMORY_ENV}"
    available = _available_bytes()
    if available is None:
        return 8 * GIB, "a default, since this system does not report its free memory"
    return available // 2, "half of this machine's available memory"


def check_limits(scene: Scene, source: Optional[SourceMap] = None) -> None:
    """Raise SceneError if the scene would need more memory or objects than allowed.

    ``source`` locates the problem in the scene file; without it (a Scene built in
    code) the issues name no position.
    """
    source = source or SourceMap("<scene>")
    issues: list[Issue] = []
    estimate = estimate_clip_bytes(scene)
    limit, why = memory_limit_bytes()
    if estimate > limit:
        # Point at the size setting that makes the clip too big, among those the file wrote.
        few = estimate_clip_bytes(scene, frames=min(scene.frame_count, BLAME_FRAMES))
        at = (
            _frames_to_blame(scene, source, few <= limit)
            or _written(source, ("resolution",), ("frames",), ("duration",))
            or ()
        )
        issues.append(
            source.issue(
                at,
                f"this clip needs an estimated {estimate / GIB:.1f} GiB of memory ({scene.frame_count} frames "
                f"at {scene.width}x{scene.height}, {sum(BUFFER_BYTES_PER_PIXEL.values())} bytes per pixel per frame "
                f"for its buffers), more than the limit of {limit / GIB:.1f} GiB ({why}); use fewer frames "
                f"(`frames` or `duration`), a smaller `resolution`, or raise the limit with {MEMORY_ENV}",
            )
        )
    if len(scene.objects) > MAX_OBJECTS:
        issues.append(
            source.issue(
                ("objects",),
                f"{len(scene.objects)} objects is more than the limit of {MAX_OBJECTS}: every object is a physics "
                "body stepped at each step, a node drawn in each render pass and a pose record in each frame's "
                "metadata, so the cost per object adds up; merge static objects into one mesh or split the scene",
            )
        )
    issues.extend(_field_issues(scene, source))
    if issues:
        raise SceneError(issues)
