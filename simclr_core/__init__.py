"""simclr_core: the SimCLR engine (data, augmentations, model, loss, trainer, probe).

It knows nothing of YAML, MLflow or Optuna: build a `RunConfig`, call `train`, read the result.
"""

from simclr_core.config import (
    AugmentConfig, ConfigError, DataConfig, ModelConfig, OpSpec, ProbeConfig, RunConfig, TrainConfig,
)
from simclr_core.trainer import EpochMetrics, NonFiniteLossError, RunResult, train

__all__ = [
    "AugmentConfig", "ConfigError", "DataConfig", "EpochMetrics", "ModelConfig", "NonFiniteLossError",
    "OpSpec", "ProbeConfig", "RunConfig", "RunResult", "TrainConfig", "train",
]
