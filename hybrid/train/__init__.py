"""Training the neural renderer: config (YAML -> TrainConfig), data (windows from shards),
ema, state (atomic training checkpoints) and loop (``train``, read top to bottom).

The entry point is ``training/train.py`` (single process or under torchrun).
"""

from hybrid.train.config import TrainConfig, TrainConfigError, load_train_config

__all__ = ["TrainConfig", "TrainConfigError", "load_train_config"]
