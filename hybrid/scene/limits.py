"""Refuse scenes too big for this machine before any work starts, with numbers.

A clip's buffers are held in memory until it is written, so a scene with a huge
resolution or frame count would otherwise run for minutes and then die for lack of
memory. ``check_limits`` estimates that cost up front and refuses, at the line of
the scene file that sets it, clips that would not fit.
"""

from __future__ import annotations

import os
from typing import Optional

from hybrid.scene.errors import Issue, SceneError, SourceMap
from hybrid.scene.spec import Scene

GIB = 1024**3

# Bytes per pixel per frame of every buffer a clip holds (see the buffer table in
# the design notes): rgb 3 x uint8, depth float32, instance uint16, normal 3 x
# float32, albedo 3 x uint8, flow_fwd and flow_bwd 2 x float32 each. Sum: 40.
BUFFER_BYTES_PER_PIXEL = {
    "rgb": 3,
    "depth": 4,
    "instance": 2,
    "normal": 12,
    "albedo": 3,
    "flow_fwd": 8,
    "flow_bwd": 8,
}

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


def estimate_clip_bytes(scene: Scene) -> int:
    """Bytes needed to hold the whole clip's buffers in memory, plus the renderer's margin."""
    pixels = scene.width * scene.height
    stored = pixels * scene.frame_count * sum(BUFFER_BYTES_PER_PIXEL.values())
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
        # Point at whichever size setting the file actually wrote.
        at = next((p for p in (("resolution",), ("frames",), ("duration",)) if p in source.values or p in source.overrides), ())
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
    if issues:
        raise SceneError(issues)
