"""On-disk caches: a damaged entry is rebuilt, never used, and the rebuild equals a first build byte for byte.

Damage a cache entry can take in practice: an empty file (the disk filled up before
the data was flushed), a truncated one (a copy cut short), garbage (another program,
bit rot) and a file an older release wrote under the same name (another layout).
"""

import logging

import numpy as np
import pytest
import trimesh

from hybrid.cache import DamagedEntry, seal, unseal
from hybrid.data import textures
from hybrid.physics import decomposition, shapes

# Depth 1 keeps V-HACD to a couple of seconds here; the cache does not care how many parts there are.
FAST_VHACD = {**decomposition.VHACD_PARAMS, "depth": 1}


def small_cup() -> trimesh.Trimesh:
    profile = np.array([(0, 0), (0.1, 0), (0.1, 0.12), (0.08, 0.12), (0.08, 0.02), (0, 0.02)])
    return trimesh.creation.revolve(profile, sections=8)


def damaged_versions(good: bytes, older: list[bytes]) -> dict[str, bytes]:
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "cut at the last byte": good[:-1],
        "garbage": bytes(np.random.default_rng(0).integers(0, 256, len(good), dtype=np.uint8)),
        **{f"older version {i}": data for i, data in enumerate(older)},
    }


def no_temporary_files(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_seal_round_trip_and_refusals():
    key, other = "a" * 64, "b" * 64
    data = seal(b"o part\nv 0 0 0\n", key, "parts=1")
    assert unseal(data, key) == (b"o part\nv 0 0 0\n", "parts=1")
    for bad, why in ((b"", "empty"), (data[:-5], "no seal"), (data.replace(b"v 0", b"v 1"), "SHA-256")):
        with pytest.raises(DamagedEntry, match=why):
            unseal(bad, key)
    with pytest.raises(DamagedEntry, match="another key"):
        unseal(data, other)


@pytest.mark.slow  # one V-HACD decomposition per kind of damage
def test_decomposition_cache_rebuilds_every_kind_of_damage(cache, caplog):
    mesh = small_cup()
    path = decomposition.decompose(mesh, FAST_VHACD)
    fresh = path.read_bytes()
    assert path.parent == cache / "vhacd" and decomposition.count_parts(path) >= 1
    body, _ = unseal(fresh, path.stem)
    older = [
        body,  # the layout before seals: V-HACD's OBJ as it came
        seal(body, "0" * 64, "parts=1"),  # sealed under another key (another pybullet)
        seal(body, path.stem, "parts=99"),  # a seal whose part count does not match the parts
    ]
    for what, data in damaged_versions(fresh, older).items():
        path.write_bytes(data)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hybrid.cache"):
            again = decomposition.decompose(mesh, FAST_VHACD)
        assert again == path and path.read_bytes() == fresh, what
        notes = [r.getMessage() for r in caplog.records]
        assert len(notes) == 1 and "rebuilt" in notes[0] and "\n" not in notes[0], (what, notes)
    assert no_temporary_files(path.parent)
    # An intact entry is used as it is: not rebuilt, not rewritten.
    mtime = path.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hybrid.cache"):
        assert decomposition.decompose(mesh, FAST_VHACD) == path
    assert path.stat().st_mtime_ns == mtime and not caplog.records


def test_rebuilt_decomposition_loads_into_pybullet_as_its_parts(cache):
    from hybrid.physics.pybullet_quiet import pybullet as p

    mesh = small_cup()
    path = decomposition.decompose(mesh, FAST_VHACD)
    path.write_bytes(path.read_bytes()[:100])
    path = decomposition.decompose(mesh, FAST_VHACD)
    client = p.connect(p.DIRECT)
    try:
        sid = p.createCollisionShape(p.GEOM_MESH, fileName=str(path), physicsClientId=client)
        body = p.createMultiBody(1.0, sid, physicsClientId=client)
        parts = len(p.getCollisionShapeData(body, -1, physicsClientId=client))
    finally:
        p.disconnect(client)
    assert parts == decomposition.count_parts(path) >= 1


def test_decomposition_key_names_the_tool_version(monkeypatch):
    mesh = small_cup()
    key = decomposition.cache_key(mesh, FAST_VHACD)
    monkeypatch.setattr(decomposition, "tool_version", lambda name: "0.0.0-older")
    assert decomposition.cache_key(mesh, FAST_VHACD) != key


def test_texture_cache_rebuilds_every_kind_of_damage(tmp_path, caplog):
    from PIL import Image

    path = textures.texture_file("wood", 5, {"size": 32}, tmp_path)
    fresh = open(path, "rb").read()
    pixels = textures.procedural_texture("wood", 5, {"size": 32})
    plain = tmp_path / "plain.png"
    Image.fromarray(pixels).save(plain)  # what the version before seals wrote
    other = tmp_path / "other.png"
    Image.fromarray(textures.procedural_texture("wood", 6, {"size": 32})).save(other)
    for what, data in damaged_versions(fresh, [plain.read_bytes(), other.read_bytes()]).items():
        with open(path, "wb") as out:
            out.write(data)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hybrid.cache"):
            again = textures.texture_file("wood", 5, {"size": 32}, tmp_path)
        assert again == path and open(path, "rb").read() == fresh, what
        assert len(caplog.records) == 1 and "rebuilt" in caplog.records[0].getMessage(), what
    assert np.array_equal(np.asarray(Image.open(path)), pixels)
    assert no_temporary_files(tmp_path / "textures")


def test_texture_key_names_the_tool_version(monkeypatch):
    key = textures.texture_key("wood", 5, {"size": 32})
    monkeypatch.setattr(textures, "tool_version", lambda name: "0.0.0-older")
    assert textures.texture_key("wood", 5, {"size": 32}) != key


def test_large_mesh_file_cache_rebuilds_every_kind_of_damage(cache):
    mesh = trimesh.creation.icosphere(subdivisions=1)
    path = shapes._stl_file(mesh)
    fresh = path.read_bytes()
    for what, data in damaged_versions(fresh, []).items():
        path.write_bytes(data)
        assert shapes._stl_file(mesh) == path and path.read_bytes() == fresh, what
    assert no_temporary_files(path.parent)
