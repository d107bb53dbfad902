"""simclr_core: the SimCLR engine (data, augmentations, model, loss, trainer, probe).

It knows nothing of YAML, MLflow or Optuna: build a `RunConfig`, call `train`, read the result.

The names below load on first use (PEP 562), so that `simclr_core.config`, all a study file's checks
need, imports no torch: a typo is refused in a fraction of a second, not after the seconds torch takes
to import (MLflow's own package loads its flavours the same way).
"""

import importlib

# Each public name and the module that defines it.
_DEFINED_IN = {
    "AugmentConfig": "simclr_core.config", "ConfigError": "simclr_core.config", "DataConfig": "simclr_core.config",
    "ModelConfig": "simclr_core.config", "OpSpec": "simclr_core.config", "ProbeConfig": "simclr_core.config",
    "RunConfig": "simclr_core.config", "TrainConfig": "simclr_core.config",
    "EpochMetrics": "simclr_core.trainer", "NonFiniteLossError": "simclr_core.trainer",
    "RunResult": "simclr_core.trainer", "train": "simclr_core.trainer",
}

__all__ = sorted(_DEFINED_IN)


def __getattr__(name: str):
    if name not in _DEFINED_IN:
        raise AttributeError(f"module 'simclr_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_DEFINED_IN[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
