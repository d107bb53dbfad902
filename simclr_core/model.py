"""Encoder f and projection head g (SimCLR Section 2.1, Figure 2): h = f(x), z = g(h)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from simclr_core.config import ModelConfig


def build_encoder(config: ModelConfig) -> tuple[nn.Module, int]:
    """Return (encoder, feature_dim). The encoder maps (B,3,H,W) to h of shape (B, feature_dim)."""
    name = config.encoder
    if name == "resnet18_cifar":
        # The standard CIFAR variant (paper Appendix B.9): 3x3 stride-1 first conv, no max-pool,
        # so 32 px inputs keep enough resolution for the four residual stages.
        net = torchvision.models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, feature_dim
    if name in ("resnet18", "resnet50"):
        # ImageNet stems (7x7 stride-2 conv + max-pool), for 96 px and larger inputs.
        net = getattr(torchvision.models, name)(weights=None)
        feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, feature_dim
    if name == "small_cnn":
        return SmallCNN(config.width), SmallCNN.feature_dim_for(config.width)
    raise ValueError(f"unknown encoder {name!r}; expected one of resnet18_cifar, resnet18, resnet50, small_cnn")


class SmallCNN(nn.Module):
    """A four-stage conv net for CPU budgets: 3x3 conv-BN-ReLU blocks, stride 2 between stages,
    global average pooling. Width w gives features of dimension 8w."""

    @staticmethod
    def feature_dim_for(width: int) -> int:
        return 8 * width

    def __init__(self, width: int):
        super().__init__()

        def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )

        self.layers = nn.Sequential(
            block(3, width, 1),
            block(width, 2 * width, 2),
            block(2 * width, 4 * width, 2),
            block(4 * width, 8 * width, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def build_head(config: ModelConfig, feature_dim: int) -> nn.Module:
    """Projection head g (paper Section 4.2): identity, one linear layer, or the 2-layer MLP, from
    h of dimension feature_dim to z of dimension config.projection_dim."""
    kind, projection_dim, hidden_dim = config.head, config.projection_dim, config.hidden_dim
    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(feature_dim, projection_dim)
    if kind == "mlp":
        hidden = hidden_dim or feature_dim
        return nn.Sequential(
            nn.Linear(feature_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, projection_dim),
        )
    raise ValueError(f"unknown projection head {kind!r}; expected one of none, linear, mlp")


class SimCLRModel(nn.Module):
    """f followed by g; forward returns both h (for the probe) and z (for the loss)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.encoder, self.feature_dim = build_encoder(config)
        self.head = build_head(config, self.feature_dim)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(images)  # (B, feature_dim)
        z = self.head(h)  # (B, projection_dim), or h itself with head "none"
        return h, z
