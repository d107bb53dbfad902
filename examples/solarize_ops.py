"""BYOL's solarisation as a batched op for the augmentation grid (Grill et al. 2020, Appendix B, Table 6:
"solarization", applied with probability 0.2 to the second view; SimCLR's grid lacks it).

Solarisation inverts every pixel at or above a threshold: x -> 1 - x where x >= threshold (BYOL's
threshold is 0.5 on [0, 1] images). Whether each image is solarised is drawn per sample from the op's
own generator, so the op pairs over seeds like the built-in ops.

Name it in a study file (docs/augmentations.md):

    ops:
      solarize: solarize_ops:solarize      # found beside the study file, or on sys.path

An op is a function `(images, generator, **params) -> images` on a float batch (B, 3, H, W) in [0, 1]:
it returns a new batch (never edits its input) and draws every random number from `generator`. Its
keyword parameters, with defaults, are what a study file may set; their annotations say what each
allows, and are read without importing this module, so a bad value is refused before torch loads.
"""

from typing import Annotated

import torch

from simclr_core.op_schema import Range


def solarize(images: torch.Tensor, generator: torch.Generator, *,
             p: Annotated[float, Range(0, 1)] = 0.2,
             threshold: Annotated[float, Range(0, 1)] = 0.5) -> torch.Tensor:
    """Invert the pixels at or above `threshold` in each image with probability p (BYOL: p = 0.2 on its
    second view, threshold 0.5)."""
    apply = torch.rand(images.shape[0], generator=generator, device=images.device) < p  # (B,)
    inverted = torch.where(images >= threshold, 1.0 - images, images)
    return torch.where(apply.view(-1, 1, 1, 1), inverted, images)
