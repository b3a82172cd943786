"""Compact storage of per-pixel buffers: one codec per array, and a one-file container.

Codecs
------
A codec is a small JSON-able dict. Each keeps an array to a documented bound
(``error_bound(codec)`` says it in words, ``check_bound`` tests it):

- ``{"codec": "lossless"}``: any bool, integer or float array, bit for bit.
- ``{"codec": "fixed", "step": s}``: floats rounded to the nearest multiple of
  ``s``: absolute error at most ``s/2`` (plus the rounding of the result to the
  array's float type, which is exact for a power-of-two ``s`` and
  ``|x| < 2**24 * s`` in float32). NaN, +inf and -inf come back exactly (they take
  reserved codes); ``-0.0`` comes back as ``0.0``. The integer codes take the
  narrowest of int8/16/32/64 that holds them; values beyond int64 raise ValueError.
- ``{"codec": "relative", "bits": b}``: floats with the mantissa rounded to
  ``b`` bits (0..23 for float32): relative error at most ``2**-(b+1)``. Zeros
  (either sign), subnormals, NaN (payload included) and infinities come back bit
  for bit, as does a value whose rounding would overflow to infinity.
- ``{"codec": "unit_vector", "bits": b}``: vectors along the last axis of length 3
  (normals), stored as two ``b``-bit octahedral coordinates: the direction to within
  ``unit_vector_bound(b)`` radians (6.6e-5 rad for ``b = 16``), returned unit
  length. All-zero vectors come back exactly; the length of other vectors is not
  kept; non-finite vectors raise ValueError.

Every codec turns the array into unsigned integer codes, predicts each code from a
neighbour (``code - neighbour``, wrapping integer arithmetic, exactly invertible by
a cumulative sum), optionally splits the residuals into byte planes (the lowest
byte of every code, then the next, ...) and deflates them with zlib at
``DEFLATE_LEVEL``. Arrays of three or more axes are read as (T, H, W, *channels);
the neighbour is either the same channel of the pixel to the left (the last pixel
of the previous row for the first one of a row) or the same pixel of the previous
frame, and byte planes are used or not, whichever of the four deflates smallest on
a sample of about one frame in 24 (a static camera makes the previous frame win
for flow, texture makes the left pixel win for colour). Other shapes are
predicted along their last axis. These choices change only the size, never the
values, and are recorded in the encoded bytes.

Encoded bytes
-------------
``encode(array, codec)`` returns self-describing bytes: ``b"HYBC"``, a little-endian
uint32 length, a JSON header (format version, codec, dtype, shape and how the codes
were laid out), the header's CRC-32 (uint32), then the deflated payload (zlib
stream, with its own Adler-32 check). ``decode(data)`` needs nothing else;
``codec``, ``dtype`` and ``shape`` passed to it are checked against the header.

Container
---------
``write_compact(path, arrays, codecs)`` writes one zip file (``buffers.hyb`` by
convention; it is not an ``.npz``): a member ``<name>.bin`` per buffer holding its
encoded bytes, stored without further compression, and a ``header.json`` member
(format ``"hybrid-compact"``, version, and per buffer: member, dtype, shape, codec,
error bound, byte count and SHA-256). Entries have a fixed date, so the same arrays
give the same file, byte for byte. The file is written under a temporary name
beside ``path`` and renamed into place, so an error never leaves half a file.
``read_compact(path, names)`` decodes only the buffers asked for; a truncated or
damaged file raises ValueError naming the file and the member.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Mapping, Optional

import numpy as np

from hybrid.io.atomic import file_beside

FORMAT_VERSION = 1
CONTAINER_FORMAT = "hybrid-compact"
HEADER_MEMBER = "header.json"
MAGIC = b"HYBC"
# zlib level of the payloads: level 1, the fastest. On the showcase clip level 3
# shrinks colour by about 9% at 1.5x the deflate time; the clip is well under its
# size target at level 1 (benchmarks/bench_storage.py).
DEFLATE_LEVEL = 1
# A fixed date for zip entries (zip cannot store an earlier one): same arrays, same bytes.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# Bits a codec takes when its dict does not say: 13 mantissa bits keep a float to a
# relative 2**-14 = 6.1e-5; 16-bit octahedral coordinates a direction to 6.6e-5 rad.
DEFAULT_RELATIVE_BITS = 13
DEFAULT_UNIT_VECTOR_BITS = 16
_LOSSLESS = {"codec": "lossless"}

CODECS = ("lossless", "fixed", "relative", "unit_vector")
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_MANTISSA_BITS = {2: 10, 4: 23, 8: 52}


# --------------------------------------------------------------------------- codecs


def check_codec(codec: Mapping) -> dict:
    """`codec` as a plain dict, or ValueError saying what is wrong with it."""
    if not isinstance(codec, Mapping) or codec.get("codec") not in CODECS:
        raise ValueError(f"codec {codec!r}: expected a dict whose 'codec' is one of {', '.join(CODECS)}")
    kind = codec["codec"]
    allowed = {"lossless": set(), "fixed": {"step"}, "relative": {"bits"}, "unit_vector": {"bits"}}[kind]
    extra = set(codec) - allowed - {"codec"}
    if extra:
        raise ValueError(f"codec {dict(codec)!r}: unknown keys {', '.join(sorted(extra))} for {kind!r}")
    if kind == "fixed":
        step = codec.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
            raise ValueError(f"codec {dict(codec)!r}: 'step' must be a finite number > 0")
    if kind in ("relative", "unit_vector"):
        bits = codec.get("bits", DEFAULT_RELATIVE_BITS if kind == "relative" else DEFAULT_UNIT_VECTOR_BITS)
        top = 52 if kind == "relative" else 30
        low = 0 if kind == "relative" else 2
        if isinstance(bits, bool) or not isinstance(bits, int) or not low <= bits <= top:
            raise ValueError(f"codec {dict(codec)!r}: 'bits' must be an integer from {low} to {top}")
    return dict(codec)


def unit_vector_bound(bits: int) -> float:
    """Largest angle (radians) between a unit vector and its ``unit_vector`` decoding with `bits` bits.

    The octahedral coordinates are rounded to a grid of step ``h = 2 / (2**bits - 2)``,
    each at most ``h/2`` off. On the octahedron |x|+|y|+|z| = 1 that moves the point by
    at most ``sqrt(6) * h/2`` (z changes by at most the sum of both), the fold of the
    lower half is 1-Lipschitz per coordinate, and projecting onto the sphere stretches
    distances by at most ``sqrt(3)`` (the octahedron's points are at least
    ``1/sqrt(3)`` from the centre): a chord ``c <= sqrt(18) * h/2``, an angle
    ``2 asin(c/2)``; float32 adds at most 1e-6.
    """
    h = 2.0 / (2**bits - 2)
    chord = math.sqrt(18.0) * h / 2
    return 2.0 * math.asin(min(1.0, chord / 2)) + 1e-6


def error_bound(codec: Mapping) -> str:
    """The codec's guarantee, in words, for docs and metadata."""
    codec = check_codec(codec)
    kind = codec["codec"]
    if kind == "lossless":
        return "exact"
    if kind == "fixed":
        step = float(codec["step"])
        return f"absolute error <= {step / 2:.6g} (step {step:.6g} / 2); NaN and +-inf exact"
    if kind == "relative":
        bits = int(codec.get("bits", DEFAULT_RELATIVE_BITS))
        return f"relative error <= {2.0 ** -(bits + 1):.2g} (2^-{bits + 1}); 0, NaN and +-inf exact"
    bits = int(codec.get("bits", DEFAULT_UNIT_VECTOR_BITS))
    return f"direction within {unit_vector_bound(bits):.2g} rad, unit length; zero vectors exact"


