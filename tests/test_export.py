"""Per-frame PNG / EXR exports: round trips within bounds, files other readers open, clean failure."""

from __future__ import annotations

import json

import numpy as np
import png
import pytest
from PIL import Image

from hybrid.io import export
from hybrid.io.export import ExportError, export_frames, read_frames


def clip_arrays(t=2, h=5, w=7):
    r = np.random.default_rng(0)
    flow = (r.normal(size=(t, h, w, 2)) * 30).astype(np.float32)
    flow[-1] = 0
    flow[0, h // 2, w // 2] = np.nan
    normal = r.normal(size=(t, h, w, 3))
    normal = (normal / np.linalg.norm(normal, axis=-1, keepdims=True)).astype(np.float32)
    normal[:, 0, 0] = 0
    depth = r.uniform(0.5, 40, (t, h, w)).astype(np.float32)
    depth[:, :, 0] = 0
    return {
        "rgb": r.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
        "liquid_mask": r.integers(0, 2, (t, h, w), dtype=np.uint8),
        "instance": np.array(r.integers(0, 65536, (t, h, w)), dtype=np.uint16),
        "depth": depth,
        "normal": normal,
        "flow_fwd": flow,
    }


def png_tolerance(entry, original):
    # The documented bound: scale / 2 = range / 65534 / 2, plus half a float32 unit in the last place.
    top = np.max(np.abs(original[np.isfinite(original)]), initial=0.0)
    return entry["scale"] / 2 + float(np.spacing(np.float32(top))) / 2


def pypng_read(path):
    w, h, rows, info = png.Reader(filename=str(path)).read()
    return np.vstack([np.asarray(r) for r in rows]).reshape(h, w, info["planes"]), info


@pytest.mark.parametrize("fmt", ["png", "exr"])
@pytest.mark.parametrize("size", [(2, 5, 7), (1, 1, 1), (3, 4, 33)])
def test_roundtrip_within_bounds(tmp_path, fmt, size):
    arrays = clip_arrays(*size)
    description = export_frames(tmp_path, arrays, fmt)
    description = json.loads(json.dumps(description))  # JSON-able, and read back from JSON
    back = read_frames(tmp_path, description)
    assert list(back) == list(arrays)
    for name, arr in arrays.items():
        got, entry = back[name], description[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape, name
        if arr.dtype.kind != "f":
            assert entry["file"] in ("png8", "png16") and np.array_equal(got, arr), name
        elif fmt == "exr":
            assert entry["file"] == "exr"
            assert got.tobytes() == arr.tobytes(), name  # exact, NaN included
        else:
            assert entry["file"] == "png16_range"
            nan = np.isnan(arr)
            assert np.array_equal(np.isnan(got), nan)
            err = np.max(np.abs(got[~nan].astype(np.float64) - arr[~nan]), initial=0.0)
            assert err <= png_tolerance(entry, arr), name
            if not nan.all():
                assert entry["scale"] == pytest.approx((np.nanmax(arr) - np.nanmin(arr)) / 65534)


def test_files_open_in_independent_readers(tmp_path):
    arrays = clip_arrays()
    description = export_frames(tmp_path, arrays, "png")
    assert sorted(p.name for p in (tmp_path / "depth").iterdir()) == ["00000.png", "00001.png"]
    # 8-bit: PIL reads the same pixels.
    assert np.array_equal(np.asarray(Image.open(tmp_path / "rgb" / "00001.png")), arrays["rgb"][1])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "liquid_mask" / "00000.png")), arrays["liquid_mask"][0])
    # 16-bit grey: pypng reads the same integers.
    inst, info = pypng_read(tmp_path / "instance" / "00001.png")
    assert info["bitdepth"] == 16 and info["greyscale"] and np.array_equal(inst[..., 0], arrays["instance"][1])
    # 16-bit flow: RGB, blue 0, code 0 where NaN, the documented formula gives the values back.
    entry = description["flow_fwd"]
    codes, info = pypng_read(tmp_path / entry["pattern"].format(frame=0))
    assert info["bitdepth"] == 16 and info["planes"] == 3 and not codes[..., 2].any()
    flow = arrays["flow_fwd"][0]
    assert entry["nan_code"] == 0 and np.all(codes[2, 3, :2] == 0)
    values = entry["offset"] + (codes[..., :2].astype(np.float64) - 1) * entry["scale"]
    ok = ~np.isnan(flow)
    assert np.max(np.abs(values[ok] - flow[ok])) <= png_tolerance(entry, arrays["flow_fwd"])


