"""A library's per-image transform as a batched op whose random draws come from the op's stream.

torchvision.transforms.v2 and Kornia draw their random parameters from torch's global generator; an op
must draw from the generator it is given (op_contract), or cells stop pairing over seeds and a resumed
run draws other values. So each call runs the library under `torch.random.fork_rng` (the global state
is saved before and restored after), with the global generator seeded from the op's stream:

- torchvision: a v2 transform called on a batch draws one set of parameters for the whole batch (one
  crop for every image), so it runs image by image, each image seeded by a draw from the stream;
- Kornia: its augmentations draw per-sample parameters for a batch, so one seed per call, batched.

Cost (benchmarks/library_ops.py, RESULTS.md): torchvision's per-image loop is many times slower than a
native batched op; Kornia's batched call is closer.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

# Seeds drawn from the op's stream for the global generator: below 2**62, torch.manual_seed's range.
_SEED_HIGH = 2**62


def torchvision_transform(class_name: str) -> type:
    """torchvision.transforms.v2.<class_name>, a transform class; ValueError naming what exists if not."""
    from torchvision.transforms import v2

    found = getattr(v2, class_name, None)
    if not (isinstance(found, type) and issubclass(found, v2.Transform)):
        raise ValueError(f"torchvision.transforms.v2 has no transform {class_name!r} (torchvision "
                         f"{_version('torchvision')}); e.g. RandomSolarize, RandomPosterize, RandomEqualize")
    return found


def kornia_augmentation(class_name: str) -> type:
    """kornia.augmentation.<class_name>; ValueError if Kornia is missing or has no such augmentation."""
    try:
        import kornia.augmentation as augmentation
    except ImportError:
        raise ValueError("Kornia is not installed; pip install 'simclr-ablations[kornia]'") from None
    found = getattr(augmentation, class_name, None)
    if not isinstance(found, type):
        raise ValueError(f"kornia.augmentation has no augmentation {class_name!r} (kornia {_version('kornia')})")
    return found


def constructor_parameters(cls: type) -> dict[str, Any]:
    """A transform's constructor parameters and their defaults (inspect.Parameter.empty where required)."""
    return {param.name: param.default for param in list(inspect.signature(cls).parameters.values())
            if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)}


def torchvision_op(cls: type, defaults: dict[str, Any] | None = None) -> Callable[..., Tensor]:
    """A batched op of torchvision transform class `cls`, built with `defaults` updated by each call's
    params; image by image, each under a seed drawn from the op's stream."""
    defaults = dict(defaults or {})

    def op(images: Tensor, generator: torch.Generator, **params: Any) -> Tensor:
        transform = _built(cls, json.dumps({**defaults, **params}, sort_keys=True))
        seeds = torch.randint(0, _SEED_HIGH, (images.shape[0],), generator=generator, device=generator.device)
        result = torch.empty_like(images)
        with torch.random.fork_rng(devices=_devices(images)):
            for index, seed in enumerate(seeds.tolist()):
                torch.manual_seed(seed)
                result[index] = transform(images[index])
        return result

    op.__name__ = op.__qualname__ = f"tv_{cls.__name__}"
    return op


def kornia_op(cls: type, defaults: dict[str, Any] | None = None) -> Callable[..., Tensor]:
    """A batched op of Kornia augmentation class `cls` (per-sample parameters in one call), its draws
    seeded from the op's stream."""
    defaults = dict(defaults or {})

    def op(images: Tensor, generator: torch.Generator, **params: Any) -> Tensor:
        augmentation = _built(cls, json.dumps({**defaults, **params}, sort_keys=True))
        seed = int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=generator.device))
        with torch.random.fork_rng(devices=_devices(images)):
            torch.manual_seed(seed)
            # Kornia may return (B, C, H, W) of another shape or dtype: the contract names it, not a reshape here.
            return augmentation(images)

    op.__name__ = op.__qualname__ = f"kornia_{cls.__name__}"
    return op


@functools.lru_cache(maxsize=64)
def _built(cls: type, params_json: str) -> Any:
    # Built once per set of params: a study's cells call an op with a handful of sets, every step.
    return cls(**{name: tuple(value) if isinstance(value, list) else value
                  for name, value in json.loads(params_json).items()})


def _devices(images: Tensor) -> list[torch.device]:
    # fork_rng saves and restores the CPU generator always, and the CUDA generator of these devices.
    return [images.device] if images.device.type == "cuda" else []


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"
