"""What building a World or drawing the first frame would refuse, found at load time.

``hybrid validate`` only loads a scene, so everything ``hybrid render`` refuses
between loading and the first frame has to be found here too, at the line of the
file that causes it: mesh files that cannot be parsed or give a dynamic body no
volume, height maps with an unusable grid, a flat mesh that the fields cannot use as
a solid, objects that start inside one another (deeper than the overlap tolerance,
unless ``physics.resolve_overlaps``), and a camera path that passes through the
point it looks at. Checks that
need nothing but the spec live in the models (``hybrid.scene.spec``); these need
files or the clip's frame times.

Mesh files are parsed through ``hybrid.geometry``'s cache, so the render that
follows does not read them again.
"""

from __future__ import annotations

import os

import numpy as np

from hybrid.scene.errors import Issue, SourceMap
from hybrid.scene.spec import HeightfieldShape, ObjectSpec, Scene

# The largest height grid per side, from any source: the generator's `resolution`
# allows as much, and a file may not ask for more (a 1024 x 1024 grid is two million
# triangles to collide with and draw).
MAX_HEIGHTFIELD_SIDE = 1024


def preflight_issues(scene: Scene, source: SourceMap) -> list[Issue]:
    """Every problem the World or the rasteriser would raise for `scene`, located through `source`."""
    issues: list[Issue] = []
    for i, obj in enumerate(scene.objects):
        at = ("objects", i, "shape")
        if obj.shape.type == "heightfield":
            issues.extend(_heightfield_issues(obj.shape, at, source))
        elif obj.shape.type == "mesh":
            issues.extend(_mesh_issues(obj, scene, at, source))
    problem = _camera_problem(scene)
    if problem is not None:
        issues.append(source.issue(*problem))
    if not issues:  # bodies are built only from shapes that passed the checks above
        from hybrid.physics.overlaps import overlap_issues

        issues.extend(overlap_issues(scene, source))
    return issues


# ---------------------------------------------------------------- height maps


def _heightfield_issues(shape: HeightfieldShape, at: tuple, source: SourceMap) -> list[Issue]:
    if shape.generator is not None:
        return []  # `resolution` is bounded by the schema
    if shape.heights is not None:
        grid = (len(shape.heights[0]), len(shape.heights))
        where = at + ("heights",)
        what = "`heights`"
    else:
        path = shape.file or ""
        where = at + ("file",)
        what = f"the height map {path}"
        if not os.path.isfile(path):
            return []  # already reported as a missing file
        if path.lower().endswith(".npy"):
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.ndim != 2:
                return []  # already reported
            if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)) or arr.dtype == bool:
                return [source.issue(where, f"{what} holds {arr.dtype} values; save heights as a 2D float array")]
            grid = (arr.shape[1], arr.shape[0])
        else:
            from PIL import Image

            try:
                with Image.open(path) as img:
                    grid = img.size
            except Exception:  # noqa: BLE001 - already reported by the file check
                return []
    cols, rows = grid
    if min(cols, rows) < 2:
        return [source.issue(where, f"{what} is {cols} x {rows} samples; a heightfield needs at least 2 x 2")]
    if max(cols, rows) > MAX_HEIGHTFIELD_SIDE:
        return [
            source.issue(
                where,
                f"{what} is {cols} x {rows} samples, more than {MAX_HEIGHTFIELD_SIDE} per side; "
                f"resample it to at most {MAX_HEIGHTFIELD_SIDE} x {MAX_HEIGHTFIELD_SIDE}",
            )
        ]
    if shape.file is not None and shape.file.lower().endswith(".npy"):
        arr = np.load(shape.file, mmap_mode="r", allow_pickle=False)
        if not np.isfinite(np.asarray(arr, dtype=np.float64)).all():
            return [source.issue(where, f"{what} holds NaN or infinite heights; every height must be a finite number")]
    return []


# ---------------------------------------------------------------- mesh files


def _mesh_issues(obj: ObjectSpec, scene: Scene, at: tuple, source: SourceMap) -> list[Issue]:
    if not os.path.isfile(obj.shape.file):
        return []  # already reported as a missing file
    from hybrid import geometry

    where = at + ("file",)
    try:
        mesh = geometry.build_mesh(obj.shape, scene.seed)
    except Exception as err:  # noqa: BLE001 - trimesh, numpy and the file formats raise many types
        return [
            source.issue(
                where,
                f"object {obj.name!r}: cannot read the mesh {obj.shape.file} ({type(err).__name__}: {err}); "
                "use a readable mesh file (obj, stl, ply, glb, off)",
            )
        ]
    issues: list[Issue] = []
    if obj.physics.body == "dynamic":
        from hybrid.physics.errors import BodyBuildError
        from hybrid.physics.mass import mass_properties

        try:
            mass_properties(obj, mesh)
        except BodyBuildError as err:
            message = str(err).removeprefix(f"object {obj.name!r}: ")
            issues.append(source.issue(where, message))
    if scene.fields is not None and _is_flat(np.asarray(mesh.vertices, dtype=np.float64)):
        issues.append(
            source.issue(
                where,
                "this mesh is flat (all its vertices lie in one plane), so it cannot be a solid boundary of the "
                "fields, which take each mesh as its convex hull; give it some thickness, or use a thin `box`",
            )
        )
    return issues


def _is_flat(vertices: np.ndarray) -> bool:
    """Whether the points span no volume (all in one plane or on one line), relative to their size."""
    centred = vertices - vertices.mean(axis=0)
    spread = np.linalg.svd(centred.T @ centred / max(1, len(vertices)), compute_uv=False)
    return not spread[2] > 1e-12 * max(spread[0], 1e-300)


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
