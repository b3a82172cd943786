"""Scene specification: YAML -> validated, immutable `Scene`."""

from hybrid.scene.spec import Scene, ObjectSpec  # noqa: F401
