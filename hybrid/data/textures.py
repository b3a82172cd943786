"""Procedural textures for dataset scenes: wood, marble, fractal noise, checker.

``procedural_texture(kind, seed, params)`` draws a square sRGB image, uint8 of shape
(size, size, 3), as a pure function of its arguments. Every kind tiles seamlessly
(all its frequencies are whole numbers of periods per image), because floors repeat
their texture ``texture_scale`` times per metre and a seam would show as a grid.

``texture_file`` writes such an image once into a cache folder and returns its path,
so a ``Look.texture`` of a sampled scene can point at it. The file name is the
SHA-256 of everything that determines the pixels (NumPy's version included: it
draws the random values), so equal inputs share one file and concurrent writers
(several dataset workers) never conflict. The PNG carries its key and the SHA-256 of
its pixels in a text chunk; a file that does not decode to exactly those pixels
(empty, truncated, garbage, written by an older version) is drawn again and
replaced (``hybrid.cache``).

A new kind is one function ``f(rng, size, p) -> float array (size, size, 3) in 0..1``
decorated with ``@_kind_of(name, **defaults)``, which adds it to ``TEXTURES``; those
defaults name the parameters a recipe may set (see ``texture_params``), and ``p``
holds their values as attributes.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np

from hybrid.cache import DamagedEntry, cache_root as _cache_root, cached_file, tool_version

Param = Union[float, Sequence[float]]  # a number, or an sRGB colour [r, g, b] in 0..1
TextureFn = Callable[..., np.ndarray]

DEFAULT_SIZE = 256  # pixels per side
MIN_SIZE, MAX_SIZE = 8, 2048

# Bump when any kind's pixels change for the same inputs: cached files of the old
# version must not be reused.
_FORMAT_VERSION = "textures-2"  # 2: PNG text chunk with the key and pixel digest
_SEAL_CHUNK = "hybrid-cache"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC


# ---------------------------------------------------------------- building blocks


def _rgb(value: Param) -> np.ndarray:
    rgb = np.asarray(value, dtype=np.float64).reshape(-1)
    if rgb.shape != (3,) or np.any(rgb < 0) or np.any(rgb > 1):
        raise ValueError(f"a texture colour is [r, g, b] with components in 0..1, got {value!r}")
    return rgb


def _periods(value: float) -> int:
    # Whole periods per image keep the texture seamless when it repeats.
    return max(1, int(round(float(value))))


def value_noise(rng: np.random.Generator, size: int, fx: int, fy: int, octaves: int = 1, persistence: float = 0.5) -> np.ndarray:
    """Tileable fractal value noise in 0..1, float64 (size, size).

    Octave k is a (fx 2^k) x (fy 2^k) lattice of uniform random values, wrapped at
    the image edges, interpolated with smoothstep; octave amplitudes fall by
    ``persistence``. The sum is divided by the total amplitude.
    """
    coord = (np.arange(size) + 0.5) / size  # pixel centres in [0, 1)
    total = np.zeros((size, size))
    amplitude, norm = 1.0, 0.0
    for k in range(octaves):
        nx, ny = fx * 2**k, fy * 2**k
        lattice = rng.random((ny, nx))
        u, v = coord * nx, coord * ny
        ix0, iy0 = np.floor(u).astype(int) % nx, np.floor(v).astype(int) % ny
        ix1, iy1 = (ix0 + 1) % nx, (iy0 + 1) % ny
        tx, ty = u - np.floor(u), v - np.floor(v)
        sx, sy = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
        top = lattice[iy0][:, ix0] * (1 - sx) + lattice[iy0][:, ix1] * sx
        bottom = lattice[iy1][:, ix0] * (1 - sx) + lattice[iy1][:, ix1] * sx
        total += amplitude * (top * (1 - sy)[:, None] + bottom * sy[:, None])
        norm += amplitude
        amplitude *= persistence
    return total / norm


def _blend(a: Param, b: Param, t: np.ndarray) -> np.ndarray:
    ca, cb = _rgb(a), _rgb(b)
    return ca + (cb - ca) * np.clip(t, 0.0, 1.0)[..., None]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coord = (np.arange(size) + 0.5) / size
    return np.meshgrid(coord, coord, indexing="xy")  # x varies along columns, y along rows


# ---------------------------------------------------------------- kinds


@dataclass(frozen=True)
class TextureKind:
    """A kind's drawing function and its parameters with their defaults (one place for both)."""

    draw: TextureFn  # draw(rng, size, p): p holds every parameter by name
    defaults: Mapping[str, Param]


