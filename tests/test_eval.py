"""Evaluation: each metric against an analytic answer, then `hybrid eval` end to end on a tiny dataset."""

import json

import numpy as np
import pytest
import torch

from hybrid.cli import main
from hybrid.neural.evaluate import (
    SSIM_K1,
    SSIM_K2,
    drift_slope,
    gaussian_window,
    psnr,
    ssim,
    warp_error,
)

from test_train import make_tiny_datasets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- metrics on analytic cases


def test_psnr_of_a_known_constant_error():
    target = np.full((8, 8, 3), 0.5)
    # MSE = 0.1^2 = 0.01 -> 10 log10(1 / 0.01) = 20 dB exactly.
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-9)
    assert psnr(target + 0.01, target) == pytest.approx(40.0, abs=1e-9)
    assert psnr(target, target) == pytest.approx(100.0)  # the MSE floor of 1e-10


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(0).uniform(size=(24, 20, 3))
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_a_contrast_change_on_a_checkerboard_matches_the_formula():
    """x = 0.5 + s c, y = 0.5 + a s c with c = (-1)^(i+j).

    With the separable window g x g and G = sum_k g_k (-1)^k, every window sees
    mu_x = 0.5 + e s G^2 (e = +-1 by the window's parity), var_x = s^2 (1 - G^4),
    mu_y = 0.5 + e a s G^2, var_y = a^2 s^2 (1 - G^4), cov = a s^2 (1 - G^4); SSIM is
    Wang et al.'s formula with those moments, averaged over the two parities, which
    a 32 x 32 image (22 x 22 valid positions) splits evenly.
    """
    s, a = 0.2, 0.5
    i, j = np.mgrid[0:32, 0:32]
    c = np.where((i + j) % 2 == 0, 1.0, -1.0)
    x, y = 0.5 + s * c, 0.5 + a * s * c
    g = gaussian_window()
    G = float(np.sum(g * (-1.0) ** np.arange(len(g))))
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    values = []
    for e in (1.0, -1.0):
        mx, my = 0.5 + e * s * G**2, 0.5 + e * a * s * G**2
        vx, vy, cov = s**2 * (1 - G**4), a**2 * s**2 * (1 - G**4), a * s**2 * (1 - G**4)
        values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    expected = float(np.mean(values))
    assert expected < 0.9  # a real contrast loss, not a rounding of 1
    assert ssim(y, x) == pytest.approx(expected, abs=1e-12)
    assert ssim(np.stack([y] * 3, -1), np.stack([x] * 3, -1)) == pytest.approx(expected, abs=1e-12)


def _shifted_pair(dx, dy, h=12, w=14):
    """Frame 1 is frame 0 moved by (-dx, -dy): frame1(p) = frame0(p + d), so flow_bwd[1] = d everywhere."""
    frame0 = np.random.default_rng(1).uniform(size=(h, w, 3))
    rows, cols = np.mgrid[0:h, 0:w]
    inside = (cols + dx >= 0) & (cols + dx < w) & (rows + dy >= 0) & (rows + dy < h)
    frame1 = np.zeros_like(frame0)
    frame1[inside] = frame0[(rows + dy)[inside], (cols + dx)[inside]]
    flow = np.zeros((2, h, w, 2))
    flow[1] = (dx, dy)
    visible = np.zeros((2, h, w), dtype=bool)
    visible[1] = inside
    return np.stack([frame0, frame1]), flow, visible


def test_warp_error_is_zero_for_frames_related_exactly_by_the_flow():
    frames, flow, visible = _shifted_pair(2, -1)
    assert warp_error(frames, flow, visible) == 0.0


def test_warp_error_measures_a_known_change_and_ignores_hidden_pixels():
    frames, flow, visible = _shifted_pair(-3, 2)
    frames[1] += 0.1  # everything brightens by 0.1 between the frames
    assert warp_error(frames, flow, visible) == pytest.approx(0.1, abs=1e-12)
    frames[1][~visible[1]] = 99.0  # pixels that were not visible before do not count
    assert warp_error(frames, flow, visible) == pytest.approx(0.1, abs=1e-12)


def test_warp_error_is_zero_for_a_fractional_flow_over_a_linear_ramp():
    """Bilinear resampling is exact on a linear image, so a sub-pixel flow warps it exactly."""
    h, w = 10, 12
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    d = (0.25, 0.5)
    frame0 = (0.02 * cols + 0.03 * rows)[..., None]
    frame1 = (0.02 * (cols + d[0]) + 0.03 * (rows + d[1]))[..., None]
    flow = np.zeros((2, h, w, 2))
    flow[1] = d
    visible = np.zeros((2, h, w), dtype=bool)
    visible[1, : h - 1, : w - 1] = True  # targets inside the image
    assert warp_error(np.stack([frame0, frame1]), flow, visible) == pytest.approx(0.0, abs=1e-12)


