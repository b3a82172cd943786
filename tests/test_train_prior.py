"""correction_prior: auto: the trainer measures the training data's mean squared correction and ships the number.

The reference is worked out here from the raw shard bytes: both frames mapped to
[-1, 1] as x / 127.5 - 1 and area-averaged over 2 x 2 blocks (32 x 32 -> 16 x 16), the
squared difference averaged over every whole window's pixels, channels and frames.
"""

import json

import numpy as np
import pytest

from hybrid.neural.config import NeuralConfig, NeuralConfigError
from hybrid.train.config import load_train_config

from conftest import REPO
from test_train import TINY_CONFIG

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("bpy", reason="Blender as a Python module (pip install 'hybrid[cycles]') is not installed")

FRAMES, WINDOW = 6, 4  # one whole window per clip: frames 0-3 (4-5 make no whole window)
PT_CONFIG = TINY_CONFIG.replace(
    "condition: [albedo, normal, depth, mask, instance_edges, light, ndotl]",
    "condition: [albedo, normal, depth, mask, instance_edges, light, ndotl, raster_beauty]\n"
    "  residual: true\n  output: detail_transfer\n  sample_draws: 2\n  correction_prior: auto",
).replace("optim: {batch_size: 2, steps: 6,", "optim: {batch_size: 2, steps: 2,")


@pytest.fixture(scope="module")
def pt_data(tmp_path_factory):
    """train/ (2 clips) and heldout/ (1 clip): MOVi-A at 32 x 32, 6 frames, rgb path traced (2 samples)."""
    from hybrid.data.generate import generate

    root = tmp_path_factory.mktemp("pt_data")
    text = (REPO / "datasets" / "movi_a.yaml").read_text()
    text = text.replace("frames: 24", f"frames: {FRAMES}").replace("resolution: [256, 256]", "resolution: [32, 32]")
    recipe = root / "tiny_pt.yaml"
    recipe.write_text(text + "\nbeauty: {type: cycles, samples: 2, denoise: false, threads: 1}\n")
    generate(recipe, root / "train", 2, seed=3, clips_per_shard=1, workers=1)
    generate(recipe, root / "heldout", 1, seed=4, clips_per_shard=1, workers=1)
    return root


def hand_prior(*datasets) -> float:
    """Over every clip of the datasets given, each window's pixels weighing alike."""
    from hybrid.data.shards import read_shard

    squares = []
    for shard in sorted(s for dataset in datasets for s in (dataset / "shards").glob("*.tar")):
        for record in read_shard(shard).values():
            def low(name):
                x = record["buffers"][name][:WINDOW].astype(np.float64) / 127.5 - 1.0  # (T, 32, 32, 3)
                return x.reshape(WINDOW, 16, 2, 16, 2, 3).mean(axis=(2, 4))
            squares.append((low("rgb") - low("rgb_raster")) ** 2)
    return float(np.mean(squares))


@pytest.fixture(scope="module")
def trained(pt_data, tmp_path_factory):
    """(train config, result) of a 2-step run on train/ with correction_prior: auto."""
    from hybrid.train.loop import train

    path = pt_data / "pt.yaml"
    path.write_text(PT_CONFIG)
    config = load_train_config(path)
    return config, train(config, tmp_path_factory.mktemp("run") / "run", progress=False)


def test_the_exported_checkpoint_holds_the_measured_prior(pt_data, trained):
    from hybrid.neural.sampler import NeuralRenderer
    from hybrid.train.prior import mean_squared_correction

    config, result = trained
    assert config.model.correction_prior == "auto"
    expected = hand_prior(pt_data / "train")
    assert expected > 1e-4  # Cycles and the rasteriser differ: the check below is not 0 == 0
    measured, clips = mean_squared_correction(pt_data / "train", config.model)
    # float32 windows summed in float64: agreement to float32 rounding of each value.
    assert clips == 2 and measured == pytest.approx(expected, rel=1e-5)

    shipped = json.loads((result.final_dir / "config.json").read_text())
    assert shipped["correction_prior"] == pytest.approx(expected, rel=1e-5, abs=1e-6)  # rounded to 6 decimals
    info = json.loads((result.final_dir / "info.json").read_text())
    assert info["correction_prior"]["clips"] == 2
    renderer = NeuralRenderer.from_checkpoint(result.final_dir)
    assert renderer.config.correction_prior == shipped["correction_prior"]


