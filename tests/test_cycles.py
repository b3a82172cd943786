"""The Cycles beauty back end: the scene it builds, its camera, its light units and its alignment with the exact buffers.

Every render here is tiny (at most 128x96 pixels, a few samples) so the file stays
in the fast suite. Expected values come from the mapping's definitions (light units,
pinhole projection) and from the rasteriser's exact buffers, never from an earlier run.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from hybrid.camera import camera_track, intrinsics
from hybrid.cli import main
from hybrid.io.clip import read_clip
from hybrid.pipeline import simulate
from hybrid.render.backends import BeautyChoice, BeautyOptionsError, beauty_options
from hybrid.render.cycles.build import MappingError, camera_settings, spot_blend
from hybrid.render.cycles.options import CyclesOptions
from hybrid.render.materials import display_to_linear
from hybrid.render.raster import Rasterizer
from hybrid.scene.load import load_scene, load_scene_text
from hybrid.state import State

REPO = Path(__file__).resolve().parents[1]
bpy = pytest.importorskip("bpy", reason="Blender as a Python module (pip install 'hybrid[cycles]') is not installed")

from hybrid.render.cycles.renderer import CyclesRenderer, CyclesUnavailable, import_bpy  # noqa: E402

QUICK = CyclesOptions(samples=4, denoise=False, threads=1)


def _scene(body: str, resolution=(64, 48), extra: str = ""):
    text = f"name: t\nframes: 1\nresolution: [{resolution[0]}, {resolution[1]}]\nbackground: [0, 0, 0]\n{body}\n{extra}"
    return load_scene_text(text, str(REPO / "scenes" / "t.yaml"))


def _rest_state(scene) -> State:
    """Frame 0 with every object at its initial pose (no physics needed for a still)."""
    from hybrid.transforms import rotation_quat

    n = len(scene.objects)
    return State(
        frame=0,
        time_s=0.0,
        names=tuple(o.name for o in scene.objects),
        position=np.array([o.position for o in scene.objects], dtype=np.float64).reshape(n, 3),
        quaternion=np.array([rotation_quat(o.rotation_deg, o.quaternion) for o in scene.objects]).reshape(n, 4),
        linear_velocity=np.zeros((n, 3)),
        angular_velocity=np.zeros((n, 3)),
    )


# ---------------------------------------------------------------- the scene bpy holds


LOOKS = """
camera: {position: [0, -4, 1], look_at: [0, 0, 0.5], fov_deg: 50, near: 0.1, far: 40}
lights:
  - {type: ambient, color: [0.5, 0.6, 0.7], intensity: 0.4}
  - {type: ambient, color: [1, 1, 1], intensity: 0.1}
  - {type: directional, direction: [0.3, -0.2, -1], intensity: 2.5, angular_diameter_deg: 4, color: [1, 0.9, 0.8]}
  - {type: point, position: [1, 2, 3], intensity: 7}
  - {type: spot, position: [0, 0, 4], look_at: [0, 0, 0], intensity: 30, inner_cone_deg: 10, outer_cone_deg: 25, shadows: false}
objects:
  - name: plain
    shape: {type: box, size: [1, 1, 1]}
    physics: {body: static}
    look: {color: [0.2, 0.4, 0.6], metallic: 0.3, roughness: 0.7}
  - name: glass
    shape: {type: sphere, radius: 0.5}
    position: [1.5, 0, 0.5]
    physics: {body: static}
    look: {color: [0.9, 0.95, 1.0], roughness: 0.05, transmission: 1.0, ior: 1.33}
  - name: lamp
    shape: {type: capsule, radius: 0.1, length: 0.5}
    position: [-1.5, 0, 0.5]
    physics: {body: static}
    look: {color: [0, 0, 0], emission: [1, 0.5, 0.25], emission_strength: 3}
  - name: floor
    shape: {type: plane, size: [10, 10]}
    physics: {body: static}
    look: {texture: assets/checker.png}
