"""Per-sample building blocks of the batched augmentations: one random value per image drawn from a
`torch.Generator`, broadcasting it over the image, and applying a transform to the chosen images only.

Both the geometric ops (`augmentations`) and the colour ops (`colour`) draw through these, so every op
consumes the generator the same way whatever its probability (see `bernoulli`).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def broadcast(values: Tensor, images: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) in the images' dtype, to broadcast one value per image."""
    return values.to(images.dtype).view(-1, 1, 1, 1)


def bernoulli(batch: int, p: float, generator: torch.Generator, device: torch.device) -> Tensor:
    """(B,) bool: which samples an op with probability p applies to. Always draws B numbers so the
    generator stream does not depend on p (changing p=0 to p=1 changes no other op's draws)."""
    return torch.rand(batch, generator=generator, device=device) < p


def uniform(batch: int, low: float, high: float, generator: torch.Generator,
             device: torch.device) -> Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator, device=device)


def transform_chosen(images: Tensor, chosen: Tensor, transform: Callable[[Tensor], Tensor]) -> Tensor:
    """A copy of images with `transform` applied to the samples where `chosen` (B,) is True.

    Gathers the chosen samples instead of computing on all and selecting with torch.where: the
    unchosen ones cost nothing, and bool-mask ops on full batches are slow on CPU.
    """
    index = torch.nonzero(chosen).squeeze(1)
    if index.numel() == images.shape[0]:
        # Every sample chosen (p = 1, e.g. sobel in Figure 5): no gather or scatter. contiguous() because a
        # transform may return an expanded view, which later in-place ops could not write to.
        return transform(images).contiguous()
    result = images.clone()
    if index.numel():
        result.index_copy_(0, index, transform(images.index_select(0, index)))
    return result


def check_probability(p: float) -> None:
    # Ops are also called directly (not through validate_pipeline); a bad p would silently mean 0 or 1.
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p!r}")


# --------------------------------------------------------------------------------------------------
# The ops. Signature: op(images, generator, *, params) -> images.
# --------------------------------------------------------------------------------------------------
