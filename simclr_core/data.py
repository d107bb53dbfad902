"""Image data sets as whole uint8 tensors: load once, decode once, cache the decoded array on disk.

Every data set becomes a `Dataset` of CPU tensors, images uint8 (N, 3, H, W) and labels int64 (N,),
so the trainer can move the whole set to the device and augment it in batches (the airbench habit).
Sources, chosen by `DataConfig.dataset`:

- cifar10 | cifar100 | stl10: the Hugging Face Parquet export (`<root>/<dataset>/{train,test}.parquet`,
  the Hub's `<root>/<dataset>/plain_text/train-00000-of-00001.parquet`, or `<root>/{train,test}.parquet`),
  else torchvision's own files in `<root>` (downloaded there when `download` is true).
- parquet: `<root>` holds `train*.parquet` and `test*.parquet` in the Hugging Face image layout.
- imagefolder: `<root>/train/<class>/*.png` and `<root>/test/<class>/...` (or `val/`), ImageFolder's layout.
- synthetic: generated shapes (`make_synthetic`), for tests and smoke runs; never touches the disk.

Decoding CIFAR-10's 60,000 JPEGs takes seconds; a cached load takes a fraction of a second. The cache
lives in `cache_dir` (default ~/.cache/simclr-ablations) because the data root may be read-only, and its
key hashes every source file's absolute path, size and mtime, so replacing the data invalidates it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from simclr_core.config import DATASETS, ConfigError, DataConfig

# Bump when the cached arrays' layout or the decoding changes, so stale caches are not reused.
CACHE_FORMAT_VERSION = 1
DEFAULT_ROOT = "./data"
DEFAULT_CACHE_DIR = Path("~/.cache/simclr-ablations")

# The fixes every "data set not found" message offers, in the words of the study file and the runner.
HOW_TO_FIX_MISSING = (
    "Fix: set data.root in the study file, or SIMCLR_DATA=/path/to/datasets for `python -m ablations.run`, "
    "or data.download: true to fetch it with torchvision."
)

# Column names used by Hugging Face image data sets, in order of preference. CIFAR-100 names its class
# column `fine_label` (next to `coarse_label`); some exports say `labels`.
PARQUET_IMAGE_COLUMNS = ("img", "image")
PARQUET_LABEL_COLUMNS = ("label", "fine_label", "labels")

# torchvision's ImageFolder extensions (torchvision.datasets.folder.IMG_EXTENSIONS).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# The synthetic classes, in label order; `synthetic_classes` takes the first n.
SYNTHETIC_CLASS_NAMES = (
    "square", "disc", "plus", "horizontal_stripes", "ring",
    "vertical_stripes", "triangle", "diagonal_stripes", "x_cross", "checkerboard",
)


class DatasetError(RuntimeError):
    """A data set that cannot be loaded; the message says where it looked and what to do."""


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
    if config.dataset not in DATASETS:
        raise ConfigError(f"data.dataset: {config.dataset!r} is not allowed; expected one of {sorted(DATASETS)}")
    for key in ("train_subset", "test_subset"):
        value = getattr(config, key)
        if value is not None and value < 1:
            raise ConfigError(f"data.{key}: {value!r} is not allowed; expected a positive integer or null")

    if config.dataset == "synthetic":
        dataset = _load_synthetic(config)
    else:
        root = Path(config.root if config.root is not None else DEFAULT_ROOT).expanduser().absolute()
        cache_dir = Path(config.cache_dir if config.cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
        if config.dataset == "parquet":
            dataset = _load_parquet_folder(root, cache_dir)
        elif config.dataset == "imagefolder":
            dataset = _load_image_folder(root, cache_dir)
        else:
            dataset = _load_named(config.dataset, root, config.download, cache_dir)
    return _apply_subsets(dataset, config)


# ----------------------------------------------------------------------------------------------------
# Subsets


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


# ----------------------------------------------------------------------------------------------------
# Synthetic shapes


def make_synthetic(n_per_class: int, n_classes: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate `n_per_class * n_classes` shape images: uint8 (N, 3, size, size) and int64 labels (N,).

    Class k is one shape or texture (`SYNTHETIC_CLASS_NAMES[k]`) drawn at a random position and scale,
    in a random colour, over a random-colour background with pixel noise. The foreground and background
    colours are drawn from one symmetric distribution, so every pixel has the same distribution in every
    class: a linear classifier on raw pixels stays near chance, while convolutional features (edges,
    corners, stripe orientation) separate the classes. Rows are shuffled, so the first rows mix classes.
    """
    if not 1 <= n_classes <= len(SYNTHETIC_CLASS_NAMES):
        raise ConfigError(
            f"data.synthetic_classes: {n_classes!r} is not allowed; expected 1 to {len(SYNTHETIC_CLASS_NAMES)}"
        )
    if n_per_class < 1:
        raise ConfigError(f"data.synthetic_per_class: {n_per_class!r} is not allowed; expected an integer >= 1")
    if size < 8:
        raise ConfigError(f"data.synthetic_size: {size!r} is not allowed; expected an integer >= 8 (pixels)")

    rng = np.random.default_rng(seed)
    n = n_per_class * n_classes
    labels = np.repeat(np.arange(n_classes), n_per_class)
    rng.shuffle(labels)

    # Colour pairs (foreground, background), redrawn as pairs while too alike to see the shape. The
    # rejection treats both colours alike, so foreground and background keep the same distribution.
    colours = rng.uniform(0, 255, size=(n, 2, 3))
    while True:
        too_close = np.linalg.norm(colours[:, 0] - colours[:, 1], axis=1) < 80
        if not too_close.any():
            break
        colours[too_close] = rng.uniform(0, 255, size=(int(too_close.sum()), 2, 3))

    half_width = rng.uniform(0.2, 0.38, size=n) * size  # shape half-size in pixels
    centre_y = rng.uniform(half_width, size - half_width)
    centre_x = rng.uniform(half_width, size - half_width)
    stripe_phase = rng.uniform(0, 1, size=n)

    pixel_centres = np.arange(size) + 0.5
    mask = np.zeros((n, size, size), dtype=bool)
    for label in range(n_classes):
        rows = labels == label
        # Offsets from the shape centre, (rows, size, size), and per-row half-size r, (rows, 1, 1).
        dy = pixel_centres[None, :, None] - centre_y[rows, None, None]
        dx = pixel_centres[None, None, :] - centre_x[rows, None, None]
        r = half_width[rows, None, None]
        phase = stripe_phase[rows, None, None]
        mask[rows] = _SHAPES[SYNTHETIC_CLASS_NAMES[label]](dy, dx, r, phase)

    foreground = colours[:, 0, None, None, :]
    background = colours[:, 1, None, None, :]
    images = np.where(mask[..., None], foreground, background)
    images += rng.normal(0, 12, size=images.shape)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _stripes(coordinate: np.ndarray, r: np.ndarray, phase: np.ndarray) -> np.ndarray:
    # About seven stripes across the shape whatever its size, at a random phase.
    period = np.maximum(3.0, 2 * r / 3.5)
    return np.floor(coordinate / period + phase) % 2 == 0


