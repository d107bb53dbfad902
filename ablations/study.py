"""Study files: strict YAML parsing into typed run configurations, and search-space expansion.

A study file (`studies/*.yaml`) names the study, gives a `base` run configuration (any field of
simclr_core's typed configs; defaults are defined there and only there), a `search` section and the
seeds. Everything is checked before any training: an unknown key, a wrong type or an impossible
value raises `StudyError`, whose message names the file, the dotted key and what is allowed.

    name: aug_pairs                      # required: experiment, Optuna study and runs/ folder name
    description: ...                     # optional
    base: {data: {...}, augment: {...}, model: {...}, train: {...}, probe: {...}}
    search:
      sampler: grid                      # grid | tpe | random
      pairs: [crop, cutout, color]       # grid only: all ordered pairs -> augment.pipeline
      grid: {train.temperature: [0.1, 0.5]}   # grid only: every combination
      # tpe/random: n_trials: 20, pruner: none | median,
      #   params: {train.lr: {type: float, low: 0.01, high: 1.0, log: true}}
    seeds: [0, 1]                        # train.seed; every seed multiplies the cells
    tracking: {log_model: false, preview: true}

This module knows nothing of Optuna or MLflow: it turns a file into a list of `PlannedTrial`s, each
with its resolved `RunConfig`, for `search` to schedule and `tracking` to record.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from simclr_core.augmentations import validate_pipeline
from simclr_core.config import ConfigError, OpSpec, RunConfig
from simclr_core.trainer import check_config

SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("none", "median")
PARAM_TYPES = ("float", "int", "categorical")
TOP_LEVEL_KEYS = ("name", "description", "base", "search", "seeds", "tracking")
GRID_KEYS = ("sampler", "grid", "pairs")
SAMPLED_KEYS = ("sampler", "n_trials", "params", "pruner")
TRACKING_KEYS = ("log_model", "preview")
PARAM_KEYS = {
    "float": ("type", "low", "high", "log"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
# Names become an MLflow experiment, an Optuna study and a folder under runs/.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
PIPELINE_KEY = "augment.pipeline"
SEED_KEY = "train.seed"


class StudyError(ValueError):
    """A study file or override that cannot run: names the source, the dotted key and what is allowed."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


@dataclass(frozen=True)
class ParamSpec:
    """One sampled dimension of a tpe/random search (an Optuna distribution, described plainly)."""

    key: str
    type: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: int | None = None
    choices: tuple[Any, ...] = ()


@dataclass
class SearchSpec:
    sampler: str = "grid"
    grid: dict[str, list[Any]] = field(default_factory=dict)  # dotted key -> coerced values
    pairs: list[str] = field(default_factory=list)  # op names for the Figure 5 grid
    n_trials: int | None = None
    params: dict[str, ParamSpec] = field(default_factory=dict)
    pruner: str = "none"

    @property
    def varied_keys(self) -> list[str]:
        """The dotted keys this search varies, in file order (seed excluded)."""
        keys = [PIPELINE_KEY] if self.pairs else []
        return keys + list(self.grid) + list(self.params)


@dataclass
class TrackingSpec:
    log_model: bool = False
    preview: bool = True


@dataclass
class Cell:
    """One point of the search space: the varied values, before seeds multiply it."""

    values: dict[str, Any]  # dotted key -> coerced value (OpSpec lists for augment.pipeline)
    pair: tuple[str, str] | None = None  # (first, second) for pair-grid cells

    @property
    def id(self) -> str:
        """Stable and readable: `augment.pipeline=crop+color train.temperature=0.5`; `base` if none."""
        return " ".join(f"{key}={format_value(value)}" for key, value in self.values.items()) or "base"


