"""The buffer registry is the one statement of the buffer contract; everything else agrees with it."""

import re
from pathlib import Path

import numpy as np
import pytest

from hybrid import buffers as reg
from hybrid.io.preview import contact_sheet
from hybrid.io.visualize import visualize
from hybrid.scene.limits import BUFFER_BYTES_PER_PIXEL, FIELD_BUFFER_BYTES_PER_PIXEL

REPO = Path(__file__).resolve().parents[1]


def test_bytes_per_pixel_match_the_contract_by_hand():
    # rgb 3 x 1 + depth 4 + instance 2 + normal 3 x 4 + albedo 3 x 1 + two flows 2 x 4 each.
    assert sum(BUFFER_BYTES_PER_PIXEL.values()) == 3 + 4 + 2 + 12 + 3 + 8 + 8
    # gas_density 4 + gas_temperature 4 + liquid_mask 1 + liquid_thickness 4 + fluid_velocity 2 x 4
    # + heat_haze 2 x 4.
    assert FIELD_BUFFER_BYTES_PER_PIXEL == 4 + 4 + 1 + 4 + 8 + 8


def test_groups_and_clip_buffer_names():
    assert reg.names("core") == ("rgb", "depth", "instance", "normal", "albedo")
    assert reg.names("flow") == ("flow_fwd", "flow_bwd")
    assert reg.clip_buffer_names(False) == reg.names("core", "flow")
    assert set(reg.clip_buffer_names(True)) - set(reg.clip_buffer_names(False)) == set(reg.names("fields"))
    assert "rgb_raster" not in reg.clip_buffer_names(True)


def test_layout_and_empty_follow_the_entries():
    lay = reg.layout(["normal", "instance"], 4, 6, 8)
    assert lay == {"normal": ("float32", (4, 6, 8, 3)), "instance": ("uint16", (4, 6, 8))}
    zeros = reg.empty_buffers(reg.names("fields"), 2, 3, 5)
    for name, arr in zeros.items():
        b = reg.get(name)
        assert arr.dtype == np.dtype(b.dtype) and arr.shape == (2, 3, 5, *b.channels) and not arr.any()


def test_registering_twice_or_in_an_unknown_group_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        reg.register_buffer(reg.Buffer("depth", "float32", (), "m", "again", "core"))
    with pytest.raises(ValueError, match="group"):
        reg.register_buffer(reg.Buffer("toy_extra", "float32", (), "m", "x", "misc"))
    assert "toy_extra" not in reg.BUFFERS


def test_unknown_buffer_names_list_the_known_ones():
    with pytest.raises(KeyError, match="flow_fwd"):
        reg.get("flow")
    with pytest.raises(reg.BufferNameError, match=r"'flow'.*pick from rgb, depth"):
        reg.check_names(["rgb", "flow"], reg.names("core", "flow"), "--buffers")
    assert reg.check_names(["depth", "rgb", "depth"], reg.names("core"), "x") == ("depth", "rgb")


def test_a_new_buffer_is_one_registry_entry(monkeypatch):
    """A registered buffer gets its metadata line, its preview and a contact-sheet column with nothing else edited."""
    monkeypatch.setattr(reg, "BUFFERS", dict(reg.BUFFERS))
    seen = []

    def show(a):
        seen.append(a.shape)
        return np.full(a.shape + (3,), 200, np.uint8)

    reg.register_buffer(reg.Buffer("speed", "float32", (), "m/s", "surface speed", "core", preview=show))
    assert reg.docs(["speed"]) == {"speed": "float32 (T,H,W) surface speed"}
    assert visualize("speed", np.zeros((4, 5), np.float32))[0, 0].tolist() == [200, 200, 200]
    sheet = contact_sheet(
        {"rgb": np.zeros((2, 4, 5, 3), np.uint8), "speed": np.zeros((2, 4, 5), np.float32)}, columns=reg.preview_columns()
    )
    assert sheet.shape[1] == 2 * (5 + 2) + 2 and len(seen) == 3  # two columns; one view above, two in the sheet


def _readme_table(text: str, first_row: str) -> str:
    start = text.index(first_row)
    start = text.rindex("\n| buffer |", 0, start) + 1
    end = text.index("\n\n", start)
    return text[start:end]


@pytest.mark.parametrize(
    "group,first",
    [("core", "| `rgb` |"), ("flow", "| `flow_fwd` |"), ("fields", "| `gas_density` |"), ("hdr", "| `radiance` |")],
)
def test_readme_buffer_tables_are_the_registry(group, first):
    """README tables are generated from the registry: `python -m hybrid.buffers` prints them."""
    text = (REPO / "README.md").read_text()
    assert _readme_table(text, first) == reg.markdown_table(group)


def test_metadata_lists_the_buffers_it_holds():
    from hybrid.io.metadata import build_metadata  # noqa: F401  (its "buffers" entry comes from reg.docs)

    docs = reg.docs(reg.clip_buffer_names(True))
    assert list(docs) == [*reg.names("core"), *reg.names("flow"), *reg.names("fields")]
    for name, line in docs.items():
        b = reg.get(name)
        assert re.fullmatch(rf"{b.dtype} \(T,H,W(,\d)?\) .+", line), line
