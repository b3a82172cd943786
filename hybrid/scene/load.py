"""Read a YAML scene file into a validated ``Scene``, or fail with located errors.

The YAML is read with every key and value's line and column (``hybrid.spec.load``,
shared with recipes and training configs); pydantic validates the data, and every
failure is reported at the place in the file it came from (``hybrid.spec.errors``).
Relative file paths in the scene are resolved against the
scene file's folder, command-line overrides are merged in before validation (so they
are checked like everything else), and the clip's size is checked against this
machine's memory (``hybrid.scene.limits``).
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Union

from pydantic import BaseModel

from hybrid.scene import spec
from hybrid.scene.errors import SceneError
from hybrid.scene.limits import check_limits
from hybrid.scene.preflight import preflight_issues
from hybrid.shapes import SHAPES
from hybrid.spec.errors import Issue, SourceMap, models_in, sorted_issues
from hybrid.spec.load import apply_overrides, parse_yaml, read_source, validate_located

# The largest texture side OpenGL takes on Mesa's software rasteriser (GL_MAX_TEXTURE_SIZE;
# most GPUs take the same or more): a wider image fails inside pyrender with a GLError.
MAX_TEXTURE_SIDE = 16384

# Overrides that replace each other: a frame count from the command line makes the
# file's duration meaningless, and the other way round.
_EXCLUSIVE_OVERRIDES = {("frames",): ("duration",), ("duration",): ("frames",)}


def path_fields() -> dict[type[BaseModel], tuple[str, ...]]:
    """Fields that name a file, relative to the scene file, by model: every shape's
    ``file_fields``, the look's texture and the environment image."""
    fields = {SHAPES[name]: SHAPES[name].file_fields for name in SHAPES if SHAPES[name].file_fields}
    return {**fields, spec.Look: ("texture",), spec.ImageEnvironment: ("path",)}


def load_scene(path: Union[str, os.PathLike], overrides: Optional[Mapping[str, object]] = None) -> spec.Scene:
    """Load and validate the scene file at ``path``; raise ``SceneError`` with every problem found.

    ``overrides`` maps field paths (``"frames"``, or dotted ``"camera.fov_deg"``) to
    values that replace the file's, as given on the command line; None values are
    skipped. Relative file paths inside the scene resolve against the file's folder.
    """
    filename = os.fspath(path)
    text = read_source(filename, "scene", SceneError)
    return load_scene_text(text, filename, os.path.dirname(os.path.abspath(filename)), overrides)


def load_scene_text(
    text: str,
    filename: str,
    base_dir: Optional[Union[str, os.PathLike]] = None,
    overrides: Optional[Mapping[str, object]] = None,
) -> spec.Scene:
    """Validate scene YAML given as text. ``filename`` is only used in messages.

    ``base_dir`` is where relative file paths in the scene are looked up (default:
    the folder of ``filename``).
    """
    base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.path.dirname(os.path.abspath(filename))
    data, source = parse_yaml(text, filename, SceneError)
    if overrides:
        apply_overrides(data, source, overrides, _EXCLUSIVE_OVERRIDES)
    scene = validate_located(spec.Scene, data, source, resolve_paths(data, source, base), SceneError)
    check_limits(scene, source)
    problems = preflight_issues(scene, source)
    if problems:
        raise SceneError(sorted_issues(problems))
    return scene


# ---------------------------------------------------------------- file paths


def resolve_paths(data: dict, source: SourceMap, base_dir: str) -> list[Issue]:
    """Make file-valued fields absolute (in place) and report the ones that do not exist."""
    issues: list[Issue] = []
    wanted = path_fields()
    for path, model, mapping in list(models_in(data, spec.Scene)):
        for name in wanted.get(model, ()):
            value = mapping.get(name)
            if not isinstance(value, str):
                continue  # not a path at all: validation words that error
            if not value.strip():
                issues.append(source.issue(path + (name,), "expected a file path, got an empty one"))
                continue
            resolved = os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))
            mapping[name] = resolved
            if os.path.isdir(resolved):
                issues.append(source.issue(path + (name,), f"{resolved} is a folder, not a file"))
            elif not os.path.isfile(resolved):
                note = "" if os.path.isabs(os.path.expanduser(value)) else f" (relative paths start at the scene's folder, {base_dir})"
                issues.append(source.issue(path + (name,), f"file not found: {resolved}{note}"))
            else:
                problem = _unreadable(model, name, resolved)
                if problem:
                    issues.append(source.issue(path + (name,), problem))
    return issues


def _unreadable(model: type[BaseModel], name: str, path: str) -> Optional[str]:
    """Why an image or height-map file cannot be used, or None. Checked here so the error
    points at the scene line rather than surfacing mid-render. (Mesh files are parsed
    when their body is built; that error names the object and the file.)"""
    if model is not spec.Look:
        return model.check_file(name, path)  # type: ignore[attr-defined]
    from hybrid.spec.files import image_problem

    problem, size = image_problem(path)
    if problem is None and max(size) > MAX_TEXTURE_SIDE:
        return (
            f"the image {path} is {size[0]} x {size[1]} pixels; a texture may be at most {MAX_TEXTURE_SIDE} "
            "pixels per side (OpenGL's texture limit here), so scale it down"
        )
    return problem