@dataclass
class PlannedTrial:
    """One unit of work: a cell at one seed, with its resolved configuration."""

    cell: Cell
    seed: int
    config: RunConfig

    @property
    def unit(self) -> str:
        """The key that must be run exactly once in a grid study."""
        return f"{self.cell.id} seed={self.seed}"

    @property
    def run_name(self) -> str:
        """`crop+color seed=1`, `temperature=0.1 batch_size=256 seed=0`."""
        return run_name(self.cell.values, self.seed)

    @property
    def varied(self) -> dict[str, Any]:
        """Dotted key -> plain value of what this study varies, seed included as train.seed."""
        return varied_plain(self.cell.values, self.seed)


@dataclass
class StudySpec:
    name: str
    source: str  # the file the spec came from, for messages
    base: RunConfig
    search: SearchSpec
    seeds: list[int]
    tracking: TrackingSpec
    description: str = ""

    def trials(self) -> list[PlannedTrial]:
        """Every cell times every seed, cells outermost (grid studies only)."""
        if self.search.sampler != "grid":
            raise ValueError(f"{self.source}: a {self.search.sampler} study samples its trials; only grids expand")
        return [PlannedTrial(cell, seed, self.config_for(cell.values, seed))
                for cell in expand_cells(self.search) for seed in self.seeds]

    def config_for(self, values: dict[str, Any], seed: int) -> RunConfig:
        """The base configuration with a cell's values and the seed applied."""
        config = copy.deepcopy(self.base)
        for key, value in values.items():
            set_dotted(config, key, copy.deepcopy(value))
        config.train.seed = seed
        return config


# ----------------------------------------------------------------------------------------------------
# Loading


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_study(path: str | Path, overrides: list[str] = (), data_root: str | None = None) -> StudySpec:
    """Read and check a study file; `overrides` are `dotted.key=value` strings (the CLI's --set).

    data_root fills data.root when neither the file nor the overrides set it (the runner passes
    SIMCLR_DATA), so one study file works wherever the data sets live.
    """
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise StudyError(source, "", f"cannot read the study file ({error.strerror})") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise StudyError(source, "", f"invalid YAML{where}: {problem}") from None
    return parse_study(raw, source, overrides=overrides, data_root=data_root)


def parse_study(raw: Any, source: str, overrides: list[str] = (), data_root: str | None = None) -> StudySpec:
    """Check a parsed study document and build the StudySpec (see the module docstring)."""
    doc = _mapping(raw, source, "", TOP_LEVEL_KEYS, what="a study file")
    if "name" not in doc:
        raise StudyError(source, "name", "required: the study's name (letters, digits, _ . -)")
    name = doc["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise StudyError(source, "name", f"{name!r} is not allowed; expected letters, digits, _ . - "
                                         "(it names the MLflow experiment and the runs/ folder)")
    description = doc.get("description", "") or ""
    if not isinstance(description, str):
        raise StudyError(source, "description", f"expected a string, got {_type_name(description)}")

    base = RunConfig()
    base_doc = _mapping(doc.get("base") or {}, source, "base", _section_names(), what="config sections")
    for section, values in base_doc.items():
        section_doc = _mapping(values or {}, source, f"base.{section}", _field_names(section),
                               what=f"{section} settings")
        for field_name, value in section_doc.items():
            key = f"{section}.{field_name}"
            set_dotted(base, key, coerce_value(key, value, source, where=f"base.{key}"))

    tracking = TrackingSpec()
    tracking_doc = _mapping(doc.get("tracking") or {}, source, "tracking", TRACKING_KEYS, what="tracking settings")
    for key, value in tracking_doc.items():
        if not isinstance(value, bool):
            raise StudyError(source, f"tracking.{key}", f"{value!r} is not allowed; expected true or false")
        setattr(tracking, key, value)

    search = _parse_search(doc.get("search") or {}, source)
    seeds = _parse_seeds(doc.get("seeds", [0]), source)

    for override in overrides:
        _apply_override(override, base, tracking, search, source)
    if data_root is not None and base.data.root is None:
        base.data.root = data_root

    spec = StudySpec(name=name, source=source, base=base, search=search, seeds=seeds,
                     tracking=tracking, description=description)
    _check_configs(spec)
    return spec


