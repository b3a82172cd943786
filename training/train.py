"""Train the neural renderer from a training config.

    python training/train.py training/neural_64.yaml [--out DIR] [--steps N] [--resume] [--stop-at STEP]
    torchrun --nproc_per_node 2 training/train.py training/neural_64.yaml [...]

One process trains on the CPU or one GPU; under torchrun every process is a
DistributedDataParallel rank (gloo on CPUs, NCCL on GPUs). The run folder (the
config's `out`, or --out) receives checkpoints/, tb/ (TensorBoard: `tensorboard
--logdir DIR/tb`) and, after the last step, final/: the EMA weights as a renderer
checkpoint (config.json, model.safetensors, info.json).

--resume continues from the newest checkpoint in the run folder (from scratch if
there is none): a killed or time-boxed run rerun with the same command and --resume
ends with the same weights as one that never stopped. --stop-at STEP ends this run
after STEP with a checkpoint (the learning-rate schedule still spans all steps).

Exit codes: 0 done, 2 bad config or data, 4 the run folder cannot be used.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="train.py", description="Train the neural renderer (see training/neural_64.yaml).")
    parser.add_argument("config", help="training config .yaml")
    parser.add_argument("--out", help="run folder (default: the config's `out`)")
    parser.add_argument("--steps", type=int, help="override optim.steps (the schedule's length)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    parser.add_argument("--stop-at", type=int, help="stop after this step, with a checkpoint")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    import torch.distributed as dist

    from hybrid.data.shards import DatasetError
    from hybrid.neural.conditioning import ConditionError
    from hybrid.train.config import TrainConfigError, load_train_config
    from hybrid.train.loop import RunFolderError, train
    from hybrid.train.state import StateError

    rank = int(os.environ.get("RANK", "0"))
    try:
        config = load_train_config(args.config, overrides={"optim.steps": args.steps})
        result = train(config, args.out, resume=args.resume, stop_at=args.stop_at, progress=not args.quiet)
    except (TrainConfigError, DatasetError, ConditionError, StateError) as err:
        if rank == 0:
            print(f"error: {err}" if not isinstance(err, TrainConfigError) else err, file=sys.stderr)
        return 2
    except RunFolderError as err:
        if rank == 0:
            print(f"error: {err}", file=sys.stderr)
        return 4
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        val = "" if result.val_loss_ema is None else f", val loss {result.val_loss:.4f} (EMA {result.val_loss_ema:.4f})"
        print(
            f"step {result.step}: train loss {result.train_loss:.4f}{val}; {result.samples_per_s:.2f} windows/s "
            f"over {result.seconds:.0f} s -> {result.final_dir or result.run_dir}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