"""


def test_every_look_field_reaches_the_principled_bsdf():
    scene = _scene(LOOKS)
    with CyclesRenderer(scene, QUICK) as r:
        for obj, ob in zip(scene.objects, r.built.objects):
            assert ob.name == obj.name and ob.pass_index == scene.objects.index(obj) + 1
            bsdf = ob.data.materials[0].node_tree.nodes["Principled BSDF"]
            look = obj.look
            got = lambda name: bsdf.inputs[name].default_value  # noqa: E731
            assert np.allclose(got("Base Color")[:3], display_to_linear(look.color), atol=1e-6)
            assert got("Metallic") == pytest.approx(look.metallic)
            assert got("Roughness") == pytest.approx(look.roughness)
            assert got("Transmission Weight") == pytest.approx(look.transmission)
            assert got("IOR") == pytest.approx(look.ior)
            assert np.allclose(got("Emission Color")[:3], display_to_linear(look.emission), atol=1e-6)
            assert got("Emission Strength") == pytest.approx(look.emission_strength)
            linked = bsdf.inputs["Base Color"].links
            if look.texture:
                mix = linked[0].from_node
                tex = mix.inputs[7].links[0].from_node
                assert Path(tex.image.filepath).resolve() == Path(look.texture).resolve()
                assert tex.image.colorspace_settings.name == "sRGB"
            else:
                assert not linked


def test_lights_world_and_camera_carry_the_scene_units():
    scene = _scene(LOOKS)
    with CyclesRenderer(scene, QUICK) as r:
        sun, point, spot = (ob.data for ob in r.built.lights)
        d = scene.lights[2]
        assert (sun.type, sun.energy) == ("SUN", pytest.approx(2.5))
        assert sun.angle == pytest.approx(math.radians(4))
        assert np.allclose(sun.color, display_to_linear(d.color), atol=1e-6)
        # The sun shines along its local -z: that must be the light's direction.
        travel = -np.array(r.built.lights[0].matrix_world.to_3x3())[:, 2]
        assert np.allclose(travel, np.array(d.direction) / np.linalg.norm(d.direction), atol=1e-6)
        assert point.energy == pytest.approx(4 * math.pi * 7) and point.shadow_soft_size == 0
        assert not point.use_shadow
        assert spot.spot_size == pytest.approx(math.radians(50))
        assert spot.spot_blend == pytest.approx(spot_blend(10, 25))
        # World: the ambient lights summed (linear), the background for camera rays.
        nodes = r.built.world.node_tree.nodes
        colors = sorted(tuple(n.inputs["Color"].default_value)[:3] for n in nodes if n.type == "BACKGROUND")
        ambient = display_to_linear([0.5, 0.6, 0.7]) * 0.4 + display_to_linear([1, 1, 1]) * 0.1
        assert np.allclose(colors[0], [0, 0, 0]) and np.allclose(colors[1], ambient, atol=1e-6)
        cam = r.built.camera.data
        assert cam.clip_start == pytest.approx(0.1) and cam.clip_end == pytest.approx(40)


def test_spot_blend_starts_full_brightness_at_the_inner_cone():
    c_out = math.cos(math.radians(30))
    blend = spot_blend(15, 30)
    assert c_out + blend * (1 - c_out) == pytest.approx(math.cos(math.radians(15)))
    assert spot_blend(0, 30) == pytest.approx(1.0)


def test_camera_settings_reproduce_k():
    K = np.array([[100.0, 0, 40.0], [0, 100.0, 30.0], [0, 0, 1]])
    s = camera_settings(K, 64, 48)
    assert s["lens"] * 64 / s["sensor_width"] == pytest.approx(100.0)
    assert s["shift_x"] == pytest.approx((32 - 40) / 64) and s["shift_y"] == pytest.approx((30 - 24) / 64)
    with pytest.raises(MappingError, match="skewed"):
        camera_settings(np.array([[100.0, 5, 32], [0, 100, 24], [0, 0, 1]]), 64, 48)


# ---------------------------------------------------------------- camera: a known point lands where K says


MARKER = """
camera: {position: [0, -3, 0], look_at: [0, 0, 0], fov_deg: 40}
lights: [{type: ambient, intensity: 1}]
objects:
  - name: marker
    shape: {type: sphere, radius: 0.12}
    position: [0.35, 0.0, -0.2]
    physics: {body: static}