def _parse_search(raw: Any, source: str) -> SearchSpec:
    if not isinstance(raw, dict):
        raise StudyError(source, "search", f"expected a mapping, got {_type_name(raw)}")
    sampler = raw.get("sampler", "grid")
    if sampler not in SAMPLERS:
        raise StudyError(source, "search.sampler", f"{sampler!r} is not allowed; expected one of {', '.join(SAMPLERS)}")
    allowed = GRID_KEYS if sampler == "grid" else SAMPLED_KEYS
    for key in raw:
        if key not in allowed:
            hint = (f" ({key} belongs to {'tpe/random' if sampler == 'grid' else 'grid'} searches)"
                    if key in GRID_KEYS + SAMPLED_KEYS else "")
            raise StudyError(source, f"search.{key}",
                             f"unknown key for sampler {sampler}{hint}; allowed: {', '.join(allowed)}")
    search = SearchSpec(sampler=sampler)

    if sampler == "grid":
        pairs = raw.get("pairs") or []
        if not isinstance(pairs, list):
            raise StudyError(source, "search.pairs", f"expected a list of op names, got {_type_name(pairs)}")
        for index, op in enumerate(pairs):
            if not isinstance(op, str):
                raise StudyError(source, f"search.pairs[{index}]", f"{op!r} is not allowed; expected an op name")
        parse_pipeline(pairs, source, "search.pairs")  # the engine checks the names, as for augment.pipeline
        if len(set(pairs)) != len(pairs):
            raise StudyError(source, "search.pairs", f"an op is listed twice in {pairs}")
        search.pairs = list(pairs)
        grid = raw.get("grid") or {}
        if not isinstance(grid, dict):
            raise StudyError(source, "search.grid", f"expected a mapping of dotted.key: [values], got {_type_name(grid)}")
        for key, values in grid.items():
            where = f"search.grid.{key}"
            _check_search_key(key, source, where)
            if key == PIPELINE_KEY and pairs:
                raise StudyError(source, where, "search.pairs already varies augment.pipeline; use one or the other")
            if not isinstance(values, list) or not values:
                raise StudyError(source, where, f"expected a non-empty list of values, got {values!r}")
            search.grid[key] = [coerce_value(key, value, source, where=f"{where}[{index}]")
                                for index, value in enumerate(values)]
        return search

    n_trials = raw.get("n_trials")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise StudyError(source, "search.n_trials", f"{n_trials!r} is not allowed; a {sampler} search needs "
                                                    "a positive integer number of trials")
    search.n_trials = n_trials
    pruner = raw.get("pruner", "none")
    if pruner not in PRUNERS:
        raise StudyError(source, "search.pruner", f"{pruner!r} is not allowed; expected one of {', '.join(PRUNERS)}")
    search.pruner = pruner
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        raise StudyError(source, "search.params", "a tpe/random search needs a mapping of dotted.key: "
                                                  "{type: float|int|categorical, ...}")
    for key, spec in params.items():
        search.params[key] = _parse_param(key, spec, source)
    return search


