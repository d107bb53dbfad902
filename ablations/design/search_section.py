"""A study file's `search:` section: a grid (`grid`, `pairs`) or a tpe/random search (`n_trials`, `params`,
`pruner`), checked into a `plan.SearchSpec`. The section's keys and the values they take are described in
`ablations.run.study_file`'s docstring; every value is coerced by the engine's typed config
(`keys.coerce_value`)."""

from __future__ import annotations

import json
import math
from typing import Any

from ablations.design.plan import PIPELINE_KEY, SEED_KEY, ParamSpec, SearchSpec, plain_value
from ablations.design.keys import StudyError, check_dotted_key, check_pipeline, coerce_value
from simclr_core.config import OpSpec, RunConfig, plain_type_name

SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("none", "median")
PARAM_TYPES = ("float", "int", "categorical")
GRID_KEYS = ("sampler", "grid", "pairs")
SAMPLED_KEYS = ("sampler", "n_trials", "params", "pruner")
PARAM_KEYS = {
    "float": ("type", "low", "high", "log"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}


def parse_search(raw: Any, source: str) -> SearchSpec:
    """`search:` left out (or empty) runs the base configuration alone over the seeds; a search that is
    written must vary something (an empty one is a mistake, not a request for the base cell)."""
    if not isinstance(raw, dict):
        raise StudyError(source, "search", f"expected a mapping, got {plain_type_name(raw)}")
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
    if sampler == "grid":
        return _parse_grid(raw, source)
    return _parse_sampled(raw, sampler, source)


def _parse_grid(raw: dict, source: str) -> SearchSpec:
    search = SearchSpec(sampler="grid")
    if raw and "pairs" not in raw and "grid" not in raw:
        raise StudyError(source, "search", "a grid search varies search.pairs or search.grid, and this one gives "
                                           "neither; to run the base configuration alone over the seeds, leave "
                                           "`search` out")
    if "pairs" in raw and not raw["pairs"]:
        raise StudyError(source, "search.pairs", f"{raw['pairs']!r} is not allowed; expected a non-empty list of "
                                                 "op names (or of [first, second] pairs)")
    search.pairs, search.pair_subset = _parse_pairs(raw.get("pairs") or [], source)
    pairs = search.pairs
    grid = raw.get("grid", {})
    if not isinstance(grid, dict) or ("grid" in raw and not grid):
        raise StudyError(source, "search.grid", f"{grid!r} is not allowed; expected a non-empty mapping of "
                                                "dotted.key: [values]")
    for key, values in grid.items():
        where = f"search.grid.{key}"
        _check_search_key(key, source, where)
        if key == PIPELINE_KEY and pairs:
            raise StudyError(source, where, "search.pairs already varies augment.pipeline; use one or the other")
        if not isinstance(values, list) or not values:
            raise StudyError(source, where, f"expected a non-empty list of values, got {values!r}")
        search.grid[key] = [coerce_value(key, value, source, where=f"{where}[{index}]")
                            for index, value in enumerate(values)]
        seen: dict[str, int] = {}
        for index, value in enumerate(search.grid[key]):
            same = seen.setdefault(json.dumps(plain_value(value), sort_keys=True), index)
            if same != index:  # 0.5 and 0.50: one cell, one run name, planned twice
                raise StudyError(source, f"{where}[{index}]", f"{values[index]!r} is the value of {where}[{same}] "
                                                              f"({values[same]!r}) again; list each value once")
    return search


def _parse_pairs(pairs: Any, source: str) -> tuple[list[str], list[tuple[str, str]]]:
    """`pairs: [crop, color]` (every ordered pair of the ops) or `pairs: [[crop, color], [crop, crop]]`
    (just these cells; [op, op] is the single op). Returns the ops and the explicit cells ([] for all)."""
    allowed = "a list of op names, or a list of [first, second] pairs of op names"
    if not isinstance(pairs, list):
        raise StudyError(source, "search.pairs", f"expected {allowed}, got {plain_type_name(pairs)}")
    explicit = bool(pairs) and isinstance(pairs[0], list)  # the first entry says which form
    ops: list[str] = []
    subset: list[tuple[str, str]] = []
    for index, entry in enumerate(pairs):
        where = f"search.pairs[{index}]"
        names = entry if explicit and isinstance(entry, list) else [entry]
        if explicit and not isinstance(entry, list):
            raise StudyError(source, where, f"{entry!r} is not allowed; the first entry is a pair, so expected "
                                            f"[first, second] pairs throughout")
        if explicit and len(entry) != 2:
            raise StudyError(source, where, f"{entry!r} is not allowed; expected a pair [first, second]")
        for name in names:
            if not isinstance(name, str):
                raise StudyError(source, where, f"{entry!r} is not allowed; expected {allowed}")
        ops.extend(name for name in names if name not in ops)
        if explicit:
            check_pipeline([OpSpec(name) for name in names], source, where)  # the engine's check, as for augment.pipeline
            if tuple(entry) in subset:
                raise StudyError(source, where, f"the pair {entry} is listed twice")
            subset.append((entry[0], entry[1]))
    if not explicit:
        check_pipeline([OpSpec(name) for name in pairs], source, "search.pairs")  # names its entry search.pairs[i]
        if len(set(pairs)) != len(pairs):
            raise StudyError(source, "search.pairs", f"an op is listed twice in {pairs}")
    return ops, subset


def _parse_sampled(raw: dict, sampler: str, source: str) -> SearchSpec:
    search = SearchSpec(sampler=sampler)
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
        raise StudyError(source, where, f"expected a mapping with type: float|int|categorical, got {plain_type_name(raw)}")
    kind = raw.get("type")
    if kind not in PARAM_TYPES:
        raise StudyError(source, f"{where}.type", f"{kind!r} is not allowed; expected one of {', '.join(PARAM_TYPES)}")
    for name in raw:
        if name not in PARAM_KEYS[kind]:
            raise StudyError(source, f"{where}.{name}", f"unknown key for a {kind} parameter; "
                                                        f"allowed: {', '.join(PARAM_KEYS[kind])}")
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise StudyError(source, f"{where}.choices", "expected a non-empty list of values")
        values = tuple(coerce_value(key, value, source, where=f"{where}.choices[{index}]")
                       for index, value in enumerate(choices))
        if len({json.dumps(plain_value(v), sort_keys=True) for v in values}) != len(values):
            raise StudyError(source, f"{where}.choices", "a choice is listed twice")
        return ParamSpec(key, kind, choices=values)

    if RunConfig.field_type(key) is not {"int": int, "float": float}[kind]:
        raise StudyError(source, f"{where}.type", f"{kind} does not fit {key}, which takes "
                                                  f"{RunConfig.describe_field(key)}; use categorical")
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