"""


@pytest.mark.parametrize("principal", [None, (50.0, 60.0)], ids=["centred", "shifted"])
def test_a_known_point_projects_to_the_pixel_k_gives(principal):
    """The marker's pixels are centred on K's projection of its centre (pinhole, pixel centres at +0.5).

    filter_width 0.01 puts every sample at its pixel's centre, so the index pass covers the
    pixel centres inside the sphere's image: their centroid lies within 0.15 px of the
    image's centre for a disc about 10 px across (a half-pixel imbalance along the rim,
    weighted by the rim's share of the disc), and the image's centre is off the
    projected centre by about (r/d)^2 x its distance from the principal point, under
    0.05 px here. A wrong shift or focal length moves it by whole pixels.
    """
    scene = _scene(MARKER, resolution=(128, 96))
    state = _rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    K = intrinsics(40, 128, 96)
    if principal is not None:
        K[0, 2], K[1, 2] = principal
    opts = CyclesOptions(samples=1, denoise=False, filter_width=0.01, threads=1)
    with CyclesRenderer(scene, opts) as r:
        passes = r.render_passes(state, cam, K=K)
    p_cam = np.linalg.inv(cam) @ np.array([0.35, 0.0, -0.2, 1.0])
    u, v = K[0, 0] * p_cam[0] / p_cam[2] + K[0, 2], K[1, 1] * p_cam[1] / p_cam[2] + K[1, 2]
    rows, cols = np.nonzero(passes["instance"] == 1)
    assert len(rows) > 30
    assert cols.mean() + 0.5 == pytest.approx(u, abs=0.15)
    assert rows.mean() + 0.5 == pytest.approx(v, abs=0.15)


# ---------------------------------------------------------------- alignment with the exact buffers


@pytest.mark.parametrize("name", ["bouncing_balls", "dominoes"])
def test_index_and_depth_passes_agree_with_the_exact_buffers(name):
    """Issue 13, item 4: ids equal on >= 99.5 % of pixels away from edges, depth within 1e-3 relative."""
    scene = load_scene(REPO / "scenes" / f"{name}.yaml", {"resolution": [64, 64], "frames": 6})
    states = simulate(scene)
    track = camera_track(scene)
    with Rasterizer(scene) as raster, CyclesRenderer(scene, QUICK) as cycles:
        for k in (0, len(states) - 1):
            exact = raster.render(states[k], track.cam_to_world[k], beauty=False)
            traced = cycles.render_passes(states[k], track.cam_to_world[k])
            inner, agree, rel = _alignment(exact, traced)
            assert inner > 0.5 and agree >= 0.995 and rel <= 1e-3


def _alignment(exact: dict, traced: dict, exclude=None) -> tuple[float, float, float]:
    """(fraction of inner pixels, fraction of them with equal ids, largest relative depth error on inner hits).

    Inner pixels: the 3x3 neighbourhood in the exact instance buffer holds one id and
    none of it is in `exclude` (pixels the exact buffers do not describe as surfaces).
    """
    ids = exact["instance"].astype(np.int32)
    pad = np.pad(ids, 1, mode="edge")
    inner = (np.lib.stride_tricks.sliding_window_view(pad, (3, 3)) == ids[..., None, None]).all(axis=(-1, -2))
    if exclude is not None:
        near = np.pad(exclude, 1, mode="constant")
        inner &= ~np.lib.stride_tricks.sliding_window_view(near, (3, 3)).any(axis=(-1, -2))
    agree = float((traced["instance"][inner] == ids[inner]).mean())
    hit = inner & (ids > 0)
    rel = float(np.abs(traced["depth"][hit] / exact["depth"][hit] - 1.0).max()) if hit.any() else 0.0
    assert np.array_equal(traced["depth"][inner] == 0, exact["depth"][inner] == 0)  # 0: nothing hit
    return float(inner.mean()), agree, rel


SCENE_FILES = sorted((REPO / "scenes").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", SCENE_FILES, ids=lambda p: p.stem)
def test_every_example_scene_renders_in_cycles_aligned_with_its_exact_buffers(path):
    """Issue 13, items 4 and 7, on every example scene: its first frame and frame 24 (fields under way).

    Pixels whose view ray crosses a field, and their neighbours, are left out: liquid is
    not an instance (its own field buffers describe it), and where a path scatters in
    smoke before reaching the surface behind, Cycles writes its depth and index passes
    as if the ray had missed (0), while the exact buffers keep describing that surface.
    """
    base = load_scene(path)
    width = 96
    height = max(8, round(width * base.height / base.width))
    scene = load_scene(path, {"resolution": [width, height], "frames": min(base.frame_count, 25)})
    states = simulate(scene)
    track = camera_track(scene)
    with Rasterizer(scene) as raster, CyclesRenderer(scene, QUICK) as cycles:
        for k in (0, len(states) - 1):
            exact = raster.render(states[k], track.cam_to_world[k])
            traced = cycles.render_passes(states[k], track.cam_to_world[k])
            assert traced["hdr"].shape == (height, width, 3) and np.isfinite(traced["hdr"]).all()
            fluid = np.zeros((height, width), bool)
            if "liquid_mask" in exact:
                fluid |= exact["liquid_mask"].astype(bool)
            if "gas_density" in exact:
                fluid |= exact["gas_density"] > 0
            inner, agree, rel = _alignment(exact, traced, fluid)
            # At least a fifth of the frame compared (over 1,000 pixels at 96 wide, so one
            # disagreeing pixel is under 0.1 %); wind_tunnel's smoke leaves 41 % at frame 24.
            assert inner > 0.2, f"frame {k}: only {inner:.0%} of the pixels are away from edges and fields"
            assert agree >= 0.995, f"frame {k}: ids agree on {agree:.2%} of the inner pixels"
            assert rel <= 1e-3, f"frame {k}: depth off by {rel:.2e} relative"


# ---------------------------------------------------------------- radiometry


EMITTER = """
camera: {position: [0, -3, 0], look_at: [0, 0, 0], fov_deg: 30}
lights: []
objects:
  - name: lamp
    shape: {type: sphere, radius: 0.4}
    physics: {body: static}
    look: {color: [0, 0, 0], roughness: 1, emission: [1, 0.5, 0.25], emission_strength: 2.0}