def _inside_square(dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (np.abs(dy) <= r) & (np.abs(dx) <= r)


_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "square": lambda dy, dx, r, phase: _inside_square(dy, dx, r),
    "disc": lambda dy, dx, r, phase: dy**2 + dx**2 <= r**2,
    "plus": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & ((np.abs(dy) <= r / 3) | (np.abs(dx) <= r / 3)),
    "horizontal_stripes": lambda dy, dx, r, phase: _inside_square(dy, dx, r) & _stripes(dy, r, phase),
    "ring": lambda dy, dx, r, phase: ((0.55 * r) ** 2 <= dy**2 + dx**2) & (dy**2 + dx**2 <= r**2),
    "vertical_stripes": lambda dy, dx, r, phase: _inside_square(dy, dx, r) & _stripes(dx, r, phase),
    "triangle": lambda dy, dx, r, phase: (np.abs(dy) <= r) & (np.abs(dx) <= (dy + r) / 2),
    "diagonal_stripes": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & _stripes((dy + dx) / np.sqrt(2), r, phase),
    "x_cross": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & ((np.abs(dy - dx) <= r / 2.5) | (np.abs(dy + dx) <= r / 2.5)),
    "checkerboard": lambda dy, dx, r, phase: _inside_square(dy, dx, r)
    & ((np.floor(dy / np.maximum(3.0, r / 2)) + np.floor(dx / np.maximum(3.0, r / 2))) % 2 == 0),
}


