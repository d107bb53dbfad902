"""Typed run configuration: every default is defined here and only here.

The engine takes these objects (or plain arguments); it never reads YAML, argv or environment
variables. `ablations` builds them from study files and command-line overrides.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from simclr_core.op_schema import OP_PARAMETERS, param_check


class ConfigError(ValueError):
    """An impossible configuration value; the message names the dotted key and what is allowed.

    Where the raiser gives them apart, `key` is the dotted key (`train.epochs`, `augment.pipeline[1]`;
    '' for the whole configuration) and `reason` the message without it, so that a caller can name the
    place its own way (a study file says `base.train.epochs`). Otherwise `key` is None and `reason` is
    the whole message."""

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        self.reason = message
        super().__init__(f"{key}: {message}" if key else message)


@dataclass(frozen=True)
class OpSpec:
    """One augmentation op in a view pipeline: its name in `augmentations.OPS` and keyword overrides.

    Parameters left out take the op's own defaults (google-research/simclr data_util.py).
    """

    op: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_plain(self) -> str | dict[str, Any]:
        """The study-file form: a bare name when there are no params, else `{op: name, **params}`."""
        return self.op if not self.params else {"op": self.op, **self.params}

    @classmethod
    def from_plain(cls, plain: Any) -> OpSpec:
        """The inverse of to_plain(). Only the form is checked here: op names and parameters are
        `validate_pipeline`'s."""
        if isinstance(plain, str):
            return cls(plain)
        if isinstance(plain, dict) and isinstance(plain.get("op"), str):
            return cls(plain["op"], {name: value for name, value in plain.items() if name != "op"})
        raise ConfigError(f"{plain!r} is not allowed; expected an op name or a mapping {{op: name, ...params}}")