"""


def test_an_emissive_sphere_shows_its_radiance_in_both_back_ends():
    """Radiance = decoded emission colour x strength where the camera sees the sphere (black base, black world)."""
    scene = _scene(EMITTER)
    state = _rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    want = display_to_linear([1, 0.5, 0.25]) * 2.0
    with CyclesRenderer(scene, QUICK) as r:
        p = r.render_passes(state, cam)
    inside = p["instance"] == 1
    interior = inside & np.roll(inside, 2, 0) & np.roll(inside, -2, 0) & np.roll(inside, 2, 1) & np.roll(inside, -2, 1)
    # Emission seen directly is not sampled: every path adds it exactly. The only other
    # light is the sphere's own: its smooth shading normals tilt a few reflected paths
    # (through the 4 % dielectric lobe) onto neighbouring facets, adding under 1e-3.
    assert np.allclose(p["hdr"][interior], want, rtol=1e-3)
    assert np.all(p["hdr"][interior] >= want * (1 - 1e-6))
    # Beyond the pixel filter's reach (1.5 px wide) around the sphere: the black world.
    near = inside.copy()
    for axis in (0, 1):
        for shift in (-2, -1, 1, 2):
            near |= np.roll(inside, shift, axis)
    assert np.all(p["hdr"][~near] == 0.0)
    with Rasterizer(scene) as raster:
        hdr = raster.render(state, cam, hdr=True)["hdr"]
    assert np.allclose(hdr[interior], want, rtol=1e-3)


def test_the_hdr_output_holds_the_emitted_radiance(tmp_path):
    """`hybrid render --renderer cycles --hdr`: the clip's radiance buffer shows the emitter's radiance, unclamped.

    Radiance 2 x (1, 0.5, 0.25) decoded exceeds 1 in red, which rgb clips; the float
    buffer keeps it (compact storage: 13 mantissa bits, 6.1e-5 relative, inside 1e-3).
    """
    scene = tmp_path / "emitter.yaml"
    scene.write_text(f"name: emitter\nframes: 1\nresolution: [64, 48]\nbackground: [0, 0, 0]\n{EMITTER}")
    out = tmp_path / "clip"
    assert main(["render", str(scene), "--out", str(out), "-q", "--renderer", "cycles", "--samples", "4",
                 "--no-denoise", "--hdr"]) == 0
    clip = read_clip(out)
    want = display_to_linear([1, 0.5, 0.25]) * 2.0
    inside = clip.buffers["instance"][0] == 1
    interior = inside & np.roll(inside, 2, 0) & np.roll(inside, -2, 0) & np.roll(inside, 2, 1) & np.roll(inside, -2, 1)
    radiance = clip.buffers["radiance"][0]
    assert want[0] > 1 and np.allclose(radiance[interior], want, rtol=1e-3)
    assert np.all(clip.buffers["rgb"][0][interior][:, 0] == 255)
    # The raster back end keeps its radiance the same way; the neural renderer has none to keep.
    assert main(["render", str(scene), "--out", str(tmp_path / "raster"), "-q", "--hdr"]) == 0
    assert np.allclose(read_clip(tmp_path / "raster").buffers["radiance"][0][interior], want, rtol=1e-3)
    assert main(["render", str(scene), "--out", str(tmp_path / "n"), "-q", "--hdr", "--renderer", "neural"]) == 2


SUN = """
camera: {position: [0, 0, 3], quaternion: [1, 0, 0, 0], fov_deg: 20}
lights:
  - {type: directional, direction: [%s, 0, -1], intensity: %s, shadows: false}
objects:
  - name: ground
    shape: {type: plane, size: [20, 20]}
    physics: {body: static}
    look: {color: [1, 1, 1], roughness: 1, ior: 1.0}
"""


def _gltf_radiance(E: float, n, v, l, roughness: float) -> float:
    """The rasteriser's BRDF (shaders/beauty.frag, glTF metallic-roughness, F0 0.04) for one light, written out."""
    n, v, l = (np.asarray(x, dtype=np.float64) / np.linalg.norm(x) for x in (n, v, l))
    h = (l + v) / np.linalg.norm(l + v)
    nl, nv, nh, vh = max(n @ l, 0.001), max(abs(n @ v), 0.001), max(n @ h, 0.0), max(v @ h, 0.0)
    F = 0.04 + 0.96 * (1 - vh) ** 5
    k = (roughness + 1) ** 2 / 8
    G = nv / (nv * (1 - k) + k) * nl / (nl * (1 - k) + k)
    a2 = roughness**4
    D = a2 / (math.pi * (nh * nh * (a2 - 1) + 1) ** 2)
    c_diff = 1.0 - 0.04  # white base colour, dielectric: glTF keeps 1 - F0 of it for diffuse
    return nl * E * ((1 - F) * c_diff / math.pi + F * G * D / (4 * nl * nv + 0.001))


