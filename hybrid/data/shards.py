"""One dataset shard: a plain POSIX tar holding whole clips, WebDataset-style.

Clip `i` is the run of consecutive members whose names start with its key
`f"{i:08d}"`; the part after the first dot says what the member holds:

| member | content |
|---|---|
| `{key}.metadata.json` | the clip's metadata dict (as in a clip folder's metadata.json), UTF-8 JSON |
| `{key}.rgb.mp4` | the beauty video (H.264) for looking at; training reads `rgb.npy` |
| `{key}.{buffer}.npy` | one buffer, all frames, (T, ...) in NumPy's .npy format (little-endian, C order) |

Within a clip the members come in a fixed order (metadata, video, then buffers
sorted by name) and clips come in ascending key order, so any tar reader that
groups members by key (the `webdataset` library does) sees one sample per clip.
Every header is normalised (mtime 0, uid/gid 0, empty user/group names, mode 0644,
PAX format), so the same clips always give a byte-identical shard and sha256.

Shards are uncompressed: float buffers barely deflate, and plain tar can be
streamed member by member without reading the rest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, NamedTuple, Optional

import numpy as np

KEY_DIGITS = 8
MAX_CLIPS = 10**KEY_DIGITS  # keys stay fixed-width, so name order is clip order
METADATA_PART = "metadata.json"
VIDEO_PART = "rgb.mp4"
NPY_EXT = ".npy"
# Buffer names become member suffixes: webdataset lower-cases suffixes and splits
# on dots, so only lower-case names without dots survive a round trip.
BUFFER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# The loader yields these keys beside the buffers, so no buffer may take them.
RESERVED_NAMES = frozenset({"index", "metadata", "first_frame"})
TAR_FORMAT = tarfile.PAX_FORMAT
_MEMBER = re.compile(r"^(\d{%d})\.(.+)$" % KEY_DIGITS)

VERIFY_HINT = "check the dataset with `hybrid dataset verify DIR`; rerunning generation with the same --out rewrites damaged shards"

Members = Iterable[tuple[str, bytes]]


class DatasetError(Exception):
    """A dataset file or argument cannot be used; the message names it and says what to do."""


class ShardReadError(DatasetError):
    """A shard file cannot be read as written; `reason` says why without the file name or advice."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}; {VERIFY_HINT}")
        self.path = path
        self.reason = reason


class WrittenShard(NamedTuple):
    """What `write_shard` committed: the file's sha256 (hex) and its size in bytes."""

    sha256: str
    bytes: int


def clip_key(index: int) -> str:
    """The member-name prefix of clip `index` (0-based, global across the dataset)."""
    return f"{index:0{KEY_DIGITS}d}"


def parse_member_name(name: str, where: str = "shard") -> tuple[int, str]:
    """Split `00000012.depth.npy` into (12, "depth.npy"); anything else is a DatasetError."""
    m = _MEMBER.match(name)
    if m is None:
        raise DatasetError(
            f"{where}: member {name!r} is not a clip member (expected {'N' * KEY_DIGITS}.<part>, "
            f"e.g. {clip_key(12)}.depth.npy); build members with encode_clip"
        )
    return int(m.group(1)), m.group(2)


def buffer_part(name: str) -> str:
    return name + NPY_EXT


def check_buffer_name(name: object, where: str) -> None:
    """Buffer names must survive webdataset's key/suffix split and not shadow the loader's keys."""
    if not isinstance(name, str) or not BUFFER_NAME.match(name):
        raise DatasetError(
            f"{where}: buffer name {name!r} cannot be stored; use lower-case letters, digits and "
            "underscores, starting with a letter (e.g. 'flow_fwd', 'smoke_density')"
        )
    if name in RESERVED_NAMES:
        raise DatasetError(f"{where}: buffer name {name!r} is reserved for the loader; rename the buffer")


def encode_array(arr: np.ndarray) -> bytes:
    """.npy bytes of `arr`, always little-endian and C-ordered so shards do not depend on the host."""
    little = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    out = io.BytesIO()
    np.lib.format.write_array(out, little, allow_pickle=False)
    return out.getvalue()


_HEADER_PROBE = 1 << 17  # .npy headers are at most 64 KiB in the versions np.save writes for plain dtypes


