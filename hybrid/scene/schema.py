"""The JSON Schema of scene files, for editors and for `hybrid schema`.

Editors that read JSON Schema autocomplete keys, show each field's description
and flag typos while a scene is typed. With VS Code's YAML extension (or any
editor using yaml-language-server), write the schema to a file once::

    hybrid schema > scene.schema.json

and put this comment on the first line of a scene file (the path is relative to
the scene file)::

    # yaml-language-server: $schema=./scene.schema.json

or map it to every scene in the editor settings::

    "yaml.schemas": {"./scene.schema.json": "scenes/*.yaml"}
"""

from __future__ import annotations

from hybrid.scene.spec import Scene

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def scene_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a scene file, as a JSON-serialisable dict."""
    schema = Scene.model_json_schema()
    # Dialect and title first, so the written file reads top-down.
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "hybrid scene",
        "description": (
            "A hybrid scene file: objects (shape, physics, look), camera, lights and timing. "
            "Units are SI (metres, kilograms, seconds); fields ending in _deg take degrees; z is up."
        ),
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
