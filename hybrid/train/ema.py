"""Exponential moving average (EMA) of a model's weights: the weights that get exported.

Diffusion models sample far better from an average of recent weights than from the
last noisy iterate. The average is kept in float32 beside the model, updated after
every optimiser step as ``shadow = d * shadow + (1 - d) * weight``. The decay warms
up as ``d = min(decay, (1 + step) / (10 + step))`` (as diffusers' EMAModel does), so
early averages are not dominated by the random initial weights.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn


class EMA:
    """The running average of every floating-point tensor in ``model.state_dict()``.

    Integer buffers (counters) are not averaged; ``copy_to`` leaves them as the
    target model has them. The shadow tensors live on the model's device.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] = {
            name: t.detach().to(torch.float32, copy=True)
            for name, t in model.state_dict().items()
            if t.is_floating_point()
        }

    def decay_at(self, step: int) -> float:
        """The decay used for the update after optimiser step ``step`` (0-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average towards ``model``'s current weights (call after each optimiser step)."""
        weight = 1.0 - self.decay_at(step)
        for name, tensor in model.state_dict().items():
            average = self.shadow.get(name)
            if average is not None:
                average.lerp_(tensor.detach().to(torch.float32), weight)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (same architecture), in its own dtypes."""
        state = model.state_dict()
        for name, average in self.shadow.items():
            state[name].copy_(average.to(state[name].dtype))

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, float32 tensor) pairs, for saving."""
        return iter(self.shadow.items())

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Replace the average with saved tensors; names and shapes must match exactly."""
        missing = sorted(set(self.shadow) - set(tensors))
        extra = sorted(set(tensors) - set(self.shadow))
        if missing or extra:
            raise KeyError(f"EMA tensors do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
        for name, average in self.shadow.items():
            if tensors[name].shape != average.shape:
                raise ValueError(f"EMA tensor {name}: saved shape {tuple(tensors[name].shape)}, model {tuple(average.shape)}")
            average.copy_(tensors[name])
