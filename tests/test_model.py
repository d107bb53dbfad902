import pytest
import torch

from simclr_core.config import ModelConfig
from simclr_core.model import SimCLRModel


@pytest.mark.parametrize(
    "encoder,size,feature_dim",
    [("small_cnn", 32, 256), ("resnet18_cifar", 32, 512), ("resnet18", 96, 512), ("resnet50", 96, 2048)],
)
def test_encoders_give_documented_feature_dims(encoder, size, feature_dim):
    model = SimCLRModel(ModelConfig(encoder=encoder, head="mlp", projection_dim=64))
    model.eval()
    with torch.no_grad():
        h, z = model(torch.rand(2, 3, size, size))
    assert model.feature_dim == feature_dim
    assert h.shape == (2, feature_dim)
    assert z.shape == (2, 64)


def test_resnet18_cifar_keeps_resolution_in_the_stem():
    model = SimCLRModel(ModelConfig(encoder="resnet18_cifar"))
    conv1 = model.encoder.conv1
    assert (conv1.kernel_size, conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(model.encoder.maxpool, torch.nn.Identity)


@pytest.mark.parametrize("head,z_dim,n_linear", [("none", 256, 0), ("linear", 128, 1), ("mlp", 128, 2)])
def test_projection_heads(head, z_dim, n_linear):
    model = SimCLRModel(ModelConfig(encoder="small_cnn", head=head))
    with torch.no_grad():
        h, z = model(torch.rand(3, 3, 32, 32))
    assert z.shape == (3, z_dim)
    assert sum(isinstance(m, torch.nn.Linear) for m in model.head.modules()) == n_linear
    if head == "none":
        assert torch.equal(h, z)


def test_mlp_hidden_width_defaults_to_feature_dim():
    model = SimCLRModel(ModelConfig(encoder="small_cnn", width=16, head="mlp"))
    assert model.head[0].out_features == 128  # 8 * width
    model = SimCLRModel(ModelConfig(encoder="small_cnn", width=16, head="mlp", hidden_dim=64))
    assert model.head[0].out_features == 64
