"""What a study runs, as data: the checked study (`StudySpec`), the cells its search space expands
to, the planned trials (a cell at one seed, with its resolved `RunConfig`), and how each is named.

`ablations.run.study_file` builds a StudySpec from a file; `stores.search` schedules its trials;
`stores.tracking` and the reports name runs with `run_name` and `format_value`, and the tables show a
configuration's values as `table_value` and `configuration_keys` say. Nothing here reads files or talks to Optuna or MLflow.
The seed is varied by a study's top-level `seeds` list and recorded under SEED_KEY.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from simclr_core.config import OpSpec, RunConfig

# The keys of a trial's varied values (`PlannedTrial.varied`, recorded by `tracking` as `ablations.varied`)
# that their readers single out: the seed, which every study varies through its `seeds` list, and the
# augmentation pipeline, which `search.pairs` varies.
SEED_KEY = "train.seed"
PIPELINE_KEY = "augment.pipeline"


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
    # Given as [first, second] pairs: only these cells of the grid, in this order ([op, op] is the
    # single op); empty: every ordered pair of `pairs`.
    pair_subset: list[tuple[str, str]] = field(default_factory=list)
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
class ConfirmSpec:
    """The confirmation step: after the planned seeds, rounds of one more seed for the configurations
    whose comparison in the verdict is still open, until it is decided or they have max_seeds seeds."""

    max_seeds: int


@dataclass
class RaceSpec:
    """Racing over budgets: every cell runs at the first rung (a training length, `train.epochs`); after a
    rung is complete, only the cells the study's rule still needs go on to the next (`ablations.stats.race`).
    `audit_cells` eliminated cells, drawn with `audit_seed`, run at the last rung anyway (the audit)."""

    rungs: list[int]  # training lengths in epochs, rising
    audit_cells: int = 2
    audit_seed: int = 0


@dataclass
class Cell:
    """One point of the search space: the varied values, before seeds multiply it."""

    values: dict[str, Any]  # dotted key -> coerced value (OpSpec lists for augment.pipeline)
    pair: tuple[str, str] | None = None  # (first, second) for pair-grid cells
    floor: bool = False  # the study's untrained floor (values {train.epochs: 0}), not a configuration

    @property
    def id(self) -> str:
        """Stable and readable: `augment.pipeline=crop+color train.temperature=0.5`; `base` if none;
        `floor` for the untrained floor."""
        if self.floor:
            return FLOOR_CELL
        return " ".join(f"{key}={format_value(value)}" for key, value in self.values.items()) or "base"


# The cell id of a study's untrained floor: the base encoder at train.epochs 0, probed like the rest.
FLOOR_CELL = "floor"
FLOOR_CELL_VALUES = {"train.epochs": 0}


@dataclass
class PlannedTrial:
    """One unit of work: a cell at one seed, with its resolved configuration."""

    cell: Cell
    seed: int
    config: RunConfig
    rung: int | None = None  # a race's training length for this unit (its config's train.epochs)

    @property
    def unit(self) -> str:
        """The key that must be run exactly once in a grid study; in a race the rung is part of it
        (`<cell id> epochs=6 seed=1`): one cell runs once per seed at each rung it reaches."""
        if self.rung is not None:
            return f"{self.cell.id} epochs={self.rung} seed={self.seed}"
        return f"{self.cell.id} seed={self.seed}"

    @property
    def run_name(self) -> str:
        """`crop+color seed=1`, `temperature=0.1 batch_size=256 seed=0`, `floor seed=0`; in a race
        `crop+color epochs=6 seed=1`."""
        if self.cell.floor:
            return f"{FLOOR_CELL} seed={self.seed}"
        name = run_name(self.cell.values, self.seed)
        return name.replace(" seed=", f" epochs={self.rung} seed=") if self.rung is not None else name

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
    verdict: str | None = None  # the rule of ablations.stats.verdicts that decides the study's claim
    floor: bool = False  # also run the untrained floor (the base encoder at train.epochs 0), once per seed
    confirm: ConfirmSpec | None = None
    race: RaceSpec | None = None
    # Each op the study's pipelines name -> where it comes from (op_sources.OpSource), built-in ones too.
    ops: dict[str, Any] = field(default_factory=dict)

    def pipelines(self) -> list[list[OpSpec]]:
        """Every pipeline the study can run: the base's, each cell's, each categorical choice's."""
        found = [self.base.augment.pipeline]
        if self.search.sampler == "grid":
            found += [cell.values[PIPELINE_KEY] for cell in expand_cells(self.search) if PIPELINE_KEY in cell.values]
        else:
            param = self.search.params.get(PIPELINE_KEY)
            found += list(param.choices) if param is not None and param.type == "categorical" else []
        return found

    def trials(self) -> list[PlannedTrial]:
        """The floor's units first (cheap, and every figure is read against it), then every cell times
        every seed, cells outermost (grid studies only). A race plans its first rung only: the later
        rungs' units are enqueued as the race decides them (`ablations.stores.race`)."""
        if self.search.sampler != "grid":
            raise ValueError(f"{self.source}: a {self.search.sampler} study samples its trials; only grids expand")
        floor = [self.planned(floor_cell(), seed) for seed in self.seeds] if self.floor else []
        rung = self.race.rungs[0] if self.race else None
        return floor + [self.planned(cell, seed, rung) for cell in expand_cells(self.search) for seed in self.seeds]

    def possible_trials(self) -> list[PlannedTrial]:
        """Every unit the study may run: its planned trials, and in a race every cell at every rung (what a
        recorded unit's configuration is checked against on a resume)."""
        if self.race is None:
            return self.trials()
        floor = [self.planned(floor_cell(), seed) for seed in self.seeds] if self.floor else []
        return floor + [self.planned(cell, seed, rung) for rung in self.race.rungs
                        for cell in expand_cells(self.search) for seed in self.seeds]

    def planned(self, cell: Cell, seed: int, rung: int | None = None) -> PlannedTrial:
        config = self.config_for(cell.values, seed)
        if rung is not None:
            config.train.epochs = rung
        return PlannedTrial(cell, seed, config, rung)

    def race_limit(self) -> int:
        """The most trials a race can run: every cell at every rung (the worst case, nothing eliminated)."""
        if self.race is None:
            return len(self.trials())
        return len(expand_cells(self.search)) * len(self.seeds) * len(self.race.rungs)

    def confirm_limit(self) -> int:
        """The most trials the confirmation step can add: every cell up to max_seeds seeds."""
        if self.confirm is None or self.search.sampler != "grid":
            return 0
        return len(expand_cells(self.search)) * max(0, self.confirm.max_seeds - len(self.seeds))

    def config_for_plain(self, varied: dict[str, Any]) -> RunConfig:
        """The configuration of a recorded trial's plain varied values (`PlannedTrial.varied`, the seed
        under SEED_KEY; the first seed where none is recorded) on this study's base."""
        values = {key: RunConfig.coerce(key, value) for key, value in varied.items() if key != SEED_KEY}
        return self.config_for(values, varied.get(SEED_KEY, self.seeds[0]))

    def config_for(self, values: dict[str, Any], seed: int) -> RunConfig:
        """The base configuration with a cell's values and the seed applied."""
        config = copy.deepcopy(self.base)
        for key, value in values.items():
            config.set(key, copy.deepcopy(value))
        config.train.seed = seed
        return config