@pytest.mark.parametrize("slope, intensity", [(0.0, 3.0), (1.0, 2.0)])
def test_a_directional_light_gives_the_lambertian_radiance(slope, intensity):
    """Both back ends read `intensity` as the irradiance E on a surface facing the light.

    Cycles: a white principled surface with IOR 1 has no specular layer, so it is
    Lambertian and shows E cos(theta) / pi. The light is a point on the sky and nothing
    else is in the world, so every sample returns the same value: only float rounding
    remains (1e-4). The rasteriser: its BRDF written out for this geometry (the camera
    looks straight down at the centre pixel; F0 0.04 takes about 8 % off the diffuse and
    adds a broad specular lobe). Its HDR target holds half floats, which this GL rounds
    toward zero: one unit in the last place, at most 2^-10 relative.
    """
    scene = _scene(SUN % (slope, intensity))
    state = _rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    cos = 1.0 / math.hypot(slope, 1.0)
    with CyclesRenderer(scene, CyclesOptions(samples=16, denoise=False, threads=1)) as r:
        traced = r.render_passes(state, cam)["hdr"]
    assert np.allclose(traced, intensity * cos / math.pi, rtol=1e-4)
    with Rasterizer(scene) as raster:
        rastered = raster.render(state, cam, hdr=True)["hdr"]
    want = _gltf_radiance(intensity, (0, 0, 1), (0, 0, 1), (-slope, 0, 1), 1.0)
    assert np.allclose(rastered[23:25, 31:33], want, rtol=2.0**-10)


AMBIENT_FLOOR = """
camera: {position: [0, -3, 1.2], look_at: [0, 0, 0], fov_deg: 45}
lights: [{type: ambient, intensity: %s}]
objects:
  - {name: floor, shape: {type: plane, size: [30, 30]}, physics: {body: static}, look: {color: %s, roughness: %s}}
"""


@pytest.mark.parametrize("roughness", [0.4, 0.95])
def test_ambient_light_is_reflected_by_both_back_ends(roughness):
    """A floor under ambient light of radiance L alone (the world's colour in Cycles), seen from 3.2 m
    away and 1.2 m up; the lower half of the view (rows 28 to 47, 1280 pixels) is compared.

    White: both conserve energy. The rasteriser's split sum gives (1 - S) L + S L = L exactly
    (half-float rounding, 2^-10); Cycles' principled BSDF returns what its diffuse and specular
    layers together do not absorb, which is all of it for a white base: L within its sampling
    noise over the region's 1280 pixels (64 spp, under 0.5 %).
    Black: only the specular layer reflects. The rasteriser's S L is the GGX specular albedo
    for single scattering with Schlick's Fresnel (Lazarov's fit), a lower bound on Cycles'
    multiple-scattering microfacet BSDF, and positive: before the split sum it was 0, the
    floor under a bright sky came out black."""
    L = 0.8
    for color, check in (("[1, 1, 1]", "white"), ("[0, 0, 0]", "black")):
        scene = _scene(AMBIENT_FLOOR % (L, color, roughness))
        state = _rest_state(scene)
        cam = camera_track(scene).cam_to_world[0]
        with CyclesRenderer(scene, CyclesOptions(samples=64, denoise=False, threads=1)) as r:
            traced = r.render_passes(state, cam)["hdr"][28:48].mean((0, 1))
        with Rasterizer(scene) as raster:
            rastered = raster.render(state, cam, hdr=True)["hdr"][28:48].mean((0, 1))
        if check == "white":
            np.testing.assert_allclose(rastered, L, rtol=2.0**-10)
            np.testing.assert_allclose(traced, L, rtol=5e-3)
        else:
            assert np.all(rastered > 0.01 * L) and np.all(rastered <= traced * 1.005)