TEXTURES: dict[str, TextureKind] = {}


def _kind_of(name: str, **defaults: Param) -> Callable[[TextureFn], TextureFn]:
    """Registers the decorated function in ``TEXTURES`` as kind `name` with these parameters."""

    def register(draw: TextureFn) -> TextureFn:
        TEXTURES[name] = TextureKind(draw, defaults)
        return draw

    return register


@_kind_of("wood", rings=6, wobble=0.2, grain=0.25, dark=(0.42, 0.25, 0.12), light=(0.8, 0.6, 0.38))
def wood(rng: np.random.Generator, size: int, p: SimpleNamespace) -> np.ndarray:
    """Growth rings across x, bent by low-frequency noise, with fine grain along y.

    rings: ring periods per image; wobble: how far rings bend, in ring periods;
    grain: strength of the streaks (0 none).
    """
    x, _ = _grid(size)
    bend = value_noise(rng, size, 2, 2, octaves=3) - 0.5
    phase = _periods(p.rings) * x + p.wobble * 2.0 * bend
    ring = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 1.5
    streaks = value_noise(rng, size, 48, 3, octaves=2) - 0.5
    return _blend(p.dark, p.light, 0.15 + 0.75 * ring + p.grain * streaks)


@_kind_of("marble", veins=3, turbulence=1.2, sharpness=0.4, base=(0.93, 0.93, 0.91), vein=(0.3, 0.31, 0.35))
def marble(rng: np.random.Generator, size: int, p: SimpleNamespace) -> np.ndarray:
    """Dark veins along a diagonal sine, displaced by fractal noise (turbulence in vein periods).

    sharpness: exponent on the vein profile; smaller gives thinner veins.
    """
    x, y = _grid(size)
    n = _periods(p.veins)
    noise = value_noise(rng, size, 3, 3, octaves=5)
    t = np.abs(np.sin(np.pi * (n * x + n * y + p.turbulence * 2.0 * noise)))
    return _blend(p.vein, p.base, t ** max(p.sharpness, 1e-3))


@_kind_of(
    "noise", frequency=4, octaves=5, persistence=0.5, contrast=1.5, low=(0.25, 0.25, 0.27), high=(0.85, 0.85, 0.82)
)
def noise(rng: np.random.Generator, size: int, p: SimpleNamespace) -> np.ndarray:
    """Fractal value noise: ``frequency`` lattice cells per side at the coarsest octave."""
    f = _periods(p.frequency)
    n = value_noise(rng, size, f, f, octaves=max(1, int(round(p.octaves))), persistence=p.persistence)
    return _blend(p.low, p.high, 0.5 + p.contrast * (n - 0.5))


@_kind_of("checker", squares=8, jitter=0.0, a=(0.92, 0.92, 0.88), b=(0.24, 0.25, 0.28))
def checker(rng: np.random.Generator, size: int, p: SimpleNamespace) -> np.ndarray:
    """A board of ``squares`` x ``squares`` cells; ``jitter`` varies each cell's brightness (0..1)."""
    n = _periods(p.squares)
    cell = (np.arange(size) * n) // size
    board = (cell[:, None] + cell[None, :]) % 2
    image = np.where(board[..., None] == 0, _rgb(p.a), _rgb(p.b))
    # Drawn even when jitter is 0, so changing jitter never shifts what else a seed gives.
    shade = 1.0 + p.jitter * (rng.random((n, n)) - 0.5)
    return image * shade[cell[:, None], cell[None, :]][..., None]


# ---------------------------------------------------------------- public API


def texture_params(kind: str) -> dict[str, object]:
    """The parameters a kind accepts and their defaults (``size`` included), for validating recipes."""
    return {"size": DEFAULT_SIZE, **_kind(kind).defaults}


