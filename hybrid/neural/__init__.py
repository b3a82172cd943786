"""The neural renderer: a conditional video diffusion model from state buffers to frames.

- ``config``: NeuralConfig, the architecture and noise schedule (a checkpoint's config.json)
- ``conditioning``: condition groups (buffer channels per frame), one registry entry each
- ``model``: VideoDenoiser, a UNet over frames with temporal layers
- ``schedulers``: diffusers schedulers built from a config
- ``checkpoint``: safetensors + JSON checkpoint folders, written atomically
- ``noise``: sampling noise carried along the exact flow
- ``sampler``: NeuralRenderer, clips of any length in overlapping windows

Importing this package does not import torch; the submodules do.
"""

from hybrid.neural.config import FORMAT, NeuralConfig, NeuralConfigError

__all__ = ["FORMAT", "NeuralConfig", "NeuralConfigError"]