def max_error(codec: Mapping, original: np.ndarray, decoded: np.ndarray) -> float:
    """The largest error of `decoded` against `original` in the codec's own measure.

    lossless: 0 or inf (any differing bit); fixed: absolute; relative: relative to
    |original| over finite non-zero values; unit_vector: angle in radians. Values the
    codec keeps exactly (NaN, inf, zeros) count as inf when they differ.
    """
    codec = check_codec(codec)
    kind = codec["codec"]
    original = np.asarray(original)
    decoded = np.asarray(decoded)
    if original.shape != decoded.shape:
        return math.inf
    if kind == "lossless":
        same = original.dtype == decoded.dtype and original.tobytes() == decoded.tobytes()
        return 0.0 if same else math.inf
    if kind == "unit_vector":
        o = original.reshape(-1, 3).astype(np.float64)
        d = decoded.reshape(-1, 3).astype(np.float64)
        zero = ~o.any(axis=1)
        if np.any(d[zero] != 0):
            return math.inf
        o, d = o[~zero], d[~zero]
        if not len(o):
            return 0.0
        on = o / np.linalg.norm(o, axis=1, keepdims=True)
        dn = d / np.linalg.norm(d, axis=1, keepdims=True)
        # The angle from the chord: stable for tiny angles, unlike arccos of the dot product.
        chord = np.linalg.norm(on - dn, axis=1)
        return float(np.max(2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0))))
    o = original.astype(np.float64)
    d = decoded.astype(np.float64)
    special = ~np.isfinite(o)
    if kind == "relative":
        special |= o == 0
    if np.any(special):
        if not np.array_equal(o[special], d[special], equal_nan=True):
            return math.inf
    o, d = o[~special], d[~special]
    if not o.size:
        return 0.0
    err = np.abs(d - o)
    if kind == "relative":
        err = err / np.abs(o)
    return float(np.max(err))


