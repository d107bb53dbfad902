"""Tests for simclr_core.data_sources: every on-disk layout, and the errors users meet.

Nothing here touches the network. The helpers that write small data sets in each layout live here
and are shared with test_data_cache.py.
"""

from __future__ import annotations

import io
import json
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as parquet
import pytest
import torch
from PIL import Image

from simclr_core.config import DataConfig
from simclr_core.data import DatasetError, load_dataset

# ----------------------------------------------------------------------------------------------------
# Helpers that write small data sets in each layout


def smooth_images(n: int, size: int = 8, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3) images of flat colour with a gentle gradient: JPEG keeps them close."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 200, size=(n, 1, 1, 3))
    ramp = np.linspace(0, 20, size)
    gradient = ramp[None, :, None, None] + ramp[None, None, :, None]  # (1, size, size, 1)
    return (colours + gradient).astype(np.uint8)


def encode(image: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def write_hf_parquet(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    image_column: str = "img",
    label_column: str = "label",
    image_format: str = "PNG",
    class_names: list[str] | None = None,
) -> None:
    """A Parquet file in the Hugging Face `datasets` image layout (struct {bytes, path} + int64 label)."""
    image_structs = [{"bytes": encode(image, image_format), "path": f"{i}.png"} for i, image in enumerate(images)]
    table = pa.table({
        image_column: pa.array(image_structs, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        label_column: pa.array(labels.astype(np.int64)),
    })
    if class_names is not None:
        features = {image_column: {"_type": "Image"}, label_column: {"names": class_names, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet.write_table(table, path)


def write_parquet_pair(folder: Path, n_train: int = 12, n_test: int = 6, **options) -> tuple[np.ndarray, ...]:
    """train.parquet and test.parquet in `folder`; returns (train images, train labels, test ..., test ...)."""
    train_images, test_images = smooth_images(n_train, seed=1), smooth_images(n_test, seed=2)
    train_labels, test_labels = np.arange(n_train) % 3, np.arange(n_test) % 3
    write_hf_parquet(folder / "train.parquet", train_images, train_labels, **options)
    write_hf_parquet(folder / "test.parquet", test_images, test_labels, **options)
    return train_images, train_labels, test_images, test_labels


def channels_first(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def write_image_folder(root: Path, split: str, counts: dict[str, int], size: int = 8, seed: int = 0) -> dict:
    """root/split/<class>/<i>.png; returns {class: [images in file-name order]}."""
    written = {}
    for offset, (class_name, count) in enumerate(counts.items()):
        images = smooth_images(count, size=size, seed=seed + offset)
        (root / split / class_name).mkdir(parents=True)
        for index, image in enumerate(images):
            Image.fromarray(image).save(root / split / class_name / f"{index:03d}.png")
        written[class_name] = images
    return written


def parquet_config(tmp_path: Path, **overrides) -> DataConfig:
    return DataConfig(
        dataset="parquet", root=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"), **overrides
    )

# ----------------------------------------------------------------------------------------------------
# Hugging Face Parquet


@pytest.mark.parametrize("image_column", ["img", "image"])
@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_parquet_layout_loads_png_and_jpeg_with_class_names(tmp_path, image_column, image_format):
    train_images, train_labels, test_images, test_labels = write_parquet_pair(
        tmp_path / "data", image_column=image_column, image_format=image_format, class_names=["a", "b", "c"]
    )
    dataset = load_dataset(parquet_config(tmp_path))
    assert dataset.classes == ["a", "b", "c"]
    assert dataset.train_images.shape == (12, 3, 8, 8) and dataset.test_images.shape == (6, 3, 8, 8)
    assert dataset.train_images.dtype == torch.uint8 and dataset.train_images.is_contiguous()
    assert torch.equal(dataset.train_labels, torch.from_numpy(train_labels).long())
    assert torch.equal(dataset.test_labels, torch.from_numpy(test_labels).long())
    error = (dataset.train_images.float() - channels_first(train_images).float()).abs().max().item()
    # PNG is lossless; JPEG at quality 95 on smooth images stays within a few grey levels.
    assert error == 0 if image_format == "PNG" else error < 12


def test_hub_shard_layout_found_for_named_dataset(tmp_path):
    # The Hub's file names: <root>/cifar10/plain_text/train-0000k-of-0000n.parquet, several shards.
    folder = tmp_path / "cifar10" / "plain_text"
    shards = [smooth_images(4, seed=seed) for seed in (1, 2)]
    for index, images in enumerate(shards):
        shard = folder / f"train-0000{index}-of-00002.parquet"
        write_hf_parquet(shard, images, np.full(4, index), label_column="fine_label")
    test_shard = folder / "test-00000-of-00001.parquet"
    write_hf_parquet(test_shard, smooth_images(3, seed=3), np.array([0, 1, 1]), label_column="fine_label")
    dataset = load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), cache_dir=str(tmp_path / "cache")))
    assert torch.equal(dataset.train_images, channels_first(np.concatenate(shards)))
    assert dataset.train_labels.tolist() == [0] * 4 + [1] * 4
    # No `huggingface` metadata: the classes are named by index.
    assert dataset.classes == ["0", "1"]
    assert "plain_text" in dataset.source


def test_parquet_directly_in_root_found_for_named_dataset(tmp_path):
    write_parquet_pair(tmp_path, class_names=["x", "y", "z"])
    dataset = load_dataset(DataConfig(dataset="cifar100", root=str(tmp_path), cache_dir=str(tmp_path / "cache")))
    assert dataset.name == "cifar100" and dataset.classes == ["x", "y", "z"]


# ----------------------------------------------------------------------------------------------------
# Errors: missing, corrupt, no network


def test_corrupt_image_bytes_name_the_file_and_row(tmp_path):
    images = smooth_images(3)
    structs = [{"bytes": encode(image, "PNG"), "path": ""} for image in images]
    structs[2]["bytes"] = b"\x89PNG\r\n\x1a\n" + b"not really a png"
    table = pa.table({"img": structs, "label": pa.array([0, 1, 0], type=pa.int64())})
    (tmp_path / "data").mkdir()
    parquet.write_table(table, tmp_path / "data" / "train.parquet")
    write_hf_parquet(tmp_path / "data" / "test.parquet", images, np.array([0, 1, 0]))
    with pytest.raises(DatasetError, match=r"Row 2 of .*train\.parquet.*delete it and download it again"):
        load_dataset(parquet_config(tmp_path))


def test_corrupt_parquet_file_names_the_file(tmp_path):
    write_parquet_pair(tmp_path / "data")
    (tmp_path / "data" / "test.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DatasetError, match=r"test\.parquet is not a readable Parquet file"):
        load_dataset(parquet_config(tmp_path))


def test_parquet_with_wrong_columns_says_what_is_expected(tmp_path):
    (tmp_path / "data").mkdir()
    for split in ("train", "test"):
        parquet.write_table(pa.table({"pixels": [b"x"], "target": [0]}), tmp_path / "data" / f"{split}.parquet")
    with pytest.raises(DatasetError, match=r"expected the Hugging Face image layout"):
        load_dataset(parquet_config(tmp_path))


def test_missing_named_dataset_lists_where_it_looked_and_how_to_fix(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as caught:
        load_dataset(DataConfig(dataset="cifar10", root=str(root), cache_dir=str(tmp_path / "cache")))
    message = str(caught.value)
    assert f"{root}/cifar10/train*.parquet" in message
    assert f"{root}/train*.parquet" in message
    assert f"{root}/cifar-10-batches-py" in message
    assert "SIMCLR_DATA" in message and "data.root" in message and "data.download: true" in message


def test_missing_parquet_folder_says_to_set_data_root(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*data\.root.*SIMCLR_DATA"):
        load_dataset(parquet_config(tmp_path))


def test_half_present_parquet_pair_is_reported(tmp_path):
    write_hf_parquet(tmp_path / "cifar10" / "train.parquet", smooth_images(2), np.array([0, 1]))
    with pytest.raises(DatasetError, match=r"found 1 train and 0 test files"):
        load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), cache_dir=str(tmp_path / "cache")))


@pytest.mark.parametrize("name, folder", [("cifar100", "cifar-100-python"), ("stl10", "stl10_binary")])
def test_torchvision_source_without_download_and_no_files(tmp_path, name, folder):
    with pytest.raises(DatasetError, match=rf"(?s){folder}.*SIMCLR_DATA"):
        load_dataset(
            DataConfig(dataset=name, root=str(tmp_path), download=False, cache_dir=str(tmp_path / "cache"))
        )


def test_incomplete_torchvision_folder_says_to_fetch_again(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match=r"incomplete or corrupt.*data\.download: true"):
        load_dataset(DataConfig(dataset="cifar10", root=str(tmp_path), cache_dir=str(tmp_path / "cache")))


def test_failed_download_raises_dataset_error(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    # Stand in for an offline machine: torchvision's download raises what urllib raises there.
    def offline(*arguments, **keywords):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    config = DataConfig(dataset="cifar10", root=str(tmp_path), download=True, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetError, match=r"Downloading cifar10 with torchvision .* failed.*network.*SIMCLR_DATA"):
        load_dataset(config)


def test_torchvision_cifar_files_load_and_cache(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    # Tiny stand-ins for torchvision's CIFAR-10 pickles; their checksums cannot match, so skip the check.
    monkeypatch.setattr(torchvision.datasets.cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *arguments: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for file_name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = rng.integers(0, 256, size=(2, 3 * 32 * 32), dtype=np.uint8)  # CIFAR rows: R, G, B planes
        batches[file_name] = (pixels, [1, 9])
        (folder / file_name).write_bytes(pickle.dumps({"data": pixels, "labels": [1, 9]}))
    class_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": class_names}))

    config = DataConfig(dataset="cifar10", root=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    dataset = load_dataset(config)
    expected_train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(10, 3, 32, 32)
    assert torch.equal(dataset.train_images, torch.from_numpy(expected_train))
    assert torch.equal(dataset.test_images, torch.from_numpy(batches["test_batch"][0].reshape(2, 3, 32, 32)))
    assert dataset.train_labels.tolist() == [1, 9] * 5 and dataset.classes == class_names
    assert "cifar-10-batches-py" in dataset.source
    # The second load is served from the cache, before torchvision is even constructed.
    monkeypatch.setattr(torchvision.datasets.cifar.CIFAR10, "__init__", lambda *arguments, **keywords: 1 / 0)
    assert torch.equal(load_dataset(config).train_images, dataset.train_images)


# ----------------------------------------------------------------------------------------------------
# ImageFolder


def image_folder_config(tmp_path: Path) -> DataConfig:
    return DataConfig(dataset="imagefolder", root=str(tmp_path / "images"), cache_dir=str(tmp_path / "cache"))


def test_image_folder_loads_with_sorted_classes_and_val_split(tmp_path):
    root = tmp_path / "images"
    train = write_image_folder(root, "train", {"dog": 3, "cat": 2})
    val = write_image_folder(root, "val", {"dog": 1}, seed=10)
    dataset = load_dataset(image_folder_config(tmp_path))
    # Classes sorted by folder name, rows class by class, as torchvision's ImageFolder orders them.
    assert dataset.classes == ["cat", "dog"]
    assert dataset.train_labels.tolist() == [0, 0, 1, 1, 1]
    assert torch.equal(dataset.train_images, channels_first(np.concatenate([train["cat"], train["dog"]])))
    assert dataset.test_labels.tolist() == [1] and torch.equal(dataset.test_images, channels_first(val["dog"]))


def test_image_folder_with_mixed_sizes_names_the_odd_file(tmp_path):
    root = tmp_path / "images"
    write_image_folder(root, "train", {"cat": 2})
    write_image_folder(root, "test", {"cat": 1})
    Image.fromarray(smooth_images(1, size=12)[0]).save(root / "train" / "cat" / "999_big.png")
    with pytest.raises(DatasetError, match=r"999_big\.png is 12x12 .* must share one size\. Resize"):
        load_dataset(image_folder_config(tmp_path))


def test_image_folder_with_corrupt_image_names_it(tmp_path):
    root = tmp_path / "images"
    write_image_folder(root, "train", {"cat": 2})
    write_image_folder(root, "test", {"cat": 1})
    (root / "test" / "cat" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"broken\.png cannot be decoded.*Delete or replace it"):
        load_dataset(image_folder_config(tmp_path))


def test_missing_image_folder_says_what_layout_it_needs(tmp_path):
    with pytest.raises(DatasetError, match=r"train.*<class>.*data\.root"):
        load_dataset(image_folder_config(tmp_path))