def _load_synthetic(config: DataConfig) -> Dataset:
    seed = config.synthetic_seed
    # The test set comes from its own seed, derived so that it never equals another run's train seed.
    test_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    arguments = (config.synthetic_per_class, config.synthetic_classes, config.synthetic_size)
    train_images, train_labels = make_synthetic(*arguments, seed=seed)
    test_images, test_labels = make_synthetic(*arguments, seed=test_seed)
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


# ----------------------------------------------------------------------------------------------------
# Disk cache of decoded arrays


@dataclass
class _Arrays:
    """A decoded data set as NumPy arrays, the form the cache stores."""

    train_images: np.ndarray  # uint8 (N, 3, H, W)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]


_ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


def _source_key(name: str, files: list[Path]) -> str:
    """Hash of every source file's absolute path, size and mtime: any change to the data changes it."""
    digest = hashlib.sha256(f"simclr-ablations data cache v{CACHE_FORMAT_VERSION}\n{name}\n".encode())
    for file in sorted(files):
        stat = file.stat()
        digest.update(f"{file.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _read_cache(entry: Path) -> _Arrays | None:
    """The cached arrays in `entry`, or None when missing or unreadable (then the caller decodes again)."""
    # meta.json is written last, so its presence means every array file is complete.
    try:
        meta = json.loads((entry / "meta.json").read_text())
        # A plain np.load reads each file straight into a fresh array, which the tensor then owns. For
        # CIFAR-10 (184 MB) it measured the same as mmap_mode="r" plus a copy, or np.fromfile: ~0.04 s.
        arrays = {array_name: np.load(entry / f"{array_name}.npy") for array_name in _ARRAY_NAMES}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if any(list(arrays[array_name].shape) != meta["shapes"][array_name] for array_name in _ARRAY_NAMES):
        return None
    return _Arrays(**arrays, classes=list(meta["classes"]))


def _write_atomically(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    # A unique temporary name, then os.replace: concurrent workers that decode the same data set each
    # write their own file, and a reader only ever sees a complete one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_cache(entry: Path, arrays: _Arrays, source: str) -> None:
    try:
        entry.mkdir(parents=True, exist_ok=True)
        for array_name in _ARRAY_NAMES:
            array = getattr(arrays, array_name)
            _write_atomically(entry / f"{array_name}.npy", lambda file, array=array: np.save(file, array))
        meta = {
            "format_version": CACHE_FORMAT_VERSION,
            "source": source,
            "classes": arrays.classes,
            "shapes": {array_name: list(getattr(arrays, array_name).shape) for array_name in _ARRAY_NAMES},
        }
        _write_atomically(entry / "meta.json", lambda file: file.write(json.dumps(meta, indent=1).encode()))
    except OSError as error:
        # The data are loaded; only the next load will be slow. Say how to get a working cache.
        warnings.warn(
            f"Could not write the decoded data set cache in {entry} ({error}); the next load will decode "
            f"the images again. Set data.cache_dir to a writable folder.",
            stacklevel=3,
        )


def _through_cache(
    name: str, source: str, source_files: list[Path], cache_dir: Path, decode: Callable[[], _Arrays]
) -> Dataset:
    """Return the cached arrays for these source files, decoding and caching them on a miss."""
    entry = cache_dir / f"{name}-{_source_key(name, source_files)}"
    arrays = _read_cache(entry)
    if arrays is None:
        arrays = decode()
        _write_cache(entry, arrays, source)
    return _to_dataset(name, arrays, source)


def _to_dataset(name: str, arrays: _Arrays, source: str) -> Dataset:
    return Dataset(
        name=name,
        train_images=torch.from_numpy(np.ascontiguousarray(arrays.train_images, dtype=np.uint8)),
        train_labels=torch.from_numpy(np.ascontiguousarray(arrays.train_labels, dtype=np.int64)),
        test_images=torch.from_numpy(np.ascontiguousarray(arrays.test_images, dtype=np.uint8)),
        test_labels=torch.from_numpy(np.ascontiguousarray(arrays.test_labels, dtype=np.int64)),
        classes=list(arrays.classes),
        source=source,
    )


# ----------------------------------------------------------------------------------------------------
# Hugging Face Parquet layout


def _parquet_split_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The `train*.parquet` and `test*.parquet` shards in `folder`, in shard order."""
    if not folder.is_dir():
        return [], []
    return sorted(folder.glob("train*.parquet")), sorted(folder.glob("test*.parquet"))


def _load_parquet_folder(root: Path, cache_dir: Path) -> Dataset:
    train_files, test_files = _parquet_split_files(root)
    if not train_files or not test_files:
        found = "the folder does not exist" if not root.is_dir() else (
            f"found {len(train_files)} train*.parquet and {len(test_files)} test*.parquet files"
        )
        raise DatasetError(
            f"data.dataset is 'parquet' but {root} does not hold both train*.parquet and test*.parquet "
            f"({found}). Fix: set data.root in the study file (or SIMCLR_DATA=/path for "
            f"`python -m ablations.run`) to the folder that holds the Hugging Face Parquet files."
        )
    return _load_parquet_files("parquet", train_files, test_files, cache_dir)


def _load_parquet_files(name: str, train_files: list[Path], test_files: list[Path], cache_dir: Path) -> Dataset:
    source = "parquet " + ", ".join(str(file) for file in train_files + test_files)

    def decode() -> _Arrays:
        train_images, train_labels, train_classes = _read_parquet_split(train_files)
        test_images, test_labels, test_classes = _read_parquet_split(test_files)
        if train_images.shape[1:] != test_images.shape[1:]:
            raise DatasetError(
                f"The train images in {train_files[0]} have shape {train_images.shape[1:]} but the test "
                f"images in {test_files[0]} have shape {test_images.shape[1:]}; both splits must share "
                f"one image size. Resize them first."
            )
        n_classes = int(max(train_labels.max(), test_labels.max())) + 1
        classes = train_classes or test_classes
        if classes is None or len(classes) < n_classes:
            # No usable names in the schema metadata: name classes by their index.
            classes = [str(index) for index in range(n_classes)]
        return _Arrays(train_images, train_labels, test_images, test_labels, classes)

    return _through_cache(name, source, train_files + test_files, cache_dir, decode)


def _read_parquet_split(files: list[Path]) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Decode the shards of one split: images uint8 (N, 3, H, W), labels int64 (N,), class names."""
    import pyarrow.parquet as parquet

    image_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    classes: list[str] | None = None
    for file in files:
        # pyarrow raises ArrowInvalid, OSError and others on damaged files; all mean the same thing here.
        try:
            parquet_file = parquet.ParquetFile(file)
            schema = parquet_file.schema_arrow
        except Exception as error:
            raise DatasetError(
                f"{file} is not a readable Parquet file ({type(error).__name__}: {error}). "
                f"It is damaged or not Parquet: delete it and download it again."
            ) from None
        image_column = next((column for column in PARQUET_IMAGE_COLUMNS if column in schema.names), None)
        label_column = next((column for column in PARQUET_LABEL_COLUMNS if column in schema.names), None)
        if image_column is None or label_column is None:
            raise DatasetError(
                f"{file} has columns {schema.names}; expected the Hugging Face image layout: an image "
                f"column named one of {list(PARQUET_IMAGE_COLUMNS)} (a struct {{bytes, path}}) and a label "
                f"column named one of {list(PARQUET_LABEL_COLUMNS)}. Convert the file to that layout."
            )
        image_type = schema.field(image_column).type
        if not (hasattr(image_type, "get_field_index") and image_type.get_field_index("bytes") >= 0):
            raise DatasetError(
                f"Column {image_column!r} of {file} has type {image_type}; expected the Hugging Face image "
                f"struct {{bytes: binary, path: string}} holding encoded PNG or JPEG bytes."
            )
        try:
            table = parquet_file.read(columns=[image_column, label_column])
        except Exception as error:
            raise DatasetError(
                f"Could not read {file} ({type(error).__name__}: {error}). It is damaged: delete it and "
                f"download it again."
            ) from None
        if classes is None:
            classes = _class_names_from_metadata(schema.metadata, label_column)

        labels_column = table.column(label_column)
        if labels_column.null_count:
            raise DatasetError(
                f"{file} has {labels_column.null_count} rows with no {label_column!r}; every row needs a label."
            )
        labels = labels_column.to_numpy().astype(np.int64)
        if len(labels) and labels.min() < 0:
            row = int(np.argmin(labels))
            raise DatasetError(
                f"Row {row} of {file} has label {labels[row]} (unlabelled); train and test splits must be "
                f"labelled. Remove the unlabelled rows, or point data.root at the labelled splits."
            )
        encoded = table.column(image_column).combine_chunks().field("bytes").to_pylist()
        image_parts.append(_decode_encoded_images(encoded, file))
        label_parts.append(labels)

    # A shard may be empty; its placeholder array has no image size and is left out.
    image_parts = [part for part in image_parts if len(part)]
    shapes = {part.shape[1:] for part in image_parts}
    if len(shapes) > 1:
        raise DatasetError(
            f"The shards {[str(file) for file in files]} hold images of different sizes {sorted(shapes)}; "
            f"all images must share one size. Resize them first."
        )
    if not image_parts:
        raise DatasetError(f"{[str(file) for file in files]} hold no rows. Download the files again.")
    images = np.concatenate(image_parts)
    # Stored as (N, H, W, 3) while decoding; the tensors are (N, 3, H, W).
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), np.concatenate(label_parts), classes


def _class_names_from_metadata(metadata: dict[bytes, bytes] | None, label_column: str) -> list[str] | None:
    """Class names from the `huggingface` schema metadata (info.features.<label>.names), if present."""
    try:
        info = json.loads(metadata[b"huggingface"])
        names = info["info"]["features"][label_column]["names"]
    except (TypeError, KeyError, ValueError):
        return None
    if not isinstance(names, list):
        return None
    return [str(name) for name in names]


def _decode_encoded_images(encoded: list[bytes | None], file: Path) -> np.ndarray:
    """Decode PNG or JPEG bytes into uint8 (N, H, W, 3); every image must have the first one's size.

    Serial on purpose: on this project's 2-core machines a pool of two workers cut CIFAR-10's one-off
    50,000-image decode only from 6.9 s to 5.6 s, and the result is cached.
    """
    from PIL import Image

    images: np.ndarray | None = None
    for row, data in enumerate(encoded):
        if data is None:
            raise DatasetError(
                f"Row {row} of {file} has no image bytes (only a path, or null). This loader reads images "
                f"embedded in the Parquet file: re-export it with the image bytes embedded."
            )
        # PIL raises UnidentifiedImageError, OSError, SyntaxError or ValueError on damaged bytes.
        try:
            with Image.open(io.BytesIO(data)) as image:
                pixels = np.asarray(image.convert("RGB"))
        except Exception as error:
            raise DatasetError(
                f"Row {row} of {file} holds image bytes that cannot be decoded ({type(error).__name__}: "
                f"{error}). The file is corrupt: delete it and download it again."
            ) from None
        if images is None:
            images = np.empty((len(encoded), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != images.shape[1:]:
            raise DatasetError(
                f"Row {row} of {file} is a {pixels.shape[1]}x{pixels.shape[0]} image but row 0 is "
                f"{images.shape[2]}x{images.shape[1]}: all images must share one size. Resize them first."
            )
        images[row] = pixels
    if images is None:
        return np.empty((0, 0, 0, 3), dtype=np.uint8)
    return images


# ----------------------------------------------------------------------------------------------------
# cifar10 / cifar100 / stl10: Parquet first, then torchvision's files


def _torchvision_class(name: str) -> type:
    from torchvision import datasets

    return {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "stl10": datasets.STL10}[name]


def _load_named(name: str, root: Path, download: bool, cache_dir: Path) -> Dataset:
    looked_at: list[str] = []
    # Hugging Face layouts, most specific first: <root>/<name>/, one level below it (the Hub's
    # plain_text/ or data/ folders), and <root> itself.
    dataset_folder = root / name
    subfolders = []
    if dataset_folder.is_dir():
        subfolders = sorted(path for path in dataset_folder.iterdir() if path.is_dir())
    for folder in [dataset_folder, *subfolders, root]:
        train_files, test_files = _parquet_split_files(folder)
        if train_files and test_files:
            return _load_parquet_files(name, train_files, test_files, cache_dir)
        note = ""
        if train_files or test_files:
            note = f" (found {len(train_files)} train and {len(test_files)} test files: both splits are needed)"
        looked_at.append(f"{folder}/train*.parquet and test*.parquet{note}")
    if not subfolders:
        looked_at.insert(1, f"{dataset_folder}/*/train*.parquet and test*.parquet")

    torchvision_class = _torchvision_class(name)
    torchvision_folder = root / torchvision_class.base_folder
    looked_at.append(f"{torchvision_folder} (torchvision's {torchvision_class.__name__} files)")
    if not torchvision_folder.is_dir() and not download:
        raise DatasetError(
            f"Could not find the {name} data set. Looked at:\n"
            + "".join(f"  - {place}\n" for place in looked_at)
            + HOW_TO_FIX_MISSING
        )
    return _load_torchvision(name, root, download, cache_dir, torchvision_class, torchvision_folder)


def _files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.is_dir() else []


def _load_torchvision(
    name: str, root: Path, download: bool, cache_dir: Path, torchvision_class: type, torchvision_folder: Path
) -> Dataset:
    source = f"torchvision {torchvision_class.__name__} files in {torchvision_folder}"
    # Look in the cache before constructing the torchvision data set: its constructor checks the MD5 of
    # every file (for STL-10 that includes the 2.6 GB unlabelled split), which costs seconds.
    if torchvision_folder.is_dir():
        entry = cache_dir / f"{name}-{_source_key(name, _files_under(torchvision_folder))}"
        arrays = _read_cache(entry)
        if arrays is not None:
            return _to_dataset(name, arrays, source)

    def construct(train: bool):
        split = {"split": "train" if train else "test"} if name == "stl10" else {"train": train}
        try:
            return torchvision_class(root=str(root), download=download, **split)
        except Exception as error:
            if download:
                # Network errors surface as URLError, OSError, or RuntimeError on a bad checksum.
                raise DatasetError(
                    f"Downloading {name} with torchvision into {root} failed ({type(error).__name__}: "
                    f"{error}). Is there a network connection? Otherwise put the files there yourself. "
                    + HOW_TO_FIX_MISSING
                ) from None
            raise DatasetError(
                f"torchvision could not load {name} from {torchvision_folder} ({type(error).__name__}: "
                f"{error}). The files are incomplete or corrupt: delete that folder and set data.download: "
                f"true to fetch them again. " + HOW_TO_FIX_MISSING
            ) from None

    train_set, test_set = construct(train=True), construct(train=False)

    def to_channels_first(data: np.ndarray) -> np.ndarray:
        # CIFAR's arrays are (N, H, W, 3); STL-10's are already (N, 3, H, W).
        data = np.asarray(data, dtype=np.uint8)
        return np.ascontiguousarray(data if data.shape[1] == 3 else data.transpose(0, 3, 1, 2))

    def labels_of(dataset) -> np.ndarray:
        return np.asarray(dataset.labels if name == "stl10" else dataset.targets, dtype=np.int64)

    arrays = _Arrays(
        train_images=to_channels_first(train_set.data),
        train_labels=labels_of(train_set),
        test_images=to_channels_first(test_set.data),
        test_labels=labels_of(test_set),
        classes=[str(class_name) for class_name in train_set.classes],
    )
    # The key is taken after construction: a download may just have created the files.
    entry = cache_dir / f"{name}-{_source_key(name, _files_under(torchvision_folder))}"
    _write_cache(entry, arrays, source)
    return _to_dataset(name, arrays, source)


# ----------------------------------------------------------------------------------------------------
# ImageFolder layout


def _load_image_folder(root: Path, cache_dir: Path) -> Dataset:
    train_folder = root / "train"
    test_folder = next((root / split for split in ("test", "val") if (root / split).is_dir()), None)
    if not train_folder.is_dir() or test_folder is None:
        raise DatasetError(
            f"data.dataset is 'imagefolder' but {root} does not hold {train_folder}/<class>/ and "
            f"{root / 'test'}/<class>/ (or {root / 'val'}/<class>/) folders of images. Fix: set data.root "
            f"in the study file (or SIMCLR_DATA=/path for `python -m ablations.run`) to the folder that "
            f"holds train/ and test/."
        )
    classes = sorted(path.name for path in train_folder.iterdir() if path.is_dir())
    if not classes:
        raise DatasetError(
            f"{train_folder} holds no class folders; expected {train_folder}/<class>/<image files>."
        )
    train_files = _image_files_by_class(train_folder, classes)
    test_classes = sorted(path.name for path in test_folder.iterdir() if path.is_dir())
    unknown = [class_name for class_name in test_classes if class_name not in classes]
    if unknown:
        raise DatasetError(
            f"{test_folder} has class folders {unknown} that {train_folder} lacks; both splits must use the "
            f"same class folders."
        )
    train_class_index = {class_name: index for index, class_name in enumerate(classes)}
    test_files = _image_files_by_class(test_folder, test_classes, class_index=train_class_index)
    for split_folder, files in ((train_folder, train_files), (test_folder, test_files)):
        if not files:
            raise DatasetError(
                f"{split_folder} holds no images with extensions {list(IMAGE_EXTENSIONS)}; expected "
                f"{split_folder}/<class>/<image files>."
            )

    source = f"imagefolder {root}"

    def decode() -> _Arrays:
        reference = train_files[0][0]
        train_images = _decode_image_files([path for path, _ in train_files], reference)
        test_images = _decode_image_files([path for path, _ in test_files], reference)
        return _Arrays(
            train_images=train_images,
            train_labels=np.array([label for _, label in train_files], dtype=np.int64),
            test_images=test_images,
            test_labels=np.array([label for _, label in test_files], dtype=np.int64),
            classes=classes,
        )

    all_files = [path for path, _ in train_files + test_files]
    return _through_cache("imagefolder", source, all_files, cache_dir, decode)


def _image_files_by_class(
    split_folder: Path, classes: list[str], class_index: dict[str, int] | None = None
) -> list[tuple[Path, int]]:
    """(image path, label) pairs, class by class and sorted within a class, as ImageFolder orders them."""
    if class_index is None:
        class_index = {class_name: index for index, class_name in enumerate(classes)}
    pairs = []
    for class_name in classes:
        files = sorted(
            path for path in (split_folder / class_name).rglob("*")
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
        )
        pairs += [(path, class_index[class_name]) for path in files]
    return pairs


def _decode_image_files(paths: list[Path], reference: Path) -> np.ndarray:
    """Decode image files into uint8 (N, 3, H, W); all must have the size of `reference`."""
    reference_pixels = _decode_image_file(reference)
    images = np.empty((len(paths), *reference_pixels.shape), dtype=np.uint8)
    for index, path in enumerate(paths):
        pixels = _decode_image_file(path)
        if pixels.shape != reference_pixels.shape:
            raise DatasetError(
                f"The image {path} is {pixels.shape[1]}x{pixels.shape[0]} but {reference} is "
                f"{reference_pixels.shape[1]}x{reference_pixels.shape[0]}: all images must share one size. "
                f"Resize them first (for example with PIL's Image.resize, or `mogrify -resize WxH! *.png`)."
            )
        images[index] = pixels
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def _decode_image_file(path: Path) -> np.ndarray:
    """One image file as uint8 (H, W, 3)."""
    from PIL import Image

    # PIL raises UnidentifiedImageError, OSError, SyntaxError or ValueError on damaged files.
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as error:
        raise DatasetError(
            f"The image {path} cannot be decoded ({type(error).__name__}: {error}). Delete or replace it."
        ) from None
