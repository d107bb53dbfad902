"""NT-Xent against a slow literal transcription of the paper, analytic cases, symmetry, descent."""

import math

import numpy as np
import pytest
import torch

from simclr_core.loss import contrastive_accuracy, nt_xent, nt_xent_multi


def literal_nt_xent(z1: np.ndarray, z2: np.ndarray, tau: float) -> float:
    """SimCLR Algorithm 1 written out with loops, in float64: views 2k-1 and 2k are one image."""
    n = len(z1)
    z = []
    for k in range(n):
        z.append(z1[k])
        z.append(z2[k])

    def sim(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    def ell(i, j):
        numerator = math.exp(sim(z[i], z[j]) / tau)
        denominator = sum(math.exp(sim(z[i], z[k]) / tau) for k in range(2 * n) if k != i)
        return -math.log(numerator / denominator)

    total = 0.0
    for k in range(n):
        total += ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k)
    return total / (2 * n)


def literal_multi(views: np.ndarray, tau: float) -> float:
    """Multi-positive form, literally: anchor (a, i) averages -log p over the other views of i."""
    n_views, n = views.shape[:2]
    flat = [(a, i, views[a, i]) for a in range(n_views) for i in range(n)]

    def sim(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    total = 0.0
    for a, i, u in flat:
        denominator = sum(math.exp(sim(u, v) / tau) for b, j, v in flat if (b, j) != (a, i))
        terms = [-math.log(math.exp(sim(u, v) / tau) / denominator)
                 for b, j, v in flat if j == i and b != a]
        total += sum(terms) / len(terms)
    return total / len(flat)


@pytest.mark.parametrize("n", [1, 2, 7, 32])
@pytest.mark.parametrize("dim", [2, 16, 128])
@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5, 1.0])
def test_matches_literal_formula(n, dim, tau):
    gen = torch.Generator().manual_seed(n * 1000 + dim)
    z1 = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    z2 = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    expected = literal_nt_xent(z1.numpy(), z2.numpy(), tau)
    got = nt_xent(z1, z2, tau).item()
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_batch_of_one_has_zero_loss():
    # With one image the positive is the only candidate: softmax over one entry is 1.
    z = torch.randn(1, 8)
    assert nt_xent(z, z + 1, 0.1).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("n,tau", [(4, 0.1), (16, 0.5), (64, 1.0)])
def test_analytic_value_for_aligned_orthogonal_views(n, tau):
    # z1 = z2 = orthonormal rows: positive similarity 1, every negative 0, so
    # loss = -log(e^(1/t) / (e^(1/t) + 2N - 2)) = log(1 + (2N - 2) e^(-1/t)).
    z = torch.eye(128, dtype=torch.float64)[:n]
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    assert nt_xent(z, z.clone(), tau).item() == pytest.approx(expected, rel=1e-6)


def test_symmetric_in_views_and_invariant_to_scale_and_order():
    gen = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(10, 32, generator=gen), torch.randn(10, 32, generator=gen)
    base = nt_xent(z1, z2, 0.2)
    assert nt_xent(z2, z1, 0.2).item() == pytest.approx(base.item(), rel=1e-6)
    assert nt_xent(3 * z1, 0.5 * z2, 0.2).item() == pytest.approx(base.item(), rel=1e-5)
    perm = torch.randperm(10, generator=gen)
    assert nt_xent(z1[perm], z2[perm], 0.2).item() == pytest.approx(base.item(), rel=1e-5)


@pytest.mark.parametrize("n_views,n", [(3, 1), (3, 5), (4, 6)])
def test_multi_view_matches_literal(n_views, n):
    gen = torch.Generator().manual_seed(n_views * 10 + n)
    views = torch.randn(n_views, n, 12, generator=gen, dtype=torch.float64)
    assert nt_xent_multi(views, 0.3).item() == pytest.approx(literal_multi(views.numpy(), 0.3), rel=1e-6)


def test_multi_view_with_two_views_is_nt_xent():
    gen = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(9, 16, generator=gen), torch.randn(9, 16, generator=gen)
    assert nt_xent_multi(torch.stack([z1, z2]), 0.5).item() == pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=1e-6)


def test_other_views_of_the_same_image_are_not_negatives():
    # Three identical views of each of N orthogonal images: every positive has similarity 1
    # and every negative 0. Each positive term is -log(e^(1/t) / (2 e^(1/t) + 3N - 3)); had
    # the other views been negatives, the numerator would have been counted only once.
    n, tau = 5, 0.5
    z = torch.eye(16, dtype=torch.float64)[:n]
    views = torch.stack([z, z, z])
    # Denominator for an anchor: 2 positives at e^(1/t) plus 3N - 3 negatives at 1.
    expected = -math.log(math.exp(1 / tau) / (2 * math.exp(1 / tau) + 3 * n - 3))
    assert nt_xent_multi(views, tau).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("tau", [0.0, -0.1])
def test_non_positive_temperature_is_an_error(tau):
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, tau)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_multi(torch.stack([z, z]), tau)


def test_loss_decreases_when_optimising_free_embeddings():
    gen = torch.Generator().manual_seed(1)
    z1 = torch.randn(64, 16, generator=gen, requires_grad=True)
    z2 = torch.randn(64, 16, generator=gen, requires_grad=True)
    optimizer = torch.optim.SGD([z1, z2], lr=2.0)
    first = nt_xent(z1, z2, 0.1).item()
    for _ in range(100):
        optimizer.zero_grad()
        loss = nt_xent(z1, z2, 0.1)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    assert contrastive_accuracy(torch.stack([z1, z2]).detach()).item() == 1.0


def test_contrastive_accuracy_counts_positives_among_all_other_views():
    z = torch.eye(4)
    assert contrastive_accuracy(torch.stack([z, z])).item() == 1.0
    # The second view of image 0 now points where image 1 does. (v1,0) is orthogonal to all
    # and argmax takes the first other view, (v1,1): a miss. (v1,1) ties between (v2,0) and
    # (v2,1) and takes (v2,0) first: a miss. (v2,0) finds (v1,1): a miss. 5 of 8 hit.
    z2 = z.clone()
    z2[0] = z[1]
    assert contrastive_accuracy(torch.stack([z, z2])).item() == pytest.approx(5 / 8)