def test_exr_channels_and_nan(tmp_path):
    import OpenEXR

    arrays = clip_arrays()
    description = export_frames(tmp_path, arrays, "exr")
    assert description["flow_fwd"]["file_channels"] == ["R", "G"]
    assert description["depth"]["file_channels"] == ["Y"]
    with OpenEXR.File(str(tmp_path / "flow_fwd" / "00000.exr"), separate_channels=True) as f:
        ch = f.channels()
        assert sorted(ch) == ["G", "R"]
        assert ch["R"].pixels.dtype == np.float32 and np.isnan(ch["R"].pixels[2, 3])
        assert np.array_equal(ch["G"].pixels, arrays["flow_fwd"][0, ..., 1], equal_nan=True)
    assert description["rgb"]["file"] == "png8"  # integers stay PNG in an EXR export


def test_reader_takes_pngs_other_tools_wrote(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "pil.png")  # adaptive filters, Paeth among them
    assert np.array_equal(export.read_png(tmp_path / "pil.png"), rgb)
    grey16 = np.random.default_rng(2).integers(0, 65536, (6, 5), dtype=np.uint16)
    with open(tmp_path / "pypng.png", "wb") as fh:
        png.Writer(5, 6, greyscale=True, bitdepth=16).write(fh, grey16.tolist())
    assert np.array_equal(export.read_png(tmp_path / "pypng.png"), grey16)


def test_constant_and_all_nan_buffers(tmp_path):
    arrays = {"c": np.full((2, 3, 4), 2.5, np.float32), "n": np.full((1, 2, 2), np.nan, np.float32)}
    description = export_frames(tmp_path, arrays, "png")
    assert description["c"]["scale"] == 0.0
    back = read_frames(tmp_path, description)
    assert np.array_equal(back["c"], arrays["c"]) and np.isnan(back["n"]).all()


@pytest.mark.parametrize(
    "arrays,match",
    [
        ({"depth": np.array([[[1.0, np.inf]]], np.float32)}, "inf"),
        ({"x": np.zeros((2, 3, 4), np.int32)}, "dtype"),
        ({"x": np.zeros((3, 4), np.uint8)}, "shape"),
        ({"x": np.zeros((1, 3, 4, 5), np.uint8)}, "channels"),
        ({"../x": np.zeros((1, 3, 4), np.uint8)}, "name"),
    ],
)
def test_bad_buffers_refused_before_writing(tmp_path, arrays, match):
    ok = {"rgb": np.zeros((1, 2, 2, 3), np.uint8)}
    with pytest.raises(ValueError, match=match):
        export_frames(tmp_path / "out", {**ok, **arrays}, "png")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="format"):
        export_frames(tmp_path / "out", ok, "tiff")


def test_failure_midway_leaves_no_files(tmp_path, monkeypatch):
    arrays = clip_arrays(t=3)
    real = export.png_bytes
    calls = []

    def failing(image, level=export.PNG_LEVEL):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("disk full")
        return real(image, level)

    monkeypatch.setattr(export, "png_bytes", failing)
    (tmp_path / "out").mkdir()
    with pytest.raises(OSError, match="disk full"):
        export_frames(tmp_path / "out", arrays, "png")
    assert list((tmp_path / "out").rglob("*")) == []


def test_damaged_missing_or_mismatched_files_are_named(tmp_path):
    arrays = clip_arrays()
    description = export_frames(tmp_path, arrays, "exr")
    target = tmp_path / "instance" / "00001.png"
    target.write_bytes(target.read_bytes()[:-30])
    with pytest.raises(ExportError, match=r"instance/00001\.png"):
        read_frames(tmp_path, {"instance": description["instance"]})
    (tmp_path / "depth" / "00000.exr").write_bytes(b"not an exr")
    with pytest.raises(ExportError, match=r"depth/00000\.exr"):
        read_frames(tmp_path, {"depth": description["depth"]})
    (tmp_path / "rgb" / "00001.png").unlink()
    with pytest.raises(ExportError, match=r"rgb/00001\.png.*missing"):
        read_frames(tmp_path, {"rgb": description["rgb"]})
    wrong = {**description["liquid_mask"], "shape": [2, 9, 9]}
    with pytest.raises(ExportError, match="description"):
        read_frames(tmp_path, {"liquid_mask": wrong})


def test_png_writer_layouts_read_back_by_pypng(tmp_path):
    r = np.random.default_rng(3)
    for channels in (1, 2, 3, 4):
        for dtype in (np.uint8, np.uint16):
            info_max = np.iinfo(dtype).max
            shape = (3, 5) if channels == 1 else (3, 5, channels)
            image = r.integers(0, info_max, shape, dtype=dtype, endpoint=True)
            path = tmp_path / f"{channels}-{np.dtype(dtype).name}.png"
            path.write_bytes(export.png_bytes(image))
            got, info = pypng_read(path)
            assert info["planes"] == channels and info["bitdepth"] == 8 * np.dtype(dtype).itemsize
            assert np.array_equal(got.reshape(shape), image)
            assert np.array_equal(export.read_png(path), image)
