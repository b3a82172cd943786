"""Scene specification: YAML -> validated, immutable `Scene`, with located errors."""

from hybrid.scene.errors import Issue, SceneError
from hybrid.scene.load import load_scene, load_scene_text
from hybrid.scene.schema import scene_json_schema
from hybrid.scene.spec import ObjectSpec, Scene

__all__ = ["Issue", "ObjectSpec", "Scene", "SceneError", "load_scene", "load_scene_text", "scene_json_schema"]