def test_auto_is_refused_where_it_cannot_mean_anything():
    import torch

    from hybrid.neural.sampler import NeuralRenderer

    with pytest.raises(NeuralConfigError, match="only output 'detail_transfer'"):
        NeuralConfig.from_dict({"correction_prior": "auto"})
    config = NeuralConfig.from_dict({"condition": ["albedo", "raster_beauty"], "output": "detail_transfer",
                                     "correction_prior": "auto"})
    with pytest.raises(ValueError, match="correction_prior: auto.*train.py"):
        NeuralRenderer(torch.nn.Identity(), config)
    with pytest.raises(NeuralConfigError, match="correction_prior"):
        NeuralConfig.from_dict({"correction_prior": "sometimes"})


def test_the_prior_over_several_datasets_takes_each_one_s_share(pt_data):
    """train/ has 2 clips and heldout/ 1: asked for 3 clips, the measure reads 2 + 1, all of them."""
    from hybrid.train.prior import mean_squared_correction

    path = pt_data / "pt.yaml"
    path.write_text(PT_CONFIG)
    config = load_train_config(path)
    measured, clips = mean_squared_correction([pt_data / "train", pt_data / "heldout"], config.model, clips=3)
    assert clips == 3 and measured == pytest.approx(hand_prior(pt_data / "train", pt_data / "heldout"), rel=1e-5)


def _choose_prior():
    import importlib.util

    spec = importlib.util.spec_from_file_location("choose_prior", REPO / "training" / "choose_prior.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_choose_prior_scores_the_raster_frame_by_hand_and_keeps_its_rule(pt_data, trained, tmp_path):
    from hybrid.data.shards import read_shard

    choose_prior = _choose_prior()
    final = trained[1].final_dir
    out = tmp_path / "sweep.json"
    # 1e9 is far above any variance of frames in [-1, 1] (at most 1): the shrinkage factor
    # prior / (prior + variance) is 1 to within 1e-9, so that candidate is the plain mean (0).
    assert choose_prior.main([str(final), str(pt_data / "heldout"), "--priors", "0,1e9,0.001", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (record,) = read_shard(next((pt_data / "heldout" / "shards").glob("*.tar"))).values()
    rgb, raster = (record["buffers"][b].astype(np.float64) / 255.0 for b in ("rgb", "rgb_raster"))
    by_hand = np.mean([10 * np.log10(1.0 / np.mean((r - t) ** 2)) for r, t in zip(raster, rgb)])
    (row,) = report["clips"]
    assert row["raster"] == pytest.approx(by_hand, abs=1e-9)
    plain, huge, small = row["neural"]
    assert huge == pytest.approx(plain, abs=1e-3)  # 8-bit frames: a code flips at most where the 1e-9 lands
    table = report["candidates"]
    best = min(table, key=lambda t: (t["lost"], -t["mean_gain"]))
    assert report["chosen"] == best["prior"]
    for t, n in zip(table, row["neural"]):
        assert t["mean_gain"] == pytest.approx(n - row["raster"]) and t["lost"] == int(n < row["raster"])


def test_choose_prior_names_the_form_of_a_bad_clip_span(pt_data, trained):
    choose_prior = _choose_prior()
    final = str(trained[1].final_dir)
    with pytest.raises(SystemExit, match="holds clips 0-0"):
        choose_prior.main([final, f"{pt_data / 'heldout'}:0-3", "--priors", "0"])
    with pytest.raises(SystemExit, match="DIR:FIRST-LAST"):
        choose_prior.main([final, f"{pt_data / 'heldout'}:first", "--priors", "0"])
    with pytest.raises(SystemExit, match="0 or more"):
        choose_prior.main([final, str(pt_data / "heldout"), "--priors", "-1"])
    with pytest.raises(SystemExit, match="--train"):
        choose_prior.main([final, str(pt_data / "heldout")])