@dataclass
class DataConfig:
    # cifar10 | cifar100 | stl10 | parquet | imagefolder | synthetic
    dataset: str = "cifar10"
    # Folder that holds the data set. For cifar10/cifar100/stl10 it is searched for
    # `<root>/<dataset>/{train,test}.parquet` (Hugging Face layout) and then torchvision's own files.
    # None means "./data". The runner fills it from SIMCLR_DATA when a study leaves it out.
    root: str | None = None
    # torchvision's real download path, for users with a network.
    download: bool = False
    # Where decoded uint8 arrays are cached; None means ~/.cache/simclr-ablations.
    cache_dir: str | None = None
    # Cheap runs: keep the first N training rows, or N rows per class when train_subset_per_class.
    train_subset: int | None = None
    train_subset_per_class: bool = False
    test_subset: int | None = None
    # Synthetic data set only (fast tests): images per class and side in pixels.
    synthetic_per_class: int = 100
    synthetic_classes: int = 4
    synthetic_size: int = 32
    synthetic_seed: int = 0


    def validate(self) -> None:
        """The data keys' checks, on their own: `load_dataset` runs them without a whole RunConfig."""
        checks = [
            (self.dataset in DATASETS, "dataset", f"one of {sorted(DATASETS)}"),
            (self.train_subset is None or self.train_subset > 0, "train_subset", "a positive integer or null"),
            (self.test_subset is None or self.test_subset > 0, "test_subset", "a positive integer or null"),
            (self.synthetic_per_class >= 1, "synthetic_per_class", "an integer >= 1"),
            (self.synthetic_classes >= 2, "synthetic_classes", "an integer >= 2"),
            (self.synthetic_size >= 8, "synthetic_size", "an integer >= 8 (pixels)"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                raise ConfigError(f"data.{name}: {getattr(self, name)!r} is not allowed; expected {allowed}")


@dataclass
class AugmentConfig:
    # symmetric: every view gets the pipeline. asymmetric: SimCLR Figure 5 protocol, the pipeline
    # on the first view only, the other view left as the (optionally base-cropped) image.
    protocol: str = "symmetric"
    # The SimCLR CIFAR-10 recipe (paper Appendix B.9): crop, flip, colour distortion.
    pipeline: list[OpSpec] = field(
        default_factory=lambda: [OpSpec("crop"), OpSpec("hflip"), OpSpec("color")]
    )
    # Default strength s of `color` and `color_jitter` where a pipeline entry does not set it.
    # CIFAR-10 uses s = 0.5 (paper Appendix B.9); ImageNet s = 1.0.
    color_strength: float = 0.5
    # asymmetric only: one random resized crop per image, shared by both branches, before the
    # target ops (paper Section 3.1 "we always first randomly crop images and resize them").
    base_crop: bool = False
    # auto: color and color_jitter run as one compiled kernel (simclr_core.fused_color) on CPU,
    # about 3x faster than the eager ops there; eager on CUDA, and eager with a warning where
    # torch.compile cannot work (no C++ compiler). on: compiled on any device, an error if it
    # cannot compile. off: eager ops. Views agree across the settings to float rounding.
    compile: str = "auto"


@dataclass
class ModelConfig:
    # resnet18_cifar | resnet18 | resnet50 | small_cnn
    encoder: str = "resnet18_cifar"
    # none | linear | mlp  (paper Section 4.2)
    head: str = "mlp"
    projection_dim: int = 128
    # Hidden width of the mlp head; None means the encoder's feature dimension (the paper's choice).
    hidden_dim: int | None = None
    # Base width of small_cnn (channels of its first stage).
    width: int = 32


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    # sgd | adam | adamw | lars
    optimizer: str = "sgd"
    # Learning rate at batch 256; the rate used is lr * batch_size / 256 (paper Appendix B.1).
    lr: float = 0.3
    momentum: float = 0.9
    weight_decay: float = 1e-6
    warmup_epochs: float = 1.0
    temperature: float = 0.5
    # Views per image; more than two uses the multi-positive NT-Xent (loss.nt_xent_multi).
    n_views: int = 2
    seed: int = 0
    # auto (CUDA, else CPU) | cpu | cuda | cuda:N
    device: str = "auto"
    # auto: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else fp32 | bf16 | fp32
    precision: str = "auto"
    # channels_last memory format: auto (= on, faster on CUDA and on oneDNN CPUs) | on | off
    channels_last: str = "auto"
    compile: bool = False
    # Threads for CPU ops; None leaves torch's default.
    num_threads: int | None = None


@dataclass
class ProbeConfig:
    # Linear probe on frozen features, trained full-batch with L-BFGS to convergence.
    enabled: bool = True
    max_iter: int = 500
    weight_decay: float = 1e-4
    # Which representations to probe: encoder output h and projection output z.
    probe_z: bool = True
    # Per-epoch weighted kNN monitor (Wu et al. 2018): 0 disables it.
    knn_every: int = 1
    knn_k: int = 200
    knn_temperature: float = 0.1
    # Caps on the rows the per-epoch kNN monitor embeds, to keep it cheap.
    knn_train_rows: int = 10000
    knn_test_rows: int = 2000
    # Images per forward pass when extracting features.
    batch_size: int = 1024


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def to_plain(self) -> dict[str, Any]:
        """Nested plain dict (YAML/JSON-ready); pipeline entries in study-file form."""
        plain = dataclasses.asdict(self)
        plain["augment"]["pipeline"] = [spec.to_plain() for spec in self.augment.pipeline]
        return plain

    @classmethod
    def from_plain(cls, plain: Any) -> RunConfig:
        """The inverse of to_plain(): `from_plain(c.to_plain()) == c`. Sections and keys left out keep
        their defaults. Strict, like a study file: an unknown section or key, or a value of the wrong
        type (see `coerce`), raises ConfigError naming the dotted key and what is allowed. Op names
        and the other values' ranges are checked by `validate`."""
        config = cls()
        sections = _checked_mapping(plain, "", _section_names(), "config sections")
        for section, values in sections.items():
            names = _field_names(section)
            for name, value in _checked_mapping(values, section, names, f"{section} settings").items():
                key = f"{section}.{name}"
                config.set(key, cls.coerce(key, value))
        return config

    # Dotted keys (`train.temperature`): how study files, overrides and trial records name a field.

    @classmethod
    def field_keys(cls) -> tuple[str, ...]:
        """Every field's dotted key, sections and fields in declaration order."""
        return tuple(f"{section}.{name}" for section in _section_names() for name in _field_names(section))

    @classmethod
    def check_key(cls, key: Any) -> None:
        """ConfigError unless `key` is `section.field` naming a field; the message lists what exists."""
        sections = _section_names()
        if not isinstance(key, str) or key.count(".") != 1:
            raise ConfigError(f"expected a dotted key section.field, one of the sections {', '.join(sections)}",
                              str(key))
        section, name = key.split(".")
        if section not in sections:
            raise ConfigError(f"unknown section {section!r}; allowed: {', '.join(sections)}", key)
        if name not in _field_names(section):
            raise ConfigError(f"unknown key; {section} takes {', '.join(_field_names(section))}", key)

    @classmethod
    def field_type(cls, key: str) -> Any:
        """The type the field takes, null left out: bool, int, float, str or list[OpSpec]."""
        return _strip_optional(_field_hint(key))

    @classmethod
    def describe_field(cls, key: str) -> str:
        """What the field takes, as messages say it: `an integer or null`, `true or false`."""
        hint = _field_hint(key)
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
        base = _strip_optional(hint)
        if base in names:
            text = names[base]
        elif typing.get_origin(base) is list:
            text = "a list of op names or {op: name, ...params} mappings"
        else:
            text = str(base)
        return f"{text} or null" if _is_nullable(hint) else text

    @classmethod
    def coerce(cls, key: str, value: Any) -> Any:
        """`value` (plain: YAML/JSON) checked against the type of the field `key`, in that type.

        Strict: no strings for numbers, no 1 for true, no 2.0 for an integer, no infinities. An int
        is accepted where a float is expected (YAML writes 1 for 1.0). A pipeline is a list of op
        names or `{op: name, **params}` mappings. Else ConfigError naming the key (`key[index]` for a
        pipeline entry)."""
        cls.check_key(key)
        hint = _field_hint(key)
        base = _strip_optional(hint)
        if value is None and _is_nullable(hint):
            return None
        if typing.get_origin(base) is list and typing.get_args(base) == (OpSpec,):
            if not isinstance(value, list):
                raise ConfigError("expected a list of op names or {op: name, ...params} mappings, got "
                                  f"{plain_type_name(value)}", key)
            pipeline = []
            for index, entry in enumerate(value):
                try:
                    pipeline.append(OpSpec.from_plain(entry))
                except ConfigError as error:
                    raise ConfigError(error.reason, f"{key}[{index}]") from None
            return pipeline
        if base not in (bool, int, float, str):
            raise ConfigError(f"fields of type {hint} cannot be set from plain values", key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)  # True is an int in Python
        if base is bool and isinstance(value, bool) or base is str and isinstance(value, str):
            return value
        if base is int and number and isinstance(value, int):
            return value
        if base is float and number and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{value!r} is not allowed; expected {cls.describe_field(key)}", key)

    def get(self, key: str) -> Any:
        """The value under a dotted key: `config.get("train.lr")`."""
        self.check_key(key)
        section, name = key.split(".")
        return getattr(getattr(self, section), name)

    def set(self, key: str, value: Any) -> None:
        """Store `value` under a dotted key as given; `coerce` it first where it comes from outside."""
        self.check_key(key)
        section, name = key.split(".")
        setattr(getattr(self, section), name, value)

    def validate(self) -> None:
        """Every check a configuration can be given before any data is loaded: the values no run can
        use and the augmentation pipeline's op names and parameters (`validate_pipeline`). Raises
        ConfigError naming the dotted key. Imports nothing heavy: a study file is checked with it
        before torch is loaded."""
        self.data.validate()
        validate_pipeline(self.augment.pipeline)
        checks: list[tuple[bool, str, str]] = [
            (self.augment.protocol in PROTOCOLS, "augment.protocol", f"one of {sorted(PROTOCOLS)}"),
            (self.augment.color_strength >= 0, "augment.color_strength", "a number >= 0"),
            (self.augment.compile in COMPILE_MODES, "augment.compile", f"one of {', '.join(COMPILE_MODES)}"),
            (self.model.encoder in ENCODERS, "model.encoder", f"one of {sorted(ENCODERS)}"),
            (self.model.head in HEADS, "model.head", f"one of {sorted(HEADS)}"),
            (self.model.projection_dim > 0, "model.projection_dim", "a positive integer"),
            (self.train.epochs >= 0, "train.epochs", "an integer >= 0"),
            (self.train.batch_size >= 2, "train.batch_size", "an integer >= 2"),
            (self.train.optimizer in OPTIMIZERS, "train.optimizer", f"one of {sorted(OPTIMIZERS)}"),
            (self.train.lr > 0, "train.lr", "a number > 0"),
            (self.train.weight_decay >= 0, "train.weight_decay", "a number >= 0"),
            (self.train.warmup_epochs >= 0, "train.warmup_epochs", "a number >= 0"),
            (self.train.temperature > 0, "train.temperature", "a number > 0"),
            (self.train.n_views >= 2, "train.n_views", "an integer >= 2"),
            (0 <= self.train.seed <= MAX_SEED, "train.seed", f"an integer from 0 to {MAX_SEED} (2**63 - 1)"),
            (self.train.precision in PRECISIONS, "train.precision", f"one of {sorted(PRECISIONS)}"),
            (self.train.channels_last in ("auto", "on", "off"), "train.channels_last",
             "one of auto, on, off"),
            (self.probe.knn_every >= 0, "probe.knn_every", "an integer >= 0"),
            (self.probe.knn_k >= 1, "probe.knn_k", "an integer >= 1"),
            (self.probe.knn_temperature > 0, "probe.knn_temperature", "a number > 0"),
            # Values that pass a type check but that no run can use: each would fail every trial at
            # run time, so they are refused before the first one.
            (self.model.width >= 1, "model.width", "an integer >= 1"),
            (self.model.hidden_dim is None or self.model.hidden_dim >= 1, "model.hidden_dim",
             "an integer >= 1 or null"),
            (self.train.num_threads is None or self.train.num_threads >= 1, "train.num_threads",
             "an integer >= 1 or null"),
            (self.train.momentum >= 0, "train.momentum", "a number >= 0"),
            (self.probe.max_iter >= 1, "probe.max_iter", "an integer >= 1"),
            (self.probe.weight_decay >= 0, "probe.weight_decay", "a number >= 0"),
            (self.probe.batch_size >= 1, "probe.batch_size", "an integer >= 1"),
            (self.probe.knn_train_rows >= 1, "probe.knn_train_rows", "an integer >= 1"),
            (self.probe.knn_test_rows >= 1, "probe.knn_test_rows", "an integer >= 1"),
        ]
        for ok, key, allowed in checks:
            if not ok:
                value = _get_dotted(self, key)
                raise ConfigError(f"{key}: {value!r} is not allowed; expected {allowed}")
        device = self.train.device
        if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
            raise ConfigError(f"train.device: {device!r} is not allowed; expected auto, cpu, cuda or cuda:N")
        images = self.known_train_images()
        if images is not None and self.train.batch_size > images:
            raise ConfigError(f"{self.train.batch_size} is larger than the {images} training images of "
                              "this configuration; lower train.batch_size or raise data.train_subset",
                              key="train.batch_size")

    def known_train_images(self) -> int | None:
        """Training images a run will have, where the configuration alone says (a subset, or the
        synthetic set); None where only loading the data set tells (the trainer checks it then)."""
        data = self.data
        if data.dataset == "synthetic":
            total = data.synthetic_per_class * data.synthetic_classes
            if data.train_subset is None:
                return total
            per_class = data.train_subset if data.train_subset_per_class else None
            return min(total, per_class * data.synthetic_classes if per_class else data.train_subset)
        if data.train_subset is not None and not data.train_subset_per_class:
            return data.train_subset
        return None


def validate_pipeline(pipeline: list[OpSpec], key: str = "augment.pipeline") -> None:
    """Check op names, parameter names and values; raise ConfigError naming `key[index]` and what is
    allowed. A new built-in op needs its entry in OP_PARAMETERS and a check in PARAM_CHECKS for any new
    parameter name; an op from outside the engine is registered with its checks (op_schema.register_schema)."""
    if not isinstance(pipeline, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of ops, got {type(pipeline).__name__}")
    for index, spec in enumerate(pipeline):
        where = f"{key}[{index}]"
        if not isinstance(spec, OpSpec):
            raise ConfigError(f"{where}: expected an OpSpec, got {type(spec).__name__}")
        if spec.op not in OP_PARAMETERS:
            raise ConfigError(f"{where}: unknown augmentation {spec.op!r}; valid names: "
                              f"{', '.join(sorted(OP_PARAMETERS))}")
        if not isinstance(spec.params, dict):
            raise ConfigError(f"{where} ({spec.op}): params must be a mapping, got "
                              f"{type(spec.params).__name__}")
        valid = OP_PARAMETERS[spec.op]
        for name, value in spec.params.items():
            if name not in valid:
                raise ConfigError(f"{where} ({spec.op}): unknown parameter {name!r}; {spec.op} takes "
                                  f"{', '.join(valid)}")
            check, allowed = param_check(spec.op, name)
            if not check(value):
                raise ConfigError(f"{where}.{name} ({spec.op}): {value!r} is not allowed; expected "
                                  f"{allowed}")


# The largest seed: torch's and numpy's generators take 64 unsigned bits, but a seed is also recorded and
# read back as a signed 64-bit integer (MLflow, the report's tables), so one that does not fit is refused
# before any run rather than failing every trial and then the report.
MAX_SEED = 2**63 - 1
DATASETS = {"cifar10", "cifar100", "stl10", "parquet", "imagefolder", "synthetic"}
PROTOCOLS = {"symmetric", "asymmetric"}
ENCODERS = {"resnet18_cifar", "resnet18", "resnet50", "small_cnn"}
HEADS = {"none", "linear", "mlp"}
OPTIMIZERS = {"sgd", "adam", "adamw", "lars"}
PRECISIONS = {"auto", "bf16", "fp32"}
COMPILE_MODES = ("auto", "on", "off")


def _get_dotted(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def plain_type_name(value: Any) -> str:
    """How messages name a plain value's type: `a mapping`, `a list`, `a string`, `nothing`, `int`."""
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__)


def _section_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RunConfig))


def _section_class(section: str) -> type:
    return typing.get_type_hints(RunConfig)[section]


def _field_names(section: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(_section_class(section)))


def _field_hint(key: str) -> Any:
    RunConfig.check_key(key)
    section, name = key.split(".")
    return typing.get_type_hints(_section_class(section))[name]


def _is_nullable(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _checked_mapping(raw: Any, key: str, allowed: tuple[str, ...], what: str) -> dict:
    """`raw` if it is a mapping whose keys are all in `allowed`; else ConfigError at `key` or the
    unknown key under it."""
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of {what}, got {plain_type_name(raw)}", key)
    for name in raw:
        if name not in allowed:
            raise ConfigError(f"unknown key; allowed: {', '.join(allowed)}", f"{key}.{name}" if key else str(name))
    return raw
