"""The `hybrid` command: render, validate, schema, dataset, eval."""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Optional, Sequence

from hybrid.interrupts import Terminated, defer, exception_for  # Terminated: also this module's API

EXIT_BUG = 1  # an unexpected exception: a bug in hybrid (HYBRID_TRACEBACK=1 shows where)
EXIT_SCENE_ERROR = 2
EXIT_SIMULATION_ERROR = 3
EXIT_OUTPUT_ERROR = 4
EXIT_SETUP_ERROR = 5
EXIT_CHECKPOINT_ERROR = 6  # the neural renderer's checkpoint is missing, damaged, or asks for inputs the scene lacks
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)

TRACEBACK_ENV = "HYBRID_TRACEBACK"


# The project's errors and their exit codes, most specific first: (class as "module.Class",
# exit code, what the one-line message starts with). Named, not imported, so that telling
# an error apart never loads torch or Taichi; a test checks every name still imports.
ERROR_TABLE: tuple[tuple[str, int, str], ...] = (
    ("hybrid.scene.errors.SceneError", EXIT_SCENE_ERROR, ""),  # already located: file:line:col
    ("hybrid.spec.errors.SpecError", EXIT_SCENE_ERROR, ""),  # recipes, training configs: located the same way
    ("hybrid.physics.errors.SimulationError", EXIT_SIMULATION_ERROR, "simulation stopped: "),
    ("hybrid.fields.errors.FieldError", EXIT_SIMULATION_ERROR, "simulation stopped: "),
    ("hybrid.physics.errors.PhysicsError", EXIT_SCENE_ERROR, ""),  # a body that cannot be built
    ("hybrid.fields.backend.BackendError", EXIT_SETUP_ERROR, "error: "),
    ("hybrid.render.errors.RenderSetupError", EXIT_SETUP_ERROR, "error: "),
    ("hybrid.io.clip.OutputError", EXIT_OUTPUT_ERROR, "error: "),
    ("hybrid.neural.checkpoint.CheckpointError", EXIT_CHECKPOINT_ERROR, "error: "),
    ("hybrid.neural.conditioning.ConditionError", EXIT_CHECKPOINT_ERROR, "error: "),
    ("hybrid.data.shards.DatasetError", EXIT_SCENE_ERROR, "error: "),
    ("hybrid.buffers.BufferNameError", EXIT_SCENE_ERROR, "error: "),
    ("hybrid.render.backends.BeautyOptionsError", EXIT_SCENE_ERROR, "error: "),
    ("hybrid.render.cycles.build.MappingError", EXIT_SCENE_ERROR, "error: "),
)


def _exit_code(err: BaseException, writing: bool = False, target: str = "") -> tuple[int, str]:
    """(exit code, one-line message) for an error that stopped a command.

    The message does not name the input it was about (the caller prefixes it);
    `writing`: the error came while writing the output `target` (a file or folder the
    user named, rather than the hidden temporary file the OSError may name), so an
    OSError is the output's.
    """
    classes = {f"{c.__module__}.{c.__qualname__}" for c in type(err).__mro__}
    for name, code, lead in ERROR_TABLE:
        if name in classes:
            return code, f"{lead}{err}"
    if isinstance(err, MemoryError):
        return EXIT_SIMULATION_ERROR, (
            "error: ran out of memory; use fewer frames, a smaller resolution or coarser fields, "
            "or lower HYBRID_MAX_MEMORY_GB so that the estimate refuses such scenes before they start"
        )
    if isinstance(err, OSError) and (writing or err.errno in _OUTPUT_ERRNOS):
        where = f" {target or err.filename}" if (target or err.filename) else ""
        return EXIT_OUTPUT_ERROR, (
            f"error: cannot write{where}: {err.strerror or err}"
            + (" (free some space, or give --out a place on another disk); nothing was left half-written"
               if err.errno == errno.ENOSPC else "; nothing was left half-written")
        )
    if isinstance(err, FileNotFoundError):
        return EXIT_SCENE_ERROR, f"error: {err}"
    if isinstance(err, RecursionError):
        return EXIT_SCENE_ERROR, "error: the input is nested too deeply to read"
    return EXIT_BUG, (
        f"error: unexpected {type(err).__name__}: {err} (a bug in hybrid; rerun with {TRACEBACK_ENV}=1 "
        "to see where, and report it with the input that caused it)"
    )


