"""Study files: strict YAML parsing into a checked `StudySpec` (see `plan`), with `--set` overrides.

A study file (`studies/*.yaml`) names the study, gives a `base` run configuration (any field of
simclr_core's typed configs; defaults, types and dotted keys are defined there and only there), a
`search` section and the seeds. Everything is checked before any training: an unknown key, a wrong
type or an impossible value raises `StudyError`, whose message names the file, the dotted key and
what is allowed.

    name: aug_pairs                      # required: experiment, Optuna study and runs/ folder name
    description: ...                     # optional
    ops: {solarize: solarize_ops:solarize}   # optional: ops not built in (ablations.design.op_sources)
    base: {data: {...}, augment: {...}, model: {...}, train: {...}, probe: {...}}
    search:
      sampler: grid                      # grid | tpe | random
      pairs: [crop, cutout, color]       # grid only: all ordered pairs -> augment.pipeline
      # or pairs: [[crop, color], [crop, sobel], [crop, crop]]: just these cells ([op, op]: the op alone)
      grid: {train.temperature: [0.1, 0.5]}   # grid only: every combination
      # tpe/random: n_trials: 20, pruner: none | median,
      #   params: {train.lr: {type: float, low: 0.01, high: 1.0, log: true}}
    seeds: [0, 1]                        # train.seed; every seed multiplies the cells
    tracking: {log_model: false, preview: true}
    verdict: crop_color_best             # the rule that decides the claim (ablations.stats.verdicts.RULES)
    floor: true                          # also run the base encoder untrained (train.epochs 0), per seed
    confirm: {max_seeds: 6}              # add seeds where the verdict is undecided, up to 6 per cell
    race: {rungs: [2, 6, 24], audit: {cells: 2, seed: 0}}   # race the cells over training lengths

This module knows nothing of Optuna or MLflow, and imports nothing heavy (no torch, pandas or scipy:
the engine's config, the op table and the rules' names are light), so a bad file is refused in a
fraction of a second: it turns a file into a StudySpec, whose planned trials `search` schedules and
`tracking` records. Leaving `search` out runs the base configuration alone over the seeds. The `search:`
section is read by `design.search_section`; the key and value checks all sections share, and `StudyError`, are
`design.keys`'.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ablations.design import op_sources
from ablations.design.plan import (
    PIPELINE_KEY, SEED_KEY, ConfirmSpec, RaceSpec, SearchSpec, StudySpec, TrackingSpec, expand_cells, format_value,
)
from ablations.stats.verdicts import RULES
from ablations.design.strict_yaml import StrictLoader
from ablations.design.keys import StudyError, check_dotted_key, check_pipeline, checked_mapping, coerce_value
from ablations.design.search_section import parse_search
from simclr_core.config import MAX_SEED, ConfigError, RunConfig, plain_type_name

TOP_LEVEL_KEYS = ("name", "description", "ops", "base", "search", "seeds", "tracking", "verdict", "floor",
                  "confirm", "race")
CONFIRM_KEYS = ("max_seeds",)
RACE_KEYS = ("rungs", "audit")
AUDIT_KEYS = ("cells", "seed")
TRACKING_KEYS = ("log_model", "preview")
# Names become an MLflow experiment, an Optuna study and a folder under runs/.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Well under a file name's 255 bytes: names also make `runs/<name>/...` and `reports/<name>-<id>/`.
MAX_NAME_LENGTH = 100
# The inference decides nothing on fewer than 3 seeds (ablations.stats.inference.MIN_SEEDS): a race on
# fewer would eliminate nothing.
MIN_RACE_SEEDS = 3


# train.seed is what the top-level `seeds` list varies: a value of it elsewhere would be ignored.
SEED_ELSEWHERE = ("the seed is not set here: each trial's train.seed comes from the top-level `seeds` list "
                  "(seeds: [5] runs seed 5; several seeds run each configuration once per seed)")


# ----------------------------------------------------------------------------------------------------
# Loading


def load_study(path: str | Path, overrides: list[str] = (), data_root: str | None = None) -> StudySpec:
    """Read and check a study file; `overrides` are `dotted.key=value` strings (the CLI's --set).

    data_root fills data.root when neither the file nor the overrides set it (the runner passes
    SIMCLR_DATA), so one study file works wherever the data sets live.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise StudyError(source, "", f"cannot read the study file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise StudyError(source, "", f"not UTF-8 text (byte {error.start}); save the study file as UTF-8") from None
    try:
        raw = yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise StudyError(source, "", f"invalid YAML{where}: {problem}") from None
    return parse_study(raw, source, overrides=overrides, data_root=data_root)


def parse_study(raw: Any, source: str, overrides: list[str] = (), data_root: str | None = None) -> StudySpec:
    """Check a parsed study document and build the StudySpec (see the module docstring)."""
    doc = checked_mapping(raw, source, "", TOP_LEVEL_KEYS, what="a study file")
    if "name" not in doc:
        raise StudyError(source, "name", "required: the study's name (letters, digits, _ . -)")
    name = doc["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise StudyError(source, "name", f"{name!r} is not allowed; expected up to {MAX_NAME_LENGTH} letters, "
                                         "digits, _ . - (it names the MLflow experiment and the runs/ folder)")
    description = doc.get("description", "") or ""
    if not isinstance(description, str):
        raise StudyError(source, "description", f"expected a string, got {plain_type_name(description)}")

    # Ops declared first: the pipelines below may name them.
    op_sources.begin_study()
    try:
        op_sources.declare(_section(doc, "ops"), Path(source).resolve().parent)
    except op_sources.OpSourceError as error:
        raise StudyError(source, error.key, error.message) from None
    base = _parse_base(_section(doc, "base"), source)
    tracking = TrackingSpec()
    tracking_doc = checked_mapping(_section(doc, "tracking"), source, "tracking", TRACKING_KEYS, what="tracking settings")
    for key, value in tracking_doc.items():
        if not isinstance(value, bool):
            raise StudyError(source, f"tracking.{key}", f"{value!r} is not allowed; expected true or false")
        setattr(tracking, key, value)
    if isinstance(doc.get("search"), dict) and not doc["search"]:
        raise StudyError(source, "search", "{} is not allowed: an empty search varies nothing; give search.grid "
                                           "or search.pairs, or leave `search` out to run the base configuration "
                                           "alone over the seeds")
    search = parse_search(_section(doc, "search"), source)
    seeds = _parse_seeds(doc.get("seeds", [0]), source)

    for override in overrides:
        _apply_override(override, base, tracking, search, source)
    if data_root is not None and base.data.root is None:
        base.data.root = data_root

    spec = StudySpec(name=name, source=source, base=base, search=search, seeds=seeds,
                     tracking=tracking, description=description)
    _parse_decision(doc, spec)
    _check_configs(spec)
    spec.ops = {spec_op.op: op_sources.source_of(spec_op.op) for pipeline in spec.pipelines() for spec_op in pipeline}
    return spec


def _parse_decision(doc: dict, spec: StudySpec) -> None:
    """`verdict:` (a rule of ablations.stats.verdicts, whose comparisons the study's grid must have),
    `floor:` (true: also run the untrained floor) and `confirm: {max_seeds: N}` (needs a verdict)."""
    source, verdict = spec.source, doc.get("verdict")
    if verdict is not None:
        if verdict not in RULES:
            raise StudyError(source, "verdict", f"{verdict!r} is not allowed; expected one of {', '.join(RULES)}")
        requires = RULES[verdict].requires
        varied = {"pairs"} if spec.search.pairs else set()
        missing = [key for key in requires if key not in varied | set(spec.search.grid)]
        if spec.search.sampler != "grid" or missing:
            raise StudyError(source, "verdict", f"{verdict} compares configurations of a grid that varies "
                                                f"{', '.join(requires)}; this study's search does not "
                                                f"({', '.join(missing) or 'sampler ' + spec.search.sampler})")
        spec.verdict = verdict
    floor = doc.get("floor", False)
    if not isinstance(floor, bool):
        raise StudyError(source, "floor", f"{floor!r} is not allowed; expected true or false")
    if floor and spec.search.sampler != "grid":
        raise StudyError(source, "floor", "the untrained floor is planned with a grid's units; use a grid search")
    spec.floor = floor
    if doc.get("confirm") is not None:
        confirm = checked_mapping(doc["confirm"], source, "confirm", CONFIRM_KEYS, what="confirmation settings")
        if spec.verdict is None:
            raise StudyError(source, "confirm", "confirmation adds seeds where the verdict is undecided; "
                                                "name the rule with `verdict:`")
        max_seeds = confirm.get("max_seeds")
        if not isinstance(max_seeds, int) or isinstance(max_seeds, bool) or max_seeds <= len(spec.seeds):
            raise StudyError(source, "confirm.max_seeds", f"{max_seeds!r} is not allowed; expected an integer above "
                                                          f"the {len(spec.seeds)} planned seeds")
        spec.confirm = ConfirmSpec(max_seeds)
    if doc.get("race") is not None:
        spec.race = _parse_race(doc["race"], spec)


def _parse_race(raw: Any, spec: StudySpec) -> RaceSpec:
    """`race: {rungs: [2, 6, 24], audit: {cells: 2, seed: 0}}` (ablations.stats.race): a grid raced over
    training lengths, decided by the study's rule on the study's seeds at each rung."""
    source = spec.source
    race = checked_mapping(raw, source, "race", RACE_KEYS, what="race settings")
    if spec.verdict is None:
        raise StudyError(source, "race", "a race keeps the cells the study's rule still needs; name the rule "
                                         "with `verdict:`")
    if spec.confirm is not None:
        raise StudyError(source, "race", "a race and `confirm:` cannot be combined (both decide what runs "
                                         "next); leave one out")
    if "train.epochs" in spec.search.grid:
        raise StudyError(source, "race", "the rungs set train.epochs; take it out of search.grid")
    if len(spec.seeds) < MIN_RACE_SEEDS:
        raise StudyError(source, "seeds", f"a race eliminates cells on its seeds, and nothing is decided on fewer "
                                          f"than {MIN_RACE_SEEDS}; give at least {MIN_RACE_SEEDS} seeds")
    rungs = race.get("rungs")
    if (not isinstance(rungs, list) or len(rungs) < 2
            or not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in rungs)
            or any(a >= b for a, b in zip(rungs, rungs[1:]))):
        raise StudyError(source, "race.rungs", f"{rungs!r} is not allowed; expected at least two rising "
                                               "training lengths in epochs, e.g. [2, 6, 24]")
    audit = checked_mapping(race.get("audit") or {}, source, "race.audit", AUDIT_KEYS, what="audit settings")
    values = {}
    for key, default in (("cells", RaceSpec.audit_cells), ("seed", RaceSpec.audit_seed)):
        value = audit.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StudyError(source, f"race.audit.{key}", f"{value!r} is not allowed; expected an integer 0 or more")
        values[key] = value
    return RaceSpec(list(rungs), audit_cells=values["cells"], audit_seed=values["seed"])


def _section(doc: dict, key: str) -> Any:
    """A section of the file as written; left out or left empty (`tracking:`) it is {}. Anything else
    that is not a mapping (`base: []`, `train: 0`) is refused by its parser, not read as empty."""
    value = doc.get(key)
    return {} if value is None else value


def _parse_base(raw: Any, source: str) -> RunConfig:
    """`base:` is RunConfig.to_plain()'s form, a section left empty (`train:`) taking the defaults."""
    if not isinstance(raw, dict):
        raise StudyError(source, "base", f"expected a mapping of config sections (data, augment, model, train, "
                                         f"probe), got {plain_type_name(raw)}")
    raw = {section: {} if values is None else values for section, values in raw.items()}
    if isinstance(raw.get("train"), dict) and "seed" in raw["train"]:
        raise StudyError(source, f"base.{SEED_KEY}", SEED_ELSEWHERE)
    try:
        base = RunConfig.from_plain(raw)
    except ConfigError as error:
        raise StudyError(source, f"base.{error.key}" if error.key else "base", error.reason) from None
    if "pipeline" in raw.get("augment", {}):
        check_pipeline(base.augment.pipeline, source, f"base.{PIPELINE_KEY}")
    return base


def _parse_seeds(raw: Any, source: str) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise StudyError(source, "seeds", f"{raw!r} is not allowed; expected a non-empty list of integers")
    for index, seed in enumerate(raw):
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
            raise StudyError(source, f"seeds[{index}]", f"{seed!r} is not allowed; expected an integer from 0 to "
                                                        f"{MAX_SEED} (2**63 - 1)")
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
        value = yaml.load(text, Loader=StrictLoader) if text.strip() else None
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
    if key == SEED_KEY:
        raise StudyError(where, key, SEED_ELSEWHERE)
    if key in search.varied_keys:
        raise StudyError(where, key, "this study's search varies it; --set can only fix values the search leaves alone")
    base.set(key, coerce_value(key, value, where, where=key))
    try:
        base.validate()
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
    if spec.race is not None and candidates:  # a race trains each cell at every rung's length
        candidates += [(f"race.rungs {rung}", {**candidates[0][1], "train.epochs": rung}) for rung in spec.race.rungs]
    for where, values in candidates:
        try:
            spec.config_for(values, spec.seeds[0]).validate()
        except ConfigError as error:
            raise StudyError(spec.source, "", f"{where}: {error}") from None