def test_drift_slope_of_a_straight_line_and_of_noise_around_it():
    assert drift_slope([30.0, 29.5, 29.0, 28.5]) == pytest.approx(-0.5)
    assert drift_slope([5.0] * 10) == 0.0
    noisy = 2.0 + 0.3 * np.arange(10) + np.array([0.1, -0.1] * 5)
    assert drift_slope(noisy) == pytest.approx(0.3, abs=0.02)


# ---------------------------------------------------------------- hybrid eval end to end


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_datasets(tmp_path_factory.mktemp("eval_data"))


def test_hybrid_eval_writes_eval_md_and_json_with_every_row(data_root, tmp_path, capsys):
    from hybrid.neural.checkpoint import save_checkpoint
    from hybrid.neural.config import NeuralConfig
    from hybrid.neural.model import VideoDenoiser

    config = NeuralConfig(resolution=(16, 16), window=4, context_frames=1, base_channels=8, channel_mults=(1, 2),
                          groups=4, attention_heads=2)
    torch.manual_seed(0)
    model = VideoDenoiser(config)
    with torch.no_grad():  # a random but non-trivial network: the output layer starts at zero
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    checkpoint = save_checkpoint(tmp_path / "ckpt", model, config, {"steps": 0})
    out = tmp_path / "report" / "EVAL.md"
    code = main(["eval", str(checkpoint), str(data_root / "heldout"), "--clips", "2", "--steps", "2",
                 "--long-clips", "1", "--recipe", str(data_root / "tiny_movi_a.yaml"), "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    text = out.read_text()
    for row in ("| neural renderer |", "| frame by frame, independent noise |", "| albedo buffer |",
                "| target (beauty frames) |", "| slope (dB/window) |", "| warp error (codes) |",
                "## What the numbers mean", "## Acceptance checks", "hybrid eval "):
        assert row in text, row
    for window in range(1, 11):  # a long clip of 10 training windows
        assert f"\n| {window} | " in text
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["clips"] == 2 and len(results["per_clip"]) == 2
    for method in ("neural", "frame_by_frame", "albedo"):
        for metric in ("psnr", "ssim", "warp_error"):
            assert isinstance(results["summary"][method][metric], float), (method, metric)
    assert results["summary"]["target"]["warp_error"] > 0
    assert len(results["drift"]["psnr_by_window"]["neural"]) == 10 and results["drift"]["frames"] == 40
    assert results["drift"]["seed"] not in (3, 4)  # neither dataset's seed
    assert len(results["checks"]) == 7
    assert [c["fields"] for c in results["per_clip"]] == [[], []] and results["summary_by_fields"] is None
    assert "## Clips with and without fields" not in text
    # The albedo baseline needs no model: its numbers follow from the data alone.
    clip = results["per_clip"][0]
    assert -1.0 < clip["albedo"]["ssim"] <= 1.0 and clip["albedo"]["psnr"] > 0
    # The contact sheet: one row per clip (2 here), reference | neural | its error map, linked from the report.
    import imageio.v3 as iio

    sheet = iio.imread(out.with_name("EVAL_contact_sheet.png"))
    assert sheet.shape == (2 * 32, 3 * 32, 3)  # the tiny datasets are 32 x 32 (test_train.make_tiny_datasets)
    assert results["contact_sheet"] == "EVAL_contact_sheet.png" and "](EVAL_contact_sheet.png)" in text


def test_eval_draws_the_held_out_clips_again_at_another_resolution(data_root, tmp_path, capsys):
    """--resolution renders the same scenes (the dataset's recipe, seed and indices) at the size asked for."""
    from hybrid.data.generate import render_dataset_clip
    from hybrid.data.recipe import load_recipe
    from hybrid.neural.checkpoint import save_checkpoint
    from hybrid.neural.config import NeuralConfig
    from hybrid.neural.model import VideoDenoiser

    config = NeuralConfig(resolution=(16, 16), window=4, context_frames=1, base_channels=8, channel_mults=(1, 2),
                          groups=4, attention_heads=2, sample_steps=1)
    checkpoint = save_checkpoint(tmp_path / "ckpt", VideoDenoiser(config), config, {"steps": 0})
    out = tmp_path / "EVAL.md"
    recipe = str(data_root / "tiny_movi_a.yaml")
    code = main(["eval", str(checkpoint), str(data_root / "heldout"), "--clips", "1", "--long-clips", "0",
                 "--recipe", recipe, "--resolution", "48x40", "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["options"]["steps"] == 1  # the checkpoint's sample_steps
    assert "--resolution 48x40" in out.read_text() and "drawn again" in out.read_text()
    import imageio.v3 as iio

    assert iio.imread(out.with_name("EVAL_contact_sheet.png")).shape[:2] == (40, 3 * 48)
    # The same scene: the albedo baseline's PSNR is that of the clip drawn at 48x40 from (seed 4, index 0).
    tiny = load_recipe(recipe)
    big = tiny.model_copy(update={"clip": tiny.clip.model_copy(update={"resolution": (48, 40)})})
    buffers, _, _ = render_dataset_clip(big, 4, 0)
    from hybrid.neural.evaluate import frame_scores

    assert results["per_clip"][0]["albedo"]["psnr"] == pytest.approx(np.mean(frame_scores(buffers["albedo"], buffers["rgb"])[0]))
    # A raster dataset has no path tracer whose samples could be set.
    code = main(["eval", str(checkpoint), str(data_root / "heldout"), "--clips", "1", "--long-clips", "0",
                 "--recipe", recipe, "--reference-samples", "8", "--out", str(out), "-q"])
    assert code != 0 and "--reference-samples" in capsys.readouterr().err
    # A size the recipe itself would refuse is refused with the recipe's bound.
    code = main(["eval", str(checkpoint), str(data_root / "heldout"), "--clips", "1", "--long-clips", "0",
                 "--recipe", recipe, "--resolution", "4x40", "--out", str(out), "-q"])
    assert code != 0 and "--resolution 4x40" in capsys.readouterr().err


def test_clips_with_and_without_fields_are_summarised_apart():
    from hybrid.neural.evaluate import clip_fields, report_markdown, summaries_by_fields

    assert clip_fields(None) == [] and clip_fields({"fields": None}) == []
    assert clip_fields({"fields": {"frames": [], "liquid": {}, "gas": {}}}) == ["gas", "liquid"]

    def row(fields, psnr):
        scores = {"psnr": psnr, "ssim": psnr / 100, "warp_error": 2.0}
        return {"fields": fields, "neural": scores, "frame_by_frame": scores, "albedo": scores,
                "target": {"warp_error": 1.0}}

    rows = [row([], 30.0), row(["gas"], 20.0), row(["gas", "liquid"], 26.0), row([], 28.0)]
    split = summaries_by_fields(rows)
    assert list(split) == ["without fields", "with fields", "with gas", "with liquid"]
    assert split["without fields"]["clips"] == 2 and split["without fields"]["neural"]["psnr"] == pytest.approx(29.0)
    assert split["with fields"]["clips"] == 2 and split["with fields"]["neural"]["psnr"] == pytest.approx(23.0)
    assert split["with gas"]["neural"]["psnr"] == pytest.approx(23.0)
    assert split["with liquid"]["clips"] == 1 and split["with liquid"]["albedo"]["ssim"] == pytest.approx(0.26)
    assert summaries_by_fields([row([], 30.0)]) is None  # no clip with fields: no split

    results = {
        "summary": summaries_by_fields(rows)["with fields"], "summary_by_fields": split,
        "options": {"steps": 2, "scheduler": "dpm", "seed": 0, "clips": 4, "long_clips": 0},
        "checkpoint": "ckpt", "dataset": "data", "dataset_recipe": {"name": "r"}, "dataset_seed": 1, "clips": 4,
        "model": {"resolution": [16, 16], "window": 4, "context_frames": 1, "condition": ["albedo"]},
        "checks": [], "seconds": 1.0, "hardware": {"cores": 2, "device": "cpu"},
    }
    text = report_markdown(results)
    assert "## Clips with and without fields" in text
    assert "| without fields | 2 | 29.00 | 0.290 | 2.00 |" in text and "| with liquid | 1 | 26.00 |" in text


def test_hybrid_eval_errors_are_clear(data_root, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing"), str(data_root / "heldout"), "-q"]) == 6
    assert "does not exist" in capsys.readouterr().err


def test_a_path_traced_dataset_adds_the_raster_beauty_and_its_checks():
    """Rows with a raster method (clips holding rgb_raster) get it in the summary and the issue's checks against it:
    +3 dB over the raster frame, SSIM >= 0.90 and above the raster's, warp error <= 1.3x the reference's."""
    from hybrid.neural.evaluate import acceptance_checks, summarise

    def row(neural_psnr, raster_psnr):
        return {"neural": {"psnr": neural_psnr, "ssim": 0.93, "warp_error": 2.0},
                "frame_by_frame": {"psnr": 20.0, "ssim": 0.8, "warp_error": 5.0},
                "raster": {"psnr": raster_psnr, "ssim": 0.91, "warp_error": 1.9},
                "albedo": {"psnr": 15.0, "ssim": 0.6, "warp_error": 1.0},
                "target": {"warp_error": 1.8}}

    summary = summarise([row(30.0, 26.0), row(28.0, 26.0)])
    assert list(summary) == ["neural", "frame_by_frame", "raster", "albedo", "target"]
    checks = {c["check"]: c["pass"] for c in acceptance_checks({"summary": summary})}
    gain = next(k for k in checks if k.startswith("PSNR >= the raster"))
    assert checks[gain]  # 29 >= 26 + 3
    assert checks[next(k for k in checks if k.startswith("warp error <= 1.3"))]  # 2.0 <= 2.34
    summary = summarise([row(28.0, 26.0)])
    assert not {c["check"]: c["pass"] for c in acceptance_checks({"summary": summary})}[gain]  # 28 < 29
    plain = summarise([{k: v for k, v in row(28.0, 26.0).items() if k != "raster"}])
    assert "raster" not in plain and not any("raster" in c["check"] for c in acceptance_checks({"summary": plain}))


def test_clips_with_and_without_breaks_are_summarised_apart():
    from hybrid.neural.evaluate import clip_breaks, report_markdown, summaries_by_breaks

    assert clip_breaks(None) == 0 and clip_breaks({"breaks": [{"object": "a"}, {"object": "b"}]}) == 2

    def row(breaks, psnr):
        scores = {"psnr": psnr, "ssim": psnr / 100, "warp_error": 2.0}
        return {"breaks": breaks, "fields": [], "neural": scores, "frame_by_frame": scores, "albedo": scores,
                "target": {"warp_error": 1.0}}

    rows = [row(0, 30.0), row(2, 24.0), row(1, 26.0)]
    split = summaries_by_breaks(rows)
    assert list(split) == ["nothing breaks", "something breaks"]
    assert split["something breaks"]["clips"] == 2 and split["something breaks"]["neural"]["psnr"] == pytest.approx(25.0)
    assert summaries_by_breaks([row(0, 30.0)]) is None
    results = {
        "summary": split["nothing breaks"], "summary_by_breaks": split,
        "options": {"steps": 2, "scheduler": "dpm", "seed": 0, "clips": 3, "long_clips": 0},
        "checkpoint": "ckpt", "dataset": "data", "dataset_recipe": {"name": "r"}, "dataset_seed": 1, "clips": 3,
        "model": {"resolution": [16, 16], "window": 4, "context_frames": 1, "condition": ["albedo"]},
        "checks": [], "seconds": 1.0, "hardware": {"cores": 2, "device": "cpu"},
    }
    text = report_markdown(results)
    assert "## Clips with and without breaks" in text and "| something breaks | 2 | 25.00 |" in text


def test_clips_with_and_without_burning_objects_are_summarised_apart():
    from hybrid.neural.evaluate import clip_burning, report_markdown, summaries_by_burning

    lit = {"objects": [{"name": "a", "burn": {"ignition_time_s": 0.5}}, {"name": "b", "burn": {"ignition_time_s": None}},
                       {"name": "c"}]}
    assert clip_burning(None) == 0 and clip_burning(lit) == 1

    def row(burning, psnr):
        scores = {"psnr": psnr, "ssim": psnr / 100, "warp_error": 2.0}
        return {"breaks": 0, "burning": burning, "fields": ["gas"], "neural": scores, "frame_by_frame": scores,
                "albedo": scores, "target": {"warp_error": 1.0}}

    rows = [row(0, 30.0), row(1, 24.0), row(2, 26.0)]
    split = summaries_by_burning(rows)
    assert list(split) == ["nothing burns", "something burns"]
    assert split["something burns"]["clips"] == 2 and split["something burns"]["neural"]["psnr"] == pytest.approx(25.0)
    assert summaries_by_burning([row(0, 30.0)]) is None
    results = {
        "summary": split["nothing burns"], "summary_by_burning": split,
        "options": {"steps": 2, "scheduler": "dpm", "seed": 0, "clips": 3, "long_clips": 0},
        "checkpoint": "ckpt", "dataset": "data", "dataset_recipe": {"name": "r"}, "dataset_seed": 1, "clips": 3,
        "model": {"resolution": [16, 16], "window": 4, "context_frames": 1, "condition": ["albedo"]},
        "checks": [], "seconds": 1.0, "hardware": {"cores": 2, "device": "cpu"},
    }
    text = report_markdown(results)
    assert "## Clips with and without burning objects" in text and "| something burns | 2 | 25.00 |" in text