def test_the_neural_renderers_pixel_filter_turns_a_raster_edge_into_cycles_edge():
    """An emissive plane (radiance 1) fills the right half of a head-on view, its edge on a pixel boundary.
    The rasteriser's box-filtered pixels step from 0 to 1; Cycles' Blackman-Harris window (filter_width
    1.5, spanning 3 px) gives the pixels beside the edge 0.1186 and 0.8814 of the step, and the raster
    row filtered with ``hybrid.neural.pixel_filter`` must match it. Only the pixel-filter sample
    positions are random: at 256 paths a pixel's fraction has a standard deviation of
    sqrt(0.12 x 0.88 / 256) = 0.020, 0.005 over the 16 rows averaged, so 0.02 is four of them."""
    from hybrid.neural.pixel_filter import match_pixel_filter

    width, span, height = 32, 2.0, 10.0
    fov = 2 * math.degrees(math.atan(span / 2 / height))
    scene = _scene(
        f"camera: {{position: [0, 0, {height}], quaternion: [1, 0, 0, 0], fov_deg: {fov}}}\nlights: []\n"
        "objects:\n  - {name: lamp, shape: {type: box, size: [4, 4, 0.01]}, position: [2, 0, 0], "
        "physics: {body: static}, look: {color: [0, 0, 0], emission: [1, 1, 1], emission_strength: 1}}",
        resolution=(width, 16),
    )
    state = _rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    with CyclesRenderer(scene, CyclesOptions(samples=256, denoise=False, threads=1, filter_width=1.5)) as r:
        traced = r.render_passes(state, cam)["hdr"][..., 0].mean(0)
    with Rasterizer(scene) as raster:
        frame = raster.render(state, cam)["rgb"]
    raster_row = (frame[..., 0].astype(np.float64) / 255.0) ** 2.2
    lit = np.flatnonzero(raster_row.mean(0) > 0.5)
    assert set(np.unique(np.round(raster_row, 6))) <= {0.0, 1.0}, "the edge must fall on a pixel boundary"
    edge = lit[0] if lit[0] > 0 else lit[-1] + 1  # first lit column, or first dark one if the image is mirrored
    filtered = (match_pixel_filter(frame.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1.0, 1.5) + 1) / 2
    filtered_row = (filtered[0, 0].astype(np.float64) ** 2.2).mean(0)
    near = slice(edge - 3, edge + 3)
    np.testing.assert_allclose(filtered_row[near], traced[near], atol=0.02)
    assert min(traced[edge - 1], traced[edge]) == pytest.approx(0.1186, abs=0.02)


def test_a_point_light_gives_i_over_d_squared():
    """Irradiance I / d^2 under a point light of intensity I straight above at height d: radiance I / (pi d^2)."""
    text = """
camera: {position: [0, 0, 3], quaternion: [1, 0, 0, 0], fov_deg: 2}
lights: [{type: point, position: [0, 0, 2], intensity: 6}]
objects:
  - {name: ground, shape: {type: plane, size: [20, 20]}, physics: {body: static}, look: {color: [1, 1, 1], roughness: 1, ior: 1.0}}
"""
    scene = _scene(text)
    state = _rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    with CyclesRenderer(scene, CyclesOptions(samples=64, denoise=False, threads=1)) as r:
        traced = r.render_passes(state, cam)["hdr"].mean()
    # 2 degrees of view: the floor seen is within 0.035 m of the axis, where the cos^3
    # falloff is under 0.1 %; a point light is sampled exactly, so no noise remains.
    assert traced == pytest.approx(6 / 4 / math.pi, rel=2e-3)


def _square_irradiance(intensity: float, side: float, d: float) -> float:
    """Irradiance on the axis of a Lambertian square of on-axis intensity I, side a, at distance d.

    Radiance L = I / a^2; the view factor from a point to a parallel rectangle with one
    corner above it, sides X d and Y d, is
    (1 / 2 pi) [X / sqrt(1 + X^2) atan(Y / sqrt(1 + X^2)) + Y / sqrt(1 + Y^2) atan(X / sqrt(1 + Y^2))];
    four such quarters (X = Y = a / 2d) make the square, and E = pi L F.
    """
    x = side / 2 / d
    quarter = 1 / (2 * math.pi) * 2 * x / math.sqrt(1 + x * x) * math.atan(x / math.sqrt(1 + x * x))
    return math.pi * intensity / side**2 * 4 * quarter


@pytest.mark.parametrize("distance", [2.0, 4.0])
def test_an_area_light_gives_i_over_d_squared_on_its_axis_in_both_back_ends(distance):
    """A 0.2 m square light of on-axis intensity I facing a matte floor from height d.

    Cycles must show the exact irradiance of a Lambertian square (``_square_irradiance``,
    0.3 % below I / d^2 at d = 2) over pi. The camera sees the floor within 0.035 m of
    the axis, where the irradiance falls by at most about 2 (0.035 / d)^2 = 0.06 %; 256
    samples per pixel leave a standard error of the mean below 1e-4: 2e-3 bounds both.
    The rasteriser's stand-in is a spot light at the centre: I / d^2 exactly on the axis,
    shaded by its glTF BRDF as in the directional test.
    """
    text = f"""
camera: {{position: [0, 0, {distance + 1}], quaternion: [1, 0, 0, 0], fov_deg: 2}}
lights: [{{type: area, position: [0, 0, {distance}], look_at: [0, 0, 0], size: [0.2, 0.2], intensity: 5}}]
objects:
  - {{name: ground, shape: {{type: plane, size: [20, 20]}}, physics: {{body: static}}, look: {{color: [1, 1, 1], roughness: 1, ior: 1.0}}}}
"""
    scene = _scene(text)
    state = _rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    want = _square_irradiance(5, 0.2, distance) / math.pi
    with CyclesRenderer(scene, CyclesOptions(samples=256, denoise=False, threads=1)) as r:
        assert r.built.lights[0].data.energy == pytest.approx(5 * math.pi)
        traced = r.render_passes(state, cam)["hdr"].mean()
    assert traced == pytest.approx(want, rel=2e-3)
    with Rasterizer(scene) as raster:
        rastered = raster.render(state, cam, hdr=True)["hdr"].mean()
    # Its BRDF (F0 0.04, the glTF diffuse 1 - F0) as in the directional test, straight down.
    assert rastered == pytest.approx(_gltf_radiance(5 / distance**2, (0, 0, 1), (0, 0, 1), (0, 0, 1), 1.0), rel=2e-3)


