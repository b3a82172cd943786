"""NeuralRenderer: a clip's buffers in, frames out, with a trained VideoDenoiser.

How a clip of any length is made:

1. Size. The model renders at its native pixel count (``config.resolution``) shaped to
   the clip's aspect ratio, each side a multiple of the UNet factor
   (``render_size``); buffers are point-sampled to that size (``conditioning``).
2. Noise. One noise video for the whole clip, carried from frame to frame along the
   exact backward flow with fresh noise where surfaces are disoccluded
   (``hybrid.neural.noise``), so detail that grows out of the noise stays on its
   surface across window boundaries too.
3. Windows. Frames are denoised ``config.window`` at a time. Each window after the
   first starts ``sample_context`` frames (``sample_context_frames``, else
   ``context_frames``) before the end of the previous one; those frames, already
   made, are given to the model as clean context (and, at every step, their noisy
   copy is the clean frame noised to that step with their own noise, as in
   training), so the new frames continue the old ones' look instead of starting
   afresh. With 0, windows follow one another and are tied together by the warped
   noise and, with ``output: detail_transfer``, by the correction carried along the
   flow. When the last window would run past the clip, the clip's last frame of
   buffers is repeated to fill it and the extra frames are dropped: every window has
   the length the model was trained with.
4. Draws. ``sample_draws`` noise videos are denoised as one batch; after each window
   the draws' frames are combined (their mean, shrunk towards the raster beauty where
   they disagree, ``correction_prior``) and every draw continues from that.

``frame_by_frame=True`` is the baseline the temporal machinery is measured against:
every frame alone (a window of one, no context) with independent noise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import numpy as np
import torch

from hybrid.neural.conditioning import ConditionError, build_condition, check_condition_inputs, frames_to_uint8
from hybrid.neural.config import NeuralConfig
from hybrid.neural.noise import clip_noise, clip_visibility, resize_flow
from hybrid.neural.schedulers import SCHEDULERS, make_scheduler

Progress = Optional[Callable[[int, int], None]]  # (denoising steps done, total over all windows)
NOISE_BUFFERS = ("flow_fwd", "flow_bwd", "instance")


def plan_windows(frames: int, window: int, context: int) -> list[tuple[int, int]]:
    """(start, context frames) of each window covering `frames` frames.

    The first window has no context; each next one starts `context` frames before the
    previous one's end. The last window may run past the clip (the caller pads it).
    """
    plan = [(0, 0)]
    while plan[-1][0] + window < frames:
        plan.append((plan[-1][0] + window - context, context))
    return plan


def with_raster_beauty(buffers: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """`buffers` with ``rgb_raster``: a clip rendered by the rasteriser has its beauty as ``rgb``.

    Path-traced clips and datasets keep the raster beauty as ``rgb_raster`` (and the
    reference as ``rgb``), which is left as it is.
    """
    if "rgb_raster" in buffers or "rgb" not in buffers:
        return buffers
    return {**buffers, "rgb_raster": buffers["rgb"]}


def render_size(config: NeuralConfig, height: int, width: int) -> tuple[int, int]:
    """(h, w) the model renders a height x width clip at: its native pixel count at the clip's aspect ratio,
    each side rounded to a multiple of the UNet factor."""
    f = config.factor
    pixels = config.resolution[0] * config.resolution[1]
    aspect = width / height
    h = max(f, int(round(math.sqrt(pixels / aspect) / f)) * f)
    w = max(f, int(round(math.sqrt(pixels * aspect) / f)) * f)
    return h, w


def _clip_shape(buffers: Mapping[str, np.ndarray], config: NeuralConfig) -> tuple[int, int, int]:
    """(T, H, W) of the clip, from the first image buffer a condition group reads (or any other)."""
    from hybrid.neural.conditioning import required_buffers

    for name in [*sorted(required_buffers(config.condition)), *buffers]:
        if name in buffers and np.ndim(buffers[name]) >= 3:
            t, h, w = np.shape(buffers[name])[:3]
            return int(t), int(h), int(w)
    raise ConditionError(f"the clip has no image buffers to render from (it has: {', '.join(buffers) or 'none'})")


class NeuralRenderer:
    """Renders clips with one VideoDenoiser (see the module docstring for how).

    ``shared_context`` (default True): with several draws, every draw continues from their
    combined frames; False lets each draw continue from its own (independent chains).
    """

    def __init__(self, model: torch.nn.Module, config: NeuralConfig, info: Optional[dict] = None,
                 device: Union[str, torch.device] = "cpu") -> None:
        if config.correction_prior == "auto":
            raise ValueError(
                "the model config says correction_prior: auto, which only a training config may: the trainer "
                "writes the measured number into the checkpoint it exports. Export the checkpoint again with "
                "training/train.py, or set correction_prior to a number (0 turns it off) in its config.json"
            )
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.info = dict(info or {})
        self.shared_context = True

    @classmethod
    def from_checkpoint(cls, path, device: Union[str, torch.device] = "cpu") -> "NeuralRenderer":
        """Load a checkpoint folder (``hybrid.neural.checkpoint``); raises CheckpointError with what to do."""
        from hybrid.neural.checkpoint import load_checkpoint

        model, config, info = load_checkpoint(path, device=device)
        return cls(model, config, info, device=device)

    @property
    def sample_context(self) -> int:
        """Context frames between windows when sampling: ``sample_context_frames``, else ``context_frames``."""
        c = self.config
        return c.context_frames if c.sample_context_frames is None else c.sample_context_frames

    def render_size(self, height: int, width: int) -> tuple[int, int]:
        return render_size(self.config, height, width)

    def check_inputs(self, buffers: Mapping[str, np.ndarray], metadata: Mapping, warp_noise: bool = True) -> None:
        """Raise ConditionError when the clip lacks a buffer or metadata entry the render needs."""
        check_condition_inputs(buffers, metadata, self.config.condition)
        if warp_noise:
            missing = [b for b in NOISE_BUFFERS if b not in buffers]
            if missing:
                raise ConditionError(
                    f"warped noise and the correction carried along the flow need the buffers {', '.join(NOISE_BUFFERS)}; "
                    f"this clip lacks {', '.join(missing)}. Render the clip with `hybrid render` (it writes them), or "
                    "sample with warp_noise=False and temporal_blend=1"
                )
        if self.config.output == "detail_transfer" and self.config.reference_filter_width is not None \
                and "instance" not in buffers:
            raise ConditionError(
                "reference_filter_width resamples the raster frame at object boundaries, found in the instance "
                "buffer, which this clip lacks: render it with `hybrid render` (which writes it) or set "
                "reference_filter_width to null in the checkpoint's config.json"
            )

    def clip_noise(self, buffers: Mapping[str, np.ndarray], size: tuple[int, int], frames: int, seed: int,
                   warp: bool) -> np.ndarray:
        """float32 (T, 3, h, w): flow-warped noise at `size` when `warp`, else independent noise."""
        h, w = size
        if not warp:
            return np.random.default_rng(seed).standard_normal((frames, 3, h, w), dtype=np.float32)
        from hybrid.neural.conditioning import resize_nearest

        flow_bwd = resize_flow(np.asarray(buffers["flow_bwd"]), size)
        flow_fwd = resize_flow(np.asarray(buffers["flow_fwd"]), size)
        instance = resize_nearest(np.asarray(buffers["instance"]), size)
        visible = clip_visibility(flow_fwd, flow_bwd, instance)
        return clip_noise(frames, 3, h, w, flow_bwd, visible, seed)

    @torch.inference_mode()
    def render(
        self,
        buffers: Mapping[str, np.ndarray],
        metadata: Mapping,
        *,
        steps: Optional[int] = None,
        scheduler: str = "dpmsolver++",
        seed: int = 0,
        warp_noise: bool = True,
        frame_by_frame: bool = False,
        draws: Optional[int] = None,
        temporal_blend: Optional[float] = None,
        progress: Progress = None,
    ) -> np.ndarray:
        """uint8 sRGB (T, h, w, 3) frames for a clip, (h, w) = ``render_size`` of its buffers
        (the clip's own size with ``output: detail_transfer``).

        buffers: the clip's buffers, each (T, H, W, ...) (NumPy or CPU tensors); metadata:
        its metadata.json dict (lights and camera poses for light groups). steps:
        denoising steps per window (None: the checkpoint's ``sample_steps``); scheduler: one of
        SCHEDULERS; seed: the same seed gives the same frames on the same machine; draws,
        temporal_blend: None takes the checkpoint's ``sample_draws`` and ``temporal_blend``.
        ``frame_by_frame`` renders every frame alone with independent noise and no correction
        carried between frames. progress(done, total) is called after every denoising step.
        """
        steps = self.config.sample_steps if steps is None else steps
        draws = self.config.sample_draws if draws is None else draws
        blend = self.config.temporal_blend if temporal_blend is None else temporal_blend
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if draws < 1:
            raise ValueError(f"draws must be at least 1, got {draws}")
        if not 0.0 < blend <= 1.0:
            raise ValueError(f"temporal_blend must be in (0, 1], got {blend}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        warp = warp_noise and not frame_by_frame
        buffers = with_raster_beauty(buffers)
        carried = self.config.output == "detail_transfer" and blend < 1.0 and not frame_by_frame
        self.check_inputs(buffers, metadata, warp_noise=warp or carried)
        frames, height, width = _clip_shape(buffers, self.config)
        size = self.render_size(height, width)

        cond = build_condition(buffers, metadata, self.config.condition, size)  # (T, Cc, h, w)
        # Draw 0 uses `seed` itself, so one draw gives the frames it always gave.
        noise = np.stack([self.clip_noise(buffers, size, frames, seed if d == 0 else [seed, 2, d], warp) for d in range(draws)])
        made = self._sample(cond, noise, steps, scheduler, seed, frame_by_frame, progress)  # (D, T, 3, h, w)
        made = self._trusted_mean(made, cond)
        if self.config.output == "detail_transfer":
            return frames_to_uint8(self._transfer(made.cpu().numpy(), cond, buffers, blend if carried else 1.0))
        return frames_to_uint8(made)

    def _trusted_mean(self, made: torch.Tensor, cond: np.ndarray) -> torch.Tensor:
        """(T, 3, h, w): the mean over the draws; with ``correction_prior`` and several draws, its correction
        to the raster beauty shrunk where the draws disagree (see NeuralConfig.correction_prior)."""
        mean = made.mean(0)
        prior = self.config.correction_prior
        if len(made) < 2 or not prior or self.config.output != "detail_transfer":
            return mean
        from hybrid.neural.conditioning import condition_offsets

        at = condition_offsets(self.config.condition)["raster_beauty"]
        raster = torch.from_numpy(cond[:, at : at + 3]).to(mean.device)
        spread = made.var(0, unbiased=True).mean(1, keepdim=True)  # (T, 1, h, w): the draws' variance per pixel
        spread = torch.nn.functional.avg_pool2d(spread, 3, stride=1, padding=1, count_include_pad=False)
        return raster + prior / (prior + spread) * (mean - raster)

    def _sample(self, cond: np.ndarray, noise: np.ndarray, steps: int, scheduler: str, seed: int,
                frame_by_frame: bool, progress: Progress) -> torch.Tensor:
        """float (D, T, 3, h, w) in [-1, 1]: the clip denoised once per draw of `noise` (D, T, 3, h, w), as one batch."""
        draws, frames = noise.shape[:2]
        size = noise.shape[-2:]
        window, context = (1, 0) if frame_by_frame else (self.config.window, self.sample_context)
        plan = plan_windows(frames, window, context)
        padded = plan[-1][0] + window
        if padded > frames:  # repeat the last frame's buffers; fresh noise for the frames that get dropped
            extra = np.random.default_rng([seed, 1]).standard_normal((draws, padded - frames, *noise.shape[2:]), dtype=np.float32)
            noise = np.concatenate([noise, extra], axis=1)
            cond = np.concatenate([cond, np.repeat(cond[-1:], padded - frames, axis=0)])

        dev = self.device
        cond_t = torch.from_numpy(cond).to(dev)
        noise_t = torch.from_numpy(noise).to(dev)
        made = torch.zeros((draws, padded, 3, *size), device=dev)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        total, done = len(plan) * steps, 0
        for start, k in plan:
            sched = make_scheduler(scheduler, self.config)
            sched.set_timesteps(steps, device=dev)
            sl = slice(start, start + window)
            eps, ctx = noise_t[:, sl], torch.zeros((draws, window, 3, *size), device=dev)
            ctx[:, :k] = made[:, start : start + k]
            mask = torch.zeros((draws, window), dtype=torch.bool, device=dev)
            mask[:, :k] = True
            window_cond = cond_t[sl].expand(draws, *cond_t[sl].shape)
            x = eps * sched.init_noise_sigma
            for t in sched.timesteps:
                if k:
                    x[:, :k] = sched.add_noise(ctx[:, :k], eps[:, :k], t.reshape(1))
                pred = self._predict(sched.scale_model_input(x, t), t, window_cond, ctx, mask)
                x = sched.step(pred, t, x, generator=generator).prev_sample
                done += 1
                if progress is not None:
                    progress(done, total)
            new = x[:, k:].clamp(-1.0, 1.0)
            if self.shared_context and draws > 1:
                # Every draw continues from the best estimate of the frames so far, not its own.
                new = self._trusted_mean(new, cond[start + k : start + window]).expand_as(new)
            made[:, start + k : start + window] = new
        return made[:, :frames]

    def _transfer(self, made: np.ndarray, cond: np.ndarray, buffers: Mapping[str, np.ndarray], blend: float) -> np.ndarray:
        """float (T, 3, H, W) at the clip's resolution: the raster beauty plus the model's upsampled correction,
        carried along the flow with weight 1 - `blend` (``hybrid.neural.temporal``)."""
        from hybrid.neural.conditioning import condition_offsets
        from hybrid.neural.upsample import detail_transfer

        at = condition_offsets(self.config.condition)["raster_beauty"]
        raster_low = cond[:, at : at + 3]
        raster_full = np.asarray(buffers["rgb_raster"], dtype=np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
        if self.config.reference_filter_width is not None:
            from hybrid.neural.pixel_filter import geometric_edges, match_pixel_filter

            width = self.config.reference_filter_width  # check_inputs made sure of the instance buffer
            raster_full = match_pixel_filter(raster_full, width, geometric_edges(buffers["instance"], width))
        return detail_transfer(made, raster_low, raster_full, buffers, temporal_blend=blend)

    def _predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, ctx: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        """The model on one window of every draw (D, T, ...) as a batch; bfloat16 autocast on CUDA, float32 elsewhere."""
        args = (x, t.reshape(1).expand(len(x)).to(x.device), cond, ctx, mask)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.model(*args).float()
        return self.model(*args)


# ---------------------------------------------------------------- a rendered clip with neural frames

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "neural_pt"


def neural_clip(
    clip,
    renderer: NeuralRenderer,
    *,
    steps: Optional[int] = None,
    scheduler: str = "dpmsolver++",
    compare: bool = False,
    checkpoint: Optional[str] = None,
    progress: Progress = None,
):
    """The raster Clip with the neural frames as its beauty: (Clip, extra videos, render size (h, w)).

    The neural frames (made at ``render_size`` and resized to the clip's resolution) become
    ``rgb``, so ``rgb.mp4`` and the stored ``rgb`` buffer keep holding the clip's final frames;
    the raster beauty stays among the buffers as ``rgb_raster``. Every other buffer is the
    raster pass's, exact as always. ``metadata["renderer"]`` records how the frames were
    made. With `compare`, the extra videos hold ``compare.mp4``: raster | neural side by side.
    The sampling seed is the scene's seed.
    """
    from hybrid import buffers as buffer_registry
    from hybrid.io.clip import Clip
    from hybrid.neural.conditioning import resize_uint8_frames

    buffers = clip.buffers
    frames, height, width = buffers["rgb"].shape[:3]
    seed = int(clip.metadata.get("seed", 0))
    size = renderer.render_size(height, width)
    steps = renderer.config.sample_steps if steps is None else steps
    made = renderer.render(buffers, clip.metadata, steps=steps, scheduler=scheduler, seed=seed, progress=progress)
    rgb = resize_uint8_frames(made, (height, width))
    new_buffers = dict(buffers)
    new_buffers["rgb_raster"], new_buffers["rgb"] = buffers["rgb"], rgb
    metadata = dict(clip.metadata)
    docs = dict(metadata.get("buffers", {}))
    docs["rgb"] = "uint8 (T,H,W,3) final sRGB frame, made by the neural renderer (see `renderer`)"
    docs["rgb_raster"] = buffer_registry.get("rgb_raster").doc
    metadata["buffers"] = docs
    metadata["renderer"] = {
        "name": "neural",
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "render_size": [size[1], size[0]],
        "steps": steps,
        "scheduler": scheduler,
        "seed": seed,
        "window": renderer.config.window,
        "context_frames": renderer.sample_context,
        "draws": renderer.config.sample_draws,
        "correction_prior": renderer.config.correction_prior,
        "temporal_blend": renderer.config.temporal_blend,
        "condition": list(renderer.config.condition),
        "warped_noise": True,
        "checkpoint_info": renderer.info,
    }
    extra = {}
    if compare:
        extra["compare.mp4"] = np.concatenate([buffers["rgb"], rgb], axis=2)
    return Clip(buffers=new_buffers, metadata=metadata), extra, size
