"""Readers that decode image data sets from disk into uint8 arrays, through the decoded-array cache.

One reader per layout, each returning `(DecodedArrays, source)` where `source` says where the data came from:

- `load_named` (cifar10 | cifar100 | stl10): the Hugging Face Parquet export (`<root>/<dataset>/`, one
  folder below it such as the Hub's `plain_text/`, or `<root>`), else torchvision's own files in `<root>`
  (downloaded there when `download` is true).
- `load_parquet_folder`: `<root>` holds `train*.parquet` and `test*.parquet` in the Hugging Face image layout.
- `load_image_folder`: `<root>/train/<class>/*.png` and `<root>/test/<class>/...` (or `val/`), ImageFolder's.

Every failure is a `DatasetError` that names the file and says what to do.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from simclr_core.data_cache import DecodedArrays, cache_entry, read_cache, through_cache, write_cache

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


class DatasetError(RuntimeError):
    """A data set that cannot be loaded; the message says where it looked and what to do."""


# ----------------------------------------------------------------------------------------------------
# Hugging Face Parquet layout


def _parquet_split_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The `train*.parquet` and `test*.parquet` shards in `folder`, in shard order."""
    if not folder.is_dir():
        return [], []
    return sorted(folder.glob("train*.parquet")), sorted(folder.glob("test*.parquet"))


def load_parquet_folder(root: Path, cache_dir: Path) -> tuple[DecodedArrays, str]:
    """`data.dataset: parquet`: the train*.parquet and test*.parquet shards directly in `root`."""
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


def _load_parquet_files(
    name: str, train_files: list[Path], test_files: list[Path], cache_dir: Path
) -> tuple[DecodedArrays, str]:
    source = "parquet " + ", ".join(str(file) for file in train_files + test_files)

    def decode() -> DecodedArrays:
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
        return DecodedArrays(train_images, train_labels, test_images, test_labels, classes)

    return through_cache(name, source, train_files + test_files, cache_dir, decode), source


def _read_parquet_split(files: list[Path]) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Decode the shards of one split: images uint8 (N, 3, H, W), labels int64 (N,), class names."""
    image_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    classes: list[str] | None = None
    for file in files:
        images, labels, shard_classes = _read_parquet_shard(file)
        image_parts.append(images)
        label_parts.append(labels)
        # The first shard whose metadata names the classes names them for the split.
        if classes is None:
            classes = shard_classes

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


def _read_parquet_shard(file: Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Decode one shard: images uint8 (N, H, W, 3), labels int64 (N,), class names from its metadata."""
    import pyarrow.parquet as parquet

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
    return _decode_encoded_images(encoded, file), labels, classes


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


def load_named(name: str, root: Path, download: bool, cache_dir: Path) -> tuple[DecodedArrays, str]:
    """cifar10 | cifar100 | stl10: the first Hugging Face Parquet pair found, else torchvision's files."""
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
) -> tuple[DecodedArrays, str]:
    source = f"torchvision {torchvision_class.__name__} files in {torchvision_folder}"
    # Look in the cache before constructing the torchvision data set: its constructor checks the MD5 of
    # every file (for STL-10 that includes the 2.6 GB unlabelled split), which costs seconds.
    if torchvision_folder.is_dir():
        arrays = read_cache(cache_entry(cache_dir, name, _files_under(torchvision_folder)))
        if arrays is not None:
            return arrays, source

    where = (name, root, download, torchvision_class, torchvision_folder)
    train_set, test_set = _construct_torchvision(*where, train=True), _construct_torchvision(*where, train=False)
    arrays = DecodedArrays(
        train_images=_channels_first(train_set.data),
        train_labels=_torchvision_labels(name, train_set),
        test_images=_channels_first(test_set.data),
        test_labels=_torchvision_labels(name, test_set),
        classes=[str(class_name) for class_name in train_set.classes],
    )
    # The key is taken after construction: a download may just have created the files.
    write_cache(cache_entry(cache_dir, name, _files_under(torchvision_folder)), arrays, source)
    return arrays, source


def _construct_torchvision(
    name: str, root: Path, download: bool, torchvision_class: type, torchvision_folder: Path, train: bool
):
    """torchvision's data set object for one split; its errors become a DatasetError that says what to do."""
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


def _channels_first(data: np.ndarray) -> np.ndarray:
    # CIFAR's arrays are (N, H, W, 3); STL-10's are already (N, 3, H, W).
    data = np.asarray(data, dtype=np.uint8)
    return np.ascontiguousarray(data if data.shape[1] == 3 else data.transpose(0, 3, 1, 2))


def _torchvision_labels(name: str, dataset) -> np.ndarray:
    # STL-10 keeps its labels in `labels`, the CIFAR classes in `targets`.
    return np.asarray(dataset.labels if name == "stl10" else dataset.targets, dtype=np.int64)


# ----------------------------------------------------------------------------------------------------
# ImageFolder layout


def load_image_folder(root: Path, cache_dir: Path) -> tuple[DecodedArrays, str]:
    """`data.dataset: imagefolder`: `root/train/<class>/` and `root/test/<class>/` (or `val/`) images."""
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

    def decode() -> DecodedArrays:
        reference = train_files[0][0]
        train_images = _decode_image_files([path for path, _ in train_files], reference)
        test_images = _decode_image_files([path for path, _ in test_files], reference)
        return DecodedArrays(
            train_images=train_images,
            train_labels=np.array([label for _, label in train_files], dtype=np.int64),
            test_images=test_images,
            test_labels=np.array([label for _, label in test_files], dtype=np.int64),
            classes=classes,
        )

    all_files = [path for path, _ in train_files + test_files]
    return through_cache("imagefolder", source, all_files, cache_dir, decode), source


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
