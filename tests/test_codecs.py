"""Buffer codecs and the compact container: round trips within the documented bounds, exactness, damage."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from hybrid.buffers import BUFFERS, codec as buffer_codec
from hybrid.io import codecs
from hybrid.io.codecs import decode, encode, error_bound, max_error, read_compact, write_compact

LOSSLESS = {"codec": "lossless"}
FLOW = {"codec": "fixed", "step": 1 / 64}
DEPTH = {"codec": "relative", "bits": 13}
NORMAL = {"codec": "unit_vector", "bits": 16}

SHAPES = [(1, 1, 1), (2, 3, 5), (3, 8, 17), (4, 16, 33), (1, 7), (9,)]


def rng(seed=0):
    return np.random.default_rng(seed)


def roundtrip(array, codec):
    data = encode(array, codec)
    out = decode(data, codec, array.dtype, array.shape)
    assert out.dtype == array.dtype and out.shape == array.shape
    assert encode(array, codec) == data  # deterministic: the same array gives the same bytes
    return out


# Tolerances below are the documented formulas, derived from the codec, not from the code under test.


def fixed_tolerance(step, original, dtype=np.float32):
    # step / 2, plus half a unit in the last place of the result type at the largest magnitude.
    finite = original[np.isfinite(original)]
    top = float(np.max(np.abs(finite))) + step if finite.size else step
    return step / 2 + float(np.spacing(dtype(top))) / 2


def relative_tolerance(bits):
    return 2.0 ** -(bits + 1)


def unit_vector_tolerance(bits):
    # Octahedral step h = 2 / (2**bits - 2); chord <= sqrt(18) * h / 2; angle = 2 asin(chord / 2); + float32.
    h = 2.0 / (2**bits - 2)
    return 2 * math.asin(math.sqrt(18) * h / 4) + 1e-6


def assert_specials_kept(original, decoded):
    for test in (np.isnan, np.isposinf, np.isneginf):
        assert np.array_equal(test(original), test(decoded))


# ---------------------------------------------------------------------------- lossless


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64, np.bool_])
def test_lossless_random_is_exact(shape, dtype):
    r = rng(1)
    if dtype == np.bool_:
        a = r.random(shape) < 0.5
    elif np.dtype(dtype).kind == "f":
        a = (r.normal(size=shape) * 1e3).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = r.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    out = roundtrip(a, LOSSLESS)
    assert out.tobytes() == a.tobytes()
    assert max_error(LOSSLESS, a, out) == 0.0


def test_lossless_extremes_and_float_specials_bit_for_bit():
    u16 = np.array([[[0, 65535, 1, 65534, 0]]], np.uint16)
    assert roundtrip(u16, LOSSLESS).tobytes() == u16.tobytes()
    f = np.array([[[np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38]]], np.float32)
    f.view(np.uint32)[0, 0, 0] = 0x7FC12345  # a NaN payload
    assert roundtrip(f, LOSSLESS).tobytes() == f.tobytes()


def test_lossless_empty_and_scalar():
    for a in (np.zeros((0, 4, 5), np.uint16), np.array(7, np.uint8), np.zeros((2, 0), np.float32)):
        out = roundtrip(a, LOSSLESS)
        assert out.shape == a.shape and out.tobytes() == a.tobytes()


def test_non_native_byte_order_is_read_as_its_values():
    a = np.arange(60, dtype=">u2").reshape(3, 4, 5)
    out = decode(encode(a, LOSSLESS))
    assert np.array_equal(out, a) and out.dtype.isnative


# ------------------------------------------------------------------------------- fixed


def fixed_inputs():
    r = rng(2)
    yield "random", (r.normal(size=(3, 8, 17, 2)) * 40).astype(np.float32)
    yield "ramp", np.broadcast_to(np.linspace(-5, 5, 33, dtype=np.float32), (2, 9, 33)).copy()
    yield "constant", np.full((2, 4, 5, 2), 3.3, np.float32)
    yield "one pixel", np.array([[[[0.123, -7.77]]]], np.float32)
    specials = (r.normal(size=(2, 5, 7, 2)) * 3).astype(np.float32)
    specials[0, 1, 2] = np.nan
    specials[1, 0, 0, 0] = np.inf
    specials[1, 4, 6, 1] = -np.inf
    specials[0, 0, 0] = 0.0
    yield "nan inf zero", specials
    yield "wide", np.array([[[1e6, -1e6, 123456.7, 0.0]]], np.float32)  # needs int32 codes
    yield "float64", r.normal(size=(2, 3, 5)) * 1e9  # needs int64 codes


@pytest.mark.parametrize("step", [1 / 64, 0.1, 1.0, 4.0])
@pytest.mark.parametrize("name,array", list(fixed_inputs()), ids=[n for n, _ in fixed_inputs()])
def test_fixed_within_half_a_step(name, array, step):
    codec = {"codec": "fixed", "step": step}
    out = roundtrip(array, codec)
    assert_specials_kept(array, out)
    finite = np.isfinite(array)
    err = np.max(np.abs(out[finite].astype(np.float64) - array[finite]), initial=0.0)
    assert err <= fixed_tolerance(step, array, array.dtype.type)
    codecs.check_bound(codec, array, out)


def test_fixed_flow_step_is_exact_on_multiples_and_picks_narrow_codes():
    a = (np.arange(-200, 200, dtype=np.float32) / 64).reshape(1, 4, 100)
    data = encode(a, FLOW)
    assert np.array_equal(decode(data), a)
    header, _ = codecs._header(data)
    assert header["int"] == "int16"


def test_fixed_values_beyond_int64_are_refused_not_wrapped():
    a = np.array([[[1e30, 0.0]]], np.float32)
    with pytest.raises(ValueError, match="too large|64-bit"):
        encode(a, {"codec": "fixed", "step": 1 / 64})
    big = np.array([[[3e18, -3e18]]], np.float64)  # fits int64 at step 1: widened, kept
    out = roundtrip(big, {"codec": "fixed", "step": 1.0})
    assert np.array_equal(out, big)


def test_fixed_refuses_integer_arrays():
    with pytest.raises(ValueError, match="float"):
        encode(np.zeros((2, 3, 4), np.uint16), FLOW)


# ---------------------------------------------------------------------------- relative


def relative_inputs():
    r = rng(3)
    yield "lognormal", r.lognormal(0, 2, size=(3, 8, 17)).astype(np.float32)
    yield "signed", (r.normal(size=(2, 5, 9, 3)) * 10).astype(np.float32)
    yield "ramp", np.broadcast_to(np.linspace(0.5, 30, 31, dtype=np.float32), (2, 3, 31)).copy()
    yield "constant", np.full((2, 4, 5), 1.7, np.float32)
    yield "one pixel", np.array([[[2.5]]], np.float32)
    yield "extremes", np.array([[[1.1754944e-38, 3.3e38, -3.4e38, 1e-30, 65504.0]]], np.float32)


@pytest.mark.parametrize("bits", [0, 7, 13, 20])
@pytest.mark.parametrize("name,array", list(relative_inputs()), ids=[n for n, _ in relative_inputs()])
def test_relative_within_documented_bound(name, array, bits):
    codec = {"codec": "relative", "bits": bits}
    out = roundtrip(array, codec)
    nz = array != 0
    rel = np.abs(out[nz].astype(np.float64) - array[nz]) / np.abs(array[nz].astype(np.float64))
    assert np.max(rel, initial=0.0) <= relative_tolerance(bits)
    codecs.check_bound(codec, array, out)


def test_relative_keeps_zero_sign_nan_inf_subnormal_and_max_bit_for_bit():
    a = np.array([[[0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -2e-40, np.finfo(np.float32).max, -5.0]]], np.float32)
    a.view(np.uint32)[0, 0, 2] = 0x7F800001  # a NaN whose rounding would otherwise turn it into inf
    out = roundtrip(a, DEPTH)
    assert out.view(np.uint32)[0, 0, :8].tolist() == a.view(np.uint32)[0, 0, :8].tolist()
    assert np.signbit(out[0, 0, 8]) and out[0, 0, 8] == -5.0


def test_relative_23_bits_is_lossless_and_float64_works():
    a = rng(4).lognormal(size=(2, 3, 4)).astype(np.float32)
    assert roundtrip(a, {"codec": "relative", "bits": 23}).tobytes() == a.tobytes()
    b = rng(5).normal(size=(2, 3, 4))
    out = roundtrip(b, {"codec": "relative", "bits": 30})
    assert np.max(np.abs(out - b) / np.abs(b)) <= relative_tolerance(30)


def test_default_depth_codec_meets_1e4_relative():
    assert buffer_codec("depth")["codec"] == "relative"
    assert relative_tolerance(buffer_codec("depth")["bits"]) <= 1e-4
    depth = rng(6).uniform(0.1, 200, size=(2, 9, 11)).astype(np.float32)
    depth[:, :3] = 0  # background
    out = roundtrip(depth, buffer_codec("depth"))
    assert np.all(out[:, :3] == 0)
    assert np.max(np.abs(out[:, 3:] - depth[:, 3:]) / depth[:, 3:]) <= 1e-4


# ------------------------------------------------------------------------- unit vector


def random_unit(shape, seed=7):
    v = rng(seed).normal(size=(*shape, 3))
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 7), (3, 40, 61)])
def test_unit_vector_within_documented_angle(shape, bits):
    codec = {"codec": "unit_vector", "bits": bits}
    v = random_unit(shape)
    v[0, 0, 0] = 0.0  # background
    out = roundtrip(v, codec)
    assert np.all(out[0, 0, 0] == 0)
    nz = v.reshape(-1, 3).any(axis=1)
    o, d = v.reshape(-1, 3)[nz].astype(np.float64), out.reshape(-1, 3)[nz].astype(np.float64)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
    o /= np.linalg.norm(o, axis=1, keepdims=True)
    angle = 2 * np.arcsin(np.minimum(np.linalg.norm(o - d, axis=1) / 2, 1))
    assert np.max(angle, initial=0.0) <= unit_vector_tolerance(bits)
    codecs.check_bound(codec, v, out)


def test_unit_vector_axes_folds_and_lengths():
    axes = np.concatenate([np.eye(3), -np.eye(3)]).astype(np.float32)
    edges = np.array([[0.6, 0.8, 0.0], [-0.6, 0.0, -0.8], [0.0, -1e-4, -1.0], [1e-7, 1e-7, -1.0]], np.float32)
    scaled = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, -0.01]], np.float32)  # only the direction is kept
    v = np.concatenate([axes, edges, scaled])[None, None]
    out = roundtrip(v, NORMAL)
    codecs.check_bound(NORMAL, v, out)
    assert np.allclose(out[0, 0, :6], axes, atol=1e-6)
    assert np.allclose(out[0, 0, -2], [0.6, 0.8, 0.0], atol=1e-4)


def test_unit_vector_refuses_non_finite_and_wrong_shape():
    v = random_unit((1, 2, 2))
    v[0, 0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        encode(v, NORMAL)
    with pytest.raises(ValueError, match="3-vectors"):
        encode(np.zeros((1, 2, 2, 2), np.float32), NORMAL)


def test_default_normal_codec_keeps_components_to_1e4():
    v = random_unit((2, 30, 31), seed=8)
    out = roundtrip(v, buffer_codec("normal"))
    assert np.max(np.abs(out - v)) <= 1e-4


# ------------------------------------------------------------------ compression, codecs


def test_static_frames_compress_far_below_raw():
    frame = (rng(9).normal(size=(1, 60, 80, 2)) * 20).astype(np.float32)
    clip = np.repeat(frame, 12, axis=0)
    assert len(encode(clip, FLOW)) < clip.nbytes / 20  # the previous frame predicts it exactly


def test_smooth_depth_compresses():
    y, x = np.mgrid[0:90, 0:160]
    depth = np.repeat((2.0 + 0.01 * x + 0.02 * y).astype(np.float32)[None], 4, axis=0)
    assert len(encode(depth, DEPTH)) < depth.nbytes / 4


@pytest.mark.parametrize(
    "codec",
    [{"codec": "zip"}, {"codec": "fixed"}, {"codec": "fixed", "step": 0}, {"codec": "fixed", "step": float("nan")},
     {"codec": "relative", "bits": 60}, {"codec": "relative", "bits": 2.5}, {"codec": "lossless", "level": 3},
     {"codec": "unit_vector", "bits": 1}, "lossless"],
)
def test_bad_codec_descriptions_are_refused(codec):
    with pytest.raises(ValueError):
        encode(np.zeros((1, 2, 3), np.float32), codec)


def test_error_bound_text_and_json():
    for codec in (LOSSLESS, FLOW, DEPTH, NORMAL, *(buffer_codec(n) for n in BUFFERS)):
        assert isinstance(error_bound(codec), str) and error_bound(codec)
        json.dumps(codec)
    assert error_bound(LOSSLESS) == "exact"
    assert "0.0078125" in error_bound(FLOW)
    assert "6.1e-05" in error_bound(DEPTH)


def test_decode_checks_what_it_is_told():
    a = np.zeros((2, 3, 4), np.float32)
    data = encode(a, DEPTH)
    with pytest.raises(ValueError, match="dtype"):
        decode(data, DEPTH, np.float64, a.shape)
    with pytest.raises(ValueError, match="shape"):
        decode(data, DEPTH, np.float32, (2, 4, 3))
    with pytest.raises(ValueError, match="codec"):
        decode(data, FLOW)


def test_damaged_or_truncated_bytes_are_refused():
    a = (rng(10).normal(size=(3, 20, 30, 2)) * 5).astype(np.float32)
    data = encode(a, FLOW)
    for bad in (data[: len(data) // 2], data[:10], b"", b"XXXX" + data[4:]):
        with pytest.raises(ValueError):
            decode(bad)
    for where in (-20, 30):  # in the payload; in the JSON header (a changed digit would still parse)
        flipped = bytearray(data)
        flipped[where] ^= 0x01
        with pytest.raises(ValueError, match="damaged"):
            decode(bytes(flipped))


# --------------------------------------------------------------------------- container


def clip_arrays(t=3, h=6, w=9):
    r = rng(11)
    flow = (r.normal(size=(t, h, w, 2)) * 4).astype(np.float32)
    flow[-1] = 0
    flow[1, 2, 3] = np.nan
    return {
        "rgb": r.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "depth": r.uniform(0.5, 20, (t, h, w)).astype(np.float32),
        "instance": r.integers(0, 5, (t, h, w), dtype=np.uint16),
        "normal": random_unit((t, h, w)),
        "flow_fwd": flow,
    }


def test_compact_roundtrip_within_bounds_and_deterministic(tmp_path):
    arrays = clip_arrays()
    table = {name: buffer_codec(name) for name in arrays}
    write_compact(tmp_path / "a.hyb", arrays, table)
    write_compact(tmp_path / "b.hyb", arrays, table)
    assert (tmp_path / "a.hyb").read_bytes() == (tmp_path / "b.hyb").read_bytes()
    back = read_compact(tmp_path / "a.hyb")
    assert list(back) == list(arrays)
    for name, arr in arrays.items():
        codecs.check_bound(table[name], arr, back[name])
    assert np.array_equal(back["rgb"], arrays["rgb"]) and np.array_equal(back["instance"], arrays["instance"])
    header = codecs.compact_header(tmp_path / "a.hyb")
    assert header["format"] == "hybrid-compact" and header["version"] == codecs.FORMAT_VERSION
    assert header["buffers"]["depth"]["codec"] == table["depth"] and header["buffers"]["depth"]["shape"] == [3, 6, 9]
    with zipfile.ZipFile(tmp_path / "a.hyb") as zf:
        assert all(info.date_time == codecs.ZIP_DATE for info in zf.infolist())
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())


def test_compact_uses_default_codecs_when_none_given(tmp_path):
    arrays = clip_arrays()
    write_compact(tmp_path / "c.hyb", arrays)
    stored = codecs.compact_header(tmp_path / "c.hyb")["buffers"]
    assert all(stored[n]["codec"] == buffer_codec(n) for n in arrays)
    write_compact(tmp_path / "d.hyb", {"extra": np.arange(6, dtype=np.int32)})
    assert codecs.compact_header(tmp_path / "d.hyb")["buffers"]["extra"]["codec"] == LOSSLESS


def test_compact_subset_reads_only_what_is_asked(tmp_path):
    arrays = clip_arrays()
    path = tmp_path / "s.hyb"
    write_compact(path, arrays)
    # Damage the rgb member: reading depth alone must not touch it.
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("rgb.bin")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    back = read_compact(path, ["depth", "instance"])
    assert list(back) == ["depth", "instance"]
    assert np.array_equal(back["instance"], arrays["instance"])
    with pytest.raises(ValueError, match=r"s\.hyb.*rgb\.bin"):
        read_compact(path, ["rgb"])
    with pytest.raises(KeyError, match="albedo"):
        read_compact(path, ["albedo"])


def test_compact_truncated_or_foreign_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t.hyb"
    write_compact(path, clip_arrays())
    data = path.read_bytes()
    for cut in (len(data) - 10, len(data) // 2, 100, 0):
        bad = tmp_path / f"cut{cut}.hyb"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.hyb"):
            read_compact(bad)
    npz = tmp_path / "x.npz"
    np.savez(npz, a=np.zeros(3))
    with pytest.raises(ValueError, match="header.json"):
        read_compact(npz)


def test_compact_damaged_header_and_newer_version(tmp_path):
    arrays = {"depth": np.ones((2, 3, 4), np.float32)}

    def rewrite(header_bytes, name):
        path = tmp_path / name
        write_compact(path, arrays)
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        with zipfile.ZipFile(path, "w") as zf:
            for n, b in members.items():
                zf.writestr(n, header_bytes(b) if n == "header.json" else b)
        return path

    broken = rewrite(lambda b: b[:-5], "broken.hyb")
    with pytest.raises(ValueError, match=r"broken\.hyb.*header\.json"):
        read_compact(broken)
    newer = rewrite(lambda b: b.replace(b'"version": 1', b'"version": 99'), "newer.hyb")
    with pytest.raises(ValueError, match="version 99"):
        read_compact(newer)
    lying = rewrite(lambda b: b.replace(b"[\n    2,", b"[\n    3,"), "lying.hyb")
    with pytest.raises(ValueError, match=r"lying\.hyb.*depth\.bin"):
        read_compact(lying)


def test_compact_failed_write_leaves_nothing(tmp_path):
    arrays = clip_arrays()
    arrays["normal"][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="normal"):
        write_compact(tmp_path / "f.hyb", arrays)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="name"):
        write_compact(tmp_path / "g.hyb", {"../x": np.zeros(3, np.uint8)})
    assert list(tmp_path.iterdir()) == []


def test_compact_replaces_an_existing_file(tmp_path):
    path = tmp_path / "r.hyb"
    write_compact(path, {"a": np.zeros((2, 2, 2), np.uint8)})
    write_compact(path, {"b": np.ones((2, 2, 2), np.uint8)})
    assert list(read_compact(path)) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.hyb"]
