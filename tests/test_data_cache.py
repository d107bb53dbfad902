"""Tests for simclr_core.data_cache: hits, invalidation, damage, concurrency."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from simclr_core import data_sources
from simclr_core.config import DataConfig
from simclr_core.data import load_dataset
from test_data_sources import parquet_config, smooth_images, write_hf_parquet, write_parquet_pair


def test_cached_second_load_is_identical_and_does_not_decode(tmp_path, monkeypatch):
    write_parquet_pair(tmp_path / "data", class_names=["a", "b", "c"])
    first = load_dataset(parquet_config(tmp_path))
    assert len(list((tmp_path / "cache").glob("parquet-*/meta.json"))) == 1

    def must_not_decode(*arguments):
        raise AssertionError("the second load decoded images instead of reading the cache")

    monkeypatch.setattr(data_sources, "_decode_encoded_images", must_not_decode)
    start = time.perf_counter()
    second = load_dataset(parquet_config(tmp_path))
    elapsed = time.perf_counter() - start
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert second.classes == first.classes and second.source == first.source
    assert elapsed < 1.0, f"cached load took {elapsed:.2f} s (a sanity bound, not a benchmark)"
    assert not list((tmp_path / "cache").rglob("*.tmp")), "temporary files were left behind"


def test_cache_key_changes_when_the_source_changes(tmp_path):
    write_parquet_pair(tmp_path / "data")
    before = load_dataset(parquet_config(tmp_path))
    # Replace the test split with different labels (same images): the cache must not serve the old one.
    write_hf_parquet(tmp_path / "data" / "test.parquet", smooth_images(6, seed=2), np.full(6, 2))
    after = load_dataset(parquet_config(tmp_path))
    assert before.test_labels.tolist() != after.test_labels.tolist() and after.test_labels.tolist() == [2] * 6
    assert len(list((tmp_path / "cache").glob("parquet-*"))) == 2


def test_damaged_cache_is_decoded_again(tmp_path):
    write_parquet_pair(tmp_path / "data")
    first = load_dataset(parquet_config(tmp_path))
    (cached,) = (tmp_path / "cache").glob("parquet-*/train_images.npy")
    cached.write_bytes(cached.read_bytes()[:100])
    again = load_dataset(parquet_config(tmp_path))
    assert torch.equal(first.train_images, again.train_images)


def test_concurrent_loads_of_a_cold_cache_agree(tmp_path):
    write_parquet_pair(tmp_path / "data")
    results, errors = [], []

    def load():
        try:
            results.append(load_dataset(parquet_config(tmp_path)))
        except Exception as error:  # reported below, with the thread's error
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert all(torch.equal(result.train_images, results[0].train_images) for result in results)
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert torch.equal(load_dataset(parquet_config(tmp_path)).train_images, results[0].train_images)


def test_unwritable_cache_warns_and_still_loads(tmp_path):
    write_parquet_pair(tmp_path / "data")
    (tmp_path / "not_a_folder").write_text("")
    config = DataConfig(dataset="parquet", root=str(tmp_path / "data"), cache_dir=str(tmp_path / "not_a_folder"))
    with pytest.warns(UserWarning, match="data.cache_dir"):
        dataset = load_dataset(config)
    assert dataset.train_images.shape == (12, 3, 8, 8)



