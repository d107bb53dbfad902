"""Tests for simclr_core.data_cache: hits, invalidation, damage, concurrency, and the on-disk format."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import numpy as np
import pytest
import torch

from simclr_core import data_cache, data_sources
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
    second = load_dataset(parquet_config(tmp_path))
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert second.classes == first.classes and second.source == first.source
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




def test_cache_key_is_the_v1_hash_of_path_size_and_mtime(tmp_path):
    # Existing caches in ~/.cache/simclr-ablations stay valid only while this key is unchanged: a literal
    # transcription of it, so a change to the key shows up here and not as a silent 10 s re-decode.
    files = [tmp_path / "train.parquet", tmp_path / "test.parquet"]
    for index, file in enumerate(files):
        file.write_bytes(b"x" * (index + 1))
        os.utime(file, ns=(1_700_000_000_000_000_000 + index,) * 2)
    expected = hashlib.sha256(b"simclr-ablations data cache v1\ncifar10\n")
    for file in sorted(files):
        expected.update(f"{file}\0{file.stat().st_size}\0{file.stat().st_mtime_ns}\n".encode())
    assert data_cache.CACHE_FORMAT_VERSION == 1
    entry = data_cache.cache_entry(tmp_path / "cache", "cifar10", files)
    assert entry == tmp_path / "cache" / f"cifar10-{expected.hexdigest()[:20]}"


def test_cache_entry_format_round_trips_bit_identically(tmp_path):
    rng = np.random.default_rng(0)
    arrays = data_cache.DecodedArrays(
        train_images=rng.integers(0, 256, size=(5, 3, 4, 4), dtype=np.uint8),
        train_labels=np.array([0, 1, 2, 1, 0], dtype=np.int64),
        test_images=rng.integers(0, 256, size=(2, 3, 4, 4), dtype=np.uint8),
        test_labels=np.array([2, 0], dtype=np.int64),
        classes=["a", "b", "c"],
    )
    entry = tmp_path / "toy-0123"
    assert data_cache.read_cache(entry) is None, "a missing entry is a miss"
    data_cache.write_cache(entry, arrays, "toy source")
    # The on-disk format, which CACHE_FORMAT_VERSION names: one .npy per array, then meta.json.
    assert sorted(path.name for path in entry.iterdir()) == [
        "meta.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy",
    ]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta == {
        "format_version": 1, "source": "toy source", "classes": ["a", "b", "c"],
        "shapes": {"train_images": [5, 3, 4, 4], "train_labels": [5], "test_images": [2, 3, 4, 4], "test_labels": [2]},
    }
    again = data_cache.read_cache(entry)
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        original, cached = getattr(arrays, name), getattr(again, name)
        assert cached.dtype == original.dtype and cached.tobytes() == original.tobytes(), name
    assert again.classes == arrays.classes
    # An entry whose arrays disagree with meta.json is a miss, decoded again by the caller.
    np.save(entry / "test_labels.npy", np.zeros(3, dtype=np.int64))
    assert data_cache.read_cache(entry) is None
