"""Image data sets as whole uint8 tensors: the `Dataset` type and `load_dataset`, the one public entry.

Every data set becomes a `Dataset` of CPU tensors, images uint8 (N, 3, H, W) and labels int64 (N,),
so the trainer can move the whole set to the device and augment it in batches (the airbench habit).
Sources, chosen by `DataConfig.dataset`:

- cifar10 | cifar100 | stl10: the Hugging Face Parquet export (`<root>/<dataset>/{train,test}.parquet`,
  the Hub's `<root>/<dataset>/plain_text/train-00000-of-00001.parquet`, or `<root>/{train,test}.parquet`),
  else torchvision's own files in `<root>` (downloaded there when `download` is true).
- parquet: `<root>` holds `train*.parquet` and `test*.parquet` in the Hugging Face image layout.
- imagefolder: `<root>/train/<class>/*.png` and `<root>/test/<class>/...` (or `val/`), ImageFolder's layout.
- synthetic: generated shapes (`make_synthetic`), for tests and smoke runs; never touches the disk.

The roles behind it: `data_sources` reads each layout, `data_cache` keeps the decoded arrays on disk
(in `cache_dir`, default ~/.cache/simclr-ablations, because the data root may be read-only), and
`synthetic` generates the shapes. This module turns their arrays into tensors and applies the subsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from simclr_core.config import DataConfig
from simclr_core.data_cache import DecodedArrays
from simclr_core.data_sources import DatasetError, load_image_folder, load_named, load_parquet_folder
from simclr_core.synthetic import SYNTHETIC_CLASS_NAMES, make_synthetic, make_synthetic_splits

# The public API of the data layer, importable from here whichever module defines it.
__all__ = ["DEFAULT_CACHE_DIR", "DEFAULT_ROOT", "Dataset", "DatasetError", "SYNTHETIC_CLASS_NAMES",
           "load_dataset", "make_synthetic"]

DEFAULT_ROOT = "./data"
DEFAULT_CACHE_DIR = Path("~/.cache/simclr-ablations")


@dataclass
class Dataset:
    name: str
    train_images: torch.Tensor  # uint8 (N, 3, H, W), CPU, contiguous
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor  # uint8 (M, 3, H, W)
    test_labels: torch.Tensor  # int64 (M,)
    classes: list[str]
    source: str  # where it was loaded from: a path, or "synthetic(seed=..)"

    def __repr__(self) -> str:
        # The default dataclass repr would print tensor contents.
        return (
            f"Dataset(name={self.name!r}, train={tuple(self.train_images.shape)}, "
            f"test={tuple(self.test_images.shape)}, classes={len(self.classes)}, source={self.source!r})"
        )


def load_dataset(config: DataConfig) -> Dataset:
    """Load the data set `config` names as CPU tensors, decoding through the on-disk cache.

    The cache holds the full set; `train_subset`, `train_subset_per_class` and `test_subset` are
    applied afterwards, so runs with different subsets share one cache entry.
    """
    # The data keys are checked in one place, DataConfig.validate (which RunConfig.validate runs); a
    # caller may come straight here without validating (a script, the benchmark), so an unknown name
    # still fails as a ConfigError.
    config.validate()
    if config.dataset == "synthetic":
        return _apply_subsets(_load_synthetic(config), config)

    root = Path(config.root if config.root is not None else DEFAULT_ROOT).expanduser().absolute()
    cache_dir = Path(config.cache_dir if config.cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    if config.dataset == "parquet":
        arrays, source = load_parquet_folder(root, cache_dir)
    elif config.dataset == "imagefolder":
        arrays, source = load_image_folder(root, cache_dir)
    else:
        arrays, source = load_named(config.dataset, root, config.download, cache_dir)
    return _apply_subsets(_to_dataset(config.dataset, arrays, source), config)


def _to_dataset(name: str, arrays: DecodedArrays, source: str) -> Dataset:
    return Dataset(
        name=name,
        train_images=torch.from_numpy(np.ascontiguousarray(arrays.train_images, dtype=np.uint8)),
        train_labels=torch.from_numpy(np.ascontiguousarray(arrays.train_labels, dtype=np.int64)),
        test_images=torch.from_numpy(np.ascontiguousarray(arrays.test_images, dtype=np.uint8)),
        test_labels=torch.from_numpy(np.ascontiguousarray(arrays.test_labels, dtype=np.int64)),
        classes=list(arrays.classes),
        source=source,
    )


def _load_synthetic(config: DataConfig) -> Dataset:
    seed = config.synthetic_seed
    train_images, train_labels, test_images, test_labels = make_synthetic_splits(
        config.synthetic_per_class, config.synthetic_classes, config.synthetic_size, seed
    )
    return Dataset(
        name="synthetic",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes=list(SYNTHETIC_CLASS_NAMES[: config.synthetic_classes]),
        source=(
            f"synthetic(seed={seed}, classes={config.synthetic_classes}, "
            f"per_class={config.synthetic_per_class}, size={config.synthetic_size})"
        ),
    )


def _apply_subsets(dataset: Dataset, config: DataConfig) -> Dataset:
    if config.train_subset is not None:
        n = config.train_subset
        if config.train_subset_per_class:
            labels = dataset.train_labels
            # The first n rows of each class, kept in their original order.
            keep = torch.cat([torch.nonzero(labels == c).flatten()[:n] for c in torch.unique(labels)])
            keep, _ = torch.sort(keep)
        else:
            keep = torch.arange(min(n, len(dataset.train_labels)))
        dataset.train_images = dataset.train_images[keep].contiguous()
        dataset.train_labels = dataset.train_labels[keep].contiguous()
    if config.test_subset is not None:
        dataset.test_images = dataset.test_images[: config.test_subset].contiguous()
        dataset.test_labels = dataset.test_labels[: config.test_subset].contiguous()
    return dataset
