"""What building a World or drawing the first frame would refuse, found at load time.

``hybrid validate`` only loads a scene, so everything ``hybrid render`` refuses
between loading and the first frame has to be found here too, at the line of the
file that causes it: mesh files that cannot be parsed or give a dynamic body no
volume, height maps with an unusable grid, a flat mesh that the fields cannot use as
a solid, objects that start inside one another (deeper than the overlap tolerance,
unless ``physics.resolve_overlaps``), and a camera path that passes through the
point it looks at. Checks that
need nothing but the spec live in the models (``hybrid.scene.spec``); these need
files or the clip's frame times. Each shape checks its own (``preflight`` of its
model in ``hybrid.shapes``: height maps in ``heightfield.py``, mesh files in ``mesh.py``).

Mesh files are parsed through the mesh shape's cache, so the render that follows
does not read them again.
"""

from __future__ import annotations

from hybrid.scene.spec import Scene
from hybrid.spec.errors import Issue, SourceMap


def preflight_issues(scene: Scene, source: SourceMap) -> list[Issue]:
    """Every problem the World or the rasteriser would raise for `scene`, located through `source`."""
    issues: list[Issue] = []
    for i, obj in enumerate(scene.objects):
        issues.extend(obj.shape.preflight(obj, scene, ("objects", i, "shape"), source))
    problem = _camera_problem(scene)
    if problem is not None:
        issues.append(source.issue(*problem))
    if not issues:  # bodies are built only from shapes that passed the checks above
        from hybrid.physics.overlaps import overlap_issues

        issues.extend(overlap_issues(scene, source))
    return issues


# ---------------------------------------------------------------- camera


def _camera_problem(scene: Scene):
    """(field path, message) when the camera sits on the point it looks at in some frame, else None."""
    from hybrid.camera import coincident_frame

    frame = coincident_frame(scene)
    if frame is None:
        return None
    return (
        ("camera", "keyframes"),
        f"at frame {frame} (video time {frame / scene.fps:.4g} s) the camera path passes through the point it looks "
        "at, so it has no view direction there; move the keyframes' `position` or `look_at` further apart",
    )