def _parse_param(key: str, raw: Any, source: str) -> ParamSpec:
    where = f"search.params.{key}"
    _check_search_key(key, source, where)
    if not isinstance(raw, dict):
        raise StudyError(source, where, f"expected a mapping with type: float|int|categorical, got {_type_name(raw)}")
    kind = raw.get("type")
    if kind not in PARAM_TYPES:
        raise StudyError(source, f"{where}.type", f"{kind!r} is not allowed; expected one of {', '.join(PARAM_TYPES)}")
    for name in raw:
        if name not in PARAM_KEYS[kind]:
            raise StudyError(source, f"{where}.{name}", f"unknown key for a {kind} parameter; "
                                                        f"allowed: {', '.join(PARAM_KEYS[kind])}")
    hint = field_type(key)
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise StudyError(source, f"{where}.choices", "expected a non-empty list of values")
        values = tuple(coerce_value(key, value, source, where=f"{where}.choices[{index}]")
                       for index, value in enumerate(choices))
        if len({json.dumps(plain_value(v), sort_keys=True) for v in values}) != len(values):
            raise StudyError(source, f"{where}.choices", "a choice is listed twice")
        return ParamSpec(key, kind, choices=values)

    base_type = _strip_optional(hint)
    if kind == "int" and base_type is not int or kind == "float" and base_type is not float:
        raise StudyError(source, f"{where}.type", f"{kind} does not fit {key}, which takes "
                                                  f"{_describe_type(hint)}; use categorical")
    number = float if kind == "float" else int
    bounds = {}
    for name in ("low", "high"):
        value = raw.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (number is float or isinstance(value, int))
        if not ok or not math.isfinite(value):
            raise StudyError(source, f"{where}.{name}", f"{value!r} is not allowed; expected a finite "
                                                        f"{'number' if number is float else 'integer'}")
        bounds[name] = number(value)
    if not bounds["low"] < bounds["high"]:
        raise StudyError(source, where, f"low ({bounds['low']}) must be below high ({bounds['high']})")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise StudyError(source, f"{where}.log", f"{log!r} is not allowed; expected true or false")
    if log and bounds["low"] <= 0:
        raise StudyError(source, f"{where}.low", "a log-scaled range needs low > 0")
    step = raw.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
        raise StudyError(source, f"{where}.step", f"{step!r} is not allowed; expected a positive integer")
    if step is not None and log:
        raise StudyError(source, f"{where}.step", "step and log cannot be combined (Optuna's rule)")
    return ParamSpec(key, kind, low=bounds["low"], high=bounds["high"], log=log, step=step)


def _check_search_key(key: Any, source: str, where: str) -> None:
    if key == SEED_KEY:
        raise StudyError(source, where, "seeds are varied by the top-level `seeds` list, not by search")
    check_dotted_key(key, source, where)


def _parse_seeds(raw: Any, source: str) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise StudyError(source, "seeds", f"{raw!r} is not allowed; expected a non-empty list of integers")
    for index, seed in enumerate(raw):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise StudyError(source, f"seeds[{index}]", f"{seed!r} is not allowed; expected an integer >= 0")
    if len(set(raw)) != len(raw):
        raise StudyError(source, "seeds", f"a seed is listed twice in {raw}")
    return list(raw)


def _apply_override(override: str, base: RunConfig, tracking: TrackingSpec, search: SearchSpec, source: str) -> None:
    """`--set dotted.key=value`: the value is read as YAML (`1`, `0.5`, `[crop, color]`, `null`)."""
    where = f"{source} (--set {override})"
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise StudyError(where, key or override, "expected dotted.key=value, e.g. train.epochs=1")
    try:
        value = yaml.load(text, Loader=_StrictLoader) if text.strip() else None
    except yaml.YAMLError as error:
        raise StudyError(where, key, f"cannot read the value {text!r} ({getattr(error, 'problem', error)})") from None
    if key.startswith("tracking."):
        name = key.split(".", 1)[1]
        if name not in TRACKING_KEYS:
            raise StudyError(where, key, f"unknown key; allowed: {', '.join('tracking.' + k for k in TRACKING_KEYS)}")
        if not isinstance(value, bool):
            raise StudyError(where, key, f"{value!r} is not allowed; expected true or false")
        setattr(tracking, name, value)
        return
    check_dotted_key(key, where, key)
    if key in search.varied_keys:
        raise StudyError(where, key, "this study's search varies it; --set can only fix values the search leaves alone")
    set_dotted(base, key, coerce_value(key, value, where, where=key))
    try:
        check_config(base)
    except ConfigError as error:
        if str(error).startswith(key):  # this override's value is the impossible one
            raise StudyError(where, "", str(error)) from None


