"""One dataset shard: a plain POSIX tar holding whole clips, WebDataset-style.

Clip `i` is the run of consecutive members whose names start with its key
`f"{i:08d}"`; the part after the first dot says what the member holds:

| member | content |
|---|---|
| `{key}.metadata.json` | the clip's metadata dict (as in a clip folder's metadata.json), UTF-8 JSON |
| `{key}.rgb.mp4` | the beauty video (H.264) for looking at; training reads the rgb buffer |
| `{key}.{buffer}.npy.gz` | one buffer, all frames, (T, ...) in NumPy's .npy format (little-endian, C order), gzip-compressed (the default) |
| `{key}.{buffer}.npy` | the same .npy uncompressed (`compression="none"`, and every shard written before compression existed) |
| `{key}.{buffer}.hyb` | one buffer kept by its registry codec (`compression="compact"`: ``hybrid.io.codecs``, flow to 1/64 px, depth to a relative 6.1e-5, ids exact) |

Within a clip the members come in a fixed order (metadata, video, then buffers
sorted by name) and clips come in ascending key order, so any tar reader that
groups members by key (the `webdataset` library does) sees one sample per clip.
Every header is normalised (mtime 0, uid/gid 0, empty user/group names, mode 0644,
PAX format), so the same clips always give a byte-identical shard and sha256.

Compression is per member, never of the whole tar, so a reader still streams a
shard member by member and skips buffers it does not want without inflating them.
A `.npy.gz` member is one RFC 1952 gzip member wrapping exactly the bytes the
`.npy` member would hold: `gzip -d`, Python's `gzip`, and webdataset's `.decode()`
(its default `gzfilter` strips `.gz`, then its `npy` handler loads the array) all
read it. The gzip header carries no name, mtime 0 and OS 255, so the shard bytes
depend only on the clips and on the zlib build (`zlib.ZLIB_RUNTIME_VERSION`):
another deflate implementation may pick other, equally valid, bytes.

Measured on three MOVi-A clips (24 frames, 256 x 256, every buffer; one core; shard
written with fsync, read from the page cache; per clip):

| storage | bytes | encode + write | read |
|---|---|---|---|
| none (`.npy`) | 63.0 MB | 0.33 s | 0.17 s |
| gzip level 1 (`.npy.gz`, the default) | 25.0 MB (2.5x smaller) | 1.27 s | 0.38 s |
| gzip level 6 | 24.4 MB | 1.93 s | 0.36 s |
| gzip level 9 | 24.3 MB | 2.35 s | 0.28 s |

Buffer by buffer at level 1: rgb 4.7 -> 0.61 MB, albedo 4.7 -> 0.06, instance 3.1 ->
0.05, depth 6.3 -> 0.77, normal 18.9 -> 1.7, and each flow 12.6 -> 10.8 MB. The flows
are most of what is left: static surfaces carry round-off of about 1e-14 px rather
than exact zeros, which deflate cannot shrink. Level 1 is the default: higher levels
save 2.5 % more for 1.5 to 1.9x the time, and a clip takes about 3 s to render, so
level 1 adds about 30 % to the making of a clip for 2.5x less disk and network.
Alternatives measured and not taken: byte-shuffling floats before deflate (as HDF5
and Blosc do) saves another 20 %, but the member would no longer be a plain .npy
that any reader decodes; PNG for the uint8/uint16 images was no smaller than gzip
(rgb 0.65 vs 0.61 MB) and would split a clip into per-frame images.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, NamedTuple, Optional

import numpy as np

from hybrid.io.atomic import fsync_dir

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
# How buffer members are stored by default; the measurements behind the choice are in
# the module docstring.
DEFAULT_COMPRESSION = "gzip"
# zlib level 1: levels 6 and 9 made MOVi-A clips only 2.5 % smaller for 1.5x and
# 1.9x the encode time. Part of what makes shards reproducible (with zlib itself).
GZIP_LEVEL = 1
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


def buffer_part(name: str, compression: str = "none") -> str:
    """The member part of a buffer: `depth.npy`, `depth.npy.gz` with gzip, `depth.hyb` compact."""
    return name + COMPRESSIONS[compression].ext


def split_buffer_part(part: str) -> Optional[tuple[str, str]]:
    """(buffer name, compression) of a member part such as `depth.npy.gz`; None for a part that is not a buffer."""
    for compression, codec in sorted(COMPRESSIONS.items(), key=lambda item: -len(item[1].ext)):
        if part.endswith(codec.ext) and len(part) > len(codec.ext):
            return part[: -len(codec.ext)], compression
    return None


def check_compression(compression: object, where: str) -> str:
    if compression not in COMPRESSIONS:
        raise DatasetError(
            f"{where}: compression {compression!r} is not one this version writes; use one of "
            f"{', '.join(repr(c) for c in COMPRESSIONS)} (default {DEFAULT_COMPRESSION!r})"
        )
    return compression  # type: ignore[return-value]


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


# ---------------------------------------------------------------- member compression
#
# A buffer member is `<buffer>` + the codec's extension. "none" and "gzip" hold the
# same .npy bytes, as they are or gzipped, so any NumPy or webdataset reader opens
# them; "compact" holds the buffer kept by its registry codec (hybrid.buffers,
# hybrid.io.codecs): flow to 1/64 px, depth to a relative 6.1e-5, ids and colours
# exactly, several times smaller, read back by hybrid's own readers. A new codec is
# a pair of functions and one registry line (readers then accept it, and `verify`
# checks it, by its extension).


class Codec(NamedTuple):
    """How a buffer is stored in its member.

    `encode(name, array) -> member bytes` must be deterministic; `decode(member
    bytes) -> array` raises MemberError (damaged codec data) or ValueError (a
    damaged .npy inside) and may return a view of its argument.
    """

    ext: str
    encode: Callable[[str, np.ndarray], bytes]
    decode: Callable[[bytearray], np.ndarray]


class MemberError(ValueError):
    """A member's codec layer is damaged (as opposed to the .npy inside it)."""


