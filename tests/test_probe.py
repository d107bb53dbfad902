import pytest
import torch

from simclr_core.config import ModelConfig, ProbeConfig
from simclr_core.model import SimCLRModel
from simclr_core.probe import (
    cross_entropy_by_columns, extract_features, knn_accuracy, linear_probe, linear_probe_accuracy,
)


def literal_weighted_knn(train, train_labels, test, k, temperature, n_classes):
    """Wu et al. 2018 written out per query, for comparison."""
    predictions = []
    for query in test:
        sims = [(float(torch.nn.functional.cosine_similarity(query, row, dim=0)), int(label))
                for row, label in zip(train, train_labels)]
        sims.sort(key=lambda pair: -pair[0])
        votes = [0.0] * n_classes
        for sim, label in sims[:k]:
            votes[label] += float(torch.exp(torch.tensor(sim / temperature)))
        predictions.append(max(range(n_classes), key=lambda c: votes[c]))
    return predictions


def test_knn_matches_literal_reference():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(120, 6, generator=gen)
    labels = torch.randint(0, 3, (120,), generator=gen)
    test = torch.randn(40, 6, generator=gen)
    predicted = literal_weighted_knn(train, labels, test, k=15, temperature=0.1, n_classes=3)
    test_labels = torch.tensor(predicted)
    # Labelling the queries with the reference predictions: the fast version must score 1.0.
    assert knn_accuracy(train, labels, test, test_labels, k=15, temperature=0.1, chunk=7) == 1.0


def test_knn_and_linear_probe_separate_clustered_features():
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 16, generator=gen) * 3
    labels = torch.randint(0, 4, (400,), generator=gen)
    features = centres[labels] + torch.randn(400, 16, generator=gen)
    acc_knn = knn_accuracy(features[:300], labels[:300], features[300:], labels[300:], k=20, temperature=0.1)
    acc_linear, iterations = linear_probe_accuracy(features[:300], labels[:300], features[300:], labels[300:],
                                                     weight_decay=1e-4, max_iter=500)
    assert acc_knn > 0.95
    assert acc_linear > 0.95
    assert iterations > 1


def test_linear_probe_is_at_chance_on_noise():
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(600, 8, generator=gen)
    labels = torch.randint(0, 4, (600,), generator=gen)
    accuracy, _ = linear_probe_accuracy(features[:400], labels[:400], features[400:], labels[400:],
                                        weight_decay=1e-4, max_iter=500)
    assert 0.1 < accuracy < 0.45


def test_probing_leaves_backbone_state_unchanged_and_mode_restored():
    torch.manual_seed(0)
    model = SimCLRModel(ModelConfig(encoder="small_cnn", width=8))
    model.train()
    # Make the BatchNorm running statistics non-trivial first, as after pre-training.
    with torch.no_grad():
        model(torch.rand(16, 3, 32, 32))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    images = torch.randint(0, 256, (60, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(60) % 3
    result = linear_probe(model, images[:40], labels[:40], images[40:], labels[40:],
                          ProbeConfig(max_iter=20, batch_size=16))
    after = model.state_dict()
    assert model.training
    for name, value in before.items():
        assert torch.equal(value, after[name]), f"{name} changed during probing"
    assert 0.0 <= result.h_top1 <= 1.0 and 0.0 <= result.z_top1 <= 1.0


def test_extract_features_uses_eval_mode_batchnorm():
    torch.manual_seed(0)
    model = SimCLRModel(ModelConfig(encoder="small_cnn", width=8))
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    # In eval mode a sample's features do not depend on the rest of its batch.
    h_all, _ = extract_features(model, images, batch_size=10)
    h_one, _ = extract_features(model, images[:1], batch_size=1)
    assert torch.allclose(h_all[:1], h_one, atol=1e-5)


def test_cross_entropy_by_columns_is_cross_entropy_of_the_transpose():
    torch.manual_seed(0)
    logits = torch.randn(10, 500, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 10, (500,))
    ours = cross_entropy_by_columns(logits, labels)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    reference = torch.nn.functional.cross_entropy(logits.T, labels)
    (reference_grad,) = torch.autograd.grad(reference, logits)
    assert torch.allclose(ours, reference, rtol=0, atol=1e-12)
    assert torch.allclose(ours_grad, reference_grad, rtol=0, atol=1e-12)


def _reference_probe(train_x, train_y, test_x, test_y, weight_decay, max_iter):
    """The literal textbook form: standardise, nn.Linear, F.cross_entropy on (N, classes), L-BFGS."""
    mean, std = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True).clamp_min(1e-6)
    linear = torch.nn.Linear(train_x.shape[1], int(train_y.max()) + 1, dtype=train_x.dtype)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear((train_x - mean) / std), train_y)
        loss = loss + weight_decay * linear.weight.square().sum() / 2
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return (linear((test_x - mean) / std).argmax(1) == test_y).float().mean().item()


def test_linear_probe_matches_the_literal_reference():
    """Same predictions as the textbook probe on overlapping clusters (in float64, where the two
    layouts' rounding cannot steer L-BFGS apart)."""
    generator = torch.Generator().manual_seed(3)
    centres = torch.randn(10, 32, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 10, (3000,), generator=generator)
    features = centres[labels] + 1.5 * torch.randn(3000, 32, generator=generator, dtype=torch.float64)
    args = (features[:2000], labels[:2000], features[2000:], labels[2000:])
    ours, _ = linear_probe_accuracy(*args, weight_decay=1e-3, max_iter=200)
    reference = _reference_probe(*args, weight_decay=1e-3, max_iter=200)
    assert 0.3 < reference < 0.99  # a problem with something to get wrong
    assert ours == pytest.approx(reference, abs=1 / 1000)