# ---------------------------------------------------------------- reproducibility, errors, the CLI


def test_the_same_options_give_the_same_bytes():
    scene = _scene(LOOKS)
    state = _rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    opts = CyclesOptions(samples=4, denoise=True, threads=2, seed=3)
    frames = []
    for _ in range(2):
        with CyclesRenderer(scene, opts) as r:
            frames.append(r.render_hdr(state, cam))
    assert frames[0].tobytes() == frames[1].tobytes()
    with CyclesRenderer(scene, opts.model_copy(update={"seed": 4})) as r:
        assert r.render_hdr(state, cam).tobytes() != frames[0].tobytes()


def test_one_renderer_at_a_time_and_a_clear_error_without_bpy(monkeypatch):
    scene = _scene(EMITTER)
    with CyclesRenderer(scene, QUICK):
        with pytest.raises(Exception, match="already open in this process"):
            CyclesRenderer(scene, QUICK)
    monkeypatch.setitem(sys.modules, "bpy", None)
    with pytest.raises(CyclesUnavailable, match=r"pip install 'hybrid\[cycles\]'.*--renderer raster"):
        import_bpy()


def test_settings_are_checked():
    with pytest.raises(BeautyOptionsError, match="samples"):
        beauty_options(BeautyChoice("cycles", {"samples": 0}))
    with pytest.raises(BeautyOptionsError, match="takes no settings"):
        beauty_options(BeautyChoice("raster", {"samples": 4}))


def test_render_cli_writes_a_path_traced_clip_with_the_exact_buffers(tmp_path, capsys):
    out = tmp_path / "clip"
    args = ["render", str(REPO / "scenes" / "bouncing_balls.yaml"), "--out", str(out), "--frames", "2",
            "--resolution", "48x32", "-q"]
    assert main([*args, "--renderer", "cycles", "--samples", "2", "--no-denoise"]) == 0
    raster_out = tmp_path / "raster"
    assert main([*args[:3], str(raster_out), *args[4:]]) == 0
    traced, exact = read_clip(out), read_clip(raster_out)
    for name in ("depth", "instance", "normal", "albedo", "flow_fwd", "flow_bwd"):
        assert np.array_equal(traced.buffers[name], exact.buffers[name]), name
    assert not np.array_equal(traced.buffers["rgb"], exact.buffers["rgb"])
    assert (out / "rgb.mp4").is_file()
    # Cycles settings without the cycles renderer: refused before anything is written.
    bad = tmp_path / "bad"
    assert main([*args[:3], str(bad), *args[4:], "--samples", "8"]) == 2
    assert "belong to the cycles renderer" in capsys.readouterr().err and not bad.exists()


# ---------------------------------------------------------------- datasets


def _recipe(tmp_path: Path, beauty: str) -> Path:
    text = (REPO / "datasets" / "movi_a.yaml").read_text()
    text = text.replace("frames: 24", "frames: 3").replace("resolution: [256, 256]", "resolution: [40, 32]")
    path = tmp_path / f"recipe_{len(beauty)}.yaml"
    path.write_text(text + (f"\nbeauty: {beauty}\n" if beauty else ""))
    return path


def test_a_path_traced_dataset_holds_cycles_rgb_next_to_the_raster_beauty(tmp_path):
    """rgb from Cycles; rgb_raster and every exact buffer equal to the same clip of the raster recipe."""
    from hybrid.data.generate import generate
    from hybrid.data.shards import read_shard
    from hybrid.data.verify import verify_dataset

    traced_dir, raster_dir = tmp_path / "traced", tmp_path / "raster"
    recipe = _recipe(tmp_path, "{type: cycles, samples: 2, denoise: false, threads: 1}")
    generate(recipe, traced_dir, 1, seed=5, clips_per_shard=1, workers=1)
    generate(_recipe(tmp_path, ""), raster_dir, 1, seed=5, clips_per_shard=1, workers=1)
    assert verify_dataset(traced_dir).ok
    traced = read_shard(traced_dir / "shards" / "shard-000000.tar")[0]["buffers"]
    raster = read_shard(raster_dir / "shards" / "shard-000000.tar")[0]["buffers"]
    assert set(traced) == set(raster) | {"rgb_raster"}
    assert np.array_equal(traced["rgb_raster"], raster["rgb"])
    for name in set(raster) - {"rgb"}:
        assert np.array_equal(traced[name], raster[name]), name
    assert not np.array_equal(traced["rgb"], raster["rgb"])
    # Reproducible: the same recipe, seed and index give the same bytes again.
    again = tmp_path / "again"
    generate(recipe, again, 1, seed=5, clips_per_shard=1, workers=1)
    assert read_shard(again / "shards" / "shard-000000.tar")[0]["buffers"]["rgb"].tobytes() == traced["rgb"].tobytes()


