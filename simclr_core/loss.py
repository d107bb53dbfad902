"""NT-Xent, the normalised temperature-scaled cross-entropy loss (SimCLR, Chen et al. 2020, Eq. 1).

Pure functions: no state, no module. Shapes are given in comments (N images, V views, D dims).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def _similarities(views: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine similarities over all V*N views, self-similarity masked out: (V*N, V*N)."""
    z = views.reshape(-1, views.shape[-1])  # (V*N, D), view-major
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()  # half-precision logits at 1/temperature scale lose the loss's small terms
    z = F.normalize(z, dim=1)
    logits = z @ z.T / temperature
    # An anchor is never its own candidate (the 1[k != i] of Eq. 1).
    return logits.fill_diagonal_(float("-inf"))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over the 2N views of N images, mean over all 2N anchors (paper Eq. 1, Algorithm 1).

    z1, z2: (N, D) projections of the two views, row i of each from the same image.
    For anchor i the positive is the other view of image i; the 2N-2 other views are negatives.
    """
    _check_temperature(temperature)
    return nt_xent_multi(torch.stack([z1, z2]), temperature)


def nt_xent_multi(views: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent for V >= 2 views per image: every other view of the same image is a positive.

    views: (V, N, D). Each anchor's loss is the mean over its V-1 positives of
    -log softmax(similarity to that positive) over all V*N-1 other views (the multi-positive
    form of Khosla et al. 2020, "L_out"); with V = 2 it is exactly nt_xent.
    """
    _check_temperature(temperature)
    n_views, n_images = views.shape[0], views.shape[1]
    logits = _similarities(views, temperature)  # (V*N, V*N)
    log_prob = logits.log_softmax(dim=1)
    image = torch.arange(n_images, device=views.device).repeat(n_views)  # (V*N,) image index
    positive = image[:, None] == image[None, :]
    positive.fill_diagonal_(False)
    # where() rather than multiply: the masked-out diagonal holds -inf, and -inf * 0 is NaN.
    per_anchor = torch.where(positive, log_prob, 0.0).sum(dim=1) / (n_views - 1)
    return -per_anchor.mean()


@torch.no_grad()
def contrastive_accuracy(views: torch.Tensor) -> torch.Tensor:
    """Fraction of anchors whose most similar other view is one of its positives: top-1 among V*N-1.

    views: (V, N, D). Temperature does not change the argmax, so none is taken.
    """
    n_views, n_images = views.shape[0], views.shape[1]
    nearest = _similarities(views, 1.0).argmax(dim=1)  # (V*N,)
    image = torch.arange(n_images, device=views.device).repeat(n_views)
    return (image[nearest] == image).float().mean()