def floor_cell() -> Cell:
    return Cell(dict(FLOOR_CELL_VALUES), floor=True)


def expand_cells(search: SearchSpec) -> list[Cell]:
    """Every combination of the grid's values (pairs outermost, then grid keys in file order).

    `pairs` is the SimCLR Figure 5 grid: every ordered pair (first, second) of the listed ops, the
    diagonal included; off the diagonal the pipeline is [first, second], on it the single op [first]
    (the paper's diagonal is "the single transformation"). 7 ops give 49 cells. With `pair_subset`
    (pairs given as [first, second] in the study file), only those cells, in that order.
    """
    pair_cells: list[tuple[dict[str, Any], tuple[str, str] | None]] = [({}, None)]
    if search.pairs:
        ordered = search.pair_subset or [(first, second) for first in search.pairs for second in search.pairs]
        pair_cells = [
            ({PIPELINE_KEY: [OpSpec(first)] if first == second else [OpSpec(first), OpSpec(second)]},
             (first, second))
            for first, second in ordered
        ]
    keys = list(search.grid)
    cells = []
    for values, pair in pair_cells:
        for combination in itertools.product(*(search.grid[key] for key in keys)):
            cell_values = dict(values)
            cell_values.update(zip(keys, combination))
            cells.append(Cell(cell_values, pair))
    return cells


