"""The dataset folder and its manifest.json: which shards exist, what they hold, how to resume.

A dataset folder:

    manifest.json             this file's format, below
    shards/shard-000000.tar   clips 0 .. clips_per_shard-1 (see hybrid.data.shards)
    shards/shard-000001.tar   ...

Clip `i` lives in shard `i // clips_per_shard`. manifest.json:

    {"format": "hybrid-dataset/2",
     "recipe": <what the caller identifies the recipe by: the recipe dict, or its path and sha256>,
     "seed": 0, "clips": 1000, "clips_per_shard": 64,
     "buffers": {"depth": {"dtype": "float32", "shape": [T, H, W]}, ...},   # one clip's arrays
     "compression": "gzip",                                                # how buffer members are stored
     "shards": [{"name": "shard-000000.tar", "sha256": "...", "bytes": 123,
                 "first_clip": 0, "clip_count": 64}, ...]}                 # committed shards only

`compression` is how this dataset's writer stores each buffer: "gzip" as
`{key}.{buffer}.npy.gz` members, "none" as `{key}.{buffer}.npy` (see
hybrid.data.shards). Readers go by each member's suffix, so they read either. Format
1 (written before compression existed) has no `compression` field and only `.npy`
members; it is read as "none", and becomes format 2 the next time a resumed run
rewrites the manifest. Format 2 exists so that older readers, which know no
`.npy.gz`, refuse a dataset by its manifest rather than call its shards damaged.

The manifest is rewritten atomically after each committed shard, so a crash leaves
the shards it lists intact and the rest to regenerate (`missing_shards`). Only one
process (the run's driver) may update it; workers write shard files with
`write_shard` and hand back its (sha256, bytes) for `record_shard`. A killed write
leaves a `NAME.tmp-PID` file beside manifest.json or a shard; reopening the folder
deletes those whose process is gone, and nothing else.

`open_dataset` writes only into a folder that is new, empty, or holds a manifest.json
it reads as a hybrid dataset's: a folder with anything else, or with a manifest.json
of another format or that does not parse, is refused and left as it is.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from hybrid.data.shards import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    MAX_CLIPS,
    DatasetError,
    WrittenShard,
    atomic_write,
    check_buffer_name,
    check_compression,
    file_sha256,
    parse_member_name,
    split_buffer_part,
    write_shard,
)
from hybrid.io.atomic import pid_alive

FORMAT = "hybrid-dataset/2"
READABLE_FORMATS = ("hybrid-dataset/1", FORMAT)  # 1: before compression; read as compression "none"
MANIFEST_NAME = "manifest.json"
SHARDS_DIR = "shards"
SHARD_DIGITS = 6
MAX_SHARDS = 10**SHARD_DIGITS  # fixed-width names keep `ls` order equal to shard order
NEW_OUT_HINT = "use a new --out folder, or rerun with the folder's settings to resume it"
NEW_FOLDER_HINT = "choose a new or empty --out folder, or move that folder's files away yourself"
# What an interrupted atomic_write leaves: the target's name, ".tmp-", the writer's process id.
_LEFTOVER = re.compile(r"^(?P<target>.+)\.tmp-(?P<pid>\d{1,10})$")


@dataclass(frozen=True)
class BufferSpec:
    """dtype name (e.g. "float32") and full shape of one clip's buffer, T first: (T, H, W, ...)."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ShardEntry:
    """A committed shard: file name inside shards/, sha256 (hex), size in bytes, and its clip range."""

    name: str
    sha256: str
    bytes: int
    first_clip: int
    clip_count: int


@dataclass
class Manifest:
    """manifest.json in memory; `shards` maps shard index -> entry for committed shards only;
    `compression` is how buffer members are written ("gzip", "none" or "compact")."""

    recipe: object
    seed: int
    clips: int
    clips_per_shard: int
    buffers: dict[str, BufferSpec]
    shards: dict[int, ShardEntry] = field(default_factory=dict)
    compression: str = DEFAULT_COMPRESSION

    def plan(self) -> list[range]:
        return plan_shards(self.clips, self.clips_per_shard)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "recipe": self.recipe,
            "seed": self.seed,
            "clips": self.clips,
            "clips_per_shard": self.clips_per_shard,
            "buffers": {n: {"dtype": s.dtype, "shape": list(s.shape)} for n, s in sorted(self.buffers.items())},
            "compression": self.compression,
            "shards": [vars(self.shards[i]) for i in sorted(self.shards)],
        }


