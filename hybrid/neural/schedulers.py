"""Noise schedulers from diffusers, all built from one NeuralConfig so training and sampling agree.

The betas (``train_timesteps``, ``beta_schedule``) and what the network predicts
(``prediction_type``) come from the checkpoint's config; only the solver differs:

- ``ddpm``: ancestral sampling, the training-time forward process (``add_noise``) and a
  reference sampler that needs hundreds of steps;
- ``ddim``: deterministic, a good 20 to 50 step sampler;
- ``dpmsolver++``: second-order multistep DPM-Solver++, the default (good at 10 to 25 steps);
- ``euler``: Karras-style Euler over sigmas.

Sampling schedules use "trailing" timestep spacing, so the first step starts at the
last training timestep (pure noise) even with few steps; "leading" spacing would
start below it and leave a trace of signal the model never saw during training.
Predicted clean frames are clipped to [-1, 1] where the scheduler offers it (the
target range), which steadies small models at few steps.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from hybrid.neural.config import NeuralConfig

SCHEDULERS = ("ddpm", "ddim", "dpmsolver++", "euler")


def make_scheduler(name: str, config: NeuralConfig) -> SchedulerMixin:
    """A fresh diffusers scheduler `name` (one of SCHEDULERS) for `config`'s noise schedule.

    Multistep solvers keep state between steps: make one per sampled window.
    """
    common = dict(
        num_train_timesteps=config.train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
    )
    if name == "ddpm":
        return DDPMScheduler(**common, clip_sample=True, clip_sample_range=1.0, timestep_spacing="trailing")
    if name == "ddim":
        return DDIMScheduler(
            **common, clip_sample=True, clip_sample_range=1.0, set_alpha_to_one=True, timestep_spacing="trailing"
        )
    if name == "dpmsolver++":
        # Thresholding with a maximum of 1 clips the predicted clean frame to [-1, 1].
        return DPMSolverMultistepScheduler(
            **common,
            algorithm_type="dpmsolver++",
            solver_order=2,
            thresholding=True,
            sample_max_value=1.0,
            timestep_spacing="trailing",
            lower_order_final=True,
        )
    if name == "euler":
        return EulerDiscreteScheduler(**common, timestep_spacing="trailing")
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