# Errors only a write can raise: an OSError with one of these is the output's wherever it came from.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _report(err: BaseException, where: str = "", writing: bool = False, target: str = "") -> int:
    """Print the one-line message for `err` (prefixed with `where`, the input it was about) and
    return its exit code; `writing` and `target` as for `_exit_code`."""
    code, message = _exit_code(err, writing, target)
    if os.environ.get(TRACEBACK_ENV) == "1":
        traceback.print_exception(err)
    if where and where not in message:
        message = f"{where}: {message}"
    print(message, file=sys.stderr)
    return code


def _resolution(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return value


def _buffer_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("name at least one buffer, e.g. rgb,depth,instance")
    return names


def _scene_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
        if not files:
            raise FileNotFoundError(f"{target} holds no .yaml scene files")
        return files
    if not target.exists():
        raise FileNotFoundError(f"scene file not found: {target}")
    return [target]


class _Bars:
    """One tqdm bar per stage (``progress(stage, done, total)``), created on first use; none when not enabled."""

    def __init__(self, label: str, enabled: bool, unit: str = "frame", leave: bool = False) -> None:
        self.label, self.enabled, self.unit, self.leave, self.bars = label, enabled, unit, leave, {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            desc = " ".join(part for part in (self.label, stage) if part)
            bar = self.bars[stage] = tqdm(
                total=total, initial=done, desc=desc, unit=self.unit, leave=self.leave, smoothing=0.1
            )
        bar.update(done - bar.n)

    def stage(self, stage: str):
        """``progress(done, total)`` for the one stage ``stage``."""
        return lambda done, total: self(stage, done, total)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _load_neural_renderer(checkpoint: Optional[str]):
    """(NeuralRenderer, checkpoint folder) for --checkpoint, or the repository's default checkpoint."""
    import torch

    from hybrid.neural.checkpoint import CheckpointError
    from hybrid.neural.sampler import DEFAULT_CHECKPOINT, NeuralRenderer

    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if checkpoint is None and not path.exists():
        raise CheckpointError(
            f"the default neural checkpoint {path} is not there (it has not been trained in this copy of hybrid): "
            "`make train` makes it; or train one with `python training/train.py training/neural_pt.yaml` and pass its "
            "folder with --checkpoint PATH (a folder holding config.json and model.safetensors)"
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return NeuralRenderer.from_checkpoint(path, device=device), path


def _neural_frames(clip, renderer, checkpoint: Path, args: argparse.Namespace, label: str):
    """(clip with neural rgb, extra videos, message saying the size the frames were made at)."""
    from hybrid.neural.sampler import neural_clip

    bars = _Bars(label, not args.quiet, unit="step")
    try:
        new_clip, extra, (h, w) = neural_clip(
            clip, renderer, steps=args.steps, scheduler=args.scheduler, compare=args.compare,
            checkpoint=str(checkpoint), progress=bars.stage("neural"),
        )
    finally:
        bars.close()
    height, width = clip.buffers["rgb"].shape[1:3]
    native_h, native_w = renderer.config.resolution
    message = (
        f"  neural frames made at {w}x{h} (the checkpoint's {native_w}x{native_h} pixel count at the scene's "
        f"aspect ratio), {new_clip.metadata['renderer']['steps']} {args.scheduler} steps"
        + (
            f"; their correction to the raster frame upsampled to the scene's {width}x{height} by its buffers\n"
            if renderer.config.output == "detail_transfer"
            else f"; resized to the scene's {width}x{height}\n" if (h, w) != (height, width) else "\n"
        )
    )
    return new_clip, extra, message


def cmd_render(args: argparse.Namespace) -> int:
    target = Path(args.scene)
    files = _scene_files(target)
    overrides = {}
    if args.frames is not None:
        overrides["frames"] = args.frames
    if args.resolution is not None:
        overrides["resolution"] = list(args.resolution)
    if args.seed is not None:
        overrides["seed"] = args.seed
    out_root = Path(args.out)
    folder_mode = target.is_dir()
    if args.hdr and args.renderer == "neural":
        print(
            "error: --hdr keeps a beauty back end's linear radiance, and the neural renderer draws display "
            "colours; use --renderer raster or cycles with --hdr",
            file=sys.stderr,
        )
        return EXIT_SCENE_ERROR
    neural = None
    if args.renderer == "neural":
        try:  # before any simulation: a bad checkpoint fails at once and writes nothing
            neural = _load_neural_renderer(args.checkpoint)
        except Exception as err:
            return _report(err)
    elif args.compare or args.checkpoint:
        print("error: --compare and --checkpoint belong to the neural renderer; add --renderer neural", file=sys.stderr)
        return EXIT_SCENE_ERROR
    given = {name: getattr(args, name) for name in ("samples", "denoise", "device") if getattr(args, name) is not None}
    if given and args.renderer != "cycles":
        flags = ", ".join(f"--{name}" for name in given)
        print(f"error: {flags} belong to the cycles renderer; add --renderer cycles", file=sys.stderr)
        return EXIT_SCENE_ERROR
    if args.renderer == "cycles":
        from hybrid.render.backends import BeautyChoice, beauty_options
        from hybrid.render.cycles.renderer import import_bpy

        args.beauty = BeautyChoice("cycles", given)
        try:  # before any simulation: a missing bpy fails at once and writes nothing
            beauty_options(args.beauty)
            import_bpy()
        except Exception as err:
            return _report(err)
    else:
        args.beauty = args.renderer if neural is None else None
    failures: list[tuple[Path, int, str]] = []
    for path in files:
        out = out_root / path.stem if folder_mode else out_root
        code, line = _render_one(path, out, overrides, neural, args)
        if code:
            failures.append((path, code, line))
    if folder_mode and failures:
        # One scene that fails does not stop the others; this lists them all at the end.
        print(f"{len(failures)} of {len(files)} scenes failed (exit code of the first):", file=sys.stderr)
        for path, code, line in failures:
            first = line.splitlines()[0]
            first = first if first.startswith(str(path)) else f"{path}: {first}"
            print(f"  exit {code}  {first[:240]}", file=sys.stderr)
    return failures[0][1] if failures else 0


def _render_one(path: Path, out: Path, overrides: dict, neural, args: argparse.Namespace) -> tuple[int, str]:
    """Render one scene file to the clip folder `out`: (exit code, the message printed; 0 and "" when done)."""
    from hybrid.buffers import check_names, clip_buffer_names
    from hybrid.io.clip import check_clip_target, write_clip
    from hybrid.pipeline import render_clip
    from hybrid.render.backends import DEFAULT_BEAUTY
    from hybrid.scene import load_scene

    def fail(err: BaseException, writing: bool = False) -> tuple[int, str]:
        target = str(out) if writing else ""
        return _report(err, str(path), writing, target), _exit_code(err, writing, target)[1]

    try:
        scene = load_scene(path, overrides=overrides or None)
        check_clip_target(out)  # an unusable --out fails now, not after the whole render
        if args.buffers is not None:  # a name the clip will not hold fails now, too
            offered = clip_buffer_names(scene.fields is not None) + (("rgb_raster",) if neural is not None else ())
            offered += ("radiance",) if args.hdr else ()
            check_names(args.buffers, offered, f"{path}: --buffers")
    except Exception as err:
        return fail(err)
    if not args.quiet:
        _print_notes(path, scene, sys.stderr)
    bars = _Bars(scene.name, enabled=not args.quiet)
    start = time.perf_counter()
    note, extra = "", None
    try:
        clip = render_clip(scene, progress=bars, beauty=args.beauty if neural is None else DEFAULT_BEAUTY, hdr=args.hdr)
        if neural is not None:
            clip, extra, note = _neural_frames(clip, *neural, args, scene.name)
    except Exception as err:
        bars.close()
        return fail(err)
    bars.close()
    try:
        written = write_clip(clip, out, extra_videos=extra, storage=args.storage, buffers=args.buffers)
    except Exception as err:
        return fail(err, writing=True)
    took = time.perf_counter() - start
    print(
        f"{path}: {scene.frame_count} frames at {scene.width}x{scene.height} in {took:.1f} s -> {out}/\n"
        + note
        + "".join(f"  {name:14s} {p}\n" for name, p in written.items()),
        end="",
    )
    return 0, ""


def cmd_validate(args: argparse.Namespace) -> int:
    from hybrid.scene import load_scene

    bad = 0
    first_code = 0
    for name in args.files:
        for path in _scene_files(Path(name)):
            try:
                scene = load_scene(path)
            except Exception as err:
                code = _report(err, str(path))
                first_code = first_code or code
                bad += 1
                continue
            from hybrid.roster import Roster

            slots = len(Roster.from_scene(scene)) - len(scene.objects)
            print(
                f"ok  {path}: '{scene.name}', {len(scene.objects)} objects"
                + (f" (+{slots} fragment slots)" if slots else "")
                + f", {scene.frame_count} frames at {scene.width}x{scene.height}, {scene.fps:g} fps"
            )
            _print_notes(path, scene, sys.stdout)
    return first_code if bad else 0


def _print_notes(path, scene, stream) -> None:
    """Advice on a scene that loads and runs but may not come out as its author expects (not errors)."""
    from hybrid.fields.coupling_notes import small_body_notes

    for note in small_body_notes(scene):
        print(f"note: {path}: {note}", file=stream)


def cmd_schema(args: argparse.Namespace) -> int:
    from hybrid.scene import scene_json_schema

    text = json.dumps(scene_json_schema(), indent=2)
    if args.out:
        from hybrid.data.shards import atomic_write

        try:
            atomic_write(args.out, lambda fh: fh.write((text + "\n").encode()))
        except OSError as err:
            return _report(err, args.out, writing=True, target=args.out)
        print(f"wrote the scene JSON Schema to {args.out}")
    else:
        print(text)
    return 0


def cmd_dataset_generate(args: argparse.Namespace) -> int:
    from hybrid.data.generate import generate

    try:  # an unusable --out fails now, not after the first shard
        from hybrid.io.clip import check_writable_parent

        check_writable_parent(Path(args.out).resolve() / "manifest.json", what="no dataset")
    except Exception as err:
        return _report(err)
    bars = _Bars("", not args.quiet, unit="clip", leave=True)
    if args.workers == 1 and args.ray_address is None:
        # The one worker is this process: hold it to one thread like any worker
        # (before the renderer starts Mesa's thread pool).
        from hybrid.data.generate import limit_this_process_to_one_thread

        limit_this_process_to_one_thread()
    try:
        summary = generate(
            args.recipe,
            args.out,
            args.clips,
            seed=args.seed,
            clips_per_shard=args.clips_per_shard,
            workers=args.workers,
            ray_address=args.ray_address,
            progress=bars.stage("clips"),
            compression=args.compression,
        )
    except Exception as err:
        bars.close()
        return _report(err, args.recipe)
    finally:
        bars.close()
    print(
        f"{summary.out_dir}: {summary.clips} clips ({summary.clips_written} made now in "
        f"{summary.shards_written} shards, {summary.seconds:.1f} s on {summary.workers} worker(s), "
        f"{summary.clips_per_second * 3600:.0f} clips/h); check with: hybrid dataset verify {summary.out_dir}"
    )
    return 0


def cmd_dataset_verify(args: argparse.Namespace) -> int:
    from hybrid.data.shards import DatasetError
    from hybrid.data.verify import verify_dataset

    try:
        report = verify_dataset(args.dir)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_SCENE_ERROR
    print(report.summary())
    return 0 if report.ok else EXIT_SCENE_ERROR  # a damaged dataset is bad input; 1 is kept for bugs


def cmd_dataset_preview(args: argparse.Namespace) -> int:
    from hybrid.data.preview import DEFAULT_BUFFERS, write_preview
    from hybrid.data.shards import DatasetError

    out = args.out or str(Path(args.dir) / "preview.mp4")
    buffers = tuple(args.buffers.split(",")) if args.buffers else DEFAULT_BUFFERS
    try:
        from hybrid.io.clip import check_writable_parent

        check_writable_parent(Path(out).resolve(), what="no preview")
    except Exception as err:
        return _report(err)
    try:
        path = write_preview(args.dir, out, clips=args.clips, buffers=buffers)
    except (DatasetError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_SCENE_ERROR
    except OSError as err:
        return _report(err, out, writing=True, target=out)
    print(f"wrote {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from hybrid.data.shards import DatasetError
    from hybrid.neural.checkpoint import CheckpointError
    from hybrid.neural.conditioning import ConditionError
    from hybrid.neural.evaluate import EvalError, EvalOptions, evaluate, reproduce_command, write_report
    from hybrid.scene import SceneError

    options = EvalOptions(
        clips=args.clips, steps=args.steps, scheduler=args.scheduler, seed=args.seed,
        long_clips=args.long_clips, long_seed=args.long_seed, recipe=args.recipe,
        resolution=args.resolution, reference_samples=args.reference_samples,
    )
    out = Path(args.out) if args.out else Path(args.checkpoint) / "EVAL.md"
    try:  # an unusable --out fails now, not after the whole evaluation
        from hybrid.io.clip import check_writable_parent

        check_writable_parent(out.resolve(), what="no report")
    except Exception as err:
        return _report(err)
    bars = _Bars("eval", not args.quiet, unit="clip")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        results = evaluate(args.checkpoint, args.dataset, options, progress=bars, device=device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CHECKPOINT_ERROR
    except (DatasetError, EvalError, ConditionError, SceneError) as err:  # the dataset does not fit the checkpoint
        print(f"error: {err}", file=sys.stderr)
        return EXIT_SCENE_ERROR
    except Exception as err:
        return _report(err)
    finally:
        bars.close()
    try:
        md, js = write_report(results, out, command=f"{reproduce_command(results)} --out {out}")
    except OSError as err:
        return _report(err, str(out), writing=True, target=str(out))
    s = results["summary"]
    for method in ("neural", "frame_by_frame", "albedo"):
        r = s[method]
        print(f"{method:15s} PSNR {r['psnr']:6.2f} dB  SSIM {r['ssim']:.3f}  warp error {r['warp_error']:6.2f}")
    print(f"{'target':15s} {'':26s}  warp error {s['target']['warp_error']:6.2f}")
    print(f"wrote {md} and {js}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    import hybrid
    from hybrid.data.shards import COMPRESSIONS, DEFAULT_COMPRESSION
    from hybrid.io.clip import DEFAULT_STORAGE, STORAGES
    from hybrid.render.backends import BEAUTY_BACKENDS, DEFAULT_BEAUTY

    parser = argparse.ArgumentParser(
        prog="hybrid", description="Physically consistent video from YAML scenes: physics, exact buffers, clips."
    )
    parser.add_argument("--version", action="version", version=f"hybrid {hybrid.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render a scene (or every scene in a folder) into a clip folder")
    r.add_argument("scene", help="a scene .yaml file, or a folder of them")
    r.add_argument("--out", required=True, help="output clip folder (for a folder of scenes: one sub-folder per scene)")
    r.add_argument("--frames", type=int, help="override the scene's frame count")
    r.add_argument("--resolution", type=_resolution, help="override the resolution, WIDTHxHEIGHT")
    r.add_argument("--seed", type=int, help="override the scene's seed")
    r.add_argument(
        "--renderer", choices=[*sorted(BEAUTY_BACKENDS), "neural"], default=DEFAULT_BEAUTY,
        help="how the beauty frames are drawn: a beauty back end (raster: the rasteriser; cycles: Blender's "
        "path tracer, see --samples, --denoise, --device), or the neural renderer from the raster buffers "
        "(default: raster)",
    )
    r.add_argument("--samples", type=_positive_int, help="with --renderer cycles: paths per pixel (default 64)")
    r.add_argument(
        "--denoise", action=argparse.BooleanOptionalAction, default=None,
        help="with --renderer cycles: OpenImageDenoise on the path-traced frames (default: on)",
    )
    r.add_argument(
        "--device", choices=["cpu", "cuda", "optix"], default=None,
        help="with --renderer cycles: where Cycles traces (default cpu)",
    )
    r.add_argument(
        "--hdr", action="store_true",
        help="also keep the beauty frames' linear radiance (before the post chain) as the float buffer `radiance`",
    )
    r.add_argument(
        "--storage", choices=STORAGES, default=DEFAULT_STORAGE,
        help="how the buffers are kept: compact (one file, flow to 1/64 px, depth to 1e-4 relative, ids and "
        "colours exact), npz (exact arrays for numpy.load), png or exr (per-frame image files under frames/) "
        f"(default: {DEFAULT_STORAGE})",
    )
    r.add_argument(
        "--buffers", type=_buffer_list, metavar="NAME,NAME",
        help="write only these buffers, comma-separated, e.g. rgb,depth,instance (default: all the clip holds)",
    )
    r.add_argument("--checkpoint", help="neural renderer checkpoint folder (default: checkpoints/neural_pt in the repository)")
    r.add_argument(
        "--steps", type=_positive_int, default=None,
        help="neural renderer denoising steps per window (default: the checkpoint's sample_steps)",
    )
    r.add_argument(
        "--scheduler", choices=["dpmsolver++", "ddim", "euler", "ddpm"], default="dpmsolver++",
        help="neural renderer sampler (default dpmsolver++)",
    )
    r.add_argument("--compare", action="store_true", help="with --renderer neural: also write compare.mp4, raster | neural")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_render)

    v = sub.add_parser("validate", help="check scene files and report located errors")
    v.add_argument("files", nargs="+", help="scene .yaml files or folders")
    v.set_defaults(func=cmd_validate)

    d = sub.add_parser("dataset", help="synthetic datasets from a recipe: generate, verify, preview")
    dsub = d.add_subparsers(dest="dataset_command", required=True)
    g = dsub.add_parser("generate", help="generate (or resume) a dataset of rendered clips in tar shards")
    g.add_argument("recipe", help="a dataset recipe .yaml (see datasets/)")
    g.add_argument("--out", required=True, help="dataset folder (rerun the same command to resume)")
    g.add_argument("--clips", type=_positive_int, required=True, help="number of clips")
    g.add_argument("--seed", type=_non_negative_int, default=0, help="dataset seed: clip i depends only on (recipe, seed, i)")
    g.add_argument("--workers", type=_positive_int, help="parallel single-threaded workers (default: all cores)")
    g.add_argument("--ray-address", help="a Ray cluster to run on (default: a local Ray instance)")
    g.add_argument("--clips-per-shard", type=_positive_int, default=8, help="clips per tar shard (default 8)")
    g.add_argument(
        "--compression",
        choices=list(COMPRESSIONS),
        help="how buffers are stored in shards: gzip (.npy.gz members, lossless, about 2.5x smaller), none "
        "(.npy), or compact (.hyb members: flow to 1/64 px, depth to 1e-4 relative, ids and colours exact, "
        f"read by hybrid's loader); default {DEFAULT_COMPRESSION} for a new dataset, the folder's own when resuming",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_dataset_generate)
    pv = dsub.add_parser("preview", help="an MP4 (or PNG) grid of clips with their buffers side by side")
    pv.add_argument("dir", help="dataset folder")
    pv.add_argument("--out", help="output .mp4 or .png (default: DIR/preview.mp4)")
    pv.add_argument("--clips", type=_positive_int, default=4, help="clips to show, spread over the dataset (default 4)")
    pv.add_argument("--buffers", help="comma-separated buffers (default: rgb,depth,instance,normal,albedo,flow_fwd)")
    pv.set_defaults(func=cmd_dataset_preview)
    vd = dsub.add_parser("verify", help="check every shard against the manifest")
    vd.add_argument("dir", help="dataset folder")
    vd.set_defaults(func=cmd_dataset_verify)

    s = sub.add_parser("schema", help="print the scene JSON Schema (for editor autocompletion)")
    s.add_argument("--out", help="write to this file instead of stdout")
    s.set_defaults(func=cmd_schema)

    e = sub.add_parser("eval", help="score a neural renderer checkpoint on a held-out dataset; writes EVAL.md + JSON")
    e.add_argument("checkpoint", help="checkpoint folder (config.json, model.safetensors)")
    e.add_argument("dataset", help="held-out dataset folder (made by `hybrid dataset generate` with another seed)")
    e.add_argument("--clips", type=_positive_int, default=16, help="held-out clips to render and score (default 16)")
    e.add_argument(
        "--steps", type=_positive_int, default=None,
        help="denoising steps per window (default: the checkpoint's sample_steps)",
    )
    e.add_argument(
        "--scheduler", choices=["dpmsolver++", "ddim", "euler", "ddpm"], default="dpmsolver++",
        help="sampler (default dpmsolver++)",
    )
    e.add_argument("--seed", type=_non_negative_int, default=0, help="sampling seed (clip i uses seed + i; default 0)")
    e.add_argument(
        "--long-clips", type=_non_negative_int, default=2,
        help="clips 10 training windows long, rendered from the dataset's recipe, for drift (default 2; 0 skips)",
    )
    e.add_argument("--long-seed", type=_non_negative_int, help="recipe seed of the long clips (default: the first from 1000 no dataset uses)")
    e.add_argument("--recipe", help="the dataset's recipe file (default: found by name in datasets/, checked by sha256)")
    e.add_argument(
        "--resolution", type=_resolution,
        help="draw the held-out clips again from the dataset's recipe (the same scenes) at WIDTHxHEIGHT instead of "
        "reading them from the dataset; long clips too",
    )
    e.add_argument(
        "--reference-samples", type=_positive_int,
        help="with a path-traced dataset: draw the held-out clips again with this many Cycles samples per pixel for "
        "the reference (all cores)",
    )
    e.add_argument("--out", help="report path (default: CHECKPOINT/EVAL.md); the JSON goes beside it")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    previous = _raise_on_signals()
    try:
        return args.func(args)
    except Terminated:
        print("terminated; nothing was left half-written", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted; nothing was left half-written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # every command's last resort: a one-line message, never a traceback
        return _report(err)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _raise_on_signals() -> dict:
    """SIGTERM raises `Terminated` and Ctrl-C `KeyboardInterrupt`, never inside code that would swallow them.

    Returns the previous handlers to restore ({} off the main thread; SIGINT is left
    alone where it is ignored, as in a background job).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        if _inside_import(frame):
            # Some libraries import optional modules under `except BaseException` (trimesh
            # does), which would swallow the exception and leave a half-imported module
            # behind: ask again in a moment, once the import is over.
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        if _inside_blender(frame):
            # Blender runs its Python callbacks (the Cycles engine's) under a catch-all
            # that prints the exception and renders on: held, and raised by the renderer
            # as soon as the Blender call returns (hybrid.interrupts).
            defer(signum)
            return
        raise exception_for(signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    return previous


def _inside_import(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _inside_blender(frame) -> bool:
    """True when a frame on the stack is Blender's own Python (bpy's operators, the Cycles add-on)."""
    bpy = sys.modules.get("bpy")
    where = getattr(bpy, "__file__", None)
    if not where:
        return False
    root = os.path.dirname(os.path.abspath(where))
    while frame is not None:
        if frame.f_code.co_filename.startswith(root):
            return True
        frame = frame.f_back
    return False


if __name__ == "__main__":
    sys.exit(main())