def plan_shards(n_clips: int, clips_per_shard: int) -> list[range]:
    """The clip indices of every shard: shard k holds range(k*clips_per_shard, min(n_clips, (k+1)*clips_per_shard))."""
    for name, value in (("clips", n_clips), ("clips_per_shard", clips_per_shard)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DatasetError(f"{name} must be a positive integer, got {value!r}")
    if n_clips > MAX_CLIPS:
        raise DatasetError(f"clips = {n_clips} exceeds the {MAX_CLIPS} clip keys a dataset can hold; split it into several datasets")
    n_shards = -(-n_clips // clips_per_shard)
    if n_shards > MAX_SHARDS:
        raise DatasetError(f"{n_clips} clips at {clips_per_shard} per shard make {n_shards} shards (max {MAX_SHARDS}); raise clips_per_shard")
    return [range(k * clips_per_shard, min(n_clips, (k + 1) * clips_per_shard)) for k in range(n_shards)]


def shard_name(index: int) -> str:
    return f"shard-{index:0{SHARD_DIGITS}d}.tar"


def shard_path(dataset_dir: str | os.PathLike, index: int) -> Path:
    return Path(dataset_dir) / SHARDS_DIR / shard_name(index)


def buffer_specs(buffers: dict[str, np.ndarray]) -> dict[str, BufferSpec]:
    """The manifest's buffer table from one clip's buffers (every clip of a dataset must match it)."""
    specs = {}
    for name, arr in buffers.items():
        check_buffer_name(name, "buffers")
        specs[name] = BufferSpec(np.dtype(arr.dtype).name, tuple(int(d) for d in arr.shape))
    return specs


def check_clip_buffers(manifest: Manifest, index: int, buffers: dict[str, np.ndarray]) -> None:
    """Refuse a clip whose buffer names, dtypes or shapes differ from the manifest's table."""
    if set(buffers) != set(manifest.buffers):
        missing = sorted(set(manifest.buffers) - set(buffers))
        extra = sorted(set(buffers) - set(manifest.buffers))
        raise DatasetError(
            f"clip {index}: buffers differ from the dataset's (missing {missing}, unexpected {extra}); "
            "every clip of a dataset must carry the same buffers"
        )
    for name, spec in manifest.buffers.items():
        arr = buffers[name]
        if np.dtype(arr.dtype).name != spec.dtype or tuple(arr.shape) != spec.shape:
            raise DatasetError(
                f"clip {index}: buffer {name!r} is {arr.dtype} {tuple(arr.shape)}, the dataset holds "
                f"{spec.dtype} {spec.shape}; every clip needs the same frame count, resolution and dtypes"
            )


def _json_normal(value: object, what: str) -> object:
    """`value` as it reads back from JSON, so a tuple and a list of the same items compare equal."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{what} must be JSON-serialisable to go into {MANIFEST_NAME} ({exc})") from None


def _bad(path: Path, what: str) -> DatasetError:
    return DatasetError(f"{path}: {what}; the manifest is damaged or not a hybrid dataset: {NEW_OUT_HINT}")


def _int_field(data: dict, key: str, path: Path, minimum: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(path, f"field {key!r} must be an integer >= {minimum}, found {value!r}")
    return value


def manifest_from_json(data: object, path: Path) -> Manifest:
    """Validate a parsed manifest.json; errors name the file and the field."""
    if not isinstance(data, dict):
        raise _bad(path, f"expected a JSON object, found {type(data).__name__}")
    if data.get("format") not in READABLE_FORMATS:
        ours = isinstance(data.get("format"), str) and data["format"].startswith("hybrid-dataset/")
        raise DatasetError(
            f"{path}: format is {data.get('format')!r}; this version of hybrid reads "
            + " and ".join(repr(f) for f in READABLE_FORMATS)
            + (" (a newer format needs a newer hybrid)" if ours else
               f"; this {MANIFEST_NAME} is not a hybrid dataset's, so the folder is left as it is: {NEW_FOLDER_HINT}")
        )
    compression = data.get("compression", "none") if data["format"] != FORMAT else data.get("compression")
    if compression not in COMPRESSIONS:
        raise _bad(path, f"field 'compression' must be one of {', '.join(repr(c) for c in COMPRESSIONS)}, found {compression!r}")
    for key in ("recipe", "buffers", "shards"):
        if key not in data:
            raise _bad(path, f"field {key!r} is missing")
    buffers = {}
    if not isinstance(data["buffers"], dict) or not data["buffers"]:
        raise _bad(path, "field 'buffers' must be a non-empty object of name -> {dtype, shape}")
    for name, spec in data["buffers"].items():
        try:
            dtype = np.dtype(spec["dtype"]).name
            shape = tuple(int(d) for d in spec["shape"])
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f"buffers.{name} must be {{'dtype': 'float32', 'shape': [T, H, W]}}, found {spec!r}") from None
        buffers[name] = BufferSpec(dtype, shape)
    manifest = Manifest(
        recipe=data["recipe"],
        seed=_int_field(data, "seed", path, 0),
        clips=_int_field(data, "clips", path, 1),
        clips_per_shard=_int_field(data, "clips_per_shard", path, 1),
        buffers=buffers,
        compression=compression,
    )
    if not isinstance(data["shards"], list):
        raise _bad(path, "field 'shards' must be a list")
    for k, entry in enumerate(data["shards"]):
        try:
            shard = ShardEntry(
                name=str(entry["name"]),
                sha256=str(entry["sha256"]),
                bytes=int(entry["bytes"]),
                first_clip=int(entry["first_clip"]),
                clip_count=int(entry["clip_count"]),
            )
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f"shards[{k}] must have name, sha256, bytes, first_clip, clip_count; found {entry!r}") from None
        manifest.shards[shard.first_clip // manifest.clips_per_shard] = shard
    return manifest


def read_manifest(dataset_dir: str | os.PathLike) -> Manifest:
    """Load and validate `dataset_dir/manifest.json`."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(f"{dataset_dir}: no {MANIFEST_NAME}, so this is not a dataset folder; give the folder that `hybrid dataset generate --out` wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _bad(path, f"invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})") from None
    except UnicodeDecodeError:
        raise _bad(path, "not UTF-8 text") from None
    return manifest_from_json(data, path)


def _manifest_text(data: dict) -> str:
    """JSON with one line per top-level field, per buffer and per shard: readable and diffable."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict) and key == "buffers":
            inner = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            text = "{\n" + ",\n".join(inner) + "\n }"
        elif isinstance(value, list) and value and key == "shards":
            text = "[\n" + ",\n".join(f"  {json.dumps(v)}" for v in value) + "\n ]"
        else:
            text = json.dumps(value)
        lines.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_manifest(dataset_dir: str | os.PathLike, manifest: Manifest) -> None:
    """Replace manifest.json atomically (temporary sibling, fsync, rename, fsync the folder)."""
    payload = _manifest_text(manifest.to_json()).encode("utf-8")
    atomic_write(Path(dataset_dir) / MANIFEST_NAME, lambda fh: fh.write(payload))


def _differences(old: object, new: object, path: str, out: list[str], limit: int = 6) -> None:
    """Human-readable paths where two JSON values differ (at most `limit`)."""
    if len(out) >= limit or old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _differences(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{path}.{key}", out, limit)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _differences(a, b, f"{path}[{i}]", out, limit)
    else:
        out.append(f"{path}: {_short(old)} in the folder, {_short(new)} in this run")


def _short(value: object, width: int = 60) -> str:
    text = json.dumps(value) if value != "<absent>" else "absent"
    return text if len(text) <= width else text[: width - 3] + "..."


def open_dataset(
    dataset_dir: str | os.PathLike,
    recipe: object,
    seed: int,
    clips: int,
    clips_per_shard: int,
    buffers: dict[str, BufferSpec],
    compression: Optional[str] = None,
) -> Manifest:
    """Create a dataset folder, or reopen one made with the same settings to resume it.

    An existing folder must have been made with the same recipe, seed, clips_per_shard
    and buffer table; otherwise this raises a DatasetError listing what differs. `clips`
    may grow (the last, partial shard is then planned again) but not shrink, since the
    shards beyond the new end would be left inconsistent.

    `compression` ("gzip", "none" or "compact") is how buffer members are stored. None means
    DEFAULT_COMPRESSION for a new folder and the folder's own for an existing one, so
    a dataset made before compression existed resumes uncompressed; naming one that
    differs from the folder's is refused like any other changed setting.
    """
    out = Path(dataset_dir)
    plan_shards(clips, clips_per_shard)
    if compression is not None:
        check_compression(compression, "compression")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(buffers, dict) or not buffers:
        raise DatasetError("buffers must be a non-empty dict of name -> BufferSpec (see buffer_specs)")
    for name in buffers:
        check_buffer_name(name, "buffers")
    wanted = Manifest(
        recipe=_json_normal(recipe, "recipe"),
        seed=int(seed),
        clips=int(clips),
        clips_per_shard=int(clips_per_shard),
        buffers={n: BufferSpec(np.dtype(s.dtype).name, tuple(int(d) for d in s.shape)) for n, s in buffers.items()},
        compression=compression or DEFAULT_COMPRESSION,
    )
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; give --out a folder path")
    if (out / MANIFEST_NAME).is_file():
        manifest = _reopen(out, wanted, compression)  # refuses a manifest.json that is not ours
        remove_tmp_leftovers(out)
        return manifest
    if out.is_dir():
        # A run killed while writing its first manifest leaves only that manifest's temporary file.
        entries = list(out.iterdir())
        first_write = [p for p in entries if _stale_leftover(p, re.escape(MANIFEST_NAME))]
        if len(first_write) < len(entries):
            others = sorted(p.name + ("/" if p.is_dir() else "") for p in entries if p not in first_write)
            raise DatasetError(
                f"{out} is a non-empty folder without {MANIFEST_NAME} (it holds {', '.join(others[:5])}"
                f"{' and more' if len(others) > 5 else ''}); a dataset is written only into a new or empty "
                f"folder, so nothing was written: {NEW_FOLDER_HINT}"
            )
        for path in first_write:
            path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, wanted)
    (out / SHARDS_DIR).mkdir(exist_ok=True)
    return wanted


def _reopen(out: Path, wanted: Manifest, compression: Optional[str]) -> Manifest:
    have = read_manifest(out)
    diffs: list[str] = []
    _differences(have.recipe, wanted.recipe, "recipe", diffs)
    for key in ("seed", "clips_per_shard"):
        _differences(getattr(have, key), getattr(wanted, key), key, diffs)
    if compression is not None:
        _differences(have.compression, compression, "compression", diffs)
    _differences(
        {n: [s.dtype, list(s.shape)] for n, s in have.buffers.items()},
        {n: [s.dtype, list(s.shape)] for n, s in wanted.buffers.items()},
        "buffers",
        diffs,
    )
    if diffs:
        raise DatasetError(
            f"{out} already holds a dataset made with different settings:\n  "
            + "\n  ".join(diffs)
            + f"\nA dataset folder holds one recipe, seed, shard size, buffer set and compression; {NEW_OUT_HINT}"
        )
    if wanted.clips < have.clips:
        raise DatasetError(
            f"{out} was planned for {have.clips} clips; this run asks for {wanted.clips}. A dataset cannot "
            f"shrink in place; {NEW_OUT_HINT} (or ask for {have.clips} or more clips)"
        )
    if wanted.clips > have.clips:
        have.clips = wanted.clips
        write_manifest(out, have)
    (out / SHARDS_DIR).mkdir(exist_ok=True)
    return have


def record_shard(dataset_dir: str | os.PathLike, manifest: Manifest, shard_index: int, written: WrittenShard) -> Manifest:
    """Add (or replace) shard `shard_index` in `manifest` and rewrite manifest.json atomically."""
    plan = manifest.plan()
    if not 0 <= shard_index < len(plan):
        raise DatasetError(f"shard index {shard_index} is outside this dataset's {len(plan)} planned shards")
    clips = plan[shard_index]
    sha, size = written
    manifest.shards[shard_index] = ShardEntry(shard_name(shard_index), sha, int(size), clips.start, len(clips))
    write_manifest(dataset_dir, manifest)
    return manifest


def commit_shard(
    dataset_dir: str | os.PathLike, manifest: Manifest, shard_index: int, members: Iterable[tuple[str, bytes]]
) -> WrittenShard:
    """Write shard `shard_index` from its members (encode_clip of each of its clips) and record it.

    The members must cover exactly the shard's planned clips, with buffers stored as
    the manifest's `compression` says; otherwise nothing is written.
    """
    members = list(members)
    plan = manifest.plan()
    if not 0 <= shard_index < len(plan):
        raise DatasetError(f"shard index {shard_index} is outside this dataset's {len(plan)} planned shards")
    for name, _ in members:
        stored = split_buffer_part(parse_member_name(name, where=shard_name(shard_index))[1])
        if stored is not None and stored[1] != manifest.compression:
            raise DatasetError(
                f"{shard_name(shard_index)}: member {name!r} is stored with compression {stored[1]!r}, but this "
                f"dataset stores {manifest.compression!r}; encode its clips with "
                f"encode_clip(..., compression={manifest.compression!r})"
            )
    got = sorted({parse_member_name(name, where=shard_name(shard_index))[0] for name, _ in members})
    if got != list(plan[shard_index]):
        want = plan[shard_index]
        raise DatasetError(
            f"{shard_name(shard_index)}: members hold clips {got[:3]}{'...' if len(got) > 3 else ''} "
            f"but the shard holds clips {want.start}..{want.stop - 1}; encode exactly those clips"
        )
    written = write_shard(shard_path(dataset_dir, shard_index), members)
    record_shard(dataset_dir, manifest, shard_index, written)
    return written


def _stale_leftover(path: Path, target: str) -> bool:
    """Whether `path` is a plain file `TARGET.tmp-PID`, TARGET matching regex `target`, of a process that is gone."""
    match = _LEFTOVER.match(path.name)
    if match is None or re.fullmatch(target, match["target"]) is None or path.is_symlink() or not path.is_file():
        return False
    pid = int(match["pid"])
    return pid != os.getpid() and not pid_alive(pid)


def remove_tmp_leftovers(dataset_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writes left behind; returns what was deleted.

    Only `manifest.json.tmp-PID` and `shards/shard-NNNNNN.tar.tmp-PID` files are
    candidates, and only those whose process no longer runs on this machine: a write
    in progress (another worker's, or a concurrent run's) is left alone.
    """
    out = Path(dataset_dir)
    leftovers = [p for p in out.glob(f"{MANIFEST_NAME}.tmp-*") if _stale_leftover(p, re.escape(MANIFEST_NAME))]
    shard_names = rf"shard-\d{{{SHARD_DIGITS}}}\.tar"
    leftovers += [p for p in (out / SHARDS_DIR).glob("shard-*.tar.tmp-*") if _stale_leftover(p, shard_names)]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def shard_problem(dataset_dir: str | os.PathLike, manifest: Manifest, index: int, check_sha256: bool = True) -> Optional[str]:
    """Why shard `index` cannot be trusted as committed (None when it can): entry, file, size, sha256."""
    clips = manifest.plan()[index]
    entry = manifest.shards.get(index)
    if entry is None:
        return "not committed (no manifest entry)"
    if (entry.name, entry.first_clip, entry.clip_count) != (shard_name(index), clips.start, len(clips)):
        return (
            f"manifest entry {entry.name} clips {entry.first_clip}+{entry.clip_count} does not match the plan "
            f"{shard_name(index)} clips {clips.start}+{len(clips)}"
        )
    path = shard_path(dataset_dir, index)
    if not path.is_file():
        return "file missing"
    size = path.stat().st_size
    if size != entry.bytes:
        return f"size {size} bytes, manifest says {entry.bytes} (truncated or overwritten)"
    if check_sha256 and file_sha256(path) != entry.sha256:
        return "sha256 differs from the manifest (contents changed or corrupted)"
    return None


def missing_shards(dataset_dir: str | os.PathLike, manifest: Manifest, check_sha256: bool = True) -> list[int]:
    """Shard indices to (re)generate: absent, not in the manifest, or whose size or sha256 disagree.

    Also deletes the leftover `*.tmp-PID` files of killed writes (see remove_tmp_leftovers). `check_sha256=False`
    skips hashing (size only) when re-reading a large dataset is too slow.
    """
    remove_tmp_leftovers(dataset_dir)
    return [i for i in range(len(manifest.plan())) if shard_problem(dataset_dir, manifest, i, check_sha256) is not None]
