"""Tests for simclr_core.data, the public entry: config checks, subsets, and the real CIFAR-10 end to end.

The real CIFAR-10 test reads the shared Parquet copy at ../shared/datasets (relative to the repository
root) and is skipped only where it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from simclr_core import data_sources
from simclr_core.config import ConfigError, DataConfig
from simclr_core.data import load_dataset

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def synthetic_config(**overrides) -> DataConfig:
    return DataConfig(dataset="synthetic", **overrides)


def test_unknown_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match="data.dataset"):
        load_dataset(DataConfig(dataset="mnist"))


# ----------------------------------------------------------------------------------------------------
# Subsets


def test_train_subset_keeps_the_first_rows():
    full = load_dataset(synthetic_config(synthetic_per_class=10))
    subset = load_dataset(synthetic_config(synthetic_per_class=10, train_subset=7, test_subset=5))
    assert torch.equal(subset.train_images, full.train_images[:7])
    assert torch.equal(subset.train_labels, full.train_labels[:7])
    assert torch.equal(subset.test_images, full.test_images[:5]) and subset.test_images.is_contiguous()


def test_train_subset_per_class_keeps_the_first_rows_of_each_class_in_order():
    full = load_dataset(synthetic_config(synthetic_per_class=10))
    subset = load_dataset(synthetic_config(synthetic_per_class=10, train_subset=3, train_subset_per_class=True))
    expected_rows = sorted(
        row for label in range(4) for row in torch.nonzero(full.train_labels == label).flatten()[:3].tolist()
    )
    assert torch.equal(subset.train_labels, full.train_labels[expected_rows])
    assert torch.equal(subset.train_images, full.train_images[expected_rows])
    assert subset.train_labels.bincount().tolist() == [3, 3, 3, 3]
    assert torch.equal(subset.test_images, full.test_images), "the test set is left whole"


@pytest.mark.parametrize("key, value", [("train_subset", 0), ("test_subset", -1)])
def test_impossible_subset_is_a_config_error(key, value):
    # Checked by RunConfig.validate, which load_dataset runs for callers that skip it.
    with pytest.raises(ConfigError, match=rf"data\.{key}: {value} is not allowed"):
        load_dataset(synthetic_config(**{key: value}))


# ----------------------------------------------------------------------------------------------------
# The real CIFAR-10 Parquet copy


@pytest.mark.skipif(not (SHARED_DATASETS / "cifar10").is_dir(), reason=f"no CIFAR-10 copy at {SHARED_DATASETS}")
def test_real_cifar10_loads_and_reloads_from_cache(tmp_path, monkeypatch):
    config = DataConfig(dataset="cifar10", root=str(SHARED_DATASETS), cache_dir=str(tmp_path))
    dataset = load_dataset(config)
    assert dataset.train_images.shape == (50000, 3, 32, 32) and dataset.test_images.shape == (10000, 3, 32, 32)
    assert dataset.train_images.dtype == torch.uint8 and dataset.train_labels.dtype == torch.int64
    assert dataset.train_labels.min() == 0 and dataset.train_labels.max() == 9
    assert dataset.train_labels.bincount().tolist() == [5000] * 10
    assert dataset.classes[:3] == ["airplane", "automobile", "bird"] and len(dataset.classes) == 10

    # The reload must come from the cache: one entry was written, and decoding again now fails. (A
    # wall-clock bound on the reload would fail on a loaded machine without saying anything of the code.)
    assert len(list(tmp_path.glob("cifar10-*/meta.json"))) == 1

    def must_not_decode(*arguments):
        raise AssertionError("the second CIFAR-10 load decoded images instead of reading the cache")

    monkeypatch.setattr(data_sources, "_decode_encoded_images", must_not_decode)
    config.train_subset, config.train_subset_per_class, config.test_subset = 100, True, 1000
    subset = load_dataset(config)
    assert subset.train_images.shape == (1000, 3, 32, 32) and subset.train_labels.bincount().tolist() == [100] * 10
    assert torch.equal(subset.test_images, dataset.test_images[:1000])