def decode_array(payload: bytearray) -> np.ndarray:
    """The array in .npy bytes (never pickles), as a writable view of `payload` without copying it.

    Raises ValueError when the bytes are not a complete .npy of a plain dtype.
    """
    head = io.BytesIO(memoryview(payload)[:_HEADER_PROBE])
    version = np.lib.format.read_magic(head)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(head)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(head)
    else:
        raise ValueError(f".npy format version {version} is not one np.save writes for plain arrays")
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects")
    count = int(np.prod(shape, dtype=np.int64))
    offset = head.tell()
    if len(payload) - offset != count * dtype.itemsize:
        raise ValueError(f"{len(payload) - offset} data bytes for {dtype} {shape}, which needs {count * dtype.itemsize}")
    flat = np.frombuffer(payload, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def encode_clip(index: int, buffers: dict[str, np.ndarray], metadata: dict, mp4_bytes: bytes) -> list[tuple[str, bytes]]:
    """The tar members of one clip, in shard order: [(member name, payload bytes), ...].

    `buffers[name]` has shape (T, ...) as in the buffer table (rgb uint8 (T,H,W,3),
    depth float32 (T,H,W), ...); `metadata` is the clip's JSON-able metadata dict;
    `mp4_bytes` the encoded beauty video.
    """
    where = f"clip {index!r}"
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < MAX_CLIPS:
        raise DatasetError(f"{where}: the clip index must be an integer in [0, {MAX_CLIPS}); got {index!r}")
    index = int(index)
    if not isinstance(buffers, dict) or not buffers:
        raise DatasetError(f"{where}: buffers must be a non-empty dict of name -> (T, ...) array")
    if not isinstance(metadata, dict):
        raise DatasetError(f"{where}: metadata must be a dict (the clip's metadata.json), got {type(metadata).__name__}")
    if not isinstance(mp4_bytes, (bytes, bytearray, memoryview)):
        raise DatasetError(f"{where}: mp4_bytes must be the encoded video as bytes, got {type(mp4_bytes).__name__}")
    try:
        meta_bytes = json.dumps(metadata).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: metadata is not JSON-serialisable ({exc}); convert arrays with .tolist()") from None

    key = clip_key(index)
    members = [(f"{key}.{METADATA_PART}", meta_bytes), (f"{key}.{VIDEO_PART}", bytes(mp4_bytes))]
    for name in sorted(buffers):
        check_buffer_name(name, where)
        arr = buffers[name]
        if not isinstance(arr, np.ndarray) or arr.ndim < 1:
            raise DatasetError(f"{where}: buffer {name!r} must be a NumPy array with a leading T axis, got {type(arr).__name__}")
        if arr.dtype.hasobject or arr.dtype.fields is not None:
            raise DatasetError(f"{where}: buffer {name!r} has dtype {arr.dtype}; store plain numeric arrays only")
        members.append((f"{key}.{buffer_part(name)}", encode_array(arr)))
    return members


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable (POSIX keeps directory entries separately)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _HashingWriter:
    """A write-only file wrapper that hashes and counts as it writes, so a shard is never re-read."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self.sha = hashlib.sha256()
        self.count = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.count += len(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self.count


def tmp_path_for(path: Path) -> Path:
    """The sibling a file is written to before it is renamed into place."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> WrittenShard:
    """Write a file so that readers see the old file or the whole new one, never a part.

    `write(fh)` fills a temporary sibling; it is flushed, fsynced, renamed over `path`,
    and the folder is fsynced. On any error the temporary file is removed and the
    error re-raised; the previous `path`, if any, is untouched.
    """
    path = Path(path)
    tmp = tmp_path_for(path)
    try:
        with open(tmp, "wb") as raw:
            hashing = _HashingWriter(raw)
            write(hashing)  # type: ignore[arg-type]
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return WrittenShard(hashing.sha.hexdigest(), hashing.count)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    # Everything but name and size is fixed, so a shard depends on its clips only.
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_shard(path: str | os.PathLike, members: Members) -> WrittenShard:
    """Write `members` (from `encode_clip`, clips in ascending index order) as one tar, atomically.

    Returns (sha256 hex, size in bytes) of the committed file. Members are checked
    while writing: names must be clip members, each clip's members contiguous and
    clips ascending, no name twice; a violation aborts the write and leaves no file.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise DatasetError(f"{path}: the shard folder {path.parent} does not exist; create it first")

    def fill(fh: BinaryIO) -> None:
        seen: set[str] = set()
        last_index = -1
        with tarfile.open(fileobj=fh, mode="w", format=TAR_FORMAT) as tar:
            for name, payload in members:
                index, _part = parse_member_name(name, where=str(path))
                if name in seen:
                    raise DatasetError(f"{path}: member {name!r} given twice; encode each clip once")
                if index < last_index:
                    raise DatasetError(
                        f"{path}: member {name!r} comes after clip {last_index}; give clips in ascending "
                        "index order, each clip's members together (concatenate encode_clip results)"
                    )
                seen.add(name)
                last_index = index
                tar.addfile(_tarinfo(name, len(payload)), io.BytesIO(payload))

    return atomic_write(path, fill)


def iter_shard(
    path: str | os.PathLike, buffers: Optional[Iterable[str]] = None, video: bool = True
) -> Iterator[tuple[int, dict]]:
    """Stream a shard clip by clip without extracting it: yields (clip index, record).

    record = {"metadata": dict | None, "mp4": bytes | None, "buffers": {name: (T, ...) ndarray}};
    None marks a part the shard lacks (or the video when `video` is False). Only the
    buffers named in `buffers` (all when None) are decoded; other members are
    skipped unread. Malformed names, repeated members and clips out of order raise DatasetError.
    """
    path = Path(path)
    wanted = None if buffers is None else set(buffers)
    current: Optional[int] = None
    record: dict = {}
    parts: set[str] = set()
    if not path.is_file():
        raise ShardReadError(path, "shard file not found")
    try:
        with tarfile.open(path, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    raise ShardReadError(path, f"member {member.name!r} is not a regular file")
                try:
                    index, part = parse_member_name(member.name)
                except DatasetError:
                    raise ShardReadError(path, f"member {member.name!r} is not named {'N' * KEY_DIGITS}.<part>") from None
                if index != current:
                    if current is not None:
                        if index < current:
                            raise ShardReadError(path, f"clip {clip_key(index)} appears again after clip {clip_key(current)}")
                        yield current, record
                    current, record, parts = index, {"metadata": None, "mp4": None, "buffers": {}}, set()
                if part in parts:
                    raise ShardReadError(path, f"member {member.name!r} appears twice")
                parts.add(part)
                fh = tar.extractfile(member)
                assert fh is not None  # regular files always have data
                if part == METADATA_PART:
                    record["metadata"] = _decode_metadata(fh.read(), path, member.name)
                elif part == VIDEO_PART:
                    if video:
                        record["mp4"] = fh.read()
                elif part.endswith(NPY_EXT):
                    name = part[: -len(NPY_EXT)]
                    if wanted is None or name in wanted:
                        payload = bytearray(member.size)
                        if fh.readinto(payload) != member.size:
                            raise ShardReadError(path, f"member {member.name!r} ends early")
                        try:
                            record["buffers"][name] = decode_array(payload)
                        except ValueError as exc:
                            raise ShardReadError(path, f"member {member.name!r} is not a readable .npy ({exc})") from None
                else:
                    raise ShardReadError(
                        path, f"member {member.name!r} has an unknown part {part!r} (expected {METADATA_PART}, {VIDEO_PART} or <buffer>{NPY_EXT})"
                    )
            _check_end_marker(path, tar.offset)
    except (tarfile.TarError, EOFError) as exc:
        if "unexpected end of data" in str(exc):
            raise ShardReadError(path, "the file ends inside a member (truncated)") from None
        raise ShardReadError(path, f"not a readable tar ({exc})") from None
    if current is not None:
        yield current, record


def _check_end_marker(path: Path, offset: int) -> None:
    """Refuse a tar that stops anywhere but at its end-of-archive marker.

    tarfile ends iteration quietly at end of file or at a damaged header past the
    first, so a truncated or corrupted shard would otherwise just look shorter.
    """
    with open(path, "rb") as fh:
        fh.seek(offset)
        block = fh.read(2 * tarfile.BLOCKSIZE)
    if len(block) < 2 * tarfile.BLOCKSIZE:
        raise ShardReadError(path, f"the file ends at byte {offset + len(block)} without the tar end marker (truncated)")
    if block.count(0) != len(block):
        raise ShardReadError(path, f"unreadable tar header at byte {offset} (corrupted); the members from there on are lost")


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """sha256 (hex) of a file, read in 1 MiB chunks so a large shard never sits in memory."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            sha.update(chunk)
    return sha.hexdigest()


def _decode_metadata(payload: bytes, path: Path, member: str) -> dict:
    try:
        meta = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardReadError(path, f"member {member!r} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ShardReadError(path, f"member {member!r} holds a JSON {type(meta).__name__}, expected an object")
    return meta


def read_shard(path: str | os.PathLike) -> dict[int, dict]:
    """Every clip of a shard, fully decoded: {clip index: {"metadata", "mp4", "buffers"}} (see iter_shard)."""
    return dict(iter_shard(path))