def check_bound(codec: Mapping, original: np.ndarray, decoded: np.ndarray) -> None:
    """AssertionError unless `decoded` keeps `original` within the codec's documented bound.

    The tolerance is the bound's formula: 0 for lossless; for fixed, step/2 plus half
    a unit in the last place of the result's float type; 2**-(bits+1) for relative
    (subnormals, kept exactly, excepted); ``unit_vector_bound(bits)`` radians.
    """
    codec = check_codec(codec)
    kind = codec["codec"]
    err = max_error(codec, original, decoded)
    if kind == "lossless":
        tol = 0.0
    elif kind == "fixed":
        finite = np.isfinite(original)
        top = float(np.max(np.abs(original[finite]))) if np.any(finite) else 0.0
        ulp = float(np.spacing(np.asarray(top + float(codec["step"]), dtype=decoded.dtype)))
        tol = float(codec["step"]) / 2 + ulp / 2
    elif kind == "relative":
        tol = 2.0 ** -(int(codec.get("bits", DEFAULT_RELATIVE_BITS)) + 1)
    else:
        tol = unit_vector_bound(int(codec.get("bits", DEFAULT_UNIT_VECTOR_BITS)))
    if not err <= tol:
        raise AssertionError(f"{codec}: error {err!r} exceeds the documented bound {tol!r} ({error_bound(codec)})")


def _left_lag(shape: tuple[int, ...]) -> int:
    """Elements between a value and its left neighbour along W in C order."""
    if len(shape) >= 3:
        return int(np.prod(shape[3:], dtype=np.int64))
    return 1


