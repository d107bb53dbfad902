"""Evaluation on frozen features: the linear probe (SimCLR Section 2.3, "linear evaluation
protocol") and the weighted kNN monitor (Wu et al. 2018, Section 3.4)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from simclr_core.config import ProbeConfig
from simclr_core.model import SimCLRModel


@dataclass
class ProbeResult:
    h_top1: float  # test top-1 of a linear classifier on the encoder output h, fraction in [0,1]
    z_top1: float | None  # the same on the projection z = g(h); None when not probed


@contextlib.contextmanager
def frozen(model: torch.nn.Module):
    """Run the model in eval() so BatchNorm uses (and never updates) its running statistics,
    as MoCo's probe does; restore the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def extract_features(
    model: SimCLRModel,
    images: torch.Tensor,
    *,
    batch_size: int,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """h and z for uint8 images (N,3,H,W), in float32 on the model's device: ((N, F), (N, P)).
    The images may live elsewhere (a data set too large for the GPU stays on the CPU)."""
    h_parts, z_parts = [], []
    device = next(model.parameters()).device
    with frozen(model):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True).float().div_(255)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                enabled=autocast_dtype is not None):
                h, z = model(batch)
            h_parts.append(h.float())
            z_parts.append(z.float())
    return torch.cat(h_parts), torch.cat(z_parts)


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    weight_decay: float,
    max_iter: int,
) -> tuple[float, int]:
    """Multinomial logistic regression on standardised features, trained full-batch with L-BFGS
    until its gradient or loss change falls under tolerance; returns (test top-1, iterations).

    Standardising with the training statistics makes one weight decay fit every encoder and
    layer (h and z differ in scale by orders of magnitude).
    """
    mean = train_features.mean(0, keepdim=True)
    std = train_features.std(0, keepdim=True).clamp_min(1e-6)
    # Features as (F, N) and logits as (classes, N): with 10 classes, F.cross_entropy on (N, 10) runs its
    # softmax along rows of 10 and took two thirds of each L-BFGS step on CPU; along N it vectorises
    # (2.3x faster per step, same loss to float precision; tests/test_probe.py checks it against it).
    x_train = ((train_features - mean) / std).T.contiguous()
    x_test = ((test_features - mean) / std).T.contiguous()
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    like = dict(dtype=x_train.dtype, device=x_train.device, requires_grad=True)
    weight = torch.zeros(n_classes, x_train.shape[0], **like)
    bias = torch.zeros(n_classes, 1, **like)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
        tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = cross_entropy_by_columns(torch.addmm(bias, weight, x_train), train_labels)
        loss = loss + weight_decay * weight.square().sum() / 2
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    iterations = optimizer.state[weight].get("n_iter", 0)
    with torch.no_grad():
        accuracy = (torch.addmm(bias, weight, x_test).argmax(0) == test_labels).float().mean().item()
    return accuracy, int(iterations)


def cross_entropy_by_columns(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """F.cross_entropy(logits.T, labels) for logits laid out (classes, N): the mean over columns of
    logsumexp minus the labelled class's logit."""
    picked = logits.gather(0, labels[None])[0]
    return (torch.logsumexp(logits, dim=0) - picked).mean()


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    k: int,
    temperature: float,
    chunk: int = 1024,
) -> float:
    """Weighted kNN (Wu et al. 2018): cosine similarity, the k nearest training rows vote for
    their class with weight exp(similarity / temperature); returns test top-1."""
    train = F.normalize(train_features.float(), dim=1)
    test = F.normalize(test_features.float(), dim=1)
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, len(train))
    correct = 0
    for start in range(0, len(test), chunk):
        similarity = test[start : start + chunk] @ train.T  # (chunk, N_train)
        top_similarity, top_index = similarity.topk(k, dim=1)  # (chunk, k)
        weights = (top_similarity / temperature).exp()
        votes = torch.zeros(len(top_index), n_classes, device=train.device)
        votes.scatter_add_(1, train_labels[top_index], weights)
        correct += (votes.argmax(1) == test_labels[start : start + chunk]).sum().item()
    return correct / len(test)


def linear_probe(
    model: SimCLRModel,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    config: ProbeConfig,
    *,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> ProbeResult:
    """Extract h and z once with the backbone frozen, then fit a linear classifier on each
    (z only where config.probe_z)."""
    kwargs = dict(batch_size=config.batch_size, autocast_dtype=autocast_dtype, channels_last=channels_last)
    train_h, train_z = extract_features(model, train_images, **kwargs)
    test_h, test_z = extract_features(model, test_images, **kwargs)
    fit = dict(weight_decay=config.weight_decay, max_iter=config.max_iter)
    h_top1, _ = linear_probe_accuracy(train_h, train_labels, test_h, test_labels, **fit)
    z_top1 = None
    if config.probe_z:
        z_top1, _ = linear_probe_accuracy(train_z, train_labels, test_z, test_labels, **fit)
    return ProbeResult(h_top1=h_top1, z_top1=z_top1)
