"""A dataset clip's bytes depend on (recipe, seed, index) alone, never on what its process did before.

A worker renders many clips in one process, and a resumed run renders first, in a
fresh process, a clip that the uninterrupted run rendered after others; both must
write the same bytes. The beauty pass's HDR radiance is compared too: an
order-dependent float sum shows there in a few values of every clip, while the
bytes of a small clip's rgb hide it most of the time.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SEED = 3
HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def tiny_recipe_text() -> str:
    """MOVi-A as shipped (a directional light and three point lights), 4 frames at 128 x 128, tone-mapped.

    The post chain makes the clip's beauty frames HDR radiance, which ``clip_digests``
    can keep. 128 x 128 is big enough that a change in the order of the lights' sum
    shows in a few radiance values (the half-float target rounds most such changes away).
    """
    text = (REPO / "datasets" / "movi_a.yaml").read_text()
    assert "frames: 24" in text and "resolution: [256, 256]" in text and "\npost:" not in text
    text = text.replace("frames: 24", "frames: 4").replace("resolution: [256, 256]", "resolution: [128, 128]")
    return text + "\npost:\n  - {type: tonemap, operator: aces}\n"


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "tiny_movi_a.yaml"
    path.write_text(tiny_recipe_text())
    return path


def clip_digests(recipe_path, index: int) -> dict[str, str]:
    """sha256 of every shard member of clip `index` (metadata, mp4, each buffer) and of its HDR radiance."""
    import hybrid.pipeline
    from hybrid.data.generate import render_dataset_clip
    from hybrid.data.recipe import load_recipe
    from hybrid.data.shards import encode_clip

    rasterize = hybrid.pipeline.rasterize
    radiance = []

    def keeping_radiance(*args, **kwargs):
        buffers = rasterize(*args, **kwargs)
        radiance.append(buffers.get("hdr"))
        return buffers

    hybrid.pipeline.rasterize = keeping_radiance
    try:
        buffers, metadata, video = render_dataset_clip(load_recipe(recipe_path), SEED, index)
    finally:
        hybrid.pipeline.rasterize = rasterize
    assert len(radiance) == 1 and radiance[0] is not None, "the clip's beauty pass did not come as HDR radiance"
    members = encode_clip(index, buffers, metadata, video, "none")
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in members}
    assert len(digests) == len(buffers) + 2, sorted(digests)  # each buffer, metadata, mp4
    digests["hdr radiance"] = hashlib.sha256(radiance[0].tobytes()).hexdigest()
    return digests


def fresh_process_digests(recipe_path, index: int) -> dict[str, str]:
    """clip_digests in a new interpreter that renders nothing else, as a freshly started worker."""
    done = subprocess.run(
        [sys.executable, __file__, str(recipe_path), str(index)], capture_output=True, text=True, timeout=300, cwd=HERE
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def differing(a: dict, b: dict) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def test_clip_rendered_after_other_clips_has_the_bytes_of_a_fresh_process(tiny_recipe, monkeypatch):
    """Clip 1 alone in a fresh process, then here after clip 0, 5 or 2: every member and the radiance match."""
    import pyrender

    from hybrid.data.generate import render_dataset_clip
    from hybrid.data.recipe import load_recipe

    fresh = fresh_process_digests(tiny_recipe, 1)
    for salt, before in enumerate((0, 5, 2), start=1):
        # pyrender keeps a scene's nodes in sets hashed by address, so what a process
        # allocated before a scene decides their order. A salted hash gives each history
        # an order of its own, where the allocator would only now and then.
        monkeypatch.setattr(pyrender.Node, "__hash__", lambda node, salt=salt: hash((salt, id(node))))
        render_dataset_clip(load_recipe(tiny_recipe), SEED, before)
        got = clip_digests(tiny_recipe, 1)
        assert not differing(fresh, got), f"after clip {before}: {differing(fresh, got)} differ from a fresh process"


def _manifest_shards(out: Path) -> dict:
    from hybrid.data.manifest import read_manifest

    try:
        return read_manifest(out).shards
    except Exception:  # not written yet, or being replaced
        return {}


def _generate_cmd(recipe, out: Path, clips: int) -> list[str]:
    return [
        sys.executable, "-m", "hybrid", "dataset", "generate", str(recipe), "--out", str(out),
        "--clips", str(clips), "--seed", str(SEED), "--clips-per-shard", "1", "--workers", "1", "-q",
    ]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_and_resumed_run_writes_the_bytes_of_an_uninterrupted_one(tiny_recipe, tmp_path):
    """SIGKILL a 3-clip run once clip 0 is committed, resume it (clips 1 and 2 are then rendered
    by a fresh process, not after clip 0), and compare with an uninterrupted 2-clip run:
    the shared clips' shards are identical, byte for byte."""
    from hybrid.data.manifest import read_manifest
    from hybrid.data.verify import verify_dataset

    killed = tmp_path / "killed"
    log = tmp_path / "first-run.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(_generate_cmd(tiny_recipe, killed, 3), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while 0 not in _manifest_shards(killed) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        interrupted = proc.poll() is None and len(_manifest_shards(killed)) < 3
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert interrupted or proc.returncode == 0, log.read_text()
    if not interrupted:
        pytest.skip("the run finished before it could be killed after its first clip")
    subprocess.run(_generate_cmd(tiny_recipe, killed, 3), cwd=REPO, check=True, capture_output=True, timeout=300)

    straight = tmp_path / "straight"
    subprocess.run(_generate_cmd(tiny_recipe, straight, 2), cwd=REPO, check=True, capture_output=True, timeout=300)

    assert verify_dataset(killed).ok
    got, want = read_manifest(killed).shards, read_manifest(straight).shards
    for k in (0, 1):
        assert (got[k].sha256, got[k].bytes) == (want[k].sha256, want[k].bytes), f"shard {k}"
        name = f"shard-{k:06d}.tar"
        assert (killed / "shards" / name).read_bytes() == (straight / "shards" / name).read_bytes(), name


if __name__ == "__main__":  # fresh_process_digests runs this file: one clip, digests as JSON on the last line
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    print(json.dumps(clip_digests(sys.argv[1], int(sys.argv[2]))))
