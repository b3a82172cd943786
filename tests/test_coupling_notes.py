"""Notes on two-way coupled bodies too thin for the liquid's cells (hybrid.fields.coupling_notes)."""

import math

import pytest

from hybrid.cli import main
from hybrid.fields.coupling_notes import THIN_ERROR, WELL_RESOLVED, floating_draft, small_body_notes, thickness
from hybrid.scene import load_scene_text

TANK = """
name: tank
objects:
  - name: floor
    shape: {{type: plane}}
    physics: {{body: static}}
  - name: crate
    shape: {crate}
    position: [0.0, 0.0, 0.3]
    physics: {{density: {density}, body: {body}}}
fields:
  coupling: {coupling}
  liquid:
    domain: {{min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, 0.6]}}
    resolution: {resolution}
    fill:
      - {{min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, 0.2]}}
"""


def _scene(crate="{type: box, size: [0.15, 0.15, 0.15]}", body="dynamic", coupling="two_way", resolution=20, density=500):
    text = TANK.format(crate=crate, body=body, coupling=coupling, resolution=resolution, density=density)
    return load_scene_text(text, "tank.yaml")


@pytest.mark.parametrize("shape, width", [
    ("{type: box, size: [0.3, 0.1, 0.2]}", 0.1),
    ("{type: sphere, radius: 0.07}", 0.14),
    ("{type: cylinder, radius: 0.1, length: 0.05}", 0.05),
    ("{type: cylinder, radius: 0.04, length: 0.3}", 0.08),
    ("{type: capsule, radius: 0.05, length: 0.2}", 0.1),
])
def test_thickness_is_the_smallest_width(shape, width):
    obj = _scene(crate=shape).objects[1]
    assert thickness(obj) == pytest.approx(width, rel=1e-6)


def test_thickness_of_a_mesh_is_its_hulls_smallest_width(tmp_path):
    # A box 0.1 x 0.2 x 0.3 m written as triangles: the hull's face normals include the axes.
    v = [(x, y, z) for x in (0, 0.1) for y in (0, 0.2) for z in (0, 0.3)]
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    lines = [f"v {x} {y} {z}" for x, y, z in v]
    lines += [f"f {a + 1} {b + 1} {c + 1}\nf {a + 1} {c + 1} {d + 1}" for a, b, c, d in quads]
    (tmp_path / "brick.obj").write_text("\n".join(lines) + "\n")
    text = TANK.format(crate="{type: mesh, file: brick.obj}", body="dynamic", coupling="two_way", resolution=20,
                       density=500)
    scene = load_scene_text(text, str(tmp_path / "tank.yaml"))
    assert thickness(scene.objects[1]) == pytest.approx(0.1, rel=1e-6)


def test_floating_draft_is_archimedes_for_a_box_and_the_thickness_when_it_sinks():
    draft, width = floating_draft(_scene(crate="{type: box, size: [0.3, 0.1, 0.2]}").objects[1], 1000.0)
    assert width == pytest.approx(0.1) and draft == pytest.approx(0.05)  # 500 / 1000 of 0.1 m
    draft, width = floating_draft(_scene(density=2500).objects[1], 1000.0)
    assert draft == width


def test_a_thin_floating_body_gets_a_note_that_names_it_and_the_fix():
    # 0.6 m / 20 = 3 cm cells: a 0.15 m crate of density 500 is 5 cells thick.
    notes = small_body_notes(_scene())
    assert len(notes) == 1
    note = notes[0]
    assert note.startswith("objects[1] 'crate' is 5.0 cells of the liquid's 3 cm grid")
    assert f"up to {THIN_ERROR:.0%}" in note
    needed = math.ceil(WELL_RESOLVED * 0.6 / 0.15)
    assert f"resolution to {needed}" in note
    # The fix it names clears it: at that resolution the crate is WELL_RESOLVED cells across, one less is not.
    assert small_body_notes(_scene(resolution=needed)) == []
    assert small_body_notes(_scene(resolution=needed - 1)) != []


def test_no_note_for_a_body_that_sinks():
    assert small_body_notes(_scene(density=1500)) == []


def test_no_note_where_the_liquid_does_not_push_the_body():
    assert small_body_notes(_scene(body="static")) == []
    assert small_body_notes(_scene(body="kinematic")) == []
    assert small_body_notes(_scene(coupling="one_way")) == []


def test_validate_prints_the_note_and_still_passes(tmp_path, capsys):
    path = tmp_path / "tank.yaml"
    path.write_text(TANK.format(crate="{type: box, size: [0.15, 0.15, 0.15]}", body="dynamic", coupling="two_way",
                                resolution=20, density=500))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"note: {path}: objects[1] 'crate' is 5.0 cells" in out