def _choose_layout(codes: np.ndarray, level: int) -> tuple[int, bool]:
    """(lag, byte planes or not) that deflates `codes` smallest, judged on a sample of frames.

    Candidates: the left neighbour (along W) and, for (T, H, W, ...) arrays of two or
    more frames, the same pixel in the previous frame, each with and without byte
    planes. The sample is every 24th frame or so (at least one), with its predecessor.
    """
    shape = codes.shape
    lag_x = _left_lag(shape)
    shuffles = (True, False) if codes.dtype.itemsize > 1 else (False,)
    if len(shape) < 3 or shape[0] < 2 or codes.size < 4096:
        return lag_x, shuffles[0]
    frames = shape[0]
    count = max(1, -(-(frames - 1) // 24))
    picks = np.linspace(1, frames - 1, count).round().astype(int)
    now = codes[picks].reshape(count, -1)
    residuals = {
        "x": np.concatenate([_predict(row, lag_x) for row in now]),
        "t": (now - codes[picks - 1].reshape(count, -1)).reshape(-1),
    }
    best = None
    for name, res in residuals.items():
        for shuffle in shuffles:
            size = len(zlib.compress(_shuffle(res) if shuffle else res.tobytes(), level))
            if best is None or size < best[0]:
                best = (size, name, shuffle)
    _, name, shuffle = best
    return (lag_x if name == "x" else int(np.prod(shape[1:], dtype=np.int64))), shuffle


def _predict(codes: np.ndarray, lag: int) -> np.ndarray:
    """Flat unsigned codes minus the code `lag` places earlier (wrapping): the residuals."""
    flat = codes.reshape(-1)
    out = np.empty_like(flat)
    out[:lag] = flat[:lag]
    np.subtract(flat[lag:], flat[:-lag], out=out[lag:])
    return out


def _unpredict(residuals: np.ndarray, lag: int) -> np.ndarray:
    """The inverse of _predict: a wrapping cumulative sum with stride `lag`."""
    n = residuals.size
    if n == 0:
        return residuals
    rows = -(-n // lag)
    padded = residuals
    if rows * lag != n:
        padded = np.zeros(rows * lag, dtype=residuals.dtype)
        padded[:n] = residuals
    grid = padded.reshape(rows, lag)
    if rows <= 4096:
        # Few long rows (the previous frame's pixel): row by row is far faster than cumsum over axis 0.
        out = grid.copy()
        for i in range(1, rows):
            np.add(out[i], out[i - 1], out=out[i])
    else:
        out = np.cumsum(grid, axis=0, dtype=residuals.dtype)
    return out.reshape(-1)[:n]


def _shuffle(codes: np.ndarray) -> bytes:
    """Byte planes: the lowest byte of every code, then the next byte of every code, ..."""
    size = codes.dtype.itemsize
    if size == 1:
        return codes.tobytes()
    little = codes.astype(codes.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(little.view(np.uint8).reshape(-1, size).T).tobytes()


def _unshuffle(raw: bytes, dtype: np.dtype, count: int, shuffled: bool = True) -> np.ndarray:
    """Codes from `raw`: byte planes (lowest byte first) or plain little-endian codes."""
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    planes = np.frombuffer(raw, dtype=np.uint8)
    if planes.size != count * size:
        raise ValueError(f"payload holds {planes.size} bytes, expected {count * size}")
    if size == 1 or not shuffled:
        return planes.view(dtype.newbyteorder("<")).astype(dtype)
    planes = planes.reshape(size, count)
    out = planes[size - 1].astype(dtype)
    for i in range(size - 2, -1, -1):
        out <<= dtype.type(8)
        out |= planes[i]
    return out


def _float_dtype(array: np.ndarray, kind: str) -> None:
    if array.dtype.kind != "f" or array.dtype.itemsize not in _MANTISSA_BITS:
        raise ValueError(f"codec {kind!r} stores float16/32/64 arrays, not {array.dtype}")


def _blocks(n: int, per: int) -> Iterable[slice]:
    """Slices of about `per` elements' worth of rows out of `n` rows (quantising in cache-sized pieces)."""
    step = max(1, per)
    return (slice(i, min(n, i + step)) for i in range(0, n, step))


_BLOCK = 1 << 20  # elements quantised at a time


def _is_pow2(step: float) -> bool:
    mantissa, exponent = math.frexp(step)
    return mantissa == 0.5 and -100 < exponent < 100


def _encode_fixed(array: np.ndarray, step: float) -> tuple[np.ndarray, dict]:
    """Signed codes round(x / step) in the narrowest type that holds them and three sentinels."""
    _float_dtype(array, "fixed")
    flat = array.reshape(-1)
    if _is_pow2(step) and array.dtype == np.float32:
        # x * (1/step) and its rounding are exact in float32 (up to overflow to inf, caught below).
        scaled = np.empty(flat.shape, np.float32)
        factor = np.float32(1.0 / step)
    else:
        scaled = np.empty(flat.shape, np.float64)
        factor = 1.0 / step if _is_pow2(step) else None
    special = []
    lo, hi = 0.0, 0.0
    for block in _blocks(flat.size, _BLOCK):
        part = scaled[block]
        if factor is not None:
            np.multiply(flat[block], factor, out=part)
        else:
            np.divide(flat[block], step, out=part)
        np.rint(part, out=part)
        bad = ~np.isfinite(part)
        if bad.any():
            where = np.flatnonzero(bad)
            special.append(where + block.start)
            part[where] = 0
        if part.size:
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    special_idx = np.concatenate(special) if special else np.zeros(0, np.int64)
    values = flat[special_idx]
    if np.any(np.isfinite(values)):
        top = float(np.max(np.abs(values[np.isfinite(values)])))
        raise ValueError(f"values up to {top!r} are too large for step {step!r}")
    for itype in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(itype)
        # The top two codes and the bottom one are the sentinels of NaN, +inf and -inf.
        if info.min + 1 <= lo and hi <= info.max - 2:
            break
    else:
        raise ValueError(f"values up to {max(abs(lo), abs(hi)) * step!r} need more than 64-bit codes at step {step!r}")
    info = np.iinfo(itype)
    codes = scaled.astype(itype)
    codes[special_idx[np.isnan(values)]] = info.max
    codes[special_idx[values > 0]] = info.max - 1
    codes[special_idx[values < 0]] = info.min
    return codes.reshape(array.shape).view(_UNSIGNED[codes.dtype.itemsize]), {"int": np.dtype(itype).name}


def _decode_fixed(codes: np.ndarray, step: float, dtype: np.dtype, layout: dict) -> np.ndarray:
    itype = np.dtype(layout["int"])
    if itype.kind != "i" or itype.itemsize != codes.dtype.itemsize:
        raise ValueError(f"header names integer type {itype}, payload has {codes.dtype.itemsize}-byte codes")
    q = codes.view(itype)
    info = np.iinfo(itype)
    if _is_pow2(step) and itype.itemsize <= 2 and dtype == np.float32:
        out = q.astype(np.float32)
        out *= np.float32(step)  # exact: 16-bit integers times a power of two
    else:
        out = (q.astype(np.float64) * step).astype(dtype)
    special = np.flatnonzero((q >= info.max - 1) | (q == info.min))
    if special.size:
        sq = q[special]
        out[special[sq == info.max]] = np.nan
        out[special[sq == info.max - 1]] = np.inf
        out[special[sq == info.min]] = -np.inf
    return out


def _encode_relative(array: np.ndarray, bits: int) -> np.ndarray:
    """The float's bits with the mantissa rounded to `bits` bits (to nearest, ties away from zero)."""
    _float_dtype(array, "relative")
    size = array.dtype.itemsize
    mant = _MANTISSA_BITS[size]
    utype = _UNSIGNED[size]
    u = array.view(utype).reshape(-1)
    drop = mant - max(0, min(bits, mant))
    if drop == 0:
        return u.reshape(array.shape).copy()
    one = utype(1)
    half = one << utype(drop - 1)
    mask = ~((one << utype(drop)) - one)
    sign = one << utype(size * 8 - 1)
    inf_bits = ((one << utype(size * 8 - 1 - mant)) - one) << utype(mant)
    min_normal = one << utype(mant)
    out = np.empty_like(u)
    for block in _blocks(u.size, _BLOCK):
        part = u[block]
        a = part & ~sign  # |x| as bits: ordered like |x|
        r = a + half  # cannot wrap: a < sign
        # Kept bit for bit: zeros and subnormals, NaN and inf, and values that would round to inf.
        keep = (a < min_normal) | (r >= inf_bits)
        res = out[block]
        np.bitwise_and(r, mask, out=res)
        res |= part & sign
        np.copyto(res, part, where=keep)
    return out.reshape(array.shape)


def _oct_encode(v: np.ndarray, bits: int) -> np.ndarray:
    """(N, 3) vectors -> (N, 2) unsigned octahedral codes; code 2**bits - 1 in both marks the zero vector.

    The vector is scaled to |x|+|y|+|z| = 1; the lower half (z < 0) is folded out over
    the diagonals: (x, y) -> ((1 - |y|) sign x, (1 - |x|) sign y). Both coordinates,
    in [-1, 1], are rounded to 2**bits - 1 levels.
    """
    top = 2**bits - 2  # codes 0..top on [-1, 1]; top + 1 is the zero vector's
    utype = np.uint16 if bits <= 16 else np.uint32
    out = np.empty((len(v), 2), utype)
    for block in _blocks(len(v), _BLOCK // 4):
        x, y, z = np.array(v[block].T, dtype=np.float64, order="C")
        ax, ay = np.abs(x), np.abs(y)
        l1 = ax + ay + np.abs(z)
        if not np.all(np.isfinite(l1)):
            raise ValueError("codec 'unit_vector' cannot store non-finite vectors")
        zero = l1 == 0
        l1[zero] = 1.0
        inv = 1.0 / l1
        x *= inv
        y *= inv
        ax *= inv
        ay *= inv
        low = z < 0
        fx = np.where(low, np.copysign(1.0 - ay, x), x)
        fy = np.where(low, np.copysign(1.0 - ax, y), y)
        for f, col in ((fx, 0), (fy, 1)):
            f += 1.0
            f *= top / 2.0
            np.rint(f, out=f)
            np.clip(f, 0, top, out=f)
            codes = f.astype(utype)
            codes[zero] = top + 1
            out[block, col] = codes
    return out


def _oct_decode(codes: np.ndarray, bits: int, dtype: np.dtype) -> np.ndarray:
    top = 2**bits - 2
    out = np.empty((len(codes), 3), dtype)
    for block in _blocks(len(codes), _BLOCK // 4):
        cx, cy = np.array(codes[block].T, order="C")
        zero = (cx == top + 1) & (cy == top + 1)
        if int(max(cx.max(initial=0), cy.max(initial=0))) > top and np.any((np.maximum(cx, cy) > top) & ~zero):
            raise ValueError("payload holds octahedral codes out of range")
        fx = cx * (2.0 / top)
        fx -= 1.0
        fy = cy * (2.0 / top)
        fy -= 1.0
        ax, ay = np.abs(fx), np.abs(fy)
        z = 1.0 - ax - ay
        low = z < 0
        x = np.where(low, np.copysign(1.0 - ay, fx), fx)
        y = np.where(low, np.copysign(1.0 - ax, fy), fy)
        inv = 1.0 / np.sqrt(x * x + y * y + z * z)
        for col, comp in enumerate((x, y, z)):
            comp *= inv
            comp[zero] = 0.0
            out[block, col] = comp
    return out


def _header(data: bytes) -> tuple[dict, int]:
    if len(data) < 8 or data[:4] != MAGIC:
        raise ValueError("not an encoded buffer (bad magic bytes)")
    (size,) = struct.unpack("<I", data[4:8])
    if 12 + size > len(data):
        raise ValueError("encoded buffer is truncated inside its header")
    (crc,) = struct.unpack("<I", data[8 + size : 12 + size])
    if zlib.crc32(data[8 : 8 + size]) != crc:
        raise ValueError("encoded buffer has a damaged header (checksum)")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
        dtype = np.dtype(header["dtype"])
        shape = tuple(int(n) for n in header["shape"])
        check_codec(header["codec"])
        version = int(header["version"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"encoded buffer has a damaged header ({err})") from None
    if version > FORMAT_VERSION:
        raise ValueError(f"encoded buffer has format version {version}; this version reads up to {FORMAT_VERSION}")
    if any(n < 0 for n in shape) or dtype.kind not in "biuf":
        raise ValueError("encoded buffer has a damaged header (shape or dtype)")
    header["shape"], header["dtype"] = shape, dtype
    return header, 12 + size


def encode(array: np.ndarray, codec: Mapping, level: int = DEFLATE_LEVEL) -> bytes:
    """`array` kept by `codec` as self-describing bytes (see the module docstring).

    ValueError for an array the codec cannot store (an integer array for a float
    codec, values beyond 64-bit codes, non-finite vectors for unit_vector, ...).
    """
    codec = check_codec(codec)
    kind = codec["codec"]
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"cannot store arrays of dtype {array.dtype}")
    array = np.asarray(array, dtype=array.dtype.newbyteorder("="), order="C")
    shape = array.shape
    layout: dict = {}
    if kind == "lossless":
        codes = array.view(np.uint8 if array.dtype.kind == "b" else _UNSIGNED[array.dtype.itemsize])
    elif kind == "fixed":
        codes, layout = _encode_fixed(array, float(codec["step"]))
    elif kind == "relative":
        codes = _encode_relative(array, int(codec.get("bits", DEFAULT_RELATIVE_BITS)))
    else:
        _float_dtype(array, "unit_vector")
        if not shape or shape[-1] != 3:
            raise ValueError(f"codec 'unit_vector' stores arrays of 3-vectors (last axis 3), not shape {shape}")
        bits = int(codec.get("bits", DEFAULT_UNIT_VECTOR_BITS))
        codes = _oct_encode(array.reshape(-1, 3), bits).reshape(*shape[:-1], 2)
    lag, shuffle = _choose_layout(codes, level)
    residuals = _predict(codes, lag) if codes.size else codes.reshape(-1)
    head = {
        "version": FORMAT_VERSION,
        "codec": codec,
        "dtype": array.dtype.str,
        "shape": list(shape),
        "codes": residuals.dtype.name,
        "lag": lag,
        "planes": shuffle,
        **layout,
    }
    head_bytes = json.dumps(head, sort_keys=True, separators=(",", ":")).encode("utf-8")
    little = residuals.astype(residuals.dtype.newbyteorder("<"), copy=False)
    payload = zlib.compress(_shuffle(residuals) if shuffle else little.tobytes(), level)
    crc = struct.pack("<I", zlib.crc32(head_bytes))
    return MAGIC + struct.pack("<I", len(head_bytes)) + head_bytes + crc + payload


def decode(
    data: bytes, codec: Optional[Mapping] = None, dtype=None, shape: Optional[Iterable[int]] = None
) -> np.ndarray:
    """The array `encode` stored in `data`, within the codec's bound.

    `codec`, `dtype` and `shape` are optional: when given they must match what the
    bytes record. ValueError for damaged, truncated or mismatching bytes.
    """
    header, start = _header(bytes(data[:65536]) if len(data) > 65536 else bytes(data))
    got_dtype, got_shape, got_codec = header["dtype"], header["shape"], header["codec"]
    if codec is not None and check_codec(codec) != got_codec:
        raise ValueError(f"encoded with codec {got_codec}, not {dict(codec)}")
    if dtype is not None and np.dtype(dtype) != got_dtype:
        raise ValueError(f"encoded array has dtype {got_dtype}, not {np.dtype(dtype)}")
    if shape is not None and tuple(shape) != got_shape:
        raise ValueError(f"encoded array has shape {got_shape}, not {tuple(shape)}")
    kind = got_codec["codec"]
    count = int(np.prod(got_shape, dtype=np.int64))
    if kind == "unit_vector":
        if not got_shape or got_shape[-1] != 3:
            raise ValueError("encoded buffer has a damaged header (unit vectors need a last axis of 3)")
        count = count // 3 * 2
    try:
        ctype = np.dtype(header["codes"])
        lag = int(header["lag"])
        planes = bool(header.get("planes", True))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"encoded buffer has a damaged header ({err})") from None
    if ctype.kind != "u" or not 1 <= lag <= max(count, 1):
        raise ValueError("encoded buffer has a damaged header (codes)")
    try:
        raw = zlib.decompress(memoryview(data)[start:])
    except zlib.error as err:
        raise ValueError(f"encoded payload is damaged or truncated ({err})") from None
    codes = _unpredict(_unshuffle(raw, ctype, count, planes), lag)
    if kind == "lossless":
        if ctype.itemsize != got_dtype.itemsize:
            raise ValueError("encoded buffer has a damaged header (code size)")
        return codes.view(got_dtype).reshape(got_shape)
    if kind == "relative":
        if ctype.itemsize != got_dtype.itemsize:
            raise ValueError("encoded buffer has a damaged header (code size)")
        return codes.view(got_dtype).reshape(got_shape)
    if kind == "fixed":
        try:
            return _decode_fixed(codes, float(got_codec["step"]), got_dtype, header).reshape(got_shape)
        except (KeyError, TypeError) as err:
            raise ValueError(f"encoded buffer has a damaged header ({err})") from None
    bits = int(got_codec.get("bits", DEFAULT_UNIT_VECTOR_BITS))
    return _oct_decode(codes.reshape(-1, 2), bits, got_dtype).reshape(got_shape)


# ------------------------------------------------------------------------ container

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _member(name: str) -> str:
    if not name or not set(name) <= _NAME_CHARS or name.startswith(".") or f"{name}.bin" == HEADER_MEMBER:
        raise ValueError(f"buffer name {name!r}: use letters, digits, '_', '-' and '.' (not first)")
    return f"{name}.bin"


def _zipinfo(member: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(member, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    info.create_system = 3
    return info


def write_compact(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    codecs: Optional[Mapping[str, Mapping]] = None,
    level: int = DEFLATE_LEVEL,
) -> None:
    """Write `arrays` into one file at `path`, each kept by ``codecs[name]``.

    A name missing from `codecs` takes its codec in the buffer registry
    (``hybrid.buffers.codec``: lossless for names it does not know).
    The file appears complete or not at all (written beside it, then renamed).
    """
    from hybrid.buffers import codec as registry_codec

    path = Path(path)
    codecs = dict(codecs or {})
    plan = {}
    for name, array in arrays.items():
        member = _member(name)
        codec = check_codec(codecs[name] if name in codecs else registry_codec(name))
        plan[name] = (member, codec)
    with file_beside(path) as (fd, _):
        entries = {}
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, array in arrays.items():
                    member, codec = plan[name]
                    array = np.asarray(array)
                    try:
                        data = encode(array, codec, level)
                    except ValueError as err:
                        raise ValueError(f"{path}: buffer {name!r} cannot be stored with {codec}: {err}") from None
                    zf.writestr(_zipinfo(member), data)
                    entries[name] = {
                        "member": member,
                        "dtype": array.dtype.newbyteorder("=").str,
                        "shape": list(array.shape),
                        "codec": codec,
                        "bound": error_bound(codec),
                        "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                header = {"format": CONTAINER_FORMAT, "version": FORMAT_VERSION, "buffers": entries}
                zf.writestr(_zipinfo(HEADER_MEMBER), json.dumps(header, indent=1).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())


def _read_member(zf: zipfile.ZipFile, path: Path, member: str) -> bytes:
    try:
        return zf.read(member)
    except KeyError:
        raise ValueError(f"{path}: member {member!r} is missing; the file is damaged") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as err:
        raise ValueError(f"{path}: member {member!r} is damaged or truncated ({err})") from None


def compact_header(path: str | os.PathLike) -> dict:
    """The container's header (format, version, per buffer: member, dtype, shape, codec, bound, bytes)."""
    path = Path(path)
    with _open_zip(path) as zf:
        return _load_header(zf, path)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path, "r")
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: not a readable compact buffer file, damaged or truncated ({err})") from None


def _load_header(zf: zipfile.ZipFile, path: Path) -> dict:
    raw = _read_member(zf, path, HEADER_MEMBER)
    try:
        header = json.loads(raw.decode("utf-8"))
        if header.get("format") != CONTAINER_FORMAT:
            raise ValueError(f"format is {header.get('format')!r}, not {CONTAINER_FORMAT!r}")
        version = int(header["version"])
        buffers = header["buffers"]
        if not isinstance(buffers, dict):
            raise ValueError("'buffers' is not a mapping")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: member {HEADER_MEMBER!r} is damaged ({err})") from None
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in compact format version {version}; this version of hybrid reads up to {FORMAT_VERSION}"
        )
    return header


def read_compact(path: str | os.PathLike, names: Optional[Iterable[str]] = None) -> dict[str, np.ndarray]:
    """The buffers of a `write_compact` file (only `names`, in that order, when given).

    Only the buffers asked for are read and decoded. KeyError for a name the file
    does not hold (listing those it holds); ValueError naming the file and member for
    a truncated or damaged file.
    """
    path = Path(path)
    with _open_zip(path) as zf:
        header = _load_header(zf, path)
        stored = header["buffers"]
        wanted = list(stored) if names is None else list(dict.fromkeys(names))
        missing = [n for n in wanted if n not in stored]
        if missing:
            raise KeyError(f"{path} holds no {', '.join(map(repr, missing))} (it holds {', '.join(stored)})")
        out = {}
        for name in wanted:
            entry = stored[name]
            try:
                member = str(entry["member"])
                dtype = np.dtype(entry["dtype"])
                shape = tuple(int(n) for n in entry["shape"])
                codec = check_codec(entry["codec"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}: member {HEADER_MEMBER!r} is damaged for buffer {name!r} ({err})") from None
            data = _read_member(zf, path, member)
            if len(data) != entry.get("bytes", len(data)) or (
                "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]
            ):
                raise ValueError(f"{path}: member {member!r} is damaged (its bytes do not match the header)")
            try:
                out[name] = decode(data, codec, dtype, shape)
            except ValueError as err:
                raise ValueError(f"{path}: member {member!r} is damaged ({err})") from None
    return out
