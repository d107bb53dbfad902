"""Optimisers and the learning-rate schedule of SimCLR pre-training (paper Appendix B.1): SGD, Adam,
AdamW or LARS, with weight decay on conv/linear weights only, and linear warm-up then cosine decay.
"""

from __future__ import annotations

import math

import torch

from simclr_core.config import RunConfig


def learning_rate(step: int, *, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to peak_lr, then cosine decay to zero (paper Appendix B.1), by global step."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as SimCLR uses it: SGD with momentum whose step for each weight
    tensor is scaled by trust_coefficient * ||w|| / ||g + wd * w||. Groups with `exclude=True`
    (biases and BatchNorm, paper Appendix B.1) get plain momentum SGD without weight decay."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                update = param.grad
                if not group["exclude"]:
                    update = update.add(param, alpha=group["weight_decay"])
                    param_norm, update_norm = param.norm(), update.norm()
                    trust = torch.where(
                        (param_norm > 0) & (update_norm > 0),
                        group["trust_coefficient"] * param_norm / update_norm,
                        torch.ones_like(param_norm),
                    )
                    update = update.mul(trust)
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                param.add_(state["momentum_buffer"], alpha=-group["lr"])


def build_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """Weight decay (and LARS adaptation) on conv/linear weights only, not biases or BatchNorm."""
    train = config.train
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    lr = train.lr * train.batch_size / 256
    if train.optimizer == "lars":
        groups = [{"params": decay}, {"params": no_decay, "exclude": True, "weight_decay": 0.0}]
        return LARS(groups, lr=lr, momentum=train.momentum, weight_decay=train.weight_decay)
    groups = [{"params": decay, "weight_decay": train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=train.momentum)
    if train.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)