def test_a_recipe_names_its_beauty(tmp_path):
    from hybrid.data.recipe import load_recipe

    assert load_recipe(_recipe(tmp_path, "cycles")).beauty.samples == CyclesOptions().samples
    assert not load_recipe(_recipe(tmp_path, "raster")).path_traced
    # Smoke, fire and liquid are all drawn by both back ends.
    fields = tmp_path / "fields.yaml"
    fields.write_text((REPO / "datasets" / "neural_fields.yaml").read_text() + "\nbeauty: {type: cycles, samples: 8}\n")
    assert load_recipe(fields).beauty.samples == 8


@pytest.mark.timeout(300)
def test_sigterm_while_cycles_renders_stops_the_command(tmp_path):
    """Blender runs the Cycles engine's Python under a catch-all that would print the exception and render on;
    the signal is held and raised once the Blender call returns: exit 143, nothing written, no traceback."""
    import os
    import signal
    import subprocess
    import time

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "clip"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybrid", "render", str(REPO / "scenes" / "bouncing_balls.yaml"), "--out", str(out),
         "--renderer", "cycles", "--samples", "4096", "--no-denoise", "--frames", "3", "--resolution", "64x48", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(scratch)},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not any(scratch.glob("hybrid-cycles-*")):
        time.sleep(0.05)
    time.sleep(1.0)  # the renderer is open: now inside its first frame (each takes seconds at 4096 samples)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert not out.exists() and not list(scratch.glob("hybrid-cycles-*"))


def test_a_texture_lands_the_same_way_up_in_both_back_ends(tmp_path):
    """An image of four coloured quadrants (file: top-left red, top-right green, bottom-left blue, bottom-right
    white) on a 1 m plane seen from above, +x right and +y up in the frame.

    The plane's uv is its local (x, y) in metres x texture_scale, from -0.5 to 0.5, repeating, with v = 0 at
    the image's bottom row. So the frame's left half (u < 0, i.e. 0.5..1 after wrapping) shows the file's
    right half and its top half (v > 0, 0..0.5) the file's bottom half: top-left white, top-right blue,
    bottom-left green, bottom-right red, in both back ends. A flipped or mirrored texture in either swaps
    colours, so the dominant channel of each quadrant's interior is compared, with no tolerance to tune."""
    import imageio.v3 as iio

    quad = np.zeros((64, 64, 3), np.uint8)
    quad[:32, :32] = (255, 0, 0)
    quad[:32, 32:] = (0, 255, 0)
    quad[32:, :32] = (0, 0, 255)
    quad[32:, 32:] = (255, 255, 255)
    iio.imwrite(tmp_path / "quad.png", quad)
    text = f"""name: t
frames: 1
resolution: [64, 64]
background: [0, 0, 0]
camera: {{position: [0.5, 0.5, 3], look_at: [0.5, 0.5, 0], up: [0, 1, 0], fov_deg: 20}}
lights: [{{type: ambient, intensity: 1.0}}]
objects:
  - name: tile
    shape: {{type: plane, size: [1, 1], texture_scale: 1.0}}
    position: [0.5, 0.5, 0]
    physics: {{body: static}}
    look: {{texture: quad.png, roughness: 1.0}}
"""
    scene = load_scene_text(text, str(tmp_path / "t.yaml"))
    state, cam = _rest_state(scene), camera_track(scene).cam_to_world[0]
    with Rasterizer(scene) as raster:
        raster_frame = raster.render_hdr(state, cam)
    with CyclesRenderer(scene, QUICK) as cycles:
        traced = cycles.render_hdr(state, cam)
    expected = {(0, 0): "white", (0, 1): "blue", (1, 0): "green", (1, 1): "red"}
    for frame in (raster_frame, traced):
        for (row, col), colour in expected.items():
            block = frame[8 + 32 * row : 24 + 32 * row, 8 + 32 * col : 24 + 32 * col].reshape(-1, 3).mean(0)
            got = "white" if block.min() > 0.5 * block.max() else ("red", "green", "blue")[int(np.argmax(block))]
            assert got == colour, (row, col, block)