# RFC 1952 header with every variable field fixed: no file name, mtime 0, XFL from
# the level (4: fastest, 2: best, as Python's gzip module writes it), OS 255
# ("unknown") rather than the writer's platform, so the bytes do not depend on when
# or where a shard was made.
def _gzip_header(level: int) -> bytes:
    xfl = 4 if level == 1 else 2 if level == 9 else 0
    return bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, xfl, 255])


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """`data` as one gzip member (RFC 1952) that depends only on `data`, `level` and the zlib build.

    Written by hand rather than with the gzip module, whose header would carry the
    current time (unless told otherwise) and, through zlib, the writer's platform.
    """
    deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw deflate: the wrapper is ours
    body = deflate.compress(data) + deflate.flush()
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return _gzip_header(level) + body + trailer


def gunzip_bytes(payload: bytearray) -> bytearray:
    """The data of one gzip member, CRC-32 and length checked; ValueError says what is wrong."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: expect the gzip wrapper and check its trailer
    try:
        data = inflate.decompress(payload)
    except zlib.error as exc:
        raise ValueError(str(exc).removeprefix("Error -3 while decompressing data: ")) from None
    if not inflate.eof:
        raise ValueError("the stream stops before its end (truncated)")
    if inflate.unused_data:
        raise ValueError(f"{len(inflate.unused_data)} bytes follow the end of the stream")
    return bytearray(data)  # writable, so arrays viewing it are too (torch.from_numpy needs that)


def _gunzip_npy(payload: bytearray) -> np.ndarray:
    try:
        npy = gunzip_bytes(payload)
    except ValueError as exc:
        raise MemberError(str(exc)) from None
    return decode_array(npy)


def _compact_encode(name: str, arr: np.ndarray) -> bytes:
    from hybrid.buffers import codec
    from hybrid.io.codecs import encode

    return encode(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")), codec(name))


def _compact_decode(payload: bytearray) -> np.ndarray:
    from hybrid.io.codecs import decode

    try:
        return decode(bytes(payload))
    except ValueError as exc:
        raise MemberError(str(exc)) from None


COMPRESSIONS: dict[str, Codec] = {
    "none": Codec(NPY_EXT, encode=lambda name, arr: encode_array(arr), decode=decode_array),
    "gzip": Codec(NPY_EXT + ".gz", encode=lambda name, arr: gzip_bytes(encode_array(arr)), decode=_gunzip_npy),
    "compact": Codec(".hyb", encode=_compact_encode, decode=_compact_decode),
}


def encode_clip(
    index: int,
    buffers: dict[str, np.ndarray],
    metadata: dict,
    mp4_bytes: bytes,
    compression: str = DEFAULT_COMPRESSION,
) -> list[tuple[str, bytes]]:
    """The tar members of one clip, in shard order: [(member name, payload bytes), ...].

    `buffers[name]` has shape (T, ...) as in the buffer table (rgb uint8 (T,H,W,3),
    depth float32 (T,H,W), ...); `metadata` is the clip's JSON-able metadata dict;
    `mp4_bytes` the encoded beauty video. `compression` ("gzip", "none" or "compact") is how
    the buffer members are stored (see the module docstring); metadata and video are
    always stored as they are.
    """
    where = f"clip {index!r}"
    check_compression(compression, where)
    codec = COMPRESSIONS[compression]
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
        members.append((f"{key}.{buffer_part(name, compression)}", codec.encode(name, arr)))
    return members


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
    path: str | os.PathLike, buffers: Optional[Iterable[str]] = None, video: bool = True, strict: bool = True
) -> Iterator[tuple[int, dict]]:
    """Stream a shard clip by clip without extracting it: yields (clip index, record).

    record = {"metadata": dict | None, "mp4": bytes | None, "buffers": {name: (T, ...) ndarray},
    "compression": {name: "none" | "gzip"}, "damaged": {member part: reason}}. None marks
    a part the shard lacks (or the video when `video` is False). Buffers are stored as
    `<name>.npy` or `<name>.npy.gz`, and both are read, in any mix; "compression" says
    how each buffer of the clip was stored. Only the buffers named in `buffers` (all
    when None) are decoded; other members are skipped unread.

    A member whose payload does not decode raises ShardReadError naming it, unless
    `strict` is False: then it is left out of "buffers", listed in "damaged", and
    reading goes on (the tar's structure is intact, so later clips are still found).
    Malformed names, repeated members and clips out of order always raise.
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
                    current, parts = index, set()
                    record = {"metadata": None, "mp4": None, "buffers": {}, "compression": {}, "damaged": {}}
                if part in parts:
                    raise ShardReadError(path, f"member {member.name!r} appears twice")
                parts.add(part)
                fh = tar.extractfile(member)
                assert fh is not None  # regular files always have data
                stored = split_buffer_part(part)
                if part == METADATA_PART:
                    record["metadata"] = _decode_metadata(fh.read(), path, member.name)
                elif part == VIDEO_PART:
                    if video:
                        record["mp4"] = fh.read()
                elif stored is not None:
                    name, compression = stored
                    if name in record["compression"]:
                        first = buffer_part(name, record["compression"][name])
                        raise ShardReadError(path, f"clip {clip_key(index)} stores buffer {name!r} twice ({first} and {part})")
                    record["compression"][name] = compression
                    if wanted is None or name in wanted:
                        payload = bytearray(member.size)
                        if fh.readinto(payload) != member.size:
                            raise ShardReadError(path, f"member {member.name!r} ends early")
                        reason = _decode_buffer(payload, compression, record["buffers"], name)
                        if reason is not None:
                            if strict:
                                raise ShardReadError(path, f"member {member.name!r} {reason}")
                            record["damaged"][part] = reason
                else:
                    raise ShardReadError(
                        path,
                        f"member {member.name!r} has an unknown part {part!r} (expected {METADATA_PART}, {VIDEO_PART}, "
                        + " or ".join(f"<buffer>{c.ext}" for c in COMPRESSIONS.values())
                        + ")",
                    )
            _check_end_marker(path, tar.offset)
    except (tarfile.TarError, EOFError) as exc:
        if "unexpected end of data" in str(exc):
            raise ShardReadError(path, "the file ends inside a member (truncated)") from None
        raise ShardReadError(path, f"not a readable tar ({exc})") from None
    if current is not None:
        yield current, record


def _decode_buffer(payload: bytearray, compression: str, out: dict[str, np.ndarray], name: str) -> Optional[str]:
    """Decode a buffer member's payload into out[name]; on failure, why (worded to follow the member's name)."""
    try:
        out[name] = COMPRESSIONS[compression].decode(payload)
    except MemberError as exc:
        return f"holds damaged {compression} data ({exc})"
    except ValueError as exc:
        return f"is not a readable .npy ({exc})"
    return None


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
    """Every clip of a shard, fully decoded: {clip index: record} (see iter_shard)."""
    return dict(iter_shard(path))