def _kind(kind: str) -> TextureKind:
    try:
        return TEXTURES[kind]
    except KeyError:
        close = difflib.get_close_matches(str(kind), list(TEXTURES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown texture kind {kind!r}{hint}; known kinds: {', '.join(TEXTURES)}") from None


def _normalised(kind: str, params: Optional[Mapping[str, Param]]) -> dict[str, object]:
    """All parameters with defaults filled in, as plain JSON values; unknown names are errors."""
    accepted = texture_params(kind)
    given = dict(params or {})
    for name in given:
        if name not in accepted:
            close = difflib.get_close_matches(name, list(accepted), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"texture kind {kind!r} has no parameter {name!r}{hint}; it takes {', '.join(accepted)}")
    out: dict[str, object] = {}
    for name, default in accepted.items():
        value = given.get(name, default)
        if isinstance(value, (list, tuple, np.ndarray)):
            out[name] = [float(c) for c in value]
        else:
            out[name] = float(value)  # type: ignore[arg-type]
    size = out["size"]
    if size != int(size) or not MIN_SIZE <= size <= MAX_SIZE:  # type: ignore[operator]
        raise ValueError(f"texture size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, got {size}")
    out["size"] = int(size)  # type: ignore[arg-type]
    return out


def procedural_texture(kind: str, seed: int, params: Optional[Mapping[str, Param]] = None) -> np.ndarray:
    """A tileable sRGB texture, uint8 (size, size, 3), a pure function of (kind, seed, params).

    ``params`` may set ``size`` (pixels per side, default 256) and the kind's own
    parameters (see ``texture_params``); colours are [r, g, b] in 0..1.
    """
    draw = _kind(kind).draw
    values = _normalised(kind, params)
    size = values.pop("size")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed)]))
    image = draw(rng, size, SimpleNamespace(**values))
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def cache_root(cache_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """``cache_dir`` if given, else ``$HYBRID_CACHE_DIR``, else ``~/.cache/hybrid``."""
    return _cache_root(cache_dir)


def texture_key(kind: str, seed: int, params: Optional[Mapping[str, Param]] = None) -> str:
    """SHA-256 (hex) of the format version, NumPy's version, kind, seed and all parameters (defaults filled in)."""
    _kind(kind)
    payload = {
        "version": _FORMAT_VERSION,
        "numpy": tool_version("numpy"),
        "kind": kind,
        "seed": int(seed),
        "params": _normalised(kind, params),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def texture_file(
    kind: str,
    seed: int,
    params: Optional[Mapping[str, Param]] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
) -> str:
    """Absolute path of the texture's PNG under ``<cache>/textures/<sha256>.png``, written if missing or damaged.

    ``cache_dir`` is the cache root (default ``$HYBRID_CACHE_DIR`` or ``~/.cache/hybrid``).
    The file is written to a temporary name and renamed into place, so a reader
    never sees half a file even with several writers at once.
    """
    key = texture_key(kind, seed, params)
    size = int(_normalised(kind, params)["size"])  # type: ignore[call-overload]

    def build() -> bytes:
        return _png(procedural_texture(kind, seed, params), key)

    target = cache_root(cache_dir) / "textures" / f"{key}.png"
    path = cached_file(target, build, lambda data: _check_png(data, key, size))
    return str(path.resolve())


def _png(image: np.ndarray, key: str) -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(_SEAL_CHUNK, f"key={key} sha256={hashlib.sha256(image.tobytes()).hexdigest()}")
    out = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _check_png(data: bytes, key: str, size: int) -> None:
    """DamagedEntry unless `data` is a PNG sealed under `key` that decodes to (size, size, 3)
    pixels with the sealed digest."""
    from PIL import Image

    if not data:
        raise DamagedEntry("empty file")
    if not data.endswith(_PNG_END):
        raise DamagedEntry("no PNG end chunk (truncated?)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes every pixel: a cut-off or corrupted stream fails here
            text = getattr(image, "text", {}).get(_SEAL_CHUNK, "")
            pixels = np.asarray(image) if image.mode == "RGB" else None
    except Exception as err:  # PIL raises several types (OSError, SyntaxError, ValueError, zlib.error) for bad files
        raise DamagedEntry(f"not a readable PNG: {err}") from None
    if not text.startswith(f"key={key} sha256="):
        raise DamagedEntry("no seal for this key (written by another version?)")
    if pixels is None or pixels.shape != (size, size, 3):
        raise DamagedEntry(f"pixels of shape {None if pixels is None else pixels.shape}, expected {(size, size, 3)}")
    if hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest() != text.rsplit("sha256=", 1)[1]:
        raise DamagedEntry("pixels do not match their SHA-256")