def _check_configs(spec: StudySpec) -> None:
    """Validate every configuration the study can produce, so a bad cell fails before any training."""
    if not spec.base.probe.enabled and not spec.base.probe.knn_every:
        raise StudyError(spec.source, "base.probe", "the objective is the linear probe on h (or else the last "
                                                    "kNN accuracy): enable probe.enabled or probe.knn_every")
    search = spec.search
    if search.sampler == "grid":
        candidates = [(f"search cell '{cell.id}'", cell.values) for cell in expand_cells(search)]
    else:
        candidates = [("base", {})]
        for key, param in search.params.items():
            points = param.choices if param.type == "categorical" else (param.low, param.high)
            candidates += [(f"search.params.{key} = {format_value(v)}", {key: v}) for v in points]
    for where, values in candidates:
        try:
            check_config(spec.config_for(values, spec.seeds[0]))
        except ConfigError as error:
            raise StudyError(spec.source, "", f"{where}: {error}") from None


# ----------------------------------------------------------------------------------------------------
# Dotted keys and types, from the dataclasses themselves


def _section_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(RunConfig))


def _section_class(section: str) -> type:
    return typing.get_type_hints(RunConfig)[section]


def _field_names(section: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(_section_class(section)))


def check_dotted_key(key: Any, source: str, where: str) -> None:
    """`section.field` naming a RunConfig field; else StudyError listing what exists."""
    if not isinstance(key, str) or key.count(".") != 1:
        raise StudyError(source, str(where), f"expected a dotted key section.field, one of the sections "
                                             f"{', '.join(_section_names())}")
    section, name = key.split(".")
    if section not in _section_names():
        raise StudyError(source, str(where), f"unknown section {section!r}; allowed: {', '.join(_section_names())}")
    if name not in _field_names(section):
        raise StudyError(source, str(where), f"unknown key; {section} takes {', '.join(_field_names(section))}")


def field_type(key: str) -> Any:
    section, name = key.split(".")
    return typing.get_type_hints(_section_class(section))[name]


def set_dotted(config: RunConfig, key: str, value: Any) -> None:
    section, name = key.split(".")
    setattr(getattr(config, section), name, value)


def get_dotted(config: RunConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _describe_type(hint: Any) -> str:
    nullable = typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)
    base = _strip_optional(hint)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if base in names:
        text = names[base]
    elif typing.get_origin(base) is list:
        text = "a list of op names or {op: name, ...params} mappings"
    else:
        text = str(base)
    return f"{text} or null" if nullable else text


def coerce_value(key: str, value: Any, source: str, where: str) -> Any:
    """Check `value` against the type hint of the RunConfig field `key`; return it in the field's type.

    Strict: no strings for numbers, no 1 for true, no 2.0 for an integer. Ints are accepted where a
    float is expected (YAML writes 1 for 1.0).
    """
    hint = field_type(key)
    nullable = typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(hint)
    base = _strip_optional(hint)
    if value is None and nullable:
        return None

    def wrong() -> StudyError:
        return StudyError(source, where, f"{value!r} is not allowed; expected {_describe_type(hint)}")

    if base is bool:
        if isinstance(value, bool):
            return value
        raise wrong()
    if base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong()
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise wrong()
            return float(value)
        raise wrong()
    if base is str:
        if isinstance(value, str):
            return value
        raise wrong()
    if typing.get_origin(base) is list and typing.get_args(base) == (OpSpec,):
        return parse_pipeline(value, source, where)
    raise StudyError(source, where, f"fields of type {hint} cannot be set from a study file")


def parse_pipeline(value: Any, source: str, where: str) -> list[OpSpec]:
    """A list of op names or `{op: name, **params}` mappings; names and params checked by the engine."""
    if not isinstance(value, list):
        raise StudyError(source, where, f"expected a list of op names or {{op: name, ...params}} mappings, "
                                        f"got {_type_name(value)}")
    pipeline = []
    for index, entry in enumerate(value):
        if isinstance(entry, str):
            spec = OpSpec(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("op"), str):
            spec = OpSpec(entry["op"], {k: v for k, v in entry.items() if k != "op"})
        else:
            raise StudyError(source, f"{where}[{index}]", f"{entry!r} is not allowed; expected an op name "
                                                          "or a mapping {op: name, ...params}")
        pipeline.append(spec)
    try:
        validate_pipeline(pipeline, key=where)
    except ConfigError as error:
        raise StudyError(source, "", str(error)) from None
    return pipeline


