"""Check a dataset folder against its manifest, shard by shard, and say what is wrong where.

Every planned shard is checked for: a manifest entry matching the plan, the file,
its size and sha256, a tar that reads to the end, each of its clips present once
with metadata.json, rgb.mp4 and every buffer of the manifest, and each buffer
member decoding (a `.npy.gz` member inflated with its CRC-32 and length checked,
whatever the manifest's compression: shards may mix layouts) to a .npy with the
manifest's dtype and shape. Checking decodes every array, so it reads the whole
dataset once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hybrid.data.manifest import (
    MANIFEST_NAME,
    SHARDS_DIR,
    Manifest,
    read_manifest,
    shard_name,
    shard_path,
)
from hybrid.data.shards import (
    METADATA_PART,
    VIDEO_PART,
    ShardReadError,
    buffer_part,
    clip_key,
    file_sha256,
    iter_shard,
)

MAX_REASONS = 8  # per shard; a shard with a broken header can otherwise list every clip


@dataclass
class ShardDamage:
    """One damaged shard: its index, file name and every reason found (most telling first)."""

    index: int
    name: str
    reasons: list[str]


@dataclass
class VerifyReport:
    """The outcome of `verify_dataset`. `ok` is True only for a complete, undamaged dataset."""

    dataset_dir: Path
    shards_planned: int
    clips_planned: int
    shards_ok: int = 0
    clips_ok: int = 0
    damaged: list[ShardDamage] = field(default_factory=list)
    uncommitted: list[int] = field(default_factory=list)  # planned shards the manifest does not list yet
    notes: list[str] = field(default_factory=list)  # harmless oddities: leftover temporary files, stray files

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.uncommitted

    def summary(self) -> str:
        """A few lines for a terminal: the verdict, then one line per damaged shard."""
        head = f"{self.dataset_dir}: {self.shards_ok}/{self.shards_planned} shards, {self.clips_ok}/{self.clips_planned} clips verified"
        lines = [head + (" - OK" if self.ok else "")]
        for d in self.damaged:
            lines.append(f"  DAMAGED {d.name}: " + "; ".join(d.reasons))
        if self.uncommitted:
            names = ", ".join(shard_name(i) for i in self.uncommitted[:5]) + (" ..." if len(self.uncommitted) > 5 else "")
            lines.append(f"  NOT GENERATED YET ({len(self.uncommitted)}): {names}")
        if self.damaged or self.uncommitted:
            lines.append("  Rerun generation with the same --out to regenerate these shards.")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _check_contents(path: Path, manifest: Manifest, clips: range) -> list[str]:
    """Reasons the tar's contents disagree with the manifest (empty when they agree)."""
    reasons: list[str] = []
    seen: set[int] = set()
    try:
        # Not strict: a member whose data does not decode is one reason, and the clips after it are still checked.
        for index, record in iter_shard(path, video=True, strict=False):
            key = clip_key(index)
            if index not in clips:
                reasons.append(f"clip {key} does not belong in this shard (it holds {clip_key(clips.start)}..{clip_key(clips.stop - 1)})")
            seen.add(index)
            if record["metadata"] is None:
                reasons.append(f"clip {key}: {METADATA_PART} missing")
            if record["mp4"] is None:
                reasons.append(f"clip {key}: {VIDEO_PART} missing")
            for part, why in record["damaged"].items():
                reasons.append(f"clip {key}: {part} {why}")
            stored = {name: buffer_part(name, compression) for name, compression in record["compression"].items()}
            for name, spec in manifest.buffers.items():
                arr = record["buffers"].get(name)
                if name not in stored:
                    reasons.append(f"clip {key}: {buffer_part(name, manifest.compression)} missing")
                elif arr is not None and (arr.dtype.name != spec.dtype or tuple(arr.shape) != spec.shape):
                    reasons.append(f"clip {key}: {stored[name]} is {arr.dtype.name} {tuple(arr.shape)}, manifest says {spec.dtype} {spec.shape}")
            for name in sorted(set(stored) - set(manifest.buffers)):
                reasons.append(f"clip {key}: {stored[name]} is not in the manifest's buffers")
    except ShardReadError as exc:
        reasons.append(exc.reason)
    absent = [i for i in clips if i not in seen]
    if absent:
        listed = ", ".join(clip_key(i) for i in absent[:4]) + (" ..." if len(absent) > 4 else "")
        reasons.append(f"{len(absent)} of {len(clips)} clips missing ({listed})")
    return reasons


def verify_shard(dataset_dir: Path, manifest: Manifest, index: int) -> list[str]:
    """Every reason shard `index` is damaged; [] when it matches the manifest. Assumes it is committed."""
    clips = manifest.plan()[index]
    entry = manifest.shards[index]
    reasons: list[str] = []
    if (entry.name, entry.first_clip, entry.clip_count) != (shard_name(index), clips.start, len(clips)):
        reasons.append(
            f"manifest entry ({entry.name}, clips {entry.first_clip}+{entry.clip_count}) does not match the plan "
            f"({shard_name(index)}, clips {clips.start}+{len(clips)})"
        )
    path = shard_path(dataset_dir, index)
    if not path.is_file():
        return reasons + ["file missing"]
    size = path.stat().st_size
    if size != entry.bytes:
        reasons.append(f"size is {size} bytes, manifest says {entry.bytes} (truncated or overwritten)")
    if file_sha256(path) != entry.sha256:
        reasons.append("sha256 differs from the manifest (contents changed or corrupted)")
    # Read the contents even after a hash mismatch: it tells which clips are hurt.
    reasons.extend(_check_contents(path, manifest, clips))
    if len(reasons) > MAX_REASONS:
        reasons = reasons[:MAX_REASONS] + [f"... and {len(reasons) - MAX_REASONS} more"]
    return reasons


def verify_dataset(dataset_dir: str | os.PathLike) -> VerifyReport:
    """Check every planned shard of `dataset_dir` against its manifest.json (see the module docstring).

    Raises DatasetError only when the manifest itself cannot be read; everything
    wrong with shards goes into the report.
    """
    out = Path(dataset_dir)
    manifest = read_manifest(out)
    plan = manifest.plan()
    report = VerifyReport(out, shards_planned=len(plan), clips_planned=manifest.clips)
    for index, clips in enumerate(plan):
        if index not in manifest.shards:
            report.uncommitted.append(index)
            continue
        reasons = verify_shard(out, manifest, index)
        if reasons:
            report.damaged.append(ShardDamage(index, shard_name(index), reasons))
        else:
            report.shards_ok += 1
            report.clips_ok += len(clips)
    for index in sorted(set(manifest.shards) - set(range(len(plan)))):
        report.notes.append(f"{MANIFEST_NAME} lists {manifest.shards[index].name}, beyond the planned {len(plan)} shards")
    expected = {shard_name(i) for i in range(len(plan))}
    shard_dir = out / SHARDS_DIR
    if shard_dir.is_dir():
        for path in sorted(shard_dir.iterdir()):
            if path.name not in expected:
                kind = "leftover of an interrupted write" if ".tmp-" in path.name else "not part of the dataset"
                report.notes.append(f"{SHARDS_DIR}/{path.name}: {kind}")
    return report