# ----------------------------------------------------------------------------------------------------
# Naming and plain forms


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


def table_value(value: Any) -> Any:
    """A varied value (plain, as recorded) as a table cell: scalars as they are, a pipeline as `crop+color`
    (format_value's spelling, the run names' own), any other list or dict as compact sorted JSON."""
    if isinstance(value, list) and all(isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("op"), str))
                                       for v in value):
        return format_value([OpSpec.from_plain(op) for op in value])
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def configuration_keys(varied_keys: Iterable[str], pair: bool) -> list[str]:
    """The varied keys that name a configuration in the tables: all but the seed, and, in a pair study,
    but the pipeline (its `first` and `second` name it)."""
    return [key for key in varied_keys if key != SEED_KEY and not (pair and key == PIPELINE_KEY)]


def key_labels(keys: Iterable[str]) -> dict[str, str]:
    """How a configuration's name shows each varied key: its field (`train.temperature` -> `temperature`),
    or the whole dotted key where two varied keys share the field (`train.weight_decay` and
    `probe.weight_decay` stay whole: `weight_decay=0.0 weight_decay=0.1` said neither which was which)."""
    keys = list(keys)
    fields = Counter(key.rsplit(".", 1)[-1] for key in keys)
    return {key: key if fields[key.rsplit(".", 1)[-1]] > 1 else key.rsplit(".", 1)[-1] for key in keys}


def config_name(texts: dict[str, str]) -> str:
    """A configuration's name from its dotted keys and formatted values: the pipeline by its ops alone
    (`crop+color`), every other key as `field=value` (`key_labels`): `crop+color temperature=0.1`."""
    labels = key_labels(texts)
    return " ".join(text if key == PIPELINE_KEY else f"{labels[key]}={text}" for key, text in texts.items())


def run_name(values: dict[str, Any], seed: int) -> str:
    """Named after the varied values: `crop+color seed=1`, `temperature=0.1 seed=0`."""
    return " ".join(filter(None, [config_name({key: format_value(value) for key, value in values.items()}),
                                  f"seed={seed}"]))


def varied_plain(values: dict[str, Any], seed: int) -> dict[str, Any]:
    """Dotted key -> plain value of a cell's values, the seed added under SEED_KEY."""
    plain = {key: plain_value(value) for key, value in values.items()}
    plain[SEED_KEY] = seed
    return plain


def flat_config(config: RunConfig) -> dict[str, Any]:
    """Every resolved value under its dotted key (`train.temperature`), pipeline in study-file form."""
    return flat_plain(config.to_plain())


def flat_plain(plain: dict[str, Any]) -> dict[str, Any]:
    """`RunConfig.to_plain()`'s nested sections as one mapping of dotted keys."""
    return {f"{section}.{name}": value for section, fields in plain.items() for name, value in fields.items()}


def cell_name(cell: str) -> str:
    """A cell id (`ablations.cell`) as people read it, its run's name less the seed (run_name's rule):
    `augment.pipeline=crop+color` -> `crop+color`, `train.temperature=0.1 train.batch_size=256` ->
    `temperature=0.1 batch_size=256`, `floor` -> `floor` (keys sharing a field stay whole: key_labels).
    The value of tracking's CONFIG_TAG, and the report's name for a configuration."""
    parts = [part.partition("=") for part in cell.split(" ")]
    labels = key_labels(key for key, sep, _ in parts if sep)
    return " ".join(key if not sep else value if key == PIPELINE_KEY else f"{labels[key]}={value}"
                    for key, sep, value in parts)
