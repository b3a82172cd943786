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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and one thread does not oversubscribe a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
