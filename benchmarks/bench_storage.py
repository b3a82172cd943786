"""Buffer storage: size and write/read time of the showcase clip's buffers, per storage.

Baseline: ``hybrid.io.clip.save_npz`` (every array in one ``buffers.npz``, deflate
level 1), read back with ``np.load``.
Ours: ``hybrid.io.codecs.write_compact`` with the registry's codecs (``hybrid.buffers``) (flow to 1/64 px,
depth and field floats to a relative 2^-14, normals as octahedral unit vectors,
integers and colours exact), read back whole and as a one-buffer subset; and the
per-frame exports of ``hybrid.io.export`` (16-bit PNG with a stored range, and
32-bit float EXR for the float buffers).

The buffers are those of ``scenes/showcase.yaml`` rendered by ``render_clip``; the
first run renders it (a few minutes) and keeps the arrays under ``--cache``, later
runs load them. Times are wall-clock seconds and this process's CPU seconds
(``time.process_time``, which leaves out the time spent waiting for a core on a
shared machine); each is the median of ``--repeats`` runs, the storages
alternating. Every read is checked against the arrays within its documented bound.

Run: python benchmarks/bench_storage.py [--cache DIR] [--repeats N] [--no-export]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hybrid.buffers import codec as buffer_codec  # noqa: E402
from hybrid.io import codecs  # noqa: E402
from hybrid.io import export  # noqa: E402
from hybrid.io.clip import save_npz  # noqa: E402

SCENE = ROOT / "scenes" / "showcase.yaml"


def load_buffers(cache: Path, scene: Path) -> dict[str, np.ndarray]:
    """The scene's rendered buffers, from `cache` when it holds this scene's, else rendered and cached."""
    digest = hashlib.sha256(scene.read_bytes()).hexdigest()
    manifest = cache / "manifest.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        if info.get("scene_sha256") == digest:
            return {n: np.load(cache / f"{n}.npy") for n in info["buffers"]}
    from hybrid.pipeline import render_clip
    from hybrid.scene.load import load_scene

    print(f"rendering {scene} (cached under {cache} for later runs) ...", flush=True)
    clip = render_clip(load_scene(str(scene)))
    cache.mkdir(parents=True, exist_ok=True)
    for name, arr in clip.buffers.items():
        np.save(cache / f"{name}.npy", arr)
    manifest.write_text(json.dumps({"scene_sha256": digest, "buffers": list(clip.buffers)}))
    return dict(clip.buffers)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def check_npz(arrays, back) -> None:
    for name, arr in arrays.items():
        assert np.array_equal(arr, back[name], equal_nan=arr.dtype.kind == "f"), name


def check_compact(arrays, back, table) -> None:
    for name, arr in arrays.items():
        codecs.check_bound(table[name], arr, back[name])


def check_export(arrays, back, description) -> None:
    for name, arr in arrays.items():
        entry = description[name]
        tol = export.error_bound(entry)
        got = back[name]
        assert got.shape == arr.shape and got.dtype == arr.dtype, name
        if arr.dtype.kind == "f":
            nan = np.isnan(arr)
            assert np.array_equal(nan, np.isnan(got)), name
            if tol:
                # scale/2, plus half a float32 unit in the last place of the largest value.
                tol += float(np.spacing(np.float32(np.nanmax(np.abs(arr))))) / 2
            err = np.max(np.abs(got[~nan].astype(np.float64) - arr[~nan]), initial=0.0)
            assert err <= tol, (name, err, tol)
        else:
            assert np.array_equal(arr, got), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hybrid-bench-storage")
    parser.add_argument("--scene", type=Path, default=SCENE)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-export", action="store_true", help="skip the PNG and EXR exports (the slowest)")
    args = parser.parse_args()

    arrays = load_buffers(args.cache, args.scene)
    first = next(iter(arrays.values()))
    raw = sum(a.nbytes for a in arrays.values())
    print(f"{args.scene.name}: {first.shape[0]} frames of {first.shape[2]}x{first.shape[1]}, "
          f"buffers {', '.join(arrays)}; {raw / 1e6:.0f} MB in memory")
    table = {name: buffer_codec(name) for name in arrays}
    subset = "depth" if "depth" in arrays else next(iter(arrays))

    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    rows: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, int] = {}
    per_buffer: dict[str, int] = {}

    def record(label, key, wall, cpu):
        rows.setdefault(label, {}).setdefault(key, []).append(wall)
        rows[label].setdefault(key + "_cpu", []).append(cpu)

    storages = ["npz", "compact"] + ([] if args.no_export else ["png", "exr"])
    try:
        for _ in range(args.repeats):
            for storage in storages:
                target = work / storage
                if target.exists():
                    shutil.rmtree(target) if target.is_dir() else target.unlink()
                if storage == "npz":
                    target = work / "buffers.npz"
                    _, w, c = timed(lambda: save_npz(target, arrays))
                    record("npz (baseline)", "write", w, c)

                    def read_npz():
                        with np.load(target) as data:
                            return {k: data[k] for k in data.files}

                    back, w, c = timed(read_npz)
                    check_npz(arrays, back)
                    record("npz (baseline)", "read", w, c)
                    with np.load(target) as data:
                        _, w, c = timed(lambda: data[subset])
                    record("npz (baseline)", "subset", w, c)
                    sizes["npz (baseline)"] = folder_bytes(target)
                elif storage == "compact":
                    target = work / "buffers.hyb"
                    _, w, c = timed(lambda: codecs.write_compact(target, arrays, table))
                    record("compact", "write", w, c)
                    back, w, c = timed(lambda: codecs.read_compact(target))
                    check_compact(arrays, back, table)
                    record("compact", "read", w, c)
                    _, w, c = timed(lambda: codecs.read_compact(target, [subset]))
                    record("compact", "subset", w, c)
                    sizes["compact"] = folder_bytes(target)
                    per_buffer.update({n: e["bytes"] for n, e in codecs.compact_header(target)["buffers"].items()})
                else:
                    label = f"export {storage}"
                    description, w, c = timed(lambda: export.export_frames(target, arrays, storage))
                    json.dumps(description)
                    record(label, "write", w, c)
                    back, w, c = timed(lambda: export.read_frames(target, description))
                    check_export(arrays, back, description)
                    record(label, "read", w, c)
                    _, w, c = timed(lambda: export.read_frames(target, {subset: description[subset]}))
                    record(label, "subset", w, c)
                    sizes[label] = folder_bytes(target)
                    shutil.rmtree(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {label: {k: statistics.median(v) for k, v in cols.items()} for label, cols in rows.items()}
    base = med["npz (baseline)"]
    base_size = sizes["npz (baseline)"]
    print()
    print(f"| storage | size MB | x baseline | write s (cpu) | x baseline | read s (cpu) | {subset} only s |")
    print("|---|---|---|---|---|---|---|")
    for label, m in med.items():
        print(
            f"| {label} | {sizes[label] / 1e6:.1f} | {sizes[label] / base_size:.3f} "
            f"| {m['write']:.2f} ({m['write_cpu']:.2f}) | {m['write'] / base['write']:.2f} "
            f"| {m['read']:.2f} ({m['read_cpu']:.2f}) | {m['subset']:.2f} |"
        )
    print()
    print("| buffer | codec | bound | compact MB |")
    print("|---|---|---|---|")
    for name in arrays:
        codec = table[name]
        print(f"| {name} | {json.dumps(codec)} | {codecs.error_bound(codec)} | {per_buffer[name] / 1e6:.2f} |")


if __name__ == "__main__":
    main()
