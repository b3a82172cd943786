"""Choose a detail-transfer checkpoint's ``correction_prior`` on held-out clips.

The rule (the model card states it): render clips that ``EVAL.md`` does not score with
each candidate prior, and keep the one that loses the fewest clips to the raster frame
(PSNR against the path-traced reference), then the one with the highest mean gain. The
clips come from one or more held-out datasets, each given as ``DIR`` (every clip) or
``DIR:FIRST-LAST`` (clips FIRST to LAST): held-out clips of the training recipe, and
clips of a recipe the model never trained on, where a model that is unsure of itself
shows it. The candidates are the training data's mean squared correction (what
``correction_prior: auto`` measures) halved again and again down to a 32nd, and 0 (the
plain mean of the draws), unless ``--priors`` lists others.

    python training/choose_prior.py checkpoints/neural_pt out/neural_pt/heldout:4-15 \
        out/neural_pt/dusk_heldout:0-11 --train out/neural_pt/train

Prints a Markdown table and the chosen value; writes nothing unless ``--json`` names a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

CANDIDATE_HALVINGS = 5  # auto, auto / 2, ... auto / 32


def parse_span(given: str, clips: int) -> tuple[str, int, int]:
    """'DIR' or 'DIR:FIRST-LAST' -> (DIR, FIRST, LAST) for a dataset of `clips` clips; SystemExit naming the form."""
    folder, _, span = given.partition(":")
    try:
        first, last = (int(v) for v in span.split("-")) if span else (0, clips - 1)
    except ValueError:
        sys.exit(f"{given}: write the clips as DIR:FIRST-LAST, e.g. out/neural_pt/heldout:4-15")
    if not 0 <= first <= last < clips:
        sys.exit(f"{given}: {folder} holds clips 0-{clips - 1}")
    return folder, first, last


def choose(table: list[dict]) -> dict:
    """The rule: the candidate that loses the fewest clips to the raster frame, then the highest mean gain."""
    return min(table, key=lambda t: (t["lost"], -t["mean_gain"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="checkpoint folder (config.json, model.safetensors)")
    parser.add_argument("heldout", nargs="+", help="held-out dataset folders with rgb (path traced) and rgb_raster, "
                        "each DIR or DIR:FIRST-LAST")
    parser.add_argument("--train", help="training dataset: the candidates are its mean squared correction x 1, 1/2, ... 1/32, and 0")
    parser.add_argument("--priors", help="comma-separated candidates instead (0 turns the shrinkage off)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (clip i uses seed + i, as hybrid eval)")
    parser.add_argument("--json", help="write the per-clip numbers here")
    args = parser.parse_args(argv)

    from hybrid.data.manifest import read_manifest
    from hybrid.neural.evaluate import _fit, _held_out, _mean, frame_scores
    from hybrid.neural.sampler import NeuralRenderer

    renderer = NeuralRenderer.from_checkpoint(args.checkpoint)
    base = renderer.config
    if base.output != "detail_transfer" or base.sample_draws < 2:
        sys.exit(f"{args.checkpoint}: the prior only acts on a detail_transfer model with several draws "
                 f"(this one: output {base.output}, sample_draws {base.sample_draws})")
    if args.priors:
        try:
            priors = [float(p) for p in args.priors.split(",")]
        except ValueError:
            sys.exit(f"--priors {args.priors!r}: give comma-separated numbers, e.g. 0.0069,0.0034")
        if any(not p >= 0.0 for p in priors):
            sys.exit(f"--priors {args.priors!r}: a prior is a mean squared correction, 0 or more")
        labels = [f"{p:g}" for p in priors]
    elif args.train:
        from hybrid.train.prior import mean_squared_correction

        auto, seen = mean_squared_correction(args.train, base)
        priors = [auto / 2**k for k in range(CANDIDATE_HALVINGS + 1)] + [0.0]
        labels = [f"{auto:.6f} (auto, {seen} clips)"] + [f"{p:.4f} (auto / {2**k})" for k, p in enumerate(priors[1:-1], 1)]
        labels.append("0 (off)")
    else:
        sys.exit("give --train (candidates from the training data) or --priors")

    sets = []
    for given in args.heldout:
        manifest = read_manifest(given.partition(":")[0])
        folder, first, last = parse_span(given, manifest.clips)
        for needed in ("rgb", "rgb_raster"):
            if needed not in manifest.buffers:
                sys.exit(f"{folder}: no {needed} buffer; the prior is chosen against a path-traced rgb")
        sets.append((folder, manifest, first, last))

    rows = []  # per clip: dataset, index, raster PSNR, neural PSNR per prior
    started = time.perf_counter()
    for folder, manifest, first, last in sets:
        for item in _held_out(folder, manifest, None, last + 1):
            if item["index"] < first:
                continue
            buffers = item["buffers"]
            size = buffers["rgb"].shape[1:3]
            raster = _mean(frame_scores(buffers["rgb_raster"], buffers["rgb"])[0])
            neural = []
            for prior in priors:
                renderer.config = base.model_copy(update={"correction_prior": prior})
                frames = renderer.render(buffers, item["metadata"], warp_noise=True, frame_by_frame=False,
                                         seed=args.seed + int(item["index"]))
                neural.append(_mean(frame_scores(_fit(frames, size), buffers["rgb"])[0]))
            rows.append({"dataset": folder, "index": int(item["index"]), "raster": raster, "neural": neural})
            print(f"{folder} clip {item['index']}: raster {raster:.2f} dB, neural "
                  + ", ".join(f"{v:.2f}" for v in neural), file=sys.stderr, flush=True)

    table = []
    for k, (prior, label) in enumerate(zip(priors, labels)):
        gains = [r["neural"][k] - r["raster"] for r in rows]
        per_set = {f: float(np.mean([r["neural"][k] - r["raster"] for r in rows if r["dataset"] == f]))
                   for f, *_ in sets}
        table.append({"prior": prior, "label": label, "mean_gain": float(np.mean(gains)), "per_set": per_set,
                      "lost": int(sum(g < 0 for g in gains)), "worst": float(min(gains))})
    chosen = choose(table)
    print("\n" + ", ".join(f"{f} clips {a}-{b}" for f, _, a, b in sets) + f": {len(rows)} clips, "
          f"{time.perf_counter() - started:.0f} s\n")
    names = [Path(f).name for f, *_ in sets]
    print(f"| correction_prior | mean gain | " + " | ".join(f"gain, {n}" for n in names)
          + f" | clips lost (of {len(rows)}) | worst clip |")
    print("|---:|---:|" + "---:|" * len(names) + "---:|---:|")
    for t in table:
        bold = "**" if t is chosen else ""
        print(f"| {bold}{t['label']}{bold} | {t['mean_gain']:+.2f} dB | "
              + " | ".join(f"{v:+.2f} dB" for v in t["per_set"].values()) + f" | {t['lost']} | {t['worst']:+.2f} dB |")
    print(f"\nchosen: {chosen['prior']:.4g} (fewest clips lost, then the highest mean gain)")
    if args.json:
        Path(args.json).write_text(json.dumps({"candidates": table, "clips": rows, "chosen": chosen["prior"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