def _mapping(raw: Any, source: str, key: str, allowed: tuple[str, ...], what: str) -> dict:
    if not isinstance(raw, dict):
        raise StudyError(source, key or "(top level)", f"expected a mapping of {what}, got {_type_name(raw)}")
    for name in raw:
        if name not in allowed:
            dotted = f"{key}.{name}" if key else str(name)
            raise StudyError(source, dotted, f"unknown key; allowed: {', '.join(allowed)}")
    return raw


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__)


# ----------------------------------------------------------------------------------------------------
# Search-space expansion and naming


def expand_cells(search: SearchSpec) -> list[Cell]:
    """Every combination of the grid's values (pairs outermost, then grid keys in file order).

    `pairs` is the SimCLR Figure 5 grid: every ordered pair (first, second) of the listed ops, the
    diagonal included; off the diagonal the pipeline is [first, second], on it the single op [first]
    (the paper's diagonal is "the single transformation"). 7 ops give 49 cells.
    """
    pair_cells: list[tuple[dict[str, Any], tuple[str, str] | None]] = [({}, None)]
    if search.pairs:
        pair_cells = [
            ({PIPELINE_KEY: [OpSpec(first)] if first == second else [OpSpec(first), OpSpec(second)]},
             (first, second))
            for first in search.pairs for second in search.pairs
        ]
    keys = list(search.grid)
    cells = []
    for values, pair in pair_cells:
        for combination in itertools.product(*(search.grid[key] for key in keys)):
            cell_values = dict(values)
            cell_values.update(zip(keys, combination))
            cells.append(Cell(cell_values, pair))
    return cells


def plain_value(value: Any) -> Any:
    """JSON/YAML-ready form: pipelines in study-file form."""
    if isinstance(value, list) and all(isinstance(v, OpSpec) for v in value) and value:
        return [v.to_plain() for v in value]
    return value


def format_value(value: Any) -> str:
    """Short and stable: `crop+color`, `color(strength=0.25)`, `0.5`, `mlp`, `null`; `[]` for no ops."""
    if isinstance(value, list) and all(isinstance(v, OpSpec) for v in value):
        if not value:
            return "[]"
        parts = []
        for spec in value:
            params = ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in sorted(spec.params.items()))
            parts.append(f"{spec.op}({params})" if params else spec.op)
        return "+".join(parts)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def run_name(values: dict[str, Any], seed: int) -> str:
    """Named after the varied values: `crop+color seed=1`, `temperature=0.1 seed=0`."""
    parts = [format_value(value) if key == PIPELINE_KEY else f"{key.split('.')[1]}={format_value(value)}"
             for key, value in values.items()]
    return " ".join(parts + [f"seed={seed}"])


def varied_plain(values: dict[str, Any], seed: int) -> dict[str, Any]:
    plain = {key: plain_value(value) for key, value in values.items()}
    plain[SEED_KEY] = seed
    return plain


def flat_config(config: RunConfig) -> dict[str, Any]:
    """Every resolved value under its dotted key (`train.temperature`), pipeline in study-file form."""
    return {f"{section}.{name}": value
            for section, fields in config.to_plain().items() for name, value in fields.items()}


def config_from_plain(plain: dict[str, Any], source: str = "config") -> RunConfig:
    """The inverse of RunConfig.to_plain(), checked like a study file's base section."""
    config = RunConfig()
    sections = _mapping(plain, source, "", _section_names(), what="config sections")
    for section, values in sections.items():
        for name, value in _mapping(values, source, section, _field_names(section), what=f"{section} settings").items():
            key = f"{section}.{name}"
            set_dotted(config, key, coerce_value(key, value, source, where=key))
    return config
