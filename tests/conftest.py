"""Shared test set-up: headless rendering and a private cache for convex decompositions."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

REPO = Path(__file__).resolve().parents[1]
SCENES = REPO / "scenes"


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Keep convex decompositions out of the user's ~/.cache during tests (shared by all tests)."""
    if "HYBRID_CACHE_DIR" not in os.environ:
        os.environ["HYBRID_CACHE_DIR"] = str(tmp_path_factory.mktemp("hybrid-cache"))
    yield
